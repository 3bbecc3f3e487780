"""Where the approval policy meets secretless sign-in and secret removal: a new app is a new
app however it signs in (a risky audience needs its approvers even without a secret), a
federated credential for an existing app and a secretless single-tenant app can be approved by
policy, a rule that cannot be met for this requester refuses the request at once, and removing
a secret is the admins' decision, refused while something still signs in with it. Signed Slack
requests over HTTP, the fakes behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import Request, Status
from fakes.clock import ManualClock
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    BOT_CLIENT_ID,
    BOT_CLIENT_SECRET,
    DEVELOPER,
    LEAST_PRIVILEGE,
    OUTSIDER,
    FakeCloud,
)
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import (
    approve,
    ask_rotation,
    open_modal,
    request_federated_app,
    request_id_of,
    request_new_app,
    wait_for_status,
)

IDENTITY_TEAM = "S0IDTEAM"
MULTITENANT = "Accounts in any organizational directory (multitenant)"
GITHUB: dict[str, object] = {"Repository": "contoso/deployer", "Branch": "main"}
POLICY = f"""
approvers:
  identity-team: {{usergroup: {IDENTITY_TEAM}}}
  pair: {{users: [{DEVELOPER}, {ADMINS[1]}]}}
rules:
  - match: {{kind: federated}}
    auto: true
  - match: {{kind: new_app, account_types: [multitenant]}}
    approvers: identity-team
    approvals: 2
  - match: {{kind: new_app, sign_in: federated}}
    auto: true
  - match: {{kind: rotation}}
    approvers: pair
    approvals: 2
  - match: {{}}
    approvers: identity-team
"""


@pytest.fixture
def bot_settings(tmp_path: Path, cloud: FakeCloud) -> dict[str, Any]:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return {"oauth_bot_retry_budget_seconds": 20.0, "oauth_bot_policy_file": str(policy)}


@pytest.fixture(autouse=True)
def _team_and_roles(cloud: FakeCloud) -> Iterator[None]:
    """identity-team: both admins and the outsider; the bot may read sign-in activity."""
    cloud.slack.add_usergroup(IDENTITY_TEAM, "identity-team", [ADMINS[0], ADMINS[1], OUTSIDER])
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, [*LEAST_PRIVILEGE, "AuditLog.Read.All"])
    yield
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, LEAST_PRIVILEGE)


def _seen(message: dict[str, Any]) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks", []))


def _card_after(cloud: FakeCloud, before: int) -> dict[str, Any]:
    return wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="a card in the approvals channel",
    )


def _click(slack: SlackDriver, user: str, card: dict[str, Any], button: str = "Approve") -> None:
    assert slack.click(user, button, message=card, channel=APPROVAL_CHANNEL).status_code == 200


def _secret_app(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str) -> Request:
    """A single-tenant app with a client secret: the catch-all rule, one of identity-team."""
    request = approve(slack, cloud, bot, request_new_app(slack, DEVELOPER, name), ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request


def _federate(cloud: FakeCloud, slack: SlackDriver, client_id: str) -> dict[str, Any]:
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert slack.command(DEVELOPER, "/oauth-app", f"federate {client_id}").status_code == 200
    response = slack.submit(DEVELOPER, open_modal(slack, DEVELOPER), GITHUB)
    assert response.content in (b"", b"{}"), response.text
    return _card_after(cloud, before)


def test_a_secretless_multitenant_app_still_needs_the_two_approvers_of_its_audience(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A GitHub Actions app for any organisation's accounts is not approved by the federated or
    the secretless rule: rule 2 (risky audience) applies, one approval leaves it pending, the
    second runs it — and it has no client secret."""
    card = request_federated_app(
        slack, DEVELOPER, "multi-oidc", "GitHub Actions", {**GITHUB, "Supported account types": MULTITENANT}
    )
    request_id = request_id_of(card)
    assert "Rule 2:" in _seen(card) and "Approvals: 0 of 2" in _seen(card)
    _click(slack, ADMINS[0], card)
    wait_until(
        lambda: "Approvals: 1 of 2" in _seen(cloud.slack.message(APPROVAL_CHANNEL, card["ts"]) or {}),
        what="the card at 1 of 2",
    )
    assert bot.services is not None
    assert bot.services.store.get_request(request_id).status == Status.PENDING
    _click(slack, ADMINS[1], card)
    done = wait_for_status(bot, request_id, Status.COMPLETED, Status.FAILED)
    assert done.status == Status.COMPLETED, done.error
    app = cloud.graph.app_by_client_id(done.client_id or "")
    assert app is not None and app["signInAudience"] == "AzureADMultipleOrgs"
    assert cloud.graph.passwords(app["id"]) == [] and len(cloud.graph.federated_credentials(app["id"])) == 1


