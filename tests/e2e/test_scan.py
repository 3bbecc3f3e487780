"""The expiry scan at scale: a bounded number of database statements per Graph page, reminders
sent once each across a scan that dies half-way and runs again, and Slack's 429 waited out."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from bot.core.model import Kind, ManagedApp, Request, Status
from bot.flows.lifecycle import Reminder
from fakes.cloud import BOT_CLIENT_ID, FakeCloud
from fakes.harness import BackgroundBot

REMINDER_TEXT = "client secret of app"


def _services(bot: BackgroundBot) -> Any:
    assert bot.services is not None
    return bot.services


def _seed(cloud: FakeCloud, services: Any, count: int, *, due_every: int) -> dict[str, str]:
    """`count` tagged apps in Graph, every one managed by the bot with its own owner (a Slack
    member); every `due_every`-th has a secret 5 days from expiry, the rest a year away.
    Returns the owner of each due app by client id."""
    now = datetime.now(UTC)
    ids = cloud.graph.seed_apps(
        count,
        owner_appid=BOT_CLIENT_ID,
        tag="oauth-bot",
        end_dates=lambda i: now + timedelta(days=5.5 if i % due_every == 0 else 400),
    )
    by_id = {a["id"]: a for a in cloud.graph.apps() if a["id"] in set(ids)}
    origin = services.store.add_request(
        Request(
            uid="seeded",
            kind=Kind.NEW_APP,
            status=Status.COMPLETED,
            requester_id="U0SCAN00000",
            display_name="seeded",
            sign_in_audience="AzureADMyOrg",
            secret_description="seeded",
            secret_days=180,
            justification="seeded for the scan tests",
        ),
        ttl=timedelta(days=7),
    )
    due: dict[str, str] = {}
    for i, object_id in enumerate(ids):
        app = by_id[object_id]
        owner = f"U0SCAN{i:05d}"
        if i % due_every == 0:
            cloud.slack.add_user(owner, owner.lower())
            due[app["appId"]] = owner
        services.store.add_managed_app(
            ManagedApp(
                client_id=app["appId"],
                object_id=object_id,
                display_name=app["displayName"],
                sign_in_audience="AzureADMyOrg",
                vault_secret_name=f"oauth-{app['appId']}",
                request_id=origin.id,
            ),
            owners={owner: None},
        )
    return due


def _reminder_dms(cloud: FakeCloud, owners: dict[str, str]) -> dict[str, int]:
    """How many reminder DMs each owner got."""
    return {
        owner: sum(REMINDER_TEXT in m.get("text", "") for m in cloud.slack.dm_messages(owner))
        for owner in owners.values()
    }


@contextmanager
def _statements(services: Any) -> Iterator[list[str]]:
    """Every SQL statement the bot's engine runs meanwhile on this thread (the scan's; the
    bot's worker threads poll the same engine)."""
    seen: list[str] = []
    scanning = threading.get_ident()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.get_ident() == scanning:
            seen.append(statement)

    event.listen(services.store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(services.store.engine, "before_cursor_execute", record)


def _pages(cloud: FakeCloud) -> int:
    return len(cloud.graph.calls_to("GET", r"^/v1\.0/applications$"))


def test_the_scan_reads_the_database_twice_per_page_not_once_per_secret(
    cloud: FakeCloud, bot: BackgroundBot
) -> None:
    """Over 2,100 managed apps (3+ Graph pages) with 21 secrets due: per page with secrets due
    the scan runs one query for their apps' owners and one for the reminders already sent; each
    reminder sent adds only its own record and audit event. A second scan, with nothing left to
    send, runs no statement per secret at all."""
    services = _services(bot)
    due = _seed(cloud, services, 2100, due_every=100)
    before = _pages(cloud)
    with _statements(services) as first:
        report = services.lifecycle.scan()
    pages = _pages(cloud) - before
    assert pages >= 3
    assert sorted(r.client_id for r in report.reminders) == sorted(due)
    assert len(first) <= 2 * pages + 2 * len(due) + 1, Counter(s[:30] for s in first)
    before = _pages(cloud)
    with _statements(services) as second:
        assert services.lifecycle.scan().reminders == []
    pages = _pages(cloud) - before
    owners_reads = [s for s in second if "FROM app_owners" in s]
    sent_reads = [s for s in second if "FROM reminders_sent" in s]
    assert len(owners_reads) <= pages and len(sent_reads) <= pages
    assert len(second) <= 2 * pages + 1, second  # + the scan's own audit event
    assert set(_reminder_dms(cloud, due).values()) == {1}


class Died(BaseException):
    """The process ending under the scan (no handler of the bot catches it)."""


class DiesAfter:
    """The bot's notifier, until the process dies right after the `n`-th reminder went out —
    its DMs sent, its audit event not yet written."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.left = inner, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def expiry_reminder(self, reminder: Reminder) -> None:
        self.inner.expiry_reminder(reminder)
        self.left -= 1
        if self.left == 0:
            raise Died


def test_a_scan_that_dies_half_way_sends_the_rest_when_it_runs_again_and_none_twice(
    cloud: FakeCloud, bot: BackgroundBot
) -> None:
    """The process dies after 4 of 10 reminders (the 4th's DM sent, nothing recorded after it);
    the next scan sends the other 6, and every owner has exactly one reminder."""
    services = _services(bot)
    due = _seed(cloud, services, 100, due_every=10)
    notifier = services.lifecycle.notifier
    services.lifecycle.notifier = DiesAfter(notifier, 4)
    with pytest.raises(Died):
        services.lifecycle.scan()
    assert sum(_reminder_dms(cloud, due).values()) == 4
    services.lifecycle.notifier = notifier
    resumed = services.lifecycle.scan()
    assert len(resumed.reminders) == 6
    assert _reminder_dms(cloud, due) == dict.fromkeys(due.values(), 1)
    assert services.lifecycle.scan().reminders == []


def test_a_429_from_slack_on_chat_post_message_is_waited_out_and_nothing_is_dropped(
    cloud: FakeCloud, bot: BackgroundBot
) -> None:
    """Slack answers three chat.postMessage calls of the scan with 429 and Retry-After: 1; the
    client waits each out and sends again, so all 5 reminders arrive, each once, all recorded."""
    services = _services(bot)
    due = _seed(cloud, services, 50, due_every=10)
    cloud.slack.rate_limit("chat.postMessage", retry_after=1, times=3)
    report = services.lifecycle.scan()
    posts = cloud.slack.calls_to("POST", r"^/api/chat\.postMessage$")
    assert len(posts) == len(cloud.slack.api_calls("chat.postMessage")) + 3  # 3 answered 429
    assert sorted(r.client_id for r in report.reminders) == sorted(due)
    assert _reminder_dms(cloud, due) == dict.fromkeys(due.values(), 1)
