"""The Socket Mode fake with slack_sdk's own Socket Mode clients, unmodified.

The clients are pointed at the fakes only the way an operator points them anywhere: their Web
API client's `base_url` (the Web API fake, which answers apps.connections.open) and the CA it
trusts (`ssl=`). Nothing is patched. Waits are on conditions, with timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient as AsyncSocketModeClient
from slack_sdk.socket_mode.builtin import SocketModeClient as BuiltinSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack import FakeSlack
from fakes.socket_mode import APP_TOKEN, FakeSocketMode
from fakes.socket_mode_driver import SocketModeDriver
from fakes.tls import TestCA

ALICE, BOB = "U0ALICE01", "U0BOB0002"
# The SDK's default is 5 s (Bolt's handler: 10 s): how often the client checks its connection
# and reconnects a dead one. A constructor argument, not a change to the client.
PING_INTERVAL = 2.0
Policy = Callable[[SocketModeRequest], "tuple[bool, dict[str, Any] | None]"]


def ack_all(request: SocketModeRequest) -> tuple[bool, dict[str, Any] | None]:
    return True, None


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def slack(ca: TestCA) -> Iterator[FakeSlack]:
    fake = FakeSlack(ca)
    fake.add_user(ALICE, "alice", email="alice@example.com")
    fake.add_user(BOB, "bob", email="bob@example.com")
    with fake:
        yield fake


@pytest.fixture
def socket_mode(ca: TestCA, slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode(ca, slack) as fake:
        yield fake


class AsyncClient:
    """slack_sdk's aiohttp SocketModeClient — the one Bolt's AsyncSocketModeHandler runs — on
    its own event loop thread. It records every message and request it gets and acks each
    request as `policy` says: (ack?, payload)."""

    def __init__(self, slack: FakeSlack, ca: TestCA, *, token: str = APP_TOKEN, policy: Policy = ack_all):
        self.slack, self.ca, self.token, self.policy = slack, ca, token, policy
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.messages: list[dict[str, Any]] = []  # as the client's message listeners see them
        self.frames: list[dict[str, Any]] = []  # every text frame (disconnect included)
        self.requests: list[SocketModeRequest] = []
        self.lock = threading.Lock()
        self.client: AsyncSocketModeClient | None = None

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> AsyncClient:
        self.thread.start()

        async def connect() -> None:
            web = AsyncWebClient(base_url=f"{self.slack.url}/api/", ssl=self.ca.client_context())
            client = AsyncSocketModeClient(
                app_token=self.token,
                web_client=web,
                ping_interval=PING_INTERVAL,
                on_message_listeners=[self._on_frame],
            )
            client.message_listeners.append(self._on_message)
            client.socket_mode_request_listeners.append(self._on_request)
            self.client = client
            await client.connect()

        self.run(connect())
        return self

    async def _on_frame(self, frame: aiohttp.WSMessage) -> None:
        with self.lock:
            self.frames.append(json.loads(frame.data))

    async def _on_message(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        with self.lock:
            self.messages.append(message)

    async def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        with self.lock:
            self.requests.append(request)
        ack, payload = self.policy(request)
        if ack:
            await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload))

    def received(self, envelope_id: str) -> list[SocketModeRequest]:
        with self.lock:
            return [r for r in self.requests if r.envelope_id == envelope_id]

    def stop(self) -> None:
        if self.client is not None:
            self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def connect(slack: FakeSlack, ca: TestCA) -> Iterator[Callable[..., AsyncClient]]:
    started: list[AsyncClient] = []

    def start(**options: Any) -> AsyncClient:
        client = AsyncClient(slack, ca, **options).start()
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


def eventually(check: Callable[[], bool], *, timeout: float = 10.0, what: str = "it") -> None:
    """Poll `check` until it holds: for state outside the Socket Mode fake (what a client
    received, what the Web API fake holds); the fake's own state is waited on with its
    condition (`wait_until`)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def command_payload(driver: SocketModeDriver, user: str = ALICE, text: str = "new payroll") -> dict[str, str]:
    return driver.command_form(user, "/oauth-app", text)


