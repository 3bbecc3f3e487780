"""On-demand read access under the approval policy: a `read_access` rule that names approvers
turns `/oauth-secret access` into a request with its card, granted by the worker once approved;
one with `auto: true` grants at once, as without a policy file (tests/e2e/test_read_access.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import Kind, Status
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import request_id_of, wait_for_status
from tests.e2e.test_read_access import (  # the same people, rights and helpers
    HOURS,
    _answer,
    _bot_may_read_users,  # noqa: F401 - autouse: the bot may read users
    _new_app,
    _read,
    _reader_assignments,
    _services,
)

RULES = {
    "approved": "  - match: {kind: read_access}\n    approvers: leads\n",
    "auto": "  - match: {kind: read_access}\n    auto: true\n",
}


@pytest.fixture
def bot_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        f"approvers:\n  leads: {{users: [{ADMINS[1]}]}}\nrules:\n"
        + RULES[request.param]
        + "  - match: {}\n"  # everything else: one admin, as without a policy
    )
    return {"oauth_bot_retry_budget_seconds": 20.0, "oauth_bot_policy_file": str(policy)}


def _expire_first_grant(bot: BackgroundBot, clock: ManualClock) -> None:
    read_access = _services(bot).read_access
    assert read_access is not None
    clock.advance(timedelta(hours=HOURS, minutes=1))
    assert read_access.revoke_expired() == 1


@pytest.mark.parametrize("bot_settings", ["approved"], indirect=True)
def test_read_access_that_the_policy_wants_approved_is_a_request_granted_once_approved(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """The owner asks with `/oauth-secret access`: nothing is granted yet, a "Read access" card
    is posted under rule 1; an admin outside `leads` cannot approve it; the lead's approval has
    the worker grant it (a grant of that request), the requester is told, the card says done."""
    created = _new_app(cloud, bot, slack, "guarded-secret-app")
    client_id = created.client_id or ""
    _expire_first_grant(bot, clock)
    cards_before = len(cloud.slack.messages(APPROVAL_CHANNEL))

    answer = _answer(cloud, slack, DEVELOPER, f"access {client_id}")
    assert "The approval policy wants read access" in answer and "by leads" in answer
    card = wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > cards_before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the read access card",
    )
    assert "Read access request #" in json.dumps(card["blocks"]) and "Rule 1:" in json.dumps(card["blocks"])
    request_id = request_id_of(card)
    store = _services(bot).store
    assert store.get_request(request_id).kind == Kind.READ_ACCESS
    assert _read(cloud, DEVELOPER, client_id) is None

    assert slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL).status_code == 200
    wait_until(
        lambda: any("Only leads can approve" in e.get("text", "") for e in cloud.slack.ephemerals(ADMINS[0])),
        what="the admin's refusal",
    )
    assert store.get_request(request_id).status == Status.PENDING

    assert slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL).status_code == 200
    request = wait_for_status(bot, request_id, Status.COMPLETED, Status.FAILED)
    assert request.status == Status.COMPLETED, request.error
    assert _read(cloud, DEVELOPER, client_id) is not None
    (grant,) = store.read_grants(request_id=request_id)
    assert grant.client_id == client_id and grant.granted_by == ADMINS[1]
    assert len(_reader_assignments(cloud, DEVELOPER, client_id)) == 1
    wait_until(
        lambda: any(
            f"Request #{request_id} is done. You can read the client secret" in m.get("text", "")
            for m in cloud.slack.dm_messages(DEVELOPER)
        ),
        what="the requester told",
    )


@pytest.mark.parametrize("bot_settings", ["auto"], indirect=True)
def test_read_access_approved_by_policy_is_granted_at_once_and_audited_so(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """With `auto: true` for read_access the owner gets the access at once (no card), and the
    audit log says the policy approved it (rule 1)."""
    created = _new_app(cloud, bot, slack, "auto-readable-app")
    client_id = created.client_id or ""
    _expire_first_grant(bot, clock)
    cards_before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert "You can read the client secret" in _answer(cloud, slack, DEVELOPER, f"access {client_id}")
    assert _read(cloud, DEVELOPER, client_id) is not None
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == cards_before
    events = [e for e in _services(bot).store.audit_events() if e.client_id == client_id]
    (approved,) = [e for e in events if e.action == "read_access.approved"]
    assert approved.actor == "policy" and approved.detail == {"rule": 1, "auto": True}


@pytest.mark.parametrize("bot_settings", ["approved"], indirect=True)
def test_a_read_access_request_that_failed_after_granting_is_granted_again_on_retry(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """The lead approves; the grant is made, then the DM fails (Slack refuses the message), so
    the request fails and its grant is withdrawn (the requester cannot read). Retry grants
    again — not the withdrawn grant's "done" — and the requester can read."""
    created = _new_app(cloud, bot, slack, "retried-access-app")
    client_id = created.client_id or ""
    _expire_first_grant(bot, clock)
    cards_before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    _answer(cloud, slack, DEVELOPER, f"access {client_id}")
    card = wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > cards_before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the read access card",
    )
    request_id = request_id_of(card)
    cloud.slack.inject(
        "*", r"^/api/chat\.postMessage$", status=200, body={"ok": False, "error": "is_archived"}
    )
    assert slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL).status_code == 200
    failed = wait_for_status(bot, request_id, Status.FAILED, Status.COMPLETED)
    assert failed.status == Status.FAILED
    store = _services(bot).store
    wait_until(
        lambda: all(g.revoked_at is not None for g in store.read_grants(request_id=request_id)),
        what="withdrawn",
    )
    assert _read(cloud, DEVELOPER, client_id) is None

    failed_card = cloud.slack.message(APPROVAL_CHANNEL, card["ts"])
    assert failed_card is not None
    assert slack.click(ADMINS[0], "Retry", message=failed_card, channel=APPROVAL_CHANNEL).status_code == 200
    done = wait_for_status(bot, request_id, Status.COMPLETED, Status.FAILED)
    assert done.status == Status.COMPLETED, done.error
    assert _read(cloud, DEVELOPER, client_id) is not None
    assert [g.revoked_at is None for g in store.read_grants(request_id=request_id)].count(True) == 1
