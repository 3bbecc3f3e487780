"""User text in Block Kit messages is inert: shown literally, never parsed as mrkdwn.

bot.slack.views renders names, descriptions, redirect URIs, justifications and deny reasons. Slack
shows plain_text objects and rich_text "text" elements literally; everything else (mrkdwn
text, links, mentions, broadcasts, button values, the fallback `text`) must be the same
whatever the user typed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.core.federation import FederationReady
from bot.core.model import (
    Application,
    FederatedCredential,
    FederatedCredentialSpec,
    IssuedSecret,
    Kind,
    Request,
    Status,
    VaultReference,
)
from bot.slack import cards, federation, views

REQUESTER = "U0REQUEST1"
APPROVER = "U0APPROVE1"
APPROVAL_CHANNEL = "C0APPROVALS"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"
PORTAL_URL = "https://portal.azure.com/#@tenant/asset/Microsoft_Azure_KeyVault/Secret/x"
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U0ADMIN001>",
    "<#C0OTHER01>",
    "<!subteam^S0HOSTILE>",
    "<https://evil.example|click here>",
    "<mailto:x@evil.example|mail>",
    "*bold* _it_ ~strike~ `code`",
    "```preformatted```",
    "&lt;",
    "&amp;gt;",
    ":rotating_light:",
    "\n",
    "\u202e",
    "\u200b",
]
FRAGMENTS = ["!channel", "!here", "!everyone", "!subteam", "U0ADMIN001", "C0OTHER01", "evil.example"]
FRAGMENTS += ["click here", "*bold*", "~strike~", "&lt;", "&amp;gt;", "```preformatted```"]

user_text = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)), max_size=6).map("".join)
optional_text = st.one_of(st.none(), user_text)
# A deny reason is stored trimmed and never empty (handlers/views.py refuses a blank one).
deny_reason = st.one_of(st.none(), user_text.map(str.strip).filter(bool))
FUZZ = settings(max_examples=60, deadline=None)
WHEN = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)


def _request(
    *,
    kind: str,
    status: str,
    name: str,
    redirect: str | None,
    description: str,
    justification: str,
    reason: str | None,
) -> Request:
    decided = status not in (Status.PENDING,)
    return Request(
        id=42,
        uid="0" * 32,
        kind=Kind(kind),
        status=Status(status),
        requester_id=REQUESTER,
        team_id="T0TEAM",
        display_name=name,
        sign_in_audience="AzureADMyOrg",
        redirect_uri=redirect,
        redirect_platform="web" if redirect else None,
        secret_description=description,
        secret_days=180,
        justification=justification,
        approver_id=APPROVER if decided and status != Status.CANCELLED else None,
        deny_reason=reason if status == Status.DENIED else None,
        client_id=CLIENT_ID if kind == Kind.ROTATE or status == Status.COMPLETED else None,
        grace_days=7.0 if kind == Kind.ROTATE else None,
        error="Microsoft Graph failed: HTTP 503" if status == Status.FAILED else None,
        created_at=WHEN,
        updated_at=WHEN,
        expires_at=WHEN + timedelta(days=7),
    )


def _issued(name: str, description: str) -> IssuedSecret:
    return IssuedSecret(
        app=Application(
            object_id="99999999-8888-4777-8666-555555555555",
            client_id=CLIENT_ID,
            display_name=name,
            sign_in_audience="AzureADMyOrg",
        ),
        tenant_id="8c7a1b2e-5f3d-4e6a-9b1c-2d3e4f5a6b7c",
        key_id="abcdefab-cdef-4abc-8def-abcdefabcdef",
        description=description,
        hint="Xy1",
        end=WHEN,
        vault=VaultReference(
            name=f"oauth-{CLIENT_ID}",
            version="0123456789abcdef",
            secret_id=f"https://vault.example/secrets/oauth-{CLIENT_ID}/0123456789abcdef",
            portal_url=PORTAL_URL,
            cli_command=f"az keyvault secret show --vault-name v --name oauth-{CLIENT_ID} --query value",
        ),
        verified=True,
    )


def _is_literal(node: dict[str, Any], key: str) -> bool:
    return key == "text" and isinstance(node.get(key), str) and node.get("type") in ("plain_text", "text")


def skeleton(node: Any) -> Any:
    """The message with every literally shown string replaced: what user text must not change."""
    if isinstance(node, list):
        return [skeleton(item) for item in node]
    if isinstance(node, dict):
        return {
            key: "<literal>" if _is_literal(node, key) else skeleton(value) for key, value in node.items()
        }
    return node


def literal_texts(node: Any) -> list[str]:
    if isinstance(node, list):
        return [text for item in node for text in literal_texts(item)]
    if isinstance(node, dict):
        found = [node["text"]] if _is_literal(node, "text") else []
        return found + [
            t for key, value in node.items() if not _is_literal(node, key) for t in literal_texts(value)
        ]
    return []


def live_problems(node: Any, where: str = "") -> list[str]:
    """Mentions, broadcasts, links and strings outside literal text that carry user text."""
    problems: list[str] = []
    if isinstance(node, list):
        for index, item in enumerate(node):
            problems += live_problems(item, f"{where}/{index}")
    elif isinstance(node, str):
        problems += [f"{where}: {f!r} in {node[:120]!r}" for f in FRAGMENTS if f in node]
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("broadcast", "usergroup"):
            problems.append(f"{where}: a {kind} element")
        if kind == "user" and node.get("user_id") not in (REQUESTER, APPROVER):
            problems.append(f"{where}: a mention of {node.get('user_id')}")
        if kind == "channel" and node.get("channel_id") != APPROVAL_CHANNEL:
            problems.append(f"{where}: a link to channel {node.get('channel_id')}")
        if kind == "link" and node.get("url") != PORTAL_URL:
            problems.append(f"{where}: a link to {node.get('url')}")
        for key, value in node.items():
            if not _is_literal(node, key):
                problems += live_problems(value, f"{where}/{key}")
    return problems


def assert_inert(hostile: views.Message, benign: views.Message, shown: list[str]) -> None:
    """Same fallback text and same non-literal structure as for harmless input; no live user
    text; and each user string is there, verbatim, inside literal text."""
    hostile_text, hostile_blocks = hostile
    benign_text, benign_blocks = benign
    assert hostile_text == benign_text, "user text changed the notification fallback text"
    assert skeleton(hostile_blocks) == skeleton(benign_blocks), "user text changed a non-literal part"
    problems = live_problems(hostile_blocks)
    assert not problems, "\n".join(problems)
    literal = literal_texts(hostile_blocks)
    for value in shown:
        if value:
            assert any(value in text for text in literal), f"{value!r} is not shown literally"


REQUEST_FIELDS = {
    "kind": st.sampled_from([Kind.NEW_APP, Kind.ROTATE]),
    "status": st.sampled_from(list(Status)),
    "name": user_text,
    "redirect": optional_text,
    "description": user_text,
    "justification": user_text,
    "reason": deny_reason,
}
HARMLESS = {"name": "N", "description": "D", "justification": "J"}


def _harmless_twin(values: dict[str, Any]) -> dict[str, Any]:
    twin = {**values, **HARMLESS}
    twin["redirect"] = None if values["redirect"] is None else "R"
    twin["reason"] = None if values["reason"] is None else "X"
    return twin


ALL_HOSTILE = "".join(HOSTILE)


@FUZZ
@given(**REQUEST_FIELDS)
@example(
    kind=Kind.NEW_APP,
    status=Status.DENIED,
    name=ALL_HOSTILE,
    redirect="https://app.example.com/cb?next=<!here>",
    description=ALL_HOSTILE,
    justification=ALL_HOSTILE,
    reason=ALL_HOSTILE,
)
def test_the_approval_card_shows_user_text_only_literally(**values: Any) -> None:
    """request_card in every status and kind: names, redirect URIs, descriptions,
    justifications and deny reasons are only in literal text; nothing else changes."""
    hostile = cards.request_card(_request(**values))
    benign = cards.request_card(_request(**_harmless_twin(values)))
    shown = [values["name"]]
    if values["kind"] == Kind.NEW_APP:
        shown += [values["justification"], values["description"], values["redirect"] or ""]
    if values["status"] == Status.DENIED:
        shown.append(values["reason"] or "")
    assert_inert(hostile, benign, shown)


@FUZZ
@given(**REQUEST_FIELDS)
@example(
    kind=Kind.NEW_APP,
    status=Status.PENDING,
    name=ALL_HOSTILE,
    redirect=ALL_HOSTILE,
    description=ALL_HOSTILE,
    justification=ALL_HOSTILE,
    reason=None,
)
def test_the_confirmation_dm_shows_user_text_only_literally(**values: Any) -> None:
    """request_received: the requester's confirmation repeats the request without making any of
    it a mention, link or formatting; its only channel link is the approval channel."""
    hostile = cards.request_received(_request(**values), APPROVAL_CHANNEL)
    benign = cards.request_received(_request(**_harmless_twin(values)), APPROVAL_CHANNEL)
    shown = [values["name"]]
    if values["kind"] == Kind.NEW_APP:
        shown += [values["justification"], values["description"], values["redirect"] or ""]
    assert_inert(hostile, benign, shown)


@FUZZ
@given(name=user_text, reason=user_text.map(str.strip).filter(bool))
@example(name=ALL_HOSTILE, reason=ALL_HOSTILE)
@example(name="<!channel>", reason="<!here>")
def test_the_denial_dm_shows_the_reason_only_literally(name: str, reason: str) -> None:
    """request_denied: the admin's reason reaches the requester as literal text; the only
    mention is of the admin who denied."""
    values: dict[str, Any] = {
        "kind": Kind.NEW_APP,
        "status": Status.DENIED,
        "name": name,
        "redirect": None,
        "description": "D",
        "justification": "J",
    }
    hostile = cards.request_denied(_request(**values, reason=reason))
    benign = cards.request_denied(_request(**{**values, "name": "N"}, reason="X"))
    assert_inert(hostile, benign, [reason])


@FUZZ
@given(kind=st.sampled_from([Kind.NEW_APP, Kind.ROTATE]), name=user_text, description=user_text)
@example(kind=Kind.NEW_APP, name=ALL_HOSTILE, description=ALL_HOSTILE)
def test_the_ready_dm_shows_the_app_name_and_description_only_literally(
    kind: str, name: str, description: str
) -> None:
    """secret_ready: the app's display name and the secret description (user text, as Entra
    stored it) are literal; the one link is the Key Vault portal link."""
    request = _request(
        kind=kind,
        status=Status.COMPLETED,
        name=name,
        redirect=None,
        description=description,
        justification="J",
        reason=None,
    )
    hostile = cards.secret_ready(request, _issued(name, description))
    benign = cards.secret_ready(request, _issued("N", "D"))
    assert_inert(hostile, benign, [name, description])


def test_the_property_catches_live_user_text() -> None:
    """The checks above are not vacuous: user text in mrkdwn, a parsed mention or a user link
    are each reported."""
    mrkdwn = [{"type": "context", "elements": [{"type": "mrkdwn", "text": "hi <!channel>"}]}]
    mention = [{"type": "rich_text", "elements": [{"type": "user", "user_id": "U0ADMIN001"}]}]
    link = [{"type": "rich_text", "elements": [{"type": "link", "url": "https://evil.example"}]}]
    broadcast = [{"type": "rich_text", "elements": [{"type": "broadcast", "range": "channel"}]}]
    for live in (mrkdwn, mention, link, broadcast):
        assert live_problems(live), live
    literal = [{"type": "rich_text", "elements": [{"type": "text", "text": "<!channel> <@U0ADMIN001>"}]}]
    assert not live_problems(literal)
    assert skeleton(mrkdwn) != skeleton([{"type": "context", "elements": [{"type": "mrkdwn", "text": "hi"}]}])


@FUZZ
# A subject is never empty (bot.core.validation requires one, trimmed).
@given(
    name=user_text,
    subject=user_text.map(str.strip).filter(bool),
    description=user_text,
    environment=user_text,
)
@example(name=ALL_HOSTILE, subject=ALL_HOSTILE, description=ALL_HOSTILE, environment=ALL_HOSTILE)
def test_a_federated_credential_is_shown_only_literally(
    name: str, subject: str, description: str, environment: str
) -> None:
    """The approval card of a secretless request and its ready DM (with the snippet): the app
    name, the issuer and subject, the credential's name and a GitHub environment (user text) are
    literal; the DM's only link-like part is none at all."""

    def card(app_name: str, sub: str, text: str) -> views.Message:
        request = _request(
            kind=Kind.NEW_APP,
            status=Status.PENDING,
            name=app_name,
            redirect=None,
            description="",
            justification=text,
            reason=None,
        )
        request.federated = FederatedCredentialSpec(
            "fic-name", "https://idp.example.com", sub, description=text
        )
        return cards.request_card(request)

    assert_inert(card(name, subject, description), card("N", "S", "D"), [name, subject, description])

    def ready(app_name: str, env: str) -> views.Message:
        request = _request(
            kind=Kind.NEW_APP,
            status=Status.COMPLETED,
            name=app_name,
            redirect=None,
            description="",
            justification="J",
            reason=None,
        )
        credential = FederatedCredential(
            id="77777777-6666-4555-8444-333333333333",
            name="fic-name",
            issuer="https://token.actions.githubusercontent.com",
            subject=f"repo:contoso/api:environment:{env}",
            audiences=("api://AzureADTokenExchange",),
        )
        app = _issued(app_name, "D").app
        return federation.federation_ready(
            request, FederationReady(app, "8c7a1b2e-5f3d-4e6a-9b1c-2d3e4f5a6b7c", credential, "https://login")
        )

    assert_inert(ready(name, environment), ready("N", "E"), [name, environment])
