"""The critical path from an admin's Approve click to the requester's DM, with slow remote services.

    .venv/bin/python benchmarks/critical_path.py [--requests 5] [--latency 0.2] [--grant both]
        [--readers 0] [--verbose]

FakeCloud and the bot (BackgroundBot, the same pieces `oauth-bot serve` runs) in this process, as
the end-to-end tests run them. Every answer of Graph, Key Vault, Slack (and Entra's token endpoint,
unless --no-entra-latency) is delayed by `--latency` seconds, so one remote round trip costs about
that much. For each of `--requests` new-app requests (one after the other: /oauth-app new → modal →
submit → approval card), the admin clicks Approve and we measure, from the click to the DM's
chat.postMessage arriving at the fake Slack:

  wall          the time between the two
  chain         the longest chain of strictly sequential remote calls that ends with the DM: every
                call the fakes recorded in the window is an interval [arrival, arrival + latency];
                a call can follow another only if it arrived after the other's answer was sent
  wall/latency  the same count estimated from the wall time (+1 for the DM itself)

Target: at most 5 sequential calls (the floor is 4: create app → addPassword → vault → DM, with the
tokens cached and the service principal overlapped). The token endpoint calls per scope over the
whole run are reported too (target: one per resource per token lifetime).

`--grant` measures the path without the requester's read access (KEY_VAULT_RESOURCE_ID unset),
with it (Resource Manager slowed like the others: the role assignment's PUT before the DM), or
both, one after the other with fresh fakes and bot; the bot holds Application.ReadWrite.OwnedBy,
User.Read.All (which the grant needs: the requester is matched by email) and Directory.Read.All
in both, so the only difference is the grant. `--readers N` names N managed identities as extra
readers of every request (with the grant on): their PUTs run beside the requester's. Target:
the grant adds at most one sequential call.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from machine import Background, wait_for_quiet

from bot.core.model import Status
from fakes.base import Request as Call
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, LEAST_PRIVILEGE, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack import parse_body
from fakes.slack_driver import SlackDriver

JUSTIFICATION = "The billing service reads invoices through Graph."
DM_PATH = r"^/api/chat\.postMessage$"


# --- the steps a person takes (copied from tests/e2e/flows.py and conftest.py) -------------------
def wait_until(predicate: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def request_new_app(slack: SlackDriver, user: str, name: str, **fields: str) -> dict[str, Any]:
    """/oauth-app new → modal → submit; returns the approval card posted for it."""
    before = len(slack.slack.messages(APPROVAL_CHANNEL))
    response = slack.command(user, "/oauth-app", f"new {name}")
    assert response.status_code == 200, response.text
    modal = wait_until(lambda: slack.slack.current_modal(user), what=f"a modal for {user}")
    submitted = slack.submit(user, modal, {"Justification": JUSTIFICATION, **fields})
    assert submitted.status_code == 200, submitted.text
    return wait_until(
        lambda: (
            len(slack.slack.messages(APPROVAL_CHANNEL)) > before
            and slack.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the approval card",
    )


def request_id_of(card: dict[str, Any]) -> int:
    for block in card["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "request_approve":
                return int(element["value"])
    raise AssertionError("the card has no Approve button")


# --- measuring ------------------------------------------------------------------------------------
@dataclass
class Link:
    """One remote call the bot made: which fake, what, when it arrived and when it was answered."""

    service: str
    method: str
    path: str
    start: float
    end: float

    def describe(self, origin: float) -> str:
        return (
            f"{(self.start - origin) * 1000:7.0f} → {(self.end - origin) * 1000:7.0f} ms  "
            f"{self.service:<6} {self.method} {self.path}"
        )


@dataclass
class Run:
    request_id: int
    status: str
    clicked: float  # monotonic time the click left the driver
    wall: float  # click → DM arrival at the fake Slack
    chain: list[Link]  # longest chain of strictly sequential calls ending with the DM
    path: list[Link]  # the same without the card and App Home refreshes (off the path by design)
    secret: list[Link]  # the same without the side steps either: the secret's own chain
    calls: list[Link]  # every call in the window
    token_calls: int  # token endpoint calls in the window


def longest_chain(calls: list[Link], last: Link, slack_s: float = 0.001) -> list[Link]:
    """The longest chain of non-overlapping calls (each arrives after the previous one's answer)
    that ends with `last`. Among equally long chains, each call's predecessor is the one answered
    last before it: the answer that most likely triggered it."""
    ordered = sorted((c for c in calls if c.start <= last.start and c is not last), key=lambda c: c.start)
    ordered.append(last)
    best: list[list[Link]] = []  # the chosen chain ending at ordered[i]
    for i, call in enumerate(ordered):
        options = [j for j in range(i) if ordered[j].end <= call.start + slack_s]
        j = max(options, key=lambda j: (len(best[j]), ordered[j].end), default=None)
        best.append([call] if j is None else [*best[j], call])
    return best[-1]


def is_refresh(link: Link) -> bool:
    """The approval card's chat.update and the App Homes' views.publish: nothing waits for them."""
    return link.service == "slack" and link.path in ("/api/chat.update", "/api/views.publish")


def is_side_step(link: Link) -> bool:
    """The service principal and the requester's Entra ownership (users.info → GET /users →
    owners/$ref): steps that run beside the secret's chain (the DM waits for them too)."""
    if link.service == "slack":
        return link.path == "/api/users.info"
    return link.service == "graph" and any(
        part in link.path for part in ("/servicePrincipals", "/users", "/owners")
    )


