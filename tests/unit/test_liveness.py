"""Liveness on SQLite: a worker is alive exactly while its process holds its lock file, and a
probe by another process or thread is never mistaken for a live holder."""

from __future__ import annotations

import fcntl
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.engine.liveness import LockFiles


def _dies(liveness: LockFiles) -> None:
    """What SIGKILL does to a worker: its descriptor closes, its file stays behind."""
    assert liveness._fd is not None
    os.close(liveness._fd)
    liveness._fd = None


def test_a_worker_is_alive_while_it_holds_its_lock_and_dead_after(tmp_path: Path) -> None:
    """Another process's check sees a registered worker alive, and dead once its lock is gone."""
    database = tmp_path / "oauth-bot.db"
    holder, checker = LockFiles(database, "worker-a"), LockFiles(database, "worker-b")
    assert checker.alive("worker-a") and checker.alive("worker-b")
    _dies(holder)
    assert not checker.alive("worker-a")
    assert not checker.alive("worker-never-registered")


def test_a_probe_holding_the_lock_for_a_moment_is_not_a_live_holder(tmp_path: Path) -> None:
    """Someone else probing the dead worker's file at the same moment (another replica on the
    file, or another thread) holds its lock for an instant; the check waits that out."""
    database = tmp_path / "oauth-bot.db"
    dead, checker = LockFiles(database, "worker-a"), LockFiles(database, "worker-b")
    _dies(dead)
    probe = os.open(dead.directory / "worker-a.lock", os.O_RDWR)
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    threading.Timer(0.02, os.close, args=(probe,)).start()
    assert not checker.alive("worker-a")


def test_two_threads_checking_one_dead_worker_both_find_it_dead(tmp_path: Path) -> None:
    """The worker's poll and the scheduler check the same dead worker at start; both see it dead."""
    database = tmp_path / "oauth-bot.db"
    dead, checker = LockFiles(database, "worker-a"), LockFiles(database, "worker-b")
    _dies(dead)
    start = threading.Barrier(8)

    def check(_: int) -> bool:
        start.wait()
        return checker.alive("worker-a")

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(check, range(8))) == [False] * 8
