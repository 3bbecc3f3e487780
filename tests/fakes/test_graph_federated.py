"""The fake Graph's federatedIdentityCredentials, driven by httpx and by the bot's own Graph
client: create/list/get/delete, the name alternate key and its upsert (Upsertable in the CSDL),
properties checked against the CSDL's EntityType, name rules, uniqueness, the limit of 20."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.azure.graph import GraphClient
from bot.azure.retry import RetryPolicy
from bot.core.errors import GraphError, OutcomeUnknown
from bot.core.model import FederatedCredentialSpec
from fakes.entra import FakeEntra
from fakes.graph import FakeGraph
from fakes.graph_federation import FEDERATED_PROPERTIES
from fakes.tls import TestCA
from tests.fakes.test_entra_graph_vault import (
    BOT_ID,
    BOT_SECRET,
    OTHER_ID,
    OTHER_SECRET,
    TENANT,
    graph_client,
    token_for,
)

CSDL = Path("/work/shared/specs/graph-v1.0-Prod.csdl")
GITHUB = "https://token.actions.githubusercontent.com"
AUDIENCE = ["api://AzureADTokenExchange"]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def entra(ca: TestCA) -> Iterator[FakeEntra]:
    server = FakeEntra(ca, TENANT)
    server.start()
    server.register_client(BOT_ID, BOT_SECRET, ["Application.ReadWrite.OwnedBy"])
    server.register_client(OTHER_ID, OTHER_SECRET, ["Application.ReadWrite.OwnedBy"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def graph(ca: TestCA, entra: FakeEntra) -> Iterator[FakeGraph]:
    server = FakeGraph(ca, entra)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _trust(monkeypatch: pytest.MonkeyPatch, ca: TestCA, graph: FakeGraph) -> Iterator[None]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle_path))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    yield
    graph.clear_faults()


@pytest.fixture
def bot(ca: TestCA, entra: FakeEntra, graph: FakeGraph) -> Iterator[httpx.Client]:
    with graph_client(ca, graph, token_for(entra, graph.url)) as client:
        yield client


@pytest.fixture
def app(bot: httpx.Client) -> dict[str, Any]:
    made = bot.post("/applications", json={"displayName": "fic", "signInAudience": "AzureADMyOrg"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _fic(name: str, subject: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "issuer": GITHUB, "subject": subject, "audiences": AUDIENCE, **extra}


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, str(body["code"]), str(body["message"])


def test_the_properties_are_those_of_the_csdl_entity_type() -> None:
    """FEDERATED_PROPERTIES is EntityType federatedIdentityCredential plus entity's id."""
    text = CSDL.read_text()
    body = re.search(r'<EntityType Name="federatedIdentityCredential".*?</EntityType>', text, re.S)
    assert body is not None
    declared = set(re.findall(r'<Property Name="(\w+)"', body.group(0)))
    assert declared | {"id"} == FEDERATED_PROPERTIES
    assert 'PropertyValue Property="Alias" String="name"' in body.group(0)  # the name alternate key


def test_create_list_get_by_id_and_name_and_delete(bot: httpx.Client, app: dict[str, Any]) -> None:
    """POST → 201 with id and null description; listed; GET by id, by name and by (name='…');
    DELETE by name → 204; then 404 Request_ResourceNotFound."""
    base = f"/applications/{app['id']}/federatedIdentityCredentials"
    made = bot.post(base, json=_fic("main", "repo:contoso/api:ref:refs/heads/main"))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["description"] is None and body["audiences"] == AUDIENCE and body["id"]
    assert [c["name"] for c in bot.get(base).json()["value"]] == ["main"]
    assert bot.get(f"{base}/{body['id']}").json()["subject"] == "repo:contoso/api:ref:refs/heads/main"
    assert bot.get(f"{base}/main").json()["id"] == body["id"]
    assert bot.get(f"{base}(name='main')").json()["id"] == body["id"]
    assert bot.get(f"/applications(appId='{app['appId']}')/federatedIdentityCredentials").json()["value"]
    assert bot.delete(f"{base}/main").status_code == 204
    gone = bot.get(f"{base}/{body['id']}")
    assert _error(gone)[:2] == (404, "Request_ResourceNotFound")


