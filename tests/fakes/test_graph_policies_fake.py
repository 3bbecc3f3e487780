"""The fake Graph's app management policies (v1.0) and sign-in reports (beta), as strict as
Graph: the permissions each needs, the licence the reports need, the $filter forms they take,
the shapes the production client reads, and the policy enforced on addPassword."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.azure.graph import GraphClient
from bot.azure.retry import RetryPolicy
from bot.core.errors import GraphError, LifetimePolicyError, PasswordsNotAllowed
from bot.core.lifetimes import PASSWORD_ADDITION, PASSWORD_LIFETIME, password_limit
from fakes.entra import FakeEntra
from fakes.graph import FakeGraph
from fakes.tls import TestCA
from tests.fakes.test_entra_graph_vault import create_app, graph_client, graph_error, token_for

TENANT = "9f8e7d6c-5b4a-4321-8fed-cba987654321"
PLAIN = ("0b0b0b0b-1111-4222-8333-000000000001", "plain~secret-0123456789abcdefghijklmnopq")
READER = ("0b0b0b0b-1111-4222-8333-000000000002", "reader~secret-0123456789abcdefghijklmnop")
OWNED_BY = ["Application.ReadWrite.OwnedBy"]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def entra(ca: TestCA) -> Iterator[FakeEntra]:
    server = FakeEntra(ca, TENANT)
    server.start()
    server.register_client(*PLAIN, OWNED_BY)
    server.register_client(*READER, [*OWNED_BY, "Policy.Read.All", "AuditLog.Read.All"])
    yield server
    server.stop()


@pytest.fixture
def graph(ca: TestCA, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle_path))
    server = FakeGraph(ca, entra)
    server.start()
    yield server
    server.stop()


def _client(ca: TestCA, entra: FakeEntra, graph: FakeGraph, who: tuple[str, str]) -> httpx.Client:
    return graph_client(ca, graph, token_for(entra, graph.url, *who))


def _beta(ca: TestCA, entra: FakeEntra, graph: FakeGraph, who: tuple[str, str]) -> httpx.Client:
    return httpx.Client(
        base_url=f"{graph.url}/beta",
        verify=ca.client_context(),
        headers={"Authorization": f"Bearer {token_for(entra, graph.url, *who)}"},
    )


def _production(entra: FakeEntra, graph: FakeGraph, who: tuple[str, str]) -> GraphClient:
    token = token_for(entra, graph.url, *who)

    class Bearer(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    return GraphClient(graph.url, Bearer(), retry=RetryPolicy(budget_seconds=2))


def test_the_tenant_policy_needs_policy_read_all_and_has_graphs_shape(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph
) -> None:
    """Without Policy.Read.All: 403 Authorization_RequestDenied. With it: the unconfigured
    default (isEnabled false), then the restrictions as set, read by the production client."""
    with _client(ca, entra, graph, PLAIN) as plain:
        denied = plain.get("/policies/defaultAppManagementPolicy")
    assert denied.status_code == 403 and graph_error(denied)["code"] == "Authorization_RequestDenied"
    with _client(ca, entra, graph, READER) as reader:
        body = reader.get("/policies/defaultAppManagementPolicy").json()
    assert body["isEnabled"] is False and body["applicationRestrictions"]["passwordCredentials"] == []
    graph.set_tenant_password_policy(max_lifetime="P90D", block_passwords=True)
    policy = _production(entra, graph, READER).default_app_management_policy()
    assert policy.enabled
    assert [(r.kind, r.enabled, r.max_lifetime) for r in policy.restrictions] == [
        (PASSWORD_LIFETIME, True, timedelta(days=90)),
        (PASSWORD_ADDITION, True, None),
    ]


def test_addpassword_obeys_the_apps_own_policy_over_the_tenants(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph
) -> None:
    """Tenant P365D, the app's own policy P30D: 60 days is refused (the app's policy wins), 20
    accepted; an app policy that blocks passwords refuses any; the client types the refusals."""
    graph.set_tenant_password_policy(max_lifetime="P365D")
    with _client(ca, entra, graph, READER) as reader:
        app = create_app(reader, signInAudience="AzureADMyOrg")
        graph.assign_app_policy(app["id"], "Short secrets", max_lifetime="P30D")
        listed = reader.get(f"/applications/{app['id']}/appManagementPolicies").json()["value"]
    assert [p["displayName"] for p in listed] == ["Short secrets"]
    client = _production(entra, graph, READER)
    now = datetime.now(UTC).replace(microsecond=0)
    with pytest.raises(LifetimePolicyError):
        client.add_password(app["id"], display_name="long", start=now, end=now + timedelta(days=60))
    client.add_password(app["id"], display_name="short", start=now, end=now + timedelta(days=20))
    own = client.app_management_policies(app["id"])
    limit = password_limit(client.default_app_management_policy(), own, created=now)
    assert limit.max_days == 30 and "Short secrets" in limit.source
    graph.assign_app_policy(app["id"], "No secrets", block_passwords=True)
    with pytest.raises(PasswordsNotAllowed):
        client.add_password(app["id"], display_name="any", start=now, end=now + timedelta(days=1))
    with _client(ca, entra, graph, PLAIN) as plain:
        assert plain.get(f"/applications/{app['id']}/appManagementPolicies").status_code == 403


def test_a_restriction_for_apps_created_later_spares_older_apps(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph
) -> None:
    """restrictForAppsCreatedAfterDateTime in the future: today's apps may still add passwords."""
    graph.set_tenant_password_policy(block_passwords=True, after=datetime.now(UTC) + timedelta(days=1))
    with _client(ca, entra, graph, READER) as reader:
        app = create_app(reader, signInAudience="AzureADMyOrg")
        assert reader.post(f"/applications/{app['id']}/addPassword", json={}).status_code == 200


