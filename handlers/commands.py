"""/oauth-app and /oauth-secret."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.runtime import Services
from handlers.text import inert

SECRET_USAGE = (
    "*oauth-bot* secret commands:\n"
    "• `/oauth-secret rotate <client-id or app name>` — a new client secret next to the old one\n"
    "• `/oauth-secret list <client-id>` — the secrets of an app"
)


def register(app: AsyncApp, services: Services) -> None:
    settings = services.settings

    @app.command("/oauth-app")
    async def oauth_app(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        subcommand, _, rest = (command.get("text") or "").strip().partition(" ")
        match subcommand.lower():
            case "new":
                await ack()
                view = blocks.new_app_modal(settings, name=rest.strip(), channel_id=command.get("channel_id"))
                try:
                    await client.views_open(trigger_id=command["trigger_id"], view=view)
                except SlackApiError as error:
                    await respond(
                        text=f"Could not open the form ({error.response.get('error')}). "
                        "Please run the command again.",
                        response_type="ephemeral",
                    )
            case "" | "help":
                await ack(text=blocks.USAGE)
            case _:
                await ack(text=f"Unknown subcommand {inert(subcommand)}.\n\n{blocks.USAGE}")

    @app.command("/oauth-secret")
    async def oauth_secret(ack: AsyncAck, command: dict[str, Any]) -> None:
        subcommand = (command.get("text") or "").strip().partition(" ")[0]
        prefix = f"Unknown subcommand {inert(subcommand)}.\n\n" if subcommand and subcommand != "help" else ""
        await ack(text=prefix + SECRET_USAGE)
