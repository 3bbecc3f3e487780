"""Typed settings from the environment (and an optional .env file).

The variable names are the ones in the README's configuration table; nothing else is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.exceptions import ConfigError


@dataclass(frozen=True)
class Cloud:
    authority_host: str
    graph_url: str
    portal_url: str


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://portal.azure.com"
    ),
    "usgov": Cloud(
        "https://login.microsoftonline.us", "https://graph.microsoft.us", "https://portal.azure.us"
    ),
    "china": Cloud(
        "https://login.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://portal.azure.cn",
    ),
}
MICROSOFT_AUTHORITY_HOSTS = {urlsplit(c.authority_host).hostname for c in CLOUDS.values()}

SECRET_LIFETIME_CHOICES = (90, 180, 365, 545, 730)  # the portal's choices, in days


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = 3000
    oauth_bot_approval_channel: str | None = None
    oauth_bot_admins: str = ""

    # The bot's own Entra identity
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_client_secret: SecretStr | None = None
    azure_client_certificate_path: str | None = None
    azure_cloud: Literal["public", "usgov", "china"] = "public"
    azure_authority_host: str | None = None
    graph_url: str | None = None
    key_vault_url: str | None = None

    database_url: str = "sqlite:///oauth-bot.db"

    # Policy
    oauth_bot_max_secret_days: int = Field(default=365, ge=1, le=730)
    oauth_bot_default_secret_days: int = Field(default=180, ge=1, le=730)
    oauth_bot_grace_days: float = Field(default=7, ge=0)
    oauth_bot_request_ttl_days: float = Field(default=7, gt=0)
    oauth_bot_reminder_days: str = "30,14,7,1"
    oauth_bot_scan_interval_hours: float = Field(default=24, gt=0)
    oauth_bot_owner_self_rotate: bool = False
    oauth_bot_max_open_requests: int = Field(default=5, ge=1)
    oauth_bot_max_requests_per_hour: int = Field(default=10, ge=1)

    # Operations
    oauth_bot_retry_budget_seconds: float = Field(default=60, gt=0)
    oauth_bot_http_timeout_seconds: float = Field(default=15, gt=0)
    oauth_bot_verify_budget_seconds: float = Field(default=60, ge=0)
    oauth_bot_worker_threads: int = Field(default=4, ge=1, le=64)
    oauth_bot_lease_seconds: float = Field(default=60, gt=0)
    oauth_bot_poll_seconds: float = Field(default=5, gt=0)
    log_level: str = "INFO"

    @field_validator("slack_api_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @cached_property
    def admins(self) -> frozenset[str]:
        return frozenset(_csv(self.oauth_bot_admins))

    @cached_property
    def reminder_days(self) -> tuple[int, ...]:
        try:
            return tuple(sorted({int(day) for day in _csv(self.oauth_bot_reminder_days)}, reverse=True))
        except ValueError as error:
            raise ConfigError("OAUTH_BOT_REMINDER_DAYS must be whole numbers, e.g. 30,14,7,1") from error

    @property
    def cloud(self) -> Cloud:
        return CLOUDS[self.azure_cloud]

    @property
    def authority_host(self) -> str:
        return (self.azure_authority_host or self.cloud.authority_host).rstrip("/")

    @property
    def graph_base(self) -> str:
        return (self.graph_url or self.cloud.graph_url).rstrip("/")

    @property
    def authority_is_microsoft(self) -> bool:
        return urlsplit(self.authority_host).hostname in MICROSOFT_AUTHORITY_HOSTS

    @property
    def secret_lifetime_choices(self) -> tuple[int, ...]:
        """The portal's lifetimes that the policy allows (the maximum itself is always one)."""
        allowed = [d for d in SECRET_LIFETIME_CHOICES if d <= self.oauth_bot_max_secret_days]
        if self.oauth_bot_max_secret_days not in allowed:
            allowed.append(self.oauth_bot_max_secret_days)
        return tuple(allowed)

    @property
    def default_secret_days(self) -> int:
        return min(self.oauth_bot_default_secret_days, self.oauth_bot_max_secret_days)

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every listed variable that is unset."""
        missing = [name.upper() for name in names if not getattr(self, name)]
        if missing:
            raise ConfigError("missing configuration: " + ", ".join(missing))

    def require_for_serve(self) -> None:
        self.require("slack_bot_token", "oauth_bot_approval_channel", "azure_tenant_id", "key_vault_url")
        if self.azure_client_secret or self.azure_client_certificate_path:
            self.require("azure_client_id")
        if not self.slack_app_token:
            self.require("slack_signing_secret")
        if not self.admins:
            raise ConfigError("missing configuration: OAUTH_BOT_ADMINS (comma-separated Slack user IDs)")
        for name, url in (
            ("AZURE_AUTHORITY_HOST", self.authority_host),
            ("GRAPH_URL", self.graph_base),
            ("KEY_VAULT_URL", self.key_vault_url or ""),
        ):
            if urlsplit(url).scheme != "https":
                raise ConfigError(f"{name} must be an https URL (got {url!r})")
