"""Block Kit views as pure functions: data in, view out.

User-typed text (names, justifications, reasons) is only ever placed in plain_text
objects or rich_text "text" elements, which Slack shows literally: `<!channel>`,
`<@U123>`, `<https://evil|click>` and *markdown* neither ping, link nor format. The
notification fallback `text` of a message carries no user text at all.
"""

from __future__ import annotations

import copy
import functools
import json
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    RichTextBlock,
    RichTextElementParts,
    RichTextPreformattedElement,
    RichTextSectionElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.config import Settings
from bot.core.clock import utc
from bot.core.errors import SecretLimitReached
from bot.core.model import IssuedSecret, Kind, Request, Status
from bot.core.validation import AUDIENCE_LABELS, PLATFORM_LABELS, lifetime_label
from bot.flows.lifecycle import AppView, Reminder, Retired
from bot.slack.ids import Action, Callback, Field

Message = tuple[str, list[dict[str, Any]]]  # (fallback text, blocks)

USAGE = (
    "*oauth-bot* — Entra ID app registrations and client secrets, without pasting secrets into chat.\n"
    "• `/oauth-app new [name]` — ask for a new app registration with a client secret\n"
    "• `/oauth-app list` — your apps and their secrets (admins: `/oauth-app list all`)\n"
    "• `/oauth-app show &lt;client-id&gt;` — one app in full, with the Key Vault link\n"
    "• `/oauth-secret rotate &lt;client-id or name&gt;` — a new client secret next to the old one\n"
    "• `/oauth-secret list &lt;client-id&gt;` — the secrets of an app\n"
    "• `/oauth-app help` — this help\n"
    "Secret values go straight into Azure Key Vault; you get the IDs and a vault link."
)


def _text(text: str, **style: bool) -> RichTextElementParts.Text:
    return RichTextElementParts.Text(text=text, style=style or None)


def user_mention(user_id: str) -> RichTextElementParts.User:
    return RichTextElementParts.User(user_id=user_id)


def facts(rows: list[tuple[str, Any]]) -> RichTextBlock:
    """Bold labels and literal values, one per line."""
    elements: list[Any] = []
    for index, (label, value) in enumerate(rows):
        elements.append(_text(f"{label}: ", bold=True))
        if isinstance(value, RichTextElementParts.User | RichTextElementParts.Link):
            elements.append(value)
        elif isinstance(value, tuple):  # (text, style)
            elements.append(_text(value[0], **value[1]))
        else:
            elements.append(_text(str(value) if value not in (None, "") else "—"))
        if index < len(rows) - 1:
            elements.append(_text("\n"))
    return RichTextBlock(elements=[RichTextSectionElement(elements=elements)])


def _code(value: str) -> tuple[str, dict[str, bool]]:
    return (value, {"code": True})


def date(value: datetime | None) -> str:
    return utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


# --- the new-app modal ----------------------------------------------------------------
def new_app_modal(settings: Settings, *, name: str = "", channel_id: str | None = None) -> dict[str, Any]:
    """The request form, with the name typed after `/oauth-app new` filled in."""
    view = copy.deepcopy(
        _new_app_form(
            settings.secret_lifetime_choices, settings.default_secret_days, settings.oauth_bot_max_secret_days
        )
    )
    if name:
        view["blocks"][0]["element"]["initial_value"] = name[:3000]
    view["private_metadata"] = json.dumps({"channel_id": channel_id})
    return view


