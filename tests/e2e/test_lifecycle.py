"""Rotation, grace periods, verification, lists, the expiry scan and the App Home, end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.core.model import Kind, ManagedApp, Request, Status
from bot.core.validation import AUDIENCE_LABELS
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, BOT_CLIENT_ID, DEVELOPER, OUTSIDER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import (
    approve,
    ask_rotation,
    request_id_of,
    request_new_app,
    request_rotation,
    rotation_form,
    wait_for_status,
)


def _services(bot: BackgroundBot) -> Any:
    assert bot.services is not None
    return bot.services


def _new_app(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str, **fields: Any) -> Request:
    card = request_new_app(slack, DEVELOPER, name, **fields)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request


def _rotation_card(cloud: FakeCloud, before: int) -> dict[str, Any]:
    return wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the rotation card",
    )


def _rotate(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, client_id: str, *, button: str = "Approve"
) -> Request:
    card = request_rotation(slack, DEVELOPER, client_id)
    assert "Secret rotation request" in json.dumps(card["blocks"])
    slack.click(ADMINS[1], button, message=card, channel=APPROVAL_CHANNEL)
    return wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)


def _answer(cloud: FakeCloud, slack: SlackDriver, user: str, command: str, text: str) -> str:
    """Run a slash command and return what the bot answered (ack or response_url), as JSON text."""
    before = len(cloud.slack.responses(user))
    assert slack.command(user, command, text).status_code == 200
    responses = wait_until(
        lambda: len(cloud.slack.responses(user)) > before and cloud.slack.responses(user),
        what=f"an answer to {user}",
    )
    return json.dumps(responses[-1]["body"])


def test_owner_rotation_approved_by_an_admin_then_the_old_secret_retires(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """A new secret is added next to the old one, its value becomes a new vault version (and is
    nowhere in Slack), the DM names the new Secret ID; after the 7-day grace period the old
    password is removed and the owner is told."""
    created = _new_app(cloud, bot, slack, "rotating-app")
    client_id = created.client_id or ""
    request = _rotate(cloud, bot, slack, client_id)
    assert request.status == Status.COMPLETED, request.error

    app = cloud.graph.app_by_client_id(client_id)
    assert app is not None
    passwords = cloud.graph.passwords(app["id"])
    assert {p["keyId"] for p in passwords} == {created.key_id, request.key_id}
    versions = cloud.vault.versions(f"oauth-{client_id}")
    assert len(versions) == 2
    newest = versions[-1]
    assert newest["tags"]["secret-id"] == request.key_id
    assert cloud.graph.check_secret(client_id, newest["value"])
    assert newest["value"] not in cloud.slack.all_text()

    dm = wait_until(
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request.id} is done" in m.get("text", "")
        ],
        what="the rotation DM",
    )[-1]
    text = json.dumps(dm["blocks"])
    assert (request.key_id or "") in text and "Your client secret is ready" in text
    assert "yes, a token was issued with it" in text
    assert "stays valid for 7 more days" in text

    services = _services(bot)
    clock.advance(timedelta(days=6))
    assert services.lifecycle.retire_due() == []
    clock.advance(timedelta(days=1, minutes=1))
    retired = services.lifecycle.retire_due()
    assert [r.key_id for r in retired] == [created.key_id]
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [request.key_id]
    wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "was removed" in m.get("text", "")],
        what="the owner's retirement DM",
    )
    actions = [e.action for e in services.store.audit_events() if e.client_id == client_id]
    assert "secret.retiring" in actions and actions[-1] == "secret.removed"


def test_approve_with_remove_now_retires_the_old_secret_at_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """The card's 'remove old secret now' option leaves only the new secret once it is ready."""
    created = _new_app(cloud, bot, slack, "rotate-now-app")
    request = _rotate(cloud, bot, slack, created.client_id or "", button="Approve, remove old secret now")
    assert request.status == Status.COMPLETED
    _services(bot).lifecycle.retire_due()
    app = cloud.graph.app_by_client_id(created.client_id or "")
    assert app is not None
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [request.key_id]


