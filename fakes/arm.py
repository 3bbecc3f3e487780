"""A fake Azure Resource Manager: Microsoft.Authorization role assignments (api-version 2022-04-01)
and the caller's effective permissions, for Key Vault vaults and their secrets.

Strict like ARM: bearer tokens from FakeEntra for this server's own URL (the client asks for
`{url}/.default`), errors in ARM's `{"error": {"code", "message"}}` shape, GUID names, the
role definition id form, principal types, scopes that must exist, the directory's replication
delay (PrincipalNotFound), duplicates (RoleAssignmentExists) and the caller's own right to
assign, modelled the ARM way: the caller holds role assignments too, and a role's actions,
notActions and built-in condition (Key Vault Data Access Administrator may assign only the
Key Vault data roles) decide. Assignments at a scope apply to everything below it.

What is known about the real codes and messages, and from where:
- 401: `AuthenticationFailed` (no Authorization header), `InvalidAuthenticationTokenAudience`
  (wrong audience; the message lists the allowed audiences), `ExpiredAuthenticationToken`,
  `InvalidAuthenticationToken`, `InvalidAuthenticationTokenTenant` - messages as quoted in
  public issue threads (e.g. Azure-Samples/active-directory-dotnetcore-daemon-v2#145,
  microsoft/vscode-azureappservice#2457).
- 400 `MissingApiVersionParameter` / `InvalidApiVersionParameter`; a malformed scope (odd
  segments, a missing `providers`) is routed elsewhere by ARM and also answers
  `InvalidApiVersionParameter` - misleading, and reported many times
  (hashicorp/vault-plugin-secrets-azure#13, Azure/azure-cli#17562,
  Azure/azure-sdk-for-python#37423, pulumi/pulumi-azure-native#3637).
- 400 `InvalidRoleAssignmentId` (Azure/azure-service-operator#2586), `InvalidPrincipalId`
  (Azure/azure-powershell#16627), `PrincipalNotFound` with its replication-delay advice
  (Azure/HubAndSpokeResearchEnclave#50, Azure/avdaccelerator#99), `UnmatchedPrincipalType`
  with the service's own typo "PrinciaplType" (Azure/azure-dev#5814),
  `RoleDefinitionDoesNotExist` (JulianHayward/AzAPICall#23); 409 `RoleAssignmentExists`
  "The role assignment already exists." (Azure-Samples/azure-search-openai-demo#1091);
  403 `AuthorizationFailed` naming the action and the scope
  (Azure/terraform-azurerm-avm-res-keyvault-vault#110); 404 `ResourceGroupNotFound`
  (hashicorp/terraform-provider-azurerm#15327) and `ResourceNotFound` "The Resource
  'Microsoft.KeyVault/vaults/...' under resource group '...' was not found."
  (azuredemoenvironment/ade#245). `RoleAssignmentNotFound` and `SubscriptionNotFound`
  follow ARM's naming; their messages are not confirmed. The $filter forms are those
  Azure/azure-powershell#20384 quotes from the REST docs (atScope() and principalId eq
  cannot be combined).
- Not confirmed, chosen here and marked `# code not confirmed` where used: the codes for a
  malformed body or role definition id, an unknown principalType, a condition version, a
  skip token, an unsupported $filter and an update of an assignment's principal/role/scope.
  Whether ARM refuses a role assignment at a resource that does not exist is not settled
  either (Azure/azure-powershell#3771, 2017: the authorization RP did not check); this fake
  refuses it with ARM's generic 404 codes.

The built-in roles' permissions are those of Microsoft's built-in role reference
(MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/privileged.md
and security.md).

PrincipalNotFound in the replication window is answered whether or not principalType is
set: Microsoft's docs say setting it avoids the delay, yet callers still retry on it (the
azure-workload-identity CLI retries 7 x 5 s); the fake models the harsher case.

Knobs: `principal_replication_delay` (seconds a new directory object stays unknown to ARM),
`propagation_delay` (seconds before a grant or a removal takes effect for access checks),
`page_size`. Helpers: `add_vault`, `grant` / `revoke` (assignments made outside the API,
e.g. the bot's own right), `remove_all_assignments`, `assignments`, `authorize` (the
data-plane decision FakeKeyVault asks for).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlencode

from fakes.base import FakeServer, Request, Response
from fakes.entra import FakeEntra
from fakes.graph import FakeGraph
from fakes.keyvault import FakeKeyVault
from fakes.tls import TestCA

API_VERSION = "2022-04-01"
ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
DEFAULT_SUBSCRIPTION = "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
DEFAULT_RESOURCE_GROUP = "oauth-bot"

WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
READ = "Microsoft.Authorization/roleAssignments/read"

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
KEY_VAULT_DATA_ACCESS_ADMINISTRATOR = "8b54135c-b56d-4d72-a534-26097cfdc8d8"
KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_CERTIFICATE_USER = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba"
KEY_VAULT_CERTIFICATES_OFFICER = "a4417e6f-fecd-4de8-b567-7b0420556985"
KEY_VAULT_CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"

_KEY_VAULT_DATA_ROLES = (
    f"{KEY_VAULT_ADMINISTRATOR}, {KEY_VAULT_CERTIFICATES_OFFICER}, {KEY_VAULT_CRYPTO_OFFICER}, "
    f"{KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER}, {KEY_VAULT_CRYPTO_USER}, {KEY_VAULT_READER}, "
    f"{KEY_VAULT_SECRETS_OFFICER}, {KEY_VAULT_SECRETS_USER}"
)
# The role definition's own condition, verbatim from the built-in role reference.
KEY_VAULT_DATA_ACCESS_ADMINISTRATOR_CONDITION = (
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
    "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals"
    f"{{{_KEY_VAULT_DATA_ROLES}}})) AND "
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
    "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals"
    f"{{{_KEY_VAULT_DATA_ROLES}}}))"
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ROLE_DEFINITION_ID = re.compile(
    r"^(?:/subscriptions/(?P<sub>[^/]+))?/providers/Microsoft\.Authorization/roleDefinitions/(?P<guid>[^/]+)$",
    re.IGNORECASE,
)
_AUTHORIZATION = re.compile(r"/providers/Microsoft\.Authorization/", re.IGNORECASE)
_FILTER_PRINCIPAL = re.compile(r"^principalId\s+eq\s+'(?P<id>[^']*)'$", re.IGNORECASE)
_FILTER_ASSIGNED_TO = re.compile(r"^assignedTo\('(?P<id>[^']*)'\)$", re.IGNORECASE)
_KV_ACTIONS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
)


@dataclass(frozen=True)
class RoleDefinition:
    """A built-in role: its permissions and, for some, a condition on what it may do."""

    id: str
    name: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    condition: str | None = None

    def permission(self) -> dict[str, list[str]]:
        return {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }


ROLE_DEFINITIONS: dict[str, RoleDefinition] = {
    r.id: r
    for r in (
        RoleDefinition(OWNER, "Owner", ("*",)),
        RoleDefinition(
            CONTRIBUTOR,
            "Contributor",
            ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action",
                "Microsoft.Subscription/enable/action",
            ),
        ),
        RoleDefinition(READER, "Reader", ("*/read",)),
        RoleDefinition(
            USER_ACCESS_ADMINISTRATOR,
            "User Access Administrator",
            ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
        ),
        RoleDefinition(
            RBAC_ADMINISTRATOR,
            "Role Based Access Control Administrator",
            (WRITE, DELETE, "*/read", "Microsoft.Support/*"),
        ),
        RoleDefinition(
            KEY_VAULT_DATA_ACCESS_ADMINISTRATOR,
            "Key Vault Data Access Administrator",
            (
                WRITE,
                DELETE,
                "Microsoft.Authorization/*/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Resources/subscriptions/read",
                "Microsoft.Management/managementGroups/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Support/*",
                "Microsoft.KeyVault/vaults/*/read",
            ),
            condition=KEY_VAULT_DATA_ACCESS_ADMINISTRATOR_CONDITION,
        ),
        RoleDefinition(
            KEY_VAULT_ADMINISTRATOR,
            "Key Vault Administrator",
            _KV_ACTIONS,
            (),
            ("Microsoft.KeyVault/vaults/*",),
        ),
        RoleDefinition(
            KEY_VAULT_READER,
            "Key Vault Reader",
            _KV_ACTIONS,
            (),
            ("Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"),
        ),
        RoleDefinition(
            KEY_VAULT_SECRETS_OFFICER,
            "Key Vault Secrets Officer",
            _KV_ACTIONS,
            (),
            ("Microsoft.KeyVault/vaults/secrets/*",),
        ),
        RoleDefinition(
            KEY_VAULT_SECRETS_USER,
            "Key Vault Secrets User",
            (),
            (),
            (
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            ),
        ),
        RoleDefinition(
            KEY_VAULT_CERTIFICATE_USER,
            "Key Vault Certificate User",
            (),
            (),
            (
                "Microsoft.KeyVault/vaults/certificates/read",
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                "Microsoft.KeyVault/vaults/keys/read",
            ),
        ),
        RoleDefinition(
            KEY_VAULT_CERTIFICATES_OFFICER,
            "Key Vault Certificates Officer",
            _KV_ACTIONS,
            (),
            (
                "Microsoft.KeyVault/vaults/certificatecas/*",
                "Microsoft.KeyVault/vaults/certificates/*",
                "Microsoft.KeyVault/vaults/certificatecontacts/write",
            ),
        ),
        RoleDefinition(
            KEY_VAULT_CRYPTO_OFFICER,
            "Key Vault Crypto Officer",
            _KV_ACTIONS,
            (),
            ("Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"),
        ),
        RoleDefinition(
            KEY_VAULT_CRYPTO_USER,
            "Key Vault Crypto User",
            (),
            (),
            tuple(
                f"Microsoft.KeyVault/vaults/keys/{a}"
                for a in (
                    "read",
                    "update/action",
                    "backup/action",
                    "encrypt/action",
                    "decrypt/action",
                    "wrap/action",
                    "unwrap/action",
                    "sign/action",
                    "verify/action",
                )
            ),
        ),
        RoleDefinition(
            KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
            "Key Vault Crypto Service Encryption User",
            (
                "Microsoft.EventGrid/eventSubscriptions/write",
                "Microsoft.EventGrid/eventSubscriptions/read",
                "Microsoft.EventGrid/eventSubscriptions/delete",
            ),
            (),
            (
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/keys/wrap/action",
                "Microsoft.KeyVault/vaults/keys/unwrap/action",
            ),
        ),
    )
}


class ArmFailure(Exception):
    """An error answer in ARM's shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _fail(status: int, code: str, message: str) -> NoReturn:
    raise ArmFailure(status, code, message)


