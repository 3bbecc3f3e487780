"""Expiry scan over 50,000 apps in the fake Graph: requests made, paging time and peak memory,
side by side with a raw httpx client paging the same data.

    python benchmarks/scan_paging.py [--apps 50000] [--runs 3]

Each side runs in its own fresh process against the same loopback fake Graph (in this process).
Paging time is measured inside each process from the first Graph request to the last answer;
memory is the growth of the process's peak RSS while paging (VmHWM reset through
/proc/self/clear_refs before the first request), so library import sizes do not count.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
from bot.config import Settings
from bot.azure.identity import TokenSource
from bot.azure.graph import GraphClient
from bot.azure.retry import RetryPolicy
from bot.store import Store
from bot.store.schema import ensure_schema
from bot.lifecycle import Lifecycle
from bot.azure.vault import Vault
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
class Quiet:
    def expiry_reminder(self, reminder): pass
    def expiry_digest(self, reminders): pass
    def secret_retired(self, retired): pass
settings = Settings(_env_file=None)
tokens = TokenSource(settings)
tokens.token(tokens.graph_scope)
graph = GraphClient(settings.graph_base, tokens.graph_auth(), retry=RetryPolicy())
store = Store.from_url(settings.database_url)
ensure_schema(store, auto_create=True)
vault = Vault(settings.key_vault_url, tokens.credential(), tenant_id=settings.azure_tenant_id, portal_url="https://portal.azure.com")
lifecycle = Lifecycle(settings=settings, store=store, graph=graph, vault=vault, notifier=Quiet())
open("/proc/self/clear_refs", "w").write("5")
before = rss("VmRSS:")
started = time.perf_counter()
report = lifecycle.scan()
elapsed = time.perf_counter() - started
growth = rss("VmHWM:") - before
print(json.dumps({"apps": report.apps, "secrets": report.secrets, "seconds": elapsed, "growth": growth}))
"""


def run(script: str, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oauth-bot-scan-bench-"))
    with FakeCloud(work) as cloud:
        now = datetime.now(UTC)
        cloud.graph.seed_apps(
            args.apps,
            owner_appid=BOT_CLIENT_ID,
            tag="oauth-bot",
            end_dates=lambda i: now + timedelta(days=400 + i % 300),
        )
        env = {
            **cloud.environment(f"sqlite:///{work / 'bench.db'}"),
            "ROOT": str(ROOT),
            "SELECT": SELECT,
            "FILTER": FILTER,
            "TOKEN_URL": f"{cloud.entra.url}/{TENANT_ID}/oauth2/v2.0/token",
            "CLIENT_ID": BOT_CLIENT_ID,
            "CLIENT_SECRET": BOT_CLIENT_SECRET,
            "GRAPH": cloud.graph.url,
        }
        raw, ours, requests = [], [], []
        for _ in range(args.runs):
            raw.append(run(RAW_CLIENT, env))
            before = len(cloud.graph.calls_to("GET", r"^/v1\.0/applications$"))
            ours.append(run(BOT_SCAN, env))
            requests.append(len(cloud.graph.calls_to("GET", r"^/v1\.0/applications$")) - before)
    mb = 1024 * 1024
    raw_s, ours_s = median(r["seconds"] for r in raw), median(o["seconds"] for o in ours)
    raw_mb, ours_mb = median(r["growth"] for r in raw) / mb, median(o["growth"] for o in ours) / mb
    print(f"apps in the fake Graph: {args.apps} (runs: {args.runs}, medians)")
    print(f"{'':24}{'requests':>10}{'paging s':>10}{'peak RSS growth MB':>20}")
    print(f"{'raw httpx client':24}{raw[0]['requests']:>10}{raw_s:>10.2f}{raw_mb:>20.1f}")
    print(f"{'oauth-bot scan':24}{max(requests):>10}{ours_s:>10.2f}{ours_mb:>20.1f}")
    ratio = ours_s / raw_s
    print(f"apps seen by the scan: {ours[0]['apps']}")
    print(f"requests ≤ 51: {'yes' if max(requests) <= 51 else 'NO'} ({max(requests)})")
    print(f"paging time ≤ 1.2 x raw: {'yes' if ratio <= 1.2 else 'NO'} ({ratio:.2f}x)")
    print(f"memory ≤ raw + 50 MB: {'yes' if ours_mb <= raw_mb + 50 else 'NO'} ({ours_mb - raw_mb:+.1f} MB)")


if __name__ == "__main__":
    main()