def bot_web(slack: FakeSlack, ca: TestCA) -> WebClient:
    return WebClient(token=slack.bot_token, base_url=f"{slack.url}/api/", ssl=ca.client_context())


def post_with_button(slack: FakeSlack, ca: TestCA, user: str, text: str) -> dict[str, Any]:
    """A DM from the bot with one button; returns {channel, ts}."""
    button = {"type": "button", "action_id": "ok", "text": {"type": "plain_text", "text": text}}
    answer = bot_web(slack, ca).chat_postMessage(
        channel=user, text="approve?", blocks=[{"type": "actions", "elements": [button]}]
    )
    return {"channel": answer["channel"], "ts": answer["ts"]}


# --- connecting ---------------------------------------------------------------------------
def test_hello_comes_first_naming_the_app_and_the_open_connections(
    socket_mode: FakeSocketMode, slack: FakeSlack, connect: Callable[..., AsyncClient]
) -> None:
    """The client gets its URL from apps.connections.open (wss://127.0.0.1:PORT/link/ with a
    ticket and the app id), connects, and the first message is `hello` with num_connections,
    debug_info and connection_info.app_id, as Slack sends it."""
    client = connect()
    socket_mode.wait_for_connection(1)
    eventually(lambda: bool(client.messages), what="hello")
    hello = client.messages[0]
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": slack.app_id}
    assert set(hello["debug_info"]) >= {"host", "build_number", "approximate_connection_time"}
    (opened,) = slack.api_calls("apps.connections.open")
    assert opened["ok"] and opened["http_method"] == "POST"
    assert socket_mode.urls_issued == 1
    url = urlsplit(str(client.client.wss_uri) if client.client else "")
    assert (url.scheme, url.hostname, url.port, url.path) == ("wss", "127.0.0.1", socket_mode.port, "/link/")
    assert parse_qs(url.query)["ticket"] and parse_qs(url.query)["app_id"] == [slack.app_id]
    assert socket_mode.refused() == [] and socket_mode.protocol_errors() == []


def test_a_ticket_opens_one_connection_only(
    socket_mode: FakeSocketMode, slack: FakeSlack, ca: TestCA
) -> None:
    """A URL from apps.connections.open connects once; the same ticket again is refused (no
    WebSocket upgrade), and a made-up ticket too."""
    url = WebClient(base_url=f"{slack.url}/api/", ssl=ca.client_context()).apps_connections_open(
        app_token=APP_TOKEN
    )["url"]

    async def attempt(target: str) -> str:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(target, ssl=ca.client_context()) as ws:
                    hello = await ws.receive_json(timeout=10)
                    return str(hello["type"])
            except aiohttp.WSServerHandshakeError as error:
                return f"refused {error.status}"

    assert asyncio.run(attempt(url)) == "hello"
    assert asyncio.run(attempt(url)) == "refused 401"
    forged = url.split("ticket=")[0] + "ticket=guessed"
    assert asyncio.run(attempt(forged)) == "refused 401"
    assert len(socket_mode.refused()) == 2