def arm_time(value: datetime) -> str:
    """ARM's timestamps: seven fractional digits and a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def role_definition_id(subscription_id: str, role: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def vault_resource_id(subscription_id: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.KeyVault/vaults/{name}"
    )


# --- actions and conditions -------------------------------------------------------------------
def action_matches(pattern: str, action: str) -> bool:
    """ARM's wildcard match of a permission entry against an operation (case-insensitive)."""
    regex = re.escape(pattern).replace(r"\*", ".*")
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


def _allows(allowed: Iterable[str], denied: Iterable[str], action: str) -> bool:
    return any(action_matches(p, action) for p in allowed) and not any(
        action_matches(p, action) for p in denied
    )


_TEST = re.compile(
    r"^@(?P<source>Request|Resource)\[Microsoft\.Authorization/roleAssignments:"
    r"(?P<attribute>RoleDefinitionId|PrincipalType|PrincipalId)\]\s*"
    r"(?:ForAnyOfAnyValues:)?(?P<operator>GuidEquals|StringEqualsIgnoreCase|StringEquals)\s*"
    r"\{(?P<values>[^}]*)\}$",
    re.IGNORECASE,
)
_ACTION_TEST = re.compile(r"^!\s*\(\s*ActionMatches\s*\{\s*'(?P<action>[^']+)'\s*\}\s*\)$", re.IGNORECASE)


