"""Several replicas of the bot on one PostgreSQL database: a decision is taken once however
many clicks land on however many replicas, and work a dead replica claimed is finished by
another once its lease runs out."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.model import Request, Status, secret_name_for
from bot.store import Store
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import (
    assert_only_the_limit_was_filed,
    request_id_of,
    request_new_app,
    submit_copies_at_once,
    wait_for_status,
)
from tests.postgres.conftest import free_port, healthy, process_env, read

pytestmark = pytest.mark.postgres

CLICKS = 50


class GatedTransport(httpx.BaseTransport):
    """Holds every request at a barrier, then lets them all go at once: each clicker has
    looked at the card (as it was) before any click reaches a bot."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.barrier.wait()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _apps_named(cloud: FakeCloud, name: str) -> list[dict[str, Any]]:
    return [a for a in cloud.graph.apps() if a["displayName"] == name]


def _done_dms(cloud: FakeCloud, request_id: int) -> list[dict[str, Any]]:
    return [m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request_id} is done" in m.get("text", "")]


def _replica(cloud: FakeCloud, url: str, **settings: Any) -> BackgroundBot:
    return BackgroundBot(
        cloud.settings(url, **settings)  # the README's defaults unless a test is about a setting
    )


def _clicks_at_once(
    cloud: FakeCloud, url: str, name: str, clicks: int, clicker: Callable[[int], str], **settings: Any
) -> Request:
    """Two replicas on one database; a developer files `name` through the first; `clicks` Approve
    clicks (click i by `clicker(i)`) arrive at the same moment, alternating between the
    replicas. Returns the request once it has ended and its "is done" DM is out, with both
    replicas stopped (their listeners and workers finished) so that everything can be counted."""
    barrier = threading.Barrier(clicks, timeout=60)
    with ExitStack() as stack:
        replicas = [stack.enter_context(_replica(cloud, url, **settings)) for _ in range(2)]
        for replica in replicas:
            assert replica.services is not None
            stack.callback(replica.services.store.engine.dispose)
        with SlackDriver(app_url=replicas[0].url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
            card = request_new_app(slack, DEVELOPER, name)
        request_id = request_id_of(card)
        drivers = [
            stack.enter_context(
                SlackDriver(
                    app_url=replica.url,
                    signing_secret=SIGNING_SECRET,
                    slack=cloud.slack,
                    client=stack.enter_context(httpx.Client(transport=GatedTransport(barrier), timeout=60.0)),
                )
            )
            for replica in replicas
        ]

        def click(index: int) -> int:
            driver = drivers[index % 2]
            return driver.click(clicker(index), "Approve", message=card, channel=APPROVAL_CHANNEL).status_code

        with ThreadPoolExecutor(max_workers=clicks) as pool:
            statuses = list(pool.map(click, range(clicks), timeout=120))
        assert statuses == [200] * clicks
        request = wait_for_status(replicas[0], request_id, Status.COMPLETED, Status.FAILED)
        assert request.status == Status.COMPLETED, request.error
        wait_until(lambda: _done_dms(cloud, request_id), what="the 'is done' DM")
        for replica in replicas:
            replica.stop()
    return request


def test_fifty_approve_clicks_across_two_replicas_create_one_app(cloud: FakeCloud, migrated_url: str) -> None:
    """Two replicas share the database; a developer files a request through replica 1; 50
    Approve clicks from both admins arrive at the same moment, spread over both replicas.
    Exactly one click wins: one app, one client secret, one vault version, one "is done" DM,
    one request.approved audit event; every other click is told the request is already
    decided, and no click hits an unexpected error."""
    name = f"replicas-{uuid.uuid4().hex[:8]}"
    store = Store.from_url(migrated_url)
    with ExitStack() as stack:
        stack.callback(store.engine.dispose)
        request = _clicks_at_once(cloud, migrated_url, name, CLICKS, lambda i: ADMINS[(i // 2) % 2])
        request_id = request.id
        apps = _apps_named(cloud, name)
        assert len(apps) == 1
        assert apps[0]["appId"] == request.client_id
        passwords = cloud.graph.passwords(apps[0]["id"])
        assert [p["keyId"] for p in passwords] == [request.key_id]
        assert len(cloud.vault.versions(secret_name_for(apps[0]["appId"]))) == 1
        assert len(_done_dms(cloud, request_id)) == 1
        actions = [e.action for e in store.audit_events(request_id=request_id)]
        assert actions.count("request.approved") == 1
        assert actions.count("app.created") == 1
        assert actions.count("secret.added") == 1
        assert actions.count("request.completed") == 1
        refusals = [
            e for e in cloud.slack.ephemerals() if f"Request #{request_id} is already" in e.get("text", "")
        ]
        assert len(refusals) == CLICKS - 1
        for admin in ADMINS:
            assert not [m for m in cloud.slack.dm_messages(admin) if "went wrong" in m.get("text", "")]


def test_one_submission_delivered_eight_times_across_two_replicas_files_only_up_to_the_limit(
    cloud: FakeCloud, migrated_url: str
) -> None:
    """Two replicas with a limit of 2 open requests per user; one signed view_submission
    arrives 8 times at the same moment, 4 copies at each replica. Exactly 2 requests are
    filed (2 approval cards); the other 6 are refused with the limit, in the modal or a DM."""
    name = f"limit-race-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(_replica(cloud, migrated_url, oauth_bot_max_open_requests=2))
            for _ in range(2)
        ]
        for replica in replicas:
            assert replica.services is not None
            stack.callback(replica.services.store.engine.dispose)
        drivers = [
            stack.enter_context(SlackDriver(app_url=r.url, signing_secret=SIGNING_SECRET, slack=cloud.slack))
            for r in replicas
        ]
        responses = submit_copies_at_once(drivers[0], DEVELOPER, name, via=drivers)
        assert replicas[0].services is not None
        assert_only_the_limit_was_filed(cloud, replicas[0].services.store, responses, DEVELOPER, name, 2)


def test_a_replica_killed_with_claimed_work_is_taken_over_promptly(
    cloud: FakeCloud, migrated_url: str, tmp_path: Path
) -> None:
    """Replica A (`oauth-bot serve`, default settings: lease 60 s, poll 5 s) claims an approved
    request and dies right after addPassword, before the vault write (halted there, then
    SIGKILLed). Replica B, started while A still holds the lease, takes the request over
    within one poll of A's death (the database dropped A's advisory lock with its session),
    long before the lease would run out, and completes it: one app, exactly one client secret
    on it (A's orphan removed, which the audit log records) whose value is the one in the
    vault, one "is done" DM, status completed."""
    name = f"takeover-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = tmp_path / "replica-a.log"
    env = process_env(
        cloud,
        migrated_url,
        port,
        OAUTH_BOT_TEST_HALT_AT="add_password:finished",
    )
    store = Store.from_url(migrated_url)
    with ExitStack() as stack:
        stack.callback(store.engine.dispose)
        output = stack.enter_context(log.open("w"))
        replica_a = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.halting"],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )

        @stack.callback
        def _reap() -> None:
            if replica_a.poll() is None:
                replica_a.kill()
            replica_a.wait(timeout=30)

        url_a = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url_a) or replica_a.poll() is not None, timeout=60, what="A's /healthz")
        assert replica_a.poll() is None, read(log)

        with SlackDriver(app_url=url_a, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
            card = request_new_app(slack, DEVELOPER, name)
            request_id = request_id_of(card)
            assert (
                slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL).status_code == 200
            )

        def halted() -> dict[str, Any] | None:
            for step in store.steps(request_id):
                if step.step == "add_password" and step.state == "finished":
                    return step.detail
            return None

        orphan = wait_until(halted, timeout=60, what="A to halt after addPassword")["key_id"]
        a_owner = store.get_request(request_id).lease_owner
        assert a_owner is not None
        app = _apps_named(cloud, name)[0]
        assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [orphan]

        replica_b = stack.enter_context(_replica(cloud, migrated_url))
        assert replica_b.services is not None
        stack.callback(replica_b.services.store.engine.dispose)
        assert not replica_b.services.worker.poll_once(), "B took the request while A was alive"
        replica_a.send_signal(signal.SIGKILL)
        assert replica_a.wait(timeout=30) == -signal.SIGKILL
        wait_until(
            lambda: store.get_request(request_id).lease_owner not in (None, a_owner),
            timeout=replica_b.settings.oauth_bot_poll_seconds + 3,
            what="B to take the request over within one poll",
        )
        assert "halting at add_password:" in read(log)  # (the log redacts what follows "password:")

        request = wait_for_status(replica_b, request_id, Status.COMPLETED, Status.FAILED, timeout=60)
        assert request.status == Status.COMPLETED, request.error
        wait_until(lambda: _done_dms(cloud, request_id), what="the 'is done' DM")
        replica_b.stop()

        assert len(_apps_named(cloud, name)) == 1
        passwords = cloud.graph.passwords(app["id"])
        assert [p["keyId"] for p in passwords] == [request.key_id]
        assert request.key_id != orphan
        secret_name = secret_name_for(app["appId"])
        assert len(cloud.vault.versions(secret_name)) == 1
        value = cloud.vault.value_of(secret_name)
        assert value is not None and cloud.graph.check_secret(app["appId"], value)
        assert len(_done_dms(cloud, request_id)) == 1

        events = store.audit_events(request_id=request_id)
        removed = [e for e in events if e.action == "secret.removed"]
        assert [(e.detail["key_id"], e.detail["reason"]) for e in removed] == [
            (orphan, "orphan: no value in the vault")
        ]
        assert [e.action for e in events].count("request.completed") == 1
        orphan_steps = [(s.state, s.detail) for s in store.steps(request_id) if s.step == "remove_orphan"]
        assert orphan_steps == [("started", {"key_id": orphan}), ("finished", {})]


def test_a_live_replica_with_a_slow_step_keeps_its_request(cloud: FakeCloud, migrated_url: str) -> None:
    """A step slower than the lease (addPassword answering after 4 s, lease 2 s) does not let
    another replica take the request over while the first is alive: its heartbeat renews the
    lease, so there is one password, one vault version and one DM, all from one replica."""
    name = f"slow-step-{uuid.uuid4().hex[:8]}"
    store = Store.from_url(migrated_url)
    settings = cloud.settings(
        migrated_url,
        oauth_bot_lease_seconds=2.0,
        oauth_bot_poll_seconds=0.3,
        oauth_bot_retry_budget_seconds=20.0,
    )
    first = BackgroundBot(settings).start()
    second = BackgroundBot(settings).start()
    try:
        with SlackDriver(app_url=first.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
            card = request_new_app(slack, DEVELOPER, name)
            request_id = request_id_of(card)
            cloud.graph.latency(4.0, "POST", r"/addPassword$")
            slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
            request = wait_for_status(first, request_id, Status.COMPLETED, Status.FAILED, timeout=60)
            assert request.status == Status.COMPLETED, request.error
            assert first.services is not None and second.services is not None
            first.services.worker.drain(30)
            second.services.worker.drain(30)
    finally:
        first.stop()
        second.stop()
    app = next(a for a in cloud.graph.apps() if a["displayName"] == name)
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [request.key_id]
    assert len(cloud.vault.versions(secret_name_for(app["appId"]))) == 1
    assert len([s for s in store.steps(request_id) if s.step == "add_password" and s.state == "started"]) == 1
    done = [m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request_id} is done" in m.get("text", "")]
    assert len(done) == 1
    assert [e.action for e in store.audit_events(request_id=request_id)].count("request.completed") == 1
    store.engine.dispose()


def test_two_approvers_clicking_at_once_across_two_replicas_run_the_request_once(
    cloud: FakeCloud, migrated_url: str, tmp_path: Path
) -> None:
    """A rule that needs 2 approvals from a list of two people; the two replicas share the
    database. Each approver clicks Approve 10 times, all 20 clicks arriving at the same moment
    spread over both replicas. Each person counts once (2 approval rows), the request moves to
    approved once (one request.approved event naming both) and runs once: one app, one secret,
    one "is done" DM."""
    policy = tmp_path / "policy.yml"
    policy.write_text(
        f"approvers:\n  pair: {{users: [{ADMINS[0]}, {ADMINS[1]}]}}\n"
        "rules:\n  - match: {}\n    approvers: pair\n    approvals: 2\n"
    )
    name = f"two-of-two-{uuid.uuid4().hex[:8]}"
    clicks = 20
    store = Store.from_url(migrated_url)
    with ExitStack() as stack:
        stack.callback(store.engine.dispose)
        request = _clicks_at_once(
            cloud,
            migrated_url,
            name,
            clicks,
            lambda i: ADMINS[(i // 2) % 2],
            oauth_bot_policy_file=str(policy),
        )
        request_id = request.id
        assert sorted(a.approver_id for a in store.approvals(request_id)) == sorted(ADMINS)
        events = store.audit_events(request_id=request_id)
        approved = [e for e in events if e.action == "request.approved"]
        assert len(approved) == 1 and sorted(approved[0].detail["approvers"]) == sorted(ADMINS)
        assert [e.action for e in events].count("request.approval") == 1
        apps = _apps_named(cloud, name)
        assert len(apps) == 1
        assert len(cloud.graph.passwords(apps[0]["id"])) == 1
        assert len(cloud.vault.versions(secret_name_for(apps[0]["appId"]))) == 1
        assert len(_done_dms(cloud, request_id)) == 1
        for admin in ADMINS:
            assert not [m for m in cloud.slack.dm_messages(admin) if "went wrong" in m.get("text", "")]


def test_a_reminder_is_sent_once_when_both_replicas_run_the_job_at_once(
    cloud: FakeCloud, migrated_url: str
) -> None:
    """Two replicas on one database and one clock run the approver reminders at the same
    moment (past each scheduler's leader lease: the reminder's own compare-and-set): the card
    gets one reminder and later one escalation, each audited once."""
    clock = ManualClock()
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(BackgroundBot(cloud.settings(migrated_url), clock=clock)) for _ in range(2)
        ]
        services = []
        for replica in replicas:
            assert replica.services is not None
            services.append(replica.services)
            stack.callback(replica.services.store.engine.dispose)
        with SlackDriver(app_url=replicas[0].url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
            card = request_new_app(slack, DEVELOPER, f"remind-once-{uuid.uuid4().hex[:8]}")
        barrier = threading.Barrier(2, timeout=30)

        def remind(index: int) -> int:
            barrier.wait()
            return services[index].intake.approvals.remind()

        for hours in (25, 25):
            clock.advance(timedelta(hours=hours))
            with ThreadPoolExecutor(max_workers=2) as pool:
                assert sorted(pool.map(remind, range(2), timeout=60)) == [0, 1]
        replies = [m for m in cloud.slack.messages(APPROVAL_CHANNEL) if m.get("thread_ts") == card["ts"]]
        assert len(replies) == 2
        actions = [e.action for e in services[0].store.audit_events(request_id=request_id_of(card))]
        assert actions.count("request.reminded") == 1 and actions.count("request.escalated") == 1
