"""What a tenant's app management policies allow a new client secret: the longest lifetime, and
whether a password may be added at all.

Entra applies an app's own app management policy (if one is assigned and enabled) instead of
the tenant's default policy; each policy lists restrictions on password credentials, each
`enabled` or `disabled` and applying to apps created after a date (or to all apps). Only
`passwordLifetime` (its `maxLifetime`) and `passwordAddition` concern oauth-bot's secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PASSWORD_LIFETIME = "passwordLifetime"
PASSWORD_ADDITION = "passwordAddition"
TENANT_DEFAULT = "the tenant's default app management policy"

FEDERATED_INSTEAD = (
    "Your tenant's app management policy does not allow client secrets on {what}. Ask for a "
    "federated credential instead (workload identity federation: GitHub Actions, Kubernetes or "
    "another identity provider signs in without a secret)."
)


@dataclass(frozen=True)
class PasswordRestriction:
    """One passwordCredentials restriction of an app management policy."""

    kind: str  # PASSWORD_LIFETIME | PASSWORD_ADDITION | another restriction type (ignored)
    enabled: bool
    max_lifetime: timedelta | None = None
    applies_to_apps_created_after: datetime | None = None  # None: every app

    def applies_to(self, created: datetime) -> bool:
        after = self.applies_to_apps_created_after
        return self.enabled and (after is None or created > after)


@dataclass(frozen=True)
class AppManagementPolicy:
    name: str
    enabled: bool
    restrictions: tuple[PasswordRestriction, ...] = ()


@dataclass(frozen=True)
class PasswordLimit:
    """What the policy in force allows a new client secret. `source` names that policy;
    `known` is False when the bot may not read the policies (then Entra alone decides)."""

    max_days: int | None = None
    passwords_allowed: bool = True
    source: str = ""
    known: bool = False

    def blocked_message(self, what: str = "new apps") -> str:
        return FEDERATED_INSTEAD.format(what=what)

    def capped(self, wanted: int) -> str | None:
        """What the card and the DM say when this limit shortens a lifetime of `wanted` days
        (None when it does not)."""
        if self.max_days is None or wanted <= self.max_days:
            return None
        return f"capped at {self.max_days} days by {self.source}"


UNKNOWN = PasswordLimit()


def password_limit(
    tenant: AppManagementPolicy | None,
    app_policies: tuple[AppManagementPolicy, ...],
    *,
    created: datetime,
) -> PasswordLimit:
    """The limit for an app created at `created`: its own enabled app management policies
    override the tenant default policy (when enabled); restrictions that are disabled, or
    apply only to apps created after `created`, do not count."""
    own = [p for p in app_policies if p.enabled]
    in_force = own or ([tenant] if tenant is not None and tenant.enabled else [])
    source = ", ".join(f"the app management policy {p.name!r}" for p in own) if own else TENANT_DEFAULT
    max_days: int | None = None
    allowed = True
    for policy in in_force:
        for restriction in policy.restrictions:
            if not restriction.applies_to(created):
                continue
            if restriction.kind == PASSWORD_ADDITION:
                allowed = False
            elif restriction.kind == PASSWORD_LIFETIME and restriction.max_lifetime is not None:
                days = int(restriction.max_lifetime / timedelta(days=1))
                max_days = days if max_days is None else min(max_days, days)
    if max_days is not None and max_days < 1:
        allowed = False  # no whole day fits: as good as no password at all
    return PasswordLimit(max_days=max_days, passwords_allowed=allowed, source=source, known=True)
