"""The Resource Manager fake (role assignments, permissions) driven by the production client,
azure-mgmt-authorization's AuthorizationManagementClient, and by raw HTTPS where the SDK hides
the wire (status codes, error bodies, headers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from fakes.arm import (
    API_VERSION,
    CONTRIBUTOR,
    KEY_VAULT_ADMINISTRATOR,
    KEY_VAULT_CERTIFICATES_OFFICER,
    KEY_VAULT_DATA_ACCESS_ADMINISTRATOR,
    KEY_VAULT_READER,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_SECRETS_USER,
    OWNER,
    RBAC_ADMINISTRATOR,
    READER,
    ROLE_DEFINITIONS,
    FakeArm,
    role_definition_id,
)
from fakes.cloud import (
    BOT_PRINCIPAL_ID,
    DEVELOPER,
    OUTSIDER,
    PEOPLE,
    FakeCloud,
    entra_user_id,
)
from fakes.entra import FakeEntra, service_principal_object_id
from fakes.graph import FakeGraph
from fakes.keyvault import FakeKeyVault
from fakes.tls import TestCA
from tests.fakes.clients import AppCredential, authorization_client

TENANT = "6b5a4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
BOT_ID = "0b0b0b0b-2222-4333-8444-555555555555"
BOT_SECRET = "bot~arm.secret-0123456789abcdefghijklmn"
BOT_OID = service_principal_object_id(TENANT, BOT_ID)
ADA = "5e5e5e5e-aaaa-4bbb-8ccc-000000000001"
BEN = "5e5e5e5e-aaaa-4bbb-8ccc-000000000002"
TEAM = "6a6a6a6a-bbbb-4ccc-8ddd-000000000001"
VAULT = "contoso-apps"
SECRET_A = "oauth-app-a"
SECRET_B = "oauth-app-b"


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def entra(ca: TestCA) -> Iterator[FakeEntra]:
    server = FakeEntra(ca, TENANT)
    server.start()
    server.register_client(BOT_ID, BOT_SECRET, ["Application.ReadWrite.OwnedBy"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def graph(ca: TestCA, entra: FakeEntra) -> Iterator[FakeGraph]:
    server = FakeGraph(ca, entra)
    server.start()
    server.add_user(ADA, "ada@contoso.example", "Ada Lovelace")
    server.add_user(BEN, "ben@contoso.example", "Ben Bitdiddle")
    server.add_group(TEAM, "App owners", [BEN])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vault(ca: TestCA, entra: FakeEntra) -> Iterator[FakeKeyVault]:
    server = FakeKeyVault(ca, entra, TENANT)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def arm(ca: TestCA, entra: FakeEntra, graph: FakeGraph, vault: FakeKeyVault) -> Iterator[FakeArm]:
    server = FakeArm(ca, entra, graph, TENANT)
    server.start()
    server.add_vault(vault, VAULT)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(
    monkeypatch: pytest.MonkeyPatch, ca: TestCA, entra: FakeEntra, arm: FakeArm, vault: FakeKeyVault
) -> None:
    """Clients trust the test CA; the bot holds only Key Vault Secrets Officer and Key Vault
    Data Access Administrator on the vault; knobs at their defaults; both secrets exist."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    arm.principal_replication_delay = 0.0
    arm.propagation_delay = 0.0
    arm.page_size = 100
    arm.remove_all_assignments()
    arm.grant(BOT_OID, KEY_VAULT_SECRETS_OFFICER, vault_id(arm))
    arm.grant(BOT_OID, KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, vault_id(arm))
    for name in (SECRET_A, SECRET_B):
        if vault.value_of(name) is None:
            SecretClient(vault.url, AppCredential(entra, BOT_ID, BOT_SECRET)).set_secret(
                name, f"value of {name}"
            )


@pytest.fixture
def client(entra: FakeEntra, arm: FakeArm) -> AuthorizationManagementClient:
    return authorization_client(arm, AppCredential(entra, BOT_ID, BOT_SECRET))