def test_only_the_app_level_token_opens_a_connection(
    socket_mode: FakeSocketMode, slack: FakeSlack, ca: TestCA
) -> None:
    """apps.connections.open takes the app-level token only: the bot token gets
    not_allowed_token_type, an unknown xapp- token invalid_auth, none not_authed (the
    SocketModeClient raises SlackApiError with these). The app token is refused by the bot's
    methods in turn (not_allowed_token_type), which the bot token still reaches."""

    async def open_with(token: str | None) -> str:
        web = AsyncWebClient(base_url=f"{slack.url}/api/", ssl=ca.client_context())
        try:
            if token is None:
                await web.api_call("apps.connections.open", http_verb="POST")
            else:
                client = AsyncSocketModeClient(app_token=token, web_client=web)
                try:
                    await client.issue_new_wss_url()
                finally:
                    await client.close()
        except SlackApiError as error:
            return str(error.response["error"])
        return "ok"

    assert asyncio.run(open_with(slack.bot_token)) == "not_allowed_token_type"
    assert asyncio.run(open_with("xapp-1-A0OTHER-1-not-a-token-of-this-app")) == "invalid_auth"
    assert asyncio.run(open_with(None)) == "not_authed"
    assert asyncio.run(open_with(APP_TOKEN)) == "ok"
    web = WebClient(base_url=f"{slack.url}/api/", ssl=ca.client_context())
    with pytest.raises(SlackApiError) as refused:
        web.chat_postMessage(token=APP_TOKEN, channel=ALICE, text="hi")
    assert refused.value.response["error"] == "not_allowed_token_type"
    assert web.chat_postMessage(token=slack.bot_token, channel=ALICE, text="hi")["ok"]
    assert socket_mode.urls_issued == 1


# --- envelopes and acks -------------------------------------------------------------------
def test_each_envelope_type_arrives_shaped_as_slack_sends_it_and_is_acked(
    socket_mode: FakeSocketMode, slack: FakeSlack, ca: TestCA, connect: Callable[..., AsyncClient]
) -> None:
    """A slash command (its form fields as a JSON object of strings, the same as the HTTP form),
    a block_actions interaction and an event callback each reach the client as a
    SocketModeRequest of its type with the payload as sent; accepts_response_payload is true
    for the command only; only the events_api envelope carries retry_attempt 0 and
    retry_reason "". Each ack is recorded, once, in time."""
    client = connect()
    socket_mode.wait_for_connection(1)
    driver = SocketModeDriver(socket=socket_mode)
    form = command_payload(driver)
    assert parse_qs(urlencode(form)) == {k: [v] for k, v in form.items()}  # the HTTP form, as a dict
    message = post_with_button(slack, ca, ALICE, "OK")
    sent = {
        "slash_commands": form,
        "interactive": driver.click_payload(ALICE, "OK", message=message),
        "events_api": driver.event_callback({"type": "app_home_opened", "user": ALICE, "tab": "home"}),
    }
    ids = {kind: socket_mode.send(kind, payload) for kind, payload in sent.items()}
    for kind, envelope_id in ids.items():
        assert socket_mode.wait_for_ack(envelope_id) is None
        (request,) = client.received(envelope_id)
        assert request.type == kind
        assert request.payload == sent[kind]
        assert request.accepts_response_payload is (kind == "slash_commands")
        envelope = socket_mode.envelope(envelope_id)
        assert envelope.acked and len(envelope.acks) == 1 and len(envelope.deliveries) == 1
        raw = envelope.deliveries[0].message
        if kind == "events_api":
            assert (raw["retry_attempt"], raw["retry_reason"]) == (0, "")
        else:
            assert "retry_attempt" not in raw and "retry_reason" not in raw
    assert socket_mode.protocol_errors() == []


def test_envelopes_are_shared_out_between_open_connections(
    socket_mode: FakeSocketMode, connect: Callable[..., AsyncClient]
) -> None:
    """With two connections open (the second one's hello says num_connections 2), each
    envelope goes to exactly one of them and both get some."""
    first, second = connect(), connect()
    socket_mode.wait_for_connection(2)
    eventually(lambda: bool(first.messages) and bool(second.messages), what="two hellos")
    assert sorted(c.messages[0]["num_connections"] for c in (first, second)) == [1, 2]
    driver = SocketModeDriver(socket=socket_mode)
    ids = [socket_mode.send("events_api", driver.event_callback({"type": "app_mention"})) for _ in range(6)]
    for envelope_id in ids:
        socket_mode.wait_for_ack(envelope_id)
    counts = [sum(len(c.received(i)) for i in ids) for c in (first, second)]
    assert sum(counts) == 6 and min(counts) > 0, counts


