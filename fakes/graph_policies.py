"""The fake Graph's app management policies and sign-in reports (used by fakes/graph.py).

- `AppManagement`: the tenant's default app management policy (GET
  /v1.0/policies/defaultAppManagementPolicy, tenantAppManagementPolicy with
  `applicationRestrictions`), policies assigned to apps (GET
  /v1.0/applications/{id}/appManagementPolicies, appManagementPolicy with `restrictions`), and
  their enforcement on addPassword: an app's own enabled policies override the tenant default;
  enabled `passwordAddition` refuses any new password, enabled `passwordLifetime` one that
  lasts longer than `maxLifetime`, each only for apps created after
  `restrictForAppsCreatedAfterDateTime`. Reading needs Policy.Read.All.
- `SignInLog`: the beta app credential activity report (GET
  /beta/reports/appCredentialSignInActivities, `$filter=keyId eq '…'` or `appId eq '…'`) and
  service principal sign-ins (GET /beta/auditLogs/signIns). Both need AuditLog.Read.All (or
  Directory.Read.All) and a tenant with Entra ID P1 (`premium = False`: Graph's 403
  Authentication_RequestFromNonPremiumTenantOrB2CTenant).
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

POLICY_READ = frozenset(
    {"Policy.Read.All", "Policy.Read.ApplicationConfiguration", "Policy.ReadWrite.ApplicationConfiguration"}
)
AUDIT_READ = frozenset({"AuditLog.Read.All", "Directory.Read.All"})
DEFAULT_POLICY_ID = "00000000-0000-0000-0000-000000000000"
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_DAYS = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?)?")


class Refusal(Exception):
    """An error answer: (status, code, message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _refuse(status: int, code: str, message: str) -> NoReturn:
    raise Refusal(status, code, message)


def _denied() -> NoReturn:
    _refuse(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _lifetime(text: str) -> timedelta:
    match = _DAYS.fullmatch(text)
    if match is None or not any(match.groups()):
        _refuse(
            400, "BadRequest", f"Cannot convert the literal '{text}' to the expected type 'Edm.Duration'."
        )
    years, months, days, hours = (int(g or 0) for g in match.groups())
    return timedelta(days=years * 365 + months * 30 + days, hours=hours)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def password_restrictions(
    *, max_lifetime: str | None = None, block_passwords: bool = False, after: datetime | None = None
) -> list[dict[str, Any]]:
    """passwordCredentialConfiguration entries as the portal writes them."""
    restrictions = []
    start = _time(after) if after else "2019-01-01T00:00:00Z"
    if max_lifetime:
        restrictions.append(
            {
                "restrictionType": "passwordLifetime",
                "state": "enabled",
                "maxLifetime": max_lifetime,
                "restrictForAppsCreatedAfterDateTime": start,
                "excludeActors": None,
            }
        )
    if block_passwords:
        restrictions.append(
            {
                "restrictionType": "passwordAddition",
                "state": "enabled",
                "maxLifetime": None,
                "restrictForAppsCreatedAfterDateTime": start,
                "excludeActors": None,
            }
        )
    return restrictions


def tenant_policy(
    restrictions: list[dict[str, Any]] | None = None, *, enabled: bool = False
) -> dict[str, Any]:
    return {
        "id": DEFAULT_POLICY_ID,
        "displayName": "Default app management tenant policy",
        "description": "Default tenant policy that enforces app management restrictions on applications "
        "and service principals. To apply policy to targeted resources, create a new policy under "
        "appManagementPolicies collection.",
        "isEnabled": enabled,
        "applicationRestrictions": {
            "passwordCredentials": list(restrictions or []),
            "keyCredentials": [],
            "identifierUris": None,
        },
        "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []},
    }


@dataclass
class AppManagement:
    tenant: dict[str, Any] = field(default_factory=tenant_policy)
    assigned: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # app object id -> policies

    def set_tenant(self, restrictions: list[dict[str, Any]] | None) -> None:
        """The tenant default: these restrictions, enabled (None: the unconfigured default)."""
        self.tenant = tenant_policy(restrictions, enabled=restrictions is not None)

    def assign(self, object_id: str, name: str, restrictions: list[dict[str, Any]]) -> str:
        policy_id = str(uuid.uuid4())
        self.assigned.setdefault(object_id, []).append(
            {
                "id": policy_id,
                "displayName": name,
                "description": name,
                "isEnabled": True,
                "restrictions": {"passwordCredentials": restrictions, "keyCredentials": []},
            }
        )
        return policy_id

    def read_tenant(self, roles: set[str], context: str) -> dict[str, Any]:
        if not roles & POLICY_READ:
            _denied()
        return {"@odata.context": context, **self.tenant}

    def read_assigned(self, roles: set[str], object_id: str, context: str) -> dict[str, Any]:
        """The app's policies: a policy read role, besides reading the app (fakes/graph.py checks
        that: Application.Read.All or owning it), as appliesTo documents for the other direction."""
        if not roles & POLICY_READ:
            _denied()
        return {"@odata.context": context, "value": list(self.assigned.get(object_id, []))}

    def check_password(self, object_id: str, created: datetime, start: datetime, end: datetime) -> None:
        """Refuse a new password as Entra would under the policy in force for this app."""
        own = [p for p in self.assigned.get(object_id, []) if p["isEnabled"]]
        in_force = [(p["id"], p["restrictions"]) for p in own] or (
            [(self.tenant["id"], self.tenant["applicationRestrictions"])] if self.tenant["isEnabled"] else []
        )
        for policy_id, held in in_force:
            for restriction in held.get("passwordCredentials") or []:
                after = restriction.get("restrictForAppsCreatedAfterDateTime")
                applies = after is None or created > datetime.fromisoformat(after.replace("Z", "+00:00"))
                if restriction.get("state") != "enabled" or not applies:
                    continue
                if restriction["restrictionType"] == "passwordAddition":
                    # The code could not be confirmed against the service; the message follows
                    # the lifetime refusal's wording, which is documented in public issues.
                    _refuse(
                        400,
                        "CredentialTypeNotAllowedAsPerAppPolicy",
                        f"Password credentials are not allowed as per assigned policy '{policy_id}'.",
                    )
                limit = restriction.get("maxLifetime")
                if (
                    restriction["restrictionType"] == "passwordLifetime"
                    and limit
                    and end - start > _lifetime(limit)
                ):
                    _refuse(
                        400,
                        "CredentialInvalidLifetimeAsPerAppPolicy",
                        "Credential lifetime exceeds the max value allowed as per assigned policy "
                        f"'{policy_id}'.",
                    )


@dataclass(frozen=True)
class SignIn:
    at: datetime
    app_id: str
    app_object_id: str
    key_id: str
    ip_address: str
    resource: str
    resource_id: str


@dataclass
class SignInLog:
    premium: bool = True
    sign_ins: list[SignIn] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, sign_in: SignIn) -> None:
        with self.lock:
            self.sign_ins.append(sign_in)

    def _may_read(self, roles: set[str]) -> None:
        if not roles & AUDIT_READ:
            _denied()
        if not self.premium:
            _refuse(
                403,
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                "Neither tenant is B2C or tenant doesn't have premium license",
            )

    def credential_activities(
        self, roles: set[str], query: dict[str, list[str]], base: str
    ) -> dict[str, Any]:
        self._may_read(roles)
        _only_options(query, {"$filter", "$top"})
        text = (query.get("$filter") or [""])[0]
        match = re.fullmatch(rf"\s*(keyId|appId)\s+eq\s+'({_GUID})'\s*", text)
        if match is None:
            _refuse(400, "BadRequest", f"Invalid filter clause: '{text}'. Filter by keyId or appId with eq.")
        name, value = match.group(1), match.group(2).lower()
        with self.lock:
            latest: dict[str, SignIn] = {}
            for sign_in in self.sign_ins:
                if (sign_in.key_id if name == "keyId" else sign_in.app_id).lower() != value:
                    continue
                if sign_in.key_id not in latest or latest[sign_in.key_id].at < sign_in.at:
                    latest[sign_in.key_id] = sign_in
        return {
            "@odata.context": f"{base}/beta/$metadata#reports/appCredentialSignInActivities",
            "value": [_activity(s) for s in latest.values()],
        }

    def service_principal_sign_ins(
        self, roles: set[str], query: dict[str, list[str]], base: str
    ) -> dict[str, Any]:
        """Service principal sign-ins, newest first: the filter must ask for them
        (signInEventTypes/any(t: t eq 'servicePrincipal')); appId eq and createdDateTime ge too."""
        self._may_read(roles)
        _only_options(query, {"$filter", "$top"})
        text = (query.get("$filter") or [""])[0]
        app_id, since, service_principal = None, None, False
        for clause in re.split(r"\s+and\s+", text.strip()):
            if m := re.fullmatch(rf"appId eq '({_GUID})'", clause):
                app_id = m.group(1).lower()
            elif m := re.fullmatch(r"createdDateTime ge (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)", clause):
                since = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
            elif re.fullmatch(r"signInEventTypes/any\(t:\s*t eq 'servicePrincipal'\)", clause):
                service_principal = True
            else:
                _refuse(400, "BadRequest", f"Invalid filter clause: '{clause}'.")
        top = int((query.get("$top") or ["1000"])[0])
        if not 1 <= top <= 1000:
            _refuse(400, "BadRequest", f"Invalid page size specified: '{top}'.")
        with self.lock:
            found = [
                s
                for s in self.sign_ins
                if service_principal
                and (app_id is None or s.app_id.lower() == app_id)
                and (since is None or s.at >= since)
            ]
        found.sort(key=lambda s: s.at, reverse=True)
        return {
            "@odata.context": f"{base}/beta/$metadata#auditLogs/signIns",
            "value": [_sign_in(s) for s in found[:top]],
        }


def _only_options(query: dict[str, list[str]], allowed: set[str]) -> None:
    for option in query:
        if option.startswith("$") and option not in allowed:
            _refuse(400, "BadRequest", f"Query option '{option}' is not allowed.")


def _activity(sign_in: SignIn) -> dict[str, Any]:
    ident = base64.b64encode(f"{sign_in.key_id}|application".encode()).decode()
    return {
        "id": ident,
        "keyId": sign_in.key_id,
        "keyType": "clientSecret",
        "keyUsage": "verify",
        "appId": sign_in.app_id,
        "appObjectId": sign_in.app_object_id,
        "servicePrincipalObjectId": None,
        "resourceId": sign_in.resource_id,
        "credentialOrigin": "application",
        "createdDateTime": None,
        "expirationDateTime": None,
        "signInActivity": {"lastSignInDateTime": _time(sign_in.at), "lastSignInRequestId": str(uuid.uuid4())},
    }


def _sign_in(sign_in: SignIn) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "createdDateTime": _time(sign_in.at),
        "appId": sign_in.app_id,
        "ipAddress": sign_in.ip_address,
        "resourceDisplayName": sign_in.resource,
        "resourceId": sign_in.resource_id,
        "signInEventTypes": ["servicePrincipal"],
        "servicePrincipalCredentialKeyId": sign_in.key_id,
        "isInteractive": False,
        "status": {"errorCode": 0, "failureReason": None},
    }
