"""Runs approved requests in background threads and picks up work left by a crash.

Work is claimed with a lease in the database, so a request runs in one place at a time;
a request whose lease ran out (its process died) is claimed again by the next poll, here
or on another replica.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from bot.store import Store
from bot.workflow import Workflow

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self, workflow: Workflow, store: Store, *, threads: int = 4, poll_seconds: float = 5.0
    ) -> None:
        self.workflow = workflow
        self.store = store
        self.poll_seconds = poll_seconds
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")
        self._in_flight: dict[int, Future[bool]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, request_id: int) -> Future[bool]:
        """Run the request here unless this process is already running it."""
        with self._lock:
            running = self._in_flight.get(request_id)
            if running is not None and not running.done():
                return running
            future = self._pool.submit(self._run, request_id)
            self._in_flight[request_id] = future
            return future

    def _run(self, request_id: int) -> bool:
        try:
            return self.workflow.execute(request_id)
        except Exception:
            log.exception("worker: request %s stopped unexpectedly", request_id)
            return False

    def poll_once(self) -> list[Future[bool]]:
        """Claim what nobody is running: new approvals and work a dead process left behind."""
        self.workflow.expire_stale()
        return [self.submit(request_id) for request_id in self.store.claimable()]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="worker-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("worker: poll failed")
            self._stop.wait(self.poll_seconds)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for the requests started so far (tests and shutdown)."""
        with self._lock:
            futures = list(self._in_flight.values())
        for future in futures:
            future.result(timeout=timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)
