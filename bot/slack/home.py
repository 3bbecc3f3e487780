"""The App Home tab: your apps and secrets (expired and soonest-expiring first), your open
requests, and for admins the approval queue and the expiry list across every managed app."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject
from slack_sdk.models.views import View

from bot.core.model import Credential, ManagedApp
from bot.flows.lifecycle import HomeData, days_left
from bot.slack.views import date, days_phrase, facts, user_mention


def _note(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _secret_rows(home: HomeData, rows: list[tuple[ManagedApp, Credential]]) -> list[Block]:
    now = home.now
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


def build_home(home: HomeData) -> dict[str, Any]:
    """The Home tab of one person, from what bot.flows.lifecycle gathered for them."""
    blocks: list[Block] = [HeaderBlock(text="Your app registrations")]
    blocks += _secret_rows(home, home.secrets) or (
        [] if home.federated else [_note("None yet. Ask with `/oauth-app new`.")]
    )
    blocks += [
        facts(
            [
                ("App", app.display_name),
                ("Client ID", (app.client_id, {"code": True})),
                ("Federated credential", f"{record.name} (no secret): {record.subject}"),
            ]
        )
        for app, record in home.federated
    ]
    blocks += [DividerBlock(), HeaderBlock(text="Your open requests")]
    blocks += [
        facts([("Request", f"#{request.id} {request.display_name}"), ("Status", request.status)])
        for request in home.open_requests
    ] or [_note("No open requests.")]
    if home.admin is not None:
        queue, expiring = home.admin
        blocks += [DividerBlock(), HeaderBlock(text="Approval queue")]
        blocks += [
            facts(
                [
                    ("Request", f"#{request.id} {request.display_name} ({request.kind.replace('_', ' ')})"),
                    ("Requester", user_mention(request.requester_id)),
                    ("Expires", date(request.expires_at)),
                ]
            )
            for request in queue
        ] or [_note("Nothing waiting.")]
        blocks += [DividerBlock(), HeaderBlock(text="Expiring across all apps")]
        blocks += _secret_rows(home, expiring) or [_note("No client secrets yet.")]
    return View(type="home", blocks=blocks[:100]).to_dict()
