"""The one retry layer for Microsoft Graph: an httpx transport that retries under a budget.

429 honours Retry-After; 5xx, timeouts and connection errors back off exponentially with
full jitter; a 404 (or
NoBackingApplicationObject) is retried only for requests marked `retry_replication`
(Graph's replication delay right after an application is created); a 409
Directory_ConcurrencyViolation is retried. Everything stops at the total time budget,
and the last answer (or error) is returned to the caller.

A request marked not idempotent (`IDEMPOTENT: False`, e.g. addPassword, which makes a new
credential each time it is carried out) is retried only where Graph certainly did not act:
429, the replication answers, 409, and connection failures before anything was sent. After
a 5xx or a timeout its outcome is unknown; the answer (or error) goes back to the caller,
which reads the state back and reconciles instead of repeating the write.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx

from bot.core.ports import NO_METRICS, Metrics

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Request extension: this call may meet Graph's replication delay right after a create, seen
# as 404 Request_ResourceNotFound or, for POST /servicePrincipals, 400 NoBackingApplicationObject.
RETRY_REPLICATION = "retry_replication"
# Request extension: False when carrying the request out twice would do the work twice.
IDEMPOTENT = "idempotent"
# Request extension: this call's own retry budget in seconds (a form's lookup, which Slack
# waits for, cannot take the default minute).
BUDGET = "budget_seconds"
# Nothing reached the server: safe to send again whatever the request.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
SERVICE = "graph"
_KEY = re.compile(r"\((\w+)=[^)]*\)")  # applications(uniqueName='oauth-bot-…')
_WORD = re.compile(r"\$?[A-Za-z]+")  # collections and actions; ids and e-mail addresses are not


def operation(request: httpx.Request) -> str:
    """The call as a metric label: method and path with ids and keys templated, e.g.
    "POST /applications/{id}/addPassword", "PATCH /applications(uniqueName={uniqueName})"."""
    path = request.url.path.removeprefix("/v1.0")
    segments = [
        _KEY.sub(lambda m: f"({m.group(1)}={{{m.group(1)}}})", part)
        if not part or _WORD.fullmatch(_KEY.sub("", part))
        else "{id}"
        for part in path.split("/")
    ]
    return f"{request.method} {'/'.join(segments)}"


@dataclass
class RetryPolicy:
    budget_seconds: float = 60.0
    base_delay: float = 0.25
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _is_retryable(request: httpx.Request, response: httpx.Response) -> bool:
    if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
        return True  # throttled: refused before it was carried out
    if response.status_code in RETRY_STATUSES:
        return _idempotent(request)
    if request.extensions.get(RETRY_REPLICATION):
        if response.status_code == HTTPStatus.NOT_FOUND:
            return True
        if response.status_code == HTTPStatus.BAD_REQUEST:
            response.read()
            return b"NoBackingApplicationObject" in response.content
    if response.status_code == HTTPStatus.CONFLICT:
        response.read()
        return b"Directory_ConcurrencyViolation" in response.content
    return False


def _idempotent(request: httpx.Request) -> bool:
    return bool(request.extensions.get(IDEMPOTENT, True))


class RetryTransport(httpx.BaseTransport):
    def __init__(
        self, inner: httpx.BaseTransport, policy: RetryPolicy, *, metrics: Metrics = NO_METRICS
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._metrics = metrics

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send with retries; each call is counted once with its final status (or the error that
        ended it), each attempt sent again and each 429 on the way too."""
        name = operation(request)
        try:
            response = self._send(request, name)
        except Exception as error:
            self._metrics.remote_call(SERVICE, name, type(error).__name__)
            raise
        self._metrics.remote_call(SERVICE, name, str(response.status_code))
        return response

    def _send(self, request: httpx.Request, name: str) -> httpx.Response:
        policy = self._policy
        deadline = policy.monotonic() + float(request.extensions.get(BUDGET, policy.budget_seconds))
        attempt = 0
        while True:
            try:
                response = self._inner.handle_request(request)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
                delay = policy.backoff(attempt)
                if policy.monotonic() + delay >= deadline:
                    raise
                if not (_idempotent(request) or isinstance(error, NOT_SENT)):
                    raise  # it may have been carried out: the caller reconciles
                log.warning(
                    "retrying %s %s after %s (attempt %d)",
                    request.method,
                    request.url.path,
                    type(error).__name__,
                    attempt + 1,
                )
                self._metrics.remote_retry(SERVICE, name, type(error).__name__)
            else:
                if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                    self._metrics.remote_throttled(SERVICE, name)
                if not _is_retryable(request, response):
                    return response
                wait = (
                    retry_after_seconds(response)
                    if response.status_code == HTTPStatus.TOO_MANY_REQUESTS
                    else None
                )
                delay = policy.backoff(attempt) if wait is None else wait
                if policy.monotonic() + delay >= deadline:
                    return response
                response.read()
                response.close()
                log.info(
                    "retrying %s %s after HTTP %d in %.2fs (attempt %d)",
                    request.method,
                    request.url.path,
                    response.status_code,
                    delay,
                    attempt + 1,
                )
                self._metrics.remote_retry(SERVICE, name, str(response.status_code))
            policy.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._inner.close()
