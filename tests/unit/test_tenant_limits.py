"""The tenant's limits as rules: ISO 8601 lifetimes, which policy is in force for an app, the one
lifetime computation with the tenant's cap as an input, and the retirement settings' checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.azure.policies import duration
from bot.config import Settings, load_settings
from bot.core.errors import ConfigError, ValidationError
from bot.core.lifetimes import (
    PASSWORD_ADDITION,
    PASSWORD_LIFETIME,
    TENANT_DEFAULT,
    AppManagementPolicy,
    PasswordLimit,
    PasswordRestriction,
    password_limit,
)
from bot.core.validation import validate_new_app

CREATED = datetime(2026, 6, 1, tzinfo=UTC)


def _lifetime(days: int, *, enabled: bool = True, after: datetime | None = None) -> PasswordRestriction:
    return PasswordRestriction(PASSWORD_LIFETIME, enabled, timedelta(days=days), after)


def _policy(
    *restrictions: PasswordRestriction, name: str = "tenant", enabled: bool = True
) -> AppManagementPolicy:
    return AppManagementPolicy(name, enabled, restrictions)


@pytest.mark.parametrize(
    ("text", "days"),
    [("P90D", 90), ("P1Y", 365), ("P6M", 180), ("P2W", 14), ("P1DT12H", 1.5), ("p30d", 30), ("PT36H", 1.5)],
)
def test_iso_8601_lifetimes_are_read_in_days(text: str, days: float) -> None:
    """maxLifetime's forms, a year as 365 days and a month as 30 (never longer than Entra's)."""
    assert duration(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "P", "90D", "P90", "PXD", "P1D2"])
def test_what_is_not_a_duration_is_none(text: str) -> None:
    assert duration(text) is None


def test_the_apps_own_policy_overrides_the_tenant_default() -> None:
    """Tenant 365 days, the app's own 30: 30, named after the app's policy; disabled own policies
    leave the tenant's in force."""
    tenant = _policy(_lifetime(365))
    own = _policy(_lifetime(30), name="Short secrets")
    limit = password_limit(tenant, (own,), created=CREATED)
    assert (limit.max_days, limit.passwords_allowed, limit.known) == (30, True, True)
    assert limit.source == "the app management policy 'Short secrets'"
    off = _policy(_lifetime(30), name="off", enabled=False)
    assert password_limit(tenant, (off,), created=CREATED).max_days == 365
    assert password_limit(tenant, (off,), created=CREATED).source == TENANT_DEFAULT


def test_disabled_later_and_unrelated_restrictions_do_not_count() -> None:
    """A disabled restriction, one for apps created after this one, another type: no limit; a
    disabled tenant policy: none either; the shortest of two lifetimes wins."""
    tenant = _policy(
        _lifetime(10, enabled=False),
        _lifetime(20, after=CREATED + timedelta(days=1)),
        PasswordRestriction("symmetricKeyLifetime", True, timedelta(days=1)),
    )
    assert password_limit(tenant, (), created=CREATED).max_days is None
    assert password_limit(_policy(_lifetime(5), enabled=False), (), created=CREATED).max_days is None
    assert password_limit(_policy(_lifetime(90), _lifetime(60)), (), created=CREATED).max_days == 60


def test_password_addition_or_less_than_a_day_allows_no_secret() -> None:
    blocked = _policy(PasswordRestriction(PASSWORD_ADDITION, True))
    assert not password_limit(blocked, (), created=CREATED).passwords_allowed
    hours = _policy(PasswordRestriction(PASSWORD_LIFETIME, True, timedelta(hours=12)))
    assert not password_limit(hours, (), created=CREATED).passwords_allowed


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_tenants_cap_is_one_more_input_to_the_one_lifetime_computation() -> None:
    """max_days caps the offered lifetimes, the maximum and the default together; the smaller of
    it and OAUTH_BOT_MAX_SECRET_DAYS wins; no cap: as configured."""
    settings = _settings()
    assert settings.lifetime_choices() == settings.secret_lifetime_choices == (90, 180, 365)
    assert settings.lifetime_choices(max_days=120) == (90, 120)
    assert settings.lifetime_choices(max_days=30) == (30,)
    assert settings.lifetime_choices(max_days=500) == (90, 180, 365)
    assert (settings.default_days(), settings.default_days(max_days=120)) == (180, 120)


def _form(days: str) -> dict[str, str | None]:
    return {
        "name": "billing-api",
        "audience": "AzureADMyOrg",
        "redirect_uri": None,
        "platform": None,
        "secret_description": None,
        "secret_days": days,
        "justification": "Billing calls Graph",
    }


def test_the_form_check_takes_the_tenants_limit() -> None:
    """Within the tenant's 120 days: accepted; beyond: the field error names the tenant's policy;
    passwords not allowed: the field error says to ask for a federated credential."""
    limit = PasswordLimit(max_days=120, source=TENANT_DEFAULT, known=True)
    assert validate_new_app(_settings(), limit, **_form("120")).secret_days == 120
    with pytest.raises(ValidationError) as long:
        validate_new_app(_settings(), limit, **_form("180"))
    assert "120 days (4 months) (the tenant's default app management policy allows no longer)" in str(
        long.value
    )
    with pytest.raises(ValidationError) as blocked:
        validate_new_app(_settings(), PasswordLimit(passwords_allowed=False, known=True), **_form("90"))
    assert "federated credential" in blocked.value.fields["secret_expiry"]


def test_the_retirement_settings_are_checked_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Defaults 24 hours and 30 days; a zero quiet period or a negative maximum is refused at
    start, naming each variable."""
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert (settings.oauth_bot_retire_quiet_hours, settings.oauth_bot_max_grace_days) == (24, 30)
    monkeypatch.setenv("OAUTH_BOT_RETIRE_QUIET_HOURS", "0")
    monkeypatch.setenv("OAUTH_BOT_MAX_GRACE_DAYS", "-1")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "OAUTH_BOT_RETIRE_QUIET_HOURS: input should be greater than 0" in str(refused.value)
    assert "OAUTH_BOT_MAX_GRACE_DAYS: input should be greater than or equal to 0" in str(refused.value)
