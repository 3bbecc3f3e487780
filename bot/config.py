"""Typed settings from the environment (and an optional .env file).

The variable names are the ones in the README's configuration table; nothing else is read.
An empty value (`SLACK_APP_TOKEN=`) means unset, for every variable. `load_settings` checks
the values and how they depend on each other before anything starts, and reports every
problem at once in one ConfigError that names the variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.core.errors import ConfigError


@dataclass(frozen=True)
class Cloud:
    authority_host: str
    graph_url: str
    portal_url: str
    resource_manager_url: str


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com",
        "https://portal.azure.com",
        "https://management.azure.com",
    ),
    "usgov": Cloud(
        "https://login.microsoftonline.us",
        "https://graph.microsoft.us",
        "https://portal.azure.us",
        "https://management.usgovcloudapi.net",
    ),
    "china": Cloud(
        "https://login.chinacloudapi.cn",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://portal.azure.cn",
        "https://management.chinacloudapi.cn",
    ),
}
MICROSOFT_AUTHORITY_HOSTS = {urlsplit(c.authority_host).hostname for c in CLOUDS.values()}

SECRET_LIFETIME_CHOICES = (90, 180, 365, 545, 730)  # the portal's choices, in days
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")  # bot/logs.py: readable lines, or one JSON object per line
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
# (backend, driver) pairs the bot ships with: SQLite, and PostgreSQL through psycopg 3.
DATABASE_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}
KEY_VAULT_RESOURCE_ID = re.compile(
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{1,90}"
    r"/providers/Microsoft\.KeyVault/vaults/[0-9a-zA-Z-]{3,24}",
    re.IGNORECASE,
)


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: the variables at fault and what to do."""

    variables: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.variables[0]}: {self.message}"


