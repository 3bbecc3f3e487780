"""The fault matrix: one cell per (service, fault) on the way from an approval to the secret.

Each cell runs the whole bot in this process (BackgroundBot, HTTP on loopback), files a new-app
request through Slack, scripts one fault in the fakes of Microsoft Graph, Azure Key Vault or
Slack, approves, and checks the outcome. The bot must either complete with exactly one app
and one password whose value is in the vault, or fail with a clear message to the requester
and the admins, leaving no password on the app whose value the vault does not hold. Never a
twin app.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.core.model import Request, Status
from bot.store import Store
from fakes.base import FakeServer, Fault
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.crash.conftest import CloudState, Totals, cloud_state, record
from tests.e2e.conftest import wait_until
from tests.e2e.flows import request_id_of, request_new_app

CREATE = r"^/v1\.0/applications\(uniqueName="
ADD_PASSWORD = r"^/v1\.0/applications/[^/]+/addPassword$"
VAULT_WRITE = r"^/secrets/oauth-[^/]+$"
GRAPH_503 = {"error": {"code": "serviceNotAvailable", "message": "Service unavailable. Try again later."}}
GRAPH_429 = {"error": {"code": "TooManyRequests", "message": "Too many requests."}}
GRAPH_409 = {
    "error": {
        "code": "Directory_ConcurrencyViolation",
        "message": "Another operation on this object is in progress. Try again later.",
    }
}
VAULT_503 = {"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}}
VAULT_429 = {
    "error": {"code": "Throttled", "message": "Request was not processed because too many requests."}
}


class Ledger:
    """The faults a cell scripts, and how many of them the fakes actually answered."""

    def __init__(self, cloud: FakeCloud, store: Store) -> None:
        self.cloud = cloud
        self.store = store  # the bot's database, for checks of its audit log
        self._scripted: list[tuple[Fault, int]] = []
        self._graph_mark = len(cloud.graph.answers)
        self._vault_mark = len(cloud.vault.answers)
        self._slack_mark = len(cloud.slack.calls)
        self._counters: list[Callable[[], int]] = []

    def inject(self, server: FakeServer, method: str, path: str, **fault: Any) -> None:
        server.inject(method, path, **fault)
        self._track(server)

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Slack answers the next `times` calls of a Web API method with 429 + Retry-After."""
        self.cloud.slack.rate_limit(method, retry_after=retry_after, times=times)
        self._track(self.cloud.slack)

    def _track(self, server: FakeServer) -> None:
        with server.lock:  # the Fault just added: its `times` counts down as it is served
            scripted = server._faults[-1]
        self._scripted.append((scripted, scripted.times))

    def graph_answers(self, *statuses: int | None) -> None:
        """Count Graph answers with these statuses since the cell began (knob-made faults)."""
        self._counters.append(
            lambda: sum(1 for _, s in self.cloud.graph.answers[self._graph_mark :] if s in statuses)
        )

    def vault_answers(self, *statuses: int) -> None:
        self._counters.append(
            lambda: sum(1 for _, s in self.cloud.vault.answers[self._vault_mark :] if s in statuses)
        )

    def delivered(self) -> int:
        return sum(first - f.times for f, first in self._scripted) + sum(c() for c in self._counters)

    def graph_calls(self, method: str, path: str) -> list[Any]:
        return [
            r
            for r, _ in self.cloud.graph.answers[self._graph_mark :]
            if r.method == method and _match(path, r)
        ]

    def vault_calls(self, method: str, path: str) -> list[Any]:
        return [
            r
            for r, _ in self.cloud.vault.answers[self._vault_mark :]
            if r.method == method and _match(path, r)
        ]

    def slack_calls(self, path: str) -> list[Any]:
        with self.cloud.slack.lock:
            calls = list(self.cloud.slack.calls[self._slack_mark :])
        return [r for r in calls if _match(path, r)]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _match(pattern: str, request: Any) -> bool:
    return re.search(pattern, request.path) is not None


@dataclass(frozen=True)
class Cell:
    id: str
    arm: Callable[[FakeCloud, Ledger], None]
    expect: str
    settings: dict[str, Any] = field(default_factory=dict)
    error_mentions: tuple[str, ...] = ()
    check: Callable[[FakeCloud, Ledger, Request, CloudState], None] | None = None
    retry_after_clearing: bool = False  # fail, clear the fault, an admin clicks Retry: completes


# --- the cells ---------------------------------------------------------------------------------
def _graph_429_on_create(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.graph, "PATCH", CREATE, status=429, headers={"Retry-After": "1"}, body=GRAPH_429)


