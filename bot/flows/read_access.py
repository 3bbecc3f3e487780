"""Read access to one's own secret: Key Vault Secrets User on exactly that vault secret, for
the requester, for OAUTH_BOT_READ_ACCESS_HOURS, then taken away by a scheduled job.

- On a new secret (new app, rotation) the grant is a logged step ("grant_read") just before
  the DM, which says until when the value can be read; the requester's Entra user (matched by
  their Slack email) is looked up beside the secret's issuance, so the grant adds one remote
  call (the PUT) to the way to the DM.
- Assignment names derive from the request and the person: a rerun meets the same one, no twin.
- If the bot may not assign the role (403) the request still completes; the DM says whom to ask.
- Revocation removes only assignments the bot made, and only when no later grant still
  rests on the same assignment (a 409 on a grant means the person holds it already: the new
  grant adopts that assignment).
- Extra readers (groups, service principals / managed identities) named on the request are
  checked against Graph when it is filed (`resolve_readers`) and granted the same role on the
  same secret beside the requester's grant, with no expiry (for as long as the app exists); a
  rotation makes a new version of the same secret, so their assignments carry over and the
  grant is a 200 (or 409: adopted). A request that fails after granting has its grants ended
  (`withdraw`): marked due now, so the scheduled job finishes what a failed DELETE left.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import replace
from datetime import datetime, timedelta

from bot.config import Settings
from bot.core.access import USER_READ_ROLE, Access
from bot.core.clock import iso
from bot.core.errors import AssignmentNotPermitted, NotAllowed, NotFound, RemoteError
from bot.core.model import (
    ExtraReader,
    IssuedSecret,
    ManagedApp,
    ReadAccess,
    ReadGrant,
    Request,
    secret_name_for,
)
from bot.core.ports import AccessGrants, Directory, Notifier, Repository, Steps
from bot.flows.outcomes import Outcomes, finished
from bot.flows.readers import look_up_readers

log = logging.getLogger(__name__)
# Assignment names: uuid5 in this namespace of "request uid:principal id" (or, on demand,
# "client id:principal id:time"), so a repeated PUT names the same assignment.
GRANT_NAMESPACE = uuid.UUID("6f617574-682d-626f-742d-726561646572")
NOT_SET_UP = (
    "Per-secret read access is not set up in oauth-bot (KEY_VAULT_RESOURCE_ID). To read the value you "
    "need the Key Vault Secrets User role on the vault or on the secret: ask the oauth-bot admins."
)


def assignment_name(*parts: object) -> str:
    return str(uuid.uuid5(GRANT_NAMESPACE, ":".join(str(p) for p in parts)))


class ReadAccessFlow:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        graph: Directory,
        notifier: Notifier,
        access: Access,
        grants: AccessGrants | None,
        steps: Steps,
        pool: Executor,
        granted_roles: Callable[[], set[str]],
        outcomes: Outcomes,
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.notifier = notifier
        self.access = access
        self.grants = grants
        self.steps = steps
        self.pool = pool
        self.granted_roles = granted_roles
        self.outcomes = outcomes
        self.on_alert: Callable[[str], None] = notifier.alert_admins

    @property
    def enabled(self) -> bool:
        return self.grants is not None

    # --- extra readers, when a request is filed --------------------------------------------
    def resolve_readers(self, object_ids: list[str]) -> tuple[ExtraReader, ...]:
        """The groups and service principals with these object ids, named as Graph names them;
        ValidationError on the extra readers field naming the first bad one."""
        return look_up_readers(self.graph, self.granted_roles, object_ids, set_up=self.grants is not None)

    # --- on a new secret ------------------------------------------------------------------
    def look_up(self, request: Request) -> Future[str | None] | None:
        """The requester's Entra object id, looked up beside the secret (None: feature off)."""
        if not self.enabled:
            return None
        return self.pool.submit(self._principal_of, request.requester_id, request.client_id)

    def grant_for(
        self, request: Request, issued: IssuedSecret, principal: Future[str | None] | None = None
    ) -> IssuedSecret:
        """Give the requester (and the request's extra readers, at the same time) read access
        to the secret just stored, once; what became of it goes into what the DM says, and the
        admins hear once of a missing right. Never fails the request."""
        if self.grants is None:
            return issued
        readers = [
            (r, self.pool.submit(self._grant_reader, request, issued, r)) for r in request.extra_readers
        ]
        try:
            issued, refusal = self._grant_requester(request, issued, principal)
        finally:  # never leave a reader's grant running past a failure (withdraw must see it)
            wait([future for _, future in readers])
        outcomes = [(reader, future.result()) for reader, future in readers]
        refused = [(r, e) for r, e in outcomes if isinstance(e, AssignmentNotPermitted)]
        if refusal is not None or refused:
            self._alert_once(
                request,
                refusal or refused[0][1],
                requester=refusal is not None,
                readers=[r for r, _ in refused],
            )
        granted = tuple(r for r, e in outcomes if e is None)
        return replace(
            issued,
            readers_granted=granted,
            readers_not_granted=tuple(r for r, e in outcomes if e is not None),
        )

    def _grant_requester(
        self, request: Request, issued: IssuedSecret, principal: Future[str | None] | None
    ) -> tuple[IssuedSecret, AssignmentNotPermitted | None]:
        readers = {r.object_id for r in request.extra_readers}
        earlier = [g for g in self._live_grants(request) if g.principal_id not in readers]
        if earlier:  # a rerun after the grant: the same answer
            return replace(issued, read_access=ReadAccess.GRANTED, read_until=earlier[-1].expires_at), None
        principal_id = (
            principal.result()
            if principal is not None
            else self._principal_of(request.requester_id, issued.app.client_id)
        )
        if principal_id is None:
            return replace(issued, read_access=ReadAccess.NO_USER), None
        name = assignment_name(request.uid, principal_id)
        try:
            grant = self.steps.run(
                request,
                "grant_read",
                lambda: self._grant(
                    client_id=issued.app.client_id,
                    principal_id=principal_id,
                    name=name,
                    request_id=request.id,
                    actor="oauth-bot",
                    why=f"oauth-bot request #{request.id}: {request.requester_id} reads the client secret "
                    f"of {issued.app.display_name} ({issued.app.client_id})",
                ),
                principal_id=principal_id,
            )
        except AssignmentNotPermitted as error:
            return replace(issued, read_access=ReadAccess.NOT_PERMITTED), error
        except RemoteError as error:
            log.warning("request %s: read access not granted: %s", request.id, error)
            self._undo(secret_name_for(issued.app.client_id), name)
            return replace(issued, read_access=ReadAccess.FAILED), None
        return replace(issued, read_access=ReadAccess.GRANTED, read_until=grant.expires_at), None

    def _live_grants(self, request: Request) -> list[ReadGrant]:
        now = self.store.now()
        return [
            g
            for g in self.store.read_grants(request_id=request.id)
            if g.revoked_at is None and (g.expires_at is None or g.expires_at > now)
        ]

    def _grant_reader(
        self, request: Request, issued: IssuedSecret, reader: ExtraReader
    ) -> RemoteError | None:
        """Key Vault Secrets User on the secret for one extra reader, kept (no expiry), once;
        None when granted, else what stopped it (AssignmentNotPermitted: the bot may not)."""
        if any(g.principal_id == reader.object_id for g in self._live_grants(request)):
            return None  # a rerun: granted already
        name = assignment_name(request.uid, reader.object_id)
        why = (
            f"oauth-bot request #{request.id}: {reader.label} ({reader.object_id}) reads the client secret "
            f"of {issued.app.display_name} ({issued.app.client_id})"
        )
        try:
            self.steps.run(
                request,
                "grant_reader",
                lambda: self._grant(
                    client_id=issued.app.client_id,
                    principal_id=reader.object_id,
                    principal_type=str(reader.kind),
                    name=name,
                    request_id=request.id,
                    actor="oauth-bot",
                    why=why,
                    keep=True,
                ),
                principal_id=reader.object_id,
            )
        except AssignmentNotPermitted as error:
            return error
        except RemoteError as error:
            log.warning("request %s: %s not granted read access: %s", request.id, reader.label, error)
            self._undo(secret_name_for(issued.app.client_id), name)
            return error
        return None

    def _alert_once(
        self,
        request: Request,
        error: RemoteError,
        *,
        requester: bool = False,
        readers: list[ExtraReader] | None = None,
    ) -> None:
        if finished(self.store, request, "alert_read_access"):
            return
        names = ", ".join(r.label for r in readers or [])
        if requester:
            also = f", nor its extra readers ({names})" if names else ""
            who = f"the requester of request #{request.id} read access to their secret{also}"
        else:
            who = f"the extra readers of request #{request.id} ({names}) read access to its secret"
        text = f"oauth-bot could not give {who}: {error}"
        try:
            self.steps.run(request, "alert_read_access", lambda: self.on_alert(text))
        except RemoteError as failure:
            log.warning("request %s: admins not told: %s", request.id, failure)

    # --- on demand: /oauth-secret access, the DM's Get read access ------------------------
    def check_on_demand(self, user_id: str, target: str) -> ManagedApp:
        """The app, if this person may get read access to its secret (owners only, not admins as such)."""
        app = self.access.resolve_app(target)
        if not self.access.is_owner(app, user_id):
            raise NotAllowed(f"Only the owners of {app.display_name} can get read access to its secret.")
        if self.grants is None:
            raise NotAllowed(NOT_SET_UP)
        return app

    def grant_on_demand(self, user_id: str, target: str) -> ReadGrant:
        """Read access for an owner of the app, now."""
        app = self.check_on_demand(user_id, target)
        principal_id = self._principal_of(user_id, app.client_id)
        if principal_id is None:
            raise NotFound(
                "No Microsoft Entra ID user has the email address of your Slack profile, so oauth-bot "
                "cannot give you read access; ask the oauth-bot admins."
            )
        name = assignment_name(app.client_id, principal_id, iso(self.store.now()))
        try:
            return self._grant(
                client_id=app.client_id,
                principal_id=principal_id,
                name=name,
                request_id=None,
                actor=user_id,
                why=f"oauth-bot: {user_id} reads the client secret of {app.display_name} ({app.client_id})",
                app=app,
            )
        except AssignmentNotPermitted as error:
            self.on_alert(
                f"oauth-bot could not give {user_id} read access to the secret of {app.display_name}: {error}"
            )
            raise AssignmentNotPermitted(
                "oauth-bot is not allowed to grant read access to the secret; the oauth-bot admins have "
                "been told and can give you the Key Vault Secrets User role on it."
            ) from None
        except RemoteError:
            self._undo(app.vault_secret_name, name)
            raise

    def _undo(self, secret_name: str, name: str) -> None:
        """After a grant that failed past the retries, its outcome is unknown (a lost answer may
        hide a made assignment): delete that name, so no access exists without a record."""
        assert self.grants is not None
        try:
            self.grants.revoke(self.grants.secret_scope(secret_name), name)
        except RemoteError as error:
            log.warning("role assignment %s not cleaned up: %s", name, error)

    # --- an approved read-access request (the worker) ---------------------------------------
    def run(self, request: Request) -> None:
        """Grant the read access a request asked for (once: a rerun finds its grant), tell the
        requester, and complete the request."""
        if self.grants is None:
            raise NotAllowed(NOT_SET_UP)
        app = self.store.managed_app(request.client_id or "")
        if app is None:
            raise NotFound(
                f"oauth-bot no longer manages the app {request.display_name} ({request.client_id})."
            )
        grant = next(iter(self._live_grants(request)), None)  # (one withdrawn on a failure: again)
        if grant is None:
            principal_id = self._principal_of(request.requester_id, app.client_id)
            if principal_id is None:
                raise NotFound(
                    "No Microsoft Entra ID user has the email address of the requester's Slack profile, so "
                    "oauth-bot cannot give them read access."
                )
            grant = self.steps.run(
                request,
                "grant_read",
                lambda: self._grant(
                    client_id=app.client_id,
                    principal_id=principal_id,
                    name=assignment_name(request.uid, principal_id),
                    request_id=request.id,
                    actor=request.approver_id or "oauth-bot",
                    why=f"oauth-bot request #{request.id}: {request.requester_id} reads the client secret "
                    f"of {app.display_name} ({app.client_id})",
                    app=app,
                ),
                principal_id=principal_id,
            )
        self.outcomes.read_access_ready(request, grant)

    # --- both -----------------------------------------------------------------------------
    def _grant(
        self,
        *,
        client_id: str,
        principal_id: str,
        name: str,
        request_id: int | None,
        actor: str,
        why: str,
        app: ManagedApp | None = None,
        principal_type: str = "User",
        keep: bool = False,
    ) -> ReadGrant:
        assert self.grants is not None
        secret_name = app.vault_secret_name if app is not None else secret_name_for(client_id)
        assignment = self.grants.grant_secret_read(
            secret_name, principal_id, name=name, description=why, principal_type=principal_type
        )
        now = self.store.now()
        hours = 0 if keep else self.settings.oauth_bot_read_access_hours
        grant = ReadGrant(
            client_id=client_id,
            principal_id=principal_id,
            scope=assignment.scope,
            assignment_name=assignment.name,
            granted_at=now,
            expires_at=now + timedelta(hours=hours) if hours else None,
            request_id=request_id,
            granted_by=actor,
            adopted=not assignment.made,
        )
        with self.store.atomic():
            grant = self.store.add_read_grant(grant)
            self.store.audit(
                actor,
                "grant.created",
                request_id=request_id,
                client_id=client_id,
                principal_id=principal_id,
                principal_type=principal_type,
                assignment=assignment.name,
                scope=assignment.scope,
                expires_at=iso(grant.expires_at) if grant.expires_at else None,
                adopted=grant.adopted,
            )
        return grant

    def _principal_of(self, user_id: str, client_id: str | None) -> str | None:
        """The Entra object id of a Slack user: as recorded for the app, else by their email."""
        if client_id:
            for owner in self.store.owners(client_id):
                if owner.slack_user_id == user_id and owner.entra_user_id:
                    return owner.entra_user_id
        if USER_READ_ROLE not in self.granted_roles():  # the bot may not look users up
            return None
        email = self.notifier.user_email(user_id)
        if not email:
            return None
        try:
            return self.graph.find_user(email)
        except RemoteError as error:
            log.info("no Entra user found for %s: %s", user_id, error)
            return None

    # --- a request that failed -------------------------------------------------------------
    def withdraw(self, request: Request) -> int:
        """End every grant made for a request that failed: due now, then revoked like expired
        ones (a DELETE that fails here is the scheduled job's to finish). How many ended."""
        if self.grants is None:
            return 0
        now = self.store.now()
        return self._revoke_each(self.store.end_read_grants(request.id, now), now, "request failed")

    # --- the scheduled job ----------------------------------------------------------------
    def revoke_expired(self) -> int:
        """Take away every grant whose time is up (idempotent); returns how many were ended."""
        if self.grants is None:
            return 0
        now = self.store.now()
        return self._revoke_each(self.store.read_grants_due(now), now, "expired")

    def _revoke_each(self, grants: list[ReadGrant], now: datetime, reason: str) -> int:
        ended = 0
        for grant in grants:
            try:
                ended += self._revoke(grant, now, reason)
            except RemoteError as error:
                log.warning("read grant %s (%s) not revoked yet: %s", grant.id, reason, error)
        return ended

    def _revoke(self, grant: ReadGrant, now: datetime, reason: str = "expired") -> int:
        assert self.grants is not None
        on_same = [g for g in self.store.read_grants_on(grant.assignment_name) if g.id != grant.id]
        still_needed = any(
            g.revoked_at is None and (g.expires_at is None or g.expires_at > now) for g in on_same
        )
        made_by_bot = not grant.adopted or any(not g.adopted for g in on_same)
        deleted = not still_needed and made_by_bot
        if deleted:
            self.grants.revoke(grant.scope, grant.assignment_name)
        with self.store.atomic():
            if not self.store.mark_read_grant_revoked(grant.id):
                return 0
            self.store.audit(
                "oauth-bot",
                "grant.revoked",
                request_id=grant.request_id,
                client_id=grant.client_id,
                principal_id=grant.principal_id,
                assignment=grant.assignment_name,
                deleted=deleted,
                reason=_why(reason, deleted=deleted, still_needed=still_needed),
            )
        return 1


def _why(reason: str, *, deleted: bool, still_needed: bool) -> str:
    if deleted:
        return reason
    return (
        f"{reason}; a later grant rests on it" if still_needed else f"{reason}; not made by oauth-bot: left"
    )
