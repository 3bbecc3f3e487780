"""Graph's answers about app management policies and sign-in activity, read into the domain.

- tenantAppManagementPolicy (`applicationRestrictions`) and appManagementPolicy
  (`restrictions`): `passwordCredentials` is a list of passwordCredentialConfiguration
  (restrictionType, state, maxLifetime as an ISO 8601 duration, restrictForAppsCreatedAfterDateTime);
- appCredentialSignInActivity (beta): keyId, signInActivity.lastSignInDateTime;
- signIn (beta, servicePrincipal sign-ins): createdDateTime, ipAddress, resourceDisplayName.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from bot.core.clock import parse_iso
from bot.core.lifetimes import AppManagementPolicy, PasswordRestriction
from bot.core.model import CredentialUsage, SignInDetail

# Edm.Duration (xs:dayTimeDuration; Graph also answers P1Y / P6M forms in maxLifetime).
DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


def duration(text: str) -> timedelta | None:
    """An ISO 8601 duration (a year counted as 365 days, a month as 30: never longer than
    Entra's own count), or None if it is not one."""
    match = DURATION.fullmatch(text.strip().upper())
    if match is None or not any(match.groupdict().values()):
        return None
    part = {name: float(value or 0) for name, value in match.groupdict().items()}
    return timedelta(
        days=part["years"] * 365 + part["months"] * 30 + part["weeks"] * 7 + part["days"],
        hours=part["hours"],
        minutes=part["minutes"],
        seconds=part["seconds"],
    )


def _restriction(data: dict[str, Any]) -> PasswordRestriction:
    lifetime = data.get("maxLifetime")
    after = data.get("restrictForAppsCreatedAfterDateTime")
    return PasswordRestriction(
        kind=str(data.get("restrictionType") or ""),
        enabled=str(data.get("state") or "enabled") == "enabled",
        max_lifetime=duration(str(lifetime)) if lifetime else None,
        applies_to_apps_created_after=parse_iso(str(after)) if after else None,
    )


def app_management_policy(data: dict[str, Any], *, restrictions: str) -> AppManagementPolicy:
    """A policy as Graph sends it; `restrictions` names the property holding them."""
    held = data.get(restrictions) or {}
    return AppManagementPolicy(
        name=str(data.get("displayName") or data.get("id") or ""),
        enabled=bool(data.get("isEnabled")),
        restrictions=tuple(_restriction(r) for r in held.get("passwordCredentials") or ()),
    )


def credential_usage(data: dict[str, Any]) -> CredentialUsage:
    last = (data.get("signInActivity") or {}).get("lastSignInDateTime")
    return CredentialUsage(
        key_id=str(data.get("keyId") or ""), last_sign_in=parse_iso(str(last)) if last else None
    )


def sign_in_detail(data: dict[str, Any]) -> SignInDetail:
    return SignInDetail(
        at=parse_iso(str(data["createdDateTime"])),
        ip_address=str(data["ipAddress"]) if data.get("ipAddress") else None,
        resource=str(data.get("resourceDisplayName") or data.get("resourceId") or "") or None,
    )