@functools.cache
def _new_app_form(lifetimes: tuple[int, ...], default_days: int, max_days: int) -> dict[str, Any]:
    """The form built and checked once per policy (slack_sdk's models validate lengths)."""
    audience_options = [Option(value=key, text=label) for key, label in AUDIENCE_LABELS.items()]
    platform_options = [Option(value=key, text=label) for key, label in PLATFORM_LABELS.items()]
    lifetime_options = [Option(value=str(days), text=lifetime_label(days)) for days in lifetimes]
    default_lifetime = next(o for o in lifetime_options if o.value == str(default_days))
    view = View(
        type="modal",
        callback_id=Callback.NEW_APP,
        title=PlainTextObject(text="New app registration"),
        submit=PlainTextObject(text="Request"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id=Field.NAME,
                label="Name",
                hint="The user-facing display name for this application.",
                element=PlainTextInputElement(
                    action_id=Action.VALUE,
                    placeholder="e.g. billing-api",
                ),
            ),
            InputBlock(
                block_id=Field.AUDIENCE,
                label="Supported account types",
                hint="Who can use this application or access this API?",
                element=RadioButtonsElement(
                    action_id=Action.VALUE, options=audience_options, initial_option=audience_options[0]
                ),
            ),
            InputBlock(
                block_id=Field.REDIRECT_URI,
                label="Redirect URI",
                optional=True,
                hint="Where sign-in responses go: https:// (http:// only for localhost).",
                element=PlainTextInputElement(
                    action_id=Action.VALUE, placeholder="https://app.example.com/auth/callback"
                ),
            ),
            InputBlock(
                block_id=Field.PLATFORM,
                label="Platform",
                optional=True,
                hint="The platform of the redirect URI.",
                element=StaticSelectElement(
                    action_id=Action.VALUE, options=platform_options, initial_option=platform_options[0]
                ),
            ),
            InputBlock(
                block_id=Field.SECRET_DESCRIPTION,
                label="Secret description",
                optional=True,
                element=PlainTextInputElement(action_id=Action.VALUE, placeholder="e.g. CI deploys"),
            ),
            InputBlock(
                block_id=Field.SECRET_EXPIRY,
                label="Secret expiry",
                hint=f"Policy allows at most {lifetime_label(max_days)}.",
                element=StaticSelectElement(
                    action_id=Action.VALUE, options=lifetime_options, initial_option=default_lifetime
                ),
            ),
            InputBlock(
                block_id=Field.JUSTIFICATION,
                label="Justification",
                hint="What is the application for? The approvers read this.",
                element=PlainTextInputElement(action_id=Action.VALUE, multiline=True),
            ),
        ],
    )
    return view.to_dict()


def deny_reason_modal(request_id: int) -> dict[str, Any]:
    return View(
        type="modal",
        callback_id=Callback.DENY_REASON,
        title=PlainTextObject(text=f"Deny request #{request_id}"[:24]),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Back"),
        private_metadata=json.dumps({"request_id": request_id}),
        blocks=[
            InputBlock(
                block_id=Field.DENY_REASON,
                label="Reason",
                hint="The requester receives this reason.",
                element=PlainTextInputElement(action_id=Action.VALUE, multiline=True),
            )
        ],
    ).to_dict()


# --- the approval card ----------------------------------------------------------------
def _rotation_rows(request: Request) -> list[tuple[str, Any]]:
    grace = request.grace_days or 0
    return [
        ("Requester", user_mention(request.requester_id)),
        ("App", request.display_name),
        ("Application (client) ID", _code(request.client_id or "")),
        ("New secret expiry", lifetime_label(request.secret_days)),
        ("Old secret", f"stays valid for {grace:g} days after the rotation" if grace else "removed at once"),
    ]


def _request_rows(request: Request) -> list[tuple[str, Any]]:
    if request.kind == Kind.ROTATE:
        return _rotation_rows(request)
    redirect = (
        f"{request.redirect_uri} ({PLATFORM_LABELS.get(request.redirect_platform or '', '')})"
        if request.redirect_uri
        else None
    )
    return [
        ("Requester", user_mention(request.requester_id)),
        ("Name", request.display_name),
        ("Supported account types", AUDIENCE_LABELS.get(request.sign_in_audience, request.sign_in_audience)),
        ("Redirect URI", redirect),
        ("Secret description", request.secret_description),
        ("Secret expiry", lifetime_label(request.secret_days)),
        ("Justification", request.justification),
    ]