def vault_id(arm: FakeArm) -> str:
    group = f"/subscriptions/{arm.subscription_id}/resourceGroups/oauth-bot"
    return f"{group}/providers/Microsoft.KeyVault/vaults/{VAULT}"


def secret_scope(arm: FakeArm, name: str = SECRET_A) -> str:
    return f"{vault_id(arm)}/secrets/{name}"


def role(arm: FakeArm, guid: str) -> str:
    return role_definition_id(arm.subscription_id, guid)


def grant_params(
    arm: FakeArm,
    principal: str = ADA,
    guid: str = KEY_VAULT_SECRETS_USER,
    principal_type: str | None = "User",
) -> RoleAssignmentCreateParameters:
    optional: dict[str, str] = {} if principal_type is None else {"principal_type": principal_type}
    return RoleAssignmentCreateParameters(
        role_definition_id=role(arm, guid),
        principal_id=principal,
        description="read access to one app's client secret, granted by oauth-bot",
        **optional,
    )


def raw(ca: TestCA, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(verify=ca.client_context(), headers=headers, timeout=30)


def bot_token(entra: FakeEntra, arm: FakeArm) -> str:
    return entra.issue_token(BOT_ID, arm.url)


def assignment_url(arm: FakeArm, scope: str, name: str) -> str:
    return f"{arm.url}{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


def code_of(error: HttpResponseError) -> str | None:
    return error.error.code if error.error is not None else None


# --- authentication and versions -------------------------------------------------------------
def test_arm_requires_a_bearer_token_for_its_own_audience(ca: TestCA, entra: FakeEntra, arm: FakeArm) -> None:
    """No token: 401 AuthenticationFailed with a WWW-Authenticate challenge; a token for another
    resource: 401 InvalidAuthenticationTokenAudience naming it; an expired token: 401
    ExpiredAuthenticationToken; the SDK surfaces them as ClientAuthenticationError."""
    url = f"{arm.url}{secret_scope(arm)}/providers/Microsoft.Authorization/roleAssignments"
    params = {"api-version": API_VERSION}
    with raw(ca, None) as bare:
        missing = bare.get(url, params=params)
    with raw(ca, entra.issue_token(BOT_ID, "https://0.0.1:1234")) as other:
        wrong = other.get(url, params=params)
    with raw(ca, entra.issue_token(BOT_ID, arm.url, lifetime=-60)) as old:
        expired = old.get(url, params=params)
    assert missing.status_code == 401 and error_of(missing)["code"] == "AuthenticationFailed"
    assert missing.headers["WWW-Authenticate"].startswith(f'Bearer authorization_uri="{entra.url}/{TENANT}"')
    assert wrong.status_code == 401
    assert error_of(wrong)["code"] == "InvalidAuthenticationTokenAudience"
    assert "https://0.0.1:1234" in error_of(wrong)["message"] and arm.url in error_of(wrong)["message"]
    assert expired.status_code == 401 and error_of(expired)["code"] == "ExpiredAuthenticationToken"

    graph_audience = AppCredential(entra, BOT_ID, BOT_SECRET)
    misconfigured = AuthorizationManagementClient(
        graph_audience,
        arm.subscription_id,
        base_url=arm.url,
        credential_scopes=["https://0.0.1:1234/.default"],
    )
    with pytest.raises(ClientAuthenticationError):
        misconfigured.role_assignments.get(secret_scope(arm), str(uuid.uuid4()))


def test_api_version_is_required_and_only_2022_04_01_is_served(
    ca: TestCA, entra: FakeEntra, arm: FakeArm
) -> None:
    """Without api-version: 400 MissingApiVersionParameter; another version: 400
    InvalidApiVersionParameter; a scope ARM cannot parse (a missing `providers`) is routed
    elsewhere and answers InvalidApiVersionParameter too, as the real service misleadingly does."""
    url = f"{arm.url}{secret_scope(arm)}/providers/Microsoft.Authorization/roleAssignments"
    no_group = f"{arm.url}/subscriptions/{arm.subscription_id}/oauth-bot"
    malformed = f"{no_group}/providers/Microsoft.Authorization/roleAssignments"
    with raw(ca, bot_token(entra, arm)) as http:
        none = http.get(url)
        old = http.get(url, params={"api-version": "2015-07-01"})
        lost = http.get(malformed, params={"api-version": API_VERSION})
    assert none.status_code == 400 and error_of(none)["code"] == "MissingApiVersionParameter"
    assert old.status_code == 400 and error_of(old)["code"] == "InvalidApiVersionParameter"
    assert "'2015-07-01' is invalid" in error_of(old)["message"]
    assert lost.status_code == 400 and error_of(lost)["code"] == "InvalidApiVersionParameter"


# --- create, read, list, delete --------------------------------------------------------------
def test_create_get_list_and_delete_an_assignment_at_a_secret(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """PUT answers 201 with the assignment (id, name, type, scope, role, principal, who and
    when); GET returns it; lists find it by principal and at the scope (with the bot's own
    vault-level assignments, inherited); DELETE returns it, a second DELETE is a 204 (None),
    and GET is then 404 RoleAssignmentNotFound."""
    scope = secret_scope(arm)
    name = str(uuid.uuid4())
    created = client.role_assignments.create(scope, name, grant_params(arm))
    assert created.id == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert created.name == name and created.type == "Microsoft.Authorization/roleAssignments"
    assert created.scope == scope
    assert created.role_definition_id == role(arm, KEY_VAULT_SECRETS_USER)
    assert (created.principal_id, created.principal_type) == (ADA, "User")
    assert created.created_by == BOT_OID and created.created_on is not None
    assert created.updated_on == created.created_on
    assert created.description == "read access to one app's client secret, granted by oauth-bot"
    assert arm.answers[-1][1] == 201

    fetched = client.role_assignments.get(scope, name)
    assert fetched.as_dict() == created.as_dict()
    by_principal = list(client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{ADA}'"))
    assert [a.name for a in by_principal] == [name]
    at_scope = list(client.role_assignments.list_for_scope(scope, filter="atScope()"))
    assert {(a.principal_id, a.scope) for a in at_scope} == {
        (BOT_OID, vault_id(arm)),
        (ADA, scope),
    }
    assert len(at_scope) == 3  # the bot's two roles on the vault apply here too
    other_secret = list(
        client.role_assignments.list_for_scope(secret_scope(arm, SECRET_B), filter="atScope()")
    )
    assert ADA not in {a.principal_id for a in other_secret}

    deleted = client.role_assignments.delete(scope, name)
    assert deleted is not None and deleted.name == name and arm.answers[-1][1] == 200
    assert client.role_assignments.delete(scope, name) is None
    assert arm.answers[-1][1] == 204
    with pytest.raises(ResourceNotFoundError) as gone:
        client.role_assignments.get(scope, name)
    assert code_of(gone.value) == "RoleAssignmentNotFound"


def test_the_same_put_again_is_200_and_changes_nothing(
    ca: TestCA, entra: FakeEntra, arm: FakeArm, client: AuthorizationManagementClient
) -> None:
    """A retried PUT with the same name and body answers 200 with the same assignment (a lost
    answer can be retried safely); the SDK call succeeds both times."""
    scope = secret_scope(arm)
    name = str(uuid.uuid4())
    body = {
        "properties": {
            "roleDefinitionId": role(arm, KEY_VAULT_SECRETS_USER),
            "principalId": ADA,
            "principalType": "User",
        }
    }
    with raw(ca, bot_token(entra, arm)) as http:
        first = http.put(assignment_url(arm, scope, name), params={"api-version": API_VERSION}, json=body)
        again = http.put(assignment_url(arm, scope, name), params={"api-version": API_VERSION}, json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert client.role_assignments.create(scope, name, grant_params(arm)).name == name
    assert len(arm.assignments(ADA)) == 1


def test_the_same_role_for_the_same_principal_under_another_name_is_409(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """Same principal, role and scope under a new name: 409 RoleAssignmentExists; changing an
    existing name's principal is refused (400), not silently applied."""
    scope = secret_scope(arm)
    first = str(uuid.uuid4())
    client.role_assignments.create(scope, first, grant_params(arm))
    with pytest.raises(ResourceExistsError) as twin:
        client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm))
    assert twin.value.status_code == 409 and code_of(twin.value) == "RoleAssignmentExists"
    with pytest.raises(HttpResponseError) as changed:
        client.role_assignments.create(scope, first, grant_params(arm, principal=BEN))
    assert changed.value.status_code == 400 and code_of(changed.value) == "RoleAssignmentUpdateNotPermitted"
    assert [a["properties"]["principalId"] for a in arm.assignments(ADA)] == [ADA]


def test_names_roles_principals_and_types_are_validated(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """400s, each with ARM's code: a name that is not a GUID, a role id not of the
    roleDefinitions form, a role that does not exist, a principal id that is not a GUID, an
    unknown principalType and one that does not match the directory's. (The bot holds RBAC
    Administrator here: under Key Vault Data Access Administrator's condition a role id that is
    not one of the Key Vault roles is refused first, 403.)"""
    arm.grant(BOT_OID, RBAC_ADMINISTRATOR, vault_id(arm))
    scope = secret_scope(arm)
    cases: list[tuple[str, RoleAssignmentCreateParameters, str]] = [
        ("not-a-guid", grant_params(arm), "InvalidRoleAssignmentId"),
        (
            str(uuid.uuid4()),
            RoleAssignmentCreateParameters(role_definition_id="Key Vault Secrets User", principal_id=ADA),
            "InvalidRoleDefinitionId",
        ),
        (str(uuid.uuid4()), grant_params(arm, guid=str(uuid.uuid4())), "RoleDefinitionDoesNotExist"),
        (str(uuid.uuid4()), grant_params(arm, principal="ada@contoso.example"), "InvalidPrincipalId"),
        (str(uuid.uuid4()), grant_params(arm, principal_type="Robot"), "InvalidPrincipalType"),
        (str(uuid.uuid4()), grant_params(arm, principal_type="ServicePrincipal"), "UnmatchedPrincipalType"),
    ]
    for name, params, code in cases:
        with pytest.raises(HttpResponseError) as refused:
            client.role_assignments.create(scope, name, params)
        assert (refused.value.status_code, code_of(refused.value)) == (400, code), code
    assert arm.assignments(ADA) == []
    # Left out, the principal type is the directory's.
    created = client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm, principal_type=None))
    assert created.principal_type == "User"


def test_the_scope_must_exist(
    client: AuthorizationManagementClient, arm: FakeArm, entra: FakeEntra, vault: FakeKeyVault
) -> None:
    """404s: an unknown subscription, resource group or vault, a secret the vault does not hold,
    and a deleted secret (ResourceNotFound names the resource and its group)."""
    arm.grant(BOT_OID, KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, f"/subscriptions/{arm.subscription_id}")
    SecretClient(vault.url, AppCredential(entra, BOT_ID, BOT_SECRET)).set_secret("soon-deleted", "v")
    SecretClient(vault.url, AppCredential(entra, BOT_ID, BOT_SECRET)).begin_delete_secret(
        "soon-deleted"
    ).wait()
    other_subscription = str(uuid.uuid4())
    cases = [
        (f"/subscriptions/{other_subscription}", "SubscriptionNotFound"),
        (f"/subscriptions/{arm.subscription_id}/resourceGroups/elsewhere", "ResourceGroupNotFound"),
        (
            f"/subscriptions/{arm.subscription_id}/resourceGroups/oauth-bot/providers/Microsoft.KeyVault/vaults/nope",
            "ResourceNotFound",
        ),
        (secret_scope(arm, "never-written"), "ResourceNotFound"),
        (secret_scope(arm, "soon-deleted"), "ResourceNotFound"),
    ]
    arm.grant(BOT_OID, KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, f"/subscriptions/{other_subscription}")
    messages = []
    for scope, code in cases:
        with pytest.raises(ResourceNotFoundError) as missing:
            client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm))
        assert code_of(missing.value) == code, scope
        messages.append(str(missing.value))
    assert (
        "'Microsoft.KeyVault/vaults/contoso-apps/secrets/never-written' under resource group" in messages[3]
    )
    assert arm.assignments(ADA) == []


