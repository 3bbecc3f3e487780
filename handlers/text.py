"""Small helpers for answering in Slack."""

from __future__ import annotations

from typing import Any

from bot.core.errors import OAuthBotError, ValidationError
from bot.core.model import ReadGrant, Request
from bot.slack import cards


def escaped(text: str) -> str:
    """Text for a mrkdwn answer with Slack's three control characters escaped: a name or an
    error that quotes user input cannot become a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_text(error: OAuthBotError) -> str:
    """What to tell the user about an error, safe for mrkdwn."""
    return escaped(next(iter(error.fields.values())) if isinstance(error, ValidationError) else str(error))


def waiting_for(request: Request) -> str:
    """Whose approval a pending request waits for."""
    if request.approver_set:
        return f"approval by {escaped(request.approver_set)} ({request.approvals_needed} needed)"
    return "an admin's approval"


def read_access_answer(answer: ReadGrant | Request, vault_url: str) -> str:
    """What `/oauth-secret access` and Get read access answer: the grant, or the request filed."""
    if isinstance(answer, ReadGrant):
        return cards.read_access_granted(answer, vault_url)
    who = answer.approver_set or "the oauth-bot admins"
    return (
        f"The approval policy wants read access to the secret of {inert(answer.display_name, 120)} approved "
        f"(request #{answer.id}, by {escaped(who)}); you will get a DM once it is granted."
    )


def inert(text: str, limit: int = 80) -> str:
    """User text made safe for mrkdwn: no mention, link or formatting survives."""
    return "`" + escaped(text[:limit]).replace("`", "'") + "`"


def state_value(view: dict[str, Any], block_id: str) -> str | None:
    """The value of the one element in an input block: typed text or the selected option's value."""
    block = view.get("state", {}).get("values", {}).get(block_id) or {}
    for element in block.values():
        if element.get("selected_option"):
            return str(element["selected_option"].get("value"))
        value = element.get("value")
        return None if value is None else str(value)
    return None
