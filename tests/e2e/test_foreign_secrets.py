"""Nothing removed that oauth-bot did not make: client secrets added outside oauth-bot (in the
portal, with az CLI) survive every retry and resume path, and "Retire oldest and rotate" removes
at most one secret, only one oauth-bot issued unless an admin confirms another by name and ID."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.core.model import Request, Status
from bot.core.validation import AUDIENCE_LABELS
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import approve, request_id_of, request_new_app, request_rotation, wait_for_status

PERSONAL = {"Supported account types": AUDIENCE_LABELS["AzureADandPersonalMicrosoftAccount"]}


def _new_app(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str, **fields: Any) -> Request:
    request = approve(slack, cloud, bot, request_new_app(slack, DEVELOPER, name, **fields), ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request


def _rotate(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, client_id: str) -> Request:
    card = request_rotation(slack, DEVELOPER, client_id)
    slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL)
    return wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)


def _key_ids(cloud: FakeCloud, object_id: str) -> set[str]:
    return {p["keyId"] for p in cloud.graph.passwords(object_id)}


def _card(cloud: FakeCloud, request: Request, button: str) -> dict[str, Any]:
    """The request's approval card, once it offers this button."""
    return wait_until(
        lambda: (
            (card := cloud.slack.message(APPROVAL_CHANNEL, request.card_ts or ""))
            and button in json.dumps(card)
            and card
        ),
        what=f"the card of request #{request.id} to offer {button}",
    )


def _latest_ephemeral(cloud: FakeCloud, user: str, before: int) -> dict[str, Any]:
    return wait_until(
        lambda: len(cloud.slack.ephemerals(user)) > before and cloud.slack.ephemerals(user)[-1],
        what=f"an ephemeral answer to {user}",
    )


