"""The approval card and the messages about one request (received, denied, done, failed)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    RichTextBlock,
    RichTextElementParts,
    RichTextPreformattedElement,
    RichTextSectionElement,
)

from bot.core.errors import SecretLimitReached
from bot.core.model import IssuedSecret, Kind, ReadAccess, ReadGrant, Request, Status, secret_name_for
from bot.core.validation import AUDIENCE_LABELS, PLATFORM_LABELS, lifetime_label
from bot.slack.ids import Action
from bot.slack.views import Message, code, date, dicts, facts, text, user_mention


def _reader_rows(request: Request) -> list[tuple[str, Any]]:
    """The extra readers by type and name, with their object IDs (none: no row)."""
    if not request.extra_readers:
        return []
    return [("Extra readers", "\n".join(f"{r.label} ({r.object_id})" for r in request.extra_readers))]


def _rotation_rows(request: Request) -> list[tuple[str, Any]]:
    grace = request.grace_days or 0
    return [
        ("Requester", user_mention(request.requester_id)),
        ("App", request.display_name),
        ("Application (client) ID", code(request.client_id or "")),
        ("New secret expiry", _expiry(request)),
        ("Old secret", f"stays valid for {grace:g} days after the rotation" if grace else "removed at once"),
        *_reader_rows(request),
    ]


def _expiry(request: Request) -> str:
    """The lifetime, and the policy that capped it when one did."""
    label = lifetime_label(request.secret_days)
    return f"{label}, {request.lifetime_note}" if request.lifetime_note else label


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
        *_reader_rows(request),
    ]


def _status_line(request: Request) -> list[Any] | None:
    """What happened to the request, on its card (None while it is pending)."""
    approver = [user_mention(request.approver_id)] if request.approver_id else []
    approved = [text("Approved by ", bold=True), *approver]
    lines: dict[Status, list[Any]] = {
        Status.APPROVED: [*approved, text(" — creating…")],
        Status.COMPLETED: [*approved, text(" — done: "), text(request.client_id or "", code=True)],
        Status.FAILED: [*approved, text(" — failed: "), text(request.error or "unknown error")],
        Status.DENIED: [
            text("Denied by ", bold=True),
            *approver,
            text(" — "),
            text(request.deny_reason or ""),
        ],
        Status.CANCELLED: [text("Cancelled by the requester", bold=True)],
        Status.EXPIRED: [
            text("Expired", bold=True),
            text(" — nobody decided in time; the requester was told."),
        ],
    }
    return lines.get(request.status)


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
                        text("To make room, oauth-bot would remove the oldest client secret of "),
                        text(app_name, bold=True),
                        text(", which oauth-bot did not issue:\n"),
                        text("Description: ", bold=True),
                        text(label),
                        text("\nSecret ID: ", bold=True),
                        text(secret.key_id, code=True),
                        text("\nExpires: ", bold=True),
                        text(date(secret.end)),
                        text("\nWhatever signs in with it stops working once it is removed."),
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
    return f"Confirm removing client secret {secret.key_id} of {app_name}.", dicts(blocks)


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
    return text, dicts(blocks)


def request_received(request: Request, approval_channel: str) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        text(f"Request #{request.id} sent. "),
                        text("The admins decide in "),
                        RichTextElementParts.Channel(channel_id=approval_channel),
                        text("; you will get the IDs and a Key Vault link here once it is approved."),
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
    return f"Request #{request.id} is waiting for approval.", dicts(blocks)


def secret_ready(request: Request, issued: IssuedSecret) -> Message:
    verified = {True: "yes, a token was issued with it", False: "not verified yet", None: None}[
        issued.verified
    ]
    rows: list[tuple[str, Any]] = [
        ("App name", issued.app.display_name),
        ("Application (client) ID", code(issued.app.client_id)),
        ("Directory (tenant) ID", code(issued.tenant_id)),
        ("Object ID", code(issued.app.object_id)),
        ("Secret ID", code(issued.key_id)),
        ("Secret description", issued.description),
        ("Expires", date(issued.end) + (f" ({request.lifetime_note})" if request.lifetime_note else "")),
        ("Secret value", RichTextElementParts.Link(url=issued.vault.portal_url, text="in Azure Key Vault")),
    ]
    if verified:
        rows.append(("Verified", verified))
    if request.kind == Kind.ROTATE:
        grace = request.grace_days or 0
        rows.append(("Old secret", f"stays valid for {grace:g} more days" if grace else "removed"))
    if issued.read_access is not None:
        rows.append(("Your read access", read_access_text(issued)))
    if issued.readers_granted:
        rows.append(("Extra readers who can read it", ", ".join(r.label for r in issued.readers_granted)))
    if issued.readers_not_granted:
        rows.append(
            (
                "Extra readers not given access",
                ", ".join(r.label for r in issued.readers_not_granted)
                + " (oauth-bot could not give them Key Vault Secrets User on it: ask the oauth-bot admins)",
            )
        )
    blocks: list[Block] = [
        HeaderBlock(
            text="Your client secret is ready"
            if request.kind == Kind.ROTATE
            else "Your app registration is ready"
        ),
        facts(rows),
        RichTextBlock(
            elements=[
                RichTextSectionElement(elements=[text("Read the value with the Azure CLI:")]),
                RichTextPreformattedElement(elements=[text(issued.vault.cli_command)]),
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
    if issued.read_access is not None:
        blocks.append(
            ActionsBlock(
                block_id=f"read-access-{issued.app.client_id}",
                elements=[
                    ButtonElement(
                        text="Get read access", action_id=Action.GET_READ_ACCESS, value=issued.app.client_id
                    )
                ],
            )
        )
    return f"Request #{request.id} is done: client ID {issued.app.client_id}.", dicts(blocks)


def read_access_text(issued: IssuedSecret) -> str:
    """What the DM says of the requester's own read access to the value."""
    match issued.read_access:
        case ReadAccess.GRANTED if issued.read_until is not None:
            return f"you can read the value until {date(issued.read_until)} (then use Get read access)"
        case ReadAccess.GRANTED:
            return "you can read the value (the access stays until removed)"
        case ReadAccess.NOT_PERMITTED:
            return (
                "oauth-bot could not give you read access (it lacks the right to assign roles on the "
                "vault); the oauth-bot admins have been told: ask them for Key Vault Secrets User on it"
            )
        case ReadAccess.NO_USER:
            return (
                "oauth-bot could not match you to a Microsoft Entra ID user (by your Slack profile's "
                "email), so it could not give you read access; ask the oauth-bot admins"
            )
        case _:
            return "read access could not be granted just now; use Get read access later, or ask the admins"


