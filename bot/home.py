"""The App Home tab: your apps and secrets (soonest expiry first), your open requests, and for
admins the approval queue."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, DividerBlock, HeaderBlock, MarkdownTextObject
from slack_sdk.models.views import View

from bot.blocks import date, facts
from bot.clock import utc
from bot.config import Settings
from bot.policy import is_admin
from bot.store import Status, Store


def _days_left(store: Store, end: Any) -> str:
    if end is None:
        return "no expiry"
    days = (utc(end) - store.now()).days
    return "expired" if days < 0 else f"{days} days left"


def build_home(settings: Settings, store: Store, user_id: str) -> dict[str, Any]:
    admin = is_admin(settings, user_id)
    blocks: list[Block] = [HeaderBlock(text="Your app registrations")]
    rows = []
    for app in store.managed_apps(owner=user_id):
        for credential in store.credentials(app.client_id):
            rows.append((credential.end, app, credential))
    rows.sort(key=lambda row: utc(row[0]) if row[0] else store.now().replace(year=9999))
    if not rows:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text="None yet. Ask with `/oauth-app new`.")])
        )
    for end, app, credential in rows[:40]:
        blocks.append(
            facts(
                [
                    ("App", app.display_name),
                    ("Client ID", (app.client_id, {"code": True})),
                    (
                        "Secret",
                        f"{credential.description} ({credential.hint}…), expires {date(end)}, "
                        f"{_days_left(store, end)}",
                    ),
                ]
            )
        )
    mine = store.requests_by(user_id, statuses=[Status.PENDING, Status.APPROVED])
    blocks += [DividerBlock(), HeaderBlock(text="Your open requests")]
    if not mine:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="No open requests.")]))
    for request in mine[:20]:
        blocks.append(
            facts([("Request", f"#{request.id} {request.display_name}"), ("Status", request.status)])
        )
    if admin:
        queue = store.requests_in([Status.PENDING])
        blocks += [DividerBlock(), HeaderBlock(text="Approval queue")]
        if not queue:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Nothing waiting.")]))
        for request in queue[:20]:
            blocks.append(
                facts(
                    [
                        ("Request", f"#{request.id} {request.display_name}"),
                        ("Requester", request.requester_id),
                        ("Expires", date(request.expires_at)),
                    ]
                )
            )
    return View(type="home", blocks=blocks[:100]).to_dict()
