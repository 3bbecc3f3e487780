"""What Slack sees: usage help, field errors in the modal, answers within 3 s, tokens, owners."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bot.core.model import Status
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    BOT_CLIENT_SECRET,
    DEVELOPER,
    OWNER_ROLES,
    SIGNING_SECRET,
    FakeCloud,
    entra_user_id,
)
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import FORM, approve, open_modal, request_id_of, request_new_app, wait_for_status


def test_no_or_unknown_subcommand_answers_with_usage(cloud: FakeCloud, slack: SlackDriver) -> None:
    """`/oauth-app` alone and `/oauth-app frobnicate` answer with the usage help, only to the user."""
    for text in ("", "help", "frobnicate"):
        before = len(cloud.slack.ephemerals(DEVELOPER))
        response = slack.command(DEVELOPER, "/oauth-app", text)
        assert response.status_code == 200
        shown = cloud.slack.ephemerals(DEVELOPER)[before:]
        assert len(shown) == 1
        assert "/oauth-app new [name]" in shown[0]["text"]
    assert "Unknown subcommand `frobnicate`" in shown[0]["text"]
    assert not cloud.slack.messages("C0FAKEGEN"), "usage went to the channel, not just the user"


def test_invalid_input_comes_back_as_field_errors_in_the_modal(cloud: FakeCloud, slack: SlackDriver) -> None:
    """An empty name, an http redirect URI that is not localhost and a missing justification are
    each reported next to their field; nothing is stored or posted."""
    slack.command(DEVELOPER, "/oauth-app", "new")
    modal = open_modal(slack, DEVELOPER)
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    response = slack.submit(
        DEVELOPER,
        modal,
        {"Name": "x" * 130, "Redirect URI": "http://example.com/callback", "Justification": "   "},
        validate=False,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert "at most 120" in body["errors"]["name"]
    assert "only for localhost" in body["errors"]["redirect_uri"]
    assert "what the application is for" in body["errors"]["justification"]
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == before


def test_a_redirect_uri_that_hides_its_host_gets_a_field_error_in_the_modal(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """`http://evil.example\\@localhost/cb` (urlsplit sees localhost, a browser goes to
    evil.example) and a URI with userinfo before the host are refused next to the Redirect URI
    field with the rule they break; the modal stays open and nothing is stored or posted."""
    slack.command(DEVELOPER, "/oauth-app", "new hidden-host")
    modal = open_modal(slack, DEVELOPER)
    cards_before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert bot.services is not None
    for uri, rule in (
        ("http://evil.example\\@localhost/cb", "backslash"),
        ("https://app.example.com@evil.example/cb", "user name or password"),
    ):
        response = slack.submit(
            DEVELOPER, modal, {"Redirect URI": uri, "Justification": FORM["Justification"]}
        )
        assert response.status_code == 200
        assert response.content, f"{uri} was accepted"
        body = response.json()
        assert body["response_action"] == "errors", body
        assert list(body["errors"]) == ["redirect_uri"], body
        assert rule in body["errors"]["redirect_uri"], body
        assert cloud.slack.current_modal(DEVELOPER) is not None, "the modal closed on an error"
    assert bot.services.store.requests_by(DEVELOPER) == []
    assert len(cloud.slack.messages(APPROVAL_CHANNEL)) == cards_before


def test_every_slack_answer_is_fast_even_when_graph_is_slow(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """With Graph and Key Vault taking 1.5 s per call, the command, the submission and the
    Approve click are each answered well within Slack's 3 s; the work finishes afterwards."""
    cloud.graph.latency(1.5)
    cloud.vault.latency(1.5)
    card = request_new_app(slack, DEVELOPER, "slow-graph-app")
    started = time.monotonic()
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert time.monotonic() - started < 1.0
    answered = [seconds for _kind, seconds in slack.timings]
    assert answered and max(answered) < 1.0, slack.timings
    request = wait_for_status(bot, request_id_of(card), Status.COMPLETED, timeout=60)
    assert request.key_id


