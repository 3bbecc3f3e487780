"""Key Vault failing after addPassword: the password is removed again, nobody is left with a
credential whose value nobody holds."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.model import Status
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import approve, request_new_app


@pytest.fixture
def bot_settings() -> dict[str, Any]:
    return {"oauth_bot_retry_budget_seconds": 3.0}


def test_a_vault_that_keeps_failing_ends_with_the_password_removed(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Key Vault answering 503 past the budget: the new password is removed again, the
    requester and the admins are told, the request is failed (and can be retried)."""
    card = request_new_app(slack, DEVELOPER, "vaultless-app")
    cloud.vault.inject("PUT", r"^/secrets/", status=503, times=1000)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.FAILED
    app = next(a for a in cloud.graph.apps() if a["displayName"] == "vaultless-app")
    assert cloud.graph.passwords(app["id"]) == []
    assert "removed again" in (request.error or "")
    dm = wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "failed" in m.get("text", "")],
        what="the failure DM",
    )
    assert "Key Vault" in str(dm[-1]["blocks"])
    thread = wait_until(
        lambda: [m for m in cloud.slack.messages(APPROVAL_CHANNEL) if m.get("thread_ts") == card["ts"]],
        what="the admins' thread reply",
    )
    assert "removed again" in str(thread[-1]["blocks"])
    final = cloud.slack.message(APPROVAL_CHANNEL, card["ts"])
    assert final is not None and "Retry" in str(final["blocks"])


def test_a_vault_permission_error_is_reported_not_retried(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """403 from Key Vault names the missing role, is not retried, and removes the password."""
    card = request_new_app(slack, DEVELOPER, "forbidden-app")
    cloud.vault.forbid_writes = True
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.FAILED
    assert "Key Vault Secrets Officer" in (request.error or "")
    app = next(a for a in cloud.graph.apps() if a["displayName"] == "forbidden-app")
    writes = cloud.vault.calls_to("PUT", rf"^/secrets/oauth-{app['appId']}$")
    assert len([c for c in writes if c.headers.get("Authorization")]) == 1
    assert cloud.graph.passwords(app["id"]) == []
