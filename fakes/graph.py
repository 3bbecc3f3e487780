"""A fake Microsoft Graph v1.0: applications, their passwords and owners, service principals, users.

Strict like the real service: bearer tokens from FakeEntra for this server's URL, app-only
permissions from the token's `roles`, unknown properties refused, OData key forms
(`/applications(appId='...')`, `/applications(uniqueName='...')`), paging with
`@odata.nextLink`, and the eventual consistency that bites real callers (replication delay
after a create, secret propagation delay before a new secret signs in).

Error codes and messages follow what the real service answers; where that could not be
confirmed, the comment at the check says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlencode, urlsplit

from fakes.base import FakeServer, Request, Response
from fakes.entra import FakeEntra, service_principal_object_id
from fakes.graph_federation import FEDERATED_PROPERTIES, FederatedCredentials, FederatedFailure
from fakes.graph_policies import AppManagement, Refusal, SignIn, SignInLog, password_restrictions
from fakes.tls import TestCA

SIGN_IN_AUDIENCES = (
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
)
PERSONAL_AUDIENCES = frozenset({"AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"})
MAX_PERSONAL_PASSWORDS = 2

APP_READWRITE_ALL = "Application.ReadWrite.All"
APP_READWRITE_OWNED = "Application.ReadWrite.OwnedBy"
_WRITE_ALL = frozenset({APP_READWRITE_ALL, "Directory.ReadWrite.All"})
_READ_ALL = _WRITE_ALL | {"Application.Read.All", "Directory.Read.All"}
_DIRECTORY_READ = frozenset({"Directory.Read.All", "Directory.ReadWrite.All"})  # getByIds
# getByIds' `types` values the fake knows (the real one takes any directoryObject subtype).
_DIRECTORY_TYPES = frozenset({"directoryobject", "user", "group", "serviceprincipal", "application"})
MAX_GET_BY_IDS = 1000
_USER_READ = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)

# EntityType application in graph-v1.0-Prod.csdl, plus what it inherits from directoryObject.
APPLICATION_PROPERTIES = frozenset(
    {
        "id",
        "deletedDateTime",
        "addIns",
        "api",
        "appId",
        "applicationTemplateId",
        "appRoles",
        "authenticationBehaviors",
        "certification",
        "createdByAppId",
        "createdDateTime",
        "defaultRedirectUri",
        "description",
        "disabledByMicrosoftStatus",
        "displayName",
        "groupMembershipClaims",
        "identifierUris",
        "info",
        "isDeviceOnlyAuthSupported",
        "isDisabled",
        "isFallbackPublicClient",
        "keyCredentials",
        "logo",
        "managerApplications",
        "nativeAuthenticationApisEnabled",
        "notes",
        "oauth2RequirePostResponse",
        "optionalClaims",
        "parentalControlSettings",
        "passwordCredentials",
        "publicClient",
        "publisherDomain",
        "requestSignatureVerification",
        "requiredResourceAccess",
        "samlMetadataUrl",
        "serviceManagementReference",
        "servicePrincipalLockConfiguration",
        "signInAudience",
        "spa",
        "tags",
        "tokenEncryptionKeyId",
        "uniqueName",
        "verifiedPublisher",
        "web",
    }
)
_READ_ONLY = frozenset(
    {
        "id",
        "deletedDateTime",
        "appId",
        "createdByAppId",
        "createdDateTime",
        "disabledByMicrosoftStatus",
        "publisherDomain",
        "logo",
    }
)
_COLLECTIONS = frozenset(
    {
        "addIns",
        "appRoles",
        "identifierUris",
        "keyCredentials",
        "managerApplications",
        "passwordCredentials",
        "requiredResourceAccess",
        "tags",
    }
)
_STRINGS = frozenset(
    {
        "displayName",
        "uniqueName",
        "signInAudience",
        "notes",
        "description",
        "groupMembershipClaims",
        "serviceManagementReference",
        "samlMetadataUrl",
        "defaultRedirectUri",
        "applicationTemplateId",
        "tokenEncryptionKeyId",
    }
)
# Complex properties whose members the fake checks (ComplexTypes in the CSDL).
_COMPLEX_MEMBERS: dict[str, frozenset[str]] = {
    "web": frozenset(
        {"homePageUrl", "implicitGrantSettings", "logoutUrl", "redirectUris", "redirectUriSettings"}
    ),
    "spa": frozenset({"redirectUris"}),
    "publicClient": frozenset({"redirectUris"}),
    "api": frozenset(
        {
            "acceptMappedClaims",
            "knownClientApplications",
            "oauth2PermissionScopes",
            "preAuthorizedApplications",
            "requestedAccessTokenVersion",
        }
    ),
    "info": frozenset({"logoUrl", "marketingUrl", "privacyStatementUrl", "supportUrl", "termsOfServiceUrl"}),
    "parentalControlSettings": frozenset({"countriesBlockedForMinors", "legalAgeGroupRule"}),
}
# What GET returns without $select (the real default set leaves some out, e.g. logo).
_DEFAULT_SELECT = (
    "id",
    "deletedDateTime",
    "appId",
    "applicationTemplateId",
    "disabledByMicrosoftStatus",
    "createdDateTime",
    "displayName",
    "description",
    "groupMembershipClaims",
    "identifierUris",
    "isDeviceOnlyAuthSupported",
    "isFallbackPublicClient",
    "nativeAuthenticationApisEnabled",
    "notes",
    "publisherDomain",
    "serviceManagementReference",
    "signInAudience",
    "tags",
    "tokenEncryptionKeyId",
    "uniqueName",
    "samlMetadataUrl",
    "defaultRedirectUri",
    "certification",
    "optionalClaims",
    "servicePrincipalLockConfiguration",
    "requestSignatureVerification",
    "addIns",
    "api",
    "appRoles",
    "info",
    "keyCredentials",
    "parentalControlSettings",
    "passwordCredentials",
    "publicClient",
    "requiredResourceAccess",
    "verifiedPublisher",
    "web",
    "spa",
)
PASSWORD_CREDENTIAL_PROPERTIES = frozenset(
    {
        "customKeyIdentifier",
        "displayName",
        "endDateTime",
        "hint",
        "keyId",
        "secretText",
        "startDateTime",
    }
)
SERVICE_PRINCIPAL_PROPERTIES = frozenset(
    {
        "accountEnabled",
        "addIns",
        "alternativeNames",
        "appDescription",
        "appDisplayName",
        "appId",
        "applicationTemplateId",
        "appOwnerOrganizationId",
        "appRoleAssignmentRequired",
        "appRoles",
        "customSecurityAttributes",
        "description",
        "disabledByMicrosoftStatus",
        "displayName",
        "homepage",
        "info",
        "isDisabled",
        "keyCredentials",
        "loginUrl",
        "logoutUrl",
        "notes",
        "notificationEmailAddresses",
        "oauth2PermissionScopes",
        "passwordCredentials",
        "preferredSingleSignOnMode",
        "preferredTokenSigningKeyThumbprint",
        "replyUrls",
        "resourceSpecificApplicationPermissions",
        "samlSingleSignOnSettings",
        "servicePrincipalNames",
        "servicePrincipalType",
        "signInAudience",
        "tags",
        "tokenEncryptionKeyId",
        "verifiedPublisher",
        "id",
        "deletedDateTime",
        "createdByAppId",
    }
)
_SP_SETTABLE = frozenset(
    {
        "appId",
        "accountEnabled",
        "appRoleAssignmentRequired",
        "description",
        "homepage",
        "loginUrl",
        "logoutUrl",
        "notes",
        "notificationEmailAddresses",
        "preferredSingleSignOnMode",
        "tags",
    }
)
USER_PROPERTIES = frozenset(
    {
        "id",
        "displayName",
        "userPrincipalName",
        "mail",
        "givenName",
        "surname",
        "jobTitle",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "businessPhones",
        "accountEnabled",
        "otherMails",
        "userType",
    }
)
_USER_DEFAULT_SELECT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
_SECRET_ALPHABET = string.ascii_letters + string.digits + "~._-"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SEGMENT = re.compile(r"^(?P<name>[A-Za-z$]+)(?:\((?:(?P<key>\w+)=)?'(?P<value>(?:[^']|'')*)'\))?$")
_MAX_TOP = 999
_DEFAULT_TOP = 100


class GraphFailure(Exception):
    """An error answer in Graph's shape, raised anywhere inside a handler."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def _fail(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> NoReturn:
    raise GraphFailure(status, code, message, details)


def _not_found(ref: str) -> NoReturn:
    _fail(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ref}' does not exist or one of its queried reference-property objects are not present.",
    )


