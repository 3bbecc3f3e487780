"""Scheduled jobs (expiry scan, grace-period removals, stale requests), each run by one leader.

Every replica runs a Scheduler; before a job runs, the replica takes the job's lease row
(a compare-and-set in the database), so with several replicas a job runs on one at a time.
If the leader dies another takes over at its next tick (bot.engine.liveness tells it the leader is
gone), or when the lease runs out.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.engine.liveness import Liveness
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    every: timedelta
    run: Callable[[], object]
    last_run: datetime | None = None


class Scheduler:
    def __init__(
        self,
        store: Store,
        *,
        liveness: Liveness | None = None,
        holder: str | None = None,
        tick_seconds: float = 10.0,
    ) -> None:
        self.store = store
        self.liveness = liveness  # without it, a dead leader's lease is taken when it runs out
        self.holder = holder or (liveness.worker_id if liveness else f"scheduler-{uuid.uuid4().hex[:8]}")
        self.tick_seconds = tick_seconds
        self.jobs: list[Job] = []
        self.runs: list[str] = []  # names of the jobs this replica ran (for operators and tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, every: timedelta, run: Callable[[], object]) -> None:
        self.jobs.append(Job(name, every, run))

    def tick(self) -> list[str]:
        """Run every job that is due and whose lease this replica gets. Returns their names."""
        ran = []
        now = self.store.now()
        for job in self.jobs:
            due = job.last_run is None or now - job.last_run >= job.every
            if not due:
                continue
            # The lease outlives the interval a little, so one leader keeps a job.
            if not self._lead(job):
                continue
            if not self.store.job_due(job.name, job.every):
                continue
            job.last_run = now
            self.store.job_ran(job.name)  # before running: a long run is not started again elsewhere
            try:
                job.run()
            except Exception:
                log.exception("scheduled job %s failed; it runs again at its next interval", job.name)
            ran.append(job.name)
            self.runs.append(job.name)
        return ran

    def _lead(self, job: Job) -> bool:
        lease = job.every + timedelta(minutes=1)
        if self.store.acquire_job(job.name, self.holder, lease):
            return True
        leader = self.store.job_holder(job.name)
        if self.liveness is None or leader is None or self.liveness.alive(leader):
            return False
        log.info("scheduled job %s: its leader %s is gone; leading it here", job.name, leader)
        return self.store.acquire_job(job.name, self.holder, lease, taking_over=leader)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; trying again in %s s", self.tick_seconds)
            self._stop.wait(self.tick_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
