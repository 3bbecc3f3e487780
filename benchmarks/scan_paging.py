"""Expiry scan over 50,000 apps in the fake Graph that all carry the bot's tag and are all
managed by the bot, ~10 % with a secret expired or expiring within 30 days: requests made,
paging time and peak memory, side by side with a raw httpx client paging the same data.

    python benchmarks/scan_paging.py [--apps 50000] [--runs 3] [--owners 500] [--expiring 0.1]
        [--dms-per-minute 60000] [--compare NAME=ROOT ...] [--profile FILE]

Each side runs in its own fresh process against the same loopback fakes (in this process):
the raw side pages `GET /applications` with httpx; the bot side is `oauth-bot scan`'s path
(`bot.runtime.build(settings)` then `Lifecycle.scan()`, the real GraphClient, Store and
SlackNotifier against the fake Graph and the fake Slack). The bot's database is seeded in bulk
before each bot run: every app is a managed app with one owner (of `--owners` workspace
members) and no reminder sent yet, so every bot run is a first scan that sends a DM per
expiring secret.

Time is measured inside each process from the first Graph request to the end. `paging s` is
the scan's paging phase (Graph's pages and the reminders due in them: ScanReport.paging_seconds);
`sending s` the rest (the reminders' DMs and their records, the digest), of which `in DMs s` is
inside the notifier's calls. A scan that sends while it pages (the code before issue #10's fix)
has no phases: there paging is the time outside the notifier's calls. Memory is the growth of
the process's peak RSS during the scan (VmHWM reset through /proc/self/clear_refs first), so
library import sizes do not count.
`--compare before=/path/to/checkout` adds a row for another checkout's bot (run from that
directory's code against the same fakes and database), interleaved run by run with this one.
`--profile FILE` runs the bot side once under cProfile and writes the stats to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

from sqlalchemy import delete, insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.model import Kind, Request, Status  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.store.schema import ensure_schema  # noqa: E402
from bot.store.tables import AppOwnerRow, ManagedAppRow, ReminderSentRow  # noqa: E402
from fakes.cloud import BOT_CLIENT_ID, BOT_CLIENT_SECRET, TENANT_ID, FakeCloud  # noqa: E402

FILTER = "tags/any(t:t eq 'oauth-bot')"
SELECT = "id,appId,displayName,passwordCredentials"

RAW_CLIENT = r"""
import json, os, sys, time, httpx
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
token = httpx.post(os.environ["TOKEN_URL"], data={"grant_type": "client_credentials",
    "client_id": os.environ["CLIENT_ID"], "client_secret": os.environ["CLIENT_SECRET"],
    "scope": os.environ["GRAPH"] + "/.default"}).json()["access_token"]
client = httpx.Client(headers={"Authorization": "Bearer " + token}, timeout=60)
open("/proc/self/clear_refs", "w").write("5")
before = rss("VmRSS:")
started = time.perf_counter()
url = os.environ["GRAPH"] + "/v1.0/applications"
params = {"$select": os.environ["SELECT"], "$top": "999", "$filter": os.environ["FILTER"]}
apps = requests = 0
while url:
    page = client.get(url, params=params).json()
    requests += 1
    apps += len(page["value"])
    url, params = page.get("@odata.nextLink"), None
elapsed = time.perf_counter() - started
print(json.dumps({"apps": apps, "requests": requests, "seconds": elapsed, "growth": rss("VmHWM:") - before}))
"""

BOT_SCAN = r"""
import json, os, sys, time
sys.path.insert(0, os.environ["ROOT"])
from bot.config import load_settings
from bot.runtime import build
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
class Timed:
    '''The bot's notifier, with the time spent inside the scan's DMs counted.'''
    def __init__(self, inner):
        self.inner, self.seconds, self.calls = inner, 0.0, 0
    def __getattr__(self, name):
        method = getattr(self.inner, name)
        if name not in ("expiry_reminder", "expiry_digest"):
            return method
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
        return timed