def _denied() -> NoReturn:
    _fail(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _bad(message: str, code: str = "Request_BadRequest") -> NoReturn:
    _fail(400, code, message)


def graph_time(value: datetime, *, fraction: bool = True) -> str:
    """Graph's DateTimeOffset: 2028-11-27T02:25:05.1234560Z (7 digits) or ...05Z."""
    value = value.astimezone(UTC)
    if fraction and value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        _bad(f"Cannot convert the literal '{text}' to the expected type 'Edm.DateTimeOffset'.", "BadRequest")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        _bad(f"Cannot convert the literal '{text}' to the expected type 'Edm.DateTimeOffset'.", "BadRequest")
    if value.tzinfo is None:  # Edm.DateTimeOffset needs an offset
        _bad(f"Cannot convert the literal '{text}' to the expected type 'Edm.DateTimeOffset'.", "BadRequest")
    return value.astimezone(UTC)


def _plus_years(value: datetime, years: int) -> datetime:
    try:
        return value.replace(year=value.year + years)
    except ValueError:  # 29 February
        return value.replace(year=value.year + years, day=28)


def _new_secret() -> str:
    """A secret shaped like Entra's: 40 characters, the 4th-6th a digit then 'Q~'."""
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
    return f"{head}{secrets.choice(string.digits)}Q~{tail}"


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass
class _Password:
    key_id: str
    display_name: str | None
    start: datetime
    end: datetime
    hint: str
    secret_hash: bytes  # sha256 of the value; the value itself is never stored
    added_at: float  # time.monotonic() when added

    def public(self) -> dict[str, Any]:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": graph_time(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": None,
            "startDateTime": graph_time(self.start),
        }


@dataclass
class _App:
    id: str
    app_id: str
    created: datetime
    created_at: float  # time.monotonic() at creation, for the replication delay
    created_by: str | None
    props: dict[str, Any]  # settable properties as stored; values are replaced, never mutated
    owners: list[str] = field(default_factory=list)
    passwords: list[_Password] = field(default_factory=list)
    federated: FederatedCredentials = field(default_factory=FederatedCredentials)
    index: int = -1

    @property
    def audience(self) -> str:
        return str(self.props.get("signInAudience", "AzureADandPersonalMicrosoftAccount"))


@dataclass(frozen=True)
class DirectoryPrincipal:
    """What Resource Manager learns about an object id from the directory."""

    id: str
    type: str  # "User" | "Group" | "ServicePrincipal", as ARM's principalType names them
    created_at: float  # time.monotonic() when it was created; -inf for seeded objects


@dataclass
class _Query:
    top: int
    select: list[str] | None
    filters: list[Callable[[Callable[[str], Any]], bool]]
    lookup: tuple[str, str] | None  # a lone `x eq 'v'` clause, for index lookups
    skip_index: int
    count: bool


