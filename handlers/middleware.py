"""Global listener middleware."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.runtime import Services

log = logging.getLogger("handlers")


def register(app: AsyncApp, services: Services) -> None:
    @app.middleware
    async def same_workspace(
        context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Refuse a request that names another workspace than the one the bot token belongs to."""
        authorized = context.authorize_result
        expected = authorized.team_id if authorized is not None else None
        if expected and context.team_id and context.team_id != expected and not context.is_enterprise_install:
            log.warning("refused a request for team %s (the bot belongs to %s)", context.team_id, expected)
            return BoltResponse(status=401, body="")
        await next()
        return None
