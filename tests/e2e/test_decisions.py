"""Who may decide, deny with a reason, cancel, and exactly-once approval."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from bot.core.model import Status
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, OUTSIDER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import request_id_of, request_new_app, wait_for_status


def _apps_named(cloud: FakeCloud, name: str) -> list[dict]:
    return [a for a in cloud.graph.apps() if a["displayName"] == name]


def test_non_admin_and_self_approval_are_refused_and_change_nothing(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An outsider's click and an admin clicking Approve on their own request get a clear
    ephemeral refusal; the request stays pending and no app is created."""
    card = request_new_app(slack, OUTSIDER, "refused-app")
    request_id = request_id_of(card)
    slack.click(OUTSIDER, "Approve", message=card, channel=APPROVAL_CHANNEL)
    wait_until(lambda: cloud.slack.ephemerals(OUTSIDER), what="the outsider's refusal")
    assert "Only the oauth-bot admins" in cloud.slack.ephemerals(OUTSIDER)[-1]["text"]

    own = request_new_app(slack, ADMINS[0], "own-app")
    slack.click(ADMINS[0], "Approve", message=own, channel=APPROVAL_CHANNEL)
    wait_until(lambda: cloud.slack.ephemerals(ADMINS[0]), what="the self-approval refusal")
    assert "your own request" in cloud.slack.ephemerals(ADMINS[0])[-1]["text"]

    assert bot.services is not None
    assert bot.services.store.get_request(request_id).status == Status.PENDING
    assert bot.services.store.get_request(request_id_of(own)).status == Status.PENDING
    assert not _apps_named(cloud, "refused-app") and not _apps_named(cloud, "own-app")


def test_deny_asks_for_a_reason_and_dms_it(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver) -> None:
    """Deny opens a reason form; the requester gets the reason, the card says who denied, no app."""
    card = request_new_app(slack, DEVELOPER, "denied-app")
    request_id = request_id_of(card)
    slack.click(ADMINS[1], "Deny", message=card, channel=APPROVAL_CHANNEL)
    modal = wait_until(lambda: cloud.slack.current_modal(ADMINS[1]), what="the reason form")
    assert (
        slack.submit(ADMINS[1], modal, {"Reason": "Use the shared billing app instead."}).status_code == 200
    )
    wait_for_status(bot, request_id, Status.DENIED)
    dm = wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "was denied" in m.get("text", "")],
        what="the denial DM",
    )[-1]
    assert "Use the shared billing app instead." in json.dumps(dm["blocks"])
    final = cloud.slack.message(APPROVAL_CHANNEL, card["ts"])
    assert final is not None and "Denied by" in json.dumps(final["blocks"])
    assert not [b for b in final["blocks"] if b["type"] == "actions"]
    assert not _apps_named(cloud, "denied-app")


def test_the_requester_can_cancel_a_pending_request(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Cancel in the confirmation DM ends the request; the card loses its buttons and says so."""
    card = request_new_app(slack, DEVELOPER, "cancelled-app")
    request_id = request_id_of(card)
    confirmation = wait_until(
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request_id} is waiting" in m.get("text", "")
        ],
        what="the confirmation DM",
    )[-1]
    slack.click(DEVELOPER, "Cancel request", message=confirmation)
    wait_for_status(bot, request_id, Status.CANCELLED)
    final = wait_until(
        lambda: (
            (m := cloud.slack.message(APPROVAL_CHANNEL, card["ts"])) and "Cancelled" in json.dumps(m) and m
        ),
        what="the card to say cancelled",
    )
    assert not [b for b in final["blocks"] if b["type"] == "actions"]
    assert not _apps_named(cloud, "cancelled-app")


def test_double_click_and_two_admins_at_once_execute_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Ten simultaneous Approve clicks from two admins: one app, one password, one DM."""
    card = request_new_app(slack, DEVELOPER, "raced-app")
    request_id = request_id_of(card)
    clickers = [ADMINS[i % 2] for i in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(
            pool.map(
                lambda admin: slack.click(admin, "Approve", message=card, channel=APPROVAL_CHANNEL), clickers
            )
        )
    assert all(r.status_code == 200 for r in responses)
    request = wait_for_status(bot, request_id, Status.COMPLETED)
    assert len(_apps_named(cloud, "raced-app")) == 1
    assert len(cloud.graph.passwords(_apps_named(cloud, "raced-app")[0]["id"])) == 1
    assert len(cloud.vault.versions(f"oauth-{request.client_id}")) == 1
    ready = [m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request_id} is done" in m.get("text", "")]
    assert len(ready) == 1
    assert bot.services is not None
    approvals = [
        e for e in bot.services.store.audit_events(request_id=request_id) if e.action == "request.approved"
    ]
    assert len(approvals) == 1