services = build(load_settings(for_serve=True))
services.tokens.token(services.tokens.graph_scope)
notifier = Timed(services.lifecycle.notifier)
services.lifecycle.notifier = notifier
open("/proc/self/clear_refs", "w").write("5")
before = rss("VmRSS:")
profile = os.environ.get("PROFILE")
if profile:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
started = time.perf_counter()
report = services.lifecycle.scan()
elapsed = time.perf_counter() - started
growth = rss("VmHWM:") - before
if profile:
    profiler.disable()
    profiler.dump_stats(profile)
services.close()
# the scan's own phase timings where it has them; else (reminders sent while paging) the time
# outside the notifier's calls counts as paging
paging = getattr(report, "paging_seconds", elapsed - notifier.seconds)
print(json.dumps({"apps": report.apps, "secrets": report.secrets, "reminders": len(report.reminders),
    "seconds": paging, "send_seconds": elapsed - paging, "dm_seconds": notifier.seconds,
    "growth": growth}))
"""


def run(script: str, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def seed_database(store: Store, apps: list[dict[str, str]], owners_of_apps: list[str]) -> None:
    """Every app a managed app with one owner, in bulk (a benchmark's shortcut past the flows)."""
    origin = store.add_request(
        Request(
            uid="bench-seed",
            kind=Kind.NEW_APP,
            status=Status.COMPLETED,
            requester_id=owners_of_apps[0],
            display_name="bench-seed",
            sign_in_audience="AzureADMyOrg",
            secret_description="bench",
            secret_days=180,
            justification="seeded for the scan benchmark",
        ),
        ttl=timedelta(days=7),
    )
    now = store.now()
    with store.session() as session:
        session.execute(
            insert(ManagedAppRow),
            [
                {
                    "client_id": app["appId"],
                    "object_id": app["id"],
                    "display_name": app["displayName"],
                    "sign_in_audience": "AzureADMyOrg",
                    "vault_secret_name": f"oauth-{app['appId']}",
                    "request_id": origin.id,
                    "created_at": now,
                }
                for app in apps
            ],
        )
        session.execute(
            insert(AppOwnerRow),
            [
                {"client_id": app["appId"], "slack_user_id": owner, "entra_user_id": None}
                for app, owner in zip(apps, owners_of_apps, strict=True)
            ],
        )


def forget_reminders(store: Store) -> None:
    """Back to before the first scan: no reminder sent (the audit log, append-only, grows)."""
    with store.session() as session:
        session.execute(delete(ReminderSentRow))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--owners", type=int, default=500)
    parser.add_argument("--expiring", type=float, default=0.1, help="share of apps with a secret due")
    parser.add_argument("--dms-per-minute", type=float, default=60_000)
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=ROOT",
        help="also run the bot of another checkout (e.g. the code before a change), interleaved",
    )
    parser.add_argument("--profile", help="write a cProfile of one bot run to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oauth-bot-scan-bench-"))
    database_url = f"sqlite:///{work / 'bench.db'}"
    every = round(1 / args.expiring) if args.expiring > 0 else 0
    with FakeCloud(work) as cloud:
        now = datetime.now(UTC)
        # i % every == 0: due (cycling expired, 5, 12, 25 days left); the rest a year and more away
        due = (-3.0, 5.5, 12.5, 25.5)
        ids = set(
            cloud.graph.seed_apps(
                args.apps,
                owner_appid=BOT_CLIENT_ID,
                tag="oauth-bot",
                end_dates=lambda i: (
                    now + timedelta(days=due[(i // every) % 4] if every and i % every == 0 else 400 + i % 300)
                ),
            )
        )
        owners = [f"U0BENCH{n:04d}" for n in range(args.owners)]
        for owner in owners:
            cloud.slack.add_user(owner, owner.lower())
        store = Store.from_url(database_url)
        ensure_schema(store, auto_create=True)
        apps = [a for a in cloud.graph.apps() if a["id"] in ids]  # in seeding order
        # the k-th app with a secret due belongs to owner k % owners: each owner's reminders are
        # `--owners` DMs apart, as when many teams own the apps
        seed_database(store, apps, [owners[(i // max(every, 1)) % len(owners)] for i in range(len(apps))])
        env = {
            **cloud.environment(database_url),
            "ROOT": str(ROOT),
            "SELECT": SELECT,
            "FILTER": FILTER,
            "TOKEN_URL": f"{cloud.entra.url}/{TENANT_ID}/oauth2/v2.0/token",
            "CLIENT_ID": BOT_CLIENT_ID,
            "CLIENT_SECRET": BOT_CLIENT_SECRET,
            "GRAPH": cloud.graph.url,
            # the DMs' workspace-wide pace: Slack's tier would make the first scan's 5,000
            # reminders take ~17 min at the default 300 per minute; here only their cost counts
            "OAUTH_BOT_REMINDER_DMS_PER_MINUTE": str(args.dms_per_minute),
        }
        sides = {"oauth-bot scan": str(ROOT), **dict(c.split("=", 1) for c in args.compare)}
        raw: list[dict[str, float]] = []
        ours: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for _ in range(args.runs):  # the sides interleaved, so machine load falls on each alike
            raw.append(run(RAW_CLIENT, env))
            for name, root in sides.items():
                forget_reminders(store)
                before = len(cloud.graph.calls_to("GET", r"^/v1\.0/applications$"))
                result = run(BOT_SCAN, {**env, "ROOT": root})
                result["requests"] = len(cloud.graph.calls_to("GET", r"^/v1\.0/applications$")) - before
                ours[name].append(result)
        if args.profile:
            forget_reminders(store)
            run(BOT_SCAN, {**env, "PROFILE": args.profile})
    report(args, raw, ours)


def report(
    args: argparse.Namespace, raw: list[dict[str, float]], ours: dict[str, list[dict[str, float]]]
) -> None:
    mb = 1024 * 1024
    raw_s, raw_mb = median(r["seconds"] for r in raw), median(r["growth"] for r in raw) / mb
    print(f"apps in the fake Graph: {args.apps}, all tagged and managed (runs: {args.runs}, medians)")
    print(f"{'':24}{'requests':>10}{'paging s':>10}{'sending s':>11}{'in DMs s':>10}{'peak RSS +MB':>14}")
    print(f"{'raw httpx client':24}{raw[0]['requests']:>10}{raw_s:>10.2f}{'':>11}{'':>10}{raw_mb:>14.1f}")
    for name, results in ours.items():
        requests = max(int(o["requests"]) for o in results)
        paging = median(o["seconds"] for o in results)
        sending = median(o["send_seconds"] for o in results)
        in_dms = median(o["dm_seconds"] for o in results)
        growth = median(o["growth"] for o in results) / mb
        print(f"{name:24}{requests:>10}{paging:>10.2f}{sending:>11.2f}{in_dms:>10.2f}{growth:>14.1f}")
    for name, results in ours.items():
        requests = max(int(o["requests"]) for o in results)
        ratio = median(o["seconds"] for o in results) / raw_s
        extra = median(o["growth"] for o in results) / mb - raw_mb
        sent = [int(o["reminders"]) for o in results]
        print(f"{name}: {results[0]['apps']:.0f} apps, {results[0]['secrets']:.0f} secrets, reminders {sent}")
        print(f"  requests ≤ 51: {'yes' if requests <= 51 else 'NO'} ({requests})")
        print(f"  paging time ≤ 1.2 x raw: {'yes' if ratio <= 1.2 else 'NO'} ({ratio:.2f}x)")
        print(f"  memory ≤ raw + 50 MB: {'yes' if extra <= 50 else 'NO'} ({extra:+.1f} MB)")


if __name__ == "__main__":
    main()
