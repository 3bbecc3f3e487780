"""Graph and Key Vault faults during the new-app flow, and the canary secret check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.fakes.cloud import ADMINS, DEVELOPER, FakeCloud
from bot.fakes.slack_driver import SlackDriver
from bot.server import BackgroundBot
from bot.store import Status
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


def test_the_canary_value_is_in_the_vault_and_nowhere_else(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture, database_path: Path
) -> None:
    """After a full run with every logger at DEBUG, the secret value is in the vault and in no
    Slack call or answer, no log line and no byte of the database files."""
    cloud.graph.next_secret_text = canary = "CANARY~" + "k9Zq" * 9
    card = request_new_app(slack, DEVELOPER, "canary-app")
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    app = _one_app_one_password_in_vault(cloud, "canary-app")
    assert cloud.vault.value_of(f"oauth-{app['appId']}") == canary
    assert canary not in cloud.slack.all_text()
    assert canary not in str(cloud.slack.responses())
    assert canary not in logs.text()
    assert "addPassword" in logs.text() or "POST" in logs.text(), "the log capture saw nothing"
    for path in (p for p in database_path.parent.glob(database_path.name + "*") if p.is_file()):
        assert canary.encode() not in path.read_bytes(), path
