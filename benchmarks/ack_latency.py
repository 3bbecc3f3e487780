"""Ack latency of `/oauth-app new`: oauth-bot as a real process next to the best bare Bolt apps.

    .venv/bin/python benchmarks/ack_latency.py [--commands 500] [--warmup 30] [--inflight 10,50]
        [--rounds 1] [--targets bot,bare-async,bare-sync] [--candidate NAME=COMMAND]

Targets, each its own process on 127.0.0.1, all started first and then loaded one at a time
(an idle server costs nothing, and interleaving spreads a noisy minute over all of them):
  bot         `oauth-bot serve` in HTTP mode, configured by FakeCloud.environment() + the fakes' CA
  bare-async  benchmarks/bare_app.py --mode async (AsyncApp on Bolt's aiohttp server)
  bare-sync   benchmarks/bare_app.py --mode sync (App on Bolt's built-in http.server server)

For every target: ~30 warm-up commands, then `--commands` signed slash commands at each in-flight
limit. Each command carries a fresh trigger_id (FakeSlack.issue_trigger) and response_url, and is
signed like Slack signs (v0 HMAC-SHA256 of the body with the signing secret). A command counts as
dropped when the answer is not 200, the connection fails, or there is no answer within Slack's
3 s ack deadline. CPU per command is utime+stime of the server process (/proc/<pid>/stat, all its
threads) over the phase, including its views.open calls, divided by the commands sent. The fake
Slack runs in this process, so its CPU is not counted in the servers'; the load generator runs in
a process of its own. Before each phase the script waits for the machine to be quiet, and prints
how busy other processes kept it. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import math
import multiprocessing
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlencode

import httpx
from machine import cpu_seconds, machine_busy_seconds, own_cpu_seconds, wait_for_quiet

from fakes.cloud import DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.slack import GENERAL_CHANNEL, FakeSlack
from fakes.slack_driver import USER_AGENT, VERIFICATION_TOKEN

HERE = Path(__file__).resolve().parent
ACK_DEADLINE = 3.0  # Slack shows an error to the person when the ack takes longer
VIEWS_OPEN_PATH = r"^/api/views\.open$"
FORM = "application/x-www-form-urlencoded"
Prepared = tuple[bytes, dict[str, str]]  # a signed command: body, headers
Outcome = tuple[float | None, str]  # (seconds to a 200 answer or None), "ok" or why it was dropped


def sign(body: bytes, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """X-Slack-Request-Timestamp and X-Slack-Signature, exactly as SlackDriver.sign makes them."""
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def command_body(slack: FakeSlack, user_id: str, text: str) -> tuple[bytes, str]:
    """The form Slack posts for `/oauth-app <text>` (as SlackDriver.command builds it)."""
    user = slack.user(user_id) or {"name": user_id}
    trigger = slack.issue_trigger(user_id)
    form = {
        "token": VERIFICATION_TOKEN,
        "team_id": slack.team_id,
        "team_domain": slack.team_domain,
        "channel_id": GENERAL_CHANNEL,
        "channel_name": "general",
        "user_id": user_id,
        "user_name": user["name"],
        "command": "/oauth-app",
        "text": text,
        "api_app_id": "A0FAKEAPP",
        "is_enterprise_install": "false",
        "response_url": slack.issue_response_url(user_id, channel_id=GENERAL_CHANNEL),
        "trigger_id": trigger,
    }
    return urlencode(form).encode(), trigger


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Phase:
    target: str
    inflight: int
    n: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, answered 200
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    wall: float = 0.0
    cpu: float = 0.0  # server process seconds
    harness_cpu: float = 0.0  # load generator + fakes, seconds
    generator_cpu: float = 0.0  # the load generator's process, when it has its own
    background_cpu: float = 0.0  # every other process on the machine, seconds
    measured_wall: float = 0.0  # the window the CPU figures cover (load + its views.open)
    triggers: set[str] = field(default_factory=set)
    views_ok: int = 0
    views_errors: dict[str, int] = field(default_factory=dict)

    def record(self, outcomes: list[Outcome], commands: int) -> None:
        self.n = commands
        for latency, outcome in outcomes:
            if latency is not None:
                self.latencies.append(latency)
            else:
                self.dropped[outcome] = self.dropped.get(outcome, 0) + 1
        lost = commands - len(outcomes)
        if lost:
            self.dropped["not sent"] = self.dropped.get("not sent", 0) + lost

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    @property
    def throughput(self) -> float:
        return self.n / self.wall if self.wall else math.nan

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / self.n if self.n else math.nan

    @property
    def background_cores(self) -> float:
        """How many cores the rest of the machine kept busy meanwhile (0 on a quiet machine)."""
        return max(0.0, self.background_cpu / self.measured_wall) if self.measured_wall else math.nan

    @property
    def harness_cpu_ms(self) -> float:
        return self.harness_cpu * 1000 / self.n if self.n else math.nan

    @property
    def generator_cpu_ms(self) -> float:
        return self.generator_cpu * 1000 / self.n if self.n else math.nan


@dataclass
class Target:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    health_path: str  # GET this until it answers (200 for the bot's /healthz)
    need_200: bool
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path, timeout: float = 60.0) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(self.url + self.health_path, timeout=1.0).status_code
                if status == 200 or not self.need_200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()  # only the process this script started
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# --- the load generator -------------------------------------------------------------------------


def prepare(slack: FakeSlack, count: int, tag: str, first: int) -> tuple[list[Prepared], list[str]]:
    """`count` signed `/oauth-app new` commands, each with a fresh trigger_id and response_url."""
    prepared, triggers = [], []
    for i in range(first, first + count):
        body, trigger = command_body(slack, DEVELOPER, f"new bench-{tag}-{i}")
        headers = {"Content-Type": FORM, "User-Agent": USER_AGENT, **sign(body)}
        prepared.append((body, headers))
        triggers.append(trigger)
    return prepared, triggers


async def _post(client: httpx.AsyncClient, url: str, command: Prepared) -> Outcome:
    body, headers = command
    started = time.perf_counter()
    try:
        async with asyncio.timeout(ACK_DEADLINE):
            response = await client.post(url, content=body, headers=headers)
    except TimeoutError:
        return None, "timeout"
    except httpx.HTTPError as error:
        return None, type(error).__name__
    elapsed = time.perf_counter() - started
    return (elapsed, "ok") if response.status_code == 200 else (None, f"HTTP {response.status_code}")


async def _drive(
    url: str,
    inflight: int,
    commands: int,
    next_command: Callable[[], Awaitable[Prepared]],
    ready: Callable[[], Awaitable[None]],
) -> tuple[list[Outcome], float]:
    """Send `commands` commands with at most `inflight` unanswered at any time; `ready` is
    awaited once the clients exist, right before the first command.

    Each of the `inflight` workers has its own keep-alive connection (one httpx.AsyncClient
    each): one shared client with a pool of 50 costs ~3x the CPU per request, which on 2 cores
    makes the load generator, not the server, the bottleneck at 50 in flight."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # unused (plain HTTP), but httpx builds one per client
    outcomes: list[Outcome] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, timeout=ACK_DEADLINE + 1, verify=tls)
            )
            for _ in range(inflight)
        ]
        await ready()
        semaphore = asyncio.Semaphore(inflight)
        counter = iter(range(commands))  # shared: every command is sent exactly once

        async def worker(client: httpx.AsyncClient) -> None:
            for _ in counter:
                command = await next_command()  # its trigger_id is issued just before it is sent
                async with semaphore:
                    outcomes.append(await _post(client, f"{url}/slack/events", command))

        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        wall = time.perf_counter() - started
    return outcomes, wall


