"""The federated credentials oauth-bot adds: its record of each, and what their requester is told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.model import Application, FederatedCredential


@dataclass
class FederatedRecord:
    """A federated identity credential oauth-bot added (and so may list and remove)."""

    credential_id: str
    client_id: str
    name: str
    issuer: str
    subject: str
    request_id: int
    created_at: datetime | None = None
    removed_at: datetime | None = None


@dataclass(frozen=True)
class FederationReady:
    """What the requester of a federated credential is told: the IDs and the trust, no secret."""

    app: Application
    tenant_id: str
    credential: FederatedCredential
    authority: str  # https://login.microsoftonline.com/{tenant} (the cloud's login host)