def report(problems: list[Problem]) -> ConfigError:
    """One error whose message lists every problem, one per line, each naming its variable."""
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return ConfigError(
        f"the configuration has {len(problems)} problem(s); fix them and start again:\n{lines}"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` is unset, never an empty value that means something else
        allow_inf_nan=False,
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port
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
    # Per-secret read access for the requester (unset: off)
    key_vault_resource_id: str | None = None
    azure_resource_manager_url: str | None = None

    database_url: str = "sqlite:///oauth-bot.db"

    # Policy
    oauth_bot_max_secret_days: int = Field(default=365, ge=1, le=730)
    oauth_bot_default_secret_days: int = Field(default=180, ge=1, le=730)
    oauth_bot_grace_days: float = Field(default=7, ge=0, le=3650)
    oauth_bot_request_ttl_days: float = Field(default=7, gt=0, le=3650)
    oauth_bot_reminder_days: str = "30,14,7,1"
    oauth_bot_scan_interval_hours: float = Field(default=24, gt=0, le=24 * 3650)
    # Expiry reminder DMs per minute, workspace-wide (and one per second per DM at most).
    oauth_bot_reminder_dms_per_minute: float = Field(default=300, gt=0, le=60_000)
    oauth_bot_owner_self_rotate: bool = False
    oauth_bot_max_open_requests: int = Field(default=5, ge=1)
    oauth_bot_max_requests_per_hour: int = Field(default=10, ge=1)
    oauth_bot_read_access_hours: float = Field(default=24, ge=0, le=24 * 3650)  # 0: keep
    # Usage-aware retirement (with AuditLog.Read.All and Entra ID P1): a retiring secret used
    # within the last this many hours is kept, and checked again daily for at most the other.
    oauth_bot_retire_quiet_hours: float = Field(default=24, gt=0, le=24 * 3650)
    oauth_bot_max_grace_days: float = Field(default=30, ge=0, le=3650)

    # Operations
    oauth_bot_retry_budget_seconds: float = Field(default=60, gt=0, le=86_400)
    # Whole seconds at least: the Slack clients take an int (0.5 would become no time at all).
    oauth_bot_http_timeout_seconds: float = Field(default=15, ge=1, le=3600)
    oauth_bot_verify_budget_seconds: float = Field(default=60, ge=0, le=86_400)
    oauth_bot_worker_threads: int = Field(default=4, ge=1, le=64)
    oauth_bot_lease_seconds: float = Field(default=60, gt=0, le=86_400)
    oauth_bot_poll_seconds: float = Field(default=5, gt=0, le=86_400)
    log_level: str = "INFO"
    log_format: str = "text"

    @field_validator("slack_api_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def socket_mode(self) -> bool:
        """The one mode decision: Socket Mode exactly when a non-empty app token is configured
        (then HTTP serves /healthz only); otherwise HTTP mode with signed /slack/events."""
        return bool(self.slack_app_token and self.slack_app_token.get_secret_value())

    @cached_property
    def admins(self) -> frozenset[str]:
        return frozenset(_csv(self.oauth_bot_admins))

    @cached_property
    def reminder_days(self) -> tuple[int, ...]:
        days = _csv(self.oauth_bot_reminder_days)
        if not days or not all(day.isdigit() and int(day) > 0 for day in days):
            raise ConfigError("OAUTH_BOT_REMINDER_DAYS must be positive whole numbers, e.g. 30,14,7,1")
        return tuple(sorted({int(day) for day in days}, reverse=True))

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
    def resource_manager_base(self) -> str:
        return (self.azure_resource_manager_url or self.cloud.resource_manager_url).rstrip("/")

    @property
    def read_access_enabled(self) -> bool:
        """Requesters get read access to their own secret (KEY_VAULT_RESOURCE_ID set)."""
        return bool(self.key_vault_resource_id)

    @property
    def authority_is_microsoft(self) -> bool:
        return urlsplit(self.authority_host).hostname in MICROSOFT_AUTHORITY_HOSTS

    def lifetime_choices(self, *, max_days: int | None = None) -> tuple[int, ...]:
        """The portal's lifetimes that the policy allows (the maximum itself is always one).
        `max_days`: a further cap from outside the configuration (the tenant's app management
        policy); the offered maximum is the smaller of it and OAUTH_BOT_MAX_SECRET_DAYS."""
        maximum = self.max_secret_days(max_days=max_days)
        allowed = [d for d in SECRET_LIFETIME_CHOICES if d <= maximum]
        if maximum not in allowed:
            allowed.append(maximum)
        return tuple(allowed)

    def max_secret_days(self, *, max_days: int | None = None) -> int:
        """The longest lifetime offered: OAUTH_BOT_MAX_SECRET_DAYS, or `max_days` if shorter."""
        configured = self.oauth_bot_max_secret_days
        return configured if max_days is None else max(1, min(configured, max_days))

    @property
    def secret_lifetime_choices(self) -> tuple[int, ...]:
        return self.lifetime_choices()

    def default_days(self, *, max_days: int | None = None) -> int:
        """The preselected lifetime, within `max_days` when a further cap applies (then the cap
        itself when the configured default is longer)."""
        return min(self.default_secret_days, self.max_secret_days(max_days=max_days))

    @property
    def default_secret_days(self) -> int:
        """The preselected lifetime: as configured (checked to be offered), else 180 days or
        the maximum if that is shorter."""
        if "oauth_bot_default_secret_days" in self.model_fields_set:
            return self.oauth_bot_default_secret_days
        return min(self.oauth_bot_default_secret_days, self.oauth_bot_max_secret_days)

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every listed variable that is unset."""
        missing = [name.upper() for name in names if not getattr(self, name)]
        if missing:
            raise ConfigError("missing configuration: " + ", ".join(missing))

    def missing_for_serve(self) -> list[Problem]:
        """What `serve` (and `scan`) need that is not set."""
        needed = ["slack_bot_token", "oauth_bot_approval_channel", "azure_tenant_id", "key_vault_url"]
        if self.azure_client_secret or self.azure_client_certificate_path:
            needed.append("azure_client_id")
        if not self.socket_mode:
            needed.append("slack_signing_secret")
        problems = [Problem((name.upper(),), "missing") for name in needed if not getattr(self, name)]
        if not self.admins:
            problems.append(Problem(("OAUTH_BOT_ADMINS",), "missing (comma-separated Slack user IDs)"))
        return problems

    def problems(self) -> list[Problem]:
        """Values that pass their type but would break later, alone or together. Messages name
        the variables and never repeat a token, a secret or the database URL."""
        found: list[Problem] = []

        def bad(message: str, *variables: str) -> None:
            found.append(Problem(variables, message))

        if self.default_secret_days not in self.secret_lifetime_choices:
            offered = ", ".join(str(days) for days in self.secret_lifetime_choices)
            maximum = self.oauth_bot_max_secret_days
            bad(
                f"{self.oauth_bot_default_secret_days} is not one of the offered lifetimes ({offered} "
                f"days: the portal's choices up to OAUTH_BOT_MAX_SECRET_DAYS={maximum})",
                "OAUTH_BOT_DEFAULT_SECRET_DAYS",
                "OAUTH_BOT_MAX_SECRET_DAYS",
            )
        try:
            self.reminder_days  # noqa: B018 - parses and checks
        except ConfigError:
            bad(
                "must be positive whole numbers separated by commas, e.g. 30,14,7,1",
                "OAUTH_BOT_REMINDER_DAYS",
            )
        for name, url in (
            ("SLACK_API_URL", self.slack_api_url),
            ("AZURE_AUTHORITY_HOST", self.authority_host),
            ("GRAPH_URL", self.graph_base),
            ("KEY_VAULT_URL", self.key_vault_url),
            ("AZURE_RESOURCE_MANAGER_URL", self.resource_manager_base),
        ):
            if url is not None and not _is_https_url(url):
                bad("must be an https URL with a host name, e.g. https://contoso-apps.vault.azure.net", name)
        for name, token, prefix in (
            ("SLACK_BOT_TOKEN", self.slack_bot_token, "xoxb-"),
            ("SLACK_APP_TOKEN", self.slack_app_token, "xapp-"),
        ):
            if token is not None and not token.get_secret_value().startswith(prefix):
                bad(f"must be a token that starts with {prefix} (the value is not shown)", name)
        wrong_ids = [user for user in _csv(self.oauth_bot_admins) if not SLACK_USER_ID.fullmatch(user)]
        if wrong_ids:
            bad(
                f"must be Slack member IDs such as U012AB3CD, comma-separated (not {', '.join(wrong_ids)})",
                "OAUTH_BOT_ADMINS",
            )
        resource_id = self.key_vault_resource_id
        if resource_id is not None and not KEY_VAULT_RESOURCE_ID.fullmatch(resource_id.rstrip("/")):
            bad(
                "must be the vault's resource ID, /subscriptions/GUID/resourceGroups/GROUP"
                "/providers/Microsoft.KeyVault/vaults/NAME (the vault's Properties page)",
                "KEY_VAULT_RESOURCE_ID",
            )
        found += self._logging_and_credential_problems()
        if not _is_supported_database(self.database_url):
            bad(
                "must be sqlite:///PATH or postgresql+psycopg://USER@HOST/DB (the value is not shown)",
                "DATABASE_URL",
            )
        return found


    def _logging_and_credential_problems(self) -> list[Problem]:
        found: list[Problem] = []
        if self.log_level.upper() not in LOG_LEVELS:
            found.append(Problem(("LOG_LEVEL",), f"must be one of {', '.join(LOG_LEVELS)}"))
        if self.log_format.lower() not in LOG_FORMATS:
            found.append(Problem(("LOG_FORMAT",), f"must be one of {', '.join(LOG_FORMATS)}"))
        if self.azure_client_secret and self.azure_client_certificate_path:
            found.append(
                Problem(
                    ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"),
                    "set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH, not both",
                )
            )
        certificate = self.azure_client_certificate_path
        if certificate and not Path(certificate).is_file():
            found.append(
                Problem(
                    ("AZURE_CLIENT_CERTIFICATE_PATH",),
                    "is not a readable file (a PEM with the private key and the certificate)",
                )
            )
        return found
    def require_for_serve(self) -> None:
        """Raise one ConfigError listing everything missing or wrong for `serve`."""
        problems = self.missing_for_serve() + self.problems()
        if problems:
            raise report(problems)


def _is_https_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme == "https" and bool(parts.hostname)
    except ValueError:
        return False


def _is_supported_database(url: str) -> bool:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False
    return (parsed.get_backend_name(), parsed.get_driver_name()) in DATABASE_DRIVERS


def load_settings(*, for_serve: bool = False, **values: Any) -> Settings:
    """Settings from the environment, the .env file and `values` (as Settings takes them),
    checked before anything starts. Raises one ConfigError listing every problem: values of
    the wrong type or out of range (pydantic's checks), values that contradict each other and,
    `for_serve`, what `serve` needs that is missing."""
    problems: list[Problem] = []
    try:
        settings = Settings(**values)
    except PydanticValidationError as error:
        invalid: dict[str, Problem] = {}
        for detail in error.errors(include_url=False, include_input=False):
            field = str(detail["loc"][0]) if detail["loc"] else ""
            invalid.setdefault(field, Problem((field.upper(),), _readable(detail["msg"])))
        problems = list(invalid.values())
        # The rest is checked with the invalid values set to their defaults; problems that
        # involve an invalid variable are left out (they are reported already).
        defaults = {
            field: Settings.model_fields[field].default for field in invalid if field in Settings.model_fields
        }
        settings = Settings(**{**values, **defaults})
    checked = settings.problems() + (settings.missing_for_serve() if for_serve else [])
    reported = {variable for problem in problems for variable in problem.variables}
    problems += [problem for problem in checked if not reported & set(problem.variables)]
    if problems:
        raise report(problems)
    return settings


def _readable(message: str) -> str:
    """pydantic's wording, made to read after the variable's name."""
    return message[:1].lower() + message[1:]