def test_the_answer_in_an_ack_counts_only_where_the_envelope_accepts_one(
    socket_mode: FakeSocketMode, slack: FakeSlack, ca: TestCA, connect: Callable[..., AsyncClient]
) -> None:
    """The client acks a view_submission with `response_action: errors`: wait_for_ack returns
    that payload and it is the envelope's answer (accepts_response_payload is true). A payload
    on a block_actions ack is recorded but is no answer (Slack ignores it there)."""
    errors = {"response_action": "errors", "errors": {"name": "taken"}}
    client = connect(policy=lambda request: (True, errors))
    socket_mode.wait_for_connection(1)
    driver = SocketModeDriver(socket=socket_mode)
    trigger = slack.issue_trigger(ALICE)
    view = {
        "type": "modal",
        "callback_id": "new_app",
        "title": {"type": "plain_text", "text": "New app"},
        "submit": {"type": "plain_text", "text": "Request"},
        "blocks": [
            {
                "type": "input",
                "block_id": "name",
                "label": {"type": "plain_text", "text": "App name"},
                "element": {"type": "plain_text_input", "action_id": "v"},
            }
        ],
    }
    bot_web(slack, ca).views_open(trigger_id=trigger, view=view)
    _, submission = driver.submission(ALICE, driver.modal_for(ALICE), {"App name": "payroll"})
    submitted = socket_mode.send("interactive", submission)
    assert socket_mode.wait_for_ack(submitted) == errors
    assert socket_mode.envelope(submitted).answer == errors
    (request,) = client.received(submitted)
    assert request.accepts_response_payload is True
    assert request.payload["view"]["state"]["values"]["name"]["v"]["value"] == "payroll"

    clicked = socket_mode.send(
        "interactive", driver.click_payload(ALICE, "OK", message=post_with_button(slack, ca, ALICE, "OK"))
    )
    assert socket_mode.wait_for_ack(clicked) == errors
    envelope = socket_mode.envelope(clicked)
    assert envelope.acked and not envelope.accepts_response_payload and envelope.answer is None


def test_an_unacked_event_is_redelivered_and_an_unacked_command_expires(
    socket_mode: FakeSocketMode, connect: Callable[..., AsyncClient]
) -> None:
    """Slack waits 3 s for an ack. An events_api envelope never acked is delivered again with
    the same envelope_id and event, retry_attempt 1, 2, 3 and retry_reason "timeout", each at
    least 3 s after the one before, and then given up (expired). One acked on its first retry
    is not delivered again. A slash command is never redelivered: unacked, it expires after 3 s
    (the person sees an error); an ack after that is recorded as late and is no answer."""

    def policy(request: SocketModeRequest) -> tuple[bool, dict[str, Any] | None]:
        if request.type == "events_api":
            return request.payload["event_id"] == "EvSECOND" and request.retry_attempt == 1, None
        return False, None

    client = connect(policy=policy)
    socket_mode.wait_for_connection(1)
    driver = SocketModeDriver(socket=socket_mode)
    never = socket_mode.send("events_api", driver.event_callback({"type": "app_mention"}, event_id="EvNEVER"))
    second = socket_mode.send(
        "events_api", driver.event_callback({"type": "app_mention"}, event_id="EvSECOND")
    )
    command = socket_mode.send("slash_commands", command_payload(driver))

    expired = socket_mode.wait_for_outcome(command, timeout=10)
    assert expired.state == "expired" and len(expired.deliveries) == 1
    assert client.client is not None
    client.run(client.client.send_socket_mode_response(SocketModeResponse(command, {"text": "too late"})))
    assert socket_mode.wait_for_ack(command) == {"text": "too late"}
    late = socket_mode.envelope(command)
    assert late.state == "expired" and late.acks[0].late and late.answer is None

    retried_once = socket_mode.wait_for_outcome(second, timeout=15)
    assert retried_once.acked and len(retried_once.deliveries) == 2
    assert [(r.retry_attempt, r.retry_reason) for r in client.received(second)] == [(0, ""), (1, "timeout")]

    given_up = socket_mode.wait_for_outcome(never, timeout=30)
    assert given_up.state == "expired" and given_up.acks == []
    requests = client.received(never)
    assert [(r.retry_attempt, r.retry_reason) for r in requests] == [
        (0, ""),
        (1, "timeout"),
        (2, "timeout"),
        (3, "timeout"),
    ]
    assert all(r.payload == requests[0].payload and r.payload["event_id"] == "EvNEVER" for r in requests)
    times = [d.at for d in given_up.deliveries]
    assert all(later - earlier >= socket_mode.ack_timeout for earlier, later in itertools.pairwise(times))