class FakeGraph(FakeServer):
    """Graph v1.0 at `{url}/v1.0`. Tokens must be for audience `url` (scope `{url}/.default`).

    Knobs: `replication_delay`, `secret_propagation_delay`, `reject_all_app_secrets`,
    `max_secret_lifetime_days` (a tenant app-management policy; `set_tenant_password_policy`
    and `assign_app_policy` for the rest), `sign_in_log.premium` (Entra ID P1), `publisher_domain`.
    Also `/beta` for the sign-in reports (fakes/graph_policies.py) and `sign_in_with`.
    `POST /directoryObjects/getByIds` (Directory.Read.All) finds users, groups, service
    principals and applications by object id.
    Helpers: `seed_apps`, `add_user`, `add_managed_identity`, `apps`, `app_by_client_id`,
    `passwords`, `owners`, `service_principals`, `caller_object_id`, `check_secret`; for
    Resource Manager's view of the directory: `add_group`, `add_group_member`, `principal`,
    `groups_of` (groups have no Graph routes here but getByIds).
    """

    name = "graph"

    def __init__(self, ca: TestCA, entra: FakeEntra) -> None:
        super().__init__(ca)
        self.entra = entra
        entra.secret_checker = self.check_secret
        entra.client_exists = self.has_client
        self.replication_delay = 0.0
        self.secret_propagation_delay = 0.0
        self.reject_all_app_secrets = False
        self.app_management = AppManagement()  # the tenant's and apps' app management policies
        self.sign_in_log = SignInLog()  # service principal sign-ins (`premium`: Entra ID P1)
        self.publisher_domain = "contoso.onmicrosoft.com"
        self.answers: list[tuple[Request, int | None]] = []
        self.next_secret_text: str | None = None  # the next addPassword's value (canary tests)
        self._lost_answers: list[tuple[str, re.Pattern[str], bool]] = []
        self._apps: dict[str, _App] = {}
        self._order: list[str | None] = []  # insertion order; None where an app was deleted
        self._by_app_id: dict[str, str] = {}
        self._by_unique_name: dict[str, str] = {}
        self._sps: dict[str, dict[str, Any]] = {}
        self._sp_by_app_id: dict[str, str] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}  # group id -> direct member ids
        self._created: dict[str, float] = {}  # object id -> time.monotonic() at creation
        self._callers: dict[str, str] = {}  # service principal object id -> appId
        for method in ("GET", "POST", "PATCH", "DELETE", "PUT"):
            self.route(method, r"/v1\.0/.*", self._serve)
            self.route(method, r"/beta/.*", self._serve_beta)

    # --- app management policies and sign-ins ------------------------------------------
    @property
    def max_secret_lifetime_days(self) -> int | None:
        """The tenant default policy's password lifetime in days (None: no lifetime limit)."""
        for restriction in self.app_management.tenant["applicationRestrictions"]["passwordCredentials"]:
            if (
                restriction["restrictionType"] == "passwordLifetime"
                and self.app_management.tenant["isEnabled"]
            ):
                return int(str(restriction["maxLifetime"]).strip("PD"))
        return None

    @max_secret_lifetime_days.setter
    def max_secret_lifetime_days(self, days: int | None) -> None:
        self.set_tenant_password_policy(max_lifetime=f"P{days}D" if days else None)

    @property
    def lifetime_policy_id(self) -> str:
        return str(self.app_management.tenant["id"])

    def set_tenant_password_policy(
        self, *, max_lifetime: str | None = None, block_passwords: bool = False, after: datetime | None = None
    ) -> None:
        """The tenant default app management policy: passwords at most `max_lifetime` (an ISO
        8601 duration, P90D), or none at all; for apps created after `after`. Neither: unconfigured."""
        restrictions = password_restrictions(
            max_lifetime=max_lifetime, block_passwords=block_passwords, after=after
        )
        with self.lock:
            self.app_management.set_tenant(restrictions or None)

    def assign_app_policy(
        self, object_id: str, name: str, *, max_lifetime: str | None = None, block_passwords: bool = False
    ) -> str:
        """An appManagementPolicy assigned to one app (it overrides the tenant default)."""
        restrictions = password_restrictions(max_lifetime=max_lifetime, block_passwords=block_passwords)
        with self.lock:
            return self.app_management.assign(object_id, name, restrictions)

    def sign_in_with(
        self, key_id: str, at: datetime, *, ip: str = "203.0.113.7", resource: str = "Microsoft Graph"
    ) -> None:
        """Record that something signed in with this client secret at `at` (the reports show it)."""
        with self.lock:
            app = next(a for a in self._apps.values() if any(p.key_id == key_id for p in a.passwords))
        self.sign_in_log.record(
            SignIn(at, app.app_id, app.id, key_id, ip, resource, "00000003-0000-0000-c000-000000000000")
        )

    def _serve_beta(self, request: Request, match: re.Match[str]) -> Response:
        """beta: only the sign-in reports oauth-bot reads; anything else is not served here."""
        try:
            claims = self._authenticate(request)
            path = request.path.rstrip("/")
            if request.method != "GET" or path not in (
                "/beta/reports/appCredentialSignInActivities",
                "/beta/auditLogs/signIns",
            ):
                _bad(f"Resource not found for the segment '{path.split('/')[-1]}'.", "BadRequest")
            try:
                if path.endswith("appCredentialSignInActivities"):
                    body = self.sign_in_log.credential_activities(_roles(claims), request.query, self.url)
                else:
                    body = self.sign_in_log.service_principal_sign_ins(
                        _roles(claims), request.query, self.url
                    )
            except Refusal as refusal:
                raise GraphFailure(refusal.status, refusal.code, refusal.message) from None
        except GraphFailure as failure:
            return self._error_response(request, failure)
        return Response(200, body, {**self._headers(request), "Content-Type": "application/json"})

    # --- test helpers -------------------------------------------------------------------
    def caller_object_id(self, app_id: str) -> str:
        """The service principal object id of a calling app (what owns what it creates)."""
        return service_principal_object_id(self.entra.tenant_id, app_id)

    def add_user(
        self, user_id: str, upn: str, display_name: str, mail: str | None = None, *, new: bool = False
    ) -> dict[str, Any]:
        """A directory user; `user_id` must be a GUID, as Entra object ids are. `new`: created just
        now (Resource Manager may not see it yet); otherwise it has long replicated."""
        if not _GUID.match(user_id):
            raise ValueError(f"user_id must be a GUID like an Entra object id, not {user_id!r}")
        user: dict[str, Any] = {
            "id": user_id,
            "displayName": display_name,
            "userPrincipalName": upn,
            "mail": mail,
            "givenName": None,
            "surname": None,
            "jobTitle": None,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "businessPhones": [],
            "accountEnabled": True,
            "otherMails": [],
            "userType": "Member",
        }
        with self.lock:
            self._users[user_id.lower()] = user
            self._created[user_id.lower()] = time.monotonic() if new else float("-inf")
        return dict(user)

    def add_group(
        self, group_id: str, display_name: str, members: Iterable[str] = (), *, new: bool = False
    ) -> None:
        """A security group with direct members (users, groups or service principals)."""
        if not _GUID.match(group_id):
            raise ValueError(f"group_id must be a GUID like an Entra object id, not {group_id!r}")
        with self.lock:
            self._groups[group_id.lower()] = {
                "id": group_id.lower(),
                "displayName": display_name,
                "securityEnabled": True,
                "mailEnabled": False,
                "groupTypes": [],
            }
            self._members[group_id.lower()] = {m.lower() for m in members}
            self._created[group_id.lower()] = time.monotonic() if new else float("-inf")

    def add_managed_identity(self, client_id: str, display_name: str, *, new: bool = False) -> str:
        """The service principal of a user-assigned managed identity whose app (client) id is
        `client_id` (registered with FakeEntra, so it can get app-only tokens); its object id."""
        object_id = service_principal_object_id(self.entra.tenant_id, client_id)
        with self.lock:
            self._sps[object_id] = {
                "id": object_id,
                "appId": client_id,
                "displayName": display_name,
                "accountEnabled": True,
                "servicePrincipalNames": [client_id],
                "servicePrincipalType": "ManagedIdentity",
                "tags": [],
            }
            self._created[object_id] = time.monotonic() if new else float("-inf")
        return object_id

    def add_group_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            self._members[group_id.lower()].add(member_id.lower())

    def principal(self, object_id: str) -> DirectoryPrincipal | None:
        """The user, group or service principal with this object id, or None."""
        key = object_id.lower()
        registered = self.entra.principal_ids()  # the service principals of Entra's own clients
        with self.lock:
            if key in self._users:
                kind = "User"
            elif key in self._groups:
                kind = "Group"
            elif key in self._sps or key in registered:
                kind = "ServicePrincipal"
            else:
                return None
            return DirectoryPrincipal(key, kind, self._created.get(key, float("-inf")))

    def groups_of(self, object_id: str) -> set[str]:
        """Every group `object_id` is a member of, directly or through other groups."""
        found: set[str] = set()
        frontier = {object_id.lower()}
        with self.lock:
            while frontier:
                parents = {g for g, members in self._members.items() if members & frontier} - found
                found |= parents
                frontier = parents
        return found

    def seed_apps(
        self,
        count: int,
        *,
        owner_appid: str,
        tag: str | None,
        secrets_per_app: int = 1,
        end_dates: Callable[[int], datetime] | None = None,
    ) -> list[str]:
        """Create `count` apps owned by `owner_appid` without HTTP; returns their object ids.

        Each has `secrets_per_app` passwords ending at `end_dates(i)` (default: 2 years),
        signInAudience AzureADMyOrg, tags [tag], no replication delay.
        """
        now = datetime.now(UTC)
        owner = self.caller_object_id(owner_appid)
        ids: list[str] = []
        with self.lock:
            self._callers[owner] = owner_appid
            first = len(self._order)
            for i in range(count):
                end = end_dates(i) if end_dates else _plus_years(now, 2)
                props: dict[str, Any] = {
                    "displayName": f"seeded-app-{first + i:06d}",
                    "signInAudience": "AzureADMyOrg",
                }
                if tag is not None:
                    props["tags"] = [tag]
                app = _App(
                    id=str(uuid.uuid4()),
                    app_id=str(uuid.uuid4()),
                    created=now,
                    created_at=float("-inf"),
                    created_by=owner_appid,
                    props=props,
                    owners=[owner],
                    passwords=[
                        _Password(
                            str(uuid.uuid4()),
                            f"seeded-{k}",
                            now,
                            end,
                            secrets.token_urlsafe(2)[:3],
                            secrets.token_bytes(32),
                            float("-inf"),
                        )
                        for k in range(secrets_per_app)
                    ],
                )
                self._insert(app)
                ids.append(app.id)
        return ids

    def add_password_outside(self, object_id: str, display_name: str, *, days: int = 180) -> str:
        """A client secret added outside oauth-bot (the portal, az CLI), without HTTP; its keyId."""
        now = datetime.now(UTC)
        secret = _new_secret()
        password = _Password(
            str(uuid.uuid4()),
            display_name,
            now,
            now + timedelta(days=days),
            secret[:3],
            _sha256(secret),
            float("-inf"),
        )
        with self.lock:
            app = self._apps[object_id]
            app.passwords = [*app.passwords, password]
        return password.key_id

    def remove_password_outside(self, object_id: str, key_id: str) -> None:
        """A client secret removed outside oauth-bot (the portal), without HTTP."""
        with self.lock:
            app = self._apps[object_id]
            app.passwords = [p for p in app.passwords if p.key_id != key_id]

    def apps(self) -> list[dict[str, Any]]:
        """Every stored application as GET would show it (no secret values)."""
        with self.lock:
            apps = [self._app_json(self._apps[i], None) for i in self._order if i is not None]
        return list(json.loads(json.dumps(apps)))

    def app_by_client_id(self, app_id: str) -> dict[str, Any] | None:
        with self.lock:
            object_id = self._by_app_id.get(app_id.lower())
            if object_id is None:
                return None
            app = self._app_json(self._apps[object_id], None)
        return dict(json.loads(json.dumps(app)))

    def passwords(self, app_object_id: str) -> list[dict[str, Any]]:
        with self.lock:
            app = self._apps.get(app_object_id.lower())
            return [] if app is None else [p.public() for p in app.passwords]

    def owners(self, app_object_id: str) -> list[str]:
        with self.lock:
            app = self._apps.get(app_object_id.lower())
            return [] if app is None else list(app.owners)

    def service_principals(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(json.loads(json.dumps(list(self._sps.values()))))

    def has_client(self, app_id: str) -> bool:
        with self.lock:
            return app_id.lower() in self._by_app_id

    def check_secret(self, client_id: str, secret: str) -> bool:
        """Would Entra accept `secret` for app `client_id` now? (FakeEntra asks this.)"""
        if self.reject_all_app_secrets:
            return False
        digest = _sha256(secret)
        with self.lock:
            object_id = self._by_app_id.get(client_id.lower())
            if object_id is None:
                return False
            now = datetime.now(UTC)
            for password in self._apps[object_id].passwords:
                if hmac.compare_digest(password.secret_hash, digest):
                    propagated = time.monotonic() - password.added_at >= self.secret_propagation_delay
                    signed_in = propagated and password.start <= now < password.end
                    if signed_in:
                        app = self._apps[object_id]
                        self.sign_in_log.record(
                            SignIn(
                                now, app.app_id, app.id, password.key_id, "127.0.0.1", "Microsoft Graph", ""
                            )
                        )
                    return signed_in
        return False

    def lose_next_answer(self, method: str, path_pattern: str, *, silently: bool = False) -> None:
        """Carry out the next matching request, then answer 504 as if the answer was lost (or,
        `silently`, close the connection without any answer)."""
        with self.lock:
            self._lost_answers.append((method, re.compile(path_pattern), silently))

    def dispatch(self, request: Request) -> tuple[Response | None, float]:
        response, delay = super().dispatch(request)
        with self.lock:
            for index, (method, pattern, silently) in enumerate(self._lost_answers):
                if method == request.method and pattern.search(request.path):
                    del self._lost_answers[index]
                    lost = Response(504, {"error": {"code": "GatewayTimeout", "message": "lost"}})
                    response = None if silently else lost
                    break
        with self.lock:
            self.answers.append((request, None if response is None else response.status))
        return response, delay

    def not_found(self, request: Request) -> Response:
        version = request.path.strip("/").split("/")[0]
        return self._error_response(request, GraphFailure(400, "BadRequest", f"Invalid version: {version}"))

    # --- dispatch -----------------------------------------------------------------------
    def _serve(self, request: Request, match: re.Match[str]) -> Response:
        try:
            claims = self._authenticate(request)
            status, body = self._route(request, claims)
        except GraphFailure as failure:
            return self._error_response(request, failure)
        headers = self._headers(request)
        if body is not None:
            headers["Content-Type"] = (
                "application/json;odata.metadata=minimal;odata.streaming=true;"
                "IEEE754Compatible=false;charset=utf-8"
            )
        return Response(status, body, headers)

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            raise GraphFailure(
                401, "InvalidAuthenticationToken", "Access token is empty.", headers=self._challenge()
            )
        claims, why = self.entra.inspect(token.strip(), self.url)
        if claims is None:
            message = {
                "expired": "Lifetime validation failed, the token is expired.",
                "audience": "Access token validation failure. Invalid audience.",
            }.get(why, "Access token validation failure.")
            raise GraphFailure(401, "InvalidAuthenticationToken", message, headers=self._challenge())
        with self.lock:
            self._callers[str(claims.get("oid"))] = str(claims.get("appid"))
        return claims

    def _challenge(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                f'Bearer realm="", authorization_uri="{self.entra.url}/{self.entra.tenant_id}'
                f'/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
            )
        }

    def _route(self, request: Request, claims: dict[str, Any]) -> tuple[int, Any]:
        path = re.sub(r"%(27|28|29|3[dD])", lambda m: unquote(m.group(0)), request.path)
        raw = path[len("/v1.0/") :].strip("/").split("/")
        if not raw or not raw[0]:
            _bad("Resource not found for the segment ''.", "BadRequest")
        head = _SEGMENT.match(raw[0])
        if head is None:
            _bad(f"Resource not found for the segment '{unquote(raw[0])}'.", "BadRequest")
        entity_set = head["name"]
        key: tuple[str, str] | None = None
        rest = [unquote(s) for s in raw[1:]]
        if head["value"] is not None:
            key = (head["key"] or "id", unquote(head["value"]).replace("''", "'"))
        elif rest and entity_set in ("applications", "servicePrincipals", "users"):
            key = ("id", rest.pop(0))
        method = request.method
        if entity_set == "applications":
            return self._applications(request, claims, method, key, rest)
        if entity_set == "servicePrincipals":
            return self._service_principals(request, claims, method, key, rest)
        if entity_set == "users":
            return self._users_route(request, claims, method, key, rest)
        if entity_set == "directoryObjects" and key is None and rest == ["getByIds"]:
            if method != "POST":
                self._method_not_allowed()
            return 200, self._get_by_ids(request, claims)
        if (
            entity_set == "policies"
            and key is None
            and rest == ["defaultAppManagementPolicy"]
            and method == "GET"
        ):
            try:
                context = f"{self.url}/v1.0/$metadata#policies/defaultAppManagementPolicy/$entity"
                return 200, self.app_management.read_tenant(_roles(claims), context)
            except Refusal as refusal:
                raise GraphFailure(refusal.status, refusal.code, refusal.message) from None
        _bad(f"Resource not found for the segment '{entity_set}'.", "BadRequest")

    def _applications(
        self,
        request: Request,
        claims: dict[str, Any],
        method: str,
        key: tuple[str, str] | None,
        rest: list[str],
    ) -> tuple[int, Any]:
        if key is None:
            if method == "GET":
                return 200, self._list_apps(request, claims)
            if method == "POST":
                return 201, self._create_app(request, claims)
            self._method_not_allowed()
        if not rest:
            if method == "GET":
                return 200, self._get_app(request, claims, key)
            if method == "PATCH":
                return self._patch_app(request, claims, key)
            if method == "DELETE":
                return self._delete_app(claims, key)
            self._method_not_allowed()
        action = rest[0]
        if action.startswith("federatedIdentityCredentials"):
            return self._federated(request, claims, method, key, rest)
        if action == "addPassword" and len(rest) == 1 and method == "POST":
            return 200, self._add_password(request, claims, key)
        if action == "removePassword" and len(rest) == 1 and method == "POST":
            return self._remove_password(request, claims, key)
        if action == "owners":
            if len(rest) == 1 and method == "GET":
                return 200, self._list_owners(request, claims, key)
            if rest[1:] == ["$ref"] and method == "POST":
                return self._add_owner(request, claims, key)
            if len(rest) == 3 and rest[2] == "$ref" and method == "DELETE":
                return self._remove_owner(claims, key, rest[1])
        if action == "appManagementPolicies" and len(rest) == 1 and method == "GET":
            with self.lock:
                app = self._resolve_app(key)
                if not self._can_read(claims, app):
                    _denied()
            try:
                context = f"{self.url}/v1.0/$metadata#appManagementPolicies"
                return 200, self.app_management.read_assigned(_roles(claims), app.id, context)
            except Refusal as refusal:
                raise GraphFailure(refusal.status, refusal.code, refusal.message) from None
        if action in ("addPassword", "removePassword", "owners", "appManagementPolicies"):
            self._method_not_allowed()
        _bad(f"Resource not found for the segment '{action}'.", "BadRequest")

    def _federated(
        self, request: Request, claims: dict[str, Any], method: str, key: tuple[str, str], rest: list[str]
    ) -> tuple[int, Any]:
        """/applications/{id}/federatedIdentityCredentials[/{id or name} | (name='…')]."""
        segment = _SEGMENT.match(rest[0])
        if segment is None or segment["name"] != "federatedIdentityCredentials" or len(rest) > 2:
            _bad(f"Resource not found for the segment '{rest[0]}'.", "BadRequest")
        by_name = segment["value"] is not None
        if by_name and (segment["key"] or "name") != "name":
            _bad(
                f"The key property '{segment['key']}' is not an alternate key of "
                "federatedIdentityCredential.",
                "BadRequest",
            )
        item = segment["value"].replace("''", "'") if by_name else (rest[1] if len(rest) == 2 else None)
        if by_name and len(rest) == 2:
            _bad(f"Resource not found for the segment '{rest[1]}'.", "BadRequest")
        select = self._select(request, FEDERATED_PROPERTIES, "federatedIdentityCredential")
        context = f"{self.url}/v1.0/$metadata#applications('{{}}')/federatedIdentityCredentials"
        with self.lock:
            app = self._resolve_app(key)
            self._require_replicated(app)
            writing = method != "GET"
            if not (self._can_write(claims, app) if writing else self._can_read(claims, app)):
                _denied()
            credentials = app.federated
            try:
                if item is None:
                    if method == "GET":
                        return 200, {
                            "@odata.context": context.format(app.id),
                            "value": [_project(c, select) for c in credentials.items],
                        }
                    if method == "POST":
                        made = credentials.create(_json_object(request))
                        return 201, {"@odata.context": context.format(app.id) + "/$entity", **made}
                    self._method_not_allowed()
                if method == "GET":
                    found = _project(credentials.resolve(item), select)
                    return 200, {"@odata.context": context.format(app.id) + "/$entity", **found}
                if method == "DELETE":
                    credentials.delete(item)
                    return 204, None
                if method == "PATCH":
                    if by_name and credentials.find(item) is None:  # Upsertable (the CSDL)
                        made = credentials.create(_json_object(request), name=item)
                        return 201, {"@odata.context": context.format(app.id) + "/$entity", **made}
                    credentials.update(item, _json_object(request))
                    return 204, None
                self._method_not_allowed()
            except FederatedFailure as failure:
                _fail(failure.status, failure.code, failure.message)

    def federated_credentials(self, app_object_id: str) -> list[dict[str, Any]]:
        """The app's federated identity credentials, as Graph would list them."""
        with self.lock:
            return [dict(c) for c in self._apps[app_object_id.lower()].federated.items]

    def add_federated_outside(self, app_object_id: str, name: str, issuer: str, subject: str) -> str:
        """A federated credential added in the portal or by another tool; returns its id."""
        body = {
            "name": name,
            "issuer": issuer,
            "subject": subject,
            "audiences": ["api://AzureADTokenExchange"],
        }
        with self.lock:
            return str(self._apps[app_object_id.lower()].federated.create(body)["id"])

    def remove_federated_outside(self, app_object_id: str, credential_id: str) -> None:
        """A federated credential deleted in the portal or by another tool."""
        with self.lock:
            self._apps[app_object_id.lower()].federated.delete(credential_id)

    @staticmethod
    def _method_not_allowed() -> NoReturn:
        _fail(405, "Request_BadRequest", "The requested HTTP method is not allowed for this resource.")

    # --- applications -------------------------------------------------------------------
    def _list_apps(self, request: Request, claims: dict[str, Any]) -> dict[str, Any]:
        roles = _roles(claims)
        if not roles & (_READ_ALL | {APP_READWRITE_OWNED}):
            _denied()
        query = self._query(request, APPLICATION_PROPERTIES, "application")
        caller = str(claims.get("oid"))
        read_all = bool(roles & _READ_ALL)
        with self.lock:
            candidates: Iterable[tuple[int, _App]]
            if query.lookup and query.lookup[0] in ("appId", "id"):
                name, value = query.lookup
                object_id = self._by_app_id.get(value.lower()) if name == "appId" else value.lower()
                found = self._apps.get(object_id) if object_id else None
                candidates = [(found.index, found)] if found and found.index >= query.skip_index else []
            else:
                candidates = self._scan(query.skip_index)

            def visible(app: _App) -> bool:
                if not read_all and caller not in app.owners:
                    return False
                return all(f(lambda p: self._app_value(app, p)) for f in query.filters)

            page: list[dict[str, Any]] = []
            next_index: int | None = None
            for index, app in candidates:
                if not visible(app):
                    continue
                if len(page) == query.top:
                    next_index = index
                    break
                page.append(self._app_json(app, query.select))
            total = sum(1 for _, app in self._scan(0) if visible(app)) if query.count else 0
        result: dict[str, Any] = {"@odata.context": self._context("applications", query.select)}
        if query.count:
            result["@odata.count"] = total
        result["value"] = page
        if next_index is not None:
            result["@odata.nextLink"] = self._next_link(request, next_index)
        return result

    def _scan(self, start: int) -> Iterable[tuple[int, _App]]:
        for index in range(start, len(self._order)):
            object_id = self._order[index]
            if object_id is not None:
                yield index, self._apps[object_id]

    def _get_app(self, request: Request, claims: dict[str, Any], key: tuple[str, str]) -> dict[str, Any]:
        select = self._select(request, APPLICATION_PROPERTIES, "application")
        with self.lock:
            app = self._resolve_app(key)
            if not self._can_read(claims, app):
                _denied()
            body = self._app_json(app, select)
        return {"@odata.context": self._context("applications", select, entity=True), **body}

    def _create_app(
        self, request: Request, claims: dict[str, Any], unique_name: str | None = None
    ) -> dict[str, Any]:
        if not _roles(claims) & (_WRITE_ALL | {APP_READWRITE_OWNED}):
            _denied()
        body = _json_object(request)
        props = self._validated_app_props(body, creating=True, unique_name=unique_name)
        caller = str(claims.get("oid"))
        with self.lock:
            name = props.get("uniqueName")
            if name is not None and str(name).casefold() in self._by_unique_name:
                # Assumed from the alternate-key semantics; not confirmed against the service.
                _fail(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    f"Another object with the same value for property uniqueName already exists: '{name}'.",
                )
            now = datetime.now(UTC).replace(microsecond=0)
            app = _App(
                id=str(uuid.uuid4()),
                app_id=str(uuid.uuid4()),
                created=now,
                created_at=time.monotonic(),
                created_by=str(claims.get("appid")),
                props=props,
                owners=[caller],
            )
            self._insert(app)
            body_out = self._app_json(app, None)
        return {"@odata.context": self._context("applications", None, entity=True), **body_out}

    def _patch_app(self, request: Request, claims: dict[str, Any], key: tuple[str, str]) -> tuple[int, Any]:
        prefer = [p.strip().lower() for p in (request.headers.get("Prefer") or "").split(",")]
        with self.lock:
            app = self._find_app(key)
            if app is None:
                if key[0] == "uniqueName" and "create-if-missing" in prefer:
                    return 201, self._create_app(request, claims, unique_name=key[1])
                self._resolve_app(key)  # raises the right 400/404
                raise AssertionError("unreachable")
            if not self._can_write(claims, app):
                _denied()
            body = _json_object(request)
            props = self._validated_app_props(body, creating=False, unique_name=None, app=app)
            new_name = props.get("uniqueName")
            if new_name is not None and new_name != app.props.get("uniqueName"):
                if app.props.get("uniqueName") is not None:
                    _bad("Property 'uniqueName' is read-only once set and cannot be changed.")
                if str(new_name).casefold() in self._by_unique_name:
                    _fail(
                        409,
                        "Request_MultipleObjectsWithSameKeyValue",
                        "Another object with the same value for property uniqueName "
                        f"already exists: '{new_name}'.",
                    )
                self._by_unique_name[str(new_name).casefold()] = app.id
            app.props = {**app.props, **props}
        return 204, None

    def _delete_app(self, claims: dict[str, Any], key: tuple[str, str]) -> tuple[int, Any]:
        with self.lock:
            app = self._resolve_app(key)
            if not self._can_write(claims, app):
                _denied()
            self._order[app.index] = None
            del self._apps[app.id]
            self._by_app_id.pop(app.app_id.lower(), None)
            name = app.props.get("uniqueName")
            if name is not None:
                self._by_unique_name.pop(str(name).casefold(), None)
            sp_id = self._sp_by_app_id.pop(app.app_id.lower(), None)
            if sp_id is not None:  # deleting an app deletes its service principal too
                self._sps.pop(sp_id, None)
        return 204, None

    def _add_password(self, request: Request, claims: dict[str, Any], key: tuple[str, str]) -> dict[str, Any]:
        with self.lock:
            app = self._resolve_app(key)
            self._require_replicated(app)
            if not self._can_write(claims, app):
                _denied()
            body = _json_object(request, allow_empty=True)
            extra = set(body) - {"passwordCredential"}
            if extra:
                _bad(
                    f"Property '{sorted(extra)[0]}' does not exist as a declared parameter "
                    "of action 'addPassword'.",
                    "BadRequest",
                )
            credential = body.get("passwordCredential") or {}
            if not isinstance(credential, dict):
                _bad("Invalid value for parameter 'passwordCredential'.", "BadRequest")
            unknown = set(credential) - PASSWORD_CREDENTIAL_PROPERTIES - {"@odata.type"}
            if unknown:
                _bad(
                    f"Property '{sorted(unknown)[0]}' does not exist on type "
                    "'microsoft.graph.passwordCredential'.",
                    "BadRequest",
                )
            display_name = credential.get("displayName")
            if display_name is not None and not isinstance(display_name, str):
                _bad("Invalid value specified for property 'displayName' of resource 'PasswordCredential'.")
            now = datetime.now(UTC)
            start = (
                _parse_time(credential["startDateTime"])
                if credential.get("startDateTime") is not None
                else now
            )
            end = (
                _parse_time(credential["endDateTime"])
                if credential.get("endDateTime") is not None
                else _plus_years(start, 2)
            )
            if end <= start:
                _fail(400, "InvalidKeyEndDate", "Key credential end date is invalid.")
            try:
                self.app_management.check_password(app.id, app.created, start, end)
            except Refusal as refusal:
                # The real message names the policy, not the maximum (seen in azure-cli,
                # terraform and Teams Toolkit issues); callers must know the maximum otherwise.
                _fail(
                    refusal.status,
                    refusal.code,
                    refusal.message,
                    [{"code": "InvalidKeyEndDate", "message": refusal.message, "target": "EndDate"}],
                )
            if app.audience in PERSONAL_AUDIENCES and len(app.passwords) >= MAX_PERSONAL_PASSWORDS:
                # Wire text as reported in Azure/azure-cli#12946.
                _fail(
                    400,
                    "TooManyAppPasswords",
                    f"Not allowed to add {len(app.passwords) + 1} passwords. You can only "
                    f"add a maximum of {MAX_PERSONAL_PASSWORDS} passwords.",
                    [{"target": "passwordCredentials", "code": "TooManyAppPasswords"}],
                )
            secret, self.next_secret_text = self.next_secret_text or _new_secret(), None
            password = _Password(
                str(uuid.uuid4()), display_name, start, end, secret[:3], _sha256(secret), time.monotonic()
            )
            app.passwords = [*app.passwords, password]
        return {
            "@odata.context": f"{self.url}/v1.0/$metadata#microsoft.graph.passwordCredential",
            **password.public(),
            "secretText": secret,
        }

    def _remove_password(
        self, request: Request, claims: dict[str, Any], key: tuple[str, str]
    ) -> tuple[int, Any]:
        with self.lock:
            app = self._resolve_app(key)
            self._require_replicated(app)
            if not self._can_write(claims, app):
                _denied()
            body = _json_object(request)
            extra = set(body) - {"keyId"}
            if extra:
                _bad(
                    f"Property '{sorted(extra)[0]}' does not exist as a declared parameter "
                    "of action 'removePassword'.",
                    "BadRequest",
                )
            key_id = body.get("keyId")
            if not isinstance(key_id, str) or not _GUID.match(key_id):
                _bad(f"Cannot convert the literal '{key_id}' to the expected type 'Edm.Guid'.", "BadRequest")
            remaining = [p for p in app.passwords if p.key_id.lower() != key_id.lower()]
            if len(remaining) == len(app.passwords):
                # Only 204 is documented; the answer for an unknown keyId could not be
                # confirmed. The fake refuses it so that callers handle a refusal.
                _bad(f"No password credential found with keyId '{key_id}'.")
            app.passwords = remaining
        return 204, None

    def _list_owners(self, request: Request, claims: dict[str, Any], key: tuple[str, str]) -> dict[str, Any]:
        with self.lock:
            app = self._resolve_app(key)
            self._require_replicated(app)
            if not self._can_read(claims, app):
                _denied()
            value = [self._directory_object(object_id) for object_id in app.owners]
        return {"@odata.context": f"{self.url}/v1.0/$metadata#directoryObjects", "value": value}

    def _add_owner(self, request: Request, claims: dict[str, Any], key: tuple[str, str]) -> tuple[int, Any]:
        body = _json_object(request)
        ref = body.get("@odata.id")
        extra = set(body) - {"@odata.id"}
        if extra or not isinstance(ref, str):
            _bad('Invalid request body: expected {"@odata.id": "<directoryObject URL>"}.', "BadRequest")
        ref_match = re.search(r"/(?:directoryObjects|users|servicePrincipals)/([^/?]+)$", urlsplit(ref).path)
        if ref_match is None or not _GUID.match(ref_match[1]):
            _bad(f"Invalid object identifier '{ref}'.")
        owner_id = ref_match[1].lower()
        caller = str(claims.get("oid"))
        with self.lock:
            app = self._resolve_app(key)
            self._require_replicated(app)
            if not self._can_write(claims, app):
                _denied()
            if owner_id != caller and not _roles(claims) & _WRITE_ALL:
                _denied()
            if owner_id not in self._users and owner_id not in self._sps and owner_id not in self._callers:
                _not_found(owner_id)
            if owner_id in app.owners:
                _bad(
                    "One or more added object references already exist for the following "
                    "modified properties: 'owners'."
                )
            app.owners = [*app.owners, owner_id]
        return 204, None

    def _remove_owner(self, claims: dict[str, Any], key: tuple[str, str], owner_id: str) -> tuple[int, Any]:
        owner_id = owner_id.lower()
        with self.lock:
            app = self._resolve_app(key)
            self._require_replicated(app)
            if not self._can_write(claims, app):
                _denied()
            if owner_id != str(claims.get("oid")) and not _roles(claims) & _WRITE_ALL:
                _denied()
            if owner_id not in app.owners:
                _bad(
                    "One or more removed object references do not exist for the following "
                    "modified properties: 'owners'."
                )
            app.owners = [o for o in app.owners if o != owner_id]
        return 204, None

    # --- service principals -------------------------------------------------------------
    def _service_principals(
        self,
        request: Request,
        claims: dict[str, Any],
        method: str,
        key: tuple[str, str] | None,
        rest: list[str],
    ) -> tuple[int, Any]:
        if rest:
            _bad(f"Resource not found for the segment '{rest[0]}'.", "BadRequest")
        if key is None and method == "POST":
            return 201, self._create_sp(request, claims)
        if key is None and method == "GET":
            return 200, self._list_sps(request, claims)
        if key is not None and method == "GET":
            select = self._select(request, SERVICE_PRINCIPAL_PROPERTIES, "servicePrincipal")
            with self.lock:
                sp = self._resolve_sp(key)
                if not self._can_read_sp(claims, sp):
                    _denied()
                body = _project(sp, select)
            return 200, {"@odata.context": self._context("servicePrincipals", select, True), **body}
        if key is not None and method == "DELETE":
            with self.lock:
                sp = self._resolve_sp(key)
                app = self._find_app(("appId", sp["appId"]))
                if app is None or not self._can_write(claims, app):
                    _denied()
                self._sps.pop(sp["id"], None)
                self._sp_by_app_id.pop(sp["appId"].lower(), None)
            return 204, None
        self._method_not_allowed()

    def _create_sp(self, request: Request, claims: dict[str, Any]) -> dict[str, Any]:
        if not _roles(claims) & (_WRITE_ALL | {APP_READWRITE_OWNED}):
            _denied()
        body = _json_object(request)
        for name in body:
            if name.startswith("@odata."):
                continue
            if name not in SERVICE_PRINCIPAL_PROPERTIES:
                _bad(
                    f"Property '{name}' does not exist on type 'microsoft.graph.servicePrincipal'.",
                    "BadRequest",
                )
            if name not in _SP_SETTABLE:
                _bad(f"Property '{name}' is read-only and cannot be set.")
        app_id = body.get("appId")
        if not isinstance(app_id, str) or not app_id:
            _bad("Required property 'appId' of resource 'ServicePrincipal' is missing.")
        with self.lock:
            app = self._find_app(("appId", app_id))
            if app is None or not self._replicated(app):
                # The service's answer while the application has not replicated yet (and for
                # an unknown appId): see hamilton's ErrorServicePrincipalInvalidAppId and the
                # retry loops in azure-cli and many deployment scripts.
                message = (
                    f"The appId '{app_id}' of the service principal does not reference "
                    "a valid application object."
                )
                _fail(
                    400,
                    "Request_BadRequest",
                    message,
                    [{"code": "NoBackingApplicationObject", "message": message, "target": "appId"}],
                )
            if not self._can_write(claims, app):
                _denied()
            if app_id.lower() in self._sp_by_app_id:
                _fail(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    "The service principal cannot be created, updated, or restored because "
                    f"the service principal name {app.app_id} is already in use.",
                )
            sp_id = self.caller_object_id(app.app_id)
            display_name = app.props.get("displayName")
            sp: dict[str, Any] = {
                "id": sp_id,
                "deletedDateTime": None,
                "accountEnabled": body.get("accountEnabled", True),
                "appDisplayName": display_name,
                "appId": app.app_id,
                "appOwnerOrganizationId": self.entra.tenant_id,
                "appRoleAssignmentRequired": body.get("appRoleAssignmentRequired", False),
                "description": body.get("description"),
                "displayName": display_name,
                "homepage": body.get("homepage"),
                "loginUrl": body.get("loginUrl"),
                "logoutUrl": body.get("logoutUrl"),
                "notes": body.get("notes"),
                "notificationEmailAddresses": body.get("notificationEmailAddresses", []),
                "preferredSingleSignOnMode": body.get("preferredSingleSignOnMode"),
                "servicePrincipalNames": [app.app_id],
                "servicePrincipalType": "Application",
                "signInAudience": app.audience,
                "tags": body.get("tags", []),
                "appRoles": [],
                "keyCredentials": [],
                "passwordCredentials": [],
                "oauth2PermissionScopes": [],
                "replyUrls": [],
            }
            self._sps[sp_id] = sp
            self._created[sp_id] = time.monotonic()
            self._sp_by_app_id[app.app_id.lower()] = sp_id
            self._callers.setdefault(sp_id, app.app_id)
            return {"@odata.context": self._context("servicePrincipals", None, True), **sp}

    def _list_sps(self, request: Request, claims: dict[str, Any]) -> dict[str, Any]:
        query = self._query(request, SERVICE_PRINCIPAL_PROPERTIES, "servicePrincipal")
        with self.lock:
            items = [
                sp
                for sp in self._sps.values()
                if self._can_read_sp(claims, sp) and all(f(sp.get) for f in query.filters)
            ]
        return self._page(request, "servicePrincipals", items, query)

    def _resolve_sp(self, key: tuple[str, str]) -> dict[str, Any]:
        name, value = key
        if name == "appId":
            sp_id = self._sp_by_app_id.get(value.lower())
        elif name == "id":
            if not _GUID.match(value):
                _bad(f"Invalid object identifier '{value}'.")
            sp_id = value.lower()
        else:
            _bad(f"The key property '{name}' is not an alternate key of servicePrincipal.", "BadRequest")
        sp = self._sps.get(sp_id) if sp_id else None
        if sp is None:
            _not_found(value)
        return sp

    def _can_read_sp(self, claims: dict[str, Any], sp: dict[str, Any]) -> bool:
        app = self._find_app(("appId", sp["appId"]))
        if _roles(claims) & _READ_ALL:
            return True
        return app is not None and self._can_read(claims, app)

    # --- directory objects ---------------------------------------------------------------
    def _get_by_ids(self, request: Request, claims: dict[str, Any]) -> dict[str, Any]:
        if not _roles(claims) & _DIRECTORY_READ:
            _denied()
        body = _json_object(request)
        unknown = set(body) - {"ids", "types"}
        if unknown:
            _bad(f"The property '{sorted(unknown)[0]}' does not exist on type 'Edm.Untyped'.", "BadRequest")
        ids, types = body.get("ids"), body.get("types")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            _bad("The parameter 'ids' in the request payload is not a valid parameter.", "BadRequest")
        if len(ids) > MAX_GET_BY_IDS:
            _bad(f"Too many ids: at most {MAX_GET_BY_IDS} may be given.")
        for object_id in ids:
            if not _GUID.match(object_id):
                _bad(f"Invalid object identifier '{object_id}'.")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            _bad("The parameter 'types' in the request payload is not a valid parameter.", "BadRequest")
        wanted = {t.lower() for t in types or ["directoryObject"]}
        if wanted - _DIRECTORY_TYPES:
            _bad(f"Invalid type '{sorted(wanted - _DIRECTORY_TYPES)[0]}'.")
        value = []
        with self.lock:
            for object_id in dict.fromkeys(i.lower() for i in ids):
                found = self._typed_object(object_id)
                if found is not None and ({"directoryobject", found[0].lower()} & wanted):
                    value.append({"@odata.type": f"#microsoft.graph.{found[0]}", **found[1]})
        return {"@odata.context": f"{self.url}/v1.0/$metadata#directoryObjects", "value": value}

    def _typed_object(self, object_id: str) -> tuple[str, dict[str, Any]] | None:
        """(OData type, properties) of a directory object (caller holds the lock)."""
        if object_id in self._users:
            return "user", dict(self._users[object_id])
        if object_id in self._groups:
            return "group", dict(self._groups[object_id])
        if object_id in self._sps:
            return "servicePrincipal", dict(self._sps[object_id])
        if object_id in self._apps:
            app = self._apps[object_id]
            return "application", {"id": app.id, "appId": app.app_id, **app.props}
        return None

    # --- users --------------------------------------------------------------------------
    def _users_route(
        self,
        request: Request,
        claims: dict[str, Any],
        method: str,
        key: tuple[str, str] | None,
        rest: list[str],
    ) -> tuple[int, Any]:
        if method != "GET":
            self._method_not_allowed()
        if rest:
            _bad(f"Resource not found for the segment '{rest[0]}'.", "BadRequest")
        if not _roles(claims) & _USER_READ:
            _denied()
        if key is None:
            query = self._query(request, USER_PROPERTIES, "user")
            shown = query.select or list(_USER_DEFAULT_SELECT)
            with self.lock:
                items = [
                    _project(u, shown) for u in self._users.values() if all(f(u.get) for f in query.filters)
                ]
            return 200, self._page(request, "users", items, query)
        select = self._select(request, USER_PROPERTIES, "user")
        name, value = key
        with self.lock:
            user = None
            if name == "id" and _GUID.match(value):
                user = self._users.get(value.lower())
            elif name in ("id", "userPrincipalName"):
                # /users/{id | userPrincipalName}; mail is not a key (use $filter=mail eq '').
                user = next(
                    (
                        u
                        for u in self._users.values()
                        if str(u["userPrincipalName"]).casefold() == value.casefold()
                    ),
                    None,
                )
            else:
                _bad(f"The key property '{name}' is not an alternate key of user.", "BadRequest")
            if user is None:
                _not_found(value)
            body = _project(user, select or list(_USER_DEFAULT_SELECT))
        return 200, {"@odata.context": self._context("users", select, True), **body}

    # --- queries and paging -------------------------------------------------------------
    def _query(self, request: Request, props: frozenset[str], type_name: str) -> _Query:
        for option in request.query:
            if option.startswith("$") and option not in (
                "$top",
                "$select",
                "$filter",
                "$skiptoken",
                "$count",
            ):
                _fail(
                    400,
                    "Request_UnsupportedQuery",
                    f"The query option '{option}' is not supported by this fake.",
                )
        top_text = request.arg("$top")
        top = _DEFAULT_TOP
        if top_text is not None:
            if not top_text.isdigit() or not 1 <= int(top_text) <= _MAX_TOP:
                _bad(
                    f"Invalid page size specified: '{top_text}'. Must be between 1 and {_MAX_TOP} inclusive."
                )
            top = int(top_text)
        skip_index = 0
        token = request.arg("$skiptoken")
        if token is not None:
            skip_index = _decode_skiptoken(token)
        count = (request.arg("$count") or "").lower() == "true"
        if count and (request.headers.get("ConsistencyLevel") or "").lower() != "eventual":
            _bad("$count is not currently supported.")
        filters, lookup = _parse_filter(request.arg("$filter"), props, type_name)
        return _Query(top, self._select(request, props, type_name), filters, lookup, skip_index, count)

    @staticmethod
    def _select(request: Request, props: frozenset[str], type_name: str) -> list[str] | None:
        text = request.arg("$select")
        if text is None:
            return None
        names = [n.strip() for n in text.split(",") if n.strip()]
        for name in names:
            if name not in props:
                _bad(
                    f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
                    "BadRequest",
                )
        return names

    def _page(
        self, request: Request, entity_set: str, items: list[dict[str, Any]], query: _Query
    ) -> dict[str, Any]:
        chunk = items[query.skip_index : query.skip_index + query.top]
        result: dict[str, Any] = {"@odata.context": self._context(entity_set, query.select)}
        if query.count:
            result["@odata.count"] = len(items)
        result["value"] = [_project(item, query.select) for item in chunk]
        if query.skip_index + query.top < len(items):
            result["@odata.nextLink"] = self._next_link(request, query.skip_index + query.top)
        return result

    def _next_link(self, request: Request, index: int) -> str:
        pairs = [(k, v) for k, values in request.query.items() if k != "$skiptoken" for v in values]
        pairs.append(("$skiptoken", _encode_skiptoken(index)))
        query = urlencode(pairs, quote_via=quote, safe="$'(),:/@")
        return f"{self.url}{request.path}?{query}"

    def _context(self, entity_set: str, select: list[str] | None, entity: bool = False) -> str:
        selected = f"({','.join(select)})" if select else ""
        return f"{self.url}/v1.0/$metadata#{entity_set}{selected}{'/$entity' if entity else ''}"

    # --- application state --------------------------------------------------------------
    def _insert(self, app: _App) -> None:
        app.index = len(self._order)
        self._order.append(app.id)
        self._apps[app.id] = app
        self._by_app_id[app.app_id.lower()] = app.id
        name = app.props.get("uniqueName")
        if name is not None:
            self._by_unique_name[str(name).casefold()] = app.id

    def _find_app(self, key: tuple[str, str]) -> _App | None:
        name, value = key
        if name == "id":
            if not _GUID.match(value):
                _bad(f"Invalid object identifier '{value}'.")
            return self._apps.get(value.lower())
        if name == "appId":
            object_id = self._by_app_id.get(value.lower())
        elif name == "uniqueName":
            object_id = self._by_unique_name.get(value.casefold())
        else:
            _bad(f"The key property '{name}' is not an alternate key of application.", "BadRequest")
        return self._apps.get(object_id) if object_id else None

    def _resolve_app(self, key: tuple[str, str]) -> _App:
        app = self._find_app(key)
        if app is None:
            _not_found(key[1])
        return app

    def _replicated(self, app: _App) -> bool:
        return time.monotonic() - app.created_at >= self.replication_delay

    def _require_replicated(self, app: _App) -> None:
        if not self._replicated(app):
            _not_found(app.id)

    def _can_read(self, claims: dict[str, Any], app: _App) -> bool:
        roles = _roles(claims)
        if roles & _READ_ALL:
            return True
        return APP_READWRITE_OWNED in roles and str(claims.get("oid")) in app.owners

    def _can_write(self, claims: dict[str, Any], app: _App) -> bool:
        roles = _roles(claims)
        if roles & _WRITE_ALL:
            return True
        return APP_READWRITE_OWNED in roles and str(claims.get("oid")) in app.owners

    def _directory_object(self, object_id: str) -> dict[str, Any]:
        user = self._users.get(object_id)
        if user is not None:
            return {
                "@odata.type": "#microsoft.graph.user",
                "id": user["id"],
                "displayName": user["displayName"],
                "userPrincipalName": user["userPrincipalName"],
                "mail": user["mail"],
            }
        sp = self._sps.get(object_id)
        app_id = sp["appId"] if sp else self._callers.get(object_id)
        return {
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "id": object_id,
            "appId": app_id,
            "displayName": sp["displayName"] if sp else None,
            "servicePrincipalType": "Application",
        }

    def _app_value(self, app: _App, name: str) -> Any:
        if name == "id":
            return app.id
        if name == "appId":
            return app.app_id
        if name == "createdDateTime":
            return graph_time(app.created, fraction=False)
        if name == "createdByAppId":
            return app.created_by
        if name == "publisherDomain":
            return self.publisher_domain
        if name == "passwordCredentials":
            return [p.public() for p in app.passwords]
        if name == "signInAudience":
            return app.audience
        default = _default_value(name, app.audience)
        value = app.props.get(name, default)
        if name in _COMPLEX_MEMBERS and isinstance(value, dict) and isinstance(default, dict):
            return {**default, **value}
        return value

    def _app_json(self, app: _App, select: list[str] | None) -> dict[str, Any]:
        names = _DEFAULT_SELECT if select is None else ["id", *[s for s in select if s != "id"]]
        return {name: self._app_value(app, name) for name in names}

    def _validated_app_props(
        self, body: dict[str, Any], *, creating: bool, unique_name: str | None, app: _App | None = None
    ) -> dict[str, Any]:
        """The settable properties of `body`, checked like Graph checks them."""
        props: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@odata."):
                continue
            if name not in APPLICATION_PROPERTIES:
                # Wording of OData's strict deserializer; the real code may differ.
                _bad(
                    f"Property '{name}' does not exist on type 'microsoft.graph.application'. "
                    "Make sure to only use property names that are defined by the type.",
                    "BadRequest",
                )
            if name in _READ_ONLY:
                _bad(f"Property '{name}' is read-only and cannot be set.")
            if name == "passwordCredentials":
                if value:
                    _bad("New password credentials must be generated with service actions (addPassword).")
                continue
            if name in _COLLECTIONS and not isinstance(value, list):
                _bad(f"Invalid value specified for property '{name}' of resource 'Application'.")
            if name in _STRINGS and value is not None and not isinstance(value, str):
                _bad(f"Invalid value specified for property '{name}' of resource 'Application'.")
            if name in _COMPLEX_MEMBERS and value is not None:
                if not isinstance(value, dict):
                    _bad(f"Invalid value specified for property '{name}' of resource 'Application'.")
                unknown = set(value) - _COMPLEX_MEMBERS[name] - {"@odata.type"}
                if unknown:
                    _bad(
                        f"Property '{sorted(unknown)[0]}' does not exist on the type of property '{name}'.",
                        "BadRequest",
                    )
            props[name] = json.loads(json.dumps(value))  # private copy
        if "displayName" in props or creating:
            display_name = props.get("displayName")
            if not isinstance(display_name, str) or not display_name.strip():
                _bad("Invalid value specified for property 'displayName' of resource 'Application'.")
            if len(display_name) > 256:
                _bad("Invalid value specified for property 'displayName' of resource 'Application'.")
        if unique_name is not None:
            if props.get("uniqueName", unique_name) != unique_name:
                _bad("Property 'uniqueName' in the body does not match the key in the URL.")
            props["uniqueName"] = unique_name
        if "uniqueName" in props and (not isinstance(props["uniqueName"], str) or not props["uniqueName"]):
            _bad("Invalid value specified for property 'uniqueName' of resource 'Application'.")
        if "signInAudience" in props and props["signInAudience"] not in SIGN_IN_AUDIENCES:
            _bad("Invalid value specified for property 'signInAudience' of resource 'Application'.")
        audience = str(
            props.get("signInAudience") or (app.audience if app else "AzureADandPersonalMicrosoftAccount")
        )
        for name in ("web", "spa", "publicClient"):
            section = props.get(name) or {}
            uris = section.get("redirectUris", [])
            if not isinstance(uris, list):
                _bad(f"Invalid value specified for property '{name}.redirectUris' of resource 'Application'.")
            for uri in uris:
                if not _redirect_uri_ok(uri, name, audience):
                    # The exact wording for a refused redirect URI was not confirmed.
                    _bad(
                        f"Invalid value specified for property '{name}.redirectUris' of "
                        f"resource 'Application': '{uri}'."
                    )
        if creating and "signInAudience" not in props:
            props["signInAudience"] = "AzureADandPersonalMicrosoftAccount"  # Graph's default
        if "tags" in props and any(not isinstance(t, str) or len(t) > 256 for t in props["tags"]):
            _bad("Invalid value specified for property 'tags' of resource 'Application'.")
        return props

    # --- answers ------------------------------------------------------------------------
    def _headers(self, request: Request) -> dict[str, str]:
        request_id = str(uuid.uuid4())
        return {
            "request-id": request_id,
            "client-request-id": request.headers.get("client-request-id") or request_id,
            "OData-Version": "4.0",
            "Cache-Control": "no-cache",
        }

    def _error_response(self, request: Request, failure: GraphFailure) -> Response:
        headers = {**self._headers(request), **failure.headers}
        error: dict[str, Any] = {"code": failure.code, "message": failure.message}
        if failure.details:
            error["details"] = failure.details
        error["innerError"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": headers["request-id"],
            "client-request-id": headers["client-request-id"],
        }
        headers["Content-Type"] = "application/json"
        return Response(failure.status, {"error": error}, headers)


