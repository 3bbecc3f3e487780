"""The App Home tab: your apps and secrets (expired and soonest-expiring first), your open
requests, and for admins the approval queue and the expiry list across every managed app."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject
from slack_sdk.models.views import View

from bot.config import Settings
from bot.core.access import is_admin
from bot.core.model import Credential, ManagedApp, Status
from bot.flows.lifecycle import days_left
from bot.slack.views import date, days_phrase, facts, user_mention
from bot.store import Store

MAX_ROWS = 20


def _note(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _secret_rows(store: Store, rows: list[tuple[ManagedApp, Credential]]) -> list[Block]:
    now = store.now()
    return [
        facts(
            [
                ("App", app.display_name),
                ("Client ID", (app.client_id, {"code": True})),
                (
                    "Secret",
                    f"{credential.description} ({credential.hint}…), expires {date(credential.end)}, "
                    f"{days_phrase(days_left(credential.end, now))}",
                ),
            ]
        )
        for app, credential in rows
    ]


def build_home(settings: Settings, store: Store, user_id: str) -> dict[str, Any]:
    blocks: list[Block] = [HeaderBlock(text="Your app registrations")]
    blocks += _secret_rows(store, store.soonest_credentials(owner=user_id, limit=MAX_ROWS)) or [
        _note("None yet. Ask with `/oauth-app new`.")
    ]
    mine = store.requests_by(user_id, statuses=[Status.PENDING, Status.APPROVED])
    blocks += [DividerBlock(), HeaderBlock(text="Your open requests")]
    blocks += [
        facts([("Request", f"#{request.id} {request.display_name}"), ("Status", request.status)])
        for request in mine[:MAX_ROWS]
    ] or [_note("No open requests.")]
    if is_admin(settings, user_id):
        queue = store.requests_in([Status.PENDING])
        blocks += [DividerBlock(), HeaderBlock(text="Approval queue")]
        blocks += [
            facts(
                [
                    ("Request", f"#{request.id} {request.display_name} ({request.kind.replace('_', ' ')})"),
                    ("Requester", user_mention(request.requester_id)),
                    ("Expires", date(request.expires_at)),
                ]
            )
            for request in queue[:MAX_ROWS]
        ] or [_note("Nothing waiting.")]
        blocks += [DividerBlock(), HeaderBlock(text="Expiring across all apps")]
        blocks += _secret_rows(store, store.soonest_credentials(limit=MAX_ROWS)) or [
            _note("No client secrets yet.")
        ]
    return View(type="home", blocks=blocks[:100]).to_dict()
