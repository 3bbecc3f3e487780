"""The Entra, Graph and Key Vault fakes driven by the production clients (MSAL, httpx, azure);
Key Vault's data-plane RBAC for people with Resource Manager's role assignments
(azure-mgmt-authorization)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes.arm import (
    KEY_VAULT_DATA_ACCESS_ADMINISTRATOR,
    KEY_VAULT_SECRETS_USER,
    FakeArm,
    role_definition_id,
)
from fakes.entra import DEVICE_CODE_GRANT, FakeEntra, service_principal_object_id
from fakes.graph import FakeGraph
from fakes.keyvault import FakeKeyVault
from fakes.signin import PersonCredential
from fakes.tls import TestCA
from tests.fakes.clients import authorization_client

TENANT = "9f8e7d6c-5b4a-4321-8fed-cba987654321"
BOT_ID = "0b0b0b0b-1111-4222-8333-444444444444"
BOT_SECRET = "bot~secret.value-0123456789abcdefghijklmn"
BOT_ROLES = ["Application.ReadWrite.OwnedBy", "User.Read.All"]
ADMIN_ID = "0a0a0a0a-1111-4222-8333-555555555555"
ADMIN_SECRET = "admin~secret.value-0123456789abcdefghijk"
OTHER_ID = "0c0c0c0c-1111-4222-8333-666666666666"
OTHER_SECRET = "other~secret.value-0123456789abcdefghijk"
CERT_ID = "0d0d0d0d-1111-4222-8333-777777777777"
USER_ID = "5e5e5e5e-aaaa-4bbb-8ccc-dddddddddddd"
USER_UPN = "ada@contoso.example"
USER_PASSWORD = "ada-fake-password-loopback-only"
CLI_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI's public client id
READERS = "6a6a6a6a-bbbb-4ccc-8ddd-eeeeeeeeeeee"  # a group Ada is in
VAULT_NAME = "contoso-apps"


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def entra(ca: TestCA) -> Iterator[FakeEntra]:
    server = FakeEntra(ca, TENANT)
    server.start()
    server.register_client(BOT_ID, BOT_SECRET, BOT_ROLES)
    server.register_client(ADMIN_ID, ADMIN_SECRET, ["Application.ReadWrite.All", "User.Read.All"])
    server.register_client(OTHER_ID, OTHER_SECRET, ["Application.ReadWrite.OwnedBy"])
    server.register_client(CERT_ID, None, ["Application.ReadWrite.OwnedBy"])
    server.register_public_client(CLI_ID)
    server.add_user(USER_UPN, USER_PASSWORD, USER_ID, "Ada Lovelace")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def graph(ca: TestCA, entra: FakeEntra) -> Iterator[FakeGraph]:
    server = FakeGraph(ca, entra)
    server.start()
    server.add_user(USER_ID, USER_UPN, "Ada Lovelace", mail=USER_UPN)
    server.add_group(READERS, "Secret readers", [USER_ID])
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
    """Resource Manager knows the vault; the bot may grant Key Vault data roles on it."""
    server = FakeArm(ca, entra, graph, TENANT)
    server.start()
    server.add_vault(vault, VAULT_NAME)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _trust_ca_and_reset(
    monkeypatch: pytest.MonkeyPatch,
    ca: TestCA,
    entra: FakeEntra,
    graph: FakeGraph,
    vault: FakeKeyVault,
    arm: FakeArm,
) -> Iterator[None]:
    """Clients trust the test CA through the environment; knobs go back to defaults."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    yield
    entra.token_lifetime = 3599
    graph.replication_delay = 0.0
    graph.secret_propagation_delay = 0.0
    graph.reject_all_app_secrets = False
    graph.max_secret_lifetime_days = None
    vault.forbid_writes = False
    vault.forbid_reads = False
    arm.propagation_delay = 0.0
    arm.remove_all_assignments()


def confidential_app(entra: FakeEntra, client_id: str, credential: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=f"{entra.url}/{TENANT}",
        instance_discovery=False,
    )


def token_for(entra: FakeEntra, resource: str, client_id: str = BOT_ID, secret: str = BOT_SECRET) -> str:
    result = confidential_app(entra, client_id, secret).acquire_token_for_client(
        scopes=[f"{resource}/.default"]
    )
    assert "access_token" in result, result
    return str(result["access_token"])