def _status_line(request: Request) -> list[Any] | None:
    approver = [user_mention(request.approver_id)] if request.approver_id else []
    match request.status:
        case Status.APPROVED:
            return [_text("Approved by ", bold=True), *approver, _text(" — creating…")]
        case Status.COMPLETED:
            return [
                _text("Approved by ", bold=True),
                *approver,
                _text(" — done: "),
                _text(request.client_id or "", code=True),
            ]
        case Status.FAILED:
            return [
                _text("Approved by ", bold=True),
                *approver,
                _text(" — failed: "),
                _text(request.error or "unknown error"),
            ]
        case Status.DENIED:
            return [_text("Denied by ", bold=True), *approver, _text(" — "), _text(request.deny_reason or "")]
        case Status.CANCELLED:
            return [_text("Cancelled by the requester", bold=True)]
        case Status.EXPIRED:
            return [_text("Expired", bold=True), _text(" — nobody decided in time; the requester was told.")]
    return None


def at_secret_limit(request: Request) -> bool:
    return request.kind == Kind.ROTATE and request.error_code == SecretLimitReached.code


def failed_actions(request: Request) -> ActionsBlock:
    """Retry, or for an app at its two-secret limit, retire the oldest secret and rotate."""
    if at_secret_limit(request):
        button = ButtonElement(
            text="Retire oldest and rotate",
            action_id=Action.RETIRE_OLDEST,
            value=str(request.id),
            style="danger",
        )
    else:
        button = ButtonElement(text="Retry", action_id=Action.RETRY, value=str(request.id))
    return ActionsBlock(block_id=f"after-failure-{request.id}", elements=[button])


def confirm_foreign_removal(request_id: int, app_name: str, secret: Any) -> Message:
    """For an admin: remove a client secret oauth-bot did not issue, named by its description
    and Secret ID, with Slack's confirmation dialog before anything happens."""
    label = secret.display_name or "(no description)"
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        _text("To make room, oauth-bot would remove the oldest client secret of "),
                        _text(app_name, bold=True),
                        _text(", which oauth-bot did not issue:\n"),
                        _text("Description: ", bold=True),
                        _text(label),
                        _text("\nSecret ID: ", bold=True),
                        _text(secret.key_id, code=True),
                        _text("\nExpires: ", bold=True),
                        _text(date(secret.end)),
                        _text("\nWhatever signs in with it stops working once it is removed."),
                    ]
                )
            ]
        ),
        ActionsBlock(
            block_id=f"confirm-retire-{request_id}",
            elements=[
                ButtonElement(
                    text="Remove this secret and rotate",
                    action_id=Action.RETIRE_CONFIRMED,
                    value=f"{request_id}:{secret.key_id}",
                    style="danger",
                    confirm=ConfirmObject(
                        title="Remove the client secret?",
                        text=f'Remove "{label[:100]}" (Secret ID {secret.key_id}) from {app_name[:100]}?',
                        confirm="Remove it",
                        deny="Keep it",
                        style="danger",
                    ),
                )
            ],
        ),
    ]
    return f"Confirm removing client secret {secret.key_id} of {app_name}.", _dicts(blocks)


