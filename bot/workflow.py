"""The request state machine: submit → approve → create app → secret → vault → notify.

Each step is written to the step log before and after it runs and is idempotent or
guarded, so a run that stops anywhere can be run again to completion:
- the application is created with an upsert on a uniqueName derived from the request;
- a client secret is recorded as ours only once its value is in the vault; any other
  secret found on the app (from a crash between addPassword and the vault write, or a
  retried addPassword) is an orphan and is removed;
- the secret value lives only in this process's memory between addPassword and the
  vault write. If the vault write fails for good, the secret is removed again.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

from bot.azure.graph import GraphClient
from bot.azure.vault import Vault
from bot.config import Settings
from bot.core.clock import iso, utc
from bot.core.errors import (
    CardNotPosted,
    Conflict,
    GraphError,
    LifetimePolicyError,
    NotAllowed,
    NotFound,
    OAuthBotError,
    OutcomeUnknown,
    RemoteError,
    SecretLimitReached,
    SecretRemovalNeedsConfirmation,
    ValidationError,
    VaultError,
)
from bot.core.model import (
    PERSONAL_ACCOUNT_AUDIENCES,
    Application,
    Credential,
    CredentialStatus,
    Kind,
    ManagedApp,
    NewPassword,
    PasswordCredential,
    Request,
    SecretValue,
    Status,
    StepState,
    VaultReference,
    require_status,
    secret_name_for,
)
from bot.engine.liveness import Liveness, SameProcess
from bot.policy import NewAppInput, check_can_decide, check_request_limits, is_admin
from bot.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
Verify = Callable[[str, SecretValue], bool]  # (client id, value) → does it sign in?

APP_TAG = "oauth-bot"
OWNER_ROLE = "Application.ReadWrite.All"
MAX_PERSONAL_ACCOUNT_SECRETS = 2
MAX_ADD_PASSWORD_ATTEMPTS = 3
MAX_ATTEMPTS = 5  # claims of one request (each crash or restart is one) before it is failed
SECRET_LIMIT_MARK = "client secrets, and it has"  # in the message of SecretLimitReached
USER_READ_ROLE = "User.Read.All"


@dataclass(frozen=True)
class IssuedSecret:
    """What the requester is told: IDs and where the value is — never the value."""

    app: Application
    tenant_id: str
    key_id: str
    description: str
    hint: str
    end: datetime
    vault: VaultReference
    verified: bool | None = None


class Notifier(Protocol):
    """What the workflow tells people. The Slack implementation lives in bot/slack/notifier.py."""

    def user_email(self, user_id: str) -> str | None: ...
    def post_request_card(self, request: Request) -> tuple[str, str]: ...
    def update_request_card(self, request: Request) -> None: ...
    def request_received(self, request: Request) -> None: ...
    def request_denied(self, request: Request) -> None: ...
    def request_cancelled(self, request: Request) -> None: ...
    def request_expired(self, request: Request) -> None: ...
    def secret_ready(self, request: Request, issued: IssuedSecret) -> None: ...
    def request_failed(self, request: Request, message: str) -> None: ...
    def alert_admins(self, text: str) -> None: ...


class Workflow:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        graph: GraphClient,
        vault: Vault,
        notifier: Notifier,
        granted_roles: Callable[[], set[str]],
        verify: Verify | None = None,
        executor: ThreadPoolExecutor | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.vault = vault
        self.notifier = notifier
        self._granted_roles = granted_roles
        self._verify = verify or (lambda _client_id, _secret: False)
        self._pool = executor or ThreadPoolExecutor(max_workers=8, thread_name_prefix="step")
        self.liveness = liveness or SameProcess(new_worker_id())
        self.worker_id = self.liveness.worker_id
        self.stopping = threading.Event()  # set on shutdown: running requests stop at the next step
        self.on_change: Callable[[list[str]], None] = lambda _users: None  # e.g. refresh App Homes
        self._heartbeats: dict[int, _Heartbeat] = {}
        self._heartbeats_guard = threading.Lock()
        self._card_locks: dict[int, threading.Lock] = {}
        self._card_locks_guard = threading.Lock()

    @property
    def tenant_id(self) -> str:
        return str(self.settings.azure_tenant_id)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.oauth_bot_lease_seconds)

    # --- decisions (called from Slack handlers) ---------------------------------------
    def submit_new_app(self, *, requester_id: str, team_id: str | None, data: NewAppInput) -> Request:
        """Store a pending request, post its approval card and confirm to the requester."""
        request = self._file(
            Request(
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
            )
        )
        self.announce(request)
        return request

    def _file(self, request: Request) -> Request:
        """Store a new pending request (within the requester's limits) and audit it."""
        request.uid, request.status, request.notified, request.attempts = (
            uuid.uuid4().hex,
            Status.PENDING,
            False,
            0,
        )
        with self.store.atomic():
            self.store.lock_requester(request.requester_id)  # count and insert as one, on any replica
            check_request_limits(self.settings, self.store, request.requester_id)
            self.store.add_request(request, ttl=timedelta(days=self.settings.oauth_bot_request_ttl_days))
            self.store.audit(
                request.requester_id,
                "request.submitted",
                request_id=request.id,
                kind=request.kind,
                display_name=request.display_name,
                client_id=request.client_id,
            )
        return request

    # --- rotation -------------------------------------------------------------------------
    def find_managed_app(self, target: str) -> ManagedApp:
        """The app the bot manages with this client ID or display name."""
        target = target.strip()
        if not target:
            raise ValidationError({"target": "Name the app: its client ID or its name."})
        app = self.store.managed_app(target)
        if app is not None:
            return app
        named = self.store.managed_apps_named(target)
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            ids = ", ".join(a.client_id for a in named)
            raise ValidationError({"target": f"Several apps are named {target!r}; use a client ID: {ids}."})
        raise NotFound(
            f"oauth-bot does not manage an app with client ID or name {target!r}. It only rotates "
            "secrets of the app registrations it created; ask an identity admin for others."
        )

    def is_owner(self, app: ManagedApp, user_id: str) -> bool:
        """An owner of record, or (when the bot may read users) an Entra owner of the app."""
        if any(o.slack_user_id == user_id for o in self.store.owners(app.client_id)):
            return True
        if USER_READ_ROLE not in self._granted_roles():
            return False
        email = self.notifier.user_email(user_id)
        entra_id = self.graph.find_user(email) if email else None
        return bool(entra_id) and entra_id in self.graph.list_owners(app.object_id)

    def check_can_manage(self, app: ManagedApp, user_id: str) -> None:
        if is_admin(self.settings, user_id) or self.is_owner(app, user_id):
            return
        raise NotAllowed(
            f"Only the owners of {app.display_name} and the oauth-bot admins can manage its secrets."
        )

    def submit_rotation(self, *, requester_id: str, team_id: str | None, target: str) -> Request:
        """File a rotation; owners may rotate without approval when the setting allows it."""
        app = self.find_managed_app(target)
        self.check_can_manage(app, requester_id)
        today = self.store.now().strftime("%Y-%m-%d")
        request = self._file(
            Request(
                kind=Kind.ROTATE,
                requester_id=requester_id,
                team_id=team_id,
                display_name=app.display_name,
                sign_in_audience=app.sign_in_audience,
                secret_description=f"Rotated by oauth-bot {today}",
                secret_days=self.settings.default_secret_days,
                justification="Rotate the client secret",
                client_id=app.client_id,
                object_id=app.object_id,
                grace_days=self.settings.oauth_bot_grace_days,
            )
        )
        self_service = self.settings.oauth_bot_owner_self_rotate and self.is_owner(app, requester_id)
        if self_service:
            self._move(
                request.id,
                actor=requester_id,
                action="request.approved",
                from_status=[Status.PENDING],
                to_status=Status.APPROVED,
                detail={"self_service": True},
                approver_id=requester_id,
                decided_at=self.store.now(),
            )
            return self.store.get_request(request.id)
        self.announce(request)
        return request

    def retire_oldest_and_retry(self, request_id: int, *, actor: str, key_id: str | None = None) -> Request:
        """For a rotation that an admin approved and that failed at the two-secret limit: send it
        back to the worker, which first removes a secret to make room (a logged step), then rotates.

        The status change comes first (a compare-and-set), so a double click removes at most one
        secret. Without `key_id` the secret is the oldest one oauth-bot issued; a secret oauth-bot
        did not issue is removed only when an admin names it (`key_id`, confirmed by name and
        Secret ID): otherwise SecretRemovalNeedsConfirmation says which one it would be."""
        request = self.store.get_request(request_id)
        require_status(request, Status.FAILED)
        approved = request.approver_id is not None
        if request.kind != Kind.ROTATE or not approved or not self._failed_at_secret_limit(request):
            raise Conflict(
                f"Request #{request_id} did not fail at the two-secret limit after an approval: "
                "nothing is retired for it."
            )
        app = self.store.managed_app(request.client_id or "")
        if app is None:
            raise NotFound(f"Request #{request_id} has no app the bot manages.")
        self.check_can_manage(app, actor)
        current = self.graph.get_application(app.object_id)
        if current is None or not current.passwords:
            raise NotFound(f"{app.display_name} has no client secret to retire.")
        target = self._secret_to_retire(app, current, actor, key_id)
        self._move(
            request_id,
            actor=actor,
            action="request.retried",
            from_status=[Status.FAILED],
            to_status=Status.APPROVED,
            detail={"retire_key_id": target.key_id, "issued_by_oauth_bot": key_id is None},
            error=None,
            attempts=0,
        )
        self.store.record_step(
            request_id, "retire_oldest", StepState.REQUESTED, key_id=target.key_id, actor=actor
        )
        return self.store.get_request(request_id)

    def _secret_to_retire(
        self, app: ManagedApp, current: Application, actor: str, key_id: str | None
    ) -> PasswordCredential:
        if key_id is not None:
            if not is_admin(self.settings, actor):
                raise NotAllowed(
                    "Only an oauth-bot admin can remove a client secret that oauth-bot did not issue."
                )
            named = next((p for p in current.passwords if p.key_id == key_id), None)
            if named is None:
                raise NotFound(f"{app.display_name} has no client secret with Secret ID {key_id}.")
            return named
        issued = {c.key_id for c in self.store.credentials(app.client_id)}
        ours = [p for p in current.passwords if p.key_id in issued]
        if ours:
            return min(ours, key=lambda p: p.end or self.store.now())
        oldest = min(current.passwords, key=lambda p: p.end or self.store.now())
        raise SecretRemovalNeedsConfirmation(app.display_name, oldest)

    def _failed_at_secret_limit(self, request: Request) -> bool:
        failures = [
            s for s in self.store.steps(request.id) if s.step == "request" and s.state == StepState.FAILED
        ]
        return bool(failures) and failures[-1].detail.get("code") == SecretLimitReached.code

    def _retire_for_room(self, request: Request, app: Application) -> Application:
        """The removal that "Retire oldest and rotate" asked for, once, as a logged step."""
        asked = [s for s in self.store.steps(request.id) if s.step == "retire_oldest"]
        if not asked or asked[-1].state == StepState.FINISHED:
            return app
        key_id = str(asked[-1].detail["key_id"])

        def retire() -> str:
            self.graph.remove_password(app.object_id, key_id)
            with self.store.atomic():
                self.store.set_credential_status(
                    key_id, CredentialStatus.REMOVED, removed_at=self.store.now()
                )
                self.store.audit(
                    str(asked[-1].detail.get("actor") or "oauth-bot"),
                    "secret.removed",
                    request_id=request.id,
                    client_id=app.client_id,
                    key_id=key_id,
                    reason="retired to make room for a rotation",
                )
            return key_id

        self._step(request, "retire_oldest", retire, key_id=key_id)
        return self.graph.get_application(app.object_id) or app

    def announce(self, request: Request) -> None:
        """Post the approval card (once) and confirm to the requester.

        A request whose card cannot be posted is failed at once (no admin would ever see it),
        and the requester is told why."""
        if request.card_ts is None:
            try:
                channel, ts = self.notifier.post_request_card(request)
            except RemoteError as error:
                message = (
                    f"the approval card could not be posted ({error}). The oauth-bot admins must check "
                    "OAUTH_BOT_APPROVAL_CHANNEL and invite the bot to that channel; then ask again."
                )
                log.error("request %s: approval card not posted: %s", request.id, error)
                self._safely(
                    self.notifier.alert_admins, f"oauth-bot could not post request #{request.id}: {message}"
                )
                self._move(
                    request.id,
                    actor="oauth-bot",
                    action="request.failed",
                    from_status=[Status.PENDING],
                    to_status=Status.FAILED,
                    detail={"error": message},
                    error=message,
                )
                raise CardNotPosted(f"Request #{request.id} was not filed: {message}") from None
            self.store.update_request(request.id, card_channel=channel, card_ts=ts)
            request.card_channel, request.card_ts = channel, ts
        self._safely(self.notifier.request_received, request)

    def approve(self, request_id: int, *, actor: str, retire_old_now: bool = False) -> Request:
        """Move pending → approved exactly once; the caller then hands it to the worker and
        refreshes the card (in parallel: the card is not on the way to the secret)."""
        request = self.store.get_request(request_id)
        check_can_decide(self.settings, actor, request)
        extra = {"grace_days": 0.0} if retire_old_now and request.kind == Kind.ROTATE else {}
        self._move(
            request_id,
            actor=actor,
            action="request.approved",
            from_status=[Status.PENDING],
            to_status=Status.APPROVED,
            detail={"retire_old_now": bool(extra)},
            approver_id=actor,
            decided_at=self.store.now(),
            **extra,
        )
        return self.store.get_request(request_id)

    def deny(self, request_id: int, *, actor: str, reason: str) -> Request:
        request = self.store.get_request(request_id)
        check_can_decide(self.settings, actor, request)
        self._move(
            request_id,
            actor=actor,
            action="request.denied",
            from_status=[Status.PENDING],
            to_status=Status.DENIED,
            detail={"reason_length": len(reason)},
            approver_id=actor,
            decided_at=self.store.now(),
            deny_reason=reason,
        )
        self.refresh_card(request_id)
        request = self.store.get_request(request_id)
        self._safely(self.notifier.request_denied, request)
        return request

    def cancel(self, request_id: int, *, actor: str) -> Request:
        request = self.store.get_request(request_id)
        if request.requester_id != actor:
            raise NotAllowed("Only the person who asked can cancel a request.")
        self._move(
            request_id,
            actor=actor,
            action="request.cancelled",
            from_status=[Status.PENDING],
            to_status=Status.CANCELLED,
            decided_at=self.store.now(),
        )
        self.refresh_card(request_id)
        request = self.store.get_request(request_id)
        self._safely(self.notifier.request_cancelled, request)
        return request

    def retry(self, request_id: int, *, actor: str) -> Request:
        """An admin sends a failed request through the workflow again (every step is safe to repeat)."""
        request = self.store.get_request(request_id)
        check_can_decide(self.settings, actor, request)
        self._move(
            request_id,
            actor=actor,
            action="request.retried",
            from_status=[Status.FAILED],
            to_status=Status.APPROVED,
            error=None,
            attempts=0,
        )
        self.refresh_card(request_id)
        return self.store.get_request(request_id)

    def expire_stale(self) -> list[int]:
        """Pending requests past their time: the card says so, the requester is told."""
        expired = []
        for request in self.store.expired_pending():
            try:
                self._move(
                    request.id,
                    actor="oauth-bot",
                    action="request.expired",
                    from_status=[Status.PENDING],
                    to_status=Status.EXPIRED,
                )
            except Conflict:
                continue  # decided meanwhile, or expired by another replica
            self.refresh_card(request.id)
            self._safely(self.notifier.request_expired, self.store.get_request(request.id))
            expired.append(request.id)
        return expired

    # --- execution (called by the worker) ---------------------------------------------
    def execute(self, request_id: int, *, taking_over: str | None = None) -> bool:
        """Run an approved request to its end if this worker can claim it. True if it ran.

        While it runs, a heartbeat renews the lease; if the lease is lost anyway (this process
        stalled or lost the database, and another took the work over), the run stops at its
        next step boundary and leaves the request to the new holder. On shutdown it stops there
        too and gives the lease back. A request claimed MAX_ATTEMPTS times without finishing
        (each crash or restart is one) is failed and reported instead of being run forever."""
        if not self.store.claim(request_id, self.worker_id, self.lease, taking_over=taking_over):
            return False
        if taking_over is not None:
            log.info("request %s: taken over from %s, a worker that is gone", request_id, taking_over)
        heartbeat = _Heartbeat(self.store, request_id, self.worker_id, self.lease)
        with self._heartbeats_guard:
            self._heartbeats[request_id] = heartbeat
        try:
            request = self.store.get_request(request_id)
            try:
                if request.attempts > MAX_ATTEMPTS:
                    self._fail(request, self._too_many_attempts(request))
                elif request.kind == Kind.NEW_APP:
                    self._run_new_app(request)
                else:
                    self._run_rotation(request)
            except LeaseLost:
                log.warning("request %s: lease lost to another worker; stopped here", request_id)
                return True
            except ShuttingDown:
                log.info("request %s: stopped for shutdown; the next worker carries it on", request_id)
            except OAuthBotError as error:
                self._fail(request, str(error), code=error.code)
            except Exception:
                log.exception("request %s failed unexpectedly", request_id)
                self._fail(request, "an unexpected error stopped it; the admins can retry it")
            self.store.release(request_id, self.worker_id)
        finally:
            heartbeat.stop()
            with self._heartbeats_guard:
                self._heartbeats.pop(request_id, None)
        return True

    def _too_many_attempts(self, request: Request) -> str:
        started = [s.step for s in self.store.steps(request.id) if s.state == StepState.STARTED]
        where = f" (the last one at step {started[-1]})" if started else ""
        return (
            f"it was started {MAX_ATTEMPTS} times without finishing{where}, so oauth-bot stopped "
            "trying; the admins can look at the logs and retry it"
        )

    def _fail(self, request: Request, message: str, *, code: str | None = None) -> None:
        self.store.record_step(request.id, "request", StepState.FAILED, error=message, code=code)
        try:
            self._move(
                request.id,
                actor="oauth-bot",
                action="request.failed",
                from_status=[Status.APPROVED],
                to_status=Status.FAILED,
                detail={"error": message},
                error=message,
            )
        except Conflict:
            return  # no longer ours to fail
        self.refresh_card(request.id)
        self._safely(self.notifier.request_failed, self.store.get_request(request.id), message)

    def _step(self, request: Request, name: str, action: Callable[[], T], **detail: Any) -> T:
        """Run one step between a 'started' and a 'finished' (or 'failed') record, only while
        this worker still holds the request's lease."""
        self._check_lease(request.id)
        self.store.record_step(request.id, name, StepState.STARTED, **detail)
        _crash_point(f"{name}:started")
        try:
            result = action()
        except OAuthBotError as error:
            self.store.record_step(request.id, name, StepState.FAILED, error=str(error))
            raise
        self.store.record_step(request.id, name, StepState.FINISHED, **_ids(result))
        _crash_point(f"{name}:finished")
        return result

    def _move(
        self,
        request_id: int,
        *,
        actor: str,
        action: str,
        from_status: list[Status],
        to_status: Status,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> None:
        """Compare-and-set the status and write its audit event in one transaction; Conflict
        if another click, replica or job moved it first."""
        with self.store.atomic():
            if not self.store.transition(request_id, from_status=from_status, to_status=to_status, **values):
                raise Conflict(_already(self.store.get_request(request_id)))
            self.store.audit(actor, action, request_id=request_id, **(detail or {}))

    def _check_lease(self, request_id: int) -> None:
        if self.stopping.is_set():
            raise ShuttingDown(request_id)
        with self._heartbeats_guard:
            heartbeat = self._heartbeats.get(request_id)
        if heartbeat is None:
            return
        if not heartbeat.lost.is_set() and not self.liveness.holding():
            heartbeat.lost.set()  # others see this worker as dead and may carry the request on
        if heartbeat.lost.is_set():
            raise LeaseLost(request_id)

    def _run_new_app(self, request: Request) -> None:
        app = self._step(request, "create_app", lambda: self._create_app(request))
        if request.client_id is None:
            with self.store.atomic():
                self.store.update_request(request.id, client_id=app.client_id, object_id=app.object_id)
                self.store.audit(
                    "oauth-bot",
                    "app.created",
                    request_id=request.id,
                    client_id=app.client_id,
                    object_id=app.object_id,
                    display_name=app.display_name,
                )
            request.client_id, request.object_id = app.client_id, app.object_id
        self.store.add_managed_app(
            ManagedApp(
                client_id=app.client_id,
                object_id=app.object_id,
                display_name=app.display_name,
                sign_in_audience=app.sign_in_audience,
                vault_secret_name=secret_name_for(app.client_id),
                request_id=request.id,
            ),
            owners={request.requester_id: None},
        )
        # The service principal and the owner are not on the way to the secret: overlap them.
        side_steps: list[Future[Any]] = [
            self._pool.submit(
                self._step,
                request,
                "service_principal",
                lambda: self.graph.ensure_service_principal(app.client_id),
            ),
            self._pool.submit(self._step, request, "owners", lambda: self._add_entra_owner(request, app)),
        ]
        issued = self._issue_secret(request, app)
        for future in side_steps:
            future.result()
        self._finish(request, issued)

    def _run_rotation(self, request: Request) -> None:
        app = self.graph.get_application(request.object_id or "")
        if app is None:
            raise NotFound(
                f"The app {request.display_name} ({request.client_id}) no longer exists in Entra ID."
            )
        app = self._retire_for_room(request, app)
        if (
            request.key_id is None
            and not self._steps_started(request, "add_password")
            and app.sign_in_audience in PERSONAL_ACCOUNT_AUDIENCES
            and len(app.passwords) >= MAX_PERSONAL_ACCOUNT_SECRETS
        ):
            in_use = app.passwords
            oldest = min(in_use, key=lambda p: p.end or self.store.now())
            raise SecretLimitReached(
                f"{app.display_name} accepts personal Microsoft accounts, so Entra allows it at most "
                f"{MAX_PERSONAL_ACCOUNT_SECRETS} client secrets, and it has {len(in_use)}. Retire the oldest "
                f"(Secret ID {oldest.key_id}, expires {oldest.end:%Y-%m-%d}) first to make room."
            )
        issued = self._issue_secret(request, app, verify=self._verify)
        self._schedule_retirement(request, app, keep=issued.key_id)
        self._finish(request, issued)

    def _schedule_retirement(self, request: Request, app: Application, *, keep: str) -> None:
        """The app's older secrets stay valid for the grace period, then are removed."""
        grace = timedelta(days=request.grace_days if request.grace_days is not None else 0)
        remove_after = self.store.now() + grace
        for credential in self.store.credentials(app.client_id, statuses=(CredentialStatus.ACTIVE,)):
            if credential.key_id != keep:
                with self.store.atomic():
                    self.store.set_credential_status(
                        credential.key_id, CredentialStatus.RETIRING, remove_after=remove_after
                    )
                    self.store.audit(
                        "oauth-bot",
                        "secret.retiring",
                        request_id=request.id,
                        client_id=app.client_id,
                        key_id=credential.key_id,
                        remove_after=remove_after.isoformat(),
                    )

    def _create_app(self, request: Request) -> Application:
        body: dict[str, Any] = {
            "displayName": request.display_name,
            "signInAudience": request.sign_in_audience,
            "tags": [APP_TAG],
            "notes": (
                f"Created by oauth-bot for request #{request.id}, asked by Slack user "
                f"{request.requester_id}, approved by {request.approver_id}."
            ),
        }
        if request.redirect_uri and request.redirect_platform:
            body[request.redirect_platform] = {"redirectUris": [request.redirect_uri]}
        return self.graph.upsert_application(f"oauth-bot-{request.uid}", body)

    def _add_entra_owner(self, request: Request, app: Application) -> str | None:
        """Make the requester an Entra owner when the bot has the permissions to; else None."""
        roles = self._granted_roles()
        if OWNER_ROLE not in roles or USER_READ_ROLE not in roles:
            return None
        email = self.notifier.user_email(request.requester_id)
        user_id = self.graph.find_user(email) if email else None
        if user_id is None:
            return None
        self.graph.add_owner(app.object_id, user_id)
        self.store.set_entra_owner(app.client_id, request.requester_id, user_id)
        self.store.audit(
            "oauth-bot",
            "app.owner_added",
            request_id=request.id,
            client_id=app.client_id,
            entra_user_id=user_id,
        )
        return user_id

    # --- the secret ---------------------------------------------------------------------
    def _issue_secret(self, request: Request, app: Application, verify: Verify | None = None) -> IssuedSecret:
        """addPassword → vault (→ verify), once, with orphans from earlier attempts removed."""
        resumed = self._resume_secret(request, app)
        if resumed is not None:
            if verify is None or self._steps_finished(request, "verify"):
                return resumed
            # The value left memory with the process that stopped: read it back to check it.
            return self._verified(request, resumed, self.vault.read(resumed.vault), verify)
        try:
            new = self._add_password(request, app)
        except LifetimePolicyError:
            raise LifetimePolicyError(
                f"Your tenant's app management policy does not allow a client secret that lasts "
                f"{request.secret_days} days. Ask again with a shorter Secret expiry (oauth-bot allows up to "
                f"{self.settings.oauth_bot_max_secret_days} days; the tenant's policy is stricter).",
                code="CredentialInvalidLifetimeAsPerAppPolicy",
            ) from None
        reference = self._deposit(request, app, new)
        end = new.credential.end or self.store.now() + timedelta(days=request.secret_days)
        issued = self._record_secret(request, app, new.credential.key_id, new.credential.hint, end, reference)
        return issued if verify is None else self._verified(request, issued, new.secret, verify)

    def _add_password(self, request: Request, app: Application) -> NewPassword:
        """addPassword, never blindly repeated. Each attempt's marks (its name and start time,
        which Graph keeps) are in the step log before it is sent; when an answer is lost, the
        app's secrets are read back, the one that attempt made (if it did) is removed, since
        nobody holds its value, and a new attempt is made."""
        unknown: OutcomeUnknown | None = None
        for attempt in range(MAX_ADD_PASSWORD_ATTEMPTS):
            if unknown is not None:
                self.graph.pause_before_resend(attempt)
            # Entra compares startDateTime with its own clock: the real time, to the second.
            start = datetime.now(UTC).replace(microsecond=0)
            end = self.store.now() + timedelta(days=request.secret_days)
            try:
                return self._step(
                    request,
                    "add_password",
                    partial(self._add_and_audit, request, app, start, end),
                    display_name=request.secret_description,
                    start=iso(start),
                )
            except OutcomeUnknown as error:
                log.warning("request %s: %s; reading the app's client secrets back", request.id, error)
                self._remove_orphans(request, app.object_id, keep=set())
                unknown = error
        raise GraphError(
            f"{unknown} — {MAX_ADD_PASSWORD_ATTEMPTS} attempts, and every client secret they made was "
            "removed again, so none exists whose value nobody holds. The admins can retry.",
            status=unknown.status if unknown else None,
        )

    def _add_and_audit(
        self, request: Request, app: Application, start: datetime, end: datetime
    ) -> NewPassword:
        added = self.graph.add_password(
            app.object_id, display_name=request.secret_description, start=start, end=end
        )
        # Audited before the step is marked finished: a crash in between leaves an orphan
        # whose removal is audited too, never a secret the trail does not mention.
        self.store.audit(
            "oauth-bot",
            "secret.added",
            request_id=request.id,
            client_id=app.client_id,
            key_id=added.credential.key_id,
        )
        return added

    def _resume_secret(self, request: Request, app: Application) -> IssuedSecret | None:
        """The secret an earlier run of this request already stored, if any; orphans of an
        earlier run that stopped between addPassword and the vault are removed."""
        if request.key_id and request.vault_secret_id:
            return self._issued_from_record(request, app)
        if self._steps_started(request, "add_password"):
            adopted = self._adopt_from_vault(request, app)
            if adopted is not None:
                return adopted
            self._remove_orphans(request, app.object_id, keep=set())
        return None

    def _verified(
        self, request: Request, issued: IssuedSecret, secret: SecretValue, verify: Verify
    ) -> IssuedSecret:
        def check() -> bool:
            # Stored inside the step, like `notified`: a restart after "verify finished" keeps it.
            result = verify(issued.app.client_id, secret)
            self.store.update_request(request.id, verified=result)
            return result

        verified = self._step(request, "verify", check)
        request.verified = verified
        return replace(issued, verified=verified)

    def _deposit(self, request: Request, app: Application, new: NewPassword) -> VaultReference:
        name = secret_name_for(app.client_id)
        tags = {
            "client-id": app.client_id,
            "secret-id": new.credential.key_id,
            "request-id": str(request.id),
            "requester": request.requester_id,
            "app-name": app.display_name,
            "managed-by": APP_TAG,
        }
        try:
            return self._step(
                request,
                "vault",
                lambda: self.vault.deposit(name, new.secret, expires_on=new.credential.end, tags=tags),
                secret_name=name,
                key_id=new.credential.key_id,
            )
        except VaultError as error:
            # Nobody will ever hold this value: take the credential away again.
            self._step(
                request,
                "remove_password",
                lambda: self.graph.remove_password(app.object_id, new.credential.key_id),
                key_id=new.credential.key_id,
            )
            self.store.audit(
                "oauth-bot",
                "secret.removed",
                request_id=request.id,
                client_id=app.client_id,
                key_id=new.credential.key_id,
                reason="vault write failed",
            )
            raise VaultError(
                f"{error} The new client secret was removed again, so no credential exists "
                "whose value nobody holds.",
                status=error.status,
                code=error.code,
            ) from None

    def _record_secret(
        self,
        request: Request,
        app: Application,
        key_id: str,
        hint: str,
        end: datetime,
        reference: VaultReference,
    ) -> IssuedSecret:
        with self.store.atomic():  # the record and its audit event: both or neither
            self.store.add_credential(
                Credential(
                    key_id=key_id,
                    client_id=app.client_id,
                    description=request.secret_description,
                    hint=hint,
                    end=end,
                    vault_secret_id=reference.secret_id,
                    status=CredentialStatus.ACTIVE,
                    request_id=request.id,
                )
            )
            self.store.update_request(
                request.id, key_id=key_id, secret_end=end, vault_secret_id=reference.secret_id
            )
            self.store.audit(
                "oauth-bot",
                "secret.stored",
                request_id=request.id,
                client_id=app.client_id,
                key_id=key_id,
                vault_secret_id=reference.secret_id,
            )
        request.key_id, request.secret_end, request.vault_secret_id = key_id, end, reference.secret_id
        return IssuedSecret(
            app=app,
            tenant_id=self.tenant_id,
            key_id=key_id,
            description=request.secret_description,
            hint=hint,
            end=end,
            vault=reference,
        )

    def _issued_from_record(self, request: Request, app: Application) -> IssuedSecret:
        assert request.key_id and request.vault_secret_id and request.secret_end
        credential = self.store.credential(request.key_id)
        name, version = request.vault_secret_id.rstrip("/").split("/")[-2:]
        return IssuedSecret(
            verified=request.verified,
            app=app,
            tenant_id=self.tenant_id,
            key_id=request.key_id,
            description=request.secret_description,
            hint=credential.hint if credential else "",
            end=utc(request.secret_end),
            vault=self.vault.reference(name, version),
        )

    def _adopt_from_vault(self, request: Request, app: Application) -> IssuedSecret | None:
        """After a crash right after the vault write: the vault's latest version names the
        secret it holds; if that secret is still on the app, it is ours."""
        name = secret_name_for(app.client_id)
        current = self.vault.current(name)
        if current is None or current.tags.get("request-id") != str(request.id):
            return None
        fresh = self.graph.get_application(app.object_id)
        key_id = current.tags.get("secret-id")
        on_app = next((p for p in (fresh.passwords if fresh else ()) if p.key_id == key_id), None)
        if on_app is None or on_app.end is None:
            return None
        self._remove_orphans(request, app.object_id, keep={on_app.key_id})
        return self._record_secret(
            request, app, on_app.key_id, on_app.hint, on_app.end, self.vault.reference(name, current.version)
        )

    def _remove_orphans(self, request: Request, object_id: str, *, keep: set[str]) -> None:
        """Remove the client secrets that this request's own addPassword attempts made and whose
        value the vault does not hold. A secret is this request's when its name and start time
        are those an attempt recorded before it was sent; any other secret on the app (added in
        the portal, by another tool, by another request) is never touched."""
        app = self.graph.get_application(object_id)
        if app is None:
            return
        marks = {
            (str(s.detail.get("display_name")), str(s.detail.get("start")))
            for s in self.store.steps(request.id)
            if s.step == "add_password" and s.state == StepState.STARTED and s.detail.get("start")
        }
        held = {c.key_id for c in self.store.credentials(app.client_id)} | keep
        audited = {
            str(e.detail.get("key_id"))
            for e in self.store.audit_events(request_id=request.id)
            if e.action == "secret.added"
        }
        for password in app.passwords:
            mark = (password.display_name, iso(password.start) if password.start else "")
            if password.key_id in held or mark not in marks:
                continue
            if password.key_id not in audited:  # its answer was lost: the trail learns of it now
                self.store.audit(
                    "oauth-bot",
                    "secret.added",
                    request_id=request.id,
                    client_id=app.client_id,
                    key_id=password.key_id,
                    found="read back after an answer was lost",
                )
            self._step(
                request,
                "remove_orphan",
                partial(self.graph.remove_password, object_id, password.key_id),
                key_id=password.key_id,
            )
            self.store.audit(
                "oauth-bot",
                "secret.removed",
                request_id=request.id,
                client_id=app.client_id,
                key_id=password.key_id,
                reason="orphan: no value in the vault",
            )

    def _steps_finished(self, request: Request, name: str) -> bool:
        return any(s.step == name and s.state == StepState.FINISHED for s in self.store.steps(request.id))

    def _steps_started(self, request: Request, name: str) -> bool:
        return any(s.step == name and s.state == StepState.STARTED for s in self.store.steps(request.id))

    # --- the end ------------------------------------------------------------------------
    def _finish(self, request: Request, issued: IssuedSecret) -> None:
        if not request.notified and not self._steps_finished(request, "notify"):

            def notify() -> None:
                self.notifier.secret_ready(request, issued)
                self.store.update_request(request.id, notified=True)

            self._step(request, "notify", notify)
        self._move(
            request.id,
            actor="oauth-bot",
            action="request.completed",
            from_status=[Status.APPROVED],
            to_status=Status.COMPLETED,
            detail={"client_id": issued.app.client_id},
        )
        self.refresh_card(request.id)

    def refresh_card(self, request_id: int) -> None:
        """Show the request's current state on its card. Updates of one request are
        serialised and each re-reads the state, so a late "creating…" cannot overwrite "done"."""
        with self._card_locks_guard:
            lock = self._card_locks.setdefault(request_id, threading.Lock())
        with lock:
            request = self.store.get_request(request_id)
            self._safely(self.notifier.update_request_card, request)
        self.on_change([request.requester_id, *sorted(self.settings.admins)])

    def _safely(self, action: Callable[..., Any], *args: Any) -> None:
        """Slack side effects after a decision is stored must not undo the decision."""
        try:
            action(*args)
        except (RemoteError, OAuthBotError) as error:
            log.warning("could not %s: %s", getattr(action, "__name__", "notify"), error)


class LeaseLost(Exception):
    """This worker no longer holds the request's lease; another one carries it on."""


class ShuttingDown(Exception):
    """The process is stopping: the request stops at this step boundary and is carried on later."""


def new_worker_id() -> str:
    return f"worker-{uuid.uuid4().hex[:12]}"


class _Heartbeat:
    """Renews a request's lease every third of its length while the request runs."""

    def __init__(self, store: Store, request_id: int, owner: str, lease: timedelta) -> None:
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(store, request_id, owner, lease), name=f"lease-{request_id}", daemon=True
        )
        self._thread.start()

    def _beat(self, store: Store, request_id: int, owner: str, lease: timedelta) -> None:
        while not self._done.wait(lease.total_seconds() / 3):
            if not store.renew(request_id, owner, lease):
                self.lost.set()
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


def _crash_point(boundary: str) -> None:
    """Fault injection for the crash tests: with OAUTH_BOT_TEST_HALT_AT=step:state the worker
    stops dead at that step boundary (the test then SIGKILLs the process)."""
    if os.environ.get("OAUTH_BOT_TEST_HALT_AT") == boundary:
        log.warning("halting at %s for a crash test", boundary)
        threading.Event().wait()


def _already(request: Request) -> str:
    return f"Request #{request.id} is already {request.status}."


def _ids(result: Any) -> dict[str, Any]:
    """What a step's result contributes to the step log: identifiers only."""
    if isinstance(result, Application):
        return {"client_id": result.client_id, "object_id": result.object_id}
    if isinstance(result, NewPassword):
        return {"key_id": result.credential.key_id}
    if isinstance(result, VaultReference):
        return {"secret_id": result.secret_id}
    if isinstance(result, str):
        return {"id": result}
    return {}
