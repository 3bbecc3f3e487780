"""Buttons. Each re-checks the clicker's rights at click time; the button carries only an ID."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.access import is_admin
from bot.core.errors import OAuthBotError, SecretRemovalNeedsConfirmation
from bot.core.model import Status
from bot.core.policy import POLICY_CAP
from bot.runtime import Services
from bot.slack import cards, modals, retirement
from bot.slack.ids import Action, Field
from handlers.text import error_text, read_access_answer

log = logging.getLogger(__name__)


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0]["value"])


async def _tell(client: AsyncWebClient, body: dict[str, Any], error: OAuthBotError | str) -> None:
    """An ephemeral answer where the click happened (a DM when there is no channel)."""
    await _show(client, body, error_text(error) if isinstance(error, OAuthBotError) else error)


async def _show(
    client: AsyncWebClient,
    body: dict[str, Any],
    text: str,
    message_blocks: list[dict[str, Any]] | None = None,
) -> None:
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id")
    if channel:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=message_blocks)
    else:
        await client.chat_postMessage(channel=user, text=text, blocks=message_blocks)


def register(app: AsyncApp, services: Services) -> None:
    _decisions(app, services)
    _secrets(app, services)
    _rotate_now(app, services)
    _retirement(app, services)
    _forms(app, services)


def _retirement(app: AsyncApp, services: Services) -> None:
    """An admin decides about an old secret still in use at the maximum grace (admins only,
    re-checked at the click; the decision is a compare-and-set, so it is taken once)."""
    retire = services.lifecycle.retirement

    async def decide(body: dict[str, Any], client: AsyncWebClient, *, remove: bool) -> None:
        actor, key_id = body["user"]["id"], _value(body)
        try:
            until = await asyncio.to_thread(retire.decide, key_id, actor=actor, remove=remove)
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        text, blocks = retirement.decided(key_id, actor, until)
        channel, message = (body.get("channel") or {}).get("id"), body.get("message") or {}
        if channel and message.get("ts"):
            await client.chat_update(channel=channel, ts=message["ts"], text=text, blocks=blocks)

    @app.action(Action.RETIRE_REMOVE_NOW)
    async def remove_now_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await decide(body, client, remove=True)

    @app.action(Action.RETIRE_KEEP)
    async def keep_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await decide(body, client, remove=False)


def _forms(app: AsyncApp, services: Services) -> None:
    """A choice in a form that changes which fields it shows: the form is updated in place."""
    settings = services.settings

    async def update_form(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        view = body.get("view") or {}
        try:
            # The hash: if the form changed meanwhile (a quicker second choice), Slack keeps that one.
            limit = await asyncio.to_thread(services.tenant_limits.for_form)  # cached for an hour
            updated = modals.updated_modal(
                settings, view, limit.within(settings.policy.offered_max_days("new_app"), POLICY_CAP)
            )
            await client.views_update(view_id=view["id"], hash=view.get("hash"), view=updated)
        except SlackApiError as error:
            if error.response.get("error") != "hash_conflict":  # (a quicker second choice won)
                log.warning("the form could not be updated: %s", error.response.get("error"))

    for field in (Field.WORKLOAD, Field.GITHUB_ENTITY):
        app.action({"block_id": field, "action_id": Action.VALUE})(update_form)


def _decisions(app: AsyncApp, services: Services) -> None:
    """Approve, deny, cancel and retry on a request."""
    intake, worker = services.intake, services.worker

    async def approve(body: dict[str, Any], client: AsyncWebClient, *, retire_old_now: bool) -> None:
        request_id = int(_value(body))
        try:
            request = await asyncio.to_thread(
                intake.approve, request_id, actor=body["user"]["id"], retire_old_now=retire_old_now
            )
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        if request.status == Status.APPROVED:
            worker.submit(request_id)  # first: the card is not on the way to the secret
        else:  # the rule needs more approvers
            progress = intake.approvals.progress(request, await asyncio.to_thread(_approvers, request_id))
            await _tell(client, body, f"Your approval of request #{request_id} is recorded: {progress}.")
        await asyncio.to_thread(intake.outcomes.refresh_card, request_id)

    def _approvers(request_id: int) -> list[str]:
        return [a.approver_id for a in services.store.approvals(request_id)]

    @app.action(Action.APPROVE)
    async def approve_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await approve(body, client, retire_old_now=False)

    @app.action(Action.APPROVE_RETIRE_NOW)
    async def approve_retire_now_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await approve(body, client, retire_old_now=True)

    @app.action(Action.DENY)
    async def deny_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        request_id = int(_value(body))
        try:
            await asyncio.to_thread(intake.check_can_deny, request_id, actor=body["user"]["id"])
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=modals.deny_reason_modal(request_id))

    @app.action(Action.CANCEL)
    async def cancel_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            await asyncio.to_thread(intake.cancel, int(_value(body)), actor=body["user"]["id"])
        except OAuthBotError as error:
            await _tell(client, body, error)

    @app.action(Action.RETRY)
    async def retry_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        request_id = int(_value(body))
        try:
            await asyncio.to_thread(intake.retry, request_id, actor=body["user"]["id"])
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        worker.submit(request_id)


def _secrets(app: AsyncApp, services: Services) -> None:
    """Buttons about an app's secrets: retire-and-rotate (with an admin's confirmation), Get read
    access, Remove secret."""
    settings, intake, worker = services.settings, services.intake, services.worker

    async def retire_and_rotate(
        body: dict[str, Any], client: AsyncWebClient, request_id: int, key_id: str | None
    ) -> None:
        actor = body["user"]["id"]
        try:
            await asyncio.to_thread(intake.retire_oldest_and_retry, request_id, actor=actor, key_id=key_id)
        except SecretRemovalNeedsConfirmation as error:
            if not is_admin(settings, actor):
                await _tell(client, body, f"{error_text(error)} Ask an oauth-bot admin to confirm it.")
                return
            text, confirm = cards.confirm_foreign_removal(request_id, error.app_name, error.secret)
            await _show(client, body, text, confirm)
            return
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        worker.submit(request_id)
        await asyncio.to_thread(intake.outcomes.refresh_card, request_id)

    @app.action(Action.RETIRE_OLDEST)
    async def retire_oldest_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await retire_and_rotate(body, client, int(_value(body)), None)

    @app.action(Action.RETIRE_CONFIRMED)
    async def retire_confirmed_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        request_id, _, key_id = _value(body).partition(":")
        await retire_and_rotate(body, client, int(request_id), key_id)

    @app.action(Action.GET_READ_ACCESS)
    async def get_read_access_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            answer = await asyncio.to_thread(
                intake.request_read_access,
                requester_id=body["user"]["id"],
                team_id=(body.get("team") or {}).get("id"),
                target=_value(body),
            )
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        await _tell(client, body, read_access_answer(answer, str(services.settings.key_vault_url)))

    @app.action(Action.REMOVE_SECRET)
    async def remove_secret_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            request = await asyncio.to_thread(
                intake.submit_secret_removal,
                requester_id=body["user"]["id"],
                team_id=(body.get("team") or {}).get("id"),
                key_id=_value(body),
            )
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        await _tell(
            client,
            body,
            f"Removal request #{request.id} is waiting for an admin's approval; "
            "the secret stays valid until then.",
        )


def _rotate_now(app: AsyncApp, services: Services) -> None:
    """Rotate now (in an expiry reminder): the rotation form, after the rights and limits."""
    settings, intake = services.settings, services.intake

    @app.action(Action.ROTATE_NOW)
    async def rotate_now_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """The rotation form, as `/oauth-secret rotate` opens it (its Submit files the rotation)."""
        await ack()
        user_id = body["user"]["id"]
        try:
            target = await asyncio.to_thread(intake.rotation_target, user_id, _value(body))
            await asyncio.to_thread(intake.check_limits, user_id)
        except OAuthBotError as error:
            await _tell(client, body, error)
            return
        view = modals.rotate_modal(
            target, readers=bool(settings.key_vault_resource_id), response_url=body.get("response_url")
        )
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as error:  # e.g. expired_trigger_id: the click is 3 s old
            await _tell(client, body, f"Could not open the form ({error.response.get('error')}); try again.")