# --- the directory -------------------------------------------------------------------------------
def test_an_unknown_principal_is_principal_not_found(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """A GUID the directory does not know: 400 PrincipalNotFound, with ARM's advice about
    replication and principalType."""
    stranger = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as unknown:
        client.role_assignments.create(
            secret_scope(arm), str(uuid.uuid4()), grant_params(arm, principal=stranger)
        )
    assert unknown.value.status_code == 400 and code_of(unknown.value) == "PrincipalNotFound"
    assert stranger.replace("-", "") in str(unknown.value) and "replication delay" in str(unknown.value)


def test_a_new_principal_is_not_found_until_it_replicates_then_the_same_put_succeeds(
    client: AuthorizationManagementClient, arm: FakeArm, graph: FakeGraph
) -> None:
    """With a 1 s replication delay, a user created just now is PrincipalNotFound; retrying the
    same PUT (same name: safe) succeeds once the delay has passed, and not before."""
    arm.principal_replication_delay = 1.0
    newcomer = str(uuid.uuid4())
    graph.add_user(newcomer, "new@contoso.example", "New Person", new=True)
    created_at = time.monotonic()
    name = str(uuid.uuid4())
    failures = 0
    deadline = created_at + 10
    while True:
        try:
            assignment = client.role_assignments.create(
                secret_scope(arm), name, grant_params(arm, principal=newcomer)
            )
            break
        except HttpResponseError as error:
            assert code_of(error) == "PrincipalNotFound"
            failures += 1
            assert time.monotonic() < deadline, "the principal never replicated"
            time.sleep(0.1)
    assert failures >= 1 and time.monotonic() - created_at >= 1.0
    assert assignment.principal_id == newcomer


# --- the caller's right ----------------------------------------------------------------------------
def test_without_the_right_to_assign_the_answer_is_403_naming_the_action(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """With only Key Vault Secrets Officer, the bot may not assign: 403 AuthorizationFailed
    naming Microsoft.Authorization/roleAssignments/write and the scope; nor delete (naming
    .../delete); Role Based Access Control Administrator on the vault restores both."""
    scope = secret_scope(arm)
    kept = str(uuid.uuid4())
    client.role_assignments.create(scope, kept, grant_params(arm))
    arm.remove_all_assignments()
    arm.grant(BOT_OID, KEY_VAULT_SECRETS_OFFICER, vault_id(arm))
    name = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as refused:
        client.role_assignments.create(scope, name, grant_params(arm))
    assert refused.value.status_code == 403 and code_of(refused.value) == "AuthorizationFailed"
    message = str(refused.value)
    assert "'Microsoft.Authorization/roleAssignments/write'" in message
    assert f"over scope '{scope}/providers/Microsoft.Authorization/roleAssignments/{name}'" in message
    assert f"with object id '{BOT_OID}'" in message
    with pytest.raises(HttpResponseError) as undeletable:
        client.role_assignments.delete(scope, str(uuid.uuid4()))
    assert undeletable.value.status_code == 403
    assert "'Microsoft.Authorization/roleAssignments/delete'" in str(undeletable.value)

    arm.grant(BOT_OID, RBAC_ADMINISTRATOR, vault_id(arm))
    assert client.role_assignments.create(scope, name, grant_params(arm)).name == name


def test_key_vault_data_access_administrator_may_assign_only_key_vault_data_roles(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """The role's built-in condition: Key Vault data roles (Secrets User, Reader, Administrator,
    ...) are allowed; Reader, Contributor and Owner are 403 AuthorizationFailed; nor may it
    delete an Owner assignment someone else made. RBAC Administrator has no such condition,
    unless its assignment carries one (constrained delegation): then only what it names."""
    scope = secret_scope(arm)
    for allowed in (
        KEY_VAULT_SECRETS_USER,
        KEY_VAULT_READER,
        KEY_VAULT_ADMINISTRATOR,
        KEY_VAULT_CERTIFICATES_OFFICER,
    ):
        client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm, guid=allowed))
    for refused_role in (READER, CONTRIBUTOR, OWNER):
        with pytest.raises(HttpResponseError) as refused:
            client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm, guid=refused_role))
        assert (refused.value.status_code, code_of(refused.value)) == (403, "AuthorizationFailed")
    owner = arm.grant(ADA, OWNER, scope, principal_type="User")
    with pytest.raises(HttpResponseError) as kept:
        client.role_assignments.delete(scope, owner)
    assert kept.value.status_code == 403

    arm.remove_all_assignments()
    request = "@Request[Microsoft.Authorization/roleAssignments"
    only_secrets_user_for_people = (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        f"({request}:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{KEY_VAULT_SECRETS_USER}}} "
        f"AND {request}:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {{'User'}}))"
    )
    delegation = arm.grant(BOT_OID, RBAC_ADMINISTRATOR, vault_id(arm), condition=only_secrets_user_for_people)
    client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm))
    with pytest.raises(HttpResponseError) as constrained:
        client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm, guid=KEY_VAULT_READER))
    assert constrained.value.status_code == 403
    with pytest.raises(HttpResponseError) as not_a_person:
        client.role_assignments.create(
            scope, str(uuid.uuid4()), grant_params(arm, principal=TEAM, principal_type="Group")
        )
    assert not_a_person.value.status_code == 403
    arm.revoke(delegation)
    arm.grant(BOT_OID, RBAC_ADMINISTRATOR, vault_id(arm))
    assert (
        client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm, guid=READER)).principal_id
        == ADA
    )


# --- permissions, lists ---------------------------------------------------------------------------
def test_permissions_are_the_callers_roles_at_the_scope_and_inherited(
    client: AuthorizationManagementClient, arm: FakeArm
) -> None:
    """GET .../permissions: one entry per role the caller holds at the scope or above, with the
    real role definitions' actions and dataActions; nothing at the resource group above the
    vault (assignments are inherited downwards only)."""
    at_secret = list(
        client.permissions.list_for_resource(
            "oauth-bot", "Microsoft.KeyVault", f"vaults/{VAULT}", "secrets", SECRET_A
        )
    )
    entries = sorted((p.as_dict() for p in at_secret), key=lambda p: len(p["actions"]))
    expected = sorted(
        (
            {
                "actions": list(r.actions),
                "not_actions": list(r.not_actions),
                "data_actions": list(r.data_actions),
                "not_data_actions": list(r.not_data_actions),
            }
            for r in (
                ROLE_DEFINITIONS[KEY_VAULT_SECRETS_OFFICER],
                ROLE_DEFINITIONS[KEY_VAULT_DATA_ACCESS_ADMINISTRATOR],
            )
        ),
        key=lambda p: len(p["actions"]),
    )
    assert entries == expected
    assert ["Microsoft.KeyVault/vaults/secrets/*"] in [p["data_actions"] for p in entries]
    assert "Microsoft.Authorization/roleAssignments/write" in entries[-1]["actions"]
    assert list(client.permissions.list_for_resource_group("oauth-bot")) == []


