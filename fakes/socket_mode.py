"""A strict loopback fake of Slack's Socket Mode: the WebSocket end of it.

The app calls `apps.connections.open` on the Web API fake (`FakeSlack`) with its app-level
token (`xapp-…`, as a Bearer token; the bot token gets `not_allowed_token_type`, an unknown
token `invalid_auth`) and gets `wss://127.0.0.1:PORT/link/?ticket=…&app_id=…`: a one-time
ticket for a WebSocket server over TLS with the fakes' CA. On connect the server sends
`hello`; then envelopes

    {"envelope_id", "type": "slash_commands" | "interactive" | "events_api",
     "accepts_response_payload": bool, "payload": {...}}

whose payloads are shaped exactly as over HTTP (a slash command's form fields as a JSON object
of strings, an interaction's JSON, an event callback). Only `events_api` envelopes carry
`retry_attempt` / `retry_reason` (0 and "" the first time), as in slack_sdk's own fixtures
and its `SocketModeRequest` ("# events_api"). The app acks each with
`{"envelope_id": …, "payload": {...}?}`; the payload counts only where the envelope
`accepts_response_payload` (a command's or a view_submission's answer).

Not acked within `ack_timeout` (3 s, Slack's limit): an `events_api` envelope is delivered
again, same envelope_id and event, with `retry_attempt` + 1 and `retry_reason: "timeout"`, up
to `max_retries` times; a slash command or interaction is not retried (the person sees an
error), its envelope `expired`. Envelopes sent while no connection is open wait and go out on
the next connection, after its `hello`. With several connections, each envelope goes to one of
them (round robin). A ticket is good for one connection: a used or unknown one gets HTTP 401
and no upgrade (what Slack answers then is not documented; the fake refuses).

Tests drive it from their own thread: `send` an envelope, `wait_for_ack` / `wait_for_outcome`,
`disconnect(reason)` (Slack's `disconnect` message; the connection then gets nothing new) and
`drop()` (the TCP connection closed abruptly, no close frame). The production clients
(slack_sdk's `SocketModeClient`s, Bolt's handlers) talk to it unmodified: point their Web API
client at the fake (`base_url`) and make it trust the CA (`ssl=`, or SSL_CERT_FILE). The
aiohttp client (Bolt's AsyncSocketModeHandler) connects on any port; slack_sdk's builtin sync
client speaks TLS only to port 443 (plain TCP elsewhere, "only for library testing"), so for it
start the fake with `host="127.x.y.z", port=443` (binding 443 needs root).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from fakes.slack import JSON, FakeSlack
from fakes.tls import TestCA

APP_TOKEN = "xapp-1-A0FAKEAPP-1-fake-socket-mode-token"
ACK_TIMEOUT = 3.0  # seconds Slack waits for an envelope's ack
MAX_RETRIES = 3  # redeliveries of an unacked events_api envelope
ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
RETRIED_TYPES = frozenset({"events_api"})
# Interactions whose answer travels in the ack (response_action; options for a select).
ANSWERED_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})
DISCONNECT_REASONS = frozenset({"warning", "refresh_requested", "link_disabled", "too_many_websockets"})


@dataclass
class Ack:
    """One message the app sent back for an envelope."""

    envelope_id: str
    payload: JSON | None  # the ack's "payload" (None when it had none)
    connection: int
    at: float
    late: bool  # after Slack had stopped waiting (expired)
    counted: bool  # its payload is the answer (first in-time ack, accepts_response_payload)


@dataclass
class Delivery:
    attempt: int
    connection: int
    at: float
    message: JSON  # the envelope as sent


@dataclass
class Envelope:
    """An envelope and what became of it: queued → in_flight → acked, or expired."""

    envelope_id: str
    type: str
    payload: JSON
    accepts_response_payload: bool
    created: float
    state: str = "queued"
    deliveries: list[Delivery] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return self.state == "acked"

    @property
    def ack(self) -> Ack | None:
        """The first ack that came in time, if any."""
        return next((a for a in self.acks if not a.late), None)

    @property
    def answer(self) -> JSON | None:
        """The payload the app answered with, where the envelope accepts one."""
        ack = self.ack
        return ack.payload if ack is not None and ack.counted else None

    @property
    def seconds(self) -> float | None:
        """From the first delivery to the ack."""
        ack = self.ack
        if ack is None or not self.deliveries:
            return None
        return ack.at - self.deliveries[0].at


@dataclass
class Connection:
    """One WebSocket connection as the fake saw it."""

    id: int
    ticket: str
    opened: float
    closed: float | None = None
    how: str | None = None  # "client" (close frame), "server" (the fake closed it), "dropped", "lost"
    draining: bool = False  # sent `disconnect`: gets no new envelopes
    disconnects: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # text frames from the app
    ws: web.WebSocketResponse | None = field(default=None, repr=False, compare=False)
    transport: asyncio.Transport | None = field(default=None, repr=False, compare=False)
    outbox: asyncio.Queue[str] | None = field(default=None, repr=False, compare=False)

    @property
    def is_open(self) -> bool:
        return self.closed is None


class FakeSocketMode:
    """Slack's Socket Mode server for one app, on 127.0.0.1 over TLS, with a test's controls."""

    name = "slack-socket-mode"

    def __init__(
        self,
        ca: TestCA,
        slack: FakeSlack,
        *,
        app_token: str = APP_TOKEN,
        app_id: str | None = None,
        ack_timeout: float = ACK_TIMEOUT,
        max_retries: int = MAX_RETRIES,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.ca = ca
        self.host = host
        self.slack = slack
        self.app_token = app_token
        self.app_id = app_id or slack.app_id
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self._cond = threading.Condition(threading.RLock())
        self._tickets: dict[str, float] = {}  # unused ticket -> issued at
        self._urls_issued = 0
        self._refused: list[str] = []  # connection attempts refused (bad or used ticket)
        self._protocol_errors: list[str] = []  # messages from the app that are not acks
        self._connections: dict[int, Connection] = {}
        self._envelopes: dict[str, Envelope] = {}
        self._order: list[str] = []  # envelope ids, oldest first
        self._ids = itertools.count(1)
        self._next_connection = 0  # round robin
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._bind_port = port  # 0: any free port
        slack.register_app_token(app_token, self.issue_url)

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> FakeSocketMode:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/link/", self._link)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        extra = () if self.host == "127.0.0.1" else (self.host,)
        site = web.TCPSite(runner, self.host, self._bind_port, ssl_context=self.ca.server_context(*extra))
        await site.start()
        self._runner = runner
        server: Any = site._server
        self._port = int(server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close every connection (going away) and the server."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the Socket Mode fake is not started")
        return self._port

    def issue_url(self) -> str:
        """What apps.connections.open answers: a wss:// URL with a fresh one-time ticket."""
        ticket = secrets.token_urlsafe(18)
        with self._cond:
            self._tickets[ticket] = time.monotonic()
            self._urls_issued += 1
        return f"wss://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # --- what a test sends ----------------------------------------------------------------
    def send(self, kind: str, payload: JSON, *, accepts_response_payload: bool | None = None) -> str:
        """Queue an envelope for the app (delivered at once if a connection is open); returns
        its envelope_id. `accepts_response_payload` defaults to Slack's: true for slash
        commands, view_submission and block_suggestion, false otherwise."""
        if kind not in ENVELOPE_TYPES:
            raise ValueError(f"envelope type must be one of {sorted(ENVELOPE_TYPES)}, not {kind!r}")
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or (
                kind == "interactive" and payload.get("type") in ANSWERED_INTERACTIONS
            )
        envelope = Envelope(
            envelope_id=str(uuid.uuid4()),
            type=kind,
            payload=copy.deepcopy(payload),
            accepts_response_payload=accepts_response_payload,
            created=time.monotonic(),
        )
        with self._cond:
            self._envelopes[envelope.envelope_id] = envelope
            self._order.append(envelope.envelope_id)
        self._call(self._pump)
        return envelope.envelope_id

    def disconnect(self, reason: str = "refresh_requested", *, connection: int | None = None) -> list[int]:
        """Send Slack's `disconnect` message on one open connection (default: all); they get
        no new envelopes from then on. Returns the connection ids it went to."""
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"reason must be one of {sorted(DISCONNECT_REASONS)}")
        message = json.dumps(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": f"applink-fake-{self.port}"}}
        )
        with self._cond:
            targets = self._targets(connection)
            for conn in targets:
                conn.draining = True
                conn.disconnects.append(reason)
                assert conn.outbox is not None
                self._call(conn.outbox.put_nowait, message)
        return [conn.id for conn in targets]

    def drop(self, *, connection: int | None = None) -> list[int]:
        """Close one open connection (default: all) abruptly: the TCP connection goes, with no
        WebSocket close frame and no TLS close_notify. Returns the connection ids dropped."""
        targets = self._targets(connection)
        with self._cond:
            for conn in targets:
                conn.how = "dropped"
        for conn in targets:
            if conn.transport is not None:
                self._call(conn.transport.abort)
        self.wait_until(lambda: all(not conn.is_open for conn in targets), what="the dropped connections")
        return [conn.id for conn in targets]

    def close(self, *, connection: int | None = None, code: int = 1001) -> list[int]:
        """Close one open connection (default: all) with a WebSocket close frame."""
        targets = self._targets(connection)
        with self._cond:
            for conn in targets:
                conn.how = "server"
        loop = self._running_loop()
        for conn in targets:
            if conn.ws is not None:
                asyncio.run_coroutine_threadsafe(conn.ws.close(code=code), loop).result(timeout=10)
        self.wait_until(lambda: all(not conn.is_open for conn in targets), what="the closed connections")
        return [conn.id for conn in targets]

    # --- what a test reads ----------------------------------------------------------------
    @property
    def urls_issued(self) -> int:
        """How many times apps.connections.open handed out a URL."""
        with self._cond:
            return self._urls_issued

    def refused(self) -> list[str]:
        with self._cond:
            return list(self._refused)

    def protocol_errors(self) -> list[str]:
        """Messages from the app that Slack would not take as acks (should stay empty)."""
        with self._cond:
            return list(self._protocol_errors)

    def connections(self) -> list[Connection]:
        """Every connection so far, oldest first (copies, without the live socket)."""
        with self._cond:
            return [self._copy_connection(c) for c in self._connections.values()]

    def open_connections(self) -> list[int]:
        with self._cond:
            return [c.id for c in self._connections.values() if c.is_open]

    def envelope(self, envelope_id: str) -> Envelope:
        with self._cond:
            return copy.deepcopy(self._envelopes[envelope_id])

    def envelopes(self) -> list[Envelope]:
        with self._cond:
            return [copy.deepcopy(self._envelopes[e]) for e in self._order]

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "it") -> None:
        """Wait until `predicate()` (read under the fake's lock) holds; TimeoutError after
        `timeout` seconds, with the connections and envelopes in the message."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout=timeout):
                raise TimeoutError(f"{what} did not happen within {timeout} s; {self._summary()}")

    def wait_for_connection(self, opened: int = 1, *, timeout: float = 10.0) -> int:
        """Wait until `opened` connections have been opened in all and one of them is open (its
        `hello` goes out first); returns the newest open connection's id."""

        def ready() -> bool:
            return len(self._connections) >= opened and any(c.is_open for c in self._connections.values())

        self.wait_until(ready, timeout=timeout, what=f"connection #{opened}")
        with self._cond:
            return max(c.id for c in self._connections.values() if c.is_open)

    def wait_for_ack(self, envelope_id: str, *, timeout: float = 10.0) -> JSON | None:
        """Wait for the app's first ack of an envelope (in time or not); returns the ack's
        payload (None if it had none). TimeoutError if none came within `timeout`."""
        self.wait_until(lambda: bool(self._envelopes[envelope_id].acks), timeout=timeout, what="the ack")
        with self._cond:
            return copy.deepcopy(self._envelopes[envelope_id].acks[0].payload)

    def wait_for_outcome(self, envelope_id: str, *, timeout: float = 30.0) -> Envelope:
        """Wait until an envelope is acked or expired (Slack gave up on it); returns it."""

        def settled() -> bool:
            return self._envelopes[envelope_id].state in ("acked", "expired")

        self.wait_until(settled, timeout=timeout, what=f"the outcome of envelope {envelope_id}")
        return self.envelope(envelope_id)

    # --- the server (on the fake's event loop) ---------------------------------------------
    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        with self._cond:
            fresh = self._tickets.pop(ticket, None) is not None  # one-time
            if not fresh:
                self._refused.append(ticket)
        if not fresh:
            return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        with self._cond:
            conn = Connection(
                id=len(self._connections) + 1,
                ticket=ticket,
                opened=time.monotonic(),
                ws=ws,
                transport=request.transport,
                outbox=asyncio.Queue(),
            )
            self._connections[conn.id] = conn
            hello = {
                "type": "hello",
                "num_connections": sum(1 for c in self._connections.values() if c.is_open),
                "debug_info": {
                    "host": f"applink-fake-{self.port}",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
            assert conn.outbox is not None
            conn.outbox.put_nowait(json.dumps(hello))
            self._cond.notify_all()
        writer = asyncio.ensure_future(self._write(conn, ws))
        self._pump()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_text(conn, str(message.data))
                else:
                    with self._cond:
                        self._protocol_errors.append(f"connection {conn.id}: a {message.type.name} frame")
        finally:
            writer.cancel()
            with self._cond:
                conn.closed = time.monotonic()
                if conn.how is None:
                    conn.how = "client" if ws.close_code in (1000, 1001) else f"lost ({ws.close_code})"
                conn.ws = conn.transport = conn.outbox = None
                self._cond.notify_all()
        return ws

    async def _write(self, conn: Connection, ws: web.WebSocketResponse) -> None:
        assert conn.outbox is not None
        outbox = conn.outbox
        while True:
            text = await outbox.get()
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return  # gone: what was in flight waits for its ack deadline

    def _pump(self) -> None:
        """Hand queued envelopes to open connections (on the loop)."""
        with self._cond:
            for envelope_id in self._order:
                envelope = self._envelopes[envelope_id]
                if envelope.state != "queued":
                    continue
                conn = self._pick()
                if conn is None:
                    return
                self._deliver(conn, envelope)

    def _pick(self) -> Connection | None:
        ready = [
            c for c in self._connections.values() if c.is_open and not c.draining and c.outbox is not None
        ]
        if not ready:
            return None
        self._next_connection += 1
        return ready[self._next_connection % len(ready)]

    def _deliver(self, conn: Connection, envelope: Envelope) -> None:
        attempt = len(envelope.deliveries)
        message: JSON = {
            "envelope_id": envelope.envelope_id,
            "payload": copy.deepcopy(envelope.payload),
            "type": envelope.type,
            "accepts_response_payload": envelope.accepts_response_payload,
        }
        if envelope.type in RETRIED_TYPES:
            message["retry_attempt"] = attempt
            message["retry_reason"] = "timeout" if attempt else ""
        envelope.deliveries.append(Delivery(attempt, conn.id, time.monotonic(), message))
        envelope.state = "in_flight"
        assert conn.outbox is not None
        conn.outbox.put_nowait(json.dumps(message))
        assert self._loop is not None
        self._loop.call_later(self.ack_timeout, self._deadline, envelope.envelope_id, attempt)
        self._cond.notify_all()

    def _deadline(self, envelope_id: str, attempt: int) -> None:
        with self._cond:
            envelope = self._envelopes[envelope_id]
            if envelope.state != "in_flight" or len(envelope.deliveries) != attempt + 1:
                return
            if envelope.type in RETRIED_TYPES and attempt < self.max_retries:
                envelope.state = "queued"
            else:
                envelope.state = "expired"
            self._cond.notify_all()
        self._pump()

    def _on_text(self, conn: Connection, text: str) -> None:
        with self._cond:
            conn.received.append(text)
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
            envelope = self._envelopes.get(envelope_id) if isinstance(envelope_id, str) else None
            if envelope is None or not envelope.deliveries:
                self._protocol_errors.append(
                    f"connection {conn.id}: not an ack of a sent envelope: {text[:200]}"
                )
                return
            assert isinstance(message, dict) and isinstance(envelope_id, str)
            payload = message.get("payload")
            if payload is not None and not isinstance(payload, dict):
                self._protocol_errors.append(f"connection {conn.id}: an ack whose payload is not an object")
                payload = None
            late = envelope.state == "expired"
            first = not late and envelope.ack is None
            envelope.acks.append(
                Ack(
                    envelope_id=envelope_id,
                    payload=payload,
                    connection=conn.id,
                    at=time.monotonic(),
                    late=late,
                    counted=first and envelope.accepts_response_payload,
                )
            )
            if not late:
                envelope.state = "acked"
            self._cond.notify_all()

    # --- helpers --------------------------------------------------------------------------
    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the Socket Mode fake is not started")
        return self._loop

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run `callback(*args)` on the fake's loop (from any thread)."""
        loop = self._running_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    def _targets(self, connection: int | None) -> list[Connection]:
        with self._cond:
            if connection is None:
                targets = [c for c in self._connections.values() if c.is_open]
            else:
                found = self._connections.get(connection)
                targets = [found] if found is not None and found.is_open else []
            if not targets:
                raise LookupError(f"no open connection{'' if connection is None else f' {connection}'}")
            return targets

    @staticmethod
    def _copy_connection(conn: Connection) -> Connection:
        return Connection(
            id=conn.id,
            ticket=conn.ticket,
            opened=conn.opened,
            closed=conn.closed,
            how=conn.how,
            draining=conn.draining,
            disconnects=list(conn.disconnects),
            received=list(conn.received),
        )

    def _summary(self) -> str:
        connections = ", ".join(
            f"#{c.id} {'open' if c.is_open else f'closed ({c.how})'}" for c in self._connections.values()
        )
        envelopes = ", ".join(
            f"{e.type} {e.envelope_id[:8]} {e.state} ({len(e.deliveries)} deliveries, {len(e.acks)} acks)"
            for e in (self._envelopes[i] for i in self._order[-10:])
        )
        return f"connections: [{connections or 'none'}]; envelopes: [{envelopes or 'none'}]"
