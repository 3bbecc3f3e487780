"""The bot's Prometheus metrics: one CollectorRegistry per process (bot/runtime.py makes it),
served on GET /metrics by bot/slack/app.py in both HTTP and Socket Mode.

The rest of the bot counts through the `Metrics` Protocol of bot/core/ports.py; only this
module knows prometheus_client. The secrets-by-expiry gauges are read from the database at
scrape time, so every replica reports the same, current numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

# Steps are remote calls of a few hundred milliseconds up to a retry budget of a minute or more.
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
EXPIRY_BUCKETS = (7, 30)  # days left; plus "expired"

# (now, day limits) → number of live secrets expired, and ending within each limit (cumulative).
ExpiryCounts = Callable[[datetime, tuple[int, ...]], dict[str, int]]


class BotMetrics:
    """Implements bot.core.ports.Metrics on its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "oauth_bot_requests",
            "Requests that reached a final state, by kind and state (a retried request counts again)",
            ["kind", "state"],
            registry=r,
        )
        self.steps = Histogram(
            "oauth_bot_step_duration_seconds",
            "How long each workflow step took, by step and outcome",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.calls = Counter(
            "oauth_bot_remote_calls",
            "Calls to Microsoft Graph, Azure Key Vault and Slack, by service, operation and final status",
            ["service", "operation", "status"],
            registry=r,
        )
        self.retries = Counter(
            "oauth_bot_remote_retries",
            "Attempts sent again by a retry layer, by service, operation and what the previous one got",
            ["service", "operation", "reason"],
            registry=r,
        )
        self.throttles = Counter(
            "oauth_bot_remote_throttled",
            "Answers that asked the bot to slow down (HTTP 429, Slack's ratelimited)",
            ["service", "operation"],
            registry=r,
        )
        self.in_flight = Gauge(
            "oauth_bot_requests_in_flight",
            "Approved requests handed to this process's workers and not finished (queued or running)",
            registry=r,
        )
        self.takeovers = Counter(
            "oauth_bot_lease_takeovers",
            "Requests this process took over from a worker that was gone",
            registry=r,
        )
        self.scan_seconds = Gauge(
            "oauth_bot_scan_duration_seconds", "How long the last expiry scan took", registry=r
        )
        self.scan_apps = Gauge("oauth_bot_scan_apps", "Apps the last expiry scan saw", registry=r)
        self.scan_secrets = Gauge(
            "oauth_bot_scan_secrets", "Client secrets the last expiry scan saw", registry=r
        )

    # --- bot.core.ports.Metrics ---------------------------------------------------------
    def request_finished(self, kind: str, state: str) -> None:
        self.requests.labels(kind=kind, state=state).inc()

    def step_done(self, name: str, outcome: str, seconds: float) -> None:
        self.steps.labels(step=name, outcome=outcome).observe(seconds)

    def remote_call(self, service: str, operation: str, status: str) -> None:
        self.calls.labels(service=service, operation=operation, status=status).inc()

    def remote_retry(self, service: str, operation: str, reason: str) -> None:
        self.retries.labels(service=service, operation=operation, reason=reason).inc()

    def remote_throttled(self, service: str, operation: str) -> None:
        self.throttles.labels(service=service, operation=operation).inc()

    def queue_depth(self, requests: int) -> None:
        self.in_flight.set(requests)

    def lease_takeover(self) -> None:
        self.takeovers.inc()

    def scan_done(self, seconds: float, apps: int, secrets: int) -> None:
        self.scan_seconds.set(seconds)
        self.scan_apps.set(apps)
        self.scan_secrets.set(secrets)

    # --- serving ------------------------------------------------------------------------
    def watch_expiry(self, counts: ExpiryCounts, now: Callable[[], datetime]) -> None:
        """Report the database's live secrets by days left, counted at each scrape."""
        self.registry.register(_ExpiryCollector(counts, now))

    def exposition(self) -> tuple[bytes, str]:
        """The text format's body and content type (reads the database: call it off the loop)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ExpiryCollector(Collector):
    def __init__(self, counts: ExpiryCounts, now: Callable[[], datetime]) -> None:
        self._counts = counts
        self._now = now

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "oauth_bot_secrets_expiring",
            "Live client secrets oauth-bot issued, by days left: expired, and ending within 7 and "
            "30 days (cumulative, not yet expired), counted in the database at scrape time",
            labels=["days_left"],
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for bucket, count in self._counts(self._now(), EXPIRY_BUCKETS).items():
            family.add_metric([bucket], count)
        yield family
