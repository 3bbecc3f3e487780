"""/oauth-app new end to end: signed Slack requests over HTTP, loopback HTTPS fakes behind."""

from __future__ import annotations

import json

from bot.core.model import Status
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, TENANT_ID, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import approve, open_modal, request_id_of, request_new_app


def _texts(blocks: list[dict]) -> str:
    """All visible text of some blocks, flattened (rich text, headers, sections)."""
    return json.dumps(blocks)


def test_the_modal_has_the_plainly_labelled_inputs(slack: SlackDriver) -> None:
    """The form asks what the portal asks, with single tenant and the recommended lifetime
    preselected, and (read access being set up) the optional extra readers last."""
    response = slack.command(DEVELOPER, "/oauth-app", "new billing-api")
    assert response.status_code == 200
    modal = open_modal(slack, DEVELOPER)
    labels = [b["label"]["text"] for b in modal["blocks"] if b["type"] == "input"]
    assert labels == [
        "Name",
        "Supported account types",
        "How will your workload sign in?",
        "Redirect URI",
        "Platform",
        "Secret description",
        "Secret expiry",
        "Justification",
        "Extra readers",
    ]
    by_label = {b["label"]["text"]: b for b in modal["blocks"] if b["type"] == "input"}
    assert by_label["Name"]["element"]["initial_value"] == "billing-api"
    assert by_label["Supported account types"]["element"]["initial_option"]["text"]["text"] == (
        "Accounts in this organizational directory only (single tenant)"
    )
    assert [o["text"]["text"] for o in by_label["Secret expiry"]["element"]["options"]] == [
        "90 days (3 months)",
        "180 days (6 months)",
        "365 days (12 months)",
    ]
    assert by_label["Redirect URI"]["optional"] is True
    assert by_label["How will your workload sign in?"]["element"]["initial_option"]["text"]["text"] == (
        "Client secret"
    )


def test_happy_path_creates_app_secret_in_vault_and_dms_only_ids(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Approve → one app (single tenant, redirect URI), its service principal, one password whose
    value is in the vault with expiry and tags, and a DM with the IDs and the vault link."""
    card = request_new_app(
        slack,
        DEVELOPER,
        "billing-api",
        **{
            "Redirect URI": "https://billing.example.com/auth/callback",
            "Platform": "Web",
            "Secret description": "billing CI",
        },
    )
    request_id = request_id_of(card)
    card_text = _texts(card["blocks"])
    for expected in (
        "billing-api",
        "single tenant",
        "https://billing.example.com/auth/callback",
        "billing CI",
        "180 days (6 months)",
        "reads invoices",
        DEVELOPER,
    ):
        assert expected in card_text

    graph_calls_before = len(cloud.graph.calls)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error

    app = cloud.graph.app_by_client_id(request.client_id or "")
    assert app is not None
    assert app["displayName"] == "billing-api"
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["web"]["redirectUris"] == ["https://billing.example.com/auth/callback"]
    assert app["uniqueName"].startswith("oauth-bot-")
    assert [sp["appId"] for sp in cloud.graph.service_principals()].count(app["appId"]) == 1
    passwords = cloud.graph.passwords(app["id"])
    assert len(passwords) == 1
    assert passwords[0]["displayName"] == "billing CI"

    # The exact Graph calls, in order of the critical path.
    calls = [(c.method, c.path) for c in cloud.graph.calls[graph_calls_before:]]
    upsert = ("PATCH", f"/v1.0/applications(uniqueName='{app['uniqueName']}')")
    assert calls[0] == upsert
    assert ("POST", f"/v1.0/applications/{app['id']}/addPassword") in calls
    assert ("POST", "/v1.0/servicePrincipals") in calls
    assert len(calls) == 3, calls

    # The vault holds the value, with the credential's expiry and the tags.
    versions = cloud.vault.versions(f"oauth-{app['appId']}")
    assert len(versions) == 1
    stored = versions[0]
    assert cloud.graph.check_secret(app["appId"], stored["value"])
    assert stored["tags"] == {
        "client-id": app["appId"],
        "secret-id": passwords[0]["keyId"],
        "request-id": str(request_id),
        "requester": DEVELOPER,
        "app-name": "billing-api",
        "managed-by": "oauth-bot",
    }
    assert stored["attributes"]["exp"] is not None

    # The DM: IDs and the vault link, never the value.
    dm = cloud.slack.dm_messages(DEVELOPER)[-1]
    dm_text = _texts(dm["blocks"])
    for expected in (
        "billing-api",
        app["appId"],
        TENANT_ID,
        app["id"],
        passwords[0]["keyId"],
        "billing CI",
        "Application (client) ID",
        "Directory (tenant) ID",
        "Object ID",
        "Secret ID",
        f"https://portal.azure.com/#@{TENANT_ID}/asset/Microsoft_Azure_KeyVault/Secret/{cloud.vault.url}/secrets/oauth-{app['appId']}/",
        f"az keyvault secret show --id {cloud.vault.url}/secrets/oauth-{app['appId']}/",
    ):
        assert expected in dm_text, expected
    assert stored["value"] not in cloud.slack.all_text()

    # The card changed with the outcome and lost its buttons.
    final_card = wait_until(
        lambda: (
            (m := cloud.slack.message(APPROVAL_CHANNEL, card["ts"])) and "done" in _texts(m["blocks"]) and m
        ),
        what="the card to show the outcome",
    )
    assert not [b for b in final_card["blocks"] if b["type"] == "actions"]
    history = [_texts(version["blocks"]) for version in final_card["history"]]
    assert any("creating" in text for text in history), "the card did not say 'creating' at the decision"
    assert ADMINS[0] in _texts(final_card["blocks"])