def test_rotation_is_refused_for_non_owners_and_unmanaged_apps(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Someone who is neither owner nor admin, and an app the bot did not create, get a clear
    refusal; nothing is filed."""
    created = _new_app(cloud, bot, slack, "guarded-app")
    assert "Only the owners of guarded-app" in _answer(
        cloud, slack, OUTSIDER, "/oauth-secret", f"rotate {created.client_id}"
    )
    foreign = cloud.graph.seed_apps(1, owner_appid="some-other-tool", tag=None)[0]
    foreign_client_id = next(a["appId"] for a in cloud.graph.apps() if a["id"] == foreign)
    assert "only rotates secrets of the app registrations it created" in _answer(
        cloud, slack, DEVELOPER, "/oauth-secret", f"rotate {foreign_client_id}"
    )
    assert [r.kind for r in _services(bot).store.requests_in([Status.PENDING])] == []


def test_owner_self_rotation_needs_no_approval_when_allowed(
    cloud: FakeCloud, database_path: Any, clock: ManualClock
) -> None:
    """With OAUTH_BOT_OWNER_SELF_ROTATE, an owner's rotation runs at once, with no card."""
    from fakes.cloud import SIGNING_SECRET

    settings = cloud.settings(f"sqlite:///{database_path}", oauth_bot_owner_self_rotate=True)
    with (
        BackgroundBot(settings, clock=clock) as bot,
        SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
    ):
        created = _new_app(cloud, bot, slack, "self-service-app")
        cards = len(cloud.slack.messages(APPROVAL_CHANNEL))
        ask_rotation(slack, DEVELOPER, created.client_id or "")
        request = wait_until(
            lambda: [
                r
                for r in _services(bot).store.requests_by(DEVELOPER, statuses=[Status.COMPLETED])
                if r.kind == "rotate"
            ],
            what="the self-service rotation",
        )[0]
        assert request.approver_id == DEVELOPER
        assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == cards


def test_verification_waits_for_replication_then_reports_verified(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """While the token endpoint still rejects the new secret (2 s of replication) the bot keeps
    asking; then it reports the secret verified."""
    created = _new_app(cloud, bot, slack, "replicating-app")
    cloud.graph.secret_propagation_delay = 2.0
    try:
        request = _rotate(cloud, bot, slack, created.client_id or "")
    finally:
        cloud.graph.secret_propagation_delay = 0.0
    assert request.verified is True
    attempts = [c for c in cloud.entra.token_requests() if c.form().get("client_id") == created.client_id]
    assert len(attempts) >= 2
    assert all((c.form().get("client_secret") or "") not in cloud.slack.all_text() for c in attempts)


class TestWithAShortVerificationBudget:
    @pytest.fixture
    def bot_settings(self) -> dict[str, Any]:
        return {"oauth_bot_retry_budget_seconds": 20.0, "oauth_bot_verify_budget_seconds": 2.0}

    def test_verification_that_never_succeeds_says_not_verified_yet(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
    ) -> None:
        """A secret the token endpoint never accepts within the budget: the DM says 'not verified yet'."""
        created = _new_app(cloud, bot, slack, "unverified-app")
        cloud.graph.reject_all_app_secrets = True
        try:
            request = _rotate(cloud, bot, slack, created.client_id or "")
        finally:
            cloud.graph.reject_all_app_secrets = False
        assert request.status == Status.COMPLETED and request.verified is False
        dm = [m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request.id} is done" in m.get("text", "")][
            -1
        ]
        assert "not verified yet" in json.dumps(dm["blocks"])


def test_two_secret_limit_is_explained_and_the_oldest_can_be_retired_first(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An app for personal accounts holds at most two secrets: a third rotation explains this and
    offers to retire the oldest; doing so completes the rotation with two secrets."""
    created = _new_app(
        cloud,
        bot,
        slack,
        "consumer-app",
        **{"Supported account types": AUDIENCE_LABELS["AzureADandPersonalMicrosoftAccount"]},
    )
    client_id = created.client_id or ""
    assert _rotate(cloud, bot, slack, client_id).status == Status.COMPLETED
    blocked = _rotate(cloud, bot, slack, client_id)
    assert blocked.status == Status.FAILED
    assert "at most 2 client secrets" in (blocked.error or "")
    dm = wait_until(
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{blocked.id} failed" in m.get("text", "")
        ],
        what="the explanation",
    )[-1]
    slack.click(DEVELOPER, "Retire oldest and rotate", message=dm)
    done = wait_for_status(bot, blocked.id, Status.COMPLETED)
    app = cloud.graph.app_by_client_id(client_id)
    assert app is not None
    keys = {p["keyId"] for p in cloud.graph.passwords(app["id"])}
    assert len(keys) == 2 and done.key_id in keys and created.key_id not in keys


def test_lists_show_the_right_apps_to_the_right_people(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Owners see their apps and secrets, admins any app (list all, show), others nothing of it."""
    created = _new_app(cloud, bot, slack, "listed-app")
    client_id = created.client_id or ""
    mine = _answer(cloud, slack, DEVELOPER, "/oauth-app", "list")
    assert (
        "listed-app" in mine and client_id in mine and (created.key_id or "") in mine and "days left" in mine
    )

    assert "listed-app" not in _answer(cloud, slack, OUTSIDER, "/oauth-app", "list")
    assert "not an owner" in _answer(cloud, slack, OUTSIDER, "/oauth-app", f"show {client_id}")
    assert "Only the oauth-bot admins" in _answer(cloud, slack, OUTSIDER, "/oauth-app", "list all")

    assert "listed-app" in _answer(cloud, slack, ADMINS[0], "/oauth-app", "list all")
    shown = _answer(cloud, slack, ADMINS[0], "/oauth-app", f"show {client_id}")
    assert (
        "Microsoft_Azure_KeyVault/Secret" in shown and (created.key_id or "") in shown and DEVELOPER in shown
    )

    assert (created.key_id or "") in _answer(cloud, slack, DEVELOPER, "/oauth-secret", f"list {client_id}")


def test_app_home_shows_apps_requests_and_the_admin_queue(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """The Home tab shows the requester's apps with days left and open requests; an admin also
    sees the approval queue; an outsider sees neither."""
    created = _new_app(cloud, bot, slack, "home-app")
    request_new_app(slack, DEVELOPER, "pending-home-app")
    expected = {
        DEVELOPER: ["home-app", created.client_id or "", "days left", "pending-home-app"],
        ADMINS[1]: ["Approval queue", "pending-home-app"],
        OUTSIDER: ["Your app registrations"],
    }
    for user, needles in expected.items():
        assert slack.home_opened(user).status_code == 200
        wait_until(
            lambda u=user, n=needles: all(x in json.dumps(cloud.slack.home_view(u) or {}) for x in n),  # type: ignore[misc]
            what=f"{user}'s home to show {needles}",
        )
    outsider = json.dumps(cloud.slack.home_view(OUTSIDER))
    assert "home-app" not in outsider and "Approval queue" not in outsider


def test_pending_requests_expire_and_their_cards_say_so(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """After the request lifetime a pending card loses its buttons and says expired; the requester is told."""
    card = request_new_app(slack, DEVELOPER, "stale-app")
    clock.advance(timedelta(days=7, minutes=1))
    _services(bot).worker.poll_once()
    final = wait_until(
        lambda: (m := cloud.slack.message(APPROVAL_CHANNEL, card["ts"])) and "Expired" in json.dumps(m) and m,
        what="the expired card",
    )
    assert not [b for b in final["blocks"] if b["type"] == "actions"]
    wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "expired" in m.get("text", "")],
        what="the requester's notice",
    )


def test_the_scan_reminds_once_per_threshold_and_rotate_now_rotates(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """Over 3,000 managed apps, secrets expiring within 30/14/7/1 days or expired get one DM per
    threshold per secret across repeated scans, admins get a digest, and a reminder's Rotate now
    button leads to a completed rotation."""
    services = _services(bot)
    now = datetime.now(UTC)
    plan = {0: 5.5, 1: 20.5, 2: -3.0, 3: 200.0}  # days left by i % 4 … for the first 40 apps
    ids = cloud.graph.seed_apps(
        3000,
        owner_appid=BOT_CLIENT_ID,
        tag="oauth-bot",
        end_dates=lambda i: now + timedelta(days=plan[i % 4] if i < 40 else 400),
    )
    by_id = {a["id"]: a for a in cloud.graph.apps() if a["id"] in set(ids)}
    origin = services.store.add_request(
        Request(
            uid="seeded",
            kind=Kind.NEW_APP,
            status=Status.COMPLETED,
            requester_id=DEVELOPER,
            display_name="seeded",
            sign_in_audience="AzureADMyOrg",
            secret_description="seeded",
            secret_days=180,
            justification="seeded for the scan test",
            notified=True,
            attempts=0,
        ),
        ttl=timedelta(days=7),
    )
    for object_id in ids:
        app = by_id[object_id]
        services.store.add_managed_app(
            ManagedApp(
                client_id=app["appId"],
                object_id=object_id,
                display_name=app["displayName"],
                sign_in_audience="AzureADMyOrg",
                vault_secret_name=f"oauth-{app['appId']}",
                request_id=origin.id,
            ),
            owners={DEVELOPER: None},
        )
    first = services.lifecycle.scan()
    assert first.apps >= 3000
    assert sorted(r.threshold for r in first.reminders) == [0] * 10 + [7] * 10 + [30] * 10
    assert services.lifecycle.scan().reminders == []  # the same scan again: nothing twice
    clock.advance(timedelta(days=10))  # 20.5 → 10.5 days: threshold 14; 5.5 → expired
    third = services.lifecycle.scan()
    assert sorted(r.threshold for r in third.reminders) == [0] * 10 + [14] * 10
    reminders = [m for m in cloud.slack.dm_messages(DEVELOPER) if "client secret of app" in m.get("text", "")]
    assert len(reminders) == 50
    digests = [
        m for m in cloud.slack.messages(APPROVAL_CHANNEL) if "expiring or expired" in m.get("text", "")
    ]
    assert len(digests) == 2

    reminder = reminders[-1]
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    slack.click(DEVELOPER, "Rotate now", message=reminder)
    slack.submit(DEVELOPER, rotation_form(slack, DEVELOPER), {})
    card = _rotation_card(cloud, before)
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    rotation = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert rotation.status == Status.COMPLETED, rotation.error
    assert cloud.vault.versions(f"oauth-{rotation.client_id}")[-1]["tags"]["secret-id"] == rotation.key_id
