"""The tenant's app management policy up front: the form offers only the lifetimes it allows
(and submitting checks them again), a rotation is capped by the app's own policy, a policy that
forbids client secrets points to a federated credential; without Policy.Read.All, as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import Kind, Request, Status
from fakes.clock import ManualClock
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    BOT_CLIENT_ID,
    BOT_CLIENT_SECRET,
    DEVELOPER,
    LEAST_PRIVILEGE,
    FakeCloud,
)
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import (
    FORM,
    approve,
    open_modal,
    request_id_of,
    request_new_app,
    rotation_card,
    wait_for_status,
)

POLICY_READ = [*LEAST_PRIVILEGE, "Policy.Read.All"]
POLICIES = r"^/v1\.0/policies/defaultAppManagementPolicy$"


@pytest.fixture
def roles() -> list[str]:
    return POLICY_READ


@pytest.fixture(autouse=True)
def _bot_roles_and_clean_policies(cloud: FakeCloud, roles: list[str]) -> Iterator[None]:
    """The bot's Graph permissions for this test; the tenant's policies are unconfigured after."""
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, roles)
    yield
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, LEAST_PRIVILEGE)
    cloud.graph.set_tenant_password_policy()
    cloud.graph.app_management.assigned.clear()


@pytest.fixture
def bot_settings(
    _bot_roles_and_clean_policies: None, cloud: FakeCloud, database_path: Path
) -> dict[str, Any]:
    return {"oauth_bot_retry_budget_seconds": 20.0}


def _expiry_block(modal: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in modal["blocks"] if b.get("block_id") == "secret_expiry")


def _offered(modal: dict[str, Any]) -> list[str]:
    return [o["value"] for o in _expiry_block(modal)["element"]["options"]]


def _open_form(slack: SlackDriver, name: str) -> dict[str, Any]:
    assert slack.command(DEVELOPER, "/oauth-app", f"new {name}").status_code == 200
    return open_modal(slack, DEVELOPER)


def test_the_form_offers_only_what_the_tenant_policy_allows_and_the_request_runs(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A tenant default policy of P120D: the form offers 90 and 120 days (120 preselected) and
    says whose limit it is; a 120-day request is approved and Entra accepts the secret."""
    cloud.graph.set_tenant_password_policy(max_lifetime="P120D")
    modal = _open_form(slack, "capped-app")
    assert _offered(modal) == ["90", "120"]
    expiry = _expiry_block(modal)
    assert expiry["element"]["initial_option"]["value"] == "120"
    assert "Your tenant's app management policy allows at most 120 days" in expiry["hint"]["text"]
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert slack.submit(DEVELOPER, modal, {"Justification": FORM["Justification"]}).status_code == 200
    card = wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the approval card",
    )
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    assert request.secret_days == 120


