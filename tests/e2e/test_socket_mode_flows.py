"""The new-app and rotation flows end to end over Slack's Socket Mode (the loopback fake in
fakes/socket_mode.py): the bot opens its connection with the app-level token, acks every
envelope, survives a dropped connection mid-flow, and reports readiness by its socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.model import Request, Status
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, FakeCloud
from fakes.harness import BackgroundBot
from fakes.socket_mode_driver import SocketModeDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import FORM, request_id_of


@pytest.fixture(scope="module")
def socket_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeCloud]:
    with FakeCloud(tmp_path_factory.mktemp("socket-ca"), socket_mode=True) as fakes:
        yield fakes


@pytest.fixture
def socket_bot(
    socket_cloud: FakeCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BackgroundBot]:
    """The bot in Socket Mode (no signing secret at all), its connection open."""
    monkeypatch.setenv("SSL_CERT_FILE", str(socket_cloud.ca.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(socket_cloud.ca.bundle_path))
    settings = socket_cloud.settings(f"sqlite:///{tmp_path / 'oauth-bot.db'}", slack_signing_secret=None)
    assert settings.socket_mode
    bot = BackgroundBot(settings, connect_socket=True).start()
    assert socket_cloud.socket_mode is not None
    socket_cloud.socket_mode.wait_for_connection(1)
    yield bot
    bot.stop()
    socket_cloud.slack.reset()


@pytest.fixture
def driver(socket_cloud: FakeCloud) -> SocketModeDriver:
    assert socket_cloud.socket_mode is not None
    return SocketModeDriver(socket=socket_cloud.socket_mode)


def _card(cloud: FakeCloud, before: int) -> dict[str, Any]:
    messages = lambda: cloud.slack.messages(APPROVAL_CHANNEL)  # noqa: E731
    return wait_until(lambda: len(messages()) > before and messages()[-1], what="an approval card")


def _final(bot: BackgroundBot, request_id: int) -> Request:
    assert bot.services is not None
    store = bot.services.store
    return wait_until(
        lambda: (r := store.get_request(request_id)).status in (Status.COMPLETED, Status.FAILED) and r,
        timeout=60,
        what=f"request #{request_id} to end",
    )


def _new_app(cloud: FakeCloud, driver: SocketModeDriver, name: str) -> dict[str, Any]:
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert driver.command(DEVELOPER, "/oauth-app", f"new {name}").acked
    modal = wait_until(lambda: cloud.slack.current_modal(DEVELOPER), what="the request form")
    submitted = driver.submit(DEVELOPER, modal, {"Justification": FORM["Justification"]})
    assert submitted.acked and not (submitted.answer or {}).get("errors"), submitted.answer
    return _card(cloud, before)


def test_a_new_app_over_socket_mode_survives_a_dropped_connection(
    socket_cloud: FakeCloud, socket_bot: BackgroundBot, driver: SocketModeDriver
) -> None:
    """/oauth-app new, the form and Approve arrive as envelopes and are acked; the connection is
    dropped (no close frame) right after the approval; the bot reconnects through a fresh
    apps.connections.open, the request completes with one app and its value in the vault, and
    the DM reaches the requester. /readyz follows the socket."""
    sockets = socket_cloud.socket_mode
    assert sockets is not None
    ready = httpx.get(f"{socket_bot.url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    card = _new_app(socket_cloud, driver, "socket-app")
    clicked = driver.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert clicked.acked
    opened = sockets.urls_issued
    sockets.drop()
    request = _final(socket_bot, request_id_of(card))
    assert request.status == Status.COMPLETED, request.error
    sockets.wait_until(lambda: sockets.urls_issued > opened, timeout=30, what="the bot to reconnect")
    sockets.wait_for_connection(1, timeout=30)
    wait_until(
        lambda: httpx.get(f"{socket_bot.url}/readyz", timeout=5).status_code == 200, what="ready again"
    )
    app = next(a for a in socket_cloud.graph.apps() if a["displayName"] == "socket-app")
    assert [p["keyId"] for p in socket_cloud.graph.passwords(app["id"])] == [request.key_id]
    assert socket_cloud.vault.value_of(f"oauth-{app['appId']}")
    wait_until(
        lambda: [
            m
            for m in socket_cloud.slack.dm_messages(DEVELOPER)
            if f"#{request.id} is done" in m.get("text", "")
        ],
        what="the 'is done' DM",
    )
    assert sockets.refused() == [] and sockets.protocol_errors() == []


def test_a_rotation_over_socket_mode_is_approved_and_done(
    socket_cloud: FakeCloud, socket_bot: BackgroundBot, driver: SocketModeDriver
) -> None:
    """/oauth-secret rotate over the socket opens the rotation form, whose Submit files a
    rotation; the admin's Approve envelope runs it, and the app ends with the old and the new
    secret, the new one the vault's latest."""
    first = _final(socket_bot, request_id_of(_approved(socket_cloud, driver, "socket-rotated")))
    assert first.status == Status.COMPLETED
    before = len(socket_cloud.slack.messages(APPROVAL_CHANNEL))
    asked = driver.command(DEVELOPER, "/oauth-secret", f"rotate {first.client_id}")
    assert asked.acked
    form = wait_until(lambda: socket_cloud.slack.current_modal(DEVELOPER), what="the rotation form")
    assert form["callback_id"] == "oauth_secret_rotate"
    assert driver.submit(DEVELOPER, form, {}).acked
    card = _card(socket_cloud, before)
    assert "Secret rotation request" in json.dumps(card["blocks"])
    assert driver.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL).acked
    rotated = _final(socket_bot, request_id_of(card))
    assert rotated.status == Status.COMPLETED, rotated.error
    app = next(a for a in socket_cloud.graph.apps() if a["displayName"] == "socket-rotated")
    keys = {p["keyId"] for p in socket_cloud.graph.passwords(app["id"])}
    assert keys == {first.key_id, rotated.key_id}
    latest = socket_cloud.vault.versions(f"oauth-{app['appId']}")[-1]
    assert latest["tags"]["secret-id"] == rotated.key_id


def _approved(cloud: FakeCloud, driver: SocketModeDriver, name: str) -> dict[str, Any]:
    card = _new_app(cloud, driver, name)
    assert driver.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL).acked
    return card
