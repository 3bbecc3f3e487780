"""Socket Mode: the HTTP port serves /healthz and nothing that takes a Slack payload.

An app in Socket Mode gets its Slack traffic over the websocket; anything posted to its HTTP
port is a forgery. The bot is brought up with its HTTP side as `serve` builds it for a Socket
Mode configuration (a Socket Mode fake for the websocket itself does not exist yet).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

import handlers
from bot.core.model import Status
from bot.runtime import build
from bot.slack.app import close_bolt_app, make_bolt_app
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.flows import request_id_of, request_new_app

APP_TOKEN = "xapp-1-A0FAKEAPP-1-fake-socket-mode-token"
ADMIN = ADMINS[0]
SLACK_PATHS = ["/slack/events", "/slack/commands", "/slack/actions", "/slack/interactive", "/"]


def _unsigned(request: httpx.Request) -> None:
    """An httpx hook that drops Slack's signature headers: what a forger without the secret sends."""
    request.headers.pop("X-Slack-Signature", None)
    request.headers.pop("X-Slack-Request-Timestamp", None)


@pytest.fixture
def pending_card(cloud: FakeCloud, database_path: Path, clock: ManualClock) -> dict[str, Any]:
    """A request filed through an HTTP-mode bot on the same database, now waiting for approval."""
    settings = cloud.settings(f"sqlite:///{database_path}")
    with (
        BackgroundBot(settings, clock=clock) as http_bot,
        SlackDriver(app_url=http_bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
    ):
        return request_new_app(slack, DEVELOPER, "socket-mode-app")


@pytest.fixture
def socket_bot(
    cloud: FakeCloud, database_path: Path, clock: ManualClock, pending_card: dict[str, Any]
) -> Iterator[BackgroundBot]:
    """The bot configured for Socket Mode (app token set; no signing secret, as an operator of a
    Socket Mode app may leave it out), its HTTP side listening."""
    settings = cloud.settings(
        f"sqlite:///{database_path}", slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    with BackgroundBot(settings, clock=clock) as running:
        yield running


def test_socket_mode_serves_health_only_and_dispatches_nothing_posted_over_http(
    cloud: FakeCloud, socket_bot: BackgroundBot, pending_card: dict[str, Any]
) -> None:
    """In Socket Mode, an unsigned `/oauth-app list all` from an admin and an unsigned Approve
    click on a pending card (both as Slack would post them in HTTP mode), the same signed with
    the workspace's signing secret, and posts to the other usual Slack paths all get 404/405:
    the bot makes no Slack call, the request stays pending, the audit log does not change.
    GET /healthz answers 200."""
    assert socket_bot.services is not None
    store = socket_bot.services.store
    request_id = request_id_of(pending_card)
    assert store.get_request(request_id).status == Status.PENDING
    audit_before = len(store.audit_events())
    calls_before = len(cloud.slack.api_calls())

    assert httpx.get(f"{socket_bot.url}/healthz", timeout=5).status_code == 200
    statuses: dict[str, int] = {}
    unsigned_client = httpx.Client(timeout=10, event_hooks={"request": [_unsigned]})
    with (
        SlackDriver(app_url=socket_bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as signed,
        SlackDriver(
            app_url=socket_bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack, client=unsigned_client
        ) as unsigned,
    ):
        for kind, driver in (("unsigned", unsigned), ("signed", signed)):
            response = driver.command(ADMIN, "/oauth-app", "list all", channel_id=APPROVAL_CHANNEL)
            assert response.status_code in (404, 405), f"{kind} list all: {response.status_code}"
            response = driver.click(ADMIN, "Approve", message=pending_card, channel=APPROVAL_CHANNEL)
            assert response.status_code in (404, 405), f"{kind} Approve: {response.status_code}"
        body = urlencode({"payload": json.dumps({"type": "block_actions", "actions": []})}).encode()
        for path in SLACK_PATHS:
            response = unsigned.client.post(f"{socket_bot.url}{path}", content=body)
            statuses[f"POST {path}"] = response.status_code
        statuses["GET /slack/events"] = httpx.get(f"{socket_bot.url}/slack/events", timeout=5).status_code
    unsigned_client.close()
    socket_bot.stop()  # lets any listener that was started finish before the checks below

    assert all(status in (404, 405) for status in statuses.values()), statuses
    assert cloud.slack.api_calls()[calls_before:] == []
    assert store.get_request(request_id).status == Status.PENDING
    assert len(store.audit_events()) == audit_before
    assert not cloud.slack.ephemerals(ADMIN) and not cloud.slack.responses(ADMIN)


def _command_payload(cloud: FakeCloud, text: str) -> dict[str, str]:
    return {
        "token": "fake-verification-token",
        "team_id": cloud.slack.team_id,
        "channel_id": "C0FAKEGEN",
        "user_id": DEVELOPER,
        "user_name": "dana.dev",
        "command": "/oauth-app",
        "text": text,
        "api_app_id": "A0FAKEAPP",
        "response_url": cloud.slack.issue_response_url(DEVELOPER, channel_id="C0FAKEGEN"),
        "trigger_id": cloud.slack.issue_trigger(DEVELOPER),
    }


def test_the_socket_mode_bolt_app_verifies_anything_that_is_not_from_the_socket(
    cloud: FakeCloud, database_path: Path
) -> None:
    """The Bolt app built for Socket Mode keeps request verification on: a `/oauth-app help`
    arriving through the Socket Mode connection is dispatched (Bolt skips signatures there),
    while the same command as an HTTP request is refused with 401, unsigned or signed with an
    empty secret (what an unset SLACK_SIGNING_SECRET would make valid)."""
    settings = cloud.settings(
        f"sqlite:///{database_path}", slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    services = build(settings)

    async def dispatch() -> list[Any]:
        bolt = make_bolt_app(services, handlers.register)
        try:
            from_socket = await bolt.async_dispatch(
                AsyncBoltRequest(mode="socket_mode", body=_command_payload(cloud, "help"))
            )
            raw = urlencode(_command_payload(cloud, "help"))
            driver = SlackDriver(app_url="http://unused", signing_secret="", slack=cloud.slack)
            over_http = [
                await bolt.async_dispatch(AsyncBoltRequest(body=raw, headers=dict(headers)))
                for headers in ({}, driver.sign(raw.encode()))
            ]
            driver.shutdown()
            return [from_socket, *over_http]
        finally:
            await close_bolt_app(bolt)

    try:
        from_socket, unsigned, empty_secret = asyncio.run(dispatch())
    finally:
        services.close()
    assert from_socket.status == 200 and "/oauth-app new" in from_socket.body, from_socket.body
    assert unsigned.status == 401, unsigned.body
    assert empty_secret.status == 401, empty_secret.body