def test_submitting_checks_the_policy_again(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """The form was opened before the tenant set P90D; once the hour's cache is over, submitting
    180 days is refused with a field error naming the tenant's policy (nothing is filed)."""
    modal = _open_form(slack, "late-policy-app")
    assert "180" in _offered(modal)
    cloud.graph.set_tenant_password_policy(max_lifetime="P90D")
    clock.advance(timedelta(hours=1, minutes=1))
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    response = slack.submit(
        DEVELOPER, modal, {"Justification": FORM["Justification"], "Secret expiry": "180 days (6 months)"}
    )
    assert response.json()["response_action"] == "errors"
    error = response.json()["errors"]["secret_expiry"]
    assert "The longest lifetime allowed is 90 days (3 months)" in error
    assert "the tenant's default app management policy allows no longer" in error
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == before


def test_the_policy_is_read_once_an_hour(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """Opening the form twice within the hour reads the tenant's policy once; after an hour, again."""
    before = len(cloud.graph.calls_to("GET", POLICIES))
    for name in ("cache-one", "cache-two"):
        _open_form(slack, name)
        slack.close(DEVELOPER, open_modal(slack, DEVELOPER))
    assert len(cloud.graph.calls_to("GET", POLICIES)) - before == 1
    clock.advance(timedelta(hours=1, seconds=1))
    _open_form(slack, "cache-three")
    assert len(cloud.graph.calls_to("GET", POLICIES)) - before == 2


def test_a_slow_policy_read_does_not_hold_the_form_up(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Graph takes 2 s to answer the policy (Slack's trigger lasts 3 s): the form opens without
    the cap; the read still completes and fills the cache, so the next form is capped."""
    cloud.graph.set_tenant_password_policy(max_lifetime="P90D")
    cloud.graph.latency(2.0, "GET", POLICIES)
    assert "180" in _offered(_open_form(slack, "slow-policy-app"))
    slack.close(DEVELOPER, open_modal(slack, DEVELOPER))
    assert bot.services is not None
    wait_until(
        lambda: bot.services is not None and bot.services.tenant_limits.for_form().max_days == 90,
        what="the read",
    )
    assert _offered(_open_form(slack, "slow-policy-app")) == ["90"]


def test_a_403_from_graph_leaves_the_form_as_before(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """The role is in the token but Graph refuses the policy (403, e.g. consent revoked since):
    every lifetime is offered, as without the permission."""
    cloud.graph.set_tenant_password_policy(max_lifetime="P90D")
    denied = {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}}
    cloud.graph.inject("GET", POLICIES, status=403, body=denied)
    assert _offered(_open_form(slack, "refused-policy-app")) == ["90", "180", "365"]


def test_a_policy_that_forbids_client_secrets_points_to_a_federated_credential(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An enabled passwordAddition restriction: the form says so under Secret expiry, and
    submitting is refused there with the same advice (nothing is filed)."""
    cloud.graph.set_tenant_password_policy(block_passwords=True)
    modal = _open_form(slack, "no-secret-app")
    assert "Ask for a federated credential instead" in _expiry_block(modal)["hint"]["text"]
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    response = slack.submit(DEVELOPER, modal, {"Justification": FORM["Justification"]})
    error = response.json()["errors"]["secret_expiry"]
    assert "does not allow client secrets on new apps" in error and "federated credential" in error
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == before


def _new_app(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str) -> Request:
    request = approve(slack, cloud, bot, request_new_app(slack, DEVELOPER, name), ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request


def test_a_rotation_is_capped_by_the_apps_own_policy_and_says_so(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """The tenant allows a year, the app's own policy 30 days (it overrides the tenant's): the
    rotation asks for 30 days, the card and the DM say which policy capped it, Entra accepts."""
    cloud.graph.set_tenant_password_policy(max_lifetime="P365D")
    created = _new_app(cloud, bot, slack, "app-policy-app")
    assert created.secret_days == 180
    cloud.graph.assign_app_policy(created.object_id or "", "Short secrets for payments", max_lifetime="P30D")
    card = rotation_card(slack, DEVELOPER, created.client_id or "")
    note = "capped at 30 days by the app management policy 'Short secrets for payments'"
    assert f"30 days, {note}" in json.dumps(card["blocks"])
    slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL)
    rotated = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert rotated.status == Status.COMPLETED, rotated.error
    assert rotated.secret_days == 30 and rotated.lifetime_note == note
    ends = {p["keyId"]: p["endDateTime"] for p in cloud.graph.passwords(created.object_id or "")}
    assert rotated.secret_end is not None and rotated.key_id in ends
    dm = wait_until(
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{rotated.id} is done" in m.get("text", "")
        ],
        what="the rotation DM",
    )
    assert note in json.dumps(dm[-1]["blocks"])


def test_an_app_whose_policy_forbids_secrets_is_not_rotated(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An app whose own policy blocks passwordAddition: /oauth-secret rotate says to use a
    federated credential, and no request is filed."""
    created = _new_app(cloud, bot, slack, "blocked-rotation-app")
    cloud.graph.assign_app_policy(created.object_id or "", "No secrets", block_passwords=True)
    before = len(cloud.slack.responses(DEVELOPER))
    assert slack.command(DEVELOPER, "/oauth-secret", f"rotate {created.client_id}").status_code == 200
    answer = wait_until(
        lambda: len(cloud.slack.responses(DEVELOPER)) > before and cloud.slack.responses(DEVELOPER)[-1],
        what="the answer",
    )
    assert "does not allow client secrets on blocked-rotation-app" in json.dumps(answer["body"])
    assert "federated credential" in json.dumps(answer["body"])
    assert bot.services is not None
    filed = bot.services.store.requests_by(DEVELOPER, statuses=list(Status))
    assert [r for r in filed if r.kind == Kind.ROTATE and r.client_id == created.client_id] == []


class TestWithoutPolicyReadAll:
    @pytest.fixture
    def roles(self) -> list[str]:
        return LEAST_PRIVILEGE

    def test_the_form_is_as_before_and_entras_refusal_is_explained(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
    ) -> None:
        """Without Policy.Read.All the policy is never asked for: every lifetime up to
        OAUTH_BOT_MAX_SECRET_DAYS is offered, and Entra's CredentialInvalidLifetimeAsPerAppPolicy
        fails the request with the message asking for a shorter Secret expiry."""
        cloud.graph.set_tenant_password_policy(max_lifetime="P90D")
        before = len(cloud.graph.calls_to("GET", POLICIES))
        modal = _open_form(slack, "unread-policy-app")
        assert _offered(modal) == ["90", "180", "365"]
        assert _expiry_block(modal)["hint"]["text"] == "Policy allows at most 365 days (12 months)."
        slack.close(DEVELOPER, modal)
        card = request_new_app(
            slack, DEVELOPER, "unread-policy-app", **{"Secret expiry": "180 days (6 months)"}
        )
        request = approve(slack, cloud, bot, card, ADMINS[0])
        assert request.status == Status.FAILED
        assert "shorter Secret expiry" in (request.error or "")
        assert len(cloud.graph.calls_to("GET", POLICIES)) == before
