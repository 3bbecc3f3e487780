"""Typed errors of oauth-bot.

    OAuthBotError
    ├── ConfigError              configuration missing or contradictory
    ├── ValidationError          bad user input, with per-field messages
    ├── NotAllowed               the actor may not do this (not an admin, own request, not owner)
    ├── NotFound                 no such request or app (that the bot manages)
    ├── Conflict                 the request is no longer in a state that allows the action
    ├── RateLimited              too many open requests / requests this hour
    ├── SecretLimitReached       the app holds the most client secrets its audience allows
    ├── CardNotPosted            the approval card could not be posted, so the request was failed
    └── RemoteError              a remote service failed (after retries)
        ├── GraphError           Microsoft Graph answered an error
        │   └── LifetimePolicyError  the tenant's app-management policy refused the lifetime
        ├── VaultError           Azure Key Vault failed
        │   └── VaultPermissionError  403: the bot lacks a role on the vault
        ├── TokenError           the token endpoint refused the bot's credential
        └── SlackError           the Slack Web API failed

Messages never contain a secret value or a token: they are shown to users and logged.
"""

from __future__ import annotations


class OAuthBotError(Exception):
    """Base class: `str(error)` is safe to show to a user."""


class ConfigError(OAuthBotError):
    pass


class ValidationError(OAuthBotError):
    """Bad input. `fields` maps a field name to the message shown next to it."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))


class NotAllowed(OAuthBotError):
    pass


class NotFound(OAuthBotError):
    pass


class Conflict(OAuthBotError):
    pass


class RateLimited(OAuthBotError):
    pass


class SecretLimitReached(OAuthBotError):
    pass


class CardNotPosted(OAuthBotError):
    pass


class RemoteError(OAuthBotError):
    """A remote call failed for good. `status` is the HTTP status when there was one."""

    service = "remote service"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class GraphError(RemoteError):
    service = "Microsoft Graph"


class LifetimePolicyError(GraphError):
    pass


class VaultError(RemoteError):
    service = "Azure Key Vault"


class VaultPermissionError(VaultError):
    pass


class TokenError(RemoteError):
    service = "Microsoft Entra ID"


class SlackError(RemoteError):
    service = "Slack"
