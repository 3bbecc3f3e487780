"""Usage-aware retirement: with AuditLog.Read.All (and Entra ID P1) an old secret that still
signs in is kept and its owners told daily, removed once quiet, and put before an admin at
OAUTH_BOT_MAX_GRACE_DAYS; without the permission or the licence, the timed removal as before."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.core.model import CredentialStatus, Request, RetireState, Status
from bot.doctor import run_doctor
from bot.store.schema import upgrade
from fakes.arm import KEY_VAULT_DATA_ACCESS_ADMINISTRATOR
from fakes.clock import ManualClock
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    BOT_CLIENT_ID,
    BOT_CLIENT_SECRET,
    DEVELOPER,
    LEAST_PRIVILEGE,
    TENANT_ID,
    FakeCloud,
)
from fakes.entra import service_principal_object_id
from fakes.harness import BackgroundBot
from fakes.slack_driver import FORM, SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import approve, request_id_of, request_new_app, rotation_card, wait_for_status

AUDIT_READ = [*LEAST_PRIVILEGE, "AuditLog.Read.All"]
STILL_USED = "The old client secret of app"


@pytest.fixture
def roles() -> list[str]:
    return AUDIT_READ


@pytest.fixture(autouse=True)
def _bot_roles(cloud: FakeCloud, roles: list[str]) -> Iterator[None]:
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, roles)
    yield
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, LEAST_PRIVILEGE)
    cloud.graph.sign_in_log.premium = True


@pytest.fixture
def bot_settings(_bot_roles: None, cloud: FakeCloud, database_path: Path) -> dict[str, Any]:
    return {"oauth_bot_retry_budget_seconds": 20.0}


def _services(bot: BackgroundBot) -> Any:
    assert bot.services is not None
    return bot.services


def _rotated(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str) -> tuple[Request, Request]:
    """A new app, then a rotation approved by an admin: (the new-app request, the rotation)."""
    created = approve(slack, cloud, bot, request_new_app(slack, DEVELOPER, name), ADMINS[0])
    assert created.status == Status.COMPLETED, created.error
    card = rotation_card(slack, DEVELOPER, created.client_id or "")
    slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL)
    rotation = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert rotation.status == Status.COMPLETED, rotation.error
    return created, rotation


def _still_used_dms(cloud: FakeCloud) -> list[dict[str, Any]]:
    return [
        m
        for m in cloud.slack.dm_messages(DEVELOPER)
        if STILL_USED in m.get("text", "") and "kept" in m["text"]
    ]


def _on_app(cloud: FakeCloud, object_id: str) -> set[str]:
    return {p["keyId"] for p in cloud.graph.passwords(object_id)}


def test_a_secret_still_in_use_is_kept_owners_told_daily_then_removed_once_quiet(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """At the end of the grace period the old secret signed in an hour ago: it stays, the owner
    is told when, from which IP and to which resource — once for that day however often the job
    runs; the next day (still used) once more; the day after, quiet for over 24 hours, removed."""
    created, _rotation = _rotated(cloud, bot, slack, "busy-app")
    old, object_id = created.key_id or "", created.object_id or ""
    retirement = _services(bot).lifecycle
    clock.advance(timedelta(days=7, minutes=1))
    cloud.graph.sign_in_with(
        old, clock.now() - timedelta(hours=1), ip="198.51.100.20", resource="Contoso Billing"
    )
    assert retirement.retire_due() == []
    assert retirement.retire_due() == []  # the job runs every minute: no second notice today
    assert old in _on_app(cloud, object_id)
    dms = wait_until(lambda: _still_used_dms(cloud), what="the still-in-use DM")
    text = json.dumps(dms[-1]["blocks"])
    assert old in text and "198.51.100.20" in text and "Contoso Billing" in text
    credential = _services(bot).store.credential(old)
    assert credential.retire_state == RetireState.WATCHING

    clock.advance(timedelta(hours=12))
    assert retirement.retire_due() == [] and len(_still_used_dms(cloud)) == 1
    clock.advance(timedelta(hours=12))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(hours=2))
    assert retirement.retire_due() == []
    wait_until(lambda: len(_still_used_dms(cloud)) == 2, what="the next day's DM")

    clock.advance(timedelta(days=1, hours=1))  # the last sign-in is now 27 hours old
    retired = retirement.retire_due()
    assert [r.key_id for r in retired] == [old]
    assert old not in _on_app(cloud, object_id)
    assert _services(bot).store.credential(old).status == CredentialStatus.REMOVED
    assert retirement.retire_due() == []
    actions = [e.action for e in _services(bot).store.audit_events() if e.client_id == created.client_id]
    assert actions.count("secret.kept_in_use") == 2 and actions[-1] == "secret.removed"
    assert len(_still_used_dms(cloud)) == 2
    removed = wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "was removed" in m.get("text", "")],
        what="the removal DM",
    )
    assert "nothing signed in with it for 24 hours after it was kept in use" in json.dumps(
        removed[-1]["blocks"]
    )


def _decision_cards(cloud: FakeCloud, key_id: str) -> list[dict[str, Any]]:
    return [
        m
        for m in cloud.slack.messages(APPROVAL_CHANNEL)
        if "still in use" in m.get("text", "") and key_id in json.dumps(m.get("blocks"))
    ]


def test_at_the_maximum_grace_an_admin_decides_keep_then_remove(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """Still used 30 days after the planned removal: a card in the approvals channel. The owner
    (not an admin) is refused; Keep 7 more days keeps it (no check before then); still used
    then, a new card; Remove now removes it, once — the old card's button is refused after."""
    created, _rotation = _rotated(cloud, bot, slack, "sticky-app")
    old, object_id = created.key_id or "", created.object_id or ""
    retirement = _services(bot).lifecycle
    clock.advance(timedelta(days=7, minutes=1))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(minutes=30))
    retirement.retire_due()
    clock.advance(timedelta(days=30))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(minutes=30))
    assert retirement.retire_due() == [] and retirement.retire_due() == []
    (card,) = wait_until(lambda: _decision_cards(cloud, old), what="the admins' card")
    assert _services(bot).store.credential(old).retire_state == RetireState.ADMIN

    slack.click(DEVELOPER, "Remove now", message=card, channel=APPROVAL_CHANNEL)
    refusal = wait_until(lambda: cloud.slack.ephemerals(DEVELOPER), what="the refusal")
    assert "Only the oauth-bot admins" in refusal[-1]["text"]
    assert old in _on_app(cloud, object_id)

    slack.click(ADMINS[0], "Keep 7 more days", message=card, channel=APPROVAL_CHANNEL)
    wait_until(
        lambda: _services(bot).store.credential(old).retire_state == RetireState.WATCHING,
        what="the decision",
    )
    wait_until(
        lambda: "kept it until" in json.dumps(cloud.slack.messages(APPROVAL_CHANNEL)),
        what="the card's update",
    )
    clock.advance(timedelta(days=6))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(minutes=30))
    assert retirement.retire_due() == [] and len(_decision_cards(cloud, old)) == 0
    clock.advance(timedelta(days=1, minutes=1))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(minutes=30))
    retirement.retire_due()
    (again,) = wait_until(lambda: _decision_cards(cloud, old), what="the second card")

    # Two admins click Remove now on the same card at once: the second click is answered, not repeated.
    second = slack.click_payload(ADMINS[0], "Remove now", message=again, channel=APPROVAL_CHANNEL)
    slack.click(ADMINS[1], "Remove now", message=again, channel=APPROVAL_CHANNEL)
    wait_until(
        lambda: _services(bot).store.credential(old).status == CredentialStatus.REMOVED, what="the removal"
    )
    assert old not in _on_app(cloud, object_id)
    body = urlencode({"payload": json.dumps(second)}).encode()
    assert slack.post_raw(body, {"Content-Type": FORM, **slack.sign(body)}).status_code == 200
    late = wait_until(lambda: cloud.slack.ephemerals(ADMINS[0]), what="the late click's answer")
    assert "no longer waiting for a decision" in late[-1]["text"]
    events = [e for e in _services(bot).store.audit_events() if e.client_id == created.client_id]
    assert [
        (e.actor, e.action) for e in events if e.action in ("secret.retirement_extended", "secret.removed")
    ] == [
        (ADMINS[0], "secret.retirement_extended"),
        (ADMINS[1], "secret.removed"),
    ]
    assert [e.action for e in events].count("secret.retirement_escalated") == 2


