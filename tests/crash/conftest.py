"""Crash and fault matrices: shared fakes, the bot as a real process, and the totals.

One FakeCloud serves the whole session (its own CA directory). Every cell names its app
uniquely, so what a cell finds in the fakes is what its request did. The totals of each
matrix are printed at the end of the run (pytest_terminal_summary).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from bot.core.model import Status, secret_name_for
from bot.store import Store
from fakes.cloud import OWNER_ROLES, FakeCloud
from tests.e2e.conftest import _trust_and_reset, cloud, wait_until  # noqa: F401 - shared fakes

OWNER_CLIENT_ID = "0b07b07b-0000-4000-8000-0000000000a1"  # a second bot identity, with owner rights
OWNER_CLIENT_SECRET = "fake-owner-bot-credential-for-loopback-only"


# --- totals -----------------------------------------------------------------------------
@dataclass
class Totals:
    """What one matrix did, summed over its cells."""

    fault_kind: str = ""
    runs: int = 0
    faults: int = 0
    completed: int = 0
    failed_cleanly: int = 0
    not_filed: int = 0  # the user was told to try again; no request exists
    values_lost: int = 0
    twins: int = 0

    def line(self, name: str) -> str:
        kind = f" ({self.fault_kind})" if self.fault_kind else ""
        parts = [
            f"{self.runs} runs",
            f"{self.faults} faults injected{kind}",
            f"{self.completed} requests completed",
            f"{self.failed_cleanly} failed cleanly",
        ]
        if self.not_filed:
            parts.append(f"{self.not_filed} not filed (user told to run the command again)")
        parts += [f"{self.values_lost} values lost", f"{self.twins} twins"]
        return f"{name}: " + ", ".join(parts)


TOTALS: dict[str, Totals] = {
    "crash matrix": Totals(fault_kind="SIGKILL"),
    "fault matrix": Totals(),
}


@pytest.fixture(scope="session")
def totals() -> dict[str, Totals]:
    return TOTALS


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ran = [(name, t) for name, t in TOTALS.items() if t.runs]
    if not ran:
        return
    terminalreporter.section("crash and fault matrices")
    for name, matrix in ran:
        terminalreporter.write_line(matrix.line(name))


# --- what the fakes hold at the end of a cell -----------------------------------------------
@dataclass
class CloudState:
    """The apps named for one cell, their passwords and their vault versions."""

    apps: list[dict[str, Any]]
    passwords: list[dict[str, Any]] = field(default_factory=list)  # of the first app
    versions: list[dict[str, Any]] = field(default_factory=list)  # of the first app's vault secret
    values_lost: int = 0  # passwords (on any of the apps) whose value no vault version holds
    twins: int = 0  # apps beyond the first for the one request

    @property
    def app(self) -> dict[str, Any]:
        assert len(self.apps) == 1, f"{len(self.apps)} apps for one request"
        return self.apps[0]

    @property
    def values(self) -> list[str]:
        return [str(v["value"]) for v in self.versions]


def holds_value(cloud: FakeCloud, app: dict[str, Any], password: dict[str, Any], versions: list[Any]) -> bool:
    """Is there a vault version tagged with this password's Secret ID whose value signs in?"""
    return any(
        v.get("tags", {}).get("secret-id") == password["keyId"]
        and str(v["value"]).startswith(str(password["hint"]))
        and cloud.graph.check_secret(app["appId"], str(v["value"]))
        for v in versions
    )


def cloud_state(cloud: FakeCloud, display_name: str) -> CloudState:
    apps = [a for a in cloud.graph.apps() if a["displayName"] == display_name]
    state = CloudState(apps=apps, twins=max(0, len(apps) - 1))
    for index, app in enumerate(apps):
        passwords = cloud.graph.passwords(app["id"])
        versions = cloud.vault.versions(secret_name_for(app["appId"]))
        state.values_lost += sum(1 for p in passwords if not holds_value(cloud, app, p, versions))
        if index == 0:
            state.passwords, state.versions = passwords, versions
    return state


def record(
    totals: Totals, state: CloudState | None, *, status: str | None, faults: int, clean: bool = True
) -> None:
    """Add one cell to its matrix's totals (before the cell asserts, so failures count too)."""
    totals.runs += 1
    totals.faults += faults
    if status == Status.COMPLETED:
        totals.completed += 1
    elif status == Status.FAILED and clean:
        totals.failed_cleanly += 1
    elif status is None and clean:
        totals.not_filed += 1
    if state is not None:
        totals.values_lost += state.values_lost
        totals.twins += state.twins


def database_bytes(database: Path) -> list[tuple[Path, bytes]]:
    """The SQLite file and its -wal / -shm companions."""
    return [(p, p.read_bytes()) for p in sorted(database.parent.glob(database.name + "*")) if p.is_file()]


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _owner_client(cloud: FakeCloud) -> None:
    """A second bot identity with owner rights, for the owners cells (and Directory.Read.All,
    for the extra readers' cells)."""
    cloud.entra.register_client(OWNER_CLIENT_ID, OWNER_CLIENT_SECRET, [*OWNER_ROLES, "Directory.Read.All"])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "oauth-bot.db"


@pytest.fixture
def database_url(database: Path) -> str:
    return f"sqlite:///{database}"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A reader of the bot's database (the same file the bot process writes)."""
    reader = Store.from_url(database_url)
    yield reader
    reader.engine.dispose()


# --- the bot as a real process ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """`oauth-bot serve` (through tests/crash/halting.py, which injects the fault hook) on a
    loopback port, its output captured in a file, and every log record it makes also written
    raw, before the redacting filter, to another (tests/rawlog.py)."""

    def __init__(self, env: dict[str, str], workdir: Path, label: str) -> None:
        self.port = free_port()
        python_path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self.env = {**env, "PORT": str(self.port), "PYTHONPATH": python_path}
        self.workdir = workdir
        self.log_path = workdir / f"{label}.log"
        self.raw_log_path = workdir / f"{label}.raw.log"
        self.label = label
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _popen(self, *target: str) -> subprocess.Popen[bytes]:
        self._log = self.log_path.open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "tests.rawlog", str(self.raw_log_path), *target],
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> BotProcess:
        self.process = self._popen("tests.crash.halting")  # `oauth-bot serve` + the tests' fault hook
        wait_until(lambda: self._healthy() or not self.alive(), timeout=60, what=f"{self.label} /healthz")
        assert self.alive(), f"{self.label} exited:\n{self.output()}"
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, threads stop wherever they are."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._close_log()

    def stop(self) -> int:
        """SIGTERM and wait for the clean exit; the exit code."""
        assert self.process is not None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
        return int(self.process.returncode)

    def run(self, *target: str, timeout: float = 60) -> int:
        """Run another module or script the same way, to its end; its exit code."""
        self.process = self._popen(*target)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._close_log()

    def output(self) -> str:
        """What the process wrote to stdout and stderr (its log lines as the filter left them)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def raw_output(self) -> str:
        """Its output and every log record it made, as logged: what canary searches read."""
        raw = self.raw_log_path.read_text(errors="replace") if self.raw_log_path.exists() else ""
        return self.output() + raw

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def bot_processes(tmp_path: Path) -> Iterator[Callable[..., BotProcess]]:
    """Start bot processes for a cell; any still running at the end is SIGKILLed by its pid."""
    started: list[BotProcess] = []

    def start(env: dict[str, str], label: str) -> BotProcess:
        process = BotProcess(env, tmp_path, label)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        if process.alive():
            process.kill()
