"""The approval policy end to end (OAUTH_BOT_POLICY_FILE): N distinct approvers from a Slack
user group, approval by policy, the policy's cap on lifetimes, and the reminders to approvers
that have not decided, driven by the bot's clock. Signed Slack requests over HTTP, the fakes
behind."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.core.model import Status
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, OUTSIDER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import approve, ask_rotation, open_modal, request_id_of, request_new_app, wait_for_status
from tests.e2e.test_serve import _cli

IDENTITY_TEAM = "S0IDENTITY"
GONE = "U0GONE0001"  # an approver who left the workspace
MULTITENANT = "Accounts in any organizational directory (multitenant)"
POLICY = f"""
approvers:
  identity-team: {{usergroup: {IDENTITY_TEAM}}}
  leads: {{users: [{ADMINS[1]}, {GONE}]}}
  trusted: {{users: [{OUTSIDER}]}}
rules:
  - match: {{kind: new_app, account_types: [multitenant]}}
    approvers: identity-team
    approvals: 2
  - match: {{kind: new_app, lifetime_days_at_most: 90, requester_in: trusted}}
    auto: true
  - match: {{kind: new_app, account_types: [personal]}}
    approvers: leads
    approvals: 1
    max_days: 90
  - match: {{kind: rotation}}
    approvers: leads
    max_days: 90
  - match: {{}}
    approvers: leads
    approvals: 1
"""


@pytest.fixture
def bot_settings(tmp_path: Path) -> dict[str, Any]:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return {"oauth_bot_retry_budget_seconds": 20.0, "oauth_bot_policy_file": str(policy)}


@pytest.fixture(autouse=True)
def identity_team(cloud: FakeCloud) -> Iterator[None]:
    """The user group: the first admin, the outsider and the developer (who files the requests)."""
    cloud.slack.add_usergroup(IDENTITY_TEAM, "identity-team", [ADMINS[0], OUTSIDER, DEVELOPER])
    if cloud.slack.user(GONE) is None:
        cloud.slack.add_user(GONE, "gone.lead", deleted=True)
    yield


def _card(cloud: FakeCloud, card: dict[str, Any]) -> dict[str, Any]:
    """The card as it is now."""
    current = cloud.slack.message(APPROVAL_CHANNEL, card["ts"])
    assert current is not None
    return current


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"])


def _buttons(message: dict[str, Any]) -> list[str]:
    return [e["text"]["text"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def _ephemerals(cloud: FakeCloud, user: str) -> list[str]:
    return [e.get("text", "") for e in cloud.slack.ephemerals(user)]


def _click(slack: SlackDriver, user: str, card: dict[str, Any], button: str = "Approve") -> None:
    assert slack.click(user, button, message=card, channel=APPROVAL_CHANNEL).status_code == 200


def _actions(bot: BackgroundBot, request_id: int) -> list[str]:
    assert bot.services is not None
    return [e.action for e in bot.services.store.audit_events(request_id=request_id)]


def test_two_approvers_from_a_user_group_each_counted_once_and_it_runs_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A multitenant app needs 2 approvals from identity-team (a Slack user group). The card says
    so; the requester (in the group) cannot approve; an admin outside the group is refused with
    an ephemeral; one member's approval leaves it pending at 1 of 2, and the same member again
    counts once; a second member's approval runs it: one app, one secret, and the audit log names
    the rule and both approvers."""
    card = request_new_app(slack, DEVELOPER, "two-approvers", **{"Supported account types": MULTITENANT})
    request_id = request_id_of(card)
    assert "Rule 1: new apps for multitenant accounts need 2 approvals from identity-team" in _text(card)
    assert "Approvals: 0 of 2" in _text(card)

    _click(slack, DEVELOPER, card)
    wait_until(lambda: any("your own request" in t for t in _ephemerals(cloud, DEVELOPER)), what="refusal")
    _click(slack, ADMINS[1], card)
    wait_until(
        lambda: any(
            f"Only identity-team can approve request #{request_id}" in t
            for t in _ephemerals(cloud, ADMINS[1])
        ),
        what="the non-member's refusal",
    )

    _click(slack, ADMINS[0], card)
    wait_until(lambda: "Approvals: 1 of 2" in _text(_card(cloud, card)), what="the card at 1 of 2")
    assert any("1 of 2 approvals; 1 more is needed" in t for t in _ephemerals(cloud, ADMINS[0]))
    _click(slack, ADMINS[0], card)
    wait_until(
        lambda: any("approved request" in t and "already" in t for t in _ephemerals(cloud, ADMINS[0])),
        what="the second click's answer",
    )
    assert bot.services is not None
    store = bot.services.store
    assert store.get_request(request_id).status == Status.PENDING
    assert [a.approver_id for a in store.approvals(request_id)] == [ADMINS[0]]
    assert "Approvals: 1 of 2" in _text(_card(cloud, card))

    _click(slack, OUTSIDER, card)
    request = wait_for_status(bot, request_id, Status.COMPLETED, Status.FAILED)
    assert request.status == Status.COMPLETED, request.error
    apps = [a for a in cloud.graph.apps() if a["displayName"] == "two-approvers"]
    assert len(apps) == 1 and len(cloud.graph.passwords(apps[0]["id"])) == 1
    wait_until(lambda: "done" in _text(_card(cloud, card)), what="the card to say done")
    final = _text(_card(cloud, card))
    assert ADMINS[0] in final and OUTSIDER in final and not _buttons(_card(cloud, card))

    actions = _actions(bot, request_id)
    assert actions.count("request.approval") == 1 and actions.count("request.approved") == 1
    events = store.audit_events(request_id=request_id)
    approved = next(e for e in events if e.action == "request.approved")
    assert approved.actor == OUTSIDER
    assert approved.detail["rule"] == 1 and approved.detail["approvers"] == [ADMINS[0], OUTSIDER]
    first = next(e for e in events if e.action == "request.approval")
    assert first.actor == ADMINS[0] and first.detail["approvals"] == 1 and first.detail["needed"] == 2
    assert next(e for e in events if e.action == "request.submitted").detail["rule"] == 1


