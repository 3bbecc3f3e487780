"""Slack listeners, thin: parse, authorize, call bot/, answer. `register(app, services)` wires them."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.runtime import Services
from handlers import actions, commands, errors, events, middleware, views


def register(app: AsyncApp, services: Services) -> None:
    errors.register(app, services)
    middleware.register(app, services)
    commands.register(app, services)
    views.register(app, services)
    actions.register(app, services)
    events.register(app, services)
