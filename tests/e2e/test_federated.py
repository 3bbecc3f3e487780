"""Secretless sign-in end to end: a federated identity credential from the new-app modal and from
`/oauth-app federate`, with signed Slack requests, the strict fakes and the real Graph client.

No addPassword is sent and nothing is written to the vault; the DM carries the IDs and a snippet
to paste; a retried create makes no twin; Entra's limit of 20 is explained; an expiring secret of
an app that signs in with a federated credential can be removed from its reminder."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from bot.core.errors import NotFound
from bot.core.model import CredentialStatus, Request, Status
from fakes.base import Request as Call
from fakes.clock import ManualClock
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, OUTSIDER, TENANT_ID, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import (
    FORM,
    approve,
    choose,
    fill_sign_in,
    open_modal,
    request_federated_app,
    request_id_of,
    request_new_app,
    rotation_card,
    wait_for_status,
)

GITHUB = "https://token.actions.githubusercontent.com"
AKS = "https://eastus.oic.prod-aks.azure.com/8c7a1b2e-5f3d-4e6a-9b1c-2d3e4f5a6b7c/5f0a2c1e-aaaa-4bbb-8ccc-123456789abc/"
SIGN_IN = "How will your workload sign in?"
SECRET_LABELS = {"Secret description", "Secret expiry"}


def _texts(value: Any) -> Iterator[str]:
    """Every text a person sees in some blocks (rich text, sections, headers, context)."""
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            yield value["text"]
        for child in value.values():
            yield from _texts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _texts(child)


def _seen(message: dict[str, Any]) -> str:
    return "".join(_texts(message["blocks"]))


def _labels(view: dict[str, Any]) -> list[str]:
    return [b["label"]["text"] for b in view["blocks"] if b["type"] == "input"]


def _submit(slack: SlackDriver, user: str, values: Mapping[str, object]) -> Any:
    modal = slack.slack.current_modal(user)
    assert modal is not None
    return slack.submit(user, modal, {"Justification": FORM["Justification"], **values})


def _card_after(cloud: FakeCloud, before: int) -> dict[str, Any]:
    return wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the approval card",
    )


def _graph_calls(cloud: FakeCloud, since: int) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in cloud.graph.calls[since:]]


def _vault_writes(cloud: FakeCloud, since: int) -> list[Call]:
    return [c for c in cloud.vault.calls[since:] if c.method in ("PUT", "PATCH", "DELETE")]


CASES = [
    pytest.param(
        "GitHub Actions",
        None,  # Branch is the entity type preselected
        {"Repository": "contoso/billing-api", "Branch": "main"},
        GITHUB,
        "repo:contoso/billing-api:ref:refs/heads/main",
        ["azure/login@v2", "id-token: write", "allow-no-subscriptions: true"],
        id="github-branch",
    ),
    pytest.param(
        "GitHub Actions",
        "Environment",
        {"Repository": "contoso/billing-api", "Environment": "production"},
        GITHUB,
        "repo:contoso/billing-api:environment:production",
        ["azure/login@v2", "id-token: write", "environment: production"],
        id="github-environment",
    ),
    pytest.param(
        "GitHub Actions",
        "Tag",
        {"Repository": "contoso@1234567/billing-api@7654321", "Tag": "refs/tags/v1.2.0"},
        GITHUB,
        "repo:contoso@1234567/billing-api@7654321:ref:refs/tags/v1.2.0",
        ["azure/login@v2", "id-token: write"],
        id="github-tag-immutable-form",
    ),
    pytest.param(
        "GitHub Actions",
        "Pull request",
        {"Repository": "contoso/billing-api"},
        GITHUB,
        "repo:contoso/billing-api:pull_request",
        ["azure/login@v2", "id-token: write"],
        id="github-pull-request",
    ),
    pytest.param(
        "Kubernetes service account",
        None,
        {"Cluster issuer URL": AKS, "Namespace": "billing", "Service account": "billing-api"},
        AKS,
        "system:serviceaccount:billing:billing-api",
        [
            "kind: ServiceAccount",
            "azure.workload.identity/client-id: ",
            'azure.workload.identity/use: "true"',
            "serviceAccountName: billing-api",
        ],
        id="kubernetes",
    ),
    pytest.param(
        "Other OIDC issuer",
        None,
        {
            "Issuer": "https://gitlab.contoso.example",
            "Subject identifier": "project_path:ops/billing:ref_type:branch:ref:main",
        },
        "https://gitlab.contoso.example",
        "project_path:ops/billing:ref_type:branch:ref:main",
        [
            "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "/oauth2/v2.0/token",
        ],
        id="other-issuer",
    ),
]


@pytest.mark.parametrize(("workload", "entity", "fields", "issuer", "subject", "snippet"), CASES)
def test_a_new_app_signs_in_with_a_federated_credential_and_no_secret(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    workload: str,
    entity: str | None,
    fields: dict[str, str],
    issuer: str,
    subject: str,
    snippet: list[str],
) -> None:
    """The modal asks only what the choice needs; the card shows issuer and subject in full,
    marked no secret; approval makes the app, its service principal and one federated credential
    (exact Graph calls, no addPassword), writes nothing to the vault, and the DM has the IDs, the
    snippet to paste and the AADSTS70021 warning."""
    modal = fill_sign_in(slack, DEVELOPER, "deploy-bot", workload, entity)
    assert not SECRET_LABELS & set(_labels(modal))
    assert {b["block_id"]: b for b in modal["blocks"]}["name"]["element"]["initial_value"] == "deploy-bot"
    before_cards = len(cloud.slack.messages(APPROVAL_CHANNEL))
    submitted = _submit(slack, DEVELOPER, fields)
    assert submitted.content in (b"", b"{}"), submitted.text
    card = _card_after(cloud, before_cards)
    card_text = _seen(card)
    for expected in (issuer, subject, "no secret", "deploy-bot"):
        assert expected in card_text, expected
    assert "Secret expiry" not in card_text

    graph_mark, vault_mark = len(cloud.graph.calls), len(cloud.vault.calls)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    app = cloud.graph.app_by_client_id(request.client_id or "")
    assert app is not None
    calls = _graph_calls(cloud, graph_mark)
    fic = f"/v1.0/applications/{app['id']}/federatedIdentityCredentials"
    assert calls[0] == ("PATCH", f"/v1.0/applications(uniqueName='{app['uniqueName']}')")
    assert sorted(calls[1:]) == sorted([("GET", fic), ("POST", fic), ("POST", "/v1.0/servicePrincipals")]), (
        calls
    )
    assert not [c for c in calls if c[1].endswith("/addPassword")]
    assert cloud.graph.passwords(app["id"]) == []
    [made] = cloud.graph.federated_credentials(app["id"])
    assert (made["issuer"], made["subject"], made["audiences"]) == (
        issuer,
        subject,
        ["api://AzureADTokenExchange"],
    )
    assert _vault_writes(cloud, vault_mark) == []
    assert f"oauth-{app['appId']}" not in cloud.vault.names()

    dm = cloud.slack.dm_messages(DEVELOPER)[-1]
    seen = _seen(dm)
    for expected in (
        app["appId"],
        TENANT_ID,
        app["id"],
        issuer,
        subject,
        "AADSTS70021",
        "no secret",
        *snippet,
    ):
        assert expected in seen, expected
    if workload == "GitHub Actions":
        assert f"client-id: {app['appId']}" in seen and f"tenant-id: {TENANT_ID}" in seen
    if workload.startswith("Kubernetes"):
        assert f'azure.workload.identity/client-id: "{app["appId"]}"' in seen


def test_the_form_shows_only_what_each_choice_needs_and_keeps_what_was_typed(
    slack: SlackDriver, cloud: FakeCloud
) -> None:
    """Each sign-in choice updates the modal in place (views.update with the view's hash): the
    secret's fields only for a client secret, the entity's name field only where it has one;
    the name typed before the change is kept."""
    assert slack.command(DEVELOPER, "/oauth-app", "new").status_code == 200
    first = open_modal(slack, DEVELOPER)
    assert set(_labels(first)) >= SECRET_LABELS
    github = choose(slack, DEVELOPER, "GitHub Actions", typed={"Name": "typed-before"})
    assert github["id"] == first["id"]
    assert [label for label in _labels(github) if label not in _labels(first)] == [
        "Repository",
        "Entity type",
        "Branch",
        "Credential name",
        "Credential description",
    ]
    assert not SECRET_LABELS & set(_labels(github))
    pull = choose(slack, DEVELOPER, "Pull request", typed={"Repository": "contoso/api"})
    assert "Branch" not in _labels(pull)
    by_id = {b["block_id"]: b for b in pull["blocks"]}
    assert by_id["name"]["element"]["initial_value"] == "typed-before"
    assert by_id["github_repository"]["element"]["initial_value"] == "contoso/api"
    kubernetes = choose(slack, DEVELOPER, "Kubernetes service account")
    assert {"Cluster issuer URL", "Namespace", "Service account"} <= set(_labels(kubernetes))
    assert "Repository" not in _labels(kubernetes)
    back = choose(slack, DEVELOPER, "Client secret")
    assert set(_labels(back)) >= SECRET_LABELS and "Cluster issuer URL" not in _labels(back)
    updates = [c for c in cloud.slack.api_calls("views.update") if c["error"] is None]
    assert len(updates) == 4
    assert all(c["args"].get("hash") for c in updates), "every update carries the view's hash"


def test_a_choice_submitted_without_its_fields_brings_them_up_instead_of_failing(
    cloud: FakeCloud, slack: SlackDriver
) -> None:
    """Should the form be submitted with a sign-in choice whose fields it does not show yet (the
    update had not come), the answer updates the form to show them, with what was filled kept;
    filled in, it is filed."""
    assert slack.command(DEVELOPER, "/oauth-app", "new quick-submit").status_code == 200
    modal = open_modal(slack, DEVELOPER)
    response = _submit(slack, DEVELOPER, {SIGN_IN: "Kubernetes service account"})
    assert response.json()["response_action"] == "update"
    shown = wait_until(
        lambda: (m := slack.slack.current_modal(DEVELOPER)) and m["hash"] != modal["hash"] and m,
        what="the form to show the Kubernetes fields",
    )
    assert {"Cluster issuer URL", "Namespace", "Service account"} <= set(_labels(shown))
    by_id = {b["block_id"]: b for b in shown["blocks"]}
    assert by_id["name"]["element"]["initial_value"] == "quick-submit"
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    filed = _submit(
        slack, DEVELOPER, {"Cluster issuer URL": AKS, "Namespace": "ops", "Service account": "runner"}
    )
    assert filed.content in (b"", b"{}"), filed.text
    assert "system:serviceaccount:ops:runner" in _seen(_card_after(cloud, before))


@pytest.mark.parametrize(
    ("workload", "entity", "fields", "field", "says"),
    [
        (
            "GitHub Actions",
            None,
            {"Repository": "contoso", "Branch": "main"},
            "github_repository",
            "organization/repository",
        ),
        (
            "GitHub Actions",
            None,
            {"Repository": "contoso/api", "Branch": "release/*"},
            "github_ref",
            "Wildcards are not allowed",
        ),
        (
            "GitHub Actions",
            "Tag",
            {"Repository": "contoso/api", "Tag": "v1..2"},
            "github_ref",
            "A tag name cannot contain",
        ),
        (
            "GitHub Actions",
            "Environment",
            {"Repository": "-bad-/api", "Environment": "prod"},
            "github_repository",
            "organization/repository",
        ),
        (
            "Kubernetes service account",
            None,
            {
                "Cluster issuer URL": "http://oidc.example.com/",
                "Namespace": "billing",
                "Service account": "api",
            },
            "k8s_issuer",
            "https://",
        ),
        (
            "Kubernetes service account",
            None,
            {"Cluster issuer URL": AKS, "Namespace": "Billing_NS", "Service account": "api"},
            "k8s_namespace",
            "DNS label",
        ),
        (
            "Kubernetes service account",
            None,
            {"Cluster issuer URL": AKS, "Namespace": "billing", "Service account": "*"},
            "k8s_service_account",
            "no wildcards",
        ),
        (
            "Other OIDC issuer",
            None,
            {"Issuer": "https://*.example.com", "Subject identifier": "svc"},
            "oidc_issuer",
            "Wildcards are not allowed",
        ),
        (
            "Other OIDC issuer",
            None,
            {"Issuer": "https://idp.example.com", "Subject identifier": "svc", "Credential name": "-x"},
            "credential_name",
            "3 to 120",
        ),
    ],
)
def test_bad_input_is_a_field_error_in_the_modal(
    cloud: FakeCloud,
    slack: SlackDriver,
    workload: str,
    entity: str | None,
    fields: dict[str, str],
    field: str,
    says: str,
) -> None:
    """Each rule is a specific message next to its field; nothing is filed."""
    fill_sign_in(slack, DEVELOPER, "bad-input", workload, entity)
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    response = _submit(slack, DEVELOPER, fields)
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert says in answer["errors"][field], answer
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == before


def test_a_create_whose_answer_was_lost_is_read_back_not_sent_again(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Graph carries out the POST but the answer is lost (504): the bot lists the app's federated
    credentials, finds the one it made and adopts it — one POST, one credential, no twin."""
    card = request_federated_app(
        slack, DEVELOPER, "lost-answer", "GitHub Actions", {"Repository": "contoso/lost", "Branch": "main"}
    )
    cloud.graph.lose_next_answer("POST", r"/federatedIdentityCredentials$")
    mark = len(cloud.graph.calls)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    app = cloud.graph.app_by_client_id(request.client_id or "")
    assert app is not None
    assert len(cloud.graph.federated_credentials(app["id"])) == 1
    posts = [
        c
        for c in _graph_calls(cloud, mark)
        if c == ("POST", f"/v1.0/applications/{app['id']}/federatedIdentityCredentials")
    ]
    assert len(posts) == 1, "the POST whose answer was lost must not be sent again"
    assert bot.services is not None
    events = bot.services.store.audit_events(request_id=request.id)
    added = [e for e in events if e.action in ("federated.added", "federated.adopted")]
    assert [(e.action, e.detail.get("found")) for e in added] == [
        ("federated.added", "read back after an answer was lost")
    ]
    assert "AADSTS70021" in _seen(cloud.slack.dm_messages(DEVELOPER)[-1])


def _secret_app(cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str) -> Request:
    card = request_new_app(slack, DEVELOPER, name)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request


def _federate(
    cloud: FakeCloud, slack: SlackDriver, user: str, target: str, fields: dict[str, object]
) -> dict[str, Any]:
    """/oauth-app federate TARGET → the form (GitHub Actions preselected) → submit; the card."""
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert slack.command(user, "/oauth-app", f"federate {target}").status_code == 200
    modal = open_modal(slack, user)
    assert modal["title"]["text"] == "Add federated credential"
    assert "Client secret" not in json.dumps(modal["blocks"])
    response = slack.submit(user, modal, fields)
    assert response.content in (b"", b"{}"), response.text
    return _card_after(cloud, before)


def test_federate_adds_a_credential_to_an_existing_app_after_approval_and_show_lists_it(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An owner asks; the card waits for an admin; approval adds the credential beside the secret
    (no addPassword, nothing in the vault); /oauth-app show and App Home list it; a non-owner
    cannot even open the form."""
    secret_app = _secret_app(cloud, bot, slack, "existing-api")
    client_id = secret_app.client_id or ""
    before = len(cloud.slack.responses(OUTSIDER))
    slack.command(OUTSIDER, "/oauth-app", f"federate {client_id}")
    refusal = wait_until(lambda: cloud.slack.responses(OUTSIDER)[before:], what="the refusal")
    assert "owner" in json.dumps(refusal[-1]["body"]).lower()

    card = _federate(
        cloud, slack, DEVELOPER, client_id, {"Repository": "contoso/existing-api", "Branch": "main"}
    )
    card_text = _seen(card)
    assert "Federated credential request" in card_text
    assert "repo:contoso/existing-api:ref:refs/heads/main" in card_text and "no secret" in card_text
    app = cloud.graph.app_by_client_id(client_id)
    assert app is not None and cloud.graph.federated_credentials(app["id"]) == []  # not before approval

    graph_mark, vault_mark = len(cloud.graph.calls), len(cloud.vault.calls)
    slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL)
    request = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert request.status == Status.COMPLETED, request.error
    assert [c for c in _graph_calls(cloud, graph_mark) if c[1].endswith("/addPassword")] == []
    assert _vault_writes(cloud, vault_mark) == []
    assert len(cloud.graph.passwords(app["id"])) == 1  # the secret stays
    assert "Your federated credential is ready" in _seen(cloud.slack.dm_messages(DEVELOPER)[-1])

    before = len(cloud.slack.responses(DEVELOPER))
    slack.command(DEVELOPER, "/oauth-app", f"show {client_id}")
    shown = wait_until(lambda: cloud.slack.responses(DEVELOPER)[before:], what="the app's details")
    detail = "".join(_texts(shown[-1]["body"].get("blocks", [])))
    assert "Federated credential" in detail and "repo:contoso/existing-api:ref:refs/heads/main" in detail
    assert "Secret ID" in detail  # beside the secret

    slack.home_opened(DEVELOPER)
    home = wait_until(
        lambda: (h := cloud.slack.home_view(DEVELOPER)) and "github-contoso-existing-api" in _seen(h) and h,
        what="the App Home to list the federated credential",
    )
    assert "no secret" in _seen(home)


def test_a_trust_already_on_the_app_is_adopted_not_doubled(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """The same issuer and subject were added in the portal under another name: approval adopts
    that credential (Entra allows the pair once per app) — no POST, the audit says adopted."""
    secret_app = _secret_app(cloud, bot, slack, "already-trusted")
    app = cloud.graph.app_by_client_id(secret_app.client_id or "")
    assert app is not None
    subject = "repo:contoso/trusted:ref:refs/heads/main"
    portal = cloud.graph.add_federated_outside(app["id"], "added-in-portal", GITHUB, subject)
    card = _federate(
        cloud, slack, DEVELOPER, app["appId"], {"Repository": "contoso/trusted", "Branch": "main"}
    )
    mark = len(cloud.graph.calls)
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    request = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert request.status == Status.COMPLETED, request.error
    assert [c["id"] for c in cloud.graph.federated_credentials(app["id"])] == [portal]
    assert not [c for c in _graph_calls(cloud, mark) if c[0] == "POST" and "federatedIdentity" in c[1]]
    assert bot.services is not None
    events = bot.services.store.audit_events(request_id=request.id)
    assert [(e.action, e.detail["credential_id"]) for e in events if e.action.startswith("federated.")] == [
        ("federated.adopted", portal)
    ]


def test_the_twenty_credential_limit_is_explained_before_anything_is_sent(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An app that already has Entra's 20 federated credentials: the request fails with the
    limit in words and what to do, and no POST is sent."""
    secret_app = _secret_app(cloud, bot, slack, "crowded-api")
    app = cloud.graph.app_by_client_id(secret_app.client_id or "")
    assert app is not None
    for index in range(20):
        cloud.graph.add_federated_outside(
            app["id"], f"env-{index}", GITHUB, f"repo:contoso/crowded:environment:e{index}"
        )
    card = _federate(
        cloud, slack, DEVELOPER, app["appId"], {"Repository": "contoso/crowded", "Branch": "main"}
    )
    mark = len(cloud.graph.calls)
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    request = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert request.status == Status.FAILED
    assert request.error_code == "federated_limit_reached"
    assert "already has 20 federated credentials, the most Entra ID allows on one app (20)" in (
        request.error or ""
    )
    assert ("POST", f"/v1.0/applications/{app['id']}/federatedIdentityCredentials") not in _graph_calls(
        cloud, mark
    )
    wait_until(
        lambda: any(
            "failed" in _seen(m) and "Remove one it no longer needs" in _seen(m)
            for m in cloud.slack.dm_messages(DEVELOPER)
        ),
        what="the requester to be told the limit",
    )


def test_an_expiring_secret_of_a_federated_app_can_be_removed_from_its_reminder(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """The reminder of an oauth-bot secret on an app with a federated credential suggests
    removing it: Remove secret → an admin approves → removePassword of exactly that secret and
    its vault secret deleted. A secret added in the portal gets no such button."""
    assert bot.services is not None
    secret_app = _secret_app(cloud, bot, slack, "moving-to-oidc")
    client_id, key_id = secret_app.client_id or "", secret_app.key_id or ""
    app = cloud.graph.app_by_client_id(client_id)
    assert app is not None
    card = _federate(cloud, slack, DEVELOPER, client_id, {"Repository": "contoso/moving", "Branch": "main"})
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert (
        wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED).status == Status.COMPLETED
    )
    portal = cloud.graph.add_password_outside(app["id"], "added in the portal", days=170)

    clock.advance(timedelta(days=160))  # the 180-day secret now has 20 days left
    bot.services.lifecycle.scan()
    reminders = [m for m in cloud.slack.dm_messages(DEVELOPER) if "client secret of app" in m.get("text", "")]
    ours = next(m for m in reminders if key_id in _seen(m))
    theirs = next(m for m in reminders if portal in _seen(m))
    assert "Remove secret" in json.dumps(ours["blocks"]) and "federated credential" in _seen(ours)
    assert "Remove secret" not in json.dumps(theirs["blocks"])

    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    slack.click(DEVELOPER, "Remove secret", message=ours)
    removal_card = _card_after(cloud, before)
    assert "Secret removal request" in _seen(removal_card) and key_id in _seen(removal_card)
    assert len(cloud.graph.passwords(app["id"])) == 2  # nothing removed before an admin approves
    slack.click(ADMINS[1], "Approve", message=removal_card, channel=APPROVAL_CHANNEL)
    removal = wait_for_status(bot, request_id_of(removal_card), Status.COMPLETED, Status.FAILED)
    assert removal.status == Status.COMPLETED, removal.error
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])] == [portal]
    credential = bot.services.store.credential(secret_app.key_id or "")
    assert credential is not None and credential.status == CredentialStatus.REMOVED
    assert "was removed" in _seen(cloud.slack.dm_messages(DEVELOPER)[-1])
    # Its vault version is disabled, not the secret deleted: the app can still be rotated later.
    name = f"oauth-{client_id}"
    assert name not in cloud.vault.deleted_names()
    version = credential.vault_secret_id.rstrip("/").split("/")[-1]
    [bundle] = [v for v in cloud.vault.versions(name) if v["id"].rstrip("/").endswith(version)]
    assert bundle["attributes"]["enabled"] is False
    rotation = rotation_card(slack, ADMINS[0], client_id)
    slack.click(ADMINS[1], "Approve", message=rotation, channel=APPROVAL_CHANNEL)
    rotated = wait_for_status(bot, request_id_of(rotation), Status.COMPLETED, Status.FAILED)
    assert rotated.status == Status.COMPLETED, rotated.error
    assert cloud.vault.value_of(name) is not None


