"""How a request's state changes and who hears of it: the compare-and-set with its audit event,
the approval card kept current, the requester told, and Slack-side failures kept from undoing
a decision."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.core.errors import Conflict, OAuthBotError, RemoteError
from bot.core.federation import FederationReady
from bot.core.model import IssuedSecret, ReadGrant, Request, Status, StepState
from bot.core.ports import NO_METRICS, Metrics, Notifier, Repository, Steps

log = logging.getLogger(__name__)
CARD_LOCKS = 64  # card updates of one request are serialised; requests share a fixed set of locks
FINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.DENIED, Status.CANCELLED, Status.EXPIRED})


def started(store: Repository, request: Request, name: str) -> bool:
    return any(s.step == name and s.state == StepState.STARTED for s in store.steps(request.id))


def finished(store: Repository, request: Request, name: str) -> bool:
    return any(s.step == name and s.state == StepState.FINISHED for s in store.steps(request.id))


class Outcomes:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        notifier: Notifier,
        steps: Steps,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.steps = steps
        self.metrics = metrics
        self.on_change: Callable[[list[str]], None] = lambda _users: None  # e.g. refresh App Homes
        self._card_locks = [threading.Lock() for _ in range(CARD_LOCKS)]

    def move(
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
        if another click, replica or job moved it first. Every change is logged here, once (INFO,
        with the request's id, kind, client ID, actor and its age), and counted when it ends it."""
        with self.store.atomic():
            if not self.store.transition(request_id, from_status=from_status, to_status=to_status, **values):
                raise Conflict(_already(self.store.get_request(request_id)))
            self.store.audit(actor, action, request_id=request_id, **(detail or {}))
            request = self.store.get_request(request_id)
        age = (self.store.now() - request.created_at).total_seconds() if request.created_at else None
        log.info(
            "request %s (%s): %s → %s by %s",
            request_id,
            request.kind,
            "/".join(from_status),
            to_status,
            actor,
            extra={
                "event": "request.state",
                "request_id": request_id,
                "kind": str(request.kind),
                "client_id": request.client_id,
                "actor": actor,
                "action": action,
                "from_status": "/".join(from_status),
                "to_status": str(to_status),
                "duration_s": None if age is None else round(age, 3),  # since it was filed
            },
        )
        if to_status in FINAL:
            self.metrics.request_finished(str(request.kind), str(to_status))

    def fail(self, request: Request, message: str, code: str | None) -> None:
        """The engine's report of a failed run: approved → failed (with the error's code), the card
        and the requester told."""
        try:
            self.move(
                request.id,
                actor="oauth-bot",
                action="request.failed",
                from_status=[Status.APPROVED],
                to_status=Status.FAILED,
                detail={"error": message, "code": code},
                error=message,
                error_code=code,
            )
        except Conflict:
            return  # no longer ours to fail
        log.warning(
            "request %s (%s) failed: %s; the requester is told and the admins can Retry from the card",
            request.id,
            request.kind,
            message,
            extra={"request_id": request.id, "kind": str(request.kind), "code": code},
        )
        self.refresh_card(request.id)
        self.safely(self.notifier.request_failed, self.store.get_request(request.id), message)

    def finish(self, request: Request, issued: IssuedSecret | FederationReady) -> None:
        """The requester told what was made (a secret in the vault, or a federated credential)."""
        if isinstance(issued, FederationReady):
            self.complete(
                request, lambda: self.notifier.federation_ready(request, issued), issued.app.client_id
            )
        else:
            self.complete(request, lambda: self.notifier.secret_ready(request, issued), issued.app.client_id)

    def complete(self, request: Request, tell: Callable[[], None], client_id: str | None) -> None:
        """The `notify` step (once), then approved → completed and the card refreshed."""
        if not request.notified and not finished(self.store, request, "notify"):

            def notify() -> None:
                tell()
                self.store.update_request(request.id, notified=True)

            self.steps.run(request, "notify", notify)
        self.move(
            request.id,
            actor="oauth-bot",
            action="request.completed",
            from_status=[Status.APPROVED],
            to_status=Status.COMPLETED,
            detail={"client_id": client_id},
        )
        self.refresh_card(request.id)

    def read_access_ready(self, request: Request, grant: ReadGrant) -> None:
        """An approved read-access request granted: the requester told (once), then completed."""
        self.complete(request, lambda: self.notifier.read_access_ready(request, grant), grant.client_id)

    def refresh_card(self, request_id: int) -> None:
        """Show the request's current state on its card. Updates of one request are
        serialised and each re-reads the state, so a late "creating…" cannot overwrite "done"."""
        with self._card_locks[request_id % CARD_LOCKS]:
            request = self.store.get_request(request_id)
            approved_by = [a.approver_id for a in self.store.approvals(request_id)]
            self.safely(self.notifier.update_request_card, request, approved_by)
        self.on_change([request.requester_id, *sorted(self.settings.admins)])

    def ended(self, request_id: int, tell: Callable[[Request], None]) -> Request:
        """After a decision that ends a request (denied, cancelled, expired): the card shows it,
        then the requester is told; neither can undo the decision."""
        self.refresh_card(request_id)
        request = self.store.get_request(request_id)
        self.safely(tell, request)
        return request

    def safely(self, action: Callable[..., Any], *args: Any) -> None:
        """Slack side effects after a decision is stored must not undo the decision."""
        try:
            action(*args)
        except (RemoteError, OAuthBotError) as error:
            log.warning(
                "could not %s: %s; the decision stands, only this message is missing",
                getattr(action, "__name__", "notify"),
                error,
            )


def _already(request: Request) -> str:
    return f"Request #{request.id} is already {request.status}."
