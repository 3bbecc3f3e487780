"""The engine: runs an approved request's flow to its end, in one place at a time.

It claims the request (a lease in the database, in the name of this process's worker id),
renews the lease with a heartbeat while the flow runs, and records every step before and after
it runs (`run`), so a flow interrupted anywhere is carried on from its step log. A run stops at
the next step boundary when its lease is lost (another worker took over) or the process shuts
down (the lease is given back). A request claimed more than MAX_ATTEMPTS times is failed.

The flows decide what the steps are; the engine owns progress. Tests inject `at_boundary`, a
hook called at every step boundary ("add_password:started"), to stop a process there.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from bot.core.errors import OAuthBotError
from bot.core.model import (
    Application,
    FederatedCredential,
    Kind,
    NewPassword,
    Request,
    StepState,
    VaultReference,
)
from bot.core.ports import NO_METRICS, Metrics
from bot.engine.liveness import Liveness

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 5  # claims of one request (each crash or restart is one) before it is failed
UNEXPECTED = "an unexpected error stopped it; the admins can retry it"

Flow = Callable[[Request], None]
OnFailure = Callable[[Request, str, str | None], None]  # (request, message, error code)
BoundaryHook = Callable[[str], None]


class LeaseStore(Protocol):
    """What the engine needs of the database (bot.store.Store)."""

    def claim(
        self, request_id: int, owner: str, lease: timedelta, *, taking_over: str | None = None
    ) -> bool: ...
    def renew(self, request_id: int, owner: str, lease: timedelta) -> bool: ...
    def release(self, request_id: int, owner: str) -> None: ...
    def get_request(self, request_id: int) -> Request: ...
    def record_step(self, request_id: int, step: str, state: StepState, **values: Any) -> None: ...
    def steps(self, request_id: int) -> list[Any]: ...


class LeaseLost(Exception):
    """This worker no longer holds the request's lease; another one carries it on."""


class ShuttingDown(Exception):
    """The process is stopping: the request stops at this step boundary and is carried on later."""


def new_worker_id() -> str:
    return f"worker-{uuid.uuid4().hex[:12]}"


def no_hook(_boundary: str) -> None:
    return None


