"""Events: the App Home tab."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Services
from bot.slack import home


def register(app: AsyncApp, services: Services) -> None:
    @app.event("app_home_opened")
    async def home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = event["user"]
        view = home.build_home(await asyncio.to_thread(services.lifecycle.home, user_id))
        await client.views_publish(user_id=user_id, view=view)