def test_without_an_entra_id_p1_licence_the_secret_is_removed_on_time(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """The report answers 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant: the old
    secret is removed when its grace period ends, although it signed in an hour ago."""
    cloud.graph.sign_in_log.premium = False
    created, _rotation = _rotated(cloud, bot, slack, "no-p1-app")
    old = created.key_id or ""
    clock.advance(timedelta(days=7, minutes=1))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(hours=1))
    before = len(cloud.graph.answers)
    assert [r.key_id for r in _services(bot).lifecycle.retire_due()] == [old]
    asked = [(r.path, status) for r, status in cloud.graph.answers[before:] if r.path.startswith("/beta/")]
    assert asked == [("/beta/reports/appCredentialSignInActivities", 403)]
    assert old not in _on_app(cloud, created.object_id or "")
    assert not _still_used_dms(cloud)


class TestWithoutAuditLogReadAll:
    @pytest.fixture
    def roles(self) -> list[str]:
        return LEAST_PRIVILEGE

    def test_the_secret_is_removed_on_time_and_no_report_is_asked(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
    ) -> None:
        """Without AuditLog.Read.All the bot never asks for sign-in activity: the old secret is
        removed when the grace period ends, as before, even though it signed in recently."""
        created, _rotation = _rotated(cloud, bot, slack, "timed-app")
        old = created.key_id or ""
        clock.advance(timedelta(days=7, minutes=1))
        cloud.graph.sign_in_with(old, clock.now() - timedelta(hours=1))
        before = len(cloud.graph.calls_to("GET", r"^/beta/"))
        assert [r.key_id for r in _services(bot).lifecycle.retire_due()] == [old]
        assert len(cloud.graph.calls_to("GET", r"^/beta/")) == before
        assert old not in _on_app(cloud, created.object_id or "")


