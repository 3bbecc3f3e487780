"""Modal submissions: the new-app form, the rotation form and the deny reason."""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.config import Settings
from bot.core.errors import OAuthBotError, RateLimited, RemoteError, ValidationError
from bot.core.lifetimes import UNKNOWN, PasswordLimit
from bot.core.model import ExtraReader, Status, Workload
from bot.core.policy import POLICY_CAP
from bot.core.validation import (
    MAX_DENY_REASON,
    MAX_JUSTIFICATION,
    has_bad_multiline_characters,
    reader_ids,
    validate_new_app,
)
from bot.core.workloads import parse_workload, validate_federated
from bot.runtime import Services
from bot.slack import modals
from bot.slack.ids import Callback, Field
from handlers.text import error_text, inert, state_value, waiting_for

log = logging.getLogger(__name__)
FEDERATED_FIELDS = (
    Field.GITHUB_REPOSITORY,
    Field.GITHUB_ENTITY,
    Field.GITHUB_REF,
    Field.K8S_ISSUER,
    Field.K8S_NAMESPACE,
    Field.K8S_SERVICE_ACCOUNT,
    Field.OIDC_ISSUER,
    Field.OIDC_SUBJECT,
    Field.CREDENTIAL_NAME,
    Field.CREDENTIAL_DESCRIPTION,
)


async def _refuse(
    ack: AsyncAck,
    settings: Settings,
    view: dict[str, Any],
    error: ValidationError,
    limit: PasswordLimit = UNKNOWN,
) -> None:
    """Field errors in the form; but when the sign-in choice changed without the form following
    it (its fields are not shown, so an error could not sit next to them), the form is updated
    to show them instead."""
    shown = {block.get("block_id") for block in view.get("blocks") or []}
    if all(field in shown for field in error.fields):
        await ack(response_action="errors", errors=error.fields)
    else:
        await ack(response_action="update", view=modals.updated_modal(settings, view, limit))


def federated_values(view: dict[str, Any]) -> dict[str, str | None]:
    """The federated credential's fields of a form, by field name (those not shown are None)."""
    return {str(field): state_value(view, field) for field in FEDERATED_FIELDS}


async def extra_readers(services: Services, view: dict[str, Any]) -> tuple[ExtraReader, ...]:
    """The form's extra readers, checked against Graph; ValidationError on their field."""
    ids = reader_ids(state_value(view, Field.EXTRA_READERS))
    if not ids:
        return ()
    if services.read_access is None:
        raise ValidationError({Field.EXTRA_READERS: "Extra readers are not set up in oauth-bot."})
    return await asyncio.to_thread(services.read_access.resolve_readers, ids)