def test_upsert_by_name_creates_then_updates_and_the_name_is_immutable(
    bot: httpx.Client, app: dict[str, Any]
) -> None:
    """PATCH (name='…') creates a missing credential (201) and updates an existing one (204);
    renaming is refused."""
    base = f"/applications/{app['id']}/federatedIdentityCredentials"
    body = {"issuer": GITHUB, "subject": "repo:contoso/api:pull_request", "audiences": AUDIENCE}
    assert bot.patch(f"{base}(name='prs')", json=body).status_code == 201
    assert bot.patch(f"{base}(name='prs')", json={"description": "pull requests"}).status_code == 204
    assert bot.get(f"{base}/prs").json()["description"] == "pull requests"
    renamed = bot.patch(f"{base}/prs", json={"name": "other"})
    assert _error(renamed)[0] == 400 and "immutable" in _error(renamed)[2]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            _fic("ok-name", "s", colour="blue"),
            "does not exist on type 'microsoft.graph.federatedIdentityCredential'",
        ),
        (_fic("ok-name", "s", id="00000000-0000-0000-0000-000000000000"), "read-only"),
        ({"name": "no-subject", "issuer": GITHUB, "audiences": AUDIENCE}, "must specify 'issuer', 'subject'"),
        (_fic("two-audiences", "s", audiences=[*AUDIENCE, "api://other"]), "exactly one value"),
        (_fic("ab", "s"), "3-120 characters"),
        (_fic("-leading", "s"), "start with a letter or number"),
        (_fic("has space", "s"), "only letters, numbers, hyphens and underscores"),
        (_fic("x" * 121, "s"), "3-120 characters"),
        (_fic("long-subject", "s" * 601), "longer than 600"),
    ],
)
def test_bad_bodies_are_refused_as_graph_refuses_them(
    bot: httpx.Client, app: dict[str, Any], body: dict[str, Any], says: str
) -> None:
    """Unknown or read-only properties, missing required ones, more than one audience, bad names
    and over-long values: 400, nothing made."""
    base = f"/applications/{app['id']}/federatedIdentityCredentials"
    refused = bot.post(base, json=body)
    assert refused.status_code == 400, refused.text
    assert says in _error(refused)[2]
    assert bot.get(base).json()["value"] == []


def test_name_and_issuer_subject_are_unique_and_twenty_is_the_most(
    bot: httpx.Client, app: dict[str, Any]
) -> None:
    """A second credential with the same name, or the same issuer and subject, is a 409
    Request_MultipleObjectsWithSameKeyValue; the 21st is refused."""
    base = f"/applications/{app['id']}/federatedIdentityCredentials"
    assert bot.post(base, json=_fic("env-0", "repo:c/a:environment:e0")).status_code == 201
    same_name = bot.post(base, json=_fic("env-0", "repo:c/a:environment:other"))
    assert _error(same_name) == (
        409,
        "Request_MultipleObjectsWithSameKeyValue",
        "FederatedIdentityCredential with name env-0 already exists.",
    )
    same_pair = bot.post(base, json=_fic("another", "repo:c/a:environment:e0"))
    assert _error(same_pair)[:2] == (409, "Request_MultipleObjectsWithSameKeyValue")
    for index in range(1, 20):
        assert bot.post(base, json=_fic(f"env-{index}", f"repo:c/a:environment:e{index}")).status_code == 201
    over = bot.post(base, json=_fic("env-20", "repo:c/a:environment:e20"))
    assert over.status_code == 400 and "(20)" in _error(over)[2]
    assert len(bot.get(base).json()["value"]) == 20


def test_only_an_owner_with_owned_by_may_read_or_write(
    ca: TestCA, entra: FakeEntra, graph: FakeGraph, app: dict[str, Any]
) -> None:
    """Application.ReadWrite.OwnedBy reaches only the apps the caller owns: 403 for another app."""
    with graph_client(ca, graph, token_for(entra, graph.url, OTHER_ID, OTHER_SECRET)) as other:
        base = f"/applications/{app['id']}/federatedIdentityCredentials"
        assert _error(other.get(base))[:2] == (403, "Authorization_RequestDenied")
        assert _error(other.post(base, json=_fic("mine", "s")))[:2] == (403, "Authorization_RequestDenied")


def test_the_bots_client_reports_a_lost_answer_and_does_not_resend_the_post(
    entra: FakeEntra, graph: FakeGraph, bot: httpx.Client, app: dict[str, Any]
) -> None:
    """The production GraphClient (its one retry layer): a POST whose answer is lost (504 after
    Graph carried it out) raises OutcomeUnknown after exactly one POST; listing shows the one
    credential; a second create of it is a GraphError with Graph's 409."""
    token = token_for(entra, graph.url)

    class Bearer(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    client = GraphClient(graph.url, Bearer(), retry=RetryPolicy(budget_seconds=5.0, sleep=lambda _s: None))
    spec = FederatedCredentialSpec("lost", GITHUB, "repo:contoso/api:ref:refs/heads/main")
    graph.lose_next_answer("POST", r"/federatedIdentityCredentials$")
    before = len(graph.calls_to("POST", r"/federatedIdentityCredentials$"))
    with pytest.raises(OutcomeUnknown):
        client.add_federated_credential(app["id"], spec)
    assert len(graph.calls_to("POST", r"/federatedIdentityCredentials$")) == before + 1
    [listed] = client.list_federated_credentials(app["id"])
    assert (listed.name, listed.subject) == ("lost", spec.subject)
    with pytest.raises(GraphError) as again:
        client.add_federated_credential(app["id"], spec)
    assert again.value.status == 409 and again.value.code == "Request_MultipleObjectsWithSameKeyValue"
    assert client.get_federated_credential(app["id"], "lost") == listed
    client.delete_federated_credential(app["id"], listed.id)
    client.delete_federated_credential(app["id"], listed.id)  # already gone: done
    assert client.list_federated_credentials(app["id"]) == []
    client.close()
