"""Block Kit building blocks shared by the views: literal text, facts, dates, days left.

Every view is a pure function of bot.core data; user text goes into plain_text or rich_text
text elements only, so nothing a user typed becomes a mention, a link or markup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    RichTextBlock,
    RichTextElementParts,
    RichTextSectionElement,
)

from bot.core.clock import utc

Message = tuple[str, list[dict[str, Any]]]  # (fallback text, blocks)

USAGE = (
    "*oauth-bot* — Entra ID app registrations and client secrets, without pasting secrets into chat.\n"
    "• `/oauth-app new [name]` — ask for a new app registration, with a client secret or a federated "
    "credential\n"
    "• `/oauth-app list` — your apps and their secrets (admins: `/oauth-app list all`)\n"
    "• `/oauth-app show &lt;client-id&gt;` — one app in full, with the Key Vault link\n"
    "• `/oauth-app federate &lt;client-id or name&gt;` — let a GitHub Actions, Kubernetes or other OIDC "
    "workload sign in as the app, with no secret\n"
    "• `/oauth-secret rotate &lt;client-id or name&gt;` — a new client secret next to the old one\n"
    "• `/oauth-secret access &lt;client-id or name&gt;` — read access to the app's secret in Key Vault\n"
    "• `/oauth-secret list &lt;client-id&gt;` — the secrets of an app\n"
    "• `/oauth-app help` — this help\n"
    "Secret values go straight into Azure Key Vault; you get the IDs and a vault link."
)


def text(text: str, **style: bool) -> RichTextElementParts.Text:
    return RichTextElementParts.Text(text=text, style=style or None)


def user_mention(user_id: str) -> RichTextElementParts.User:
    return RichTextElementParts.User(user_id=user_id)


def facts(rows: list[tuple[str, Any]]) -> RichTextBlock:
    """Bold labels and literal values, one per line."""
    elements: list[Any] = []
    for index, (label, value) in enumerate(rows):
        elements.append(text(f"{label}: ", bold=True))
        if isinstance(value, RichTextElementParts.User | RichTextElementParts.Link):
            elements.append(value)
        elif isinstance(value, tuple):  # (text, style)
            elements.append(text(value[0], **value[1]))
        else:
            elements.append(text(str(value) if value not in (None, "") else "—"))
        if index < len(rows) - 1:
            elements.append(text("\n"))
    return RichTextBlock(elements=[RichTextSectionElement(elements=elements)])


def code(value: str) -> tuple[str, dict[str, bool]]:
    return (value, {"code": True})


def date(value: datetime | None) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def days_phrase(days: int | None) -> str:
    if days is None:
        return "no expiry"
    return "expired" if days < 0 else f"{days} days left"


def simple(message: str) -> Message:
    """A message with no user text in it."""
    return message, dicts([RichTextBlock(elements=[RichTextSectionElement(elements=[text(message)])])])
