"""Runs approved requests in background threads and picks up work left by a crash.

Work is claimed with a lease in the database, so a request runs in one place at a time.
A request whose holder has died (bot.engine.liveness asks the operating system or the database,
not the clock) is claimed again by the next poll, here or on another replica; the first
poll runs as the worker starts, so a restarted bot carries its own interrupted work on at
once. A lease whose time ran out (a holder alive but stuck) is claimed again too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bot.core.ports import NO_METRICS, Metrics
from bot.engine.liveness import Liveness
from bot.engine.runner import Runner
from bot.store import Store

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        runner: Runner,
        store: Store,
        liveness: Liveness,
        *,
        before_poll: Callable[[], object] = lambda: None,
        threads: int = 4,
        poll_seconds: float = 5.0,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.runner = runner
        self.metrics = metrics
        self._before_poll = before_poll  # e.g. expire pending requests past their time
        self.store = store
        self.liveness = liveness
        self.poll_seconds = poll_seconds
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")
        self._in_flight: dict[int, Future[bool]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, request_id: int, *, taking_over: str | None = None) -> Future[bool]:
        """Run the request here unless this process is already running it."""
        with self._lock:
            for done in [key for key, future in self._in_flight.items() if future.done()]:
                del self._in_flight[done]
            running = self._in_flight.get(request_id)
            if running is not None:
                return running
            future = self._pool.submit(self._run, request_id, taking_over)
            self._in_flight[request_id] = future
        self._report_depth()
        future.add_done_callback(lambda _future: self._report_depth())
        return future

    def _report_depth(self) -> None:
        """Requests handed to this process and not finished yet, queued or running (a gauge)."""
        with self._lock:  # set under the lock: two threads' counts cannot land out of order
            self.metrics.queue_depth(sum(not future.done() for future in self._in_flight.values()))

    def _run(self, request_id: int, taking_over: str | None) -> bool:
        try:
            return self.runner.execute(request_id, taking_over=taking_over)
        except Exception:
            log.exception("worker: request %s stopped unexpectedly", request_id)
            return False

    def poll_once(self) -> list[Future[bool]]:
        """Claim what nobody is running: new approvals and work a dead process left behind."""
        self._before_poll()
        started = []
        alive: dict[str, bool] = {}
        for request_id, holder in self.store.approved_leases():
            if holder is None:
                started.append(self.submit(request_id))
            elif holder != self.liveness.worker_id:
                if holder not in alive:
                    alive[holder] = self.liveness.alive(holder)
                if not alive[holder]:
                    log.info("request %s: its worker %s is gone; carrying it on here", request_id, holder)
                    started.append(self.submit(request_id, taking_over=holder))
        return started

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="worker-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("worker: poll failed; polling again in %s s", self.poll_seconds)
            self._stop.wait(self.poll_seconds)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for the requests started so far (tests and shutdown)."""
        with self._lock:
            futures = list(self._in_flight.values())
        for future in futures:
            future.result(timeout=timeout)

    def stop(self) -> None:
        """Stop polling; running requests stop at their next step boundary and give their
        lease back, so the next process (or another replica) carries them on at once."""
        self._stop.set()
        self.runner.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
