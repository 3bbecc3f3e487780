"""Configuration: empty values are unset, and bad values fail at start in one readable message."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.core.errors import ConfigError

# A complete configuration for `serve` (HTTP mode), as an operator would write it.
GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1-good-bot-token",
    "SLACK_SIGNING_SECRET": "good-signing-secret",
    "OAUTH_BOT_APPROVAL_CHANNEL": "C0APPROVALS",
    "OAUTH_BOT_ADMINS": "U0ADMIN001,U0ADMIN002",
    "AZURE_TENANT_ID": "8c7a1b2e-5f3d-4e6a-9b1c-2d3e4f5a6b7c",
    "AZURE_CLIENT_ID": "0b07b07b-0000-4000-8000-00000000b07b",
    "AZURE_CLIENT_SECRET": "bot-credential",
    "KEY_VAULT_URL": "https://contoso-apps.vault.azure.net",
}


@pytest.fixture(autouse=True)
def _good_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts from the complete configuration, in a directory without a .env file."""
    monkeypatch.chdir(tmp_path)
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)


def _problems(monkeypatch: pytest.MonkeyPatch, **environment: str) -> str:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_settings(for_serve=True)
    return str(refused.value)


def test_the_complete_configuration_loads() -> None:
    """The good configuration passes every check: HTTP mode, the default lifetimes."""
    settings = load_settings(for_serve=True)
    assert not settings.socket_mode
    assert settings.default_secret_days == 180
    assert settings.secret_lifetime_choices == (90, 180, 365)


