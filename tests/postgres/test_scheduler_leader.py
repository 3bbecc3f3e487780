"""Scheduled jobs with several replicas: each job runs on one leader at a time, once per
interval in total, and another replica takes over when the leader's lease runs out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

import pytest

from bot.engine.scheduler import Scheduler
from bot.store import Store
from bot.store.tables import JobLeaseRow
from fakes.clock import ManualClock

pytestmark = pytest.mark.postgres

JOB = "expiry-scan"
EVERY = timedelta(minutes=10)
LEASE = EVERY + timedelta(minutes=1)  # what Scheduler.tick asks for: the interval and a minute
TICKS = 25


class Replicas:
    """Two replicas' schedulers (own engines, own holders) on one database and one clock,
    each with the same job; `runs` lists which replica ran it, in order."""

    def __init__(self, url: str) -> None:
        self.clock = ManualClock()
        self.runs: list[str] = []
        self._lock = threading.Lock()
        self.stores = [Store.from_url(url, clock=self.clock) for _ in range(2)]
        self.schedulers: dict[str, Scheduler] = {}
        for holder, store in zip(("replica-a", "replica-b"), self.stores, strict=True):
            scheduler = Scheduler(store, holder=holder)
            scheduler.add(JOB, EVERY, partial(self._ran, holder))
            self.schedulers[holder] = scheduler

    def _ran(self, holder: str) -> None:
        with self._lock:
            self.runs.append(holder)

    def tick(self, *holders: str, times: int = TICKS) -> None:
        """Each named replica ticks `times` times, all of them at once from their own threads."""
        start = threading.Barrier(len(holders), timeout=30)

        def loop(holder: str) -> None:
            start.wait()
            for _ in range(times):
                self.schedulers[holder].tick()

        with ThreadPoolExecutor(max_workers=len(holders)) as pool:
            for done in [pool.submit(loop, holder) for holder in holders]:
                done.result(timeout=60)

    def lease(self) -> JobLeaseRow | None:
        with self.stores[0].session() as session:
            return session.get(JobLeaseRow, JOB)

    def close(self) -> None:
        for store in self.stores:
            store.engine.dispose()


@pytest.fixture
def replicas(migrated_url: str) -> Iterator[Replicas]:
    both = Replicas(migrated_url)
    yield both
    both.close()


def test_a_scheduled_job_runs_once_per_interval_on_one_leader(replicas: Replicas) -> None:
    """Two replicas tick at the same moment, many times, on a fresh database (no lease row
    yet): the job runs once. More ticks, alternating, without time passing: still once. One
    interval later it runs once more, on the same leader (its lease outlives the interval)."""
    replicas.tick("replica-a", "replica-b")
    assert len(replicas.runs) == 1
    leader = replicas.runs[0]
    lease = replicas.lease()
    assert lease is not None and lease.holder == leader and lease.last_run is not None

    for _ in range(5):
        replicas.tick("replica-a", times=1)
        replicas.tick("replica-b", times=1)
    assert len(replicas.runs) == 1

    replicas.clock.advance(EVERY - timedelta(seconds=1))
    replicas.tick("replica-a", "replica-b")
    assert len(replicas.runs) == 1  # not due yet

    replicas.clock.advance(timedelta(seconds=1))
    replicas.tick("replica-a", "replica-b")
    assert replicas.runs == [leader, leader]


def test_the_other_replica_takes_over_when_the_leaders_lease_runs_out(replicas: Replicas) -> None:
    """The leader stops ticking (it died). While its lease lasts the job waits, even though it
    is due; once the lease has run out the other replica takes the job, runs it once, and from
    then on is the leader: the old one, ticking again, does not run it."""
    replicas.tick("replica-a", "replica-b")
    [leader] = replicas.runs
    follower = "replica-b" if leader == "replica-a" else "replica-a"

    replicas.clock.advance(EVERY)  # due, but the silent leader's lease runs a minute longer
    replicas.tick(follower)
    assert replicas.runs == [leader]

    replicas.clock.advance(LEASE - EVERY + timedelta(seconds=1))  # the lease has run out
    replicas.tick(follower)
    assert replicas.runs == [leader, follower]
    lease = replicas.lease()
    assert lease is not None and lease.holder == follower

    replicas.tick(leader, follower)  # the old leader is back: nothing is due, and it is not the leader
    assert replicas.runs == [leader, follower]

    replicas.clock.advance(EVERY)
    replicas.tick(leader, follower)
    assert replicas.runs == [leader, follower, follower]