def generator_process(conn: Connection, url: str, inflight: int, commands: int) -> None:
    """The load generator in its own process: it asks this script for signed commands in small
    batches (so trigger_ids are fresh) and sends back the outcomes."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Prepared] = asyncio.Queue()
        taken = asyncio.Event()
        batch = max(1, inflight // 5)

        async def feed() -> None:
            requested = 0
            while requested < commands:
                while queue.qsize() >= batch:
                    taken.clear()
                    await taken.wait()
                count = min(batch, commands - requested)
                conn.send(("need", count))
                for command in await loop.run_in_executor(None, conn.recv):
                    queue.put_nowait(command)
                requested += count

        async def take() -> Prepared:
            command = await queue.get()
            taken.set()
            return command

        feeders: list[asyncio.Task[None]] = []

        async def ready() -> None:
            conn.send(("ready",))
            await loop.run_in_executor(None, conn.recv)  # "go"
            feeders.append(asyncio.create_task(feed()))

        outcomes, wall = await _drive(url, inflight, commands, take, ready)
        await feeders[0]
        conn.send(("done", outcomes, wall))

    asyncio.run(run())


def _load_in_process(url: str, slack: FakeSlack, phase: Phase, commands: int, go: Callable[[], None]) -> None:
    """The load generator on this process's event loop, next to the fake Slack's threads."""
    issued = iter(range(commands))

    async def next_command() -> Prepared:
        prepared, triggers = prepare(slack, 1, str(phase.inflight), next(issued))
        phase.triggers.update(triggers)
        return prepared[0]

    async def ready() -> None:
        go()

    outcomes, phase.wall = asyncio.run(_drive(url, phase.inflight, commands, next_command, ready))
    phase.record(outcomes, commands)


def _load_in_subprocess(
    url: str, slack: FakeSlack, phase: Phase, commands: int, go: Callable[[], None]
) -> None:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=generator_process, args=(child, url, phase.inflight, commands), daemon=True
    )
    process.start()
    try:
        if not parent.poll(60) or parent.recv()[0] != "ready":
            raise RuntimeError("the load generator did not start")
        assert process.pid is not None
        go()
        generator_before = cpu_seconds(process.pid)
        parent.send(("go",))
        issued = 0
        deadline = time.monotonic() + 120 + commands * ACK_DEADLINE
        while time.monotonic() < deadline:
            if not parent.poll(1.0):
                continue
            message = parent.recv()
            if message[0] == "need":
                prepared, triggers = prepare(slack, message[1], str(phase.inflight), issued)
                issued += message[1]
                phase.triggers.update(triggers)
                parent.send(prepared)
            elif message[0] == "done":
                phase.generator_cpu = cpu_seconds(process.pid) - generator_before
                _, outcomes, phase.wall = message
                phase.record(outcomes, commands)
                return
        raise RuntimeError("the load generator did not finish in time")
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()  # only the process this script started
            process.join(timeout=10)


def _wait_for_views(slack: FakeSlack, expected: int, timeout: float = 30.0) -> None:
    """Until the server made `expected` views.open calls (its work after the acks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(slack.calls_to("POST", VIEWS_OPEN_PATH)) >= expected:
            return
        time.sleep(0.05)


def run_phase(
    target: Target,
    slack: FakeSlack,
    inflight: int,
    commands: int,
    *,
    in_process: bool = False,
    label: str | None = None,
) -> Phase:
    assert target.process is not None
    pid = target.process.pid
    phase = Phase(label or target.name, inflight)
    slack.reset()  # the fake Slack starts each phase empty, so its costs do not grow run by run
    before: dict[str, float] = {}

    def go() -> None:  # the CPU window opens right before the first command
        before.update(wall=time.monotonic(), cpu=cpu_seconds(pid), own=own_cpu_seconds())
        before["busy"] = machine_busy_seconds()

    load = _load_in_process if in_process else _load_in_subprocess
    load(target.url, slack, phase, commands, go)
    # Every answered command leads to one views.open (retries may add more): wait for them.
    _wait_for_views(slack, phase.ok)
    time.sleep(0.2)  # the last views.open answers reach the server and are parsed
    phase.cpu = cpu_seconds(pid) - before["cpu"]
    phase.harness_cpu = own_cpu_seconds() - before["own"] + phase.generator_cpu
    phase.background_cpu = machine_busy_seconds() - before["busy"] - phase.cpu - phase.harness_cpu
    phase.measured_wall = time.monotonic() - before["wall"]
    ok_triggers = set()
    for call in slack.api_calls("views.open"):
        trigger = (call.get("args") or {}).get("trigger_id")
        if trigger not in phase.triggers:
            continue
        if call["ok"]:
            ok_triggers.add(trigger)
        else:
            phase.views_errors[call["error"]] = phase.views_errors.get(call["error"], 0) + 1
    phase.views_ok = len(ok_triggers)
    return phase


def make_targets(
    cloud: FakeCloud, work: Path, names: list[str], candidates: dict[str, list[str]]
) -> list[Target]:
    python = sys.executable
    targets = []
    for name in names:
        port = free_port()
        env = {**os.environ, **cloud.environment(f"sqlite:///{work / name}.db", port=port)}
        env["PYTHONUNBUFFERED"] = "1"
        if name in candidates:  # another build of the bot, configured like it
            targets.append(Target(name, candidates[name], env, work, port, "/healthz", need_200=True))
        elif name == "bot":
            entry = Path(python).parent / "oauth-bot"
            argv = [str(entry), "serve"] if entry.exists() else [python, "-m", "bot.cli", "serve"]
            targets.append(Target(name, argv, env, work, port, "/healthz", need_200=True))
        else:
            mode = name.removeprefix("bare-")
            argv = [python, str(HERE / "bare_app.py"), "--mode", mode, "--port", str(port)]
            targets.append(Target(name, argv, env, work, port, "/slack/events", need_200=False))
    return targets


def fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def merge(phases: list[Phase]) -> Phase:
    """One (target, in-flight) cell over several rounds: latencies pooled, counts and CPU summed."""
    first = phases[0]
    merged = Phase(first.target, first.inflight)
    for ph in phases:
        merged.n += ph.n
        merged.latencies += ph.latencies
        for reason, count in ph.dropped.items():
            merged.dropped[reason] = merged.dropped.get(reason, 0) + count
        for error, count in ph.views_errors.items():
            merged.views_errors[error] = merged.views_errors.get(error, 0) + count
        merged.wall += ph.wall
        merged.cpu += ph.cpu
        merged.harness_cpu += ph.harness_cpu
        merged.generator_cpu += ph.generator_cpu
        merged.background_cpu += ph.background_cpu
        merged.measured_wall += ph.measured_wall
        merged.views_ok += ph.views_ok
    return merged


def cells(phases: list[Phase]) -> list[tuple[Phase, list[Phase]]]:
    """(merged cell, its rounds) by in-flight limit, then target, in the order first run."""
    keys = list(dict.fromkeys((ph.inflight, ph.target) for ph in phases))
    keys.sort(key=lambda key: key[0])
    out = []
    for inflight, target in keys:
        rounds = [ph for ph in phases if (ph.inflight, ph.target) == (inflight, target)]
        out.append((merge(rounds), rounds))
    return out


def print_table(table: list[tuple[Phase, list[Phase]]]) -> None:
    header = (
        f"{'target':<11} {'in-flight':>9} {'n':>5} {'ok':>5} {'dropped':>7} {'p50':>7} {'p95':>7} "
        f"{'p99':>7} {'max':>7} {'thru/s':>7} {'cpu ms/cmd':>10} {'views ok':>8} {'fake+gen':>9} "
        f"{'bg cores':>8}"
    )
    print(header)
    print("-" * len(header))
    for ph, _rounds in table:
        print(
            f"{ph.target:<11} {ph.inflight:>9} {ph.n:>5} {ph.ok:>5} {ph.n_dropped:>7} {fmt(ph.p(50)):>7} "
            f"{fmt(ph.p(95)):>7} {fmt(ph.p(99)):>7} {fmt(ph.p(100)):>7} {fmt(ph.throughput, 0):>7} "
            f"{fmt(ph.cpu_ms, 2):>10} {ph.views_ok:>8} "
            f"{fmt(ph.harness_cpu_ms - ph.generator_cpu_ms, 1) + '+' + fmt(ph.generator_cpu_ms, 1):>9} "
            f"{fmt(ph.background_cores, 2):>8}"
        )
    print(
        "latencies: ms from sending a command to its HTTP answer (percentiles of the 200s);\n"
        "thru/s: commands per second of load; cpu ms/cmd: server process utime+stime per command,\n"
        "its views.open included; views ok: commands whose views.open succeeded at the fake Slack;\n"
        "fake+gen: CPU ms per command of the fakes (this process) + of the load generator process;\n"
        "bg cores: other processes' load meanwhile (0 = quiet)"
    )
    for ph, rounds in table:
        if len(rounds) > 1:
            per_round = ", ".join(f"{fmt(r.p(99))}" for r in rounds)
            cpu = ", ".join(f"{fmt(r.cpu_ms, 2)}" for r in rounds)
            print(f"  {ph.target}@{ph.inflight} per round: p99 {per_round} ms; cpu {cpu} ms/cmd")
        if ph.dropped:
            print(f"  {ph.target}@{ph.inflight} dropped: {ph.dropped}")
        if ph.views_errors:
            print(f"  {ph.target}@{ph.inflight} views.open errors: {ph.views_errors}")


def verdicts(table: list[tuple[Phase, list[Phase]]]) -> bool:
    merged = [ph for ph, _ in table]
    by = {(ph.target, ph.inflight): ph for ph in merged}
    checks: list[tuple[str, bool, str]] = []
    bot10, bot50 = by.get(("bot", 10)), by.get(("bot", 50))
    bare50 = [ph for ph in merged if ph.target.startswith("bare") and ph.inflight == 50]
    # A baseline that refuses work is not a baseline: compare with the bare apps that dropped nothing.
    baselines = [ph for ph in bare50 if ph.n_dropped == 0] or bare50
    if bot10:
        checks.append(("bot p99 at 10 in flight <= 50 ms", bot10.p(99) <= 50, f"{fmt(bot10.p(99))} ms"))
    if bot50:
        checks.append(
            ("bot at 50 in flight drops nothing", bot50.n_dropped == 0, f"{bot50.n_dropped} dropped")
        )
    if bot50 and baselines:
        best = min(baselines, key=lambda ph: ph.p(99))
        checks.append(
            (
                "bot p99 at 50 <= best bare p99 at 50",
                bot50.p(99) <= best.p(99),
                f"{fmt(bot50.p(99))} ms vs {best.target} {fmt(best.p(99))} ms",
            )
        )
        cheapest = min(baselines, key=lambda ph: ph.cpu_ms)
        checks.append(
            (
                "bot CPU/command at 50 <= 1.2 x best bare's",
                bot50.cpu_ms <= 1.2 * cheapest.cpu_ms,
                f"{fmt(bot50.cpu_ms, 2)} ms vs 1.2 x {cheapest.target} {fmt(cheapest.cpu_ms, 2)} ms "
                f"= {fmt(1.2 * cheapest.cpu_ms, 2)} ms (ratio {bot50.cpu_ms / cheapest.cpu_ms:.2f})",
            )
        )
    for ph in merged:
        if ph.target == "bot":
            checks.append(
                (
                    f"every views.open of bot@{ph.inflight} succeeded",
                    ph.views_ok == ph.n,
                    f"{ph.views_ok}/{ph.n}",
                )
            )
    busy = [ph for ph in merged if ph.background_cores > 0.25]
    print()
    print("Verdicts:")
    for text, passed, detail in checks:
        print(f"  [{'PASS' if passed else 'FAIL'}] {text}: {detail}")
    if busy:
        names = ", ".join(f"{ph.target}@{ph.inflight} ({fmt(ph.background_cores, 2)})" for ph in busy)
        print(f"  NOTE: other processes kept > 0.25 core busy during {names}: latencies are not clean")
    return all(passed for _, passed, _ in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--commands", type=int, default=500, help="commands per in-flight limit and round")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up commands per target")
    parser.add_argument("--inflight", default="10,50", help="comma-separated in-flight limits")
    parser.add_argument("--targets", default="bot,bare-async,bare-sync")
    parser.add_argument(
        "--generator",
        choices=["process", "inprocess"],
        default="process",
        help="load generator in its own process (default) or on this process's event loop, "
        "next to the fake Slack's threads",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300.0,
        help="before each phase wait up to this many seconds for other processes to leave the CPUs "
        "idle (< 0.2 core busy); 0: do not wait",
    )
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="also measure another build of the bot (e.g. with a proposed fix), started with COMMAND "
        "and the bot's environment; it must serve /healthz like `oauth-bot serve`",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat every phase, targets interleaved (figures pooled)"
    )
    args = parser.parse_args()
    inflights = [int(x) for x in args.inflight.split(",")]
    names = [x.strip() for x in args.targets.split(",") if x.strip()]
    candidates = {
        name.strip(): shlex.split(command) for name, _, command in (c.partition("=") for c in args.candidate)
    }
    names += [name for name in candidates if name not in names]
    in_process = args.generator == "inprocess"
    print(
        f"ack_latency: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, {args.commands} commands per phase x {args.rounds} round(s), "
        f"warm-up {args.warmup}, load generator: {args.generator}"
    )
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="oauth-bot-bench-") as tmp, FakeCloud(Path(tmp)) as cloud:
        work = Path(tmp)
        targets = make_targets(cloud, work, names, candidates)
        try:
            # All servers up at once (idle ones cost nothing); phases interleave the targets so
            # a noisy minute on the machine does not land on one target only.
            for target in targets:
                target.start(work)
                print(f"  {target.name}: pid {target.process.pid if target.process else '?'} {target.url}")
            for target in targets:
                warm = run_phase(
                    target, cloud.slack, min(inflights), args.warmup, in_process=in_process, label="warm-up"
                )
                if warm.ok == 0:
                    raise RuntimeError(f"{target.name} answered no warm-up command:\n{target.log_tail()}")
            for round_number in range(args.rounds):
                order = targets[round_number % len(targets) :] + targets[: round_number % len(targets)]
                for inflight in inflights:
                    for target in order:
                        if args.quiet_wait > 0:
                            wait_for_quiet(args.quiet_wait)
                        phases.append(
                            run_phase(target, cloud.slack, inflight, args.commands, in_process=in_process)
                        )
        finally:
            for target in targets:
                target.stop()
        for target in targets:
            log = target.log_path.read_text(errors="replace") if target.log_path else ""
            errors = [line for line in log.splitlines() if line.startswith("slack_sdk.errors.")]
            if "Traceback" in log:
                example = errors[0][:150] if errors else log.split("Traceback", 1)[1].splitlines()[-1]
                print(f"  {target.name}: {log.count('Traceback')} traceback(s) in its log, e.g. {example}")
    print()
    table = cells(phases)
    print_table(table)
    verdicts(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