def local_time(run: Run) -> float:
    """Time on the path that is not a remote call: the bot's own work between the answers."""
    waited = sum(link.end - link.start for link in run.path[:-1])  # the DM's answer comes later
    return run.wall - waited


def links(cloud: FakeCloud, latency: dict[str, float], since: float, until: float) -> list[Link]:
    found = []
    for server in cloud.servers:
        with server.lock:
            calls: list[Call] = list(server.calls)
        for call in calls:
            if since <= call.at <= until:
                delay = latency.get(server.name, 0.0)
                found.append(Link(server.name, call.method, call.path, call.at, call.at + delay))
    return sorted(found, key=lambda link: link.start)


def dm_to(cloud: FakeCloud, user: str, since: float, mentioning: str) -> Call | None:
    """The first chat.postMessage to `user` (a DM) mentioning `mentioning` that arrived after `since`."""
    for call in cloud.slack.calls_to("POST", DM_PATH):
        if call.at < since or mentioning not in call.body.decode("utf-8", "replace"):
            continue
        if parse_body(call).get("channel") in (user, cloud.slack.dm_channel(user)):
            return call
    return None


def settle(cloud: FakeCloud, quiet: float, timeout: float = 60.0) -> None:
    """Until no fake has received a call for `quiet` seconds (the bot finished what it was doing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = max((server.calls[-1].at for server in cloud.servers if server.calls), default=0.0)
        if time.monotonic() - last >= quiet:
            return
        time.sleep(0.02)


def one_run(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    clicks: list[float],
    latency: dict[str, float],
    i: int,
    readers: str = "",
) -> Run:
    assert bot.services is not None
    fields = {"Extra readers": readers} if readers else {}
    card = request_new_app(slack, DEVELOPER, f"bench-critical-{i}", **fields)
    request_id = request_id_of(card)
    slowest = max(latency.values(), default=0.0)
    settle(cloud, quiet=2 * slowest + 0.2)  # "request sent" DM, App Homes: before the click
    clicks.clear()
    response = slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert response.status_code == 200, response.text
    clicked = clicks[0]  # when the click's HTTP request left the driver
    store = bot.services.store
    request = wait_until(
        lambda: (r := store.get_request(request_id)).status in (Status.COMPLETED, Status.FAILED) and r,
        what=f"request #{request_id} to finish",
    )
    mention = request.client_id or f"#{request_id}"
    dm = wait_until(lambda: dm_to(cloud, DEVELOPER, clicked, mention), what=f"the DM of #{request_id}")
    settle(cloud, quiet=2 * slowest + 0.2)  # the card update and App Homes, before the next request
    window = links(cloud, latency, clicked, dm.at)
    last = next(link for link in window if link.service == "slack" and link.start == dm.at)
    return Run(
        request_id=request_id,
        status=str(request.status),
        clicked=clicked,
        wall=dm.at - clicked,
        chain=longest_chain(window, last),
        path=longest_chain([link for link in window if not is_refresh(link)], last),
        secret=longest_chain(
            [link for link in window if not is_refresh(link) and not is_side_step(link)], last
        ),
        calls=window,
        token_calls=sum(1 for link in window if link.service == "entra" and link.path.endswith("/token")),
    )


@dataclass
class Measured:
    label: str
    runs: list[Run]
    background: list[float]
    scopes: dict[str, list[float]]
    started: float
    lifetime: int


def measure(args: argparse.Namespace, *, grant: bool, readers: int) -> Measured:
    """N approvals with fresh fakes and a fresh bot; the grant on or off."""
    runs: list[Run] = []
    # The requester is matched by email in both modes (User.Read.All, which the grant needs);
    # without Application.ReadWrite.All they are not made an Entra owner (no side step).
    roles = [*LEAST_PRIVILEGE, "User.Read.All", "Directory.Read.All"]
    with (
        tempfile.TemporaryDirectory(prefix="oauth-bot-critical-") as tmp,
        FakeCloud(Path(tmp), roles=roles) as cloud,
    ):
        cloud.trust()  # the bot's clients trust the fakes' CA through SSL_CERT_FILE
        overrides: dict[str, Any] = {} if grant else {"key_vault_resource_id": None}
        settings = cloud.settings(
            f"sqlite:///{tmp}/critical.db",
            oauth_bot_max_requests_per_hour=max(10, 2 * args.requests),
            oauth_bot_retry_budget_seconds=20.0,
            **overrides,
        )
        reader_ids = []
        for k in range(readers if grant else 0):
            client_id = f"0b0e0000-0000-4000-8000-{k:012d}"
            cloud.entra.register_client(client_id, f"bench-reader-{k}", [])
            reader_ids.append(cloud.graph.add_managed_identity(client_id, f"bench-reader-{k}"))
        clicks: list[float] = []
        stamp = {"request": [lambda _request: clicks.append(time.monotonic())]}
        client = httpx.Client(timeout=30.0, event_hooks=stamp)
        with BackgroundBot(settings) as bot, client:
            slack = SlackDriver(
                app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack, client=client
            )
            started = time.monotonic()  # token requests from here on: the bot's warm-up is done
            slow = [cloud.graph, cloud.vault, cloud.slack, cloud.arm]
            if not args.no_entra_latency:
                slow.append(cloud.entra)
            latency = {server.name: args.latency for server in slow}
            for server in slow:
                server.latency(args.latency)
            background: list[float] = []
            for i in range(args.requests):
                if args.quiet_wait > 0:
                    wait_for_quiet(args.quiet_wait)
                with Background() as other:
                    runs.append(one_run(cloud, bot, slack, clicks, latency, i, "\n".join(reader_ids)))
                background.append(other.cores)
            scopes: dict[str, list[float]] = {}
            for call in cloud.entra.token_requests():
                scopes.setdefault(call.form().get("scope", "?"), []).append(call.at)
            lifetime = cloud.entra.token_lifetime
    label = "with the grant" + (f" and {readers} extra reader(s)" if readers else "") if grant else "without"
    return Measured(label, runs, background, scopes, started, lifetime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=5, help="approvals to measure (N)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds added to every remote answer")
    parser.add_argument(
        "--no-entra-latency",
        action="store_true",
        help="answer token requests at once (Graph, Key Vault and Slack stay slow)",
    )
    parser.add_argument(
        "--grant",
        choices=("off", "on", "both"),
        default="both",
        help="the requester's read access (a role assignment before the DM): without, with, or both",
    )
    parser.add_argument("--readers", type=int, default=0, help="extra readers per request (with the grant)")
    parser.add_argument("--verbose", action="store_true", help="list every call of every run")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=300.0,
        help="before each approval wait up to this many seconds for other processes to leave the "
        "CPUs idle (< 0.2 core busy); 0: do not wait",
    )
    args = parser.parse_args()
    print(
        f"critical_path: {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, N={args.requests}, latency {args.latency * 1000:.0f} ms per call "
        f"(graph, vault, slack, arm{'' if args.no_entra_latency else ', entra'})"
    )
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.grant]
    results = [measure(args, grant=grant, readers=args.readers) for grant in modes]
    for result in results:
        report(args, result)
    if len(results) == 2:  # without, with
        without, with_grant = ([len(run.path) for run in r.runs] for r in results)
        secret_without, secret_with = ([len(run.secret) for run in r.runs] for r in results)
        walls = [statistics.median(run.wall for run in r.runs) * 1000 for r in results]
        added = statistics.median(with_grant) - statistics.median(without)
        print(
            f"\nthe grant: median wall {walls[0]:.0f} → {walls[1]:.0f} ms (+{walls[1] - walls[0]:.0f} ms); "
            f"sequential calls on the path: median {statistics.median(without):.0f} → "
            f"{statistics.median(with_grant):.0f}, max {max(without)} → {max(with_grant)}"
        )
        print(
            f"the secret's own chain (side steps left out): median {statistics.median(secret_without):.0f} → "
            f"{statistics.median(secret_with):.0f}, max {max(secret_without)} → {max(secret_with)}"
        )
        grown = max(secret_with) - max(secret_without)
        mark = "PASS" if max(with_grant) - max(without) <= 1 and added <= 1 and grown <= 1 else "FAIL"
        print(
            f"  [{mark}] the grant adds at most one sequential remote call (path +{added:.0f} median, "
            f"secret chain +{grown} max)"
        )
    return 0


def report(args: argparse.Namespace, result: Measured) -> None:
    runs, background, scopes = result.runs, result.background, result.scopes
    started, lifetime = result.started, result.lifetime
    print(f"\n=== {result.label} read access ===")
    base = args.latency
    print()
    print(
        f"{'run':>3} {'request':>7} {'status':<10} {'wall ms':>8} {'chain':>5} {'path':>4} {'secret':>6} "
        f"{'wall/lat+1':>10} {'local ms':>8} {'calls':>5} {'token calls':>11} {'bg cores':>8}"
    )
    for i, run in enumerate(runs):
        estimate = run.wall / base + 1 if base else math.nan
        print(
            f"{i + 1:>3} {run.request_id:>7} {run.status:<10} {run.wall * 1000:>8.0f} {len(run.chain):>5} "
            f"{len(run.path):>4} {len(run.secret):>6} {estimate:>10.2f} {local_time(run) * 1000:>8.0f} "
            f"{len(run.calls):>5} {run.token_calls:>11} {background[i]:>8.2f}"
        )
    walls = [run.wall * 1000 for run in runs]
    chains = [len(run.chain) for run in runs]
    estimates = [run.wall / base + 1 for run in runs] if base else [math.nan]
    print(
        "wall: click → the DM's chat.postMessage arriving at the fake Slack; chain: longest chain of\n"
        "non-overlapping calls ending with the DM (all calls); path: the same without the card/App Home\n"
        "refreshes; secret: the path without the side steps (service principal, Entra owner);\n"
        "wall/lat+1: round trips the wall time is worth, +1 for the DM; local ms: wall minus\n"
        "the remote calls on the path (the bot's own work: database writes, thread hand-offs);\n"
        "bg cores: what other processes on the machine kept busy meanwhile (0 = quiet)"
    )
    print(
        f"median wall {statistics.median(walls):.0f} ms (min {min(walls):.0f}, max {max(walls):.0f}); "
        f"sequential calls: median {statistics.median(chains):.0f}, max {max(chains)}; wall/lat+1: median "
        f"{statistics.median(estimates):.2f}, max {max(estimates):.2f}; local: median "
        f"{statistics.median(local_time(run) for run in runs) * 1000:.0f} ms"
    )
    for i, run in enumerate(runs):
        if i == 0 or args.verbose:
            print(f"\nrun {i + 1}: the path ({len(run.path)} sequential calls), ms from the click:")
            previous = run.clicked
            for link in run.path:
                gap = (link.start - previous) * 1000
                print(f"   {link.describe(run.clicked)}   (+{gap:.0f} ms local before it)")
                previous = link.end
            others = [link for link in run.calls if link not in run.path]
            print(f"  and {len(others)} other call(s) in the window:")
            for link in others:
                print("   " + link.describe(run.clicked))
    print(f"\ntoken endpoint calls by scope (bot start included; token lifetime {lifetime} s):")
    for scope, times in sorted(scopes.items()):
        during = sum(1 for at in times if at >= started)
        print(f"  {scope}: {len(times)} in all, {during} during the {args.requests} approvals")
    verdict = max(chains) <= 5 and all(run.status == Status.COMPLETED for run in runs)
    verdict_wall = max(estimates) <= 5
    verdict_tokens = all(len(times) == 1 for times in scopes.values())
    print()
    print(
        f"  [{'PASS' if verdict else 'FAIL'}] at most 5 sequential remote calls from click to DM "
        f"(max {max(chains)})"
    )
    print(
        f"  [{'PASS' if verdict_wall else 'FAIL'}] wall time worth at most 5 sequential calls "
        f"(wall/lat+1 max {max(estimates):.2f}, median {statistics.median(estimates):.2f})"
    )
    counts = ", ".join(str(len(t)) for t in scopes.values())
    mark = "PASS" if verdict_tokens else "FAIL"
    print(f"  [{mark}] one token request per resource over the run ({counts})")


if __name__ == "__main__":
    sys.exit(main())
