"""End-to-end fixtures: the loopback fakes, the bot serving HTTP, and a Slack driver."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.clock import ManualClock
from fakes.cloud import SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.rawlog import RawRecords


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll for a condition the bot reaches asynchronously; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCloud]:
    with FakeCloud(tmp_path_factory.mktemp("ca")) as fakes:
        yield fakes


@pytest.fixture(autouse=True)
def _trust_and_reset(
    _clean_environment: None, cloud: FakeCloud, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Clients trust the fakes' CA through the standard variables; faults never leak between
    tests; and no test passes while Slack refused a message or view the bot built."""
    monkeypatch.setenv("SSL_CERT_FILE", str(cloud.ca.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cloud.ca.bundle_path))
    cloud.slack.reset()  # each test sees only its own conversations
    yield
    refused = [c for c in cloud.slack.api_calls() if c["error"] in ("invalid_blocks", "invalid_arguments")]
    assert not refused, f"Slack refused what the bot built: {refused}"
    for server in cloud.servers:
        server.clear_faults()
    cloud.graph.replication_delay = 0.0
    cloud.vault.forbid_writes = False


class LogCapture:
    """Every log record of every logger at DEBUG, as the code made it: taken when the record
    is created, before any handler or filter (bot/logs.py's redaction included) can change it
    (see tests/rawlog.py)."""

    def __init__(self) -> None:
        self.raw = RawRecords()

    def text(self) -> str:
        return self.raw.text()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    # Loggers quietened by an earlier logs.configure() (httpx, azure, msal, ...) speak again.
    quietened = {
        name: logger.level
        for name, logger in root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level
    }
    for name in quietened:
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.setLevel(logging.DEBUG)
    capture.raw.install()
    try:
        yield capture
    finally:
        capture.raw.uninstall()
        root.setLevel(old_level)
        for name, level in quietened.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "oauth-bot.db"


@pytest.fixture
def bot_settings(cloud: FakeCloud, database_path: Path) -> dict[str, Any]:
    """Overrides a test may change before the bot starts."""
    return {"oauth_bot_retry_budget_seconds": 20.0}


@pytest.fixture
def clock() -> ManualClock:
    """The bot's clock: it moves only when a test moves it (grace periods, expiry, reminders)."""
    return ManualClock()


@pytest.fixture
def bot(
    cloud: FakeCloud, database_path: Path, bot_settings: dict[str, Any], clock: ManualClock
) -> Iterator[BackgroundBot]:
    settings = cloud.settings(f"sqlite:///{database_path}", **bot_settings)
    with BackgroundBot(settings, clock=clock) as running:
        yield running


@pytest.fixture
def slack(cloud: FakeCloud, bot: BackgroundBot) -> Iterator[SlackDriver]:
    with SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as driver:
        yield driver