@dataclass(frozen=True)
class _Clause:
    """`(!(ActionMatches{'action'})) OR (test [AND|OR test]...)`: only constrains `action`."""

    action: str
    tests: tuple[tuple[str, str, str, frozenset[str]], ...]  # (source, attribute, operator, values)
    any_of: bool  # the tests are joined by OR (else AND)


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _split_top(text: str, word: str) -> list[str]:
    """Split on `word` (AND / OR) where it is not inside parentheses or braces."""
    parts: list[str] = []
    depth = 0
    start = 0
    index = 0
    pattern = re.compile(rf"\s{word}\s", re.IGNORECASE)
    while index < len(text):
        char = text[index]
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        elif depth == 0:
            found = pattern.match(text, index - 1) if index > 0 else None
            if found is not None:
                parts.append(text[start : index - 1])
                start = found.end()
                index = found.end()
                continue
        index += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_condition(text: str) -> tuple[_Clause, ...] | None:
    """The role-assignment conditions ARM documents for delegation (clauses joined by AND, each
    constraining one Microsoft.Authorization action); None for anything else."""
    clauses: list[_Clause] = []
    for raw in _split_top(_strip_parens(" ".join(text.split())), "AND"):
        halves = _split_top(_strip_parens(raw), "OR")
        if len(halves) != 2:
            return None
        guard = _ACTION_TEST.match(_strip_parens(halves[0]))
        if guard is None:
            return None
        inner = _strip_parens(halves[1])
        any_of = len(_split_top(inner, "OR")) > 1
        pieces = _split_top(inner, "OR") if any_of else _split_top(inner, "AND")
        tests = []
        for piece in pieces:
            test = _TEST.match(_strip_parens(piece))
            if test is None:
                return None
            values = frozenset(v.strip().strip("'\"").lower() for v in test["values"].split(",") if v.strip())
            tests.append(
                (test["source"].lower(), test["attribute"].lower(), test["operator"].lower(), values)
            )
        clauses.append(_Clause(guard["action"], tuple(tests), any_of))
    return tuple(clauses)


def condition_allows(
    condition: str, action: str, attributes: dict[tuple[str, str], str], *, no_resource: bool = False
) -> bool:
    """Evaluate a condition for `action`; attributes are keyed (source, attribute), lower-case.
    `no_resource`: the request is about an object that does not exist (a DELETE of an assignment
    already gone), so there is no @Resource to constrain. A condition this fake cannot read
    allows nothing (fail closed)."""
    clauses = parse_condition(condition)
    if clauses is None:
        return False
    for clause in clauses:
        if not action_matches(clause.action, action):
            continue
        results = []
        for source, attribute, _operator, values in clause.tests:
            if source == "resource" and no_resource:
                results.append(True)
                continue
            value = attributes.get((source, attribute))
            results.append(value is not None and value.lower() in values)
        if not (any(results) if clause.any_of else all(results)):
            return False
    return True