# --- module helpers ---------------------------------------------------------------------
def _roles(claims: dict[str, Any]) -> set[str]:
    roles = claims.get("roles") or []
    return {str(r) for r in roles} if isinstance(roles, list) else set()


def _json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if not request.body.strip():
        if allow_empty:
            return {}
        _bad("Empty Payload. JSON content expected.", "BadRequest")
    try:
        body = json.loads(request.body)
    except ValueError:
        _bad(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
            "BadRequest",
        )
    if not isinstance(body, dict):
        _bad(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
            "BadRequest",
        )
    return body


def _project(item: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(item)
    return {name: item.get(name) for name in ["id", *[s for s in select if s != "id"]]}


def _redirect_uri_ok(uri: Any, platform: str, audience: str) -> bool:
    if not isinstance(uri, str) or not uri or len(uri) > 256 or "#" in uri:
        return False
    parts = urlsplit(uri)
    if not parts.scheme:
        return False
    if "*" in uri and audience in PERSONAL_AUDIENCES:
        return False
    if platform == "publicClient":
        return parts.scheme not in ("http", "https") or bool(parts.netloc)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")


_DEFAULTS: dict[str, Any] = {
    "info": {
        "logoUrl": None,
        "marketingUrl": None,
        "privacyStatementUrl": None,
        "supportUrl": None,
        "termsOfServiceUrl": None,
    },
    "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
    "publicClient": {"redirectUris": []},
    "spa": {"redirectUris": []},
    "web": {
        "homePageUrl": None,
        "logoutUrl": None,
        "redirectUris": [],
        "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
        "redirectUriSettings": [],
    },
    "verifiedPublisher": {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None},
    "oauth2RequirePostResponse": False,
}
_API_DEFAULT: dict[str, Any] = {
    "acceptMappedClaims": None,
    "knownClientApplications": [],
    "oauth2PermissionScopes": [],
    "preAuthorizedApplications": [],
    "requestedAccessTokenVersion": None,
}
_API_DEFAULT_PERSONAL = {**_API_DEFAULT, "requestedAccessTokenVersion": 2}


def _default_value(name: str, audience: str) -> Any:
    """What an app shows for a property never set (shared objects: never mutate them)."""
    if name in _COLLECTIONS:
        return []
    if name == "api":
        return _API_DEFAULT_PERSONAL if audience in PERSONAL_AUDIENCES else _API_DEFAULT
    return _DEFAULTS.get(name)


def _encode_skiptoken(index: int) -> str:
    return base64.urlsafe_b64encode(f"fake-graph:{index}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, index = text.partition(":")
        if prefix == "fake-graph" and index.isdigit():
            return int(index)
    except ValueError:
        pass
    _bad(
        "The specified page token value has expired and can no longer be included in your request.",
        "Directory_ExpiredPageToken",
    )


_QUOTED = r"'((?:[^']|'')*)'"
_CLAUSES = (
    ("eq", re.compile(rf"^(\w+)\s+eq\s+{_QUOTED}$")),
    ("in", re.compile(r"^(\w+)\s+in\s+\(\s*('(?:[^']|'')*'(?:\s*,\s*'(?:[^']|'')*')*)\s*\)$")),
    ("any", re.compile(rf"^(\w+)/any\((\w+):\s*\2\s+eq\s+{_QUOTED}\)$")),
    ("startswith", re.compile(rf"^startswith\((\w+),\s*{_QUOTED}\)$")),
)
_FILTERABLE = {
    "application": {
        "id",
        "appId",
        "displayName",
        "uniqueName",
        "signInAudience",
        "publisherDomain",
        "tags",
        "identifierUris",
        "createdByAppId",
    },
    "servicePrincipal": {
        "id",
        "appId",
        "displayName",
        "servicePrincipalType",
        "tags",
        "servicePrincipalNames",
        "accountEnabled",
    },
    "user": {"id", "mail", "userPrincipalName", "displayName", "otherMails", "userType"},
}


def _unquote(text: str) -> str:
    return text.replace("''", "'")


def _parse_filter(
    text: str | None, props: frozenset[str], type_name: str
) -> tuple[list[Callable[[Callable[[str], Any]], bool]], tuple[str, str] | None]:
    """`$filter` clauses joined by ` and ` -> predicates over a property getter."""
    if text is None:
        return [], None
    if not text.strip():
        _bad("Invalid filter clause: empty.", "BadRequest")
    clauses = re.split(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", text.strip())
    filters: list[Callable[[Callable[[str], Any]], bool]] = []
    lookup: tuple[str, str] | None = None
    for raw_clause in clauses:
        clause = raw_clause.strip()
        kind, m = next(((k, p.match(clause)) for k, p in _CLAUSES if p.match(clause)), ("", None))
        if m is None:
            _fail(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified: '{clause}'.",
            )
        prop = m[1]
        if prop not in props or prop not in _FILTERABLE[type_name]:
            _fail(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{prop}' "
                f"of resource '{type_name[0].upper()}{type_name[1:]}'.",
            )
        filters.append(_predicate(kind, m))
        if kind == "eq" and len(clauses) == 1:
            lookup = (prop, _unquote(m[2]))
    return filters, lookup


def _predicate(kind: str, m: re.Match[str]) -> Callable[[Callable[[str], Any]], bool]:
    prop = m[1]
    if kind == "any":
        wanted = _unquote(m[3]).casefold()
        return lambda get: any(str(v).casefold() == wanted for v in (get(prop) or []))
    if kind == "in":
        options = {_unquote(v).casefold() for v in re.findall(_QUOTED, m[2])}
    else:
        options = {_unquote(m[2]).casefold()}

    def test(get: Callable[[str], Any]) -> bool:
        value = get(prop)
        if value is None:
            return False
        text = str(value).casefold()
        if kind == "startswith":
            return any(text.startswith(o) for o in options)
        return text in options

    return test