def test_one_token_request_per_resource(cloud: FakeCloud, database_path: Path) -> None:
    """Three approvals by a fresh bot ask the token endpoint once for Graph and once for Key Vault."""
    before = {
        scope: len(cloud.entra.token_requests(scope))
        for scope in (f"{cloud.graph.url}/.default", f"{cloud.vault.resource}/.default")
    }
    settings = cloud.settings(f"sqlite:///{database_path}")
    with (
        BackgroundBot(settings) as bot,
        SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
    ):
        for index in range(3):
            card = request_new_app(slack, DEVELOPER, f"token-app-{index}")
            assert approve(slack, cloud, bot, card, ADMINS[index % 2]).status == Status.COMPLETED
    after = {scope: len(cloud.entra.token_requests(scope)) for scope in before}
    assert {scope: after[scope] - before[scope] for scope in before} == dict.fromkeys(before, 1)
    assert not cloud.entra.calls_to("GET", r"/discovery/instance"), "MSAL asked the public cloud"


def test_requester_becomes_entra_owner_when_the_bot_may_add_owners(
    cloud: FakeCloud, database_path: Path
) -> None:
    """With Application.ReadWrite.All and User.Read.All granted, the requester (matched by email)
    is added as an owner of the new app in Entra, besides the bot."""
    client_id = "0b07b07b-0000-4000-8000-0000000000a1"
    cloud.entra.register_client(client_id, BOT_CLIENT_SECRET, OWNER_ROLES)
    settings = cloud.settings(f"sqlite:///{database_path}", azure_client_id=client_id)
    with (
        BackgroundBot(settings) as bot,
        SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
    ):
        card = request_new_app(slack, DEVELOPER, "owned-app")
        request = approve(slack, cloud, bot, card, ADMINS[0])
        assert request.status == Status.COMPLETED, request.error
        app = cloud.graph.app_by_client_id(request.client_id or "")
        assert app is not None
        assert entra_user_id(DEVELOPER) in cloud.graph.owners(app["id"])
        assert bot.services is not None
        owners = bot.services.store.owners(app["appId"])
        assert [(o.slack_user_id, o.entra_user_id) for o in owners] == [(DEVELOPER, entra_user_id(DEVELOPER))]


def test_least_privilege_records_the_owner_without_touching_entra_owners(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """With only Application.ReadWrite.OwnedBy, the requester is the owner of record; no owners call."""
    card = request_new_app(slack, DEVELOPER, "record-owned-app")
    request = approve(slack, cloud, bot, card, ADMINS[0])
    app = cloud.graph.app_by_client_id(request.client_id or "")
    assert app is not None
    assert entra_user_id(DEVELOPER) not in cloud.graph.owners(app["id"])
    assert not cloud.graph.calls_to("POST", rf"/applications/{app['id']}/owners")
    assert bot.services is not None
    assert [o.slack_user_id for o in bot.services.store.owners(app["appId"])] == [DEVELOPER]


def test_a_tenant_lifetime_policy_refusal_says_what_to_do(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Graph's CredentialInvalidLifetimeAsPerAppPolicy becomes a message asking for a shorter expiry."""
    cloud.graph.max_secret_lifetime_days = 90
    try:
        card = request_new_app(slack, DEVELOPER, "policy-app", **{"Secret expiry": "180 days (6 months)"})
        request = approve(slack, cloud, bot, card, ADMINS[0])
    finally:
        cloud.graph.max_secret_lifetime_days = None
    assert request.status == Status.FAILED
    assert "shorter Secret expiry" in (request.error or "")
    dm = wait_until(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "failed" in m.get("text", "")],
        what="the DM",
    )
    assert "shorter Secret expiry" in json.dumps(dm[-1]["blocks"])


def test_form_values_reach_the_card(cloud: FakeCloud, slack: SlackDriver) -> None:
    """The card shows the justification exactly as typed."""
    card = request_new_app(slack, DEVELOPER, "card-app")
    assert FORM["Justification"] in json.dumps(card["blocks"])