# --- scopes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scope:
    """A parsed ARM scope: a subscription, a resource group or a resource (a vault, a secret)."""

    subscription: str
    resource_group: str | None = None
    provider: str | None = None
    types: tuple[tuple[str, str], ...] = ()  # ((type, name), ...) below the provider

    @property
    def key(self) -> tuple[str, ...]:
        """Lower-case segments, for ancestor tests."""
        return tuple(_segments(self.path().lower()))

    def path(self) -> str:
        text = f"/subscriptions/{self.subscription}"
        if self.resource_group is not None:
            text += f"/resourceGroups/{self.resource_group}"
        if self.provider is not None:
            text += f"/providers/{self.provider}"
            text += "".join(f"/{t}/{n}" for t, n in self.types)
        return text


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _parse_scope(path: str) -> _Scope | None:
    parts = _segments(path)
    if len(parts) < 2 or parts[0].lower() != "subscriptions" or len(parts) % 2:
        return None
    scope = _Scope(parts[1])
    rest = parts[2:]
    if not rest:
        return scope
    if rest[0].lower() != "resourcegroups":
        return None
    scope = replace(scope, resource_group=rest[1])
    rest = rest[2:]
    if not rest:
        return scope
    if rest[0].lower() != "providers" or len(rest) < 4:
        return None
    types = tuple((rest[i], rest[i + 1]) for i in range(2, len(rest), 2))
    if any(t.lower() == "providers" for t, _ in types):
        return None
    return replace(scope, provider=rest[1], types=types)


def _is_within(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
    """Is the scope `inner` the scope `outer` or below it?"""
    return inner[: len(outer)] == outer


# --- state ------------------------------------------------------------------------------------
@dataclass
class _Assignment:
    name: str
    scope: str  # as ARM shows it (the resource's own spelling)
    role: str  # role definition GUID, lower-case
    role_definition_id: str
    principal_id: str
    principal_type: str
    description: str | None
    condition: str | None
    condition_version: str | None
    created_on: datetime
    updated_on: datetime
    created_by: str | None
    updated_by: str | None
    granted_at: float = field(default_factory=time.monotonic)  # for `propagation_delay`

    @property
    def scope_key(self) -> tuple[str, ...]:
        return tuple(_segments(self.scope.lower()))

    def as_json(self) -> dict[str, Any]:
        return {
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": self.condition,
                "conditionVersion": self.condition_version,
                "createdOn": arm_time(self.created_on),
                "updatedOn": arm_time(self.updated_on),
                "createdBy": self.created_by,
                "updatedBy": self.updated_by,
                "delegatedManagedIdentityResourceId": None,
                "description": self.description,
            },
            "id": f"{self.scope}/providers/{ROLE_ASSIGNMENT_TYPE}/{self.name}",
            "type": ROLE_ASSIGNMENT_TYPE,
            "name": self.name,
        }


@dataclass
class _Vault:
    fake: FakeKeyVault
    subscription: str
    resource_group: str
    name: str

    @property
    def resource_id(self) -> str:
        return vault_resource_id(self.subscription, self.resource_group, self.name)