def test_a_portal_added_secret_survives_a_retry_after_a_vault_failure(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A rotation whose vault write is refused removes the secret it added and fails; an admin's
    Retry completes it. A secret the owner added in the portal meanwhile is on the app after
    the failure, after the retry's clean-up of the first attempt, and at the end."""
    created = _new_app(cloud, bot, slack, "portal-survivor")
    object_id = created.object_id or ""
    portal = cloud.graph.add_password_outside(object_id, "added in the portal")
    cloud.vault.forbid_writes = True
    try:
        failed = _rotate(cloud, bot, slack, created.client_id or "")
    finally:
        cloud.vault.forbid_writes = False
    assert failed.status == Status.FAILED
    assert _key_ids(cloud, object_id) == {created.key_id, portal}
    slack.click(ADMINS[0], "Retry", message=_card(cloud, failed, "Retry"), channel=APPROVAL_CHANNEL)
    done = wait_for_status(bot, failed.id, Status.COMPLETED)
    assert _key_ids(cloud, object_id) == {created.key_id, portal, done.key_id}


def test_retire_oldest_removes_at_most_one_secret_on_a_double_click(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """At the two-secret limit, two "Retire oldest and rotate" clicks arriving together move the
    request once: one secret (the oldest oauth-bot issued) is removed, the rotation completes
    with two secrets on the app, and the second click is told the request is already moving."""
    created = _new_app(cloud, bot, slack, "double-retire", **PERSONAL)
    client_id, object_id = created.client_id or "", created.object_id or ""
    second = _rotate(cloud, bot, slack, client_id)
    assert second.status == Status.COMPLETED
    blocked = _rotate(cloud, bot, slack, client_id)
    assert blocked.status == Status.FAILED and "at most 2 client secrets" in (blocked.error or "")
    card = _card(cloud, blocked, "Retire oldest and rotate")

    def click(admin: str) -> Any:
        return slack.click(admin, "Retire oldest and rotate", message=card, channel=APPROVAL_CHANNEL)

    with ThreadPoolExecutor(max_workers=2) as clicks:
        answers = list(clicks.map(click, ADMINS[:2]))
    assert [a.status_code for a in answers] == [200, 200]
    done = wait_for_status(bot, blocked.id, Status.COMPLETED)
    assert len(cloud.graph.calls_to("POST", rf"^/v1\.0/applications/{object_id}/removePassword$")) == 1
    assert _key_ids(cloud, object_id) == {second.key_id, done.key_id}
    wait_until(
        lambda: any(f"#{blocked.id} is already" in e.get("text", "") for e in cloud.slack.ephemerals()),
        what="the second click's refusal",
    )


def test_retire_oldest_is_refused_for_a_request_that_did_not_fail_at_the_limit(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A forged "Retire oldest and rotate" click on a rotation that failed for another reason
    (a vault refusal) removes nothing and does not send the request back to work."""
    created = _new_app(cloud, bot, slack, "not-at-limit")
    object_id = created.object_id or ""
    cloud.vault.forbid_writes = True
    try:
        failed = _rotate(cloud, bot, slack, created.client_id or "")
    finally:
        cloud.vault.forbid_writes = False
    assert failed.status == Status.FAILED
    forged = {  # a button no message of the bot holds, delivered as Slack would deliver a click
        "message_ts": failed.card_ts,
        "channel": APPROVAL_CHANNEL,
        "blocks": [
            {
                "type": "actions",
                "block_id": f"after-failure-{failed.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "request_retire_oldest",
                        "text": {"type": "plain_text", "text": "Retire oldest and rotate"},
                        "value": str(failed.id),
                    }
                ],
            }
        ],
    }
    before = len(cloud.slack.ephemerals(ADMINS[0]))
    clicked = slack.click(ADMINS[0], "Retire oldest and rotate", message=forged, channel=APPROVAL_CHANNEL)
    assert clicked.status_code == 200
    refusal = _latest_ephemeral(cloud, ADMINS[0], before)
    assert "did not fail at the two-secret limit" in refusal["text"]
    assert _key_ids(cloud, object_id) == {created.key_id}
    assert wait_for_status(bot, failed.id, Status.FAILED).status == Status.FAILED


def test_a_secret_oauth_bot_did_not_issue_is_removed_only_once_an_admin_confirms_it(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """When both secrets at the two-secret limit were added outside oauth-bot, "Retire oldest and
    rotate" removes nothing by itself: the owner is told an admin must confirm; an admin is shown
    the oldest secret's description and Secret ID with a confirming button; only that click
    removes it (that one only), and the rotation completes."""
    created = _new_app(cloud, bot, slack, "foreign-limit", **PERSONAL)
    client_id, object_id = created.client_id or "", created.object_id or ""
    oldest = cloud.graph.add_password_outside(object_id, "CI pipeline", days=30)
    cloud.graph.remove_password_outside(object_id, created.key_id or "")  # removed in the portal
    newer = cloud.graph.add_password_outside(object_id, "local testing", days=90)
    blocked = _rotate(cloud, bot, slack, client_id)
    assert blocked.status == Status.FAILED and "at most 2 client secrets" in (blocked.error or "")

    dms = lambda: cloud.slack.dm_messages(DEVELOPER)  # noqa: E731
    dm = wait_until(
        lambda: [m for m in dms() if f"#{blocked.id} failed" in m.get("text", "")], what="the failure DM"
    )[-1]
    slack.click(DEVELOPER, "Retire oldest and rotate", message=dm)
    told = wait_until(
        lambda: [
            m
            for m in cloud.slack.ephemerals(DEVELOPER) + cloud.slack.dm_messages(DEVELOPER)
            if "Ask an oauth-bot admin" in m.get("text", "")
        ],
        what="the owner to be told an admin must confirm",
    )
    assert oldest in told[-1]["text"]
    assert _key_ids(cloud, object_id) == {oldest, newer}

    before = len(cloud.slack.ephemerals(ADMINS[0]))
    card = _card(cloud, blocked, "Retire oldest and rotate")
    slack.click(ADMINS[0], "Retire oldest and rotate", message=card, channel=APPROVAL_CHANNEL)
    confirm = _latest_ephemeral(cloud, ADMINS[0], before)
    shown = json.dumps(confirm["blocks"])
    assert "CI pipeline" in shown and oldest in shown and "local testing" not in shown
    assert _key_ids(cloud, object_id) == {oldest, newer}
    assert wait_for_status(bot, blocked.id, Status.FAILED).status == Status.FAILED

    slack.click(ADMINS[0], "Remove this secret and rotate", message=confirm, channel=APPROVAL_CHANNEL)
    done = wait_for_status(bot, blocked.id, Status.COMPLETED)
    assert _key_ids(cloud, object_id) == {newer, done.key_id}