def request_card(request: Request) -> Message:
    title = "New app registration" if request.kind == Kind.NEW_APP else "Secret rotation"
    blocks: list[Block] = [
        HeaderBlock(text=f"{title} request #{request.id}"),
        facts(_request_rows(request)),
    ]
    status = _status_line(request)
    if request.status == Status.PENDING:
        buttons = [
            ButtonElement(text="Approve", action_id=Action.APPROVE, value=str(request.id), style="primary")
        ]
        if request.kind == Kind.ROTATE and request.grace_days:
            buttons.append(
                ButtonElement(
                    text="Approve, remove old secret now",
                    action_id=Action.APPROVE_RETIRE_NOW,
                    value=str(request.id),
                )
            )
        buttons.append(
            ButtonElement(text="Deny", action_id=Action.DENY, value=str(request.id), style="danger")
        )
        blocks.append(ActionsBlock(block_id=f"decide-{request.id}", elements=buttons))
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"Expires {date(request.expires_at)} if nobody decides. "
                        "Admins only; not your own request."
                    )
                ]
            )
        )
    elif status is not None:
        blocks.append(RichTextBlock(elements=[RichTextSectionElement(elements=status)]))
        if request.status == Status.FAILED:
            blocks.append(failed_actions(request))
    text = f"{title} request #{request.id}: {request.status}"
    return text, _dicts(blocks)


# --- messages to the requester --------------------------------------------------------
def request_received(request: Request, approval_channel: str) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        _text(f"Request #{request.id} sent. "),
                        _text("The admins decide in "),
                        RichTextElementParts.Channel(channel_id=approval_channel),
                        _text("; you will get the IDs and a Key Vault link here once it is approved."),
                    ]
                )
            ]
        ),
        facts(_request_rows(request)[1:]),
        ActionsBlock(
            block_id=f"cancel-{request.id}",
            elements=[ButtonElement(text="Cancel request", action_id=Action.CANCEL, value=str(request.id))],
        ),
    ]
    return f"Request #{request.id} is waiting for approval.", _dicts(blocks)


def secret_ready(request: Request, issued: IssuedSecret) -> Message:
    verified = {True: "yes, a token was issued with it", False: "not verified yet", None: None}[
        issued.verified
    ]
    rows: list[tuple[str, Any]] = [
        ("App name", issued.app.display_name),
        ("Application (client) ID", _code(issued.app.client_id)),
        ("Directory (tenant) ID", _code(issued.tenant_id)),
        ("Object ID", _code(issued.app.object_id)),
        ("Secret ID", _code(issued.key_id)),
        ("Secret description", issued.description),
        ("Expires", date(issued.end)),
        ("Secret value", RichTextElementParts.Link(url=issued.vault.portal_url, text="in Azure Key Vault")),
    ]
    if verified:
        rows.append(("Verified", verified))
    if request.kind == Kind.ROTATE:
        grace = request.grace_days or 0
        rows.append(("Old secret", f"stays valid for {grace:g} more days" if grace else "removed"))
    blocks: list[Block] = [
        HeaderBlock(
            text="Your client secret is ready"
            if request.kind == Kind.ROTATE
            else "Your app registration is ready"
        ),
        facts(rows),
        RichTextBlock(
            elements=[
                RichTextSectionElement(elements=[_text("Read the value with the Azure CLI:")]),
                RichTextPreformattedElement(elements=[_text(issued.vault.cli_command)]),
            ]
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Request #{request.id}. The value is not shown in Slack; it is only in the vault."
                )
            ]
        ),
    ]
    return f"Request #{request.id} is done: client ID {issued.app.client_id}.", _dicts(blocks)


def request_failed(request: Request, message: str) -> Message:
    parts = [_text(f"Request #{request.id} failed: ", bold=True), _text(message)]
    if not at_secret_limit(request):  # (Slack refuses an empty text element)
        parts.append(_text("\nThe admins have been told and can retry it."))
    blocks: list[Block] = [RichTextBlock(elements=[RichTextSectionElement(elements=parts)])]
    if at_secret_limit(request):
        blocks.append(failed_actions(request))
    return f"Request #{request.id} failed.", _dicts(blocks)


def request_denied(request: Request) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        _text(f"Request #{request.id} was denied by ", bold=True),
                        user_mention(request.approver_id or ""),
                        _text(".\nReason: "),
                        _text(request.deny_reason or "none given"),
                    ]
                )
            ]
        )
    ]
    return f"Request #{request.id} was denied.", _dicts(blocks)


