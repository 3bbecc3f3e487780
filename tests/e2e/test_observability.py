"""What an operator sees of a running bot: its log lines (text and JSON) and GET /metrics.

The bot runs in this process (BackgroundBot) with the production log set-up (bot/logs.py) on a
stream of the test's; requests go through the signed Slack driver and the loopback fakes, and
/metrics is read over HTTP and parsed with prometheus_client's own text parser.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import logs as bot_logs
from bot.core.model import Status, StepState
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import approve, request_id_of, request_new_app

CANARY = "Obs8Q~CANARY" + "x7Wv" * 7  # shaped like an Entra client secret
APP_TOKEN = "xapp-1-A0FAKEAPP-1-fake-socket-mode-token"
FIELDS = ("request_id", "kind", "client_id", "actor", "duration_s")
_PAIR = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|\S+)')


@contextmanager
def production_logging(fmt: str) -> Iterator[io.StringIO]:
    """bot/logs.py's set-up at INFO in format `fmt`, written to a buffer; then back as it was."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in root.manager.loggerDict}
    bot_logs.configure("INFO", stream=stream, fmt=fmt)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def _parse(line: str, fmt: str) -> dict[str, Any]:
    """One output line as its fields (text: the key=value pairs after the message)."""
    if fmt == "json":
        parsed: dict[str, Any] = json.loads(line)
        return parsed
    fields: dict[str, Any] = {"level": line.split(" ")[2]}
    for key, raw in _PAIR.findall(line):
        value = json.loads(raw) if raw.startswith('"') else raw
        fields[key] = None if value == "null" else value
    return fields