def _create_retried_after_retry_after(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    creates = ledger.graph_calls("PATCH", CREATE)
    assert len(creates) == 2, "one throttled create, one that made the app"
    assert creates[1].at - creates[0].at >= 1.0, "the retry came before Retry-After allowed"


def _graph_503_twice_on_add_password(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.graph, "POST", ADD_PASSWORD, status=503, times=2, body=GRAPH_503)


def _three_add_passwords(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    assert len(ledger.graph_calls("POST", ADD_PASSWORD)) == 3


def _two_add_passwords(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    assert len(ledger.graph_calls("POST", ADD_PASSWORD)) == 2


def _graph_no_answer_on_create(cloud: FakeCloud, ledger: Ledger) -> None:
    # Graph holds the request longer than the bot's 1 s timeout, then closes without answering.
    ledger.inject(cloud.graph, "PATCH", CREATE, no_answer=True, delay=1.5)


def _graph_lost_answer_on_create(cloud: FakeCloud, ledger: Ledger) -> None:
    # Graph makes the app, then the answer is lost (504): the retry must find it, not make a twin.
    cloud.graph.lose_next_answer("PATCH", CREATE)
    ledger.graph_answers(504)


def _two_creates(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    assert len(ledger.graph_calls("PATCH", CREATE)) == 2


def _graph_lost_answer_on_add_password(cloud: FakeCloud, ledger: Ledger) -> None:
    # Graph adds the password, then the answer is lost (504): the bot must not just send it again.
    cloud.graph.lose_next_answer("POST", ADD_PASSWORD)
    ledger.graph_answers(504)


def _graph_dropped_answer_on_add_password(cloud: FakeCloud, ledger: Ledger) -> None:
    # Graph adds the password, then the connection closes without an answer.
    cloud.graph.lose_next_answer("POST", ADD_PASSWORD, silently=True)
    ledger.graph_answers(None)  # the fake records an unanswered request with no status


def _lost_password_read_back_and_removed(
    cloud: FakeCloud, ledger: Ledger, request: Request, state: CloudState
) -> None:
    """Two addPassword calls; the first one's secret (its value never arrived) was found by
    its name and start time, recorded as added and removed again; the second is the one kept."""
    adds = ledger.graph_calls("POST", ADD_PASSWORD)
    assert len(adds) == 2
    assert len(ledger.graph_calls("POST", r"/removePassword$")) == 1
    assert [p["keyId"] for p in state.passwords] == [request.key_id]
    store = ledger.store
    events = store.audit_events(request_id=request.id)
    added = [e.detail["key_id"] for e in events if e.action == "secret.added"]
    removed = [e.detail["key_id"] for e in events if e.action == "secret.removed"]
    assert len(added) == 2 and request.key_id in added
    assert removed == [k for k in added if k != request.key_id]


def _graph_replication_delay(cloud: FakeCloud, ledger: Ledger) -> None:
    # For 2 s after the create, Graph answers 404 (and 400 NoBackingApplicationObject) about the app.
    cloud.graph.replication_delay = 2.0
    ledger.graph_answers(404, 400)


def _some_replication_404s(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    assert ledger.delivered() >= 1, "the replication delay never showed"


def _graph_409_once(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.graph, "POST", ADD_PASSWORD, status=409, body=GRAPH_409)


def _graph_503_past_budget(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.graph, "POST", ADD_PASSWORD, status=503, times=10_000, body=GRAPH_503)


def _vault_503_twice(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.vault, "PUT", VAULT_WRITE, status=503, times=2, body=VAULT_503)


def _vault_429(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.vault, "PUT", VAULT_WRITE, status=429, headers={"Retry-After": "1"}, body=VAULT_429)


def _vault_write_retried_after_retry_after(
    cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState
) -> None:
    writes = [r for r in ledger.vault_calls("PUT", VAULT_WRITE) if r.headers.get("Authorization")]
    assert len(writes) == 2, "one throttled write, one that stored the value"
    assert writes[1].at - writes[0].at >= 1.0, "the retry came before Retry-After allowed"


def _vault_timeout_once(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.vault, "PUT", VAULT_WRITE, no_answer=True, delay=1.5)


def _one_version(cloud: FakeCloud, ledger: Ledger, _r: Request, state: CloudState) -> None:
    assert len(state.versions) == 1, "the write that got no answer was not carried out: one version"


def _vault_403(cloud: FakeCloud, ledger: Ledger) -> None:
    cloud.vault.forbid_writes = True
    ledger.vault_answers(403)


def _vault_403_not_retried(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    writes = [r for r in ledger.vault_calls("PUT", VAULT_WRITE) if r.headers.get("Authorization")]
    assert len(writes) == 1, "a permission error is not retried"


def _vault_503_past_budget(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.vault, "PUT", VAULT_WRITE, status=503, times=10_000, body=VAULT_503)


def _slack_429_on_the_dm(cloud: FakeCloud, ledger: Ledger) -> None:
    # Armed after the card and the "request received" DM: the next chat.postMessage is the
    # "is done" DM.
    ledger.rate_limit("chat.postMessage", retry_after=1)


def _dm_retried_after_retry_after(cloud: FakeCloud, ledger: Ledger, _r: Request, _s: CloudState) -> None:
    posts = ledger.slack_calls(r"^/api/chat\.postMessage$")
    assert len(posts) == 2, "one rate-limited DM, one delivered"
    assert posts[1].at - posts[0].at >= 1.0, "the DM was retried before Retry-After allowed"


def _slack_5xx_on_chat_update(cloud: FakeCloud, ledger: Ledger) -> None:
    ledger.inject(cloud.slack, "*", r"^/api/chat\.update$", status=503, body="upstream unavailable")


def _card_says_done(cloud: FakeCloud, ledger: Ledger, request: Request, _s: CloudState) -> None:
    wait_until(
        lambda: " — done: " in _json(cloud.slack.message(request.card_channel or "", request.card_ts or "")),
        timeout=10,
        what="the card to show the finished request",
    )


FAST = {"oauth_bot_http_timeout_seconds": 1.0}
SHORT_BUDGET = {"oauth_bot_retry_budget_seconds": 3.0}

CELLS = [
    Cell("graph-429-retry-after-on-create", _graph_429_on_create, Status.COMPLETED,
         check=_create_retried_after_retry_after),
    Cell("graph-503x2-on-addPassword", _graph_503_twice_on_add_password, Status.COMPLETED,
         check=_three_add_passwords),
    Cell("graph-no-answer-on-create", _graph_no_answer_on_create, Status.COMPLETED, settings=FAST,
         check=_two_creates),
    Cell("graph-lost-answer-on-create", _graph_lost_answer_on_create, Status.COMPLETED, check=_two_creates),
    Cell("graph-lost-answer-on-addPassword", _graph_lost_answer_on_add_password, Status.COMPLETED,
         check=_lost_password_read_back_and_removed),
    Cell("graph-dropped-answer-on-addPassword", _graph_dropped_answer_on_add_password, Status.COMPLETED,
         check=_lost_password_read_back_and_removed),
    Cell("graph-replication-404-for-2s", _graph_replication_delay, Status.COMPLETED,
         check=_some_replication_404s),
    Cell("graph-409-concurrency-violation-once", _graph_409_once, Status.COMPLETED,
         check=_two_add_passwords),
    Cell("graph-503-past-budget", _graph_503_past_budget, Status.FAILED, settings=SHORT_BUDGET,
         error_mentions=("add client secret", "503"), retry_after_clearing=True),
    Cell("vault-503x2", _vault_503_twice, Status.COMPLETED),
    Cell("vault-429-retry-after", _vault_429, Status.COMPLETED, check=_vault_write_retried_after_retry_after),
    Cell("vault-timeout-once", _vault_timeout_once, Status.COMPLETED, settings=FAST, check=_one_version),
    Cell("vault-403-forbidden", _vault_403, Status.FAILED, error_mentions=("Key Vault Secrets Officer",
         "removed again"), check=_vault_403_not_retried),
    Cell("vault-503-past-budget", _vault_503_past_budget, Status.FAILED, settings=SHORT_BUDGET,
         error_mentions=("Azure Key Vault", "removed again"), retry_after_clearing=True),
    Cell("slack-429-on-the-dm", _slack_429_on_the_dm, Status.COMPLETED, check=_dm_retried_after_retry_after),
    Cell("slack-5xx-once-on-chat.update", _slack_5xx_on_chat_update, Status.COMPLETED, check=_card_says_done),
]  # fmt: skip


# --- the bot for one cell --------------------------------------------------------------------
@pytest.fixture
def start_bot(
    cloud: FakeCloud, database_url: str
) -> Iterator[Callable[..., tuple[BackgroundBot, SlackDriver]]]:
    running: list[tuple[BackgroundBot, SlackDriver]] = []

    def start(**overrides: Any) -> tuple[BackgroundBot, SlackDriver]:
        settings = cloud.settings(database_url, **overrides)  # the defaults, unless a cell is about one
        bot = BackgroundBot(settings).start()
        driver = SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack)
        running.append((bot, driver))
        return bot, driver

    yield start
    for bot, driver in running:
        driver.shutdown()
        bot.stop()


def _store(bot: BackgroundBot) -> Store:
    assert bot.services is not None
    return bot.services.store


def _wait_for_end(bot: BackgroundBot, request_id: int) -> Request:
    store = _store(bot)
    return wait_until(
        lambda: (r := store.get_request(request_id)).status in (Status.COMPLETED, Status.FAILED) and r,
        timeout=60,
        what=f"request #{request_id} to complete or fail",
    )


def _done_dms(cloud: FakeCloud, request_id: int) -> list[dict[str, Any]]:
    return [m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request_id} is done" in m.get("text", "")]


def _assert_completed(cloud: FakeCloud, bot: BackgroundBot, request: Request, state: CloudState) -> None:
    assert request.status == Status.COMPLETED, request.error
    assert len(state.passwords) == 1, state.passwords
    (password,) = state.passwords
    latest = state.versions[-1]
    assert password["keyId"] == request.key_id == latest["tags"]["secret-id"]
    assert cloud.graph.check_secret(state.app["appId"], latest["value"])
    assert {c.key_id for c in _store(bot).credentials(state.app["appId"])} == {password["keyId"]}
    wait_until(lambda: _done_dms(cloud, request.id), what="the 'is done' DM")
    assert len(_done_dms(cloud, request.id)) == 1, "the 'is done' DM was sent more than once"


def _assert_failed_cleanly(
    cloud: FakeCloud, request: Request, state: CloudState, card: dict[str, Any], mentions: tuple[str, ...]
) -> None:
    error = request.error or ""
    for needle in mentions:
        assert needle in error, f"{needle!r} not in the failure message: {error!r}"
    dm = wait_until(
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if f"#{request.id} failed" in m.get("text", "")
        ],
        what="the requester's failure DM",
    )
    assert len(dm) == 1 and error in _json(dm[0]["blocks"])
    thread = wait_until(
        lambda: [m for m in cloud.slack.messages(APPROVAL_CHANNEL) if m.get("thread_ts") == card["ts"]],
        what="the admins' reply under the card",
    )
    assert error in _json(thread[-1]["blocks"])
    final = wait_until(
        lambda: (m := cloud.slack.message(APPROVAL_CHANNEL, card["ts"])) and "Retry" in _json(m) and m,
        what="the card to offer Retry",
    )
    assert " — failed: " in _json(final["blocks"])
    # No credential whose value nobody holds: every password left on the app is in the vault.
    assert state.values_lost == 0, state.passwords
    assert state.passwords == [], "a failed request leaves no password behind"


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_fault(cell: Cell, cloud: FakeCloud, start_bot: Any, totals: dict[str, Totals]) -> None:
    """One fault on the way to the secret: the request either completes with exactly one app
    and one password whose value is the vault's latest version, or fails with the cause named
    to the requester (DM) and the admins (a reply under the card, Retry on the card), leaving
    no password whose value nobody holds. Never a twin app. Failed cells that a fault outlived
    complete when an admin clicks Retry after the fault clears, still with one app."""
    name = f"fault-{cell.id}".replace(".", "-")
    bot, slack = start_bot(**cell.settings)
    card = request_new_app(slack, DEVELOPER, name)
    wait_until(  # the bot is idle again: the next Slack message it sends is about the outcome
        lambda: [
            m for m in cloud.slack.dm_messages(DEVELOPER) if "waiting for approval" in m.get("text", "")
        ],
        what="the 'request received' DM",
    )
    ledger = Ledger(cloud, _store(bot))
    cell.arm(cloud, ledger)
    assert slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL).status_code == 200
    request = _wait_for_end(bot, request_id_of(card))
    state = cloud_state(cloud, name)
    clean = request.status == Status.FAILED and state.values_lost == 0 and state.twins == 0
    record(totals["fault matrix"], state, status=request.status, faults=ledger.delivered(), clean=clean)

    assert ledger.delivered() >= 1, "the fault was never served"
    assert state.twins == 0, f"{len(state.apps)} apps for one request"
    assert state.values_lost == 0, f"a password whose value nobody holds: {state.passwords}"
    assert request.status == cell.expect, request.error
    if cell.expect == Status.COMPLETED:
        _assert_completed(cloud, bot, request, state)
    else:
        _assert_failed_cleanly(cloud, request, state, card, cell.error_mentions)
    if cell.check is not None:
        cell.check(cloud, ledger, request, state)
    for value in state.values:
        assert value not in cloud.slack.all_text(), "a secret value was sent to Slack"

    if cell.retry_after_clearing:
        for server in cloud.servers:
            server.clear_faults()
        final = wait_until(lambda: cloud.slack.message(APPROVAL_CHANNEL, card["ts"]), what="the failed card")
        assert slack.click(ADMINS[1], "Retry", message=final, channel=APPROVAL_CHANNEL).status_code == 200
        retried = wait_until(
            lambda: (r := _store(bot).get_request(request.id)).status == Status.COMPLETED and r,
            what="the retried request to complete",
        )
        after = cloud_state(cloud, name)
        assert after.twins == 0 and after.values_lost == 0
        _assert_completed(cloud, bot, retried, after)


@pytest.mark.slow
def test_approval_channel_not_found_fails_the_request_and_tells_the_requester(
    cloud: FakeCloud, start_bot: Any, totals: dict[str, Totals]
) -> None:
    """With OAUTH_BOT_APPROVAL_CHANNEL naming a channel Slack does not know (channel_not_found
    at card posting), the request is not left pending without a card: it is failed at once
    with the reason, and the requester gets one DM saying it was not filed and that the admins
    must fix OAUTH_BOT_APPROVAL_CHANNEL. Nothing is created in Entra ID."""
    name = "fault-slack-channel-not-found"
    bot, slack = start_bot(oauth_bot_approval_channel="C0NOSUCHCH")
    store = _store(bot)
    assert slack.command(DEVELOPER, "/oauth-app", f"new {name}").status_code == 200
    modal = wait_until(lambda: cloud.slack.current_modal(DEVELOPER), what="the modal")
    submitted = slack.submit(DEVELOPER, modal, {"Justification": "Reads invoices through Graph."})
    assert submitted.status_code == 200
    dm = wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "could not be filed" in m.get("text", "")],
        what="the requester's DM",
    )
    requests = store.requests_by(DEVELOPER, statuses=list(Status))
    mine = [r for r in requests if r.display_name == name]
    state = cloud_state(cloud, name)
    delivered = sum(
        1
        for c in cloud.slack.api_calls("chat.postMessage")
        if c["args"].get("channel") == "C0NOSUCHCH" and c["error"] == "channel_not_found"
    )
    status = mine[0].status if len(mine) == 1 else None
    record(totals["fault matrix"], state, status=status, faults=delivered, clean=status == Status.FAILED)

    assert delivered == 1
    assert len(mine) == 1, mine
    assert mine[0].status == Status.FAILED and mine[0].card_ts is None
    assert "OAUTH_BOT_APPROVAL_CHANNEL" in (mine[0].error or "")
    assert not [r for r in store.requests_in([Status.PENDING]) if r.card_ts is None], "pending without a card"
    assert len(dm) == 1
    assert "channel_not_found" in dm[0]["text"] and "OAUTH_BOT_APPROVAL_CHANNEL" in dm[0]["text"]
    assert state.apps == []


@pytest.mark.slow
def test_views_open_failing_tells_the_user_to_run_the_command_again(
    cloud: FakeCloud, start_bot: Any, totals: dict[str, Totals]
) -> None:
    """When views.open fails (the trigger expired), the user gets an ephemeral answer saying so
    and to run the command again; no request is filed and no modal is open."""
    bot, slack = start_bot()
    ledger = Ledger(cloud, _store(bot))
    ledger.inject(
        cloud.slack, "*", r"^/api/views\.open$", status=200, body={"ok": False, "error": "expired_trigger_id"}
    )
    assert slack.command(DEVELOPER, "/oauth-app", "new fault-views-open").status_code == 200
    answer = wait_until(lambda: cloud.slack.responses(DEVELOPER), what="an answer to the user")
    record(totals["fault matrix"], None, status=None, faults=ledger.delivered())

    assert ledger.delivered() == 1
    body = answer[-1]["body"]
    assert body.get("response_type") == "ephemeral"
    assert "run the command again" in body["text"] and "expired_trigger_id" in body["text"]
    assert cloud.slack.current_modal(DEVELOPER) is None
    assert _store(bot).requests_by(DEVELOPER, statuses=list(Status)) == []
