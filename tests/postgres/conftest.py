"""Fixtures for the PostgreSQL tests: a fresh database per test on the session's throwaway
server, the loopback fakes, and helpers to run `oauth-bot` as a real process."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from bot.store.schema import upgrade
from fakes.cloud import FakeCloud
from tests.e2e.conftest import _trust_and_reset, cloud  # noqa: F401 - the shared fakes, reset per test
from tests.pg import PostgresServer


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    """An empty database of its own (dropped afterwards, with any connection left to it)."""
    name = f"oauth_bot_{uuid.uuid4().hex[:12]}"
    yield postgres.create_database(name)
    with psycopg.connect(postgres.dsn("postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """The database after `oauth-bot migrate` (what an operator does before starting replicas)."""
    upgrade(database_url)
    return database_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def process_env(cloud: FakeCloud, database_url: str, port: int = 0, **extra: str) -> dict[str, str]:
    """The environment of an `oauth-bot` process: this one's, the fakes' settings, `extra`; the
    repository on PYTHONPATH for `python -m tests.crash.halting` (serve with the fault hook)."""
    root = str(Path(__file__).resolve().parents[2])
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **cloud.environment(database_url, port=port), "PYTHONPATH": python_path, **extra}


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
