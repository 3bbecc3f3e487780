"""What each kind of request holds when it is filed: plain builders from the app it is about
and what the asker gave. Intake files them (limits, the approval policy's rule, the card)."""

from __future__ import annotations

from datetime import datetime

from bot.core.model import Credential, ExtraReader, FederatedCredentialSpec, Kind, ManagedApp, Request
from bot.core.validation import NewAppInput

READ_ACCESS_DESCRIPTION = "Read access to the client secret"  # a read-access request's description


def new_app(
    *, requester_id: str, team_id: str | None, data: NewAppInput, readers: tuple[ExtraReader, ...] = ()
) -> Request:
    return Request(
        kind=Kind.NEW_APP,
        requester_id=requester_id,
        team_id=team_id,
        display_name=data.display_name,
        sign_in_audience=data.sign_in_audience,
        redirect_uri=data.redirect_uri,
        redirect_platform=data.redirect_platform,
        secret_description=data.secret_description,
        secret_days=data.secret_days,
        justification=data.justification,
        federated=data.federated,
        extra_readers=readers,
    )


def rotation(
    app: ManagedApp,
    *,
    requester_id: str,
    team_id: str | None,
    days: int,
    lifetime_note: str | None,
    grace_days: float,
    now: datetime,
    readers: tuple[ExtraReader, ...] = (),
) -> Request:
    return Request(
        kind=Kind.ROTATE,
        requester_id=requester_id,
        team_id=team_id,
        display_name=app.display_name,
        sign_in_audience=app.sign_in_audience,
        secret_description=f"Rotated by oauth-bot {now:%Y-%m-%d}",
        secret_days=days,
        lifetime_note=lifetime_note,
        justification="Rotate the client secret",
        client_id=app.client_id,
        object_id=app.object_id,
        grace_days=grace_days,
        extra_readers=readers,
    )


def federation(
    app: ManagedApp,
    *,
    requester_id: str,
    team_id: str | None,
    spec: FederatedCredentialSpec,
    justification: str,
) -> Request:
    return Request(
        kind=Kind.FEDERATE,
        requester_id=requester_id,
        team_id=team_id,
        display_name=app.display_name,
        sign_in_audience=app.sign_in_audience,
        secret_description="",
        secret_days=0,
        justification=justification or "Add a federated credential",
        client_id=app.client_id,
        object_id=app.object_id,
        federated=spec,
    )


def secret_removal(
    app: ManagedApp, credential: Credential, *, requester_id: str, team_id: str | None
) -> Request:
    return Request(
        kind=Kind.REMOVE_SECRET,
        requester_id=requester_id,
        team_id=team_id,
        display_name=app.display_name,
        sign_in_audience=app.sign_in_audience,
        secret_description=credential.description,
        secret_days=0,
        justification="The app signs in with a federated credential; the secret is not needed",
        client_id=app.client_id,
        object_id=app.object_id,
        key_id=credential.key_id,
        secret_end=credential.end,
    )


def read_access(app: ManagedApp, *, requester_id: str, team_id: str | None) -> Request:
    return Request(
        kind=Kind.READ_ACCESS,
        requester_id=requester_id,
        team_id=team_id,
        display_name=app.display_name,
        sign_in_audience=app.sign_in_audience,
        secret_description=READ_ACCESS_DESCRIPTION,
        secret_days=0,
        justification="Read the client secret's value in Key Vault",
        client_id=app.client_id,
        object_id=app.object_id,
    )
