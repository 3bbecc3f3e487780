"""Small helpers for answering in Slack."""

from __future__ import annotations

from typing import Any


def inert(text: str, limit: int = 80) -> str:
    """User text made safe for mrkdwn: no mention, link or formatting survives."""
    cleaned = text[:limit].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`" + cleaned.replace("`", "'") + "`"


def state_value(view: dict[str, Any], block_id: str) -> str | None:
    """The value of the one element in an input block: typed text or the selected option's value."""
    block = view.get("state", {}).get("values", {}).get(block_id) or {}
    for element in block.values():
        if element.get("selected_option"):
            return str(element["selected_option"].get("value"))
        value = element.get("value")
        return None if value is None else str(value)
    return None
