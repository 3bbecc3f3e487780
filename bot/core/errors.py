"""Typed errors of oauth-bot.

    OAuthBotError
    ├── ConfigError              configuration missing or contradictory
    ├── ValidationError          bad user input, with per-field messages
    ├── NotAllowed               the actor may not do this (not an admin, own request, not owner)
    ├── NotFound                 no such request or app (that the bot manages)
    ├── Conflict                 the request is no longer in a state that allows the action
    ├── RateLimited              too many open requests / requests this hour
    ├── SecretLimitReached       the app holds the most client secrets its audience allows
    ├── SecretRemovalNeedsConfirmation  the secret to remove was not issued by oauth-bot
    ├── CardNotPosted            the approval card could not be posted, so the request was failed
    └── RemoteError              a remote service failed (after retries)
        ├── GraphError           Microsoft Graph answered an error
        │   ├── LifetimePolicyError  the tenant's app-management policy refused the lifetime
        │   ├── PasswordsNotAllowed  the tenant's app-management policy allows no client secret
        │   └── OutcomeUnknown   a write that is not idempotent may or may not have been carried out
        ├── VaultError           Azure Key Vault failed
        │   └── VaultPermissionError  403: the bot lacks a role on the vault
        ├── ArmError             Azure Resource Manager failed (role assignments)
        │   └── AssignmentNotPermitted  403: the bot may not grant read access
        ├── TokenError           the token endpoint refused the bot's credential
        └── SlackError           the Slack Web API failed

Messages never contain a secret value or a token: they are shown to users and logged.
"""

from __future__ import annotations

from typing import Any


class OAuthBotError(Exception):
    """Base class: `str(error)` is safe to show to a user; `code` names the kind for callers."""

    code: str | None = None


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
    code = "secret_limit_reached"


class SecretRemovalNeedsConfirmation(OAuthBotError):
    """Making room would remove a client secret that oauth-bot did not issue: an admin must
    confirm it by name and Secret ID. `secret` has `key_id`, `display_name` and `end`."""

    code = "secret_removal_needs_confirmation"

    def __init__(self, app_name: str, secret: Any) -> None:
        self.app_name = app_name
        self.secret = secret
        super().__init__(
            f'The oldest client secret of {app_name}, "{secret.display_name}" (Secret ID {secret.key_id}), '
            "was not issued by oauth-bot, so oauth-bot removes it only when an oauth-bot admin confirms."
        )


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


class PasswordsNotAllowed(GraphError):
    pass


class OutcomeUnknown(GraphError):
    """A timeout or 5xx after a non-idempotent write was sent: read the state back, don't resend."""


class VaultError(RemoteError):
    service = "Azure Key Vault"


class VaultPermissionError(VaultError):
    pass


class ArmError(RemoteError):
    service = "Azure Resource Manager"


class AssignmentNotPermitted(ArmError):
    """403 AuthorizationFailed: the bot's identity holds no right to assign the role here."""

    def __init__(self, message: str, *, status: int | None = 403, code: str | None = None) -> None:
        super().__init__(message, status=status, code=code or "AuthorizationFailed")


class TokenError(RemoteError):
    service = "Microsoft Entra ID"


class SlackError(RemoteError):
    service = "Slack"
