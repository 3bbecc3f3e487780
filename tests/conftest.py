"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import hypothesis  # noqa: F401 - imported early: its late import under assertion rewriting crashes CPython 3.11
import pytest

from tests.pg import PostgresServer

_OURS = ("SLACK_", "AZURE_", "OAUTH_BOT_", "MSAL_")
_NAMES = {
    "DATABASE_URL",
    "GRAPH_URL",
    "KEY_VAULT_URL",
    "KEY_VAULT_RESOURCE_ID",
    "PORT",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "LOG_LEVEL",
    "LOG_FORMAT",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own configuration."""
    for name in list(os.environ):
        if name.startswith(_OURS) or name in _NAMES:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