# --- connections come and go --------------------------------------------------------------
@pytest.mark.parametrize("reason", ["refresh_requested", "warning", "link_disabled"])
def test_a_disconnect_message_makes_the_client_reconnect_through_apps_connections_open(
    reason: str, socket_mode: FakeSocketMode, slack: FakeSlack, connect: Callable[..., AsyncClient]
) -> None:
    """On Slack's `disconnect` message (whatever the reason: the SDK does not read it) the
    client calls apps.connections.open again, connects with the new one-time URL and closes
    the old connection itself; what is sent afterwards goes to the new connection and is
    acked."""
    client = connect()
    first = socket_mode.wait_for_connection(1)
    assert socket_mode.disconnect(reason) == [first]
    second = socket_mode.wait_for_connection(2)
    socket_mode.wait_until(
        lambda: first not in socket_mode.open_connections(), what="the old connection closing"
    )
    driver = SocketModeDriver(socket=socket_mode)
    envelope_id = socket_mode.send("events_api", driver.event_callback({"type": "app_mention"}))
    socket_mode.wait_for_ack(envelope_id)
    assert socket_mode.envelope(envelope_id).deliveries[0].connection == second
    old, new = socket_mode.connections()
    assert (old.how, old.disconnects, new.is_open) == ("client", [reason], True)
    assert old.ticket != new.ticket
    assert socket_mode.urls_issued == 2 and len(slack.api_calls("apps.connections.open")) == 2
    # The SDK handles `disconnect` itself (its message listeners never see it): read the frame.
    disconnect = next(m for m in client.frames if m.get("type") == "disconnect")
    assert disconnect == {
        "type": "disconnect",
        "reason": reason,
        "debug_info": {"host": disconnect["debug_info"]["host"]},
    }


def test_after_an_abrupt_drop_the_client_reconnects_and_gets_what_was_sent_meanwhile(
    socket_mode: FakeSocketMode, slack: FakeSlack, ca: TestCA, connect: Callable[..., AsyncClient]
) -> None:
    """The fake drops the TCP connection (no close frame). The client notices at its next
    connection check, gets a new URL from apps.connections.open and reconnects. The envelopes
    sent while no connection was open wait, then arrive right after the new connection's
    hello, in order, and are acked."""
    client = connect()
    first = socket_mode.wait_for_connection(1)
    driver = SocketModeDriver(socket=socket_mode)
    # The reconnect takes a second longer than usual, so that the sends below surely happen
    # while no connection is open.
    slack.latency(1.0, "POST", r"^/api/apps\.connections\.open$")
    assert socket_mode.drop() == [first]
    ids = [
        socket_mode.send("slash_commands", command_payload(driver, text="list")),
        socket_mode.send(
            "interactive", driver.click_payload(ALICE, "OK", message=post_with_button(slack, ca, ALICE, "OK"))
        ),
        socket_mode.send("events_api", driver.event_callback({"type": "app_home_opened", "user": ALICE})),
    ]
    assert socket_mode.open_connections() == []
    assert [socket_mode.envelope(i).state for i in ids] == ["queued"] * 3
    second = socket_mode.wait_for_connection(2, timeout=30)
    for envelope_id in ids:
        socket_mode.wait_for_ack(envelope_id)
        assert [d.connection for d in socket_mode.envelope(envelope_id).deliveries] == [second]
    hellos = [i for i, m in enumerate(client.messages) if m.get("type") == "hello"]
    assert len(hellos) == 2
    after = client.messages[hellos[1] + 1 : hellos[1] + 4]
    assert [m["envelope_id"] for m in after] == ids
    assert socket_mode.connections()[0].how == "dropped"
    assert socket_mode.urls_issued == 2


