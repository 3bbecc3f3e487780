"""The approval card and the messages about one request (received, denied, done, failed)."""

from __future__ import annotations

from collections.abc import Sequence
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
from bot.slack.ids import Action
from bot.slack.request_rows import TITLES, request_rows
from bot.slack.views import Message, code, date, dicts, facts, simple, text, user_mention


def _mentions(user_ids: Sequence[str]) -> list[Any]:
    """@a, @b and @c"""
    parts: list[Any] = []
    for index, user_id in enumerate(user_ids):
        if index:
            parts.append(text(" and " if index == len(user_ids) - 1 else ", "))
        parts.append(user_mention(user_id))
    return parts


def _approved_by(request: Request, approved_by: Sequence[str]) -> list[Any]:
    if request.approver_id is None and request.rule_number is not None:
        return [text(f"Approved by policy: rule {request.rule_number}", bold=True)]
    people = list(approved_by) if request.rule_number is not None and approved_by else []
    if not people and request.approver_id:
        people = [request.approver_id]
    return [text("Approved by ", bold=True), *_mentions(people)]


def _status_line(request: Request, approved_by: Sequence[str] = ()) -> list[Any] | None:
    """What happened to the request, on its card (None while it is pending)."""
    approver = [user_mention(request.approver_id)] if request.approver_id else []
    approved = _approved_by(request, approved_by)
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


def _rule_lines(request: Request, approved_by: Sequence[str]) -> list[Block]:
    """The approval policy's rule, and (while pending) the approvals so far and how many remain."""
    if request.rule_number is None:
        return []
    parts: list[Any] = [text(request.rule_text or f"Rule {request.rule_number}", italic=True)]
    if request.status == Status.PENDING:
        needed, done = request.approvals_needed, len(approved_by)
        parts.append(text(f"\nApprovals: {done} of {needed}", bold=True))
        if approved_by:
            parts += [text(" (by "), *_mentions(approved_by), text(")")]
        left = needed - done
        parts.append(text(f"; {left} more {'is' if left == 1 else 'are'} needed."))
    return [RichTextBlock(elements=[RichTextSectionElement(elements=parts)])]


def request_card(request: Request, approved_by: Sequence[str] = ()) -> Message:
    title = TITLES[request.kind]
    blocks: list[Block] = [
        HeaderBlock(text=f"{title} request #{request.id}"),
        facts(request_rows(request)),
        *_rule_lines(request, approved_by),
    ]
    status = _status_line(request, approved_by)
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
                        + (
                            f"Approvers: {request.approver_set}; not your own request."
                            if request.approver_set
                            else "Admins only; not your own request."
                        )
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
                        text(
                            f"The approvers ({request.approver_set}) decide in "
                            if request.approver_set
                            else "The admins decide in "
                        ),
                        RichTextElementParts.Channel(channel_id=approval_channel),
                        text(
                            "; you will be told here once it is granted."
                            if request.kind == Kind.READ_ACCESS
                            else "; you will get the IDs here once it is approved."
                            if request.federated is not None or request.kind == Kind.REMOVE_SECRET
                            else "; you will get the IDs and a Key Vault link here once it is approved."
                        ),
                    ]
                )
            ]
        ),
        facts(request_rows(request)[1:]),
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


def approvers_reminder(
    request: Request, users: Sequence[str], usergroup: str | None, *, escalated: bool
) -> Message:
    """The threaded reply on a card that has waited: names the approvers, or the admins."""
    named: list[Any] = [RichTextElementParts.UserGroup(usergroup_id=usergroup)] if usergroup else []
    named += _mentions(users)
    if escalated:
        lead = f"Request #{request.id} is still waiting for a decision; over to the oauth-bot admins: "
    else:
        lead = f"Request #{request.id} is waiting for approval: "
    tail = f". It expires {date(request.expires_at)} if nobody decides."
    parts = [text(lead), *(named or [text("(no approver left in Slack)")]), text(tail)]
    blocks: list[Block] = [RichTextBlock(elements=[RichTextSectionElement(elements=parts)])]
    return f"Request #{request.id} is waiting for approval.", dicts(blocks)


def request_waiting(request: Request) -> Message:
    """To the requester, when the approvers are reminded."""
    return simple(
        f"Request #{request.id} is still waiting for approval; the approvers have been reminded. "
        f"It expires {date(request.expires_at)} if nobody decides by then."
    )


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
