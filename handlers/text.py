"""Small helpers for answering in Slack."""

from __future__ import annotations

from typing import Any

from bot.core.errors import OAuthBotError, ValidationError


def escaped(text: str) -> str:
    """Text for a mrkdwn answer with Slack's three control characters escaped: a name or an
    error that quotes user input cannot become a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_text(error: OAuthBotError) -> str:
    """What to tell the user about an error, safe for mrkdwn."""
    return escaped(next(iter(error.fields.values())) if isinstance(error, ValidationError) else str(error))


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