@pytest.fixture
def socket_mode_on_443(ca: TestCA, slack: FakeSlack) -> Iterator[FakeSocketMode]:
    """The fake on port 443 of a random loopback address (all of 127/8 is loopback)."""
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    fake = FakeSocketMode(ca, slack, host=host, port=443)
    try:
        fake.start()
    except PermissionError:
        pytest.skip("binding port 443 needs root (or CAP_NET_BIND_SERVICE)")
    yield fake
    fake.stop()


def test_the_builtin_sync_client_connects_acks_and_reconnects(
    socket_mode_on_443: FakeSocketMode, slack: FakeSlack, ca: TestCA
) -> None:
    """slack_sdk's builtin (sync) SocketModeClient speaks TLS only to port 443: on any other
    port it connects in plain TCP whatever the wss:// URL says ("only for library testing",
    slack_sdk/socket_mode/builtin/internals.py), so here the fake listens on 443. The client
    connects, acks a slash command with its answer, and after an abrupt drop gets a new URL,
    reconnects and receives the envelope sent meanwhile."""
    socket_mode = socket_mode_on_443
    web = WebClient(base_url=f"{slack.url}/api/", ssl=ca.client_context())
    client = BuiltinSocketModeClient(app_token=APP_TOKEN, web_client=web, ping_interval=1)

    def answer(client: Any, request: SocketModeRequest) -> None:
        client.send_socket_mode_response(
            SocketModeResponse(request.envelope_id, {"text": f"got {request.type}"})
        )

    client.socket_mode_request_listeners.append(answer)
    try:
        client.connect()
        first = socket_mode.wait_for_connection(1)
        driver = SocketModeDriver(socket=socket_mode)
        command = driver.command(ALICE, "/oauth-app", "help")
        assert command.answer == {"text": "got slash_commands"}
        assert [e["text"] for e in slack.ephemerals(ALICE)] == ["got slash_commands"]
        socket_mode.drop(connection=first)
        queued = socket_mode.send("events_api", driver.event_callback({"type": "app_mention"}))
        socket_mode.wait_for_connection(2, timeout=30)
        assert socket_mode.wait_for_ack(queued) is not None
        assert socket_mode.urls_issued == 2
    finally:
        client.close()
    assert socket_mode.protocol_errors() == []