def test_a_user_group_is_read_with_the_usergroups_read_scope_and_a_deny_ends_it(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Without usergroups:read Slack refuses usergroups.users.list (missing_scope): the approver
    is told what the app lacks and nothing is counted. With it, any member may deny, which ends
    the request at once (after one approval of two)."""
    card = request_new_app(slack, DEVELOPER, "denied-by-one", **{"Supported account types": MULTITENANT})
    request_id = request_id_of(card)
    cloud.slack.bot_scopes.discard("usergroups:read")
    _click(slack, OUTSIDER, card)
    wait_until(
        lambda: any("usergroups:read" in t for t in _ephemerals(cloud, OUTSIDER)), what="the scope hint"
    )
    assert bot.services is not None and bot.services.store.approvals(request_id) == []
    calls = cloud.slack.api_calls("usergroups.users.list")
    assert calls and calls[-1]["error"] == "missing_scope"

    cloud.slack.bot_scopes.add("usergroups:read")
    _click(slack, OUTSIDER, card)
    wait_until(lambda: "Approvals: 1 of 2" in _text(_card(cloud, card)), what="one approval")
    _click(slack, ADMINS[0], card, "Deny")
    modal = open_modal(slack, ADMINS[0])
    assert slack.submit(ADMINS[0], modal, {"Reason": "Multitenant is not needed"}).status_code == 200
    request = wait_for_status(bot, request_id, Status.DENIED)
    assert request.approver_id == ADMINS[0]
    assert _actions(bot, request_id).count("request.denied") == 1


def test_a_rule_with_auto_approves_by_policy_and_posts_the_card_for_the_record(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A short-lived app asked for by someone in `trusted` is approved by policy (rule 2): nobody
    clicks, it runs, the card says "Approved by policy: rule 2" without buttons, and the audit
    log's approval is the policy's, with the rule."""
    card = request_new_app(slack, OUTSIDER, "auto-approved", **{"Secret expiry": "90 days (3 months)"})
    assert not _buttons(card)
    assert bot.services is not None
    store = bot.services.store
    (request,) = store.requests_by(OUTSIDER, statuses=list(Status))
    request = wait_for_status(bot, request.id, Status.COMPLETED, Status.FAILED)
    assert request.status == Status.COMPLETED, request.error
    wait_until(lambda: "done" in _text(_card(cloud, card)), what="the card to say done")
    assert "Approved by policy: rule 2" in _text(_card(cloud, card))
    approved = next(e for e in store.audit_events(request_id=request.id) if e.action == "request.approved")
    assert approved.actor == "policy" and approved.detail["rule"] == 2 and approved.detail["auto"] is True
    assert [a for a in cloud.graph.apps() if a["displayName"] == "auto-approved"]


def test_the_rule_s_max_days_caps_the_lifetime_at_submit_with_a_field_error(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Rule 3 allows personal-account apps 90 days at most: 180 days is refused on the form's
    expiry field, naming the rule, and nothing is filed; 90 days is filed under rule 3."""
    assert slack.command(DEVELOPER, "/oauth-app", "new personal-app").status_code == 200
    modal = open_modal(slack, DEVELOPER)
    values: dict[str, object] = {
        "Supported account types": "Personal Microsoft accounts only",
        "Secret expiry": "180 days (6 months)",
        "Justification": "Consumer sign-in",
    }
    response = slack.submit(DEVELOPER, modal, values)
    errors = response.json()["errors"]
    assert "at most 90 days" in errors["secret_expiry"] and "Rule 3" in errors["secret_expiry"]
    assert bot.services is not None
    assert bot.services.store.requests_by(DEVELOPER, statuses=list(Status)) == []
    modal = open_modal(slack, DEVELOPER)
    assert (
        slack.submit(DEVELOPER, modal, {**values, "Secret expiry": "90 days (3 months)"}).status_code == 200
    )
    (request,) = wait_until(lambda: bot.services and bot.services.store.requests_by(DEVELOPER), what="filed")
    assert request.rule_number == 3 and request.approver_set == "leads"


def test_approvers_are_reminded_once_then_the_admins_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """After OAUTH_BOT_APPROVER_REMINDER_HOURS (24) pending, the scheduled job replies once in the
    card's thread naming the approvers (the user group; for a list of users, those still in
    the workspace) and tells the requester when the request expires; as long again later it
    replies once naming the admins. More runs of the job send nothing more."""
    group_card = request_new_app(slack, DEVELOPER, "remind-group", **{"Supported account types": MULTITENANT})
    users_card = request_new_app(slack, DEVELOPER, "remind-users")
    assert bot.services is not None
    scheduler, store = bot.services.scheduler, bot.services.store

    def replies(card: dict[str, Any]) -> list[dict[str, Any]]:
        return [m for m in cloud.slack.messages(APPROVAL_CHANNEL) if m.get("thread_ts") == card["ts"]]

    clock.advance(timedelta(hours=23))
    scheduler.tick()
    assert replies(group_card) == [] and replies(users_card) == []

    clock.advance(timedelta(hours=2))
    scheduler.tick()
    (group_reminder,) = replies(group_card)
    assert {"type": "usergroup", "usergroup_id": IDENTITY_TEAM} in group_reminder["blocks"][0]["elements"][0][
        "elements"
    ]
    (users_reminder,) = replies(users_card)
    assert ADMINS[1] in _text(users_reminder) and GONE not in _text(users_reminder)
    waiting = [
        m for m in cloud.slack.dm_messages(DEVELOPER) if "still waiting for approval" in m.get("text", "")
    ]
    assert len(waiting) == 2 and "expires" in waiting[0]["text"]

    for _ in range(2):
        clock.advance(timedelta(minutes=10))
        scheduler.tick()
    assert len(replies(group_card)) == 1 and len(replies(users_card)) == 1

    clock.advance(timedelta(hours=24))
    scheduler.tick()
    clock.advance(timedelta(minutes=10))
    scheduler.tick()
    for card in (group_card, users_card):
        reminder, escalation = replies(card)
        assert "waiting for approval" in _text(reminder)
        assert "over to the oauth-bot admins" in _text(escalation)
        assert all(admin in _text(escalation) for admin in ADMINS)
        actions = _actions(bot, request_id_of(card))
        assert actions.count("request.reminded") == 1 and actions.count("request.escalated") == 1
    assert store.get_request(request_id_of(group_card)).status == Status.PENDING


def test_audit_export_has_the_rule_each_approver_the_reminders_and_every_ending(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    clock: ManualClock,
    database_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`oauth-bot audit export` holds, per request: the rule it was filed under; each approval
    and the final one naming every approver; the reminder and the escalation; and the requests
    that ended without running: denied, cancelled and expired."""
    approved_card = request_new_app(
        slack, DEVELOPER, "audit-approved", **{"Supported account types": MULTITENANT}
    )
    denied_card = request_new_app(slack, DEVELOPER, "audit-denied")
    cancelled_card = request_new_app(slack, DEVELOPER, "audit-cancelled")
    expired_card = request_new_app(slack, DEVELOPER, "audit-expired")
    ids = {
        name: request_id_of(card)
        for name, card in (
            ("approved", approved_card),
            ("denied", denied_card),
            ("cancelled", cancelled_card),
            ("expired", expired_card),
        )
    }

    _click(slack, ADMINS[0], approved_card)
    wait_until(lambda: "Approvals: 1 of 2" in _text(_card(cloud, approved_card)), what="one approval")
    _click(slack, OUTSIDER, approved_card)
    wait_for_status(bot, ids["approved"], Status.COMPLETED)
    _click(slack, ADMINS[1], denied_card, "Deny")
    assert slack.submit(ADMINS[1], open_modal(slack, ADMINS[1]), {"Reason": "Not now"}).status_code == 200
    wait_for_status(bot, ids["denied"], Status.DENIED)
    confirmation = wait_until(
        lambda: [
            m
            for m in cloud.slack.dm_messages(DEVELOPER)
            if f"#{ids['cancelled']} is waiting" in m.get("text", "")
        ],
        what="the confirmation DM",
    )[-1]
    slack.click(DEVELOPER, "Cancel request", message=confirmation)
    wait_for_status(bot, ids["cancelled"], Status.CANCELLED)
    assert bot.services is not None
    for hours in (25, 25):
        clock.advance(timedelta(hours=hours))
        bot.services.scheduler.tick()
    clock.advance(timedelta(days=6))
    assert bot.services.intake.expire_stale() == [ids["expired"]]

    exported = tmp_path / "audit.jsonl"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database_path}")
    assert cli.main(["audit", "export", "--format", "jsonl", "--output", str(exported)]) == 0
    events = [json.loads(line) for line in exported.read_text().splitlines()]

    def of(name: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(e["actor"], e["action"], e["detail"]) for e in events if e["request_id"] == ids[name]]

    submitted = [d for _, action, d in of("approved") if action == "request.submitted"]
    assert submitted[0]["rule"] == 1 and submitted[0]["rule_text"].startswith(
        "Rule 1: new apps for multitenant"
    )
    approval = [(actor, d) for actor, action, d in of("approved") if action == "request.approval"]
    assert approval == [(ADMINS[0], {"rule": 1, "approvals": 1, "needed": 2})]
    (final,) = [(actor, d) for actor, action, d in of("approved") if action == "request.approved"]
    assert final[0] == OUTSIDER and final[1]["approvers"] == [ADMINS[0], OUTSIDER] and final[1]["rule"] == 1
    assert ("request.denied", ADMINS[1]) in [(a, actor) for actor, a, _ in of("denied")]
    assert ("request.cancelled", DEVELOPER) in [(a, actor) for actor, a, _ in of("cancelled")]
    expired = [(actor, action) for actor, action, _ in of("expired")]
    assert [a for _, a in expired].count("request.reminded") == 1
    assert [a for _, a in expired].count("request.escalated") == 1
    assert ("oauth-bot", "request.expired") in expired
    reminded = next(d for _, a, d in of("expired") if a == "request.reminded")
    assert reminded == {"rule": 5, "users": [ADMINS[1]], "usergroup": None}