def test_two_runs_at_once_tell_the_owners_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """Two retirement runs at the same moment (two replicas' schedulers) find the secret in use:
    the compare-and-set lets one of them keep it, tell the owner and audit it."""
    created, _rotation = _rotated(cloud, bot, slack, "raced-app")
    old = created.key_id or ""
    clock.advance(timedelta(days=7, minutes=1))
    cloud.graph.sign_in_with(old, clock.now() - timedelta(hours=1))
    start = threading.Barrier(2)

    def run() -> list[Any]:
        start.wait()
        return list(_services(bot).lifecycle.retire_due())

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert [result for result in pool.map(lambda _: run(), range(2))] == [[], []]
    wait_until(lambda: _still_used_dms(cloud), what="the DM")
    events = [e.action for e in _services(bot).store.audit_events() if e.client_id == created.client_id]
    assert events.count("secret.kept_in_use") == 1 and len(_still_used_dms(cloud)) == 1


def test_a_secret_claimed_for_removal_before_a_crash_is_removed_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """A run claimed the secret for removal (retire_state removing) and died before Graph was
    called: the next run removes it without asking again, audits it once, and tells the owner."""
    created, _rotation = _rotated(cloud, bot, slack, "claimed-app")
    old, store = created.key_id or "", _services(bot).store
    clock.advance(timedelta(days=7, minutes=1))
    assert store.retire_if(old, expect=None, retire_state=RetireState.REMOVING)
    before = len(cloud.graph.calls_to("GET", r"^/beta/"))
    assert [r.key_id for r in _services(bot).lifecycle.retire_due()] == [old]
    assert _services(bot).lifecycle.retire_due() == []
    assert len(cloud.graph.calls_to("GET", r"^/beta/")) == before
    assert old not in _on_app(cloud, created.object_id or "")
    removed = [
        e for e in store.audit_events() if e.action == "secret.removed" and e.detail.get("key_id") == old
    ]
    assert len(removed) == 1


DOCTOR_CLIENT = ("0b07b07b-0000-4000-8000-0000000000d8", "doctor-optional-secret")


def _doctor(cloud: FakeCloud, tmp_path: Path, roles: list[str]) -> tuple[int, list[str]]:
    """doctor as this identity, which holds the bot's right on the vault (read access is
    another check's subject)."""
    cloud.entra.register_client(*DOCTOR_CLIENT, roles)
    url = f"sqlite:///{tmp_path / 'doctor.db'}"
    upgrade(url)
    settings = cloud.settings(url, azure_client_id=DOCTOR_CLIENT[0], azure_client_secret=DOCTOR_CLIENT[1])
    principal = service_principal_object_id(TENANT_ID, DOCTOR_CLIENT[0])
    right = cloud.arm.grant(principal, KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, cloud.vault_resource_id)
    lines: list[str] = []
    try:
        return run_doctor(settings, out=lines.append), lines
    finally:
        cloud.arm.revoke(right)


def test_doctor_says_what_the_optional_permissions_add_and_what_happens_without(
    cloud: FakeCloud, tmp_path: Path
) -> None:
    """Without Policy.Read.All and AuditLog.Read.All: two notes naming each permission and what
    the bot does instead, and doctor still passes (they are optional). With both, in a tenant
    with a 90-day policy and no Entra ID P1: the limit it read, and a note naming the licence."""
    code, lines = _doctor(cloud, tmp_path, LEAST_PRIVILEGE)
    notes = [line for line in lines if line.startswith("note")]
    assert code == 0 and len(notes) == 2, lines
    assert "Tenant lifetime limits: missing Policy.Read.All (application permission)" in notes[0]
    assert "a lifetime the tenant's app management policy refuses fails after approval" in notes[0]
    assert "Safe retirement: missing AuditLog.Read.All (application permission)" in notes[1]
    assert "removed when their grace period ends, whether or not something still uses them" in notes[1]

    cloud.graph.set_tenant_password_policy(max_lifetime="P90D")
    cloud.graph.sign_in_log.premium = False
    try:
        code, lines = _doctor(cloud, tmp_path, [*LEAST_PRIVILEGE, "Policy.Read.All", "AuditLog.Read.All"])
    finally:
        cloud.graph.set_tenant_password_policy()
    assert code == 0, lines
    (limits,) = [line for line in lines if "Tenant lifetime limits" in line]
    assert limits.startswith("ok    Tenant lifetime limits: client secrets of new apps last at most 90 days")
    (licence,) = [line for line in lines if line.startswith("note  Safe retirement")]
    assert "the tenant has no Microsoft Entra ID P1 licence" in licence