# --- lists, reminders, retirements --------------------------------------------------------
def days_phrase(days: int | None) -> str:
    if days is None:
        return "no expiry"
    return "expired" if days < 0 else f"{days} days left"


def _secret_rows(view: AppView) -> list[Block]:
    if not view.exists:
        return [facts([("Secrets", "the app no longer exists in Entra ID")])]
    if not view.secrets:
        return [facts([("Secrets", "none")])]
    return [
        facts(
            [
                ("Secret ID", _code(secret.key_id)),
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
            facts([("App", view.app.display_name), ("Application (client) ID", _code(view.app.client_id))])
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
    return f"{title}: {total}", _dicts(blocks[:50])


def app_detail(view: AppView, tenant_id: str) -> Message:
    app = view.app
    rows: list[tuple[str, Any]] = [
        ("App", app.display_name),
        ("Application (client) ID", _code(app.client_id)),
        ("Directory (tenant) ID", _code(tenant_id)),
        ("Object ID", _code(app.object_id)),
        ("Supported account types", AUDIENCE_LABELS.get(app.sign_in_audience, app.sign_in_audience)),
        ("Created by request", f"#{app.request_id}"),
    ]
    if view.vault_portal_url:
        rows.append(
            ("Secret value", RichTextElementParts.Link(url=view.vault_portal_url, text="in Azure Key Vault"))
        )
    owners = RichTextSectionElement(
        elements=[_text("Owners: ", bold=True)]
        + [
            part
            for index, owner in enumerate(view.owners)
            for part in ([_text(", ")] if index else []) + [user_mention(owner)]
        ]
    )
    blocks: list[Block] = [
        HeaderBlock(text=app.display_name[:150]),
        facts(rows),
        RichTextBlock(elements=[owners]),
        DividerBlock(),
        *_secret_rows(view)[:40],
    ]
    return f"App {app.client_id}", _dicts(blocks)


def secrets_list(view: AppView) -> Message:
    blocks: list[Block] = [
        HeaderBlock(text=f"Client secrets of {view.app.display_name}"[:150]),
        *_secret_rows(view)[:45],
    ]
    return f"Client secrets of {view.app.client_id}", _dicts(blocks)


def expiry_reminder(reminder: Reminder) -> Message:
    when = "has expired" if reminder.days_left < 0 else f"expires in {reminder.days_left} days"
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        _text("A client secret of ", bold=True),
                        _text(reminder.app_name, bold=True),
                        _text(f" {when} ({date(reminder.end)}).\n"),
                        _text("Secret ID: "),
                        _text(reminder.key_id, code=True),
                        _text(f"  Description: {reminder.description or '—'}  Hint: {reminder.hint}…\n"),
                        _text("Application (client) ID: "),
                        _text(reminder.client_id, code=True),
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
    return f"A client secret of app {reminder.client_id} {when}.", _dicts(blocks)


def expiry_digest(reminders: list[Reminder]) -> Message:
    expired = sum(1 for r in reminders if r.days_left < 0)
    rows = sorted(reminders, key=lambda r: r.days_left)[:40]
    lines = [
        facts(
            [
                ("App", r.app_name),
                ("Client ID", _code(r.client_id)),
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
    return f"{len(reminders)} client secret(s) expiring or expired.", _dicts(blocks[:50])


def secret_retired(retired: Retired) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        _text("The old client secret of ", bold=True),
                        _text(retired.app_name, bold=True),
                        _text(" was removed: its grace period ended.\nSecret ID: "),
                        _text(retired.key_id, code=True),
                        _text("\nApplication (client) ID: "),
                        _text(retired.client_id, code=True),
                    ]
                )
            ]
        )
    ]
    return f"An old client secret of app {retired.client_id} was removed.", _dicts(blocks)


def simple(text: str) -> Message:
    """A message with no user text in it."""
    return text, _dicts([RichTextBlock(elements=[RichTextSectionElement(elements=[_text(text)])])])