def test_doctor_reads_the_policy_s_user_groups_and_names_the_missing_scope(
    cloud: FakeCloud, tmp_path: Path, bot_settings: dict[str, Any]
) -> None:
    """`oauth-bot doctor` says how many rules the policy has and reads each approver user group;
    without usergroups:read that check fails naming the scope."""
    env = {
        **os.environ,
        **cloud.environment(f"sqlite:///{tmp_path / 'doctor.db'}"),
        "OAUTH_BOT_POLICY_FILE": bot_settings["oauth_bot_policy_file"],
    }
    assert _cli("migrate", env=env, cwd=tmp_path).returncode == 0
    ok = _cli("doctor", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"ok    approval policy: {bot_settings['oauth_bot_policy_file']}: 5 rule(s)" in ok.stdout
    assert f"user groups readable: {IDENTITY_TEAM} (3 members)" in ok.stdout
    cloud.slack.bot_scopes.discard("usergroups:read")
    bad = _cli("doctor", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAIL  approval policy" in bad.stdout and "usergroups:read" in bad.stdout


def test_a_rotation_gets_its_rule_s_approvers_and_lifetime_cap(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Rule 4 gives rotations to `leads`, 90 days at most: `/oauth-secret rotate` (its form) files
    a rotation of 90 days (not the preselected 180), the requester is told whose approval it
    waits for, the card shows the rule, and the lead's approval rotates it with a 90-day secret."""
    created = approve(slack, cloud, bot, request_new_app(slack, DEVELOPER, "rotated-by-rule"), ADMINS[1])
    assert created.status == Status.COMPLETED, created.error
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    ask_rotation(slack, DEVELOPER, created.client_id or "")  # the Rotate secret form, submitted
    answer = wait_until(lambda: cloud.slack.responses(DEVELOPER), what="the answer")[-1]
    assert "waiting for approval by leads (1 needed)" in json.dumps(answer["body"])
    card = wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the rotation card",
    )
    assert "Rule 4: rotations need 1 approval from leads; secrets last at most 90 days" in _text(card)
    assert bot.services is not None
    rotation = bot.services.store.get_request(request_id_of(card))
    assert rotation.secret_days == 90 and rotation.rule_number == 4
    done = approve(slack, cloud, bot, card, ADMINS[1])
    assert done.status == Status.COMPLETED, done.error
    assert done.secret_end is not None and done.created_at is not None
    assert 89 <= (done.secret_end - done.created_at).days <= 90


def test_policy_explain_asks_slack_for_the_requester_s_user_groups(
    cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With SLACK_BOT_TOKEN set, `policy explain` reads the user group through
    usergroups.users.list: a member hits the requester_in rule, a non-member the next one."""
    policy = tmp_path / "groups.yml"
    policy.write_text(
        f"approvers:\n  identity-team: {{usergroup: {IDENTITY_TEAM}}}\nrules:\n"
        "  - {match: {requester_in: identity-team}, auto: true}\n  - {match: {}}\n"
    )
    for name, value in cloud.environment("sqlite://").items():
        if name.startswith("SLACK_") or name in ("SSL_CERT_FILE", "OAUTH_BOT_ADMINS"):
            monkeypatch.setenv(name, value)
    assert cli.main(["policy", "explain", "--file", str(policy), "--requester", DEVELOPER]) == 0
    out = capsys.readouterr().out
    assert "Applies: Rule 1: requests from members of identity-team are approved by policy." in out
    assert "as Slack says now" in out
    assert cli.main(["policy", "explain", "--file", str(policy), "--requester", ADMINS[1]]) == 0
    out = capsys.readouterr().out
    assert "Rule 1 does not apply: the requester is not in identity-team." in out and "Applies: Rule 2" in out
    assert cloud.slack.api_calls("usergroups.users.list")