def _activity(client: httpx.Client, query: str) -> httpx.Response:
    return client.get("/reports/appCredentialSignInActivities", params={"$filter": query})


def test_the_credential_activity_report_is_strict(ca: TestCA, entra: FakeEntra, graph: FakeGraph) -> None:
    """beta only (v1.0 has no such segment); 403 without AuditLog.Read.All; 403
    Authentication_RequestFromNonPremiumTenantOrB2CTenant without P1; $filter by keyId or appId
    with eq only; the newest sign-in per credential, as the production client reads it."""
    with _client(ca, entra, graph, READER) as reader:
        app = create_app(reader, signInAudience="AzureADMyOrg")
        key = reader.post(f"/applications/{app['id']}/addPassword", json={}).json()["keyId"]
        assert reader.get("/reports/appCredentialSignInActivities").status_code == 400
    when = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    graph.sign_in_with(key, when - timedelta(days=1))
    graph.sign_in_with(key, when, ip="198.51.100.9", resource="Contoso API")
    with _beta(ca, entra, graph, PLAIN) as plain:
        assert graph_error(_activity(plain, f"keyId eq '{key}'"))["code"] == "Authorization_RequestDenied"
    with _beta(ca, entra, graph, READER) as reader:
        found = _activity(reader, f"keyId eq '{key}'").json()["value"]
        assert [(f["keyId"], f["signInActivity"]["lastSignInDateTime"]) for f in found] == [
            (key, "2026-11-30T08:00:00Z")
        ]
        assert {"id", "keyType", "keyUsage", "appId", "appObjectId", "credentialOrigin"} <= set(found[0])
        assert len(_activity(reader, f"appId eq '{app['appId']}'").json()["value"]) == 1
        for bad in (f"keyId ne '{key}'", "startswith(keyId,'a')", f"displayName eq '{key}'"):
            assert _activity(reader, bad).status_code == 400, bad
        graph.sign_in_log.premium = False
        unlicensed = _activity(reader, f"keyId eq '{key}'")
    assert unlicensed.status_code == 403
    error = graph_error(unlicensed)
    assert error["code"] == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    assert error["message"] == "Neither tenant is B2C or tenant doesn't have premium license"
    with pytest.raises(GraphError) as caught:
        _production(entra, graph, READER).credential_usage(key)
    assert caught.value.status == 403
    graph.sign_in_log.premium = True
    usage = _production(entra, graph, READER).credential_usage(key)
    assert usage is not None and usage.last_sign_in == when


def test_service_principal_sign_ins_give_where_and_what(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph
) -> None:
    """beta auditLogs/signIns answers only for servicePrincipal sign-ins asked for by name, with
    appId and createdDateTime ge; the production client picks the credential's newest one."""
    with _client(ca, entra, graph, READER) as reader:
        app = create_app(reader, signInAudience="AzureADMyOrg")
        key = reader.post(f"/applications/{app['id']}/addPassword", json={}).json()["keyId"]
    when = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    graph.sign_in_with(key, when, ip="198.51.100.9", resource="Contoso API")
    with _beta(ca, entra, graph, READER) as reader:
        assert reader.get("/auditLogs/signIns", params={"$filter": "userId eq 'x'"}).status_code == 400
        assert reader.get("/auditLogs/signIns", params={"$select": "id"}).status_code == 400
    detail = _production(entra, graph, READER).last_sign_in(
        app["appId"], key, since=when - timedelta(minutes=5)
    )
    assert detail is not None
    assert (detail.at, detail.ip_address, detail.resource) == (when, "198.51.100.9", "Contoso API")
    assert (
        _production(entra, graph, READER).last_sign_in(app["appId"], key, since=when + timedelta(minutes=1))
        is None
    )
