"""What a request's approval card and its requester's confirmation list about it, by kind."""

from __future__ import annotations

from typing import Any

from bot.core.model import Kind, Request
from bot.core.validation import AUDIENCE_LABELS, PLATFORM_LABELS, lifetime_label
from bot.slack.federation import federated_rows
from bot.slack.views import code, date, user_mention

TITLES = {
    Kind.NEW_APP: "New app registration",
    Kind.ROTATE: "Secret rotation",
    Kind.READ_ACCESS: "Read access",
    Kind.FEDERATE: "Federated credential",
    Kind.REMOVE_SECRET: "Secret removal",
}


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


def request_rows(request: Request) -> list[tuple[str, Any]]:
    if request.kind == Kind.ROTATE:
        return _rotation_rows(request)
    if request.kind == Kind.READ_ACCESS:
        return [
            ("Requester", user_mention(request.requester_id)),
            ("App", request.display_name),
            ("Application (client) ID", code(request.client_id or "")),
            ("Access", "read the client secret's value in Key Vault (Key Vault Secrets User on that secret)"),
        ]
    if request.kind == Kind.FEDERATE and request.federated is not None:
        return [
            ("Requester", user_mention(request.requester_id)),
            ("App", request.display_name),
            ("Application (client) ID", code(request.client_id or "")),
            *federated_rows(request.federated),
            ("Justification", request.justification),
        ]
    if request.kind == Kind.REMOVE_SECRET:
        return [
            ("Requester", user_mention(request.requester_id)),
            ("App", request.display_name),
            ("Application (client) ID", code(request.client_id or "")),
            ("Secret ID", code(request.key_id or "")),
            ("Secret description", request.secret_description),
            ("Expires", date(request.secret_end)),
            ("Why", request.justification),
            ("On approval", "the secret is removed from the app and its value from Key Vault"),
        ]
    redirect = (
        f"{request.redirect_uri} ({PLATFORM_LABELS.get(request.redirect_platform or '', '')})"
        if request.redirect_uri
        else None
    )
    # A new app signs in with a federated credential (the trust, in full) or a client secret.
    sign_in = (
        federated_rows(request.federated)
        if request.federated is not None
        else [
            ("Secret description", request.secret_description),
            ("Secret expiry", lifetime_label(request.secret_days)),
        ]
    )
    return [
        ("Requester", user_mention(request.requester_id)),
        ("Name", request.display_name),
        ("Supported account types", AUDIENCE_LABELS.get(request.sign_in_audience, request.sign_in_audience)),
        ("Redirect URI", redirect),
        *sign_in,
        ("Justification", request.justification),
        *_reader_rows(request),
    ]