def test_no_removal_is_suggested_once_the_federated_credential_is_gone(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """The federated credential was deleted in the portal: the reminder offers only Rotate now,
    and oauth-bot's record of the credential is marked removed (the Home no longer lists it)."""
    assert bot.services is not None
    secret_app = _secret_app(cloud, bot, slack, "back-to-secrets")
    client_id, key_id = secret_app.client_id or "", secret_app.key_id or ""
    app = cloud.graph.app_by_client_id(client_id)
    assert app is not None
    card = _federate(cloud, slack, DEVELOPER, client_id, {"Repository": "contoso/back", "Branch": "main"})
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert (
        wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED).status == Status.COMPLETED
    )
    [made] = cloud.graph.federated_credentials(app["id"])
    cloud.graph.remove_federated_outside(app["id"], made["id"])

    clock.advance(timedelta(days=160))
    bot.services.lifecycle.scan()
    reminder = next(
        m
        for m in cloud.slack.dm_messages(DEVELOPER)
        if "client secret of app" in m.get("text", "") and key_id in _seen(m)
    )
    assert "Remove secret" not in json.dumps(reminder["blocks"]) and "Rotate now" in json.dumps(
        reminder["blocks"]
    )
    assert bot.services.store.federated(client_id) == []


def test_a_removal_is_never_filed_for_a_secret_oauth_bot_did_not_issue(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """What the Remove secret button calls refuses a portal-added secret (a forged button value
    names one): nothing is filed, nothing removed."""
    secret_app = _secret_app(cloud, bot, slack, "forged-removal")
    app = cloud.graph.app_by_client_id(secret_app.client_id or "")
    assert app is not None
    portal = cloud.graph.add_password_outside(app["id"], "added in the portal")
    assert bot.services is not None
    with pytest.raises(NotFound, match="removes only secrets it issued"):
        bot.services.intake.submit_secret_removal(requester_id=DEVELOPER, team_id=None, key_id=portal)
    assert [p["keyId"] for p in cloud.graph.passwords(app["id"])].count(portal) == 1