def graph_client(ca: TestCA, graph: FakeGraph, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{graph.url}/v1.0",
        verify=ca.client_context(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def bot_graph(ca: TestCA, entra: FakeEntra, graph: FakeGraph) -> Iterator[httpx.Client]:
    with graph_client(ca, graph, token_for(entra, graph.url)) as client:
        yield client


@pytest.fixture
def admin_graph(ca: TestCA, entra: FakeEntra, graph: FakeGraph) -> Iterator[httpx.Client]:
    with graph_client(ca, graph, token_for(entra, graph.url, ADMIN_ID, ADMIN_SECRET)) as client:
        yield client


def create_app(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/applications", json={"displayName": "app", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def graph_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    error = dict(body["error"])
    assert {"request-id", "date", "client-request-id"} <= set(error["innerError"])
    assert response.headers["request-id"] == error["innerError"]["request-id"]
    return error


class MsalCredential:
    """An azure-core TokenCredential backed by one MSAL confidential client."""

    def __init__(self, app: msal.ConfidentialClientApplication) -> None:
        self.app = app
        self.scopes: list[tuple[str, ...]] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.scopes.append(scopes)
        result = self.app.acquire_token_for_client(scopes=list(scopes))
        if "access_token" not in result:
            raise ClientAuthenticationError(message=str(result.get("error_description")))
        return AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))


def secret_client(entra: FakeEntra, vault: FakeKeyVault) -> SecretClient:
    return SecretClient(
        vault_url=vault.url, credential=MsalCredential(confidential_app(entra, BOT_ID, BOT_SECRET))
    )


# --- Entra --------------------------------------------------------------------------------
def test_msal_gets_one_token_per_scope_and_serves_the_next_from_cache(
    entra: FakeEntra, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MSAL (instance_discovery=False) reads the fake's OIDC discovery, makes one token call
    for a scope and answers the second acquire from its cache; it never calls instance
    discovery, here or on the public cloud."""
    hosts: list[str] = []
    original = requests.Session.request

    def recording(
        session: requests.Session, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        hosts.append(str(urlsplit(url).netloc))
        return original(session, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    scope = f"{graph.url}/.default"
    before = len(entra.token_requests(scope))
    app = confidential_app(entra, BOT_ID, BOT_SECRET)
    first = app.acquire_token_for_client(scopes=[scope])
    second = app.acquire_token_for_client(scopes=[scope])

    assert first["token_type"] == "Bearer" and first["expires_in"] == 3599
    assert second["access_token"] == first["access_token"]
    assert second.get("token_source") == "cache"
    assert len(entra.token_requests(scope)) == before + 1
    assert not entra.calls_to("GET", r"/discovery/instance")
    assert set(hosts) == {f"127.0.0.1:{entra.port}"}
    claims = entra.validate(first["access_token"], graph.url)
    assert claims is not None
    assert claims["appid"] == claims["azp"] == BOT_ID
    assert claims["tid"] == TENANT
    assert claims["roles"] == BOT_ROLES
    assert claims["oid"] == graph.caller_object_id(BOT_ID)
    assert claims["iss"] == f"{entra.url}/{TENANT}/v2.0"
    assert entra.validate(first["access_token"], "https://other.example") is None


def test_short_token_lifetime_means_a_new_token_call(entra: FakeEntra, graph: FakeGraph) -> None:
    """With `token_lifetime` under MSAL's 5-minute refresh margin every acquire is a call."""
    entra.token_lifetime = 120
    scope = f"{graph.url}/.default"
    before = len(entra.token_requests(scope))
    app = confidential_app(entra, BOT_ID, BOT_SECRET)
    assert app.acquire_token_for_client(scopes=[scope])["expires_in"] == 120
    app.acquire_token_for_client(scopes=[scope])
    assert len(entra.token_requests(scope)) == before + 2


def test_token_endpoint_refusals_have_aad_shape(ca: TestCA, entra: FakeEntra) -> None:
    """Wrong secret: 401 invalid_client AADSTS7000215; unknown client: 400 unauthorized_client
    AADSTS700016; a scope without /.default: 400 invalid_scope AADSTS1002012."""
    wrong = confidential_app(entra, BOT_ID, "not-the-secret").acquire_token_for_client(
        scopes=["https://resource.example/.default"]
    )
    assert wrong["error"] == "invalid_client"
    assert "AADSTS7000215" in wrong["error_description"]

    token_url = f"{entra.url}/{TENANT}/oauth2/v2.0/token"
    with httpx.Client(verify=ca.client_context()) as client:
        unknown = client.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": "no-such-client",
                "client_secret": "x",
                "scope": "https://resource.example/.default",
            },
        )
        bad_scope = client.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": BOT_ID,
                "client_secret": BOT_SECRET,
                "scope": "https://resource.example/User.Read",
            },
        )
        two_scopes = client.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": BOT_ID,
                "client_secret": BOT_SECRET,
                "scope": "https://a.example/.default https://b.example/.default",
            },
        )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unauthorized_client"
    assert unknown.json()["error_codes"] == [700016]
    assert bad_scope.status_code == 400
    body = bad_scope.json()
    assert body["error"] == "invalid_scope" and body["error_codes"] == [1002012]
    assert {"error_description", "timestamp", "trace_id", "correlation_id"} <= set(body)
    assert two_scopes.json()["error"] == "invalid_scope"


def test_unknown_tenant_fails_discovery(entra: FakeEntra) -> None:
    """OIDC discovery for another tenant answers 400 AADSTS90002; MSAL's constructor raises."""
    with pytest.raises(ValueError, match="authority configuration"):
        msal.ConfidentialClientApplication(
            BOT_ID,
            client_credential=BOT_SECRET,
            authority=f"{entra.url}/other-tenant",
            instance_discovery=False,
        )
    request, status = entra.answers[-1]
    assert request.path == "/other-tenant/v2.0/.well-known/openid-configuration"
    assert status == 400