class FakeArm(FakeServer):
    """Resource Manager at `url` for one tenant. Tokens must be for audience `url`
    (credential scope `{url}/.default`) and the tenant.

    Subscriptions and resource groups exist when a vault is registered in them (`add_vault`);
    the vault's secrets exist when FakeKeyVault holds them (not deleted).
    """

    name = "arm"

    def __init__(
        self,
        ca: TestCA,
        entra: FakeEntra,
        directory: FakeGraph,
        tenant_id: str,
        subscription_id: str = DEFAULT_SUBSCRIPTION,
    ) -> None:
        super().__init__(ca)
        self.entra = entra
        self.directory = directory
        self.tenant_id = tenant_id
        self.subscription_id = subscription_id
        self.principal_replication_delay = 0.0
        self.propagation_delay = 0.0
        self.page_size = 100
        self.answers: list[tuple[Request, int | None]] = []
        self._vaults: dict[tuple[str, str, str], _Vault] = {}  # (sub, rg, name), lower-case
        self._groups: dict[tuple[str, str], str] = {}  # (sub, rg) lower-case -> rg as created
        self._subscriptions: dict[str, str] = {subscription_id.lower(): subscription_id}
        self._assignments: dict[str, _Assignment] = {}  # by name, lower-case
        self._removed: list[tuple[_Assignment, float]] = []  # still in force until propagated
        for method in ("GET", "PUT", "DELETE", "POST", "PATCH", "HEAD"):
            self.route(method, r"/.*", self._serve)

    @property
    def resource(self) -> str:
        """The audience of ARM's tokens here (public cloud: https://management.azure.com)."""
        return self.url

    # --- test helpers ---------------------------------------------------------------------
    def add_vault(
        self,
        vault: FakeKeyVault,
        name: str,
        *,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        subscription_id: str | None = None,
    ) -> str:
        """Register a Key Vault fake as an ARM resource; its data plane then asks this fake
        who may read what. Returns the vault's resource id."""
        subscription = subscription_id or self.subscription_id
        entry = _Vault(vault, subscription, resource_group, name)
        with self.lock:
            self._subscriptions.setdefault(subscription.lower(), subscription)
            self._groups.setdefault((subscription.lower(), resource_group.lower()), resource_group)
            self._vaults[(subscription.lower(), resource_group.lower(), name.lower())] = entry
        vault.arm_resource_id = entry.resource_id
        vault.authorize = self.authorize
        return entry.resource_id

    def grant(
        self,
        principal_id: str,
        role: str,
        scope: str,
        *,
        principal_type: str = "ServicePrincipal",
        condition: str | None = None,
        name: str | None = None,
    ) -> str:
        """An assignment made outside the API (the portal, a deployment), in force at once;
        e.g. the bot's own right to assign. Returns its name."""
        if role.lower() not in ROLE_DEFINITIONS:
            raise ValueError(f"unknown role definition {role}")
        now = datetime.now(UTC)
        parsed = _parse_scope(scope)
        if parsed is None:
            raise ValueError(f"not an ARM scope: {scope}")
        assignment = _Assignment(
            name=(name or str(uuid.uuid4())).lower(),
            scope=parsed.path(),
            role=role.lower(),
            role_definition_id=role_definition_id(parsed.subscription, role.lower()),
            principal_id=principal_id.lower(),
            principal_type=principal_type,
            description=None,
            condition=condition,
            condition_version="2.0" if condition else None,
            created_on=now,
            updated_on=now,
            created_by=None,
            updated_by=None,
            granted_at=float("-inf"),
        )
        with self.lock:
            self._assignments[assignment.name] = assignment
        return assignment.name

    def remove_all_assignments(self) -> None:
        """Start over: no assignment anywhere, none still propagating."""
        with self.lock:
            self._assignments.clear()
            self._removed.clear()

    def revoke(self, name: str) -> None:
        """Remove an assignment outside the API, in force at once."""
        with self.lock:
            self._assignments.pop(name.lower(), None)

    def assignments(self, principal_id: str | None = None) -> list[dict[str, Any]]:
        """Every assignment (of `principal_id`), as GET shows it."""
        with self.lock:
            return [
                a.as_json()
                for a in self._assignments.values()
                if principal_id is None or a.principal_id == principal_id.lower()
            ]

    def dispatch(self, request: Request) -> tuple[Response | None, float]:
        response, delay = super().dispatch(request)
        with self.lock:
            self.answers.append((request, None if response is None else response.status))
        return response, delay

    # --- access decisions -------------------------------------------------------------------
    def authorize(self, claims: dict[str, Any], data_action: str, resource_id: str) -> bool:
        """May the token's principal perform `data_action` on `resource_id`? (FakeKeyVault asks.)"""
        principals = self._principals_of(str(claims.get("oid", "")))
        target = tuple(_segments(resource_id.lower()))
        for assignment in self._in_force(principals, target):
            role = ROLE_DEFINITIONS[assignment.role]
            if not _allows(role.data_actions, role.not_data_actions, data_action):
                continue
            if assignment.condition and not condition_allows(assignment.condition, data_action, {}):
                continue
            return True
        return False

    def _principals_of(self, object_id: str) -> set[str]:
        return {object_id.lower()} | self.directory.groups_of(object_id)

    def _in_force(self, principals: set[str], target: tuple[str, ...]) -> list[_Assignment]:
        """Assignments of `principals` at `target` or above that apply now (propagation)."""
        now = time.monotonic()
        with self.lock:
            live = [a for a in self._assignments.values() if a.granted_at + self.propagation_delay <= now]
            live += [a for a, removed_at in self._removed if removed_at + self.propagation_delay > now]
            self._removed = [(a, t) for a, t in self._removed if t + self.propagation_delay > now]
        return [a for a in live if a.principal_id in principals and _is_within(target, a.scope_key)]

    def _may(
        self,
        claims: dict[str, Any],
        action: str,
        scope: _Scope,
        attributes: dict[tuple[str, str], str] | None = None,
        *,
        no_resource: bool = False,
    ) -> bool:
        principals = self._principals_of(str(claims.get("oid", "")))
        for assignment in self._in_force(principals, scope.key):
            role = ROLE_DEFINITIONS[assignment.role]
            if not _allows(role.actions, role.not_actions, action):
                continue
            values = attributes or {}
            if role.condition and not condition_allows(
                role.condition, action, values, no_resource=no_resource
            ):
                continue
            if assignment.condition and not condition_allows(
                assignment.condition, action, values, no_resource=no_resource
            ):
                continue
            return True
        return False

    def _require(
        self,
        claims: dict[str, Any],
        action: str,
        scope: _Scope,
        shown: str,
        attributes: dict[tuple[str, str], str] | None = None,
        *,
        no_resource: bool = False,
    ) -> None:
        if self._may(claims, action, scope, attributes, no_resource=no_resource):
            return
        client = claims.get("upn") if claims.get("idtyp") == "user" else claims.get("oid")
        _fail(
            403,
            "AuthorizationFailed",
            f"The client '{client}' with object id '{claims.get('oid')}' does not have "
            f"authorization to perform action '{action}' over scope '{shown}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.",
        )

    # --- dispatch ---------------------------------------------------------------------------
    def _serve(self, request: Request, match: re.Match[str]) -> Response:
        try:
            claims = self._authenticate(request)
            version = request.arg("api-version")
            if not version:
                _fail(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            status, body = self._route(request, claims, version)
        except ArmFailure as failure:
            return self._error(failure)
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return Response(status, body, headers)

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            self._unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            )
        claims, why = self.entra.inspect(token.strip(), self.resource)
        if claims is None:
            if why == "audience":
                audience = self._audience_of(token.strip())
                self._unauthorized(
                    "InvalidAuthenticationTokenAudience",
                    f"The access token has been obtained for wrong audience or resource '{audience}'. "
                    f"It should exactly match with one of the allowed audiences '{self.resource}/',"
                    f"'{self.resource}'.",
                )
            if why == "expired":
                expiry = self._claim_of(token.strip(), "exp")
                self._unauthorized(
                    "ExpiredAuthenticationToken",
                    f"The access token expiry UTC time '{_us_time(expiry)}' is earlier than current "
                    f"UTC time '{_us_time(time.time())}'.",
                )
            self._unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
        if str(claims.get("tid", "")).lower() != self.tenant_id.lower():
            self._unauthorized(
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the "
                f"tenant '{self.entra.issuer}' associated with this subscription. Please use the "
                f"authority (URL) '{self.entra.url}/{self.tenant_id}' to get the token.",
            )
        return claims

    def _unauthorized(self, code: str, message: str, description: str | None = None) -> NoReturn:
        challenge = (
            f'Bearer authorization_uri="{self.entra.url}/{self.tenant_id}", error="invalid_token", '
            f'error_description="{description or message}"'
        )
        raise ArmFailure(401, code, message, {"WWW-Authenticate": challenge})

    @staticmethod
    def _claim_of(token: str, name: str) -> Any:
        try:
            payload = token.split(".")[1]
            return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get(name)
        except (IndexError, ValueError, AttributeError):
            return None

    def _audience_of(self, token: str) -> str:
        return str(self._claim_of(token, "aud") or "")

    def _route(self, request: Request, claims: dict[str, Any], version: str) -> tuple[int, Any]:
        path = unquote(request.path)
        found = list(_AUTHORIZATION.finditer(path))
        if not found:
            self._misrouted(version)
        scope_path = path[: found[-1].start()]
        tail = _segments(path[found[-1].end() :])
        scope = _parse_scope(scope_path)
        if scope is None:
            self._misrouted(version)
        if version != API_VERSION:
            _fail(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.",
            )
        method = request.method
        kind = tail[0].lower() if tail else ""
        if kind == "roleassignments" and len(tail) == 2:
            if method == "PUT":
                return self._create(request, claims, scope, tail[1])
            if method == "GET":
                return 200, self._get(claims, scope, tail[1])
            if method == "DELETE":
                return self._delete(claims, scope, tail[1])
        if kind == "roleassignments" and len(tail) == 1 and method == "GET":
            return 200, self._list(request, claims, scope)
        if kind == "permissions" and len(tail) == 1 and method == "GET":
            return 200, self._permissions(claims, scope)
        _fail(
            404,
            "NotFound",
            f"{self.name}: {method} {request.path} is not implemented by this fake "
            "(role assignments and permissions only).",
        )

    def _misrouted(self, version: str) -> NoReturn:
        # ARM routes a path it cannot parse as an authorization request to the resources
        # provider, whose answer names its own api-versions: misleading, but what callers see.
        _fail(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            "'2024-03-01,2023-07-01,2022-09-01,2021-04-01,2020-10-01,2019-10-01,2018-05-01'.",
        )

    # --- scopes -----------------------------------------------------------------------------
    def _resolve(self, scope: _Scope) -> str:
        """The scope as ARM shows it, if it exists; else ARM's 404."""
        with self.lock:
            subscription = self._subscriptions.get(scope.subscription.lower())
            group = None
            if scope.resource_group is not None:
                group = self._groups.get((scope.subscription.lower(), scope.resource_group.lower()))
            vault = None
            types = [(t.lower(), n) for t, n in scope.types]
            kind = tuple(t for t, _ in types)
            is_vault = kind in {("vaults",), ("vaults", "secrets")}
            if group is not None and (scope.provider or "").lower() == "microsoft.keyvault" and is_vault:
                vault = self._vaults.get((scope.subscription.lower(), group.lower(), types[0][1].lower()))
        if subscription is None:
            _fail(404, "SubscriptionNotFound", f"The subscription '{scope.subscription}' could not be found.")
        if scope.resource_group is None:
            return f"/subscriptions/{subscription}"
        if group is None:
            _fail(
                404, "ResourceGroupNotFound", f"Resource group '{scope.resource_group}' could not be found."
            )
        if scope.provider is None:
            return f"/subscriptions/{subscription}/resourceGroups/{group}"
        shown_type = "/".join(f"{t}/{n}" for t, n in scope.types)
        not_found = (
            f"The Resource '{scope.provider}/{shown_type}' under resource group "
            f"'{scope.resource_group}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix"
        )
        if vault is None:
            _fail(404, "ResourceNotFound", not_found)
        if len(types) == 1:
            return vault.resource_id
        secret = vault.fake.canonical_name(types[1][1])
        if secret is None:
            _fail(404, "ResourceNotFound", not_found)
        return f"{vault.resource_id}/secrets/{secret}"

    # --- operations ---------------------------------------------------------------------------
    def _create(
        self, request: Request, claims: dict[str, Any], scope: _Scope, name: str
    ) -> tuple[int, dict[str, Any]]:
        shown = f"{scope.path()}/providers/{ROLE_ASSIGNMENT_TYPE}/{name}"
        properties = _properties(request)
        requested_role = _role_guid(properties.get("roleDefinitionId"))
        attributes = {
            ("request", "roledefinitionid"): requested_role or "",
            ("request", "principalid"): str(properties.get("principalId") or "").lower(),
            ("request", "principaltype"): str(properties.get("principalType") or "").lower(),
        }
        self._require(claims, WRITE, scope, shown, attributes)
        canonical = self._resolve(scope)
        if not _GUID.match(name):
            _fail(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        definition = properties.get("roleDefinitionId")
        parsed = _ROLE_DEFINITION_ID.match(definition) if isinstance(definition, str) else None
        if parsed is None or not _GUID.match(parsed["guid"]):
            # code not confirmed
            _fail(400, "InvalidRoleDefinitionId", f"The role definition ID '{definition}' is not valid.")
        role = parsed["guid"].lower()
        if role not in ROLE_DEFINITIONS:
            _fail(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{parsed['guid']}' does not exist.",
            )
        principal_id = properties.get("principalId")
        if not isinstance(principal_id, str) or not _GUID.match(principal_id):
            _fail(
                400,
                "InvalidPrincipalId",
                f"The Principal ID '{principal_id}' is not valid. Principal ID must be a GUID.",
            )
        principal_type = properties.get("principalType")
        if principal_type is not None and principal_type not in PRINCIPAL_TYPES:
            # code not confirmed
            _fail(
                400,
                "InvalidPrincipalType",
                f"The principal type '{principal_type}' is not valid. Valid values are "
                f"{', '.join(PRINCIPAL_TYPES)}.",
            )
        description = _optional_text(properties, "description")
        condition = _optional_text(properties, "condition")
        condition_version = _optional_text(properties, "conditionVersion")
        if condition is not None and condition_version not in (None, "2.0"):
            # code not confirmed
            _fail(400, "InvalidConditionVersion", "The only accepted condition version is '2.0'.")
        if condition is not None:
            condition_version = "2.0"
        principal = self.directory.principal(principal_id)
        fresh = principal is not None and (
            time.monotonic() - principal.created_at < self.principal_replication_delay
        )
        if principal is None or fresh:
            _fail(
                400,
                "PrincipalNotFound",
                f"Principal {principal_id.replace('-', '').lower()} does not exist in the directory "
                f"{self.tenant_id}. Check that you have the correct principal ID. If you are creating "
                "this principal and then immediately assigning a role, this error might be related "
                "to a replication delay. In this case, set the role assignment principalType property "
                "to a value, such as ServicePrincipal, User, or Group.  See "
                "https://aka.ms/docs-principaltype",
            )
        if principal_type is not None and principal_type != principal.type:
            _fail(
                400,
                "UnmatchedPrincipalType",
                f"The PrincipalId '{principal_id}' has type "
                f"'{principal.type}' , which is different from specified PrinciaplType "
                f"'{principal_type}'.",
            )
        now = datetime.now(UTC)
        key = name.lower()
        target = tuple(_segments(canonical.lower()))
        with self.lock:
            existing = self._assignments.get(key)
            if existing is not None:
                same = (
                    existing.scope_key == target
                    and existing.role == role
                    and existing.principal_id == principal_id.lower()
                )
                if not same:
                    # code not confirmed; the message is the service's (Azure/azure-sdk-for-net#3394)
                    _fail(
                        400,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                    )
                if (description, condition) != (existing.description, existing.condition):
                    existing.description = description
                    existing.condition = condition
                    existing.condition_version = condition_version
                    existing.updated_on = now
                    existing.updated_by = str(claims.get("oid"))
                return 200, existing.as_json()
            twin = next(
                (
                    a
                    for a in self._assignments.values()
                    if a.scope_key == target and a.role == role and a.principal_id == principal_id.lower()
                ),
                None,
            )
            if twin is not None:
                _fail(409, "RoleAssignmentExists", "The role assignment already exists.")
            assignment = _Assignment(
                name=key,
                scope=canonical,
                role=role,
                role_definition_id=role_definition_id(scope.subscription, role),
                principal_id=principal_id.lower(),
                principal_type=principal_type or principal.type,
                description=description,
                condition=condition,
                condition_version=condition_version,
                created_on=now,
                updated_on=now,
                created_by=str(claims.get("oid")),
                updated_by=str(claims.get("oid")),
            )
            self._assignments[key] = assignment
            return 201, assignment.as_json()

    def _get(self, claims: dict[str, Any], scope: _Scope, name: str) -> dict[str, Any]:
        shown = f"{scope.path()}/providers/{ROLE_ASSIGNMENT_TYPE}/{name}"
        self._require(claims, READ, scope, shown)
        self._resolve(scope)
        if not _GUID.match(name):
            _fail(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        with self.lock:
            assignment = self._assignments.get(name.lower())
            if assignment is None or assignment.scope_key != scope.key:
                _fail(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
            return assignment.as_json()

    def _delete(self, claims: dict[str, Any], scope: _Scope, name: str) -> tuple[int, Any]:
        shown = f"{scope.path()}/providers/{ROLE_ASSIGNMENT_TYPE}/{name}"
        with self.lock:
            existing = self._assignments.get(name.lower())
            if existing is not None and existing.scope_key != scope.key:
                existing = None
        attributes = {}
        if existing is not None:
            attributes = {
                ("resource", "roledefinitionid"): existing.role,
                ("resource", "principalid"): existing.principal_id,
                ("resource", "principaltype"): existing.principal_type.lower(),
            }
        self._require(claims, DELETE, scope, shown, attributes, no_resource=existing is None)
        if not _GUID.match(name):
            _fail(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            )
        with self.lock:
            removed = self._assignments.pop(name.lower(), None) if existing is not None else None
            if removed is None:
                return 204, None
            self._removed.append((removed, time.monotonic()))
            return 200, removed.as_json()

    def _list(self, request: Request, claims: dict[str, Any], scope: _Scope) -> dict[str, Any]:
        shown = f"{scope.path()}/providers/{ROLE_ASSIGNMENT_TYPE}"
        self._require(claims, READ, scope, shown)
        self._resolve(scope)
        at_scope, principal, assigned_to = _parse_filter(request.arg("$filter"))
        target = scope.key
        principals: set[str] | None = None
        if principal is not None:
            principals = {principal}
        if assigned_to is not None:
            principals = self._principals_of(assigned_to)
        with self.lock:
            items = [
                a
                for a in self._assignments.values()
                if (_is_within(target, a.scope_key) or (not at_scope and _is_within(a.scope_key, target)))
                and (principals is None or a.principal_id in principals)
            ]
            items.sort(key=lambda a: (len(a.scope_key), a.created_on, a.name))
            page = [a.as_json() for a in items]
        token = request.arg("$skipToken") or "0"
        if not token.isdigit():
            _fail(400, "InvalidSkipToken", "The skip token is not valid.")  # code not confirmed
        start = int(token)
        body: dict[str, Any] = {"value": page[start : start + self.page_size]}
        if start + self.page_size < len(page):
            pairs = [(k, v) for k, values in request.query.items() if k != "$skipToken" for v in values]
            pairs.append(("$skipToken", str(start + self.page_size)))
            body["nextLink"] = f"{self.url}{request.path}?{urlencode(pairs, quote_via=quote)}"
        return body

    def _permissions(self, claims: dict[str, Any], scope: _Scope) -> dict[str, Any]:
        self._resolve(scope)
        principals = self._principals_of(str(claims.get("oid", "")))
        return {
            "value": [ROLE_DEFINITIONS[a.role].permission() for a in self._in_force(principals, scope.key)]
        }

    # --- answers -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        request_id = str(uuid.uuid4())
        return {
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": request_id,
            "x-ms-routing-request-id": f"LOCAL:{datetime.now(UTC):%Y%m%dT%H%M%SZ}:{request_id}",
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
        }

    def _error(self, failure: ArmFailure) -> Response:
        headers = {**self._headers(), **failure.headers, "x-ms-failure-cause": "service"}
        return Response(
            failure.status, {"error": {"code": failure.code, "message": failure.message}}, headers
        )


def _properties(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = None
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        # code not confirmed
        _fail(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: a JSON object with "
            "'properties' is required.",
        )
    allowed = {
        "roleDefinitionId",
        "principalId",
        "principalType",
        "description",
        "condition",
        "conditionVersion",
    }
    allowed |= {"delegatedManagedIdentityResourceId"}
    unknown = sorted(set(properties) - allowed)
    if unknown:
        # code not confirmed
        _fail(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: could not find member "
            f"'{unknown[0]}' on object of type 'RoleAssignmentProperties'.",
        )
    return properties


def _optional_text(properties: dict[str, Any], name: str) -> str | None:
    value = properties.get(name)
    if value is not None and not isinstance(value, str):
        # code not confirmed
        _fail(400, "InvalidRequestContent", f"The request content was invalid: '{name}' must be a string.")
    return value


def _role_guid(definition: Any) -> str | None:
    parsed = _ROLE_DEFINITION_ID.match(definition) if isinstance(definition, str) else None
    return parsed["guid"].lower() if parsed else None


def _parse_filter(text: str | None) -> tuple[bool, str | None, str | None]:
    """(atScope, principalId, assignedTo) of a role-assignment $filter. ARM takes atScope(),
    principalId eq '{id}', assignedTo('{id}') and atScope() and assignedTo('{id}')."""
    if not text:
        return False, None, None
    clauses = [c.strip() for c in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)]
    at_scope = any(c.lower() == "atscope()" for c in clauses)
    others = [c for c in clauses if c.lower() != "atscope()"]
    if len(clauses) == 1 and at_scope:
        return True, None, None
    if len(others) == 1 and len(clauses) - len(others) <= 1:
        by_principal = _FILTER_PRINCIPAL.match(others[0])
        by_target = _FILTER_ASSIGNED_TO.match(others[0])
        if by_principal and not at_scope and _GUID.match(by_principal["id"]):
            return False, by_principal["id"].lower(), None
        if by_target and _GUID.match(by_target["id"]):
            return at_scope, None, by_target["id"].lower()
    _fail(
        400,
        "UnsupportedQuery",  # code not confirmed; the message follows Azure/azure-xplat-cli#1692
        f"The filter '{text}' is not supported. Supported filters are either 'atScope()', "
        "'principalId eq '{value}'', 'assignedTo('{value}')' or 'atScope() and assignedTo('{value}')'.",
    )


def _us_time(value: Any) -> str:
    """ARM's message timestamps: '6/15/2026 8:22:51 AM'."""
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    hour = moment.hour % 12 or 12
    noon = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment:%M:%S} {noon}"