def _run_new_app(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str) -> int:
    cloud.graph.next_secret_text = CANARY
    card = request_new_app(slack, DEVELOPER, name)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request_id_of(card)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_new_app_logs_one_info_line_per_state_change_and_step_and_never_the_value(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, fmt: str
) -> None:
    """A full /oauth-app new → Approve → DM run, logged at INFO in each LOG_FORMAT: exactly one
    INFO line per state change (pending → approved, approved → completed) and one per step the
    journal recorded as finished, each with the request id, kind, actor and a duration, and the
    app's client ID from the step that created it on; in JSON mode every line of the output is a
    JSON object with time, level, logger and message. The secret value is in no line."""
    with production_logging(fmt) as stream:
        request_id = _run_new_app(cloud, bot, slack, f"logged-{fmt}-app")
        assert bot.services is not None
        wait_until(  # the completed line is written right after the status change is stored
            lambda: "completed" in stream.getvalue(), what="the completed line"
        )
        output = stream.getvalue()
    assert CANARY not in output
    lines = output.splitlines()
    parsed = [_parse(line, fmt) for line in lines]
    if fmt == "json":
        for document in parsed:
            assert {"time", "level", "logger", "message"} <= set(document), document
    ours = [p for p in parsed if str(p.get("request_id")) == str(request_id)]
    states = [p for p in ours if p.get("event") == "request.state"]
    steps = [p for p in ours if p.get("event") == "request.step"]
    assert [(s["from_status"], s["to_status"]) for s in states] == [
        ("pending", "approved"),
        ("approved", "completed"),
    ]
    assert states[0]["actor"] == ADMINS[0] and states[1]["actor"] == "oauth-bot"
    request = bot.services.store.get_request(request_id)
    journal = [s.step for s in bot.services.store.steps(request_id) if s.state == StepState.FINISHED]
    assert sorted(s["step"] for s in steps) == sorted(journal)
    assert {"create_app", "add_password", "notify"} <= set(journal)
    for line in [*states, *steps]:
        assert line["level"] == "INFO"
        for field in FIELDS:
            assert field in line, (field, line)
        assert line["kind"] == "new_app"
        assert float(line["duration_s"]) >= 0
    for line in [*steps, states[1]]:
        assert line["client_id"] == request.client_id, line
    assert all(s["outcome"] == "finished" for s in steps)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics body by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_after_a_new_app_count_the_request_its_steps_and_its_remote_calls(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """GET /metrics after a run where Graph throttled the create once (429) and Key Vault answered
    503 once: one completed new_app request; one observation per finished step in the duration
    histogram (buckets cumulative up to +Inf); Graph's create counted once as a 200/201 call, once
    as a retry after 429 and once as throttled; one addPassword; Key Vault's write one 200 call
    with one retry after 503; Slack's chat.postMessage calls counted ok, and chat.update, rate
    limited once (429), counted as one retry, one throttle and then ok; nothing in flight. The
    secret (180 days) is in no expiry bucket until the clock is 175 days on, then in ≤7 and ≤30."""
    cloud.graph.inject(
        "PATCH", r"^/v1\.0/applications\(uniqueName=", status=429, headers={"Retry-After": "0"}
    )
    cloud.vault.inject("PUT", r"^/secrets/", status=503, times=1)
    cloud.slack.rate_limit("chat.update", retry_after=1)
    _run_new_app(cloud, bot, slack, "metered-app")

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = httpx.get(f"{bot.url}/metrics", timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return _samples(response.text)

    samples = wait_until(
        lambda: (s := scrape()) and _value(s, "oauth_bot_requests_in_flight") == 0 and s,
        what="no request in flight",
    )
    assert _value(samples, "oauth_bot_requests_total", kind="new_app", state="completed") == 1
    for step in ("create_app", "service_principal", "add_password", "notify"):
        labels = {"step": step, "outcome": "finished"}
        assert _value(samples, "oauth_bot_step_duration_seconds_count", **labels) == 1, step
        assert _value(samples, "oauth_bot_step_duration_seconds_bucket", le="+Inf", **labels) == 1
        assert _value(samples, "oauth_bot_step_duration_seconds_sum", **labels) > 0
        assert _value(samples, "oauth_bot_step_duration_seconds_bucket", le="300.0", **labels) == 1
    create = "PATCH /applications(uniqueName={uniqueName})"
    graph_create = {"service": "graph", "operation": create}
    created = sum(
        _value(samples, "oauth_bot_remote_calls_total", status=s, **graph_create) for s in ("200", "201")
    )
    assert created == 1
    assert _value(samples, "oauth_bot_remote_retries_total", reason="429", **graph_create) == 1
    assert _value(samples, "oauth_bot_remote_throttled_total", **graph_create) == 1
    add = {"service": "graph", "operation": "POST /applications/{id}/addPassword"}
    assert _value(samples, "oauth_bot_remote_calls_total", status="200", **add) == 1
    write = {"service": "keyvault", "operation": "PUT /secrets/{name}"}
    assert _value(samples, "oauth_bot_remote_calls_total", status="200", **write) == 1
    assert _value(samples, "oauth_bot_remote_retries_total", reason="503", **write) == 1
    posted = {"service": "slack", "operation": "chat.postMessage"}
    assert _value(samples, "oauth_bot_remote_calls_total", status="ok", **posted) >= 2  # card and DM
    updated = {"service": "slack", "operation": "chat.update"}
    assert _value(samples, "oauth_bot_remote_retries_total", reason="429", **updated) == 1
    assert _value(samples, "oauth_bot_remote_throttled_total", **updated) == 1
    assert _value(samples, "oauth_bot_remote_calls_total", status="ok", **updated) >= 1
    for bucket in ("expired", "7", "30"):
        assert _value(samples, "oauth_bot_secrets_expiring", days_left=bucket) == 0
    assert ("oauth_bot_secrets_expiring", (("days_left", "30"),)) in samples

    clock.advance(timedelta(days=175))
    later = scrape()
    assert _value(later, "oauth_bot_secrets_expiring", days_left="expired") == 0
    assert _value(later, "oauth_bot_secrets_expiring", days_left="7") == 1
    assert _value(later, "oauth_bot_secrets_expiring", days_left="30") == 1
    clock.advance(timedelta(days=10))
    assert _value(scrape(), "oauth_bot_secrets_expiring", days_left="expired") == 1


@pytest.fixture
def socket_bot(cloud: FakeCloud, database_path: Path, clock: ManualClock) -> Iterator[BackgroundBot]:
    """The bot's HTTP side as `serve` builds it for Socket Mode (app token, no signing secret)."""
    settings = cloud.settings(
        f"sqlite:///{database_path}", slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    with BackgroundBot(settings, clock=clock) as running:
        yield running


def test_socket_mode_serves_metrics_and_still_refuses_slack_payloads(
    cloud: FakeCloud, socket_bot: BackgroundBot, bot: BackgroundBot
) -> None:
    """The Socket-Mode-configured HTTP side answers GET /metrics with 200 and the metric families,
    while POST /slack/events there is still refused (404/405) and causes no Slack call. An
    HTTP-mode bot runs in the same process at the same time, each with its own registry."""
    calls_before = len(cloud.slack.api_calls())
    for running in (socket_bot, bot):
        response = httpx.get(f"{running.url}/metrics", timeout=10)
        assert response.status_code == 200
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert {"oauth_bot_requests", "oauth_bot_step_duration_seconds", "oauth_bot_remote_calls"} <= names
        assert "oauth_bot_secrets_expiring" in names
    assert socket_bot.services is not None and bot.services is not None
    assert socket_bot.services.metrics.registry is not bot.services.metrics.registry
    refused = httpx.post(f"{socket_bot.url}/slack/events", content=b"payload=%7B%7D", timeout=10)
    assert refused.status_code in (404, 405)
    assert cloud.slack.api_calls()[calls_before:] == []


def test_serve_at_info_in_json_says_only_its_own_lines(cloud: FakeCloud, tmp_path: Path) -> None:
    """`oauth-bot serve` as a process with LOG_FORMAT=json at INFO: from start to SIGTERM every
    line of its output is a JSON object with time, level, logger and message, only bot loggers
    speak (no Alembic, aiohttp or SDK chatter), and its /metrics answers 200 in the text format."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        **cloud.environment(f"sqlite:///{tmp_path / 'serve.db'}", port=port),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None

        wait_until(healthy, timeout=60, what="/healthz")
        assert process.poll() is None
        metrics = httpx.get(f"{url}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert "oauth_bot_requests_in_flight 0.0" in metrics.text
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    documents = [json.loads(line) for line in output.splitlines()]
    assert documents, "serve said nothing"
    for document in documents:
        assert {"time", "level", "logger", "message"} <= set(document)
        assert document["logger"].startswith("bot."), document
    assert any("ready on port" in d["message"] for d in documents)


@pytest.mark.parametrize("bot_settings", [{"oauth_bot_retry_budget_seconds": 3.0}])
def test_a_vault_down_past_the_budget_is_a_warning_with_cause_and_next_step_and_counted(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, bot_settings: dict[str, Any]
) -> None:
    """Key Vault answering 503 past a 3 s retry budget: the vault step's line is a WARNING that
    gives the cause (the SDK's error, not swallowed by the redaction) with the step's fields, the
    request's failure is a WARNING that says the admins can Retry, approved → failed is one INFO
    state line; /metrics counts one failed new_app request, one failed vault step, one Key Vault
    write that did not end in 200 and its retries after 503."""
    with production_logging("json") as stream:
        card = request_new_app(slack, DEVELOPER, "vault-down-app")
        cloud.vault.inject("PUT", r"^/secrets/", status=503, times=1000)
        request = approve(slack, cloud, bot, card, ADMINS[0])
        assert request.status == Status.FAILED
        wait_until(lambda: "admins can Retry" in stream.getvalue(), what="the failure line")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ours = [d for d in lines if d.get("request_id") == request.id]
    vault = [d for d in ours if d.get("event") == "request.step" and d["step"] == "vault"]
    assert len(vault) == 1 and vault[0]["level"] == "WARNING" and vault[0]["outcome"] == "failed"
    # The budget ran out between 503s: the cause is the SDK's error, named (not redacted away).
    assert "[REDACTED]" not in vault[0]["message"], vault[0]["message"]
    assert "after retries" in vault[0]["message"] and vault[0]["client_id"] == request.client_id
    failed = [d for d in ours if d["level"] == "WARNING" and "admins can Retry" in d["message"]]
    assert len(failed) == 1 and "Key Vault" in failed[0]["message"]
    states = [(d["to_status"], d["level"]) for d in ours if d.get("event") == "request.state"]
    assert states == [("approved", "INFO"), ("failed", "INFO")]

    samples = _samples(httpx.get(f"{bot.url}/metrics", timeout=10).text)
    assert _value(samples, "oauth_bot_requests_total", kind="new_app", state="failed") == 1
    assert _value(samples, "oauth_bot_requests_total", kind="new_app", state="completed") == 0
    assert _value(samples, "oauth_bot_step_duration_seconds_count", step="vault", outcome="failed") == 1
    write = {"service": "keyvault", "operation": "PUT /secrets/{name}"}
    ended = {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "oauth_bot_remote_calls_total" and dict(labels).get("operation") == write["operation"]
    }
    assert sum(ended.values()) == 1 and "200" not in ended, ended  # one call, ended by the budget
    assert _value(samples, "oauth_bot_remote_retries_total", reason="503", **write) >= 1


def test_a_takeover_and_the_requests_in_flight_are_counted(
    cloud: FakeCloud, database_path: Path, clock: ManualClock
) -> None:
    """An approved request whose lease names a worker that is gone (no live lock) is taken over
    by the next poll: /metrics counts one lease takeover, shows the request in flight while its
    addPassword is slow (1 s per answer) and none once it completed; the takeover is an INFO line
    naming the dead worker."""
    settings = cloud.settings(f"sqlite:///{database_path}")
    with (
        BackgroundBot(settings, clock=clock, start_worker=False) as running,
        SlackDriver(app_url=running.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
        production_logging("json") as stream,
    ):
        assert running.services is not None
        store = running.services.store
        request_id = request_id_of(request_new_app(slack, DEVELOPER, "taken-over-app"))
        dead = "worker-0000dead0000"
        assert store.transition(
            request_id,
            from_status=[Status.PENDING],
            to_status=Status.APPROVED,
            approver_id=ADMINS[0],
            lease_owner=dead,
            lease_until=store.now() + timedelta(hours=1),
        )
        cloud.graph.latency(1.0, "POST", r"/addPassword$")

        def gauge() -> float:
            body = httpx.get(f"{running.url}/metrics", timeout=10).text
            return _value(_samples(body), "oauth_bot_requests_in_flight")

        assert gauge() == 0
        (future,) = running.services.worker.poll_once()
        wait_until(lambda: gauge() == 1, what="the request in flight")
        assert future.result(timeout=60) is True
        wait_until(lambda: gauge() == 0, what="nothing in flight")
        samples = _samples(httpx.get(f"{running.url}/metrics", timeout=10).text)
        assert _value(samples, "oauth_bot_lease_takeovers_total") == 1
        assert _value(samples, "oauth_bot_requests_total", kind="new_app", state="completed") == 1
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    taken = [d for d in lines if d.get("taken_from") == dead]
    assert len(taken) == 1 and taken[0]["level"] == "INFO" and taken[0]["request_id"] == request_id