class Runner:
    def __init__(
        self,
        store: LeaseStore,
        liveness: Liveness,
        *,
        lease: timedelta,
        at_boundary: BoundaryHook = no_hook,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.liveness = liveness
        self.worker_id = liveness.worker_id
        self.lease = lease
        self.stopping = threading.Event()  # set on shutdown: running requests stop at the next step
        self._at_boundary = at_boundary
        self._flows: dict[Kind, Flow] = {}
        self._on_failure: OnFailure = lambda _request, _message, _code: None
        self._held: dict[int, threading.Event] = {}  # request id → "lease lost" flag
        self._guard = threading.Lock()
        self._heartbeat: threading.Thread | None = None

    def connect(self, flows: Mapping[Kind, Flow], on_failure: OnFailure) -> None:
        """The flow for each kind of request, and what to do when one fails."""
        self._flows = dict(flows)
        self._on_failure = on_failure

    def execute(self, request_id: int, *, taking_over: str | None = None) -> bool:
        """Run an approved request to its end if this worker can claim it. True if it ran."""
        if not self.store.claim(request_id, self.worker_id, self.lease, taking_over=taking_over):
            return False
        if taking_over is not None:
            self.metrics.lease_takeover()
            log.info(
                "request %s: taken over from %s, a worker that is gone",
                request_id,
                taking_over,
                extra={"request_id": request_id, "worker": self.worker_id, "taken_from": taking_over},
            )
        lost = threading.Event()
        with self._guard:
            self._held[request_id] = lost
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
                self._heartbeat.start()
        try:
            request = self.store.get_request(request_id)
            try:
                if request.attempts > MAX_ATTEMPTS:
                    self._fail(request, self._too_many_attempts(request), None)
                else:
                    self._flows[request.kind](request)
            except LeaseLost:
                log.warning(
                    "request %s: lease lost to another worker; stopped here, the other worker carries it on",
                    request_id,
                )
                return True
            except ShuttingDown:
                log.info("request %s: stopped for shutdown; the next worker carries it on", request_id)
            except OAuthBotError as error:
                self._fail(request, str(error), error.code)
            except Exception:
                log.exception(
                    "request %s failed unexpectedly; it is marked failed and the admins can Retry", request_id
                )
                self._fail(request, UNEXPECTED, None)
            self.store.release(request_id, self.worker_id)
        finally:
            with self._guard:
                self._held.pop(request_id, None)
        return True

    def _beat(self) -> None:
        """One thread renews the leases of every request running here, every third of a lease."""
        while not self.stopping.wait(self.lease.total_seconds() / 3):
            with self._guard:
                held = list(self._held.items())
            for request_id, lost in held:
                if not lost.is_set() and not self.store.renew(request_id, self.worker_id, self.lease):
                    lost.set()

    def run(self, request: Request, name: str, action: Callable[[], T], **detail: Any) -> T:
        """One step between a 'started' and a 'finished' (or 'failed') record, only while this
        worker still holds the request's lease."""
        self._check_lease(request.id)
        self.store.record_step(request.id, name, StepState.STARTED, **detail)
        self._at_boundary(f"{name}:started")
        began = time.monotonic()
        try:
            result = action()
        except OAuthBotError as error:
            self.store.record_step(request.id, name, StepState.FAILED, error=str(error))
            self._step_done(request, name, "failed", began, cause=str(error))
            raise
        except (LeaseLost, ShuttingDown):
            self._step_done(request, name, "interrupted", began)
            raise
        except Exception as error:
            self._step_done(request, name, "error", began, cause=type(error).__name__)
            raise
        ids = _ids(result)
        self.store.record_step(request.id, name, StepState.FINISHED, **ids)
        self._step_done(request, name, "finished", began, client_id=ids.get("client_id"))
        self._at_boundary(f"{name}:finished")
        return result

    def _step_done(
        self,
        request: Request,
        name: str,
        outcome: str,
        began: float,
        *,
        cause: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """The one log line (INFO; WARNING with the cause when it failed) and the timing of a step."""
        seconds = time.monotonic() - began
        self.metrics.step_done(name, outcome, seconds)
        fields = {
            "event": "request.step",
            "request_id": request.id,
            "kind": str(request.kind),
            "client_id": request.client_id or client_id,
            "actor": "oauth-bot",
            "worker": self.worker_id,
            "step": name,
            "outcome": outcome,
            "duration_s": round(seconds, 3),
        }
        if cause is None:
            log.info(
                "request %s (%s): step %s %s in %.3f s",
                request.id,
                request.kind,
                name,
                outcome,
                seconds,
                extra=fields,
            )
        else:
            log.warning(
                "request %s (%s): step %s %s after %.3f s: %s",
                request.id,
                request.kind,
                name,
                outcome,
                seconds,
                cause,
                extra=fields,
            )

    def _fail(self, request: Request, message: str, code: str | None) -> None:
        self.store.record_step(request.id, "request", StepState.FAILED, error=message, code=code)
        self._on_failure(request, message, code)

    def _too_many_attempts(self, request: Request) -> str:
        started = [s.step for s in self.store.steps(request.id) if s.state == StepState.STARTED]
        where = f" (the last one at step {started[-1]})" if started else ""
        return (
            f"it was started {MAX_ATTEMPTS} times without finishing{where}, so oauth-bot stopped "
            "trying; the admins can look at the logs and retry it"
        )

    def _check_lease(self, request_id: int) -> None:
        if self.stopping.is_set():
            raise ShuttingDown(request_id)
        with self._guard:
            lost = self._held.get(request_id)
        if lost is None:
            return
        if not lost.is_set() and not self.liveness.holding():
            lost.set()  # others see this worker as dead and may carry the request on
        if lost.is_set():
            raise LeaseLost(request_id)


def _ids(result: Any) -> dict[str, Any]:
    """What a step's result contributes to the step log: identifiers only."""
    if isinstance(result, Application):
        return {"client_id": result.client_id, "object_id": result.object_id}
    if isinstance(result, NewPassword):
        return {"key_id": result.credential.key_id}
    if isinstance(result, FederatedCredential):
        return {"credential_id": result.id}
    if isinstance(result, VaultReference):
        return {"secret_id": result.secret_id}
    if isinstance(result, str):
        return {"id": result}
    return {}
