"""Graph and Key Vault faults during the new-app flow, and the canary secret check."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slack_sdk import WebClient

from bot import logs as bot_logs
from bot.core.model import Status
from fakes.cloud import ADMINS, DEVELOPER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import LogCapture
from tests.e2e.flows import approve, request_new_app


def _one_app_one_password_in_vault(cloud: FakeCloud, name: str) -> dict[str, Any]:
    apps = [a for a in cloud.graph.apps() if a["displayName"] == name]
    assert len(apps) == 1, f"{len(apps)} apps named {name}"
    passwords = cloud.graph.passwords(apps[0]["id"])
    assert len(passwords) == 1, passwords
    stored = cloud.vault.versions(f"oauth-{apps[0]['appId']}")[-1]
    assert stored["tags"]["secret-id"] == passwords[0]["keyId"]
    assert cloud.graph.check_secret(apps[0]["appId"], stored["value"])
    return apps[0]


def test_throttling_server_errors_and_replication_404s_end_in_one_app_and_one_secret(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """429 with Retry-After on create, 503s on addPassword and the vault, and Graph's 404s for
    two seconds after creation: still exactly one app and one password whose value is in the vault."""
    card = request_new_app(slack, DEVELOPER, "weathered-app")
    cloud.graph.inject(
        "PATCH", r"^/v1\.0/applications\(uniqueName=", status=429, headers={"Retry-After": "1"}
    )
    cloud.graph.inject("POST", r"/addPassword$", status=503, times=2)
    cloud.vault.inject("PUT", r"^/secrets/", status=503, times=1)
    cloud.graph.replication_delay = 2.0
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    _one_app_one_password_in_vault(cloud, "weathered-app")
    patches = cloud.graph.calls_to("PATCH", r"^/v1\.0/applications\(uniqueName=")
    assert len([c for c in patches if "weathered" in c.body.decode()]) == 2  # 429, then created
    retried_after = patches[-1].at - patches[-2].at
    assert retried_after >= 1.0, "the retry came before Retry-After allowed"


def test_a_lost_create_answer_does_not_make_a_twin(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A create whose answer never arrives (a 504 after Graph made the app) is retried as an
    upsert on the same uniqueName: one app, not two."""
    card = request_new_app(slack, DEVELOPER, "lost-answer-app")
    cloud.graph.lose_next_answer("PATCH", r"^/v1\.0/applications\(uniqueName=")
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    _one_app_one_password_in_vault(cloud, "lost-answer-app")


# Shaped like an Entra client secret (3 characters, a digit, "Q~", 34 more), so every part of
# the bot treats it as it treats a real one; the searches below read raw bytes and raw log
# records, so neither its shape nor bot/logs.py's redaction can hide it from them.
CANARY = "Cnr8Q~CANARY" + "k9Zq" * 7


def _places_holding(
    value: str, cloud: FakeCloud, logs: LogCapture, answers: list[bytes], database_path: Path
) -> list[str]:
    """Where `value` is: Slack calls (raw bodies and decoded values), response_url bodies,
    the bot's HTTP answers to Slack, log records (before any filter) and the SQLite files."""
    places = []
    if value in cloud.slack.all_text():
        places.append("a Slack call")
    if value in json.dumps(cloud.slack.responses()):
        places.append("a response_url body")
    if any(value.encode() in answer for answer in answers):
        places.append("an answer to Slack")
    if value in logs.text():
        places.append("a log record")
    for path in sorted(database_path.parent.glob(database_path.name + "*")):  # with -wal, -shm
        if path.is_file() and value.encode() in path.read_bytes():
            places.append(path.name)
    return places


def _record_answers(slack: SlackDriver) -> list[bytes]:
    """The raw bodies the bot answers Slack's requests with (acks, field errors, modals)."""
    answers: list[bytes] = []
    slack.client.event_hooks["response"].append(lambda response: answers.append(response.read()))
    return answers


def test_the_canary_value_is_in_the_vault_and_nowhere_else(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture, database_path: Path
) -> None:
    """After a full run with every logger at DEBUG, the secret value is in the vault and in no
    Slack call, response_url body or answer to Slack, no log record (as logged, before the
    redacting filter) and no byte of the database files."""
    answers = _record_answers(slack)
    cloud.graph.next_secret_text = CANARY
    card = request_new_app(slack, DEVELOPER, "canary-app")
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    app = _one_app_one_password_in_vault(cloud, "canary-app")
    assert cloud.vault.value_of(f"oauth-{app['appId']}") == CANARY
    assert _places_holding(CANARY, cloud, logs, answers, database_path) == []
    assert "addPassword" in logs.text(), "the log capture saw nothing"
    assert answers and cloud.slack.all_text(), "the Slack searches saw nothing"


@contextmanager
def _production_logging(stream: io.StringIO) -> Iterator[None]:
    """bot/logs.py's set-up (the redacting stderr handler) for the test, then back as it was."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in [*root.manager.loggerDict, ""]}
    bot_logs.configure("DEBUG", stream=stream)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_the_canary_search_finds_the_value_wherever_it_is_put(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture, database_path: Path
) -> None:
    """The searches of the canary test can fail: the value logged through the production log
    set-up (which redacts it from the output, so a search of the output would pass), sent to
    Slack, and written to the database is found in each place."""
    answers = _record_answers(slack)
    assert _places_holding(CANARY, cloud, logs, answers, database_path) == []
    output = io.StringIO()
    with _production_logging(output):
        log = logging.getLogger("bot.azure.graph")
        log.debug("POST /addPassword answered %s", {"secretText": CANARY})
        try:
            raise RuntimeError(f"vault write failed for value={CANARY}")
        except RuntimeError:
            log.exception("storing the secret failed")
    assert "addPassword" in output.getvalue() and CANARY not in output.getvalue(), "not redacted"
    assert _places_holding(CANARY, cloud, logs, answers, database_path) == ["a log record"]

    WebClient(token=cloud.slack.bot_token, base_url=f"{cloud.slack.url}/api/").chat_postMessage(
        channel=DEVELOPER,
        text="your app",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": CANARY}}],
    )
    assert bot.services is not None
    bot.services.store.audit("canary-test", "canary.written", note=CANARY)
    places = _places_holding(CANARY, cloud, logs, answers, database_path)
    assert places[:2] == ["a Slack call", "a log record"], places
    assert any(place.startswith(database_path.name) for place in places[2:]), places
