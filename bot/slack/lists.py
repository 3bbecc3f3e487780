"""Lists of apps and secrets, expiry reminders, the admins' digest, retirement notices."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    RichTextBlock,
    RichTextElementParts,
    RichTextSectionElement,
)

from bot.core.validation import AUDIENCE_LABELS
from bot.flows.lifecycle import AppView, Reminder
from bot.flows.retirement import Retired
from bot.slack.ids import Action
from bot.slack.views import Message, code, date, days_phrase, dicts, facts, text, user_mention


def _secret_rows(view: AppView) -> list[Block]:
    if not view.exists:
        return [facts([("Secrets", "the app no longer exists in Entra ID")])]
    if not view.secrets:
        return [facts([("Secrets", "none")])]
    return [
        facts(
            [
                ("Secret ID", code(secret.key_id)),
                ("Description", secret.description),
                ("Hint", f"{secret.hint}…" if secret.hint else "—"),
                ("Expires", f"{date(secret.end)} ({days_phrase(secret.days_left)})"),
            ]
        )
        for secret in view.secrets
    ]


def app_list(views: list[AppView], *, everyone: bool, total: int) -> Message:
    title = "Apps oauth-bot manages" if everyone else "Your app registrations"
    blocks: list[Block] = [HeaderBlock(text=title)]
    if not views:
        blocks.append(facts([("Apps", "none yet — ask with /oauth-app new")]))
    for view in views[:12]:
        blocks.append(
            facts([("App", view.app.display_name), ("Application (client) ID", code(view.app.client_id))])
        )
        blocks.extend(_secret_rows(view)[:6])
        blocks.append(DividerBlock())
    if total > len(views[:12]):
        more = total - len(views[:12])
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(text=f"…and {more} more; use `/oauth-app show &lt;client-id&gt;`.")
                ]
            )
        )
    return f"{title}: {total}", dicts(blocks[:50])


def app_detail(view: AppView, tenant_id: str) -> Message:
    app = view.app
    rows: list[tuple[str, Any]] = [
        ("App", app.display_name),
        ("Application (client) ID", code(app.client_id)),
        ("Directory (tenant) ID", code(tenant_id)),
        ("Object ID", code(app.object_id)),
        ("Supported account types", AUDIENCE_LABELS.get(app.sign_in_audience, app.sign_in_audience)),
        ("Created by request", f"#{app.request_id}"),
    ]
    if view.vault_portal_url:
        rows.append(
            ("Secret value", RichTextElementParts.Link(url=view.vault_portal_url, text="in Azure Key Vault"))
        )
    owners = RichTextSectionElement(
        elements=[text("Owners: ", bold=True)]
        + [
            part
            for index, owner in enumerate(view.owners)
            for part in ([text(", ")] if index else []) + [user_mention(owner)]
        ]
    )
    blocks: list[Block] = [
        HeaderBlock(text=app.display_name[:150]),
        facts(rows),
        RichTextBlock(elements=[owners]),
        DividerBlock(),
        *_secret_rows(view)[:40],
    ]
    return f"App {app.client_id}", dicts(blocks)


def secrets_list(view: AppView) -> Message:
    blocks: list[Block] = [
        HeaderBlock(text=f"Client secrets of {view.app.display_name}"[:150]),
        *_secret_rows(view)[:45],
    ]
    return f"Client secrets of {view.app.client_id}", dicts(blocks)


def expiry_reminder(reminder: Reminder) -> Message:
    when = "has expired" if reminder.days_left < 0 else f"expires in {reminder.days_left} days"
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        text("A client secret of ", bold=True),
                        text(reminder.app_name, bold=True),
                        text(f" {when} ({date(reminder.end)}).\n"),
                        text("Secret ID: "),
                        text(reminder.key_id, code=True),
                        text(f"  Description: {reminder.description or '—'}  Hint: {reminder.hint}…\n"),
                        text("Application (client) ID: "),
                        text(reminder.client_id, code=True),
                    ]
                )
            ]
        ),
        ActionsBlock(
            block_id=f"rotate-{reminder.key_id}",
            elements=[
                ButtonElement(
                    text="Rotate now", action_id=Action.ROTATE_NOW, value=reminder.client_id, style="primary"
                )
            ],
        ),
    ]
    return f"A client secret of app {reminder.client_id} {when}.", dicts(blocks)


def expiry_digest(reminders: list[Reminder]) -> Message:
    expired = sum(1 for r in reminders if r.days_left < 0)
    rows = sorted(reminders, key=lambda r: r.days_left)[:40]
    lines = [
        facts(
            [
                ("App", r.app_name),
                ("Client ID", code(r.client_id)),
                ("Secret", f"{r.description or r.key_id} — {days_phrase(r.days_left)} ({date(r.end)})"),
            ]
        )
        for r in rows
    ]
    blocks: list[Block] = [
        HeaderBlock(text="Client secrets expiring"),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"{len(reminders)} new reminder(s) sent to owners; "
                    f"{expired} secret(s) already expired."
                )
            ]
        ),
        *lines,
    ]
    return f"{len(reminders)} client secret(s) expiring or expired.", dicts(blocks[:50])


def secret_retired(retired: Retired) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        text("The old client secret of ", bold=True),
                        text(retired.app_name, bold=True),
                        text(f" was removed: {retired.why}.\nSecret ID: "),
                        text(retired.key_id, code=True),
                        text("\nApplication (client) ID: "),
                        text(retired.client_id, code=True),
                    ]
                )
            ]
        )
    ]
    return f"An old client secret of app {retired.client_id} was removed.", dicts(blocks)
