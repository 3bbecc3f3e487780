"""Restarts at the default settings: SIGTERM gives running work back at once, and a request that
crashes its bot every time is stopped after a bounded number of attempts and reported."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.core.model import Status
from bot.engine.runner import MAX_ATTEMPTS
from bot.store import Store
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.slack_driver import SlackDriver
from tests.crash.conftest import BotProcess
from tests.crash.test_crash_matrix import _environment, _reached
from tests.e2e.conftest import wait_until
from tests.e2e.flows import request_id_of, request_new_app


def _file_and_approve(cloud: FakeCloud, bot: BotProcess, name: str) -> int:
    with SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
        card = request_new_app(slack, DEVELOPER, name)
        assert slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL).status_code == 200
    return request_id_of(card)


@pytest.mark.slow
def test_sigterm_stops_at_the_next_step_and_gives_the_request_back(
    cloud: FakeCloud, store: Store, database_url: str, bot_processes: Callable[..., BotProcess]
) -> None:
    """SIGTERM while addPassword is outstanding (Graph answers after 3 s): the bot lets that step
    finish, stops before the next one, releases the lease and exits 0 with the request still
    approved; the next `serve` carries it on at once and completes it with one password."""
    cloud.graph.latency(3.0, "POST", r"/addPassword$")
    first = bot_processes(_environment(cloud, database_url), "first")
    request_id = _file_and_approve(cloud, first, "sigterm-app")
    wait_until(lambda: _reached(store, request_id, "add_password:started"), what="addPassword to be sent")
    assert first.stop() == 0, first.output()
    left = store.get_request(request_id)
    assert left.status == Status.APPROVED and left.lease_owner is None, (left.status, left.lease_owner)
    assert "stopped for shutdown" in first.output()
    cloud.graph.clear_faults()

    second = bot_processes(_environment(cloud, database_url), "second")
    done = wait_until(
        lambda: (r := store.get_request(request_id)).status in (Status.COMPLETED, Status.FAILED) and r,
        what="the next process to complete the request",
    )
    assert done.status == Status.COMPLETED, done.error
    app = next(a for a in cloud.graph.apps() if a["displayName"] == "sigterm-app")
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [done.key_id]
    assert second.stop() == 0


@pytest.mark.slow
def test_a_request_that_crashes_its_bot_every_time_is_failed_after_a_bounded_number_of_attempts(
    cloud: FakeCloud, store: Store, database_url: str, bot_processes: Callable[..., BotProcess]
) -> None:
    """The bot dies at the same step of the same request at every start (SIGKILL at vault:started,
    as a crash loop would). After MAX_ATTEMPTS claims the next start fails the request, says how
    often it was tried and at which step, and tells the requester — instead of trying forever."""
    halt = "vault:started"
    bot = bot_processes(_environment(cloud, database_url, halt_at=halt), "attempt-1")
    request_id = _file_and_approve(cloud, bot, "crash-loop-app")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt > 1:
            bot = bot_processes(_environment(cloud, database_url, halt_at=halt), f"attempt-{attempt}")
        wait_until(
            lambda b=bot, n=attempt: (  # type: ignore[misc]
                f"halting at {halt}" in b.output() and store.get_request(request_id).attempts >= n
            ),
            what=f"attempt {attempt} to reach {halt}",
        )
        bot.kill()
    assert store.get_request(request_id).status == Status.APPROVED
    last = bot_processes(_environment(cloud, database_url), "last")
    failed = wait_until(
        lambda: (r := store.get_request(request_id)).status == Status.FAILED and r,
        what="the request to be failed",
    )
    assert f"started {MAX_ATTEMPTS} times without finishing" in (failed.error or "")
    assert "step vault" in (failed.error or "")
    wait_until(
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request_id} failed" in m.get("text", "")
        ],
        what="the requester's failure DM",
    )
    assert last.stop() == 0
