"""Readiness follows the database: /readyz fails while PostgreSQL cannot answer, /healthz does not."""

from __future__ import annotations

import httpx
import psycopg

from fakes.cloud import FakeCloud
from fakes.harness import BackgroundBot
from tests.e2e.conftest import wait_until
from tests.pg import PostgresServer


def test_readiness_fails_while_the_database_is_gone_and_returns_with_it(
    cloud: FakeCloud, migrated_url: str, postgres: PostgresServer
) -> None:
    """With the bot's database dropped from under it (its sessions terminated), /readyz answers
    503 naming the database while /healthz (liveness) stays 200; once the database exists
    again, /readyz is 200 again — the same process, no restart."""
    name = migrated_url.rsplit("/", 1)[1]
    bot = BackgroundBot(cloud.settings(migrated_url)).start()
    try:
        assert httpx.get(f"{bot.url}/readyz", timeout=5).status_code == 200
        with psycopg.connect(postgres.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        down = wait_until(
            lambda: (r := httpx.get(f"{bot.url}/readyz", timeout=10)).status_code == 503 and r,
            what="/readyz to fail",
        )
        assert "database" in down.json()["problems"][0]
        assert httpx.get(f"{bot.url}/healthz", timeout=5).status_code == 200
        with psycopg.connect(postgres.dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        wait_until(lambda: httpx.get(f"{bot.url}/readyz", timeout=10).status_code == 200, what="/readyz back")
    finally:
        bot.stop()
