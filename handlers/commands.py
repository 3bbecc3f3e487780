"""/oauth-app and /oauth-secret."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import OAuthBotError
from bot.core.policy import POLICY_CAP
from bot.runtime import Services
from bot.slack import lists, modals
from bot.slack.views import USAGE, Message
from handlers.text import error_text, inert, read_access_answer

SECRET_USAGE = (
    "*oauth-bot* secret commands:\n"
    "• `/oauth-secret rotate &lt;client-id or app name&gt;` — a new client secret next to the old one\n"
    "• `/oauth-secret list &lt;client-id&gt;` — the secrets of an app\n"
    "• `/oauth-secret access &lt;client-id or app name&gt;` — read access to its secret's value (owners)"
)


async def _answer(respond: AsyncRespond, message: Message) -> None:
    text, body = message
    await respond(text=text, blocks=body, response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, services: Services) -> None:
    _oauth_app(app, services)
    _oauth_secret(app, services)


def _oauth_app(app: AsyncApp, services: Services) -> None:
    settings, lifecycle = services.settings, services.lifecycle

    @app.command("/oauth-app")
    async def oauth_app(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        subcommand, _, rest = (command.get("text") or "").strip().partition(" ")
        user_id = command["user_id"]
        match subcommand.lower():
            case "new":
                await ack()
                limit = await asyncio.to_thread(services.tenant_limits.for_form)
                view = modals.new_app_modal(
                    settings,
                    name=rest.strip(),
                    channel_id=command.get("channel_id"),
                    limit=limit.within(settings.policy.offered_max_days("new_app"), POLICY_CAP),
                )
                try:
                    await client.views_open(trigger_id=command["trigger_id"], view=view)
                except SlackApiError as error:
                    await respond(
                        text=f"Could not open the form ({error.response.get('error')}). "
                        "Please run the command again.",
                        response_type="ephemeral",
                    )
            case "federate":
                await _open_federate_form(services, ack, command, client, respond, rest)
            case "list":
                await ack()
                everyone = rest.strip().lower() == "all"
                try:
                    apps = await asyncio.to_thread(lifecycle.visible_apps, user_id, everyone=everyone)
                    views = await asyncio.to_thread(lambda: [lifecycle.app_view(a) for a in apps[:12]])
                except OAuthBotError as error:
                    await respond(text=error_text(error), response_type="ephemeral")
                    return
                await _answer(respond, lists.app_list(views, everyone=everyone, total=len(apps)))
            case "show":
                if not rest.strip():
                    await ack(text="Usage: `/oauth-app show &lt;client-id&gt;`")
                    return
                await ack()
                try:
                    found = await asyncio.to_thread(lifecycle.find_visible, user_id, rest)
                    details = await asyncio.to_thread(lifecycle.app_view, found, federated=True)
                except OAuthBotError as error:
                    await respond(text=error_text(error), response_type="ephemeral")
                    return
                await _answer(respond, lists.app_detail(details, str(settings.azure_tenant_id)))
            case "" | "help":
                await ack(text=USAGE)
            case _:
                await ack(text=f"Unknown subcommand {inert(subcommand)}.\n\n{USAGE}")


async def _open_federate_form(
    services: Services,
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    target: str,
) -> None:
    """/oauth-app federate <app>: the form, for an app this person may manage (owners, admins)."""
    if not target.strip():
        await ack(text="Name the app: `/oauth-app federate &lt;client-id or app name&gt;`")
        return
    await ack()
    try:
        found = await asyncio.to_thread(services.intake.app_to_federate, command["user_id"], target)
        view = modals.federate_modal(client_id=found.client_id, app_name=found.display_name)
        await client.views_open(trigger_id=command["trigger_id"], view=view)
    except OAuthBotError as error:
        await respond(text=error_text(error), response_type="ephemeral")
    except SlackApiError as error:
        await respond(
            text=f"Could not open the form ({error.response.get('error')}). Please run the command again.",
            response_type="ephemeral",
        )


def _oauth_secret(app: AsyncApp, services: Services) -> None:
    lifecycle, intake = services.lifecycle, services.intake
    read_access, vault_url = services.read_access, str(services.settings.key_vault_url)
    readers = bool(services.settings.key_vault_resource_id)

    @app.command("/oauth-secret")
    async def oauth_secret(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        subcommand, _, rest = (command.get("text") or "").strip().partition(" ")
        user_id = command["user_id"]
        match subcommand.lower():
            case "rotate" if rest.strip():
                await ack()
                try:
                    target = await asyncio.to_thread(intake.rotation_target, user_id, rest)
                    await asyncio.to_thread(intake.check_limits, user_id)
                except OAuthBotError as error:
                    await respond(text=error_text(error), response_type="ephemeral")
                    return
                form = modals.rotate_modal(target, readers=readers, response_url=command.get("response_url"))
                try:
                    await client.views_open(trigger_id=command["trigger_id"], view=form)
                except SlackApiError as error:
                    await respond(
                        text=f"Could not open the form ({error.response.get('error')}). "
                        "Please run the command again.",
                        response_type="ephemeral",
                    )
            case "list" if rest.strip():
                await ack()
                try:
                    found = await asyncio.to_thread(lifecycle.find_visible, user_id, rest)
                    view = await asyncio.to_thread(lifecycle.app_view, found)
                except OAuthBotError as error:
                    await respond(text=error_text(error), response_type="ephemeral")
                    return
                await _answer(respond, lists.secrets_list(view))
            case "access" if rest.strip() and read_access is not None:
                await ack()
                try:
                    answer = await asyncio.to_thread(
                        intake.request_read_access,
                        requester_id=user_id,
                        team_id=command.get("team_id"),
                        target=rest,
                    )
                except OAuthBotError as error:
                    await respond(text=error_text(error), response_type="ephemeral")
                    return
                await respond(text=read_access_answer(answer, vault_url), response_type="ephemeral")
            case "" | "help":
                await ack(text=SECRET_USAGE)
            case "rotate" | "list" | "access":
                await ack(
                    text=f"Name the app: `/oauth-secret {subcommand.lower()} &lt;client-id or app name&gt;`"
                )
            case _:
                await ack(text=f"Unknown subcommand {inert(subcommand)}.\n\n{SECRET_USAGE}")