def test_certificate_client_signs_in_with_an_assertion(entra: FakeEntra, graph: FakeGraph) -> None:
    """A client registered with secret=None authenticates with MSAL's signed client
    assertion (the fake checks its claims, not its signature) and gets its roles."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    app = confidential_app(entra, CERT_ID, {"private_key": pem, "thumbprint": "AB" * 20})
    result = app.acquire_token_for_client(scopes=[f"{graph.url}/.default"])
    assert "access_token" in result, result
    claims = entra.validate(result["access_token"], graph.url)
    assert claims is not None and claims["roles"] == ["Application.ReadWrite.OwnedBy"]
    by_secret = confidential_app(entra, CERT_ID, "a-secret").acquire_token_for_client(
        scopes=[f"{graph.url}/.default"]
    )
    assert by_secret["error"] == "invalid_client"


# --- Graph ----------------------------------------------------------------------------------
def test_graph_requires_a_valid_token_for_its_own_audience(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph, vault: FakeKeyVault
) -> None:
    """No token, or a token for another resource: 401 InvalidAuthenticationToken."""
    with httpx.Client(base_url=f"{graph.url}/v1.0", verify=ca.client_context()) as client:
        missing = client.get("/applications")
    assert missing.status_code == 401
    assert graph_error(missing)["code"] == "InvalidAuthenticationToken"
    with graph_client(ca, graph, token_for(entra, vault.resource)) as client:
        wrong_audience = client.get("/applications")
    assert wrong_audience.status_code == 401
    assert graph_error(wrong_audience)["message"].endswith("Invalid audience.")


def test_upsert_by_unique_name_creates_then_updates(bot_graph: httpx.Client, graph: FakeGraph) -> None:
    """PATCH /applications(uniqueName='...') with Prefer: create-if-missing answers 201 with
    the new object, then 204 with no body; without the header a missing app is a 404."""
    path = "/applications(uniqueName='upsert-demo')"
    headers = {"Prefer": "create-if-missing"}
    created = bot_graph.patch(
        path, json={"displayName": "Demo", "signInAudience": "AzureADMyOrg"}, headers=headers
    )
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["uniqueName"] == "upsert-demo" and app["displayName"] == "Demo"
    assert app["passwordCredentials"] == [] and app["keyCredentials"] == []
    assert created.headers["request-id"]

    updated = bot_graph.patch(path, json={"displayName": "Demo 2"}, headers=headers)
    assert updated.status_code == 204 and updated.content == b""
    fetched = bot_graph.get(path, params={"$select": "displayName,uniqueName"})
    assert fetched.status_code == 200
    assert {k: v for k, v in fetched.json().items() if not k.startswith("@")} == {
        "id": app["id"],
        "displayName": "Demo 2",
        "uniqueName": "upsert-demo",
    }
    assert graph.owners(app["id"]) == [graph.caller_object_id(BOT_ID)]

    missing = bot_graph.patch("/applications(uniqueName='no-such-app')", json={"displayName": "x"})
    assert missing.status_code == 404
    assert graph_error(missing)["code"] == "Request_ResourceNotFound"


def test_create_defaults_audience_and_refuses_unknown_properties(bot_graph: httpx.Client) -> None:
    """POST /applications without signInAudience gets AzureADandPersonalMicrosoftAccount;
    an unknown property, a missing displayName or a relative redirect URI is a 400."""
    app = create_app(bot_graph)
    assert app["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert app["uniqueName"] is None
    assert bot_graph.get(f"/applications(appId='{app['appId']}')").json()["id"] == app["id"]

    unknown = bot_graph.post("/applications", json={"displayName": "x", "colour": "red"})
    assert unknown.status_code == 400
    assert "colour" in graph_error(unknown)["message"]
    assert bot_graph.post("/applications", json={"signInAudience": "AzureADMyOrg"}).status_code == 400
    relative = bot_graph.post(
        "/applications", json={"displayName": "x", "web": {"redirectUris": ["/callback"]}}
    )
    assert relative.status_code == 400
    assert create_app(bot_graph, web={"redirectUris": ["https://app.example/cb"]})["web"]["redirectUris"] == [
        "https://app.example/cb"
    ]


def test_add_password_returns_the_secret_once(
    bot_graph: httpx.Client, graph: FakeGraph, entra: FakeEntra
) -> None:
    """addPassword answers secretText once (hint = its first 3 characters, 2-year default
    lifetime); GET never shows it and the fake stores only its hash. The secret signs in."""
    app = create_app(bot_graph, signInAudience="AzureADMyOrg")
    response = bot_graph.post(
        f"/applications/{app['id']}/addPassword", json={"passwordCredential": {"displayName": "ci"}}
    )
    assert response.status_code == 200, response.text
    password = response.json()
    secret = password["secretText"]
    assert len(secret) == 40 and password["hint"] == secret[:3]
    assert password["displayName"] == "ci" and password["customKeyIdentifier"] is None
    start = datetime.fromisoformat(password["startDateTime"])
    end = datetime.fromisoformat(password["endDateTime"])
    assert timedelta(days=729) < end - start < timedelta(days=732)

    stored = bot_graph.get(f"/applications/{app['id']}").json()["passwordCredentials"]
    assert stored == [{**{k: v for k, v in password.items() if not k.startswith("@")}, "secretText": None}]
    assert secret not in str(graph.apps())
    assert graph.passwords(app["id"])[0]["secretText"] is None

    signed_in = confidential_app(entra, app["appId"], secret).acquire_token_for_client(
        scopes=[f"{graph.url}/.default"]
    )
    assert "access_token" in signed_in, signed_in
    claims = entra.validate(signed_in["access_token"], graph.url)
    assert claims is not None and "roles" not in claims

    removed = bot_graph.post(f"/applications/{app['id']}/removePassword", json={"keyId": password["keyId"]})
    assert removed.status_code == 204
    assert graph.check_secret(app["appId"], secret) is False


def test_new_secret_signs_in_only_after_propagation(
    bot_graph: httpx.Client, graph: FakeGraph, entra: FakeEntra
) -> None:
    """With secret_propagation_delay, a fresh secret is refused (invalid_client) until the
    delay has passed."""
    graph.secret_propagation_delay = 1.0
    app = create_app(bot_graph, signInAudience="AzureADMyOrg")
    added = time.monotonic()
    secret = bot_graph.post(f"/applications/{app['id']}/addPassword", json={}).json()["secretText"]
    scopes = [f"{graph.url}/.default"]
    early = confidential_app(entra, app["appId"], secret).acquire_token_for_client(scopes=scopes)
    assert early["error"] == "invalid_client"
    time.sleep(max(0.0, added + 1.1 - time.monotonic()))
    late = confidential_app(entra, app["appId"], secret).acquire_token_for_client(scopes=scopes)
    assert "access_token" in late, late


def test_replication_delay_hides_a_new_app(bot_graph: httpx.Client, graph: FakeGraph) -> None:
    """Right after the create, addPassword is a 404 and the service principal is refused
    (400 NoBackingApplicationObject, as the real service answers); after the delay both
    work, and a second service principal for the app is a 409."""
    graph.replication_delay = 1.0
    started = time.monotonic()
    app = create_app(bot_graph, signInAudience="AzureADMyOrg")
    early = bot_graph.post(f"/applications/{app['id']}/addPassword", json={})
    assert early.status_code == 404
    assert graph_error(early)["code"] == "Request_ResourceNotFound"
    sp_early = bot_graph.post("/servicePrincipals", json={"appId": app["appId"]})
    assert sp_early.status_code == 400
    assert graph_error(sp_early)["details"][0]["code"] == "NoBackingApplicationObject"
    time.sleep(max(0.0, started + 1.1 - time.monotonic()))
    assert bot_graph.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 200
    sp = bot_graph.post("/servicePrincipals", json={"appId": app["appId"]})
    assert sp.status_code == 201, sp.text
    assert sp.json()["appId"] == app["appId"]
    assert sp.json()["servicePrincipalType"] == "Application"
    twin = bot_graph.post("/servicePrincipals", json={"appId": app["appId"]})
    assert twin.status_code == 409
    assert graph_error(twin)["code"] == "Request_MultipleObjectsWithSameKeyValue"
    found = bot_graph.get(f"/servicePrincipals(appId='{app['appId']}')")
    assert found.status_code == 200 and found.json()["id"] == sp.json()["id"]
    assert (
        bot_graph.get("/servicePrincipals(appId='00000000-0000-0000-0000-000000000000')").status_code == 404
    )


def test_lifetime_policy_refuses_long_secrets(bot_graph: httpx.Client, graph: FakeGraph) -> None:
    """With max_secret_lifetime_days, the 2-year default and any longer endDateTime are a
    400 CredentialInvalidLifetimeAsPerAppPolicy; a lifetime within the policy is accepted."""
    graph.max_secret_lifetime_days = 180
    app = create_app(bot_graph, signInAudience="AzureADMyOrg")
    default = bot_graph.post(f"/applications/{app['id']}/addPassword", json={})
    assert default.status_code == 400
    error = graph_error(default)
    assert error["code"] == "CredentialInvalidLifetimeAsPerAppPolicy"
    assert graph.lifetime_policy_id in error["message"]
    end = (datetime.now(UTC) + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = bot_graph.post(
        f"/applications/{app['id']}/addPassword", json={"passwordCredential": {"endDateTime": end}}
    )
    assert ok.status_code == 200
    assert ok.json()["endDateTime"] == end


def test_personal_account_apps_hold_at_most_two_secrets(bot_graph: httpx.Client) -> None:
    """An app whose audience includes personal accounts takes 2 passwords, the 3rd is a 400
    TooManyAppPasswords; a single-tenant app takes more."""
    personal = create_app(bot_graph)
    for _ in range(2):
        assert bot_graph.post(f"/applications/{personal['id']}/addPassword", json={}).status_code == 200
    third = bot_graph.post(f"/applications/{personal['id']}/addPassword", json={})
    assert third.status_code == 400
    assert graph_error(third)["code"] == "TooManyAppPasswords"
    single = create_app(bot_graph, signInAudience="AzureADMyOrg")
    for _ in range(3):
        assert bot_graph.post(f"/applications/{single['id']}/addPassword", json={}).status_code == 200


def test_paging_seeded_apps_honours_top_select_and_filter(bot_graph: httpx.Client, graph: FakeGraph) -> None:
    """2,500 seeded apps at $top=999 come back in 3 pages linked by @odata.nextLink, with
    only the $select-ed properties (and id)."""
    seeded = set(graph.seed_apps(2500, owner_appid=BOT_ID, tag="paging-test"))
    params = {"$top": "999", "$select": "displayName,appId", "$filter": "tags/any(t:t eq 'paging-test')"}
    pages: list[list[dict[str, Any]]] = []
    response = bot_graph.get("/applications", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert "(displayName,appId)" in body["@odata.context"]
        pages.append(body["value"])
        link = body.get("@odata.nextLink")
        if not link:
            break
        assert "%24select" in link or "$select" in link
        response = bot_graph.get(link)
    assert [len(p) for p in pages] == [999, 999, 502]
    assert {a["id"] for p in pages for a in p} == seeded
    assert all(set(a) == {"id", "displayName", "appId"} for p in pages for a in p)
    assert bot_graph.get("/applications", params={"$top": "1000"}).status_code == 400


def test_list_filters_by_app_id(bot_graph: httpx.Client) -> None:
    """$filter=appId eq '...' finds exactly that app."""
    app = create_app(bot_graph, displayName="needle", signInAudience="AzureADMyOrg")
    found = bot_graph.get("/applications", params={"$filter": f"appId eq '{app['appId']}'"})
    assert [a["id"] for a in found.json()["value"]] == [app["id"]]


def test_owned_by_limits_what_the_bot_may_touch(
    ca: TestCA,
    entra: FakeEntra,
    graph: FakeGraph,
    bot_graph: httpx.Client,
    admin_graph: httpx.Client,
) -> None:
    """With Application.ReadWrite.OwnedBy the bot manages only apps it owns and cannot add
    another owner (403 Authorization_RequestDenied); Application.ReadWrite.All can, a second
    add of the same owner is a 400; users resolve by id or userPrincipalName."""
    app = create_app(bot_graph, signInAudience="AzureADMyOrg")
    owner_ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{USER_ID}"}
    denied = bot_graph.post(f"/applications/{app['id']}/owners/$ref", json=owner_ref)
    assert denied.status_code == 403
    assert graph_error(denied) == {
        **graph_error(denied),
        "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation.",
    }
    with graph_client(ca, graph, token_for(entra, graph.url, OTHER_ID, OTHER_SECRET)) as other:
        assert other.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 403
        assert other.get("/users/ada@contoso.example").status_code == 403
    added = admin_graph.post(f"/applications/{app['id']}/owners/$ref", json=owner_ref)
    assert added.status_code == 204, added.text
    again = admin_graph.post(f"/applications/{app['id']}/owners/$ref", json=owner_ref)
    assert again.status_code == 400
    assert "already exist" in graph_error(again)["message"]
    owners = bot_graph.get(f"/applications/{app['id']}/owners").json()["value"]
    assert {o["id"] for o in owners} == {USER_ID, graph.caller_object_id(BOT_ID)}
    assert bot_graph.get("/users/ada@contoso.example").json()["id"] == USER_ID
    by_mail = bot_graph.get("/users", params={"$filter": "mail eq 'ada@contoso.example'"})
    assert [u["id"] for u in by_mail.json()["value"]] == [USER_ID]
    nobody = bot_graph.get("/users/nobody@contoso.example")
    assert nobody.status_code == 404


def test_seeding_and_paging_fifty_thousand_apps_is_fast(ca: TestCA, entra: FakeEntra) -> None:
    """seed_apps(50_000) takes no HTTP and listing them at $top=999 stays linear: 51 pages
    with $select in a few seconds."""
    with FakeGraph(ca, entra) as big:
        assert isinstance(big, FakeGraph)
        started = time.monotonic()
        big.seed_apps(50_000, owner_appid=BOT_ID, tag=None)
        with graph_client(ca, big, token_for(entra, big.url)) as client:
            count, pages = 0, 0
            url: str | None = "/applications?$top=999&$select=appId"
            while url:
                body = client.get(url).json()
                count += len(body["value"])
                pages += 1
                url = body.get("@odata.nextLink")
        elapsed = time.monotonic() - started
    assert (count, pages) == (50_000, 51)
    assert elapsed < 30


# --- Key Vault ----------------------------------------------------------------------------
def test_first_vault_request_goes_without_token_and_gets_the_challenge(ca: TestCA, entra: FakeEntra) -> None:
    """SecretClient's first request has no Authorization and no body; the vault answers 401
    with the challenge, and the client resends with a token for `{resource}/.default`."""
    with FakeKeyVault(ca, entra, TENANT) as fresh:
        assert isinstance(fresh, FakeKeyVault)
        credential = MsalCredential(confidential_app(entra, BOT_ID, BOT_SECRET))
        client = SecretClient(vault_url=fresh.url, credential=credential)
        client.set_secret("first", "value-1")
        (probe, probe_status), (real, real_status) = fresh.answers[:2]
        resource = fresh.resource
    assert probe.method == "PUT" and probe.body == b""
    assert "Authorization" not in probe.headers
    assert probe_status == 401
    assert real.headers["Authorization"].startswith("Bearer ")
    assert real.json()["value"] == "value-1" and real_status == 200
    assert credential.scopes == [(f"{resource}/.default",)]


def test_unauthenticated_requests_get_the_challenge_and_api_version_is_required(
    ca: TestCA, entra: FakeEntra, vault: FakeKeyVault
) -> None:
    """Without a token: 401 with WWW-Authenticate naming authority and resource, AKV10000;
    with a token but no api-version: 400."""
    with httpx.Client(verify=ca.client_context()) as client:
        bare = client.get(f"{vault.url}/secrets/x", params={"api-version": "7.5"})
        token = token_for(entra, vault.resource)
        unversioned = client.get(f"{vault.url}/secrets/x", headers={"Authorization": f"Bearer {token}"})
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{entra.url}/{TENANT}", resource="{vault.resource}"'
    )
    assert bare.json() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }
    assert unversioned.status_code == 400
    assert unversioned.json()["error"]["code"] == "BadParameter"


def test_set_secret_with_metadata_then_a_new_version(entra: FakeEntra, vault: FakeKeyVault) -> None:
    """set_secret stores content type, tags and expiry; a second set makes a new version and
    get_secret returns the latest unless asked for a version."""
    client = secret_client(entra, vault)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=180)
    first = client.set_secret(
        "app-secret",
        "one",
        content_type="text/plain",
        tags={"app": "demo", "owner": "ada"},
        expires_on=expires,
    )
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"app": "demo", "owner": "ada"}
    assert first.properties.expires_on == expires
    assert first.properties.recovery_level == "Recoverable+Purgeable"
    second = client.set_secret("app-secret", "two")
    assert second.properties.version != first.properties.version
    assert len(str(second.properties.version)) == 32
    assert client.get_secret("app-secret").value == "two"
    assert client.get_secret("app-secret", first.properties.version).value == "one"
    stored = vault.versions("app-secret")
    assert [v["value"] for v in stored] == ["one", "two"]
    assert stored[0]["attributes"]["exp"] == int(expires.timestamp())
    assert stored[0]["tags"] == {"app": "demo", "owner": "ada"}
    assert vault.value_of("app-secret") == "two"
    assert "app-secret" in vault.names()
    listed = list(client.list_properties_of_secret_versions("app-secret"))
    assert len(listed) == 2
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("never-set")


def test_vault_validates_names_tags_and_sizes(entra: FakeEntra, vault: FakeKeyVault) -> None:
    """Bad names, more than 15 tags and values over 25 KB are 400 BadParameter."""
    client = secret_client(entra, vault)
    with pytest.raises(HttpResponseError) as bad_name:
        client.set_secret("bad_name", "v")
    assert bad_name.value.status_code == 400
    with pytest.raises(HttpResponseError) as many_tags:
        client.set_secret("tags", "v", tags={f"t{i}": "x" for i in range(16)})
    assert many_tags.value.status_code == 400
    with pytest.raises(HttpResponseError) as too_big:
        client.set_secret("big", "x" * (25 * 1024 + 1))
    assert too_big.value.status_code == 400


def test_forbidden_writes_are_403(entra: FakeEntra, vault: FakeKeyVault) -> None:
    """forbid_writes makes set_secret a 403 Forbidden (ForbiddenByRbac); nothing is stored."""
    client = secret_client(entra, vault)
    client.set_secret("warm-up", "v")  # the challenge is done; the next PUT carries a token
    vault.forbid_writes = True
    with pytest.raises(HttpResponseError) as refused:
        client.set_secret("forbidden", "v")
    assert refused.value.status_code == 403
    assert refused.value.error is not None and refused.value.error.code == "Forbidden"
    assert vault.value_of("forbidden") is None


def test_deleted_name_is_a_conflict_until_purged(entra: FakeEntra, vault: FakeKeyVault) -> None:
    """A soft-deleted name answers 409 (ObjectIsDeletedButRecoverable) on set until it is
    purged; recovery brings the secret back."""
    client = secret_client(entra, vault)
    client.set_secret("to-delete", "v1")
    client.begin_delete_secret("to-delete").wait()
    assert vault.deleted_names().count("to-delete") == 1
    with pytest.raises(ResourceExistsError) as conflict:
        client.set_secret("to-delete", "v2")
    assert "ObjectIsDeletedButRecoverable" in str(conflict.value)
    client.begin_recover_deleted_secret("to-delete").wait()
    assert client.get_secret("to-delete").value == "v1"
    client.begin_delete_secret("to-delete").wait()
    client.purge_deleted_secret("to-delete")
    assert client.set_secret("to-delete", "v3").value == "v3"


# --- people: device code sign-in, Key Vault data-plane RBAC ------------------------------------
def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def person(entra: FakeEntra) -> PersonCredential:
    return PersonCredential(entra, CLI_ID, USER_UPN, USER_PASSWORD)


def bot_authorization(entra: FakeEntra, arm: FakeArm, vault: FakeKeyVault) -> AuthorizationManagementClient:
    """The bot's ARM client, with Key Vault Data Access Administrator on the vault."""
    bot = service_principal_object_id(TENANT, BOT_ID)
    arm.grant(bot, KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, str(vault.arm_resource_id))
    return authorization_client(arm, MsalCredential(confidential_app(entra, BOT_ID, BOT_SECRET)))


