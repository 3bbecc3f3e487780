"""Modal submissions: the new-app form and the deny reason."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import OAuthBotError, RateLimited, RemoteError, ValidationError
from bot.core.model import Status
from bot.core.policy import POLICY_CAP
from bot.core.validation import MAX_DENY_REASON, has_bad_multiline_characters, validate_new_app
from bot.runtime import Services
from bot.slack.ids import Callback, Field
from handlers.text import state_value

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    settings, intake = services.settings, services.intake

    @app.view(Callback.NEW_APP)
    async def new_app_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user_id = body["user"]["id"]
        try:
            limit = await asyncio.to_thread(services.tenant_limits.for_form)  # cached for an hour
            data = validate_new_app(
                settings,
                limit.within(settings.policy.offered_max_days("new_app"), POLICY_CAP),
                name=state_value(view, Field.NAME),
                audience=state_value(view, Field.AUDIENCE),
                redirect_uri=state_value(view, Field.REDIRECT_URI),
                platform=state_value(view, Field.PLATFORM),
                secret_description=state_value(view, Field.SECRET_DESCRIPTION),
                secret_days=state_value(view, Field.SECRET_EXPIRY),
                justification=state_value(view, Field.JUSTIFICATION),
            )
            await asyncio.to_thread(intake.check_new_app, requester_id=user_id, data=data)
        except ValidationError as error:
            await ack(response_action="errors", errors=error.fields)
            return
        except (RateLimited, RemoteError) as error:
            await ack(response_action="errors", errors={Field.NAME: str(error)})
            return
        await ack()
        team_id = (body.get("team") or {}).get("id")
        try:
            request = await asyncio.to_thread(
                intake.submit_new_app, requester_id=user_id, team_id=team_id, data=data
            )
        except OAuthBotError as error:
            await client.chat_postMessage(channel=user_id, text=f"Your request could not be filed: {error}")
            return
        if request.status == Status.APPROVED:  # approved by policy
            services.worker.submit(request.id)

    @app.view(Callback.DENY_REASON)
    async def deny_reason_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user_id = body["user"]["id"]
        reason = (state_value(view, Field.DENY_REASON) or "").strip()
        if not reason:
            await ack(response_action="errors", errors={Field.DENY_REASON: "Tell the requester why."})
            return
        if len(reason) > MAX_DENY_REASON:
            await ack(
                response_action="errors",
                errors={Field.DENY_REASON: f"Use at most {MAX_DENY_REASON} characters."},
            )
            return
        if has_bad_multiline_characters(reason):
            await ack(
                response_action="errors",
                errors={Field.DENY_REASON: "The reason cannot contain control characters."},
            )
            return
        try:
            request_id = int(json.loads(view.get("private_metadata") or "{}")["request_id"])
        except (ValueError, KeyError, TypeError):
            await ack(response_action="errors", errors={Field.DENY_REASON: "This form is out of date."})
            return
        await ack()
        try:
            await asyncio.to_thread(intake.deny, request_id, actor=user_id, reason=reason)
        except OAuthBotError as error:
            await client.chat_postMessage(channel=user_id, text=f"Not denied: {error}")