def register(app: AsyncApp, services: Services) -> None:
    _federate(app, services)
    settings, intake = services.settings, services.intake
    _rotation(app, services)

    @app.view(Callback.NEW_APP)
    async def new_app_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user_id = body["user"]["id"]
        tenant = await asyncio.to_thread(services.tenant_limits.for_form)  # cached for an hour
        limit = tenant.within(settings.policy.offered_max_days("new_app"), POLICY_CAP)
        try:
            data = validate_new_app(
                settings,
                limit,
                name=state_value(view, Field.NAME),
                audience=state_value(view, Field.AUDIENCE),
                redirect_uri=state_value(view, Field.REDIRECT_URI),
                platform=state_value(view, Field.PLATFORM),
                secret_description=state_value(view, Field.SECRET_DESCRIPTION),
                secret_days=state_value(view, Field.SECRET_EXPIRY),
                justification=state_value(view, Field.JUSTIFICATION),
                workload=state_value(view, Field.WORKLOAD),
                **federated_values(view),
            )
            readers = await extra_readers(services, view)
            await asyncio.to_thread(intake.check_new_app, requester_id=user_id, data=data, readers=readers)
        except ValidationError as error:
            await _refuse(ack, settings, view, error, limit)
            return
        except (RateLimited, RemoteError) as error:
            await ack(response_action="errors", errors={Field.NAME: str(error)})
            return
        await ack()
        team_id = (body.get("team") or {}).get("id")
        try:
            request = await asyncio.to_thread(
                intake.submit_new_app, requester_id=user_id, team_id=team_id, data=data, readers=readers
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


def _federate(app: AsyncApp, services: Services) -> None:
    """The /oauth-app federate form: a federated credential for an app the bot manages."""
    settings, intake = services.settings, services.intake

    @app.view(Callback.FEDERATE)
    async def federate_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user_id = body["user"]["id"]
        workload = parse_workload(state_value(view, Field.WORKLOAD)) or Workload.GITHUB
        reason = (state_value(view, Field.JUSTIFICATION) or "").strip()
        try:
            spec = validate_federated(workload, federated_values(view))
            if len(reason) > MAX_JUSTIFICATION or has_bad_multiline_characters(reason):
                limit = f"Use at most {MAX_JUSTIFICATION} characters, no control characters."
                raise ValidationError({Field.JUSTIFICATION: limit})
            client_id = str(json.loads(view.get("private_metadata") or "{}")["client_id"])
            await asyncio.to_thread(intake.check_limits, user_id)
        except ValidationError as error:
            await _refuse(ack, settings, view, error)
            return
        except RateLimited as error:
            await ack(response_action="errors", errors={Field.WORKLOAD: str(error)})
            return
        except (ValueError, KeyError, TypeError):
            await ack(response_action="errors", errors={Field.WORKLOAD: "This form is out of date."})
            return
        await ack()
        try:
            request = await asyncio.to_thread(
                intake.submit_federation,
                requester_id=user_id,
                team_id=(body.get("team") or {}).get("id"),
                client_id=client_id,
                spec=spec,
                justification=reason,
            )
        except OAuthBotError as error:
            await client.chat_postMessage(channel=user_id, text=f"Your request could not be filed: {error}")
            return
        if request.status == Status.APPROVED:  # approved by policy
            services.worker.submit(request.id)


def _rotation(app: AsyncApp, services: Services) -> None:
    intake, worker = services.intake, services.worker

    @app.view(Callback.ROTATE)
    async def rotate_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        user_id = body["user"]["id"]
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
            client_id, response_url = str(metadata["client_id"]), metadata.get("response_url")
        except (ValueError, KeyError, TypeError):
            await ack()
            await _tell(
                client, user_id, None, "This rotation form is out of date: run /oauth-secret rotate again."
            )
            return
        try:
            readers = await extra_readers(services, view)
            await asyncio.to_thread(intake.check_limits, user_id)
        except (ValidationError, RateLimited) as error:
            errors = (
                error.fields if isinstance(error, ValidationError) else {str(Field.EXTRA_READERS): str(error)}
            )
            if not any(b.get("block_id") == Field.EXTRA_READERS for b in view.get("blocks", [])):
                await ack()  # no field to show it next to
                await _tell(client, user_id, response_url, f"Not rotated: {error_text(error)}")
                return
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        try:
            request = await asyncio.to_thread(
                intake.submit_rotation,
                requester_id=user_id,
                team_id=(body.get("team") or {}).get("id"),
                target=client_id,
                readers=readers,
            )
        except OAuthBotError as error:
            await _tell(client, user_id, response_url, f"Not rotated: {error_text(error)}")
            return
        name = inert(request.display_name, limit=120)
        if request.status == Status.APPROVED:
            worker.submit(request.id)
            text = f"Rotating the client secret of {name} (request #{request.id}); you will get a DM."
        else:
            text = f"Rotation request #{request.id} for {name} is waiting for {waiting_for(request)}."
        await _tell(client, user_id, response_url, text)


async def _tell(client: AsyncWebClient, user_id: str, response_url: str | None, text: str) -> None:
    """An ephemeral answer where the rotation was asked for (its response_url, good for 30
    minutes), else, or once it has run out, a DM."""
    if response_url:
        webhook = AsyncWebhookClient(response_url, ssl=client.ssl, proxy=client.proxy)
        answer = await webhook.send(text=text, response_type="ephemeral", replace_original=False)
        if answer.status_code == HTTPStatus.OK:
            return
        log.info("the rotation's response_url answered %s; telling %s in a DM", answer.status_code, user_id)
    await client.chat_postMessage(channel=user_id, text=text)