def test_fake_cloud_with_socket_mode_gives_an_app_token_that_connects(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FakeCloud(socket_mode=True) runs the Socket Mode fake beside the others and its
    environment adds SLACK_APP_TOKEN, so the bot's settings are in Socket Mode; a
    SocketModeClient configured from that environment alone (SLACK_APP_TOKEN, SLACK_API_URL,
    SSL_CERT_FILE) connects and gets its hello."""
    from fakes.cloud import FakeCloud

    with FakeCloud(tmp_path, socket_mode=True) as cloud:
        assert cloud.socket_mode is not None
        environment = cloud.environment(f"sqlite:///{tmp_path / 'bot.db'}")
        assert environment["SLACK_APP_TOKEN"] == APP_TOKEN
        assert cloud.settings(f"sqlite:///{tmp_path / 'bot.db'}").socket_mode
        monkeypatch.setenv("SSL_CERT_FILE", environment["SSL_CERT_FILE"])

        async def hello() -> str:
            web = AsyncWebClient(base_url=environment["SLACK_API_URL"], ssl=ssl.create_default_context())
            client = AsyncSocketModeClient(app_token=environment["SLACK_APP_TOKEN"], web_client=web)
            greeted = asyncio.Event()

            async def listen(client: Any, message: dict[str, Any], raw: str | None) -> None:
                greeted.set()

            client.message_listeners.append(listen)
            try:
                await client.connect()
                await asyncio.wait_for(greeted.wait(), 10)
                return str(client.wss_uri)
            finally:
                await client.close()

        assert asyncio.run(hello()).startswith(f"wss://127.0.0.1:{cloud.socket_mode.port}/link/")


NAME_MODAL = {
    "type": "modal",
    "callback_id": "new_app",
    "title": {"type": "plain_text", "text": "New app"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [
        {
            "type": "input",
            "block_id": "name",
            "label": {"type": "plain_text", "text": "App name"},
            "element": {"type": "plain_text_input", "action_id": "v"},
        }
    ],
}


def test_the_driver_plays_a_person_against_a_bolt_app_in_socket_mode(
    socket_mode: FakeSocketMode, slack: FakeSlack, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end with a slack-bolt AsyncApp behind AsyncSocketModeHandler (what `serve` runs in
    Socket Mode): `/oauth-app help` is answered in the ack and shown to the person; `/oauth-app`
    opens a modal; a submission the app rejects gets `response_action: errors` back in its ack
    and the modal stays open; a good one closes it and the app DMs a button; the click is acked
    and the app replaces the message through its response_url."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp

    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))  # for response_url calls
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> AsyncSocketModeHandler:
        web = AsyncWebClient(token=slack.bot_token, base_url=f"{slack.url}/api/", ssl=ca.client_context())
        bolt = AsyncApp(client=web, signing_secret="unused-in-socket-mode")

        @bolt.command("/oauth-app")
        async def command(ack: Any, body: Any, client: Any) -> None:
            if body["text"] == "help":
                await ack("usage: /oauth-app new")
                return
            await ack()
            await client.views_open(trigger_id=body["trigger_id"], view=NAME_MODAL)

        @bolt.view("new_app")
        async def submitted(ack: Any, body: Any, view: Any, client: Any) -> None:
            name = view["state"]["values"]["name"]["v"]["value"]
            if not name.islower():
                await ack(response_action="errors", errors={"name": "lower case only"})
                return
            await ack()
            button = {"type": "button", "action_id": "ok", "text": {"type": "plain_text", "text": "OK"}}
            await client.chat_postMessage(
                channel=body["user"]["id"],
                text=f"{name} requested",
                blocks=[{"type": "actions", "elements": [button]}],
            )

        @bolt.action("ok")
        async def clicked(ack: Any, respond: Any) -> None:
            await ack()
            await respond(replace_original=True, text="acknowledged")

        handler = AsyncSocketModeHandler(bolt, APP_TOKEN)
        await handler.connect_async()
        return handler

    handler = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        socket_mode.wait_for_connection(1)
        driver = SocketModeDriver(socket=socket_mode)
        helped = driver.command(ALICE, "/oauth-app", "help")
        assert helped.acked and helped.answer == {"text": "usage: /oauth-app new"}
        assert [e["text"] for e in slack.ephemerals(ALICE)] == ["usage: /oauth-app new"]

        assert driver.command(ALICE, "/oauth-app").acked
        eventually(lambda: slack.current_modal(ALICE) is not None, what="the modal")
        rejected = driver.submit(ALICE, driver.modal_for(ALICE), {"App name": "Payroll"})
        assert rejected.answer == {"response_action": "errors", "errors": {"name": "lower case only"}}
        assert socket_mode.wait_for_ack(rejected.envelope_id) == rejected.answer
        assert slack.current_modal(ALICE) is not None

        accepted = driver.submit(ALICE, driver.modal_for(ALICE), {"App name": "payroll"})
        assert accepted.acked and accepted.answer is None
        assert slack.current_modal(ALICE) is None
        eventually(
            lambda: [m["text"] for m in slack.dm_messages(ALICE)] == ["payroll requested"], what="the DM"
        )

        assert driver.click(ALICE, "OK").acked
        eventually(lambda: slack.dm_messages(ALICE)[0]["text"] == "acknowledged", what="the replaced DM")
        assert socket_mode.protocol_errors() == []
    finally:

        async def stop() -> None:
            await handler.close_async()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=10)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