def test_lists_page_with_next_link_and_filter_by_principal_or_membership(
    client: AuthorizationManagementClient, arm: FakeArm, graph: FakeGraph
) -> None:
    """With 2 per page, five assignments of one person come back over three pages through
    nextLink; assignedTo() includes a group's assignment for a member, principalId eq does not;
    atScope() with principalId eq is refused."""
    arm.page_size = 2
    scope = secret_scope(arm)
    for guid in (
        KEY_VAULT_SECRETS_USER,
        KEY_VAULT_READER,
        KEY_VAULT_SECRETS_OFFICER,
        KEY_VAULT_ADMINISTRATOR,
        KEY_VAULT_CERTIFICATES_OFFICER,
    ):
        client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(arm, guid=guid))
    before = len(arm.calls_to("GET", r"/roleAssignments$"))
    listed = list(client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{ADA}'"))
    assert len(listed) == 5 and len({a.name for a in listed}) == 5
    assert len(arm.calls_to("GET", r"/roleAssignments$")) - before == 3

    team_grant = client.role_assignments.create(
        vault_id(arm), str(uuid.uuid4()), grant_params(arm, principal=TEAM, principal_type="Group")
    )
    member_view = list(client.role_assignments.list_for_scope(scope, filter=f"assignedTo('{BEN}')"))
    assert [a.name for a in member_view] == [team_grant.name]
    assert list(client.role_assignments.list_for_scope(scope, filter=f"principalId eq '{BEN}'")) == []
    with pytest.raises(HttpResponseError) as combined:
        list(client.role_assignments.list_for_scope(scope, filter=f"atScope() and principalId eq '{ADA}'"))
    assert combined.value.status_code == 400
    assert TEAM in graph.groups_of(BEN)


# --- wiring -------------------------------------------------------------------------------------------
def test_fake_cloud_runs_resource_manager_with_the_bots_right_and_people_who_can_sign_in(
    tmp_path: Any,
) -> None:
    """FakeCloud starts Resource Manager with the others, names it in the environment
    (AZURE_RESOURCE_MANAGER_URL, KEY_VAULT_RESOURCE_ID), registers the vault, gives the bot Key
    Vault Data Access Administrator there (take/give knobs), and a seeded person's credential
    reads a secret they were given through the real SDK."""
    with FakeCloud(tmp_path) as cloud:
        cloud.trust()
        env = cloud.environment("sqlite://")
        assert env["AZURE_RESOURCE_MANAGER_URL"] == cloud.arm.url
        assert env["KEY_VAULT_RESOURCE_ID"] == cloud.vault_resource_id
        assert cloud.vault_resource_id.endswith("/providers/Microsoft.KeyVault/vaults/contoso-apps")
        assert cloud.settings("sqlite://").key_vault_url == cloud.vault.url  # unchanged for the bot
        bot = AppCredential(cloud.entra, *_bot_of(cloud))
        SecretClient(cloud.vault.url, bot).set_secret("oauth-wired", "wired-value")
        client = authorization_client(cloud.arm, bot)
        scope = f"{cloud.vault_resource_id}/secrets/oauth-wired"
        dana = entra_user_id(DEVELOPER)
        client.role_assignments.create(scope, str(uuid.uuid4()), grant_params(cloud.arm, principal=dana))
        reader = SecretClient(cloud.vault.url, cloud.credential_for(DEVELOPER))
        assert reader.get_secret("oauth-wired").value == "wired-value"
        outsider = SecretClient(cloud.vault.url, cloud.credential_for(OUTSIDER))
        with pytest.raises(HttpResponseError) as refused:
            outsider.get_secret("oauth-wired")
        assert refused.value.status_code == 403
        cloud.take_bot_assignment_right()
        with pytest.raises(HttpResponseError) as no_right:
            client.role_assignments.create(
                scope, str(uuid.uuid4()), grant_params(cloud.arm, principal=entra_user_id(OUTSIDER))
            )
        assert no_right.value.status_code == 403
        cloud.give_bot_assignment_right(RBAC_ADMINISTRATOR)
        client.role_assignments.create(
            scope, str(uuid.uuid4()), grant_params(cloud.arm, principal=entra_user_id(OUTSIDER))
        )
        assert outsider.get_secret("oauth-wired").value == "wired-value"
        assert PEOPLE[OUTSIDER][2] == "olly@contoso.example"
        bot_roles = {a["properties"]["roleDefinitionId"] for a in cloud.arm.assignments(BOT_PRINCIPAL_ID)}
        assert bot_roles == {role(cloud.arm, KEY_VAULT_SECRETS_OFFICER), role(cloud.arm, RBAC_ADMINISTRATOR)}


def _bot_of(cloud: FakeCloud) -> tuple[str, str]:
    env = cloud.environment("sqlite://")
    return env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"]