def test_a_secretless_single_tenant_app_and_a_federated_credential_are_approved_by_policy(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Rule 3 approves a secretless single-tenant app with nobody's click (the card posted for
    the record), and rule 1 a federated credential added to it with /oauth-app federate."""
    card = request_federated_app(slack, DEVELOPER, "single-oidc", "GitHub Actions", GITHUB)
    done = wait_for_status(bot, request_id_of_policy(card), Status.COMPLETED, Status.FAILED)
    assert done.status == Status.COMPLETED, done.error
    assert bot.services is not None
    approved = [
        e for e in bot.services.store.audit_events(request_id=done.id) if e.action == "request.approved"
    ]
    assert [e.actor for e in approved] == ["policy"]
    assert "Approved by policy: rule 3" in _seen(card)

    second: dict[str, object] = {"Repository": "contoso/deployer", "Branch": "release"}
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert slack.command(DEVELOPER, "/oauth-app", f"federate {done.client_id}").status_code == 200
    assert slack.submit(DEVELOPER, open_modal(slack, DEVELOPER), second).content in (b"", b"{}")
    federate_card = _card_after(cloud, before)
    assert "Approved by policy: rule 1" in _seen(federate_card)
    app = cloud.graph.app_by_client_id(done.client_id or "")
    assert app is not None
    wait_until(lambda: len(cloud.graph.federated_credentials(app["id"])) == 2, what="the second credential")
    assert cloud.graph.passwords(app["id"]) == []


def request_id_of_policy(card: dict[str, Any]) -> int:
    """The request number of a card posted for the record (it has no Approve button)."""
    header = next(b for b in card["blocks"] if b["type"] == "header")["text"]["text"]
    return int(header.rsplit("#", 1)[1])


def test_a_rule_this_requester_cannot_get_enough_approvers_for_is_refused_when_filed(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Rotations need 2 approvals from `pair` (the developer and one admin); the requester never
    counts, so the developer's rotation could only expire: it is refused at once, saying why,
    and nothing is filed."""
    created = _secret_app(cloud, bot, slack, "pair-rotated")
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    ask_rotation(slack, DEVELOPER, created.client_id or "")  # the Rotate secret form, submitted
    answer = wait_until(lambda: cloud.slack.responses(DEVELOPER), what="the answer")[-1]["body"]
    assert "rule 4 needs 2 approvals from pair, but only 1 of them can approve a request of yours" in _seen(
        answer
    )
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == before


def test_removing_a_secret_is_the_admins_decision_and_refused_while_it_still_signs_in(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """An app with a secret and (auto-approved) a federated credential; its expiry reminder
    offers Remove secret. The removal card is for the admins (no policy rule), and while the
    secret signed in within the quiet period the approved removal fails saying so — the
    password stays on the app and its vault value stays readable."""
    assert bot.services is not None
    created = _secret_app(cloud, bot, slack, "still-signing-in")
    client_id, key_id = created.client_id or "", created.key_id or ""
    federate = _federate(cloud, slack, client_id)
    assert "Approved by policy: rule 1" in _seen(federate)
    federated = wait_for_status(bot, request_id_of_policy(federate), Status.COMPLETED, Status.FAILED)
    assert federated.status == Status.COMPLETED, federated.error
    app = cloud.graph.app_by_client_id(client_id)
    assert app is not None and len(cloud.graph.federated_credentials(app["id"])) == 1

    clock.advance(timedelta(days=160))
    bot.services.lifecycle.scan()
    reminder = next(
        m for m in cloud.slack.dm_messages(DEVELOPER) if key_id in _seen(m) and "Remove secret" in _seen(m)
    )
    cloud.graph.sign_in_with(key_id, bot.services.store.now() - timedelta(hours=2))

    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert slack.click(DEVELOPER, "Remove secret", message=reminder).status_code == 200
    card = _card_after(cloud, before)
    assert "Secret removal request" in _seen(card) and "Rule" not in _seen(card)
    assert slack.click(DEVELOPER, "Remove secret", message=reminder).status_code == 200  # again
    wait_until(
        lambda: any("is open already" in e.get("text", "") for e in cloud.slack.ephemerals(DEVELOPER)),
        what="the second click told the removal is open",
    )
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == before + 1
    _click(slack, OUTSIDER, card)  # in identity-team, but not an admin
    wait_until(
        lambda: any("admin" in e.get("text", "") for e in cloud.slack.ephemerals(OUTSIDER)),
        what="the non-admin's refusal",
    )
    _click(slack, ADMINS[0], card)
    removal = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert removal.status == Status.FAILED
    assert "still used, so it is kept" in (removal.error or "")
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [key_id]
    assert cloud.vault.value_of(f"oauth-{client_id}") is not None
