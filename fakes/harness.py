"""The whole bot on 127.0.0.1 in this process, for the end-to-end tests, benchmarks and the demo."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp

import handlers
from bot.config import Settings
from bot.runtime import Services, build, warm_up
from bot.slack.app import (
    HttpServer,
    bound_port,
    close_bolt_app,
    connect_socket_mode,
    finish_listeners,
    make_bolt_app,
    start_http,
)


class BackgroundBot:
    """The bot's HTTP side on 127.0.0.1 (a random port), on its own event-loop thread, with
    the routes `serve` would have for these settings (in Socket Mode: health only; the Socket
    Mode connection is opened too with `connect_socket=True`).

    Used by `oauth-bot demo` and by the end-to-end tests; `serve` runs the same pieces.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Any = None,
        start_worker: bool = True,
        start_scheduler: bool = False,
        connect_socket: bool = False,
    ) -> None:
        self.settings = settings
        self._connect_socket = connect_socket  # in Socket Mode: also open the connection, as serve does
        self._socket: Any = None
        self._clock = clock
        self._start_worker = start_worker
        self._start_scheduler = start_scheduler
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.services: Services | None = None
        self._bolt: AsyncApp | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BackgroundBot:
        self._thread = threading.Thread(target=self._loop.run_forever, name="bot-loop", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=60)
        return self

    async def _start(self) -> None:
        services = build(self.settings, clock=self._clock)
        self.services = services
        self._bolt = make_bolt_app(services, handlers.register)
        server = HttpServer(services, self._bolt)
        self._runner = await start_http(server, "127.0.0.1", 0)
        self.port = bound_port(self._runner)
        await asyncio.to_thread(warm_up, services)
        if self._start_worker:
            services.worker.start()
        if self._start_scheduler:
            services.scheduler.start()
        if self._connect_socket:
            self._socket = await connect_socket_mode(self._bolt, self.settings)
            server.socket = self._socket
        server.ready = True

    def stop(self) -> None:
        async def _stop() -> None:
            if self._socket is not None:
                await self._socket.close_async()
            if self._runner is not None:
                await self._runner.cleanup()
            await finish_listeners()
            if self._bolt is not None:
                await close_bolt_app(self._bolt)

        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(timeout=30)
        if self.services is not None:
            self.services.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> BackgroundBot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
