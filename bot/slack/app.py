"""`oauth-bot serve`: Bolt's AsyncApp behind aiohttp (HTTP mode) or Socket Mode.

HTTP mode serves POST /slack/events (commands, interactivity, events), always with Slack's
signature and 5-minute timestamp checked, GET /healthz (200 once the bot is ready) and
GET /metrics (Prometheus text format). Socket Mode (`Settings.socket_mode`) serves GET /healthz
and GET /metrics only: Slack sends nothing over HTTP to an app in Socket Mode, so an HTTP route
for Slack payloads would accept only forgeries.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.config import Settings
from bot.core.errors import ConfigError
from bot.engine.runner import BoundaryHook, no_hook
from bot.runtime import Services, build, warm_up
from bot.slack.client import async_web_client

log = logging.getLogger(__name__)


Listeners = Callable[[AsyncApp, Services], None]  # handlers.register: the thin listener layer


class _TokenFromEnvironment(logging.Filter):
    """Drops Bolt's start-up warning that the client's token wins over SLACK_BOT_TOKEN: Bolt reads
    the variable behind our back although the client it is given carries that very token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("slack_bolt.AsyncApp")
    if not any(isinstance(f, _TokenFromEnvironment) for f in logger.filters):
        logger.addFilter(_TokenFromEnvironment())
    return logger


def make_bolt_app(services: Services, listeners: Listeners) -> AsyncApp:
    """Bolt's AsyncApp with the listeners registered. Call it inside the running event loop (its
    Web API client keeps one aiohttp session); `close_bolt_app` closes it."""
    settings = services.settings
    client = async_web_client(settings, services.metrics)
    app = AsyncApp(
        client=client,
        # Request verification stays on in both modes: Bolt skips it for requests that came
        # through the Socket Mode connection (authenticated by the app token) by itself.
        signing_secret=_signing_secret(settings),
        raise_error_for_unhandled_request=False,
        logger=_bolt_logger(),
    )
    listeners(app, services)
    return app


def _signing_secret(settings: Settings) -> str:
    """The secret Bolt checks HTTP requests with. Never empty: an empty HMAC key is one anyone
    can sign with (and Bolt would read SLACK_SIGNING_SECRET behind our back if given None)."""
    configured = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    if configured:
        return configured
    if settings.socket_mode:
        # Nothing arrives over HTTP in Socket Mode; should anything ever reach Bolt that way,
        # it must fail verification rather than pass it.
        return secrets.token_urlsafe(32)
    raise ConfigError("missing configuration: SLACK_SIGNING_SECRET (HTTP mode verifies Slack's requests)")


async def close_bolt_app(app: AsyncApp) -> None:
    session = app.client.session
    if session is not None and not session.closed:
        await session.close()


def settle_memory() -> None:
    """Move everything allocated at start-up out of the garbage collector's way, so that full
    collections stay short and do not stall the event loop while requests are in flight."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)  # fewer young collections per request; each one stays cheap


READINESS_TIMEOUT_SECONDS = 3.0


class HttpServer:
    """The bot's HTTP side. Its routes follow `Settings.socket_mode`: /healthz (liveness: the
    process is up), /readyz (readiness: the database answers and, in Socket Mode, the socket is
    connected) and /metrics always, and POST /slack/events only in HTTP mode."""

    def __init__(self, services: Services, bolt: AsyncApp) -> None:
        self.services = services
        self.bolt = bolt
        self.ready = False
        self.socket: Any = None  # the Socket Mode handler, once connected
        self.web = web.Application()
        if not services.settings.socket_mode:
            self.web.router.add_post("/slack/events", self._slack)
        self.web.router.add_get("/healthz", self._healthz)
        self.web.router.add_get("/readyz", self._readyz)
        self.web.router.add_get("/metrics", self._metrics)

    async def _slack(self, request: web.Request) -> web.Response:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not timestamp.isdigit():
            # Not from Slack; refused here because slack_sdk's verifier raises on a non-number.
            return web.Response(status=401)
        bolt_response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def _healthz(self, _request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        problems = [] if self.ready else ["starting"]
        try:
            await asyncio.wait_for(asyncio.to_thread(self.services.store.ping), READINESS_TIMEOUT_SECONDS)
        except Exception as error:  # any failure to answer means: not ready
            problems.append(f"database: {type(error).__name__}")
        if self.services.settings.socket_mode and not await self._socket_connected():
            problems.append("socket mode: not connected")
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def _socket_connected(self) -> bool:
        client = getattr(self.socket, "client", None)
        return client is not None and bool(await client.is_connected())

    async def _metrics(self, _request: web.Request) -> web.Response:
        # Off the event loop: the secrets-by-expiry gauges are counted in the database.
        body, content_type = await asyncio.to_thread(self.services.metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": content_type})


async def connect_socket_mode(bolt: AsyncApp, settings: Settings) -> Any:
    """In Socket Mode: Bolt's handler, connected with the app-level token; else None."""
    if not (settings.socket_mode and settings.slack_app_token):
        return None
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack in Socket Mode")
    return handler


async def start_http(server: HttpServer, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(server.web, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


async def finish_listeners(timeout: float = 20.0) -> None:
    """Let listeners that already acked finish their work (Bolt runs them as tasks)."""
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server: Any = site._server
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("server is not listening")


async def serve(
    settings: Settings,
    listeners: Listeners,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - a container listens on all
    at_boundary: BoundaryHook = no_hook,
) -> None:
    """Run until SIGTERM/SIGINT."""
    settings.require_for_serve()
    services = build(settings, at_boundary=at_boundary)
    bolt = make_bolt_app(services, listeners)
    server = HttpServer(services, bolt)
    runner = await start_http(server, host, settings.port)
    await asyncio.to_thread(warm_up, services)
    services.worker.start()
    services.scheduler.start()
    settle_memory()
    socket_handler = await connect_socket_mode(bolt, settings)
    server.socket = socket_handler
    server.ready = True
    log.info(
        "oauth-bot ready on port %d (%s)",
        bound_port(runner),
        "Socket Mode; HTTP serves /healthz only" if settings.socket_mode else "HTTP mode",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    server.ready = False
    if socket_handler is not None:
        await socket_handler.close_async()
    await runner.cleanup()
    await finish_listeners()
    await close_bolt_app(bolt)
    await asyncio.to_thread(services.close)
