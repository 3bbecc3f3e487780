"""The HTTPS server every fake is built on: routing, call recording, fault injection."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.tls import TestCA


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # bytes, str, or anything JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body).encode(), headers


@dataclass
class Fault:
    """A scripted answer for the next `times` requests that match method and path."""

    method: str
    path: re.Pattern[str]
    response: Response | None  # None: hold the request for `delay` then close, no answer
    times: int
    delay: float = 0.0

    def matches(self, request: Request) -> bool:
        return self.method in ("*", request.method) and bool(self.path.search(request.path))


Route = Callable[[Request, "re.Match[str]"], Response]


class FakeServer:
    """A threaded HTTPS server on 127.0.0.1 with a random port.

    Subclasses register routes with `self.route(method, regex, handler)`. Every request is
    recorded in `self.calls`; `inject` scripts faults and `latency` slows answers down.
    """

    name = "fake"

    def __init__(self, ca: TestCA) -> None:
        self.ca = ca
        self.calls: list[Request] = []
        self.lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern[str], Route]] = []
        self._faults: list[Fault] = []
        self._latency: list[tuple[str, re.Pattern[str], float]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> FakeServer:
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        httpd.socket = self.ca.server_context().wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # --- configuration ----------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Route) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def inject(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 503,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        no_answer: bool = False,
    ) -> None:
        """Answer the next `times` matching requests with `status` (or no answer at all)."""
        response = None if no_answer else Response(status, body, dict(headers or {}))
        with self.lock:
            self._faults.append(Fault(method, re.compile(path_pattern), response, times, delay))

    def latency(self, seconds: float, method: str = "*", path_pattern: str = "") -> None:
        """Delay every matching answer by `seconds` (a slow service)."""
        with self.lock:
            self._latency.append((method, re.compile(path_pattern), seconds))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._latency.clear()

    def calls_to(self, method: str, path_pattern: str) -> list[Request]:
        pattern = re.compile(path_pattern)
        with self.lock:
            return [c for c in self.calls if c.method == method and pattern.search(c.path)]

    # --- dispatch ---------------------------------------------------------------------
    def dispatch(self, request: Request) -> tuple[Response | None, float]:
        with self.lock:
            self.calls.append(request)
            delay = sum(
                seconds
                for method, pattern, seconds in self._latency
                if method in ("*", request.method) and pattern.search(request.path)
            )
            for fault in self._faults:
                if fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    return fault.response, delay + fault.delay
        for method, pattern, handler in self._routes:
            if method != request.method:
                continue
            match = pattern.match(request.path)
            if match:
                return handler(request, match), delay
        return self.not_found(request), delay

    def not_found(self, request: Request) -> Response:
        message = f"{self.name}: no route for {request.method} {request.path}"
        return Response(404, {"error": message})


def _make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read fake.calls instead

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
            )
            response, delay = fake.dispatch(request)
            if delay:
                time.sleep(delay)
            if response is None:
                self.close_connection = True
                return
            payload, headers = response.encoded()
            self.send_response(response.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler
