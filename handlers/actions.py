"""Buttons: Approve, Deny, Cancel, Retry. Each re-checks the clicker's rights at click time."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.exceptions import OAuthBotError
from bot.ids import Action
from bot.policy import check_can_decide
from bot.runtime import Services
from bot.store import Status, require_status


def _request_id(body: dict[str, Any]) -> int:
    return int(body["actions"][0]["value"])


async def _tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    """An ephemeral answer where the click happened (or a DM when there is no channel)."""
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    if channel:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    else:
        await client.chat_postMessage(channel=user, text=text)


def register(app: AsyncApp, services: Services) -> None:
    settings, store, workflow, worker = services.settings, services.store, services.workflow, services.worker

    @app.action(Action.APPROVE)
    async def approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        request_id = _request_id(body)
        try:
            await asyncio.to_thread(workflow.approve, request_id, actor=body["user"]["id"])
        except OAuthBotError as error:
            await _tell(client, body, str(error))
            return
        worker.submit(request_id)

    @app.action(Action.DENY)
    async def deny(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        request_id = _request_id(body)
        try:
            request = await asyncio.to_thread(store.get_request, request_id)
            check_can_decide(settings, body["user"]["id"], request)
            require_status(request, Status.PENDING)
        except OAuthBotError as error:
            await _tell(client, body, str(error))
            return
        await client.views_open(trigger_id=body["trigger_id"], view=blocks.deny_reason_modal(request_id))

    @app.action(Action.CANCEL)
    async def cancel(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            await asyncio.to_thread(workflow.cancel, _request_id(body), actor=body["user"]["id"])
        except OAuthBotError as error:
            await _tell(client, body, str(error))

    @app.action(Action.RETRY)
    async def retry(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        request_id = _request_id(body)
        try:
            await asyncio.to_thread(workflow.retry, request_id, actor=body["user"]["id"])
        except OAuthBotError as error:
            await _tell(client, body, str(error))
            return
        worker.submit(request_id)