def request_failed(request: Request, message: str) -> Message:
    parts = [text(f"Request #{request.id} failed: ", bold=True), text(message)]
    if not at_secret_limit(request):  # (Slack refuses an empty text element)
        parts.append(text("\nThe admins have been told and can retry it."))
    blocks: list[Block] = [RichTextBlock(elements=[RichTextSectionElement(elements=parts)])]
    if at_secret_limit(request):
        blocks.append(failed_actions(request))
    return f"Request #{request.id} failed.", dicts(blocks)


def request_denied(request: Request) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        text(f"Request #{request.id} was denied by ", bold=True),
                        user_mention(request.approver_id or ""),
                        text(".\nReason: "),
                        text(request.deny_reason or "none given"),
                    ]
                )
            ]
        )
    ]
    return f"Request #{request.id} was denied.", dicts(blocks)


# --- lists, reminders, retirements --------------------------------------------------------


def read_access_granted(grant: ReadGrant, vault_url: str) -> str:
    """The answer to /oauth-secret access and Get read access (mrkdwn; IDs only)."""
    until = f"until {date(grant.expires_at)}" if grant.expires_at else "until the access is removed"
    secret_id = f"{vault_url.rstrip('/')}/secrets/{secret_name_for(grant.client_id)}"
    return (
        f"You can read the client secret of app `{grant.client_id}` {until}. "
        f"Azure CLI: `az keyvault secret show --id {secret_id} --query value -o tsv` "
        "(access can take a few minutes to apply)."
    )
