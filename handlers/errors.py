"""The one error handler: unexpected errors are logged with a correlation ID, never shown raw."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.runtime import Services

log = logging.getLogger("handlers")


def register(app: AsyncApp, services: Services) -> None:
    @app.error
    async def on_error(error: Exception, body: dict[str, Any], client: Any) -> None:
        correlation = uuid.uuid4().hex[:12]
        log.error("unhandled %s in a listener [%s]", type(error).__name__, correlation, exc_info=error)
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        if user:
            try:
                await client.chat_postMessage(
                    channel=user,
                    text=f"Something went wrong on our side (reference {correlation}). Nothing was changed "
                    "that cannot be finished; please try again or tell the oauth-bot admins.",
                )
            except Exception:
                log.warning("could not tell %s about error %s", user, correlation)
