"""Microsoft Graph's JSON read into the core's types."""

from __future__ import annotations

from typing import Any

from bot.core.clock import parse_iso
from bot.core.model import (
    Application,
    FederatedCredential,
    PasswordCredential,
)


def password_from_graph(data: dict[str, Any]) -> PasswordCredential:
    """A passwordCredential as Graph sends it (never with its secretText)."""
    return PasswordCredential(
        key_id=str(data["keyId"]),
        display_name=str(data.get("displayName") or ""),
        hint=str(data.get("hint") or ""),
        start=parse_iso(data["startDateTime"]) if data.get("startDateTime") else None,
        end=parse_iso(data["endDateTime"]) if data.get("endDateTime") else None,
    )


def application_from_graph(data: dict[str, Any]) -> Application:
    return Application(
        object_id=str(data["id"]),
        client_id=str(data["appId"]),
        display_name=str(data.get("displayName") or ""),
        sign_in_audience=str(data.get("signInAudience") or ""),
        passwords=tuple(password_from_graph(p) for p in data.get("passwordCredentials") or ()),
    )


def federated_from_graph(data: dict[str, Any]) -> FederatedCredential:
    return FederatedCredential(
        id=str(data["id"]),
        name=str(data["name"]),
        issuer=str(data.get("issuer") or ""),
        subject=str(data.get("subject") or ""),
        audiences=tuple(str(a) for a in data.get("audiences") or ()),
        description=str(data.get("description") or ""),
    )
