"""The baseline for benchmarks/ack_latency.py: a bare Bolt app that only acks `/oauth-app` and
opens a one-input modal with views.open. Run as its own process, on 127.0.0.1:

    python benchmarks/bare_app.py --mode async --port 3100   # AsyncApp, Bolt's aiohttp server
    python benchmarks/bare_app.py --mode sync --port 3101    # App, Bolt's built-in http.server

Configured like oauth-bot: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL and the CA in
SSL_CERT_FILE. `sync` uses Bolt's own development server (http.server.HTTPServer, one request
at a time; uvicorn/Starlette are not installed here), bound to 127.0.0.1 instead of 0.0.0.0.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
from http.server import HTTPServer
from typing import Any

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "bare_new_app",
    "title": {"type": "plain_text", "text": "New app registration"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [
        {
            "type": "input",
            "block_id": "name",
            "label": {"type": "plain_text", "text": "Name"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}


def _modal(text: str) -> dict[str, Any]:
    name = text.strip().partition(" ")[2].strip()
    view = {**MODAL, "blocks": [dict(MODAL["blocks"][0], element=dict(MODAL["blocks"][0]["element"]))]}
    if name:
        view["blocks"][0]["element"]["initial_value"] = name[:3000]
    return view


def run_async(port: int) -> None:
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"],
        base_url=os.environ["SLACK_API_URL"],
        ssl=ssl.create_default_context(),  # SSL_CERT_FILE: the fakes' CA
    )
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/oauth-app")
    async def oauth_app(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=command["trigger_id"], view=_modal(command.get("text") or ""))

    app.start(port=port, path="/slack/events", host="127.0.0.1")  # aiohttp web.run_app


class _LoopbackHTTPServer(HTTPServer):
    """Bolt's development server binds 0.0.0.0; the benchmark stays on 127.0.0.1."""

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        super().__init__(("127.0.0.1", address[1]), handler)


def run_sync(port: int) -> None:
    import slack_bolt.app.app as bolt_app_module
    from slack_bolt import Ack, App
    from slack_sdk import WebClient

    bolt_app_module.HTTPServer = _LoopbackHTTPServer  # type: ignore[attr-defined,assignment]
    client = WebClient(
        token=os.environ["SLACK_BOT_TOKEN"],
        base_url=os.environ["SLACK_API_URL"],
        ssl=ssl.create_default_context(),
    )
    app = App(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/oauth-app")
    def oauth_app(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        ack()
        client.views_open(trigger_id=command["trigger_id"], view=_modal(command.get("text") or ""))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.start(port=port, path="/slack/events")  # SlackAppDevelopmentServer (http.server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mode", choices=["async", "sync"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.mode == "async":
        run_async(args.port)
    else:
        run_sync(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
