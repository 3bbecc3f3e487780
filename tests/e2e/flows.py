"""The steps a person takes in Slack, as reusable test helpers."""

from __future__ import annotations

from typing import Any

from bot.fakes.cloud import APPROVAL_CHANNEL, FakeCloud
from bot.fakes.slack_driver import SlackDriver
from bot.server import BackgroundBot
from bot.store import Request, Status
from tests.e2e.conftest import wait_until

FORM = {
    "Name": "billing-api",
    "Justification": "The billing service reads invoices through Graph.",
}


def request_new_app(slack: SlackDriver, user: str, name: str, **fields: Any) -> dict[str, Any]:
    """/oauth-app new → modal → submit; returns the approval card posted for it."""
    before = len(slack.slack.messages(APPROVAL_CHANNEL))
    response = slack.command(user, "/oauth-app", f"new {name}")
    assert response.status_code == 200, response.text
    modal = open_modal(slack, user)
    submitted = slack.submit(user, modal, {"Justification": FORM["Justification"], **fields})
    assert submitted.status_code == 200, submitted.text
    assert submitted.content in (b"", b"{}") or "errors" not in submitted.json(), submitted.text
    return wait_until(
        lambda: (
            len(slack.slack.messages(APPROVAL_CHANNEL)) > before
            and slack.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the approval card",
    )


def open_modal(slack: SlackDriver, user: str) -> dict[str, Any]:
    """The modal the bot opens after acking (views.open follows the ack)."""
    return wait_until(lambda: slack.slack.current_modal(user), what=f"a modal for {user}")


def request_id_of(card: dict[str, Any]) -> int:
    for block in card["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "request_approve":
                return int(element["value"])
    raise AssertionError("the card has no Approve button")


def wait_for_status(bot: BackgroundBot, request_id: int, *statuses: str, timeout: float = 60) -> Request:
    assert bot.services is not None
    store = bot.services.store
    return wait_until(
        lambda: (r := store.get_request(request_id)).status in statuses and r,
        timeout=timeout,
        what=f"request #{request_id} to become {'/'.join(statuses)}",
    )


def approve(
    slack: SlackDriver, cloud: FakeCloud, bot: BackgroundBot, card: dict[str, Any], admin: str
) -> Request:
    response = slack.click(admin, "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert response.status_code == 200
    return wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
