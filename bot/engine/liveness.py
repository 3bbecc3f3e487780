"""Is the process that holds a lease still alive? Asked of the operating system or the database,
not of the clock, so that work a dead process left is carried on at once.

Each worker process registers under its worker id for as long as it lives:
- SQLite (one host): an exclusive `flock` on `<database>.workers/<worker id>.lock`. The kernel
  drops it when the process dies, however it dies, so another process can take it: then the
  holder is dead.
- PostgreSQL (replicas): a session-level advisory lock keyed by the worker id, held on a
  connection of its own. The server drops it when that connection ends (the process died, or
  lost the database): then the holder is dead. The holder checks its connection at every step,
  so a replica cut off from the database stops before another carries its work on.
- An in-memory SQLite database has one process by nature: every other holder is dead.

The lease's time limit stays as the last resort (a process that is alive but stuck).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PROBE_ATTEMPTS = 3
PROBE_PAUSE_SECONDS = 0.05


class Liveness(Protocol):
    worker_id: str

    def alive(self, worker_id: str) -> bool:
        """Is the process registered under this worker id still alive?"""

    def holding(self) -> bool:
        """Is this process still registered (others see it alive)?"""

    def close(self) -> None:
        """Unregister: from now on others see this worker as dead."""


class SameProcess:
    """One process owns the database (SQLite in memory): only this worker is alive."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def alive(self, worker_id: str) -> bool:
        return worker_id == self.worker_id

    def holding(self) -> bool:
        return True

    def close(self) -> None:
        return None


class LockFiles:
    """SQLite on a file: one flock'ed file per live worker process, next to the database."""

    def __init__(self, database: Path, worker_id: str) -> None:
        self.worker_id = worker_id
        self.directory = database.with_name(database.name + ".workers")
        self.directory.mkdir(mode=0o700, exist_ok=True)
        self._probing = threading.Lock()
        self._fd: int | None = os.open(self._path(worker_id), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _path(self, worker_id: str) -> Path:
        if not _SAFE_ID.match(worker_id):
            raise ValueError(f"not a worker id: {worker_id!r}")
        return self.directory / f"{worker_id}.lock"

    def alive(self, worker_id: str) -> bool:
        if worker_id == self.worker_id:
            return self._fd is not None
        with self._probing:  # two of this process's threads must not mistake each other's probe
            return self._probe(worker_id)

    def _probe(self, worker_id: str) -> bool:
        path = self._path(worker_id)
        for attempt in range(PROBE_ATTEMPTS):
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                return False  # never registered here, or already found dead
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # The holder, or another process probing for a moment: only a holder keeps it.
                if attempt + 1 < PROBE_ATTEMPTS:
                    time.sleep(PROBE_PAUSE_SECONDS)
                continue
            finally:
                os.close(fd)  # also releases the lock if we got it
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return False
        return True

    def holding(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._path(self.worker_id).unlink()
        os.close(self._fd)
        self._fd = None


def _lock_key(worker_id: str) -> int:
    return int.from_bytes(hashlib.sha256(worker_id.encode()).digest()[:8], "big", signed=True)


class AdvisoryLocks:
    """PostgreSQL: a session-level advisory lock per live worker, on a connection of its own."""

    def __init__(self, engine: Engine, worker_id: str) -> None:
        self.worker_id = worker_id
        self._engine = engine
        self._guard = threading.Lock()  # one connection, used by the worker's threads in turn
        self._probing = threading.Lock()  # this process's threads must not mistake each other's probe
        self._connection: Any = self._register()

    def _register(self) -> Any:
        connection = self._engine.connect()
        connection.detach()  # never back to the pool: closing it must end the session (and the lock)
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key(self.worker_id)})
        connection.commit()
        return connection

    def alive(self, worker_id: str) -> bool:
        if worker_id == self.worker_id:
            return self.holding()
        key = _lock_key(worker_id)
        with self._probing, self._engine.connect() as connection:
            for attempt in range(PROBE_ATTEMPTS):
                got = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
                if got:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
                    return False
                connection.commit()
                if attempt + 1 < PROBE_ATTEMPTS:  # the holder, or another replica probing for a moment
                    time.sleep(PROBE_PAUSE_SECONDS)
        return True

    def holding(self) -> bool:
        """False when the session that holds the lock was lost (others may have taken this
        worker's requests over by now); the lock is taken again for the work that comes next."""
        with self._guard:
            if self._connection is None:
                return False
            try:
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()
                return True
            except Exception:
                log.warning("lost the database session that marks this worker alive; registering again")
            with contextlib.suppress(Exception):
                self._connection.close()
            try:
                self._connection = self._register()
            except Exception:
                self._connection = None
                log.exception("could not register this worker again")
            return False

    def close(self) -> None:
        with self._guard:
            if self._connection is not None:
                with contextlib.suppress(Exception):
                    self._connection.close()
                self._connection = None


def liveness_for(engine: Engine, worker_id: str) -> Liveness:
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine, worker_id)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return LockFiles(Path(database).resolve(), worker_id)
    return SameProcess(worker_id)