def test_empty_values_in_the_environment_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SLACK_APP_TOKEN=` (present, empty) is unset: HTTP mode, so the signing secret is still
    required; the same holds for every variable (an empty PORT or lifetime takes the default)."""
    monkeypatch.setenv("SLACK_APP_TOKEN", "")
    monkeypatch.setenv("PORT", "")
    monkeypatch.setenv("OAUTH_BOT_DEFAULT_SECRET_DAYS", "")
    settings = load_settings(for_serve=True)
    assert settings.slack_app_token is None and not settings.socket_mode
    assert settings.port == 3000 and settings.default_secret_days == 180
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET: missing"):
        load_settings(for_serve=True)


def test_empty_lines_in_the_env_file_count_as_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`SLACK_APP_TOKEN=` in .env is unset too: HTTP mode, defaults for the other empty lines."""
    (tmp_path / ".env").write_text("SLACK_APP_TOKEN=\nOAUTH_BOT_WORKER_THREADS=\nLOG_LEVEL=\n")
    settings = load_settings(for_serve=True)
    assert settings.slack_app_token is None and not settings.socket_mode
    assert settings.oauth_bot_worker_threads == 4 and settings.log_level == "INFO"


def test_an_app_token_means_socket_mode_without_a_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-empty SLACK_APP_TOKEN is Socket Mode, where no signing secret is needed."""
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A0FAKEAPP-1-socket")
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    assert load_settings(for_serve=True).socket_mode


def test_a_shorter_maximum_lowers_the_unset_default_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only OAUTH_BOT_MAX_SECRET_DAYS=90 set, the preselected lifetime is 90 days, not an error."""
    monkeypatch.setenv("OAUTH_BOT_MAX_SECRET_DAYS", "90")
    settings = load_settings(for_serve=True)
    assert settings.default_secret_days == 90 and settings.secret_lifetime_choices == (90,)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"OAUTH_BOT_DEFAULT_SECRET_DAYS": "100"}, "OAUTH_BOT_DEFAULT_SECRET_DAYS: 100 is not one of"),
        (
            {"OAUTH_BOT_DEFAULT_SECRET_DAYS": "365", "OAUTH_BOT_MAX_SECRET_DAYS": "180"},
            "OAUTH_BOT_DEFAULT_SECRET_DAYS: 365 is not one of the offered lifetimes (90, 180 days",
        ),
        ({"OAUTH_BOT_MAX_SECRET_DAYS": "1000"}, "OAUTH_BOT_MAX_SECRET_DAYS: input should be less than"),
        ({"OAUTH_BOT_REMINDER_DAYS": "30,0"}, "OAUTH_BOT_REMINDER_DAYS: must be positive whole numbers"),
        ({"OAUTH_BOT_REMINDER_DAYS": "14,-7"}, "OAUTH_BOT_REMINDER_DAYS: must be positive whole numbers"),
        ({"OAUTH_BOT_REMINDER_DAYS": "7.5"}, "OAUTH_BOT_REMINDER_DAYS: must be positive whole numbers"),
        ({"OAUTH_BOT_REMINDER_DAYS": ","}, "OAUTH_BOT_REMINDER_DAYS: must be positive whole numbers"),
        ({"PORT": "70000"}, "PORT: input should be less than or equal to 65535"),
        ({"PORT": "-1"}, "PORT: input should be greater than or equal to 0"),
        ({"OAUTH_BOT_WORKER_THREADS": "abc"}, "OAUTH_BOT_WORKER_THREADS: input should be a valid integer"),
        ({"OAUTH_BOT_LEASE_SECONDS": "inf"}, "OAUTH_BOT_LEASE_SECONDS: input should be a finite number"),
        ({"OAUTH_BOT_POLL_SECONDS": "nan"}, "OAUTH_BOT_POLL_SECONDS: input should be a finite number"),
        ({"OAUTH_BOT_SCAN_INTERVAL_HOURS": "1e12"}, "OAUTH_BOT_SCAN_INTERVAL_HOURS: input should be less"),
        (
            {"OAUTH_BOT_HTTP_TIMEOUT_SECONDS": "0.5"},
            "OAUTH_BOT_HTTP_TIMEOUT_SECONDS: input should be greater",
        ),
        (
            {"OAUTH_BOT_OWNER_SELF_ROTATE": "maybe"},
            "OAUTH_BOT_OWNER_SELF_ROTATE: input should be a valid boolean",
        ),
        ({"AZURE_CLOUD": "mars"}, "AZURE_CLOUD: input should be 'public', 'usgov' or 'china'"),
        ({"SLACK_API_URL": "http://slack.com/api/"}, "SLACK_API_URL: must be an https URL"),
        ({"GRAPH_URL": "https://"}, "GRAPH_URL: must be an https URL"),
        ({"AZURE_AUTHORITY_HOST": "login.microsoftonline.com"}, "AZURE_AUTHORITY_HOST: must be an https URL"),
        ({"KEY_VAULT_URL": "http://contoso.vault.azure.net"}, "KEY_VAULT_URL: must be an https URL"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"LOG_FORMAT": "logfmt"}, "LOG_FORMAT: must be one of text, json"),
        ({"OAUTH_BOT_ADMINS": "U0ADMIN001,@alex"}, "OAUTH_BOT_ADMINS: must be Slack member IDs"),
        (
            {"SLACK_APP_TOKEN": "xoxb-1-a-bot-token-by-mistake"},
            "SLACK_APP_TOKEN: must be a token that starts with xapp-",
        ),
        (
            {"SLACK_BOT_TOKEN": "xapp-1-an-app-token-by-mistake"},
            "SLACK_BOT_TOKEN: must be a token that starts with xoxb-",
        ),
        ({"AZURE_CLIENT_CERTIFICATE_PATH": __file__}, "AZURE_CLIENT_SECRET: set AZURE_CLIENT_SECRET or"),
        ({"DATABASE_URL": "oauth-bot.db"}, "DATABASE_URL: must be sqlite:///PATH or postgresql+psycopg://"),
        (
            {"DATABASE_URL": "mysql://bot@db/bot"},
            "DATABASE_URL: must be sqlite:///PATH or postgresql+psycopg://",
        ),
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN: missing"),
        ({"OAUTH_BOT_ADMINS": " , "}, "OAUTH_BOT_ADMINS: missing"),
    ],
)
def test_each_problem_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    """Each bad, contradictory or missing value is reported with its variable's name and what to
    do, before anything starts: never a pydantic dump, a traceback or a later crash."""
    message = _problems(monkeypatch, **environment)
    assert expected in message, message
    assert "1 problem(s)" in message
    for noise in ("pydantic", "validation error", "Traceback", "For further information"):
        assert noise not in message


def test_a_certificate_that_is_not_there_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """AZURE_CLIENT_CERTIFICATE_PATH pointing nowhere fails at start, not at the first token."""
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    message = _problems(monkeypatch, AZURE_CLIENT_CERTIFICATE_PATH="/nonexistent/bot.pem")
    assert "AZURE_CLIENT_CERTIFICATE_PATH: is not a readable file" in message


def test_several_problems_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrong types, contradictions and missing values come in one message, one line each."""
    monkeypatch.delenv("KEY_VAULT_URL")
    message = _problems(
        monkeypatch,
        OAUTH_BOT_WORKER_THREADS="abc",
        OAUTH_BOT_DEFAULT_SECRET_DAYS="100",
        OAUTH_BOT_REMINDER_DAYS="30,soon",
        LOG_LEVEL="loud",
        PORT="http",
    )
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    named = sorted(line.split(":")[0].removeprefix("  - ") for line in lines)
    assert named == [
        "KEY_VAULT_URL",
        "LOG_LEVEL",
        "OAUTH_BOT_DEFAULT_SECRET_DAYS",
        "OAUTH_BOT_REMINDER_DAYS",
        "OAUTH_BOT_WORKER_THREADS",
        "PORT",
    ], message
    assert "6 problem(s)" in message


def test_a_problem_caused_by_an_invalid_variable_is_not_reported_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An invalid maximum lifetime is reported once, not also as a default that it does not offer."""
    message = _problems(monkeypatch, OAUTH_BOT_MAX_SECRET_DAYS="lots", OAUTH_BOT_DEFAULT_SECRET_DAYS="545")
    assert "OAUTH_BOT_MAX_SECRET_DAYS: input should be a valid integer" in message
    assert "1 problem(s)" in message


def test_messages_never_repeat_a_token_or_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values that may be secret are named, never shown."""
    message = _problems(
        monkeypatch,
        SLACK_BOT_TOKEN="not-a-token-but-secret-1234",
        DATABASE_URL="mysql://bot:hunter2-password@db/bot",
        OAUTH_BOT_HTTP_TIMEOUT_SECONDS="private-7781",
    )
    for value in ("not-a-token-but-secret-1234", "hunter2-password", "private-7781"):
        assert value not in message
    assert "SLACK_BOT_TOKEN" in message and "DATABASE_URL" in message


VAULT_ID = (
    "/subscriptions/3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/resourceGroups/apps"
    "/providers/Microsoft.KeyVault/vaults/contoso-apps"
)


@pytest.mark.parametrize(
    ("cloud", "expected"),
    [
        ("public", "https://management.azure.com"),
        ("usgov", "https://management.usgovcloudapi.net"),
        ("china", "https://management.chinacloudapi.cn"),
    ],
)
def test_read_access_is_off_by_default_and_resource_manager_follows_the_cloud(
    monkeypatch: pytest.MonkeyPatch, cloud: str, expected: str
) -> None:
    """Without KEY_VAULT_RESOURCE_ID per-secret read access is off; Resource Manager's URL is
    preset per AZURE_CLOUD; access lasts 24 hours unless set (0 = keep)."""
    monkeypatch.setenv("AZURE_CLOUD", cloud)
    settings = load_settings(for_serve=True)
    assert not settings.read_access_enabled
    assert settings.resource_manager_base == expected
    assert settings.oauth_bot_read_access_hours == 24
    monkeypatch.setenv("KEY_VAULT_RESOURCE_ID", VAULT_ID)
    monkeypatch.setenv("OAUTH_BOT_READ_ACCESS_HOURS", "0")
    settings = load_settings(for_serve=True)
    assert settings.read_access_enabled and settings.oauth_bot_read_access_hours == 0


def test_bad_read_access_settings_are_named_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A vault resource ID of the wrong shape, a plain-http Resource Manager URL and a negative
    duration are each reported with their variable."""
    message = _problems(
        monkeypatch,
        KEY_VAULT_RESOURCE_ID="contoso-apps",
        AZURE_RESOURCE_MANAGER_URL="http://management.azure.com",
        OAUTH_BOT_READ_ACCESS_HOURS="-1",
    )
    assert "KEY_VAULT_RESOURCE_ID: must be the vault's resource ID" in message
    assert "AZURE_RESOURCE_MANAGER_URL: must be an https URL" in message
    assert "OAUTH_BOT_READ_ACCESS_HOURS" in message
