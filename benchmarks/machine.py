"""CPU accounting from /proc for the benchmarks: a process's CPU time, the whole machine's busy
time, and waiting for other work on the machine to finish before measuring."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (every thread), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def own_cpu_seconds() -> float:
    """This process's CPU time, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy (user+nice+system+irq+softirq+steal), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_for_quiet(max_wait: float, threshold: float = 0.2, window: float = 1.0) -> float:
    """Wait (at most `max_wait` s) until the machine is quiet: less than `threshold` of a core
    busy over `window` s while this benchmark is idle. Returns the last load seen (cores)."""
    deadline = time.monotonic() + max_wait
    while True:
        before, own = machine_busy_seconds(), own_cpu_seconds()
        time.sleep(window)
        load = (machine_busy_seconds() - before - (own_cpu_seconds() - own)) / window
        if load < threshold or time.monotonic() >= deadline:
            return load
        time.sleep(2.0)


class Background:
    """How many cores other processes kept busy while a block ran (besides `own_pids` and us)."""

    def __init__(self, *own_pids: int) -> None:
        self.own_pids = own_pids
        self.cores = 0.0

    def __enter__(self) -> Background:
        self._start = time.monotonic()
        self._busy = machine_busy_seconds()
        self._own = own_cpu_seconds() + sum(cpu_seconds(pid) for pid in self.own_pids)
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._start
        own = own_cpu_seconds() + sum(cpu_seconds(pid) for pid in self.own_pids) - self._own
        self.cores = max(0.0, (machine_busy_seconds() - self._busy - own) / wall) if wall else 0.0
