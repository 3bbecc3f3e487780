"""Requests coming in and decisions on them: file, approve, deny, cancel, retry, expire, and
"Retire oldest and rotate". Each decision is a compare-and-set first; its side effects come after."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from bot.config import Settings
from bot.core.access import Access, AppAction, check_can_decide
from bot.core.errors import (
    CardNotPosted,
    Conflict,
    NotAllowed,
    NotFound,
    RemoteError,
    SecretLimitReached,
    SecretRemovalNeedsConfirmation,
    ValidationError,
)
from bot.core.lifetimes import UNKNOWN, PasswordLimit
from bot.core.model import (
    OPEN_STATUSES,
    Application,
    CredentialStatus,
    ExtraReader,
    FederatedCredentialSpec,
    Kind,
    ManagedApp,
    PasswordCredential,
    ReadGrant,
    Request,
    Status,
    StepState,
    require_status,
)
from bot.core.policy import POLICY_CAP
from bot.core.ports import Directory, Notifier, Repository
from bot.core.validation import NewAppInput
from bot.flows import filings
from bot.flows.approvals import Approvals
from bot.flows.lifetimes import TenantLimits
from bot.flows.limits import check_request_limits
from bot.flows.outcomes import Outcomes
from bot.flows.read_access import NOT_SET_UP, ReadAccessFlow
from bot.flows.readers import NO_SECRET_TO_READ, READERS_FIELD

log = logging.getLogger(__name__)


class Intake:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        graph: Directory,
        notifier: Notifier,
        access: Access,
        outcomes: Outcomes,
        approvals: Approvals,
        read_access: ReadAccessFlow | None = None,
        tenant_limits: TenantLimits | None = None,
    ) -> None:
        self.tenant_limits = tenant_limits
        self.settings = settings
        self.store = store
        self.graph = graph
        self.notifier = notifier
        self.access = access
        self.outcomes = outcomes
        self.approvals = approvals
        self.read_access = read_access

    def check_new_app(
        self, *, requester_id: str, data: NewAppInput, readers: tuple[ExtraReader, ...] = ()
    ) -> None:
        """Before the form closes: this person may file another request, the policy's rule
        allows the lifetime, and extra readers come with a secret (else ValidationError)."""
        if readers and data.federated is not None:
            raise ValidationError({READERS_FIELD: NO_SECRET_TO_READ})
        self.check_limits(requester_id)
        self.approvals.check_lifetime(filings.new_app(requester_id=requester_id, team_id=None, data=data))

    def submit_new_app(
        self,
        *,
        requester_id: str,
        team_id: str | None,
        data: NewAppInput,
        readers: tuple[ExtraReader, ...] = (),
    ) -> Request:
        """Store a pending request, post its approval card and confirm to the requester (or,
        under a rule with `auto: true`, approve it by policy). `readers`: extra readers of the
        secret, looked up in the directory already."""
        request = filings.new_app(requester_id=requester_id, team_id=team_id, data=data, readers=readers)
        self.approvals.check_lifetime(request)
        return self._file_and_decide(request)

    def app_to_federate(self, requester_id: str, target: str) -> ManagedApp:
        """The app `/oauth-app federate` names, if this person may manage it (owners, admins)."""
        return self.access.find(requester_id, target, AppAction.MANAGE)

    def submit_federation(
        self,
        *,
        requester_id: str,
        team_id: str | None,
        client_id: str,
        spec: FederatedCredentialSpec,
        justification: str,
    ) -> Request:
        """File a federated credential for an existing app; it waits for an admin's approval."""
        app = self.access.find(requester_id, client_id, AppAction.MANAGE)
        return self._file_and_decide(
            filings.federation(
                app, requester_id=requester_id, team_id=team_id, spec=spec, justification=justification
            )
        )

    def submit_secret_removal(self, *, requester_id: str, team_id: str | None, key_id: str) -> Request:
        """File the removal of a client secret oauth-bot issued (never any other); an admin approves."""
        credential = self.store.credential(key_id)
        if credential is None or credential.status not in (
            CredentialStatus.ACTIVE,
            CredentialStatus.RETIRING,
        ):
            raise NotFound(
                f"oauth-bot has no live client secret with Secret ID {key_id}: "
                "it removes only secrets it issued."
            )
        app = self.access.find(requester_id, credential.client_id, AppAction.MANAGE)
        for open_request in self.store.requests_in(OPEN_STATUSES):
            if open_request.kind == Kind.REMOVE_SECRET and open_request.key_id == key_id:
                raise Conflict(f"Removal request #{open_request.id} for Secret ID {key_id} is open already.")
        return self._file_and_decide(
            filings.secret_removal(app, credential, requester_id=requester_id, team_id=team_id)
        )

    def _file_and_decide(self, request: Request) -> Request:
        rule = self.approvals.assign_rule(request)
        self.approvals.check_enough_approvers(request, rule)
        request = self._file(request)
        if rule.auto and not request.extra_readers:  # (assign_rule made readers an admin's call)
            return self.approvals.approve_by_policy(request)
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
                **(
                    {"rule": request.rule_number, "rule_text": request.rule_text}
                    if request.rule_number
                    else {}
                ),
                **(
                    {"extra_readers": [r.object_id for r in request.extra_readers]}
                    if request.extra_readers
                    else {}
                ),
            )
        return request

    def rotation_target(self, requester_id: str, target: str) -> ManagedApp:
        """The app a person may rotate (before the rotation form opens): NotAllowed/NotFound,
        or NotAllowed when the app's policy allows no client secret (checked again on filing)."""
        app = self.access.find(requester_id, target, AppAction.MANAGE)
        self._rotation_limit(app)
        return app

    def submit_rotation(
        self,
        *,
        requester_id: str,
        team_id: str | None,
        target: str,
        readers: tuple[ExtraReader, ...] = (),
    ) -> Request:
        """File a rotation; owners may rotate without approval when the setting allows it."""
        app = self.access.find(requester_id, target, AppAction.MANAGE)
        wanted = self.settings.default_secret_days
        request = filings.rotation(
            app,
            requester_id=requester_id,
            team_id=team_id,
            days=wanted,
            lifetime_note=None,
            grace_days=self.settings.oauth_bot_grace_days,
            now=self.store.now(),
            readers=readers,
        )
        limit = self._rotation_limit(app).within(self.approvals.rule_for(request).max_days, POLICY_CAP)
        request.secret_days = self.settings.default_days(max_days=limit.max_days)
        request.lifetime_note = limit.capped(wanted)
        self_service = (  # a new reader is a new trust: never without someone's approval
            self.settings.oauth_bot_owner_self_rotate
            and self.access.is_owner(app, requester_id)
            and not request.extra_readers
        )
        if not self_service:
            return self._file_and_decide(request)
        self.approvals.assign_rule(request)  # for the record: an owner's own rotation needs no approval
        request = self._file(request)
        self.outcomes.move(
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

    def request_read_access(
        self, *, requester_id: str, team_id: str | None, target: str
    ) -> ReadGrant | Request:
        """On-demand read access for an owner: granted at once, unless the approval policy's
        rule for it (kind read_access) needs approvers; then it is a request like the others
        (its card, its approvals), and the worker grants it once approved."""
        read_access = self.read_access
        if read_access is None:
            raise NotAllowed(NOT_SET_UP)
        app = read_access.check_on_demand(requester_id, target)
        request = filings.read_access(app, requester_id=requester_id, team_id=team_id)
        rule = self.approvals.rule_for(request)
        if not self.settings.policy.from_file or rule.auto:
            grant = read_access.grant_on_demand(requester_id, target)
            if self.settings.policy.from_file:
                self.store.audit(
                    "policy", "read_access.approved", client_id=app.client_id, rule=rule.number, auto=True
                )
            return grant
        return self._file_and_decide(request)

    def _rotation_limit(self, app: ManagedApp) -> PasswordLimit:
        """What the app's effective app management policy allows its new secret, when the bot
        may read it. An app whose policy allows no client secret cannot be rotated: a federated
        credential can."""
        if self.tenant_limits is None:
            return UNKNOWN
        limit = self.tenant_limits.for_app(app.object_id, app.created_at)
        if not limit.passwords_allowed:
            raise NotAllowed(limit.blocked_message(f"{app.display_name}"))
        return limit

    def announce(self, request: Request) -> None:
        """Post the approval card (once) and confirm to the requester.

        A request whose card cannot be posted is failed at once (no admin would ever see it),
        and the requester is told why."""
        if request.card_ts is None:
            try:
                channel, ts = self.notifier.post_request_card(request, ())
            except RemoteError as error:
                message = (
                    f"the approval card could not be posted ({error}). The oauth-bot admins must check "
                    "OAUTH_BOT_APPROVAL_CHANNEL and invite the bot to that channel; then ask again."
                )
                log.error(
                    "request %s: approval card not posted: %s; the request is failed, the requester "
                    "told to ask again and the admins alerted",
                    request.id,
                    error,
                )
                self.outcomes.safely(
                    self.notifier.alert_admins, f"oauth-bot could not post request #{request.id}: {message}"
                )
                self.outcomes.move(
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
        self.outcomes.safely(self.notifier.request_received, request)

    def check_can_deny(self, request_id: int, *, actor: str) -> None:
        """Before the deny-reason form opens: the clicker may decide, and it is still pending."""
        request = self.store.get_request(request_id)
        self.approvals.check_can_deny(request, actor)
        require_status(request, Status.PENDING)

    def check_limits(self, requester_id: str) -> None:
        """RateLimited if this person may not file another request now (checked again on filing)."""
        check_request_limits(self.settings, self.store, requester_id)

    def approve(self, request_id: int, *, actor: str, retire_old_now: bool = False) -> Request:
        """Count this approval; the last one the rule needs moves pending → approved exactly
        once (the request comes back approved): the caller then hands it to the worker and
        refreshes the card (in parallel: the card is not on the way to the secret)."""
        return self.approvals.approve(request_id, actor=actor, retire_old_now=retire_old_now)

    def deny(self, request_id: int, *, actor: str, reason: str) -> Request:
        """Any of the rule's approvers (or an admin) ends the request."""
        request = self.store.get_request(request_id)
        self.approvals.check_can_deny(request, actor)
        self.outcomes.move(
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
        return self.outcomes.ended(request_id, self.notifier.request_denied)

    def cancel(self, request_id: int, *, actor: str) -> Request:
        request = self.store.get_request(request_id)
        if request.requester_id != actor:
            raise NotAllowed("Only the person who asked can cancel a request.")
        self.outcomes.move(
            request_id,
            actor=actor,
            action="request.cancelled",
            from_status=[Status.PENDING],
            to_status=Status.CANCELLED,
            decided_at=self.store.now(),
        )
        return self.outcomes.ended(request_id, self.notifier.request_cancelled)

    def retry(self, request_id: int, *, actor: str) -> Request:
        """An admin sends a failed request through the workflow again (every step is safe to repeat)."""
        request = self.store.get_request(request_id)
        check_can_decide(self.settings, actor, request)
        self.outcomes.move(
            request_id,
            actor=actor,
            action="request.retried",
            from_status=[Status.FAILED],
            to_status=Status.APPROVED,
            error=None,
            error_code=None,
            attempts=0,
        )
        self.outcomes.refresh_card(request_id)
        return self.store.get_request(request_id)

    def expire_stale(self) -> list[int]:
        """Pending requests past their time: the card says so, the requester is told."""
        expired = []
        for request in self.store.expired_pending():
            try:
                self.outcomes.move(
                    request.id,
                    actor="oauth-bot",
                    action="request.expired",
                    from_status=[Status.PENDING],
                    to_status=Status.EXPIRED,
                )
            except Conflict:
                continue  # decided meanwhile, or expired by another replica
            self.outcomes.ended(request.id, self.notifier.request_expired)
            expired.append(request.id)
        return expired

    # --- execution (called by the worker) ---------------------------------------------

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
        self.access.authorize(app, actor, AppAction.MANAGE)
        current = self.graph.get_application(app.object_id)
        if current is None or not current.passwords:
            raise NotFound(f"{app.display_name} has no client secret to retire.")
        target = self._secret_to_retire(app, current, actor, key_id)
        self.outcomes.move(
            request_id,
            actor=actor,
            action="request.retried",
            from_status=[Status.FAILED],
            to_status=Status.APPROVED,
            detail={"retire_key_id": target.key_id, "issued_by_oauth_bot": key_id is None},
            error=None,
            error_code=None,
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
            if not self.access.is_admin(actor):
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