def secrets_user(
    arm: FakeArm, principal: str = USER_ID, kind: str = "User"
) -> RoleAssignmentCreateParameters:
    return RoleAssignmentCreateParameters(
        role_definition_id=role_definition_id(arm.subscription_id, KEY_VAULT_SECRETS_USER),
        principal_id=principal,
        principal_type=kind,
    )


def two_secrets(entra: FakeEntra, vault: FakeKeyVault) -> tuple[str, str]:
    """Two fresh secrets written by the bot; their names."""
    first, second = f"oauth-{uuid.uuid4().hex[:12]}", f"oauth-{uuid.uuid4().hex[:12]}"
    bot = secret_client(entra, vault)
    bot.set_secret(first, f"value of {first}")
    bot.set_secret(second, f"value of {second}")
    return first, second


def test_device_code_flow_signs_a_person_in_with_a_delegated_token(
    entra: FakeEntra, vault: FakeKeyVault
) -> None:
    """MSAL's device code flow against the fake: the poll is authorization_pending until the
    person enters the code with their password (a wrong one is refused), then the token is a
    delegated one for the person (oid, upn, scp, idtyp=user) and the vault's audience."""
    app = msal.PublicClientApplication(CLI_ID, authority=f"{entra.url}/{TENANT}", instance_discovery=False)
    flow = app.initiate_device_flow(scopes=[f"{vault.resource}/.default"])
    assert flow["user_code"] in flow["message"]
    early = requests.post(
        entra.token_endpoint,
        data={"grant_type": DEVICE_CODE_GRANT, "client_id": CLI_ID, "device_code": flow["device_code"]},
        timeout=30,
    )
    assert early.status_code == 400 and early.json()["error"] == "authorization_pending"
    with pytest.raises(ValueError, match="AADSTS50126"):
        entra.sign_in_device(flow["user_code"], USER_UPN, "not the password")
    entra.sign_in_device(flow["user_code"], USER_UPN, USER_PASSWORD)
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = entra.validate(result["access_token"], vault.resource)
    assert claims is not None
    assert (claims["oid"], claims["upn"], claims["idtyp"], claims["appid"]) == (
        USER_ID,
        USER_UPN,
        "user",
        CLI_ID,
    )
    assert claims["scp"] == "user_impersonation" and "roles" not in claims
    assert result["id_token_claims"]["preferred_username"] == USER_UPN
    again = requests.post(
        entra.token_endpoint,
        data={"grant_type": DEVICE_CODE_GRANT, "client_id": CLI_ID, "device_code": flow["device_code"]},
        timeout=30,
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # a code is good once


def test_a_person_reads_the_secret_they_are_assigned_and_no_other(
    ca: TestCA, entra: FakeEntra, vault: FakeKeyVault, arm: FakeArm
) -> None:
    """With Key Vault Secrets User on one secret (made by the bot through the real ARM client),
    the person's SecretClient reads that secret's value; the other secret is 403 Forbidden with
    Key Vault's RBAC body naming the getSecret action and the other secret's resource id."""
    mine, other = two_secrets(entra, vault)
    client = bot_authorization(entra, arm, vault)
    client.role_assignments.create(
        f"{vault.arm_resource_id}/secrets/{mine}", str(uuid.uuid4()), secrets_user(arm)
    )
    credential = person(entra)
    reader = SecretClient(vault.url, credential)
    assert reader.get_secret(mine).value == f"value of {mine}"
    with pytest.raises(HttpResponseError) as refused:
        reader.get_secret(other)
    assert refused.value.status_code == 403
    token = credential.get_token(f"{vault.resource}/.default").token
    with httpx.Client(verify=ca.client_context(), headers={"Authorization": f"Bearer {token}"}) as http:
        answer = http.get(f"{vault.url}/secrets/{other}", params={"api-version": "7.5"})
    body = answer.json()
    assert answer.status_code == 403 and set(body["error"]) == {"code", "message", "innererror"}
    assert body["error"]["code"] == "Forbidden" and body["error"]["innererror"] == {"code": "ForbiddenByRbac"}
    message = body["error"]["message"]
    assert message.startswith("Caller is not authorized to perform action on resource.")
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'" in message
    resource = f"{vault.arm_resource_id}/secrets/{other}".lower()  # Key Vault shows it lower-case
    assert f"Resource: '{resource}'" in message
    assert f"oid={USER_ID}" in message
    assert credential.sign_ins == 1


def test_after_the_assignment_is_deleted_the_person_is_refused_again(
    entra: FakeEntra, vault: FakeKeyVault, arm: FakeArm
) -> None:
    """Reading works while the assignment exists; after the bot DELETEs it, the same client
    (same token) is refused 403: access is decided at each request, not in the token."""
    mine, _ = two_secrets(entra, vault)
    client = bot_authorization(entra, arm, vault)
    scope = f"{vault.arm_resource_id}/secrets/{mine}"
    name = str(uuid.uuid4())
    client.role_assignments.create(scope, name, secrets_user(arm))
    reader = SecretClient(vault.url, person(entra))
    assert reader.get_secret(mine).value == f"value of {mine}"
    client.role_assignments.delete(scope, name)
    with pytest.raises(HttpResponseError) as refused:
        reader.get_secret(mine)
    assert refused.value.status_code == 403 and refused.value.error is not None
    assert refused.value.error.code == "Forbidden"


def test_an_assignment_at_the_vault_reads_every_secret_also_through_a_group(
    entra: FakeEntra, vault: FakeKeyVault, arm: FakeArm
) -> None:
    """Secrets User on the vault is inherited by every secret in it (and lets the person list
    them); one on the secret alone does not reach the vault's list; given to a group, it
    applies to its members."""
    first, second = two_secrets(entra, vault)
    client = bot_authorization(entra, arm, vault)
    client.role_assignments.create(
        f"{vault.arm_resource_id}/secrets/{first}", str(uuid.uuid4()), secrets_user(arm)
    )
    reader = SecretClient(vault.url, person(entra))
    with pytest.raises(HttpResponseError) as no_list:
        list(reader.list_properties_of_secrets())
    assert no_list.value.status_code == 403
    at_vault = client.role_assignments.create(
        str(vault.arm_resource_id), str(uuid.uuid4()), secrets_user(arm, READERS, "Group")
    )
    assert reader.get_secret(first).value == f"value of {first}"
    assert reader.get_secret(second).value == f"value of {second}"
    assert {first, second} <= {p.name for p in reader.list_properties_of_secrets()}
    client.role_assignments.delete(str(vault.arm_resource_id), str(at_vault.name))
    with pytest.raises(HttpResponseError):
        reader.get_secret(second)
    assert reader.get_secret(first).value == f"value of {first}"


def test_grants_and_removals_apply_only_after_the_propagation_delay(
    entra: FakeEntra, vault: FakeKeyVault, arm: FakeArm
) -> None:
    """With a propagation delay, a new assignment does not yet let the person read and a
    deleted one still does; once the delay has passed (the knob set back to 0) both apply."""
    mine, _ = two_secrets(entra, vault)
    client = bot_authorization(entra, arm, vault)
    scope = f"{vault.arm_resource_id}/secrets/{mine}"
    reader = SecretClient(vault.url, person(entra))
    arm.propagation_delay = 300.0
    name = str(uuid.uuid4())
    client.role_assignments.create(scope, name, secrets_user(arm))
    with pytest.raises(HttpResponseError) as early:
        reader.get_secret(mine)
    assert early.value.status_code == 403
    arm.propagation_delay = 0.0
    assert reader.get_secret(mine).value == f"value of {mine}"
    arm.propagation_delay = 300.0
    client.role_assignments.delete(scope, name)
    assert reader.get_secret(mine).value == f"value of {mine}"  # the removal has not applied yet
    arm.propagation_delay = 0.0
    with pytest.raises(HttpResponseError) as late:
        reader.get_secret(mine)
    assert late.value.status_code == 403


def test_the_bots_own_identity_keeps_its_access_without_assignments(
    entra: FakeEntra, vault: FakeKeyVault, arm: FakeArm
) -> None:
    """App-only tokens (the bot) are not checked against role assignments: with none at all the
    bot reads and writes, and forbid_reads still refuses it (today's knobs)."""
    mine, _ = two_secrets(entra, vault)
    assert arm.assignments() == []
    bot = secret_client(entra, vault)
    assert bot.get_secret(mine).value == f"value of {mine}"
    vault.forbid_reads = True
    with pytest.raises(HttpResponseError) as refused:
        bot.get_secret(mine)
    assert refused.value.status_code == 403


# --- directory objects (extra readers) and workloads reading by RBAC --------------------------
DIRECTORY_READER_ID = "0d0d0d0d-1111-4222-8333-777777777777"
DIRECTORY_READER_SECRET = "directory~reader.secret-0123456789abcdefghij"


def test_get_by_ids_needs_directory_read_all_and_answers_each_object_with_its_type(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph
) -> None:
    """POST /directoryObjects/getByIds: 403 Authorization_RequestDenied without
    Directory.Read.All (User.Read.All and Application.ReadWrite.All are not enough); with it,
    each known id once with its @odata.type (an unknown one is left out), `types` narrowing
    the search; a non-GUID id, a missing `ids` or an unknown property is a 400."""
    entra.register_client(DIRECTORY_READER_ID, DIRECTORY_READER_SECRET, ["Directory.Read.All"])
    identity_client = "0e0e0e0e-1111-4222-8333-888888888888"
    identity = graph.add_managed_identity(identity_client, "billing-prod")
    unknown = str(uuid.uuid4())
    ids = [USER_ID, READERS, identity, unknown, READERS.upper()]
    with graph_client(ca, graph, token_for(entra, graph.url, ADMIN_ID, ADMIN_SECRET)) as admin:
        refused = admin.post("/directoryObjects/getByIds", json={"ids": ids})
        assert refused.status_code == 403 and graph_error(refused)["code"] == "Authorization_RequestDenied"
    token = token_for(entra, graph.url, DIRECTORY_READER_ID, DIRECTORY_READER_SECRET)
    with graph_client(ca, graph, token) as reader:
        found = reader.post("/directoryObjects/getByIds", json={"ids": ids})
        assert found.status_code == 200, found.text
        value = found.json()["value"]
        assert [(o["@odata.type"], o["id"]) for o in value] == [
            ("#microsoft.graph.user", USER_ID),
            ("#microsoft.graph.group", READERS),
            ("#microsoft.graph.servicePrincipal", identity),
        ]
        assert value[1]["displayName"] == "Secret readers"
        assert value[2]["servicePrincipalType"] == "ManagedIdentity" and value[2]["appId"] == identity_client
        groups = reader.post("/directoryObjects/getByIds", json={"ids": ids, "types": ["Group"]})
        assert [o["id"] for o in groups.json()["value"]] == [READERS]
        for body in ({"ids": ["not-a-guid"]}, {"types": ["group"]}, {"ids": [USER_ID], "filter": "x"}):
            bad = reader.post("/directoryObjects/getByIds", json=body)
            assert bad.status_code == 400, body
            assert graph_error(bad)["code"] in ("Request_BadRequest", "BadRequest")
        assert reader.get("/directoryObjects/getByIds").status_code == 405


def test_a_workloads_app_only_token_reads_only_what_it_is_assigned(
    entra: FakeEntra, graph: FakeGraph, vault: FakeKeyVault, arm: FakeArm
) -> None:
    """A workload (its client id in `workload_clients`) is decided by RBAC like a person: its
    app-only token is refused a secret until its service principal holds Key Vault Secrets
    User on it (principalType ServicePrincipal), and refused the other secret still; the
    bot's own app-only token is not (it keeps the knobs)."""
    workload_id, workload_secret = "0f0f0f0f-1111-4222-8333-999999999999", "workload~secret-0123456789abcdef"
    entra.register_client(workload_id, workload_secret, [])
    principal = graph.add_managed_identity(workload_id, "billing-prod")
    vault.workload_clients.add(workload_id)
    mine, other = two_secrets(entra, vault)
    reader = SecretClient(vault.url, MsalCredential(confidential_app(entra, workload_id, workload_secret)))
    with pytest.raises(HttpResponseError) as refused:
        reader.get_secret(mine)
    assert refused.value.status_code == 403
    client = bot_authorization(entra, arm, vault)
    client.role_assignments.create(
        f"{vault.arm_resource_id}/secrets/{mine}",
        str(uuid.uuid4()),
        secrets_user(arm, principal, "ServicePrincipal"),
    )
    assert reader.get_secret(mine).value == f"value of {mine}"
    with pytest.raises(HttpResponseError) as still:
        reader.get_secret(other)
    assert still.value.status_code == 403
    assert secret_client(entra, vault).get_secret(other).value == f"value of {other}"
