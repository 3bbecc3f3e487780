"""Messages of usage-aware retirement: the owners' "still in use" DM, and the admins' card
(Remove now / Keep 7 more days) once the maximum grace is reached, and what it says after."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ConfirmObject, HeaderBlock

from bot.flows.retirement import StillUsed
from bot.slack.ids import Action
from bot.slack.views import Message, code, date, dicts, facts, user_mention


def _usage_rows(notice: StillUsed) -> list[tuple[str, object]]:
    return [
        ("App", notice.app_name),
        ("Application (client) ID", code(notice.client_id)),
        ("Secret ID", code(notice.key_id)),
        ("Secret description", notice.description or "—"),
        ("Last sign-in", date(notice.last_sign_in)),
        ("From IP address", notice.ip_address),
        ("To resource", notice.resource),
        ("Planned removal", date(notice.planned_removal)),
    ]


def still_used(notice: StillUsed) -> Message:
    """To each owner: the old secret is kept, what still uses it, and when it is checked again."""
    rows = [*_usage_rows(notice), ("Checked again", date(notice.next_check))]
    blocks: list[Block] = [
        HeaderBlock(text="An old client secret is still in use"),
        facts(rows),
        facts(
            [
                (
                    "What now",
                    "oauth-bot kept it. Move what signs in with it to the new secret; oauth-bot checks "
                    "again daily and removes it once nothing has used it for a while.",
                )
            ]
        ),
    ]
    return f"The old client secret of app {notice.client_id} is still in use and was kept.", dicts(blocks)


def decision_card(notice: StillUsed, max_grace_days: float) -> Message:
    """For the admins: still used this long after the planned removal, so a person decides."""
    owners = [("Owner", user_mention(owner)) for owner in notice.owners]
    why = (
        f"It is still in use {max_grace_days:g} days after its planned removal; removing it breaks "
        "whatever still signs in with it."
    )
    blocks: list[Block] = [
        HeaderBlock(text="Still in use: remove the old secret?"),
        facts([*_usage_rows(notice), *owners, ("Why you see this", why)]),
        ActionsBlock(
            block_id=f"retire-{notice.key_id}",
            elements=[
                ButtonElement(
                    text="Remove now",
                    action_id=Action.RETIRE_REMOVE_NOW,
                    value=notice.key_id,
                    style="danger",
                    confirm=ConfirmObject(
                        title="Remove the old secret?",
                        text="Whatever still signs in with it stops working.",
                        confirm="Remove now",
                        deny="Back",
                    ),
                ),
                ButtonElement(text="Keep 7 more days", action_id=Action.RETIRE_KEEP, value=notice.key_id),
            ],
        ),
    ]
    return f"An old client secret of app {notice.client_id} is still in use: an admin decides.", dicts(blocks)


def decided(key_id: str, actor: str, until: datetime | None) -> Message:
    """What the card says once an admin decided."""
    what = "removed it" if until is None else f"kept it until {date(until)} (then it is checked again)"
    rows = [("Secret ID", code(key_id)), ("Decided by", user_mention(actor)), ("Decision", what)]
    return f"Client secret {key_id}: an admin {what}.", dicts([facts(rows)])
