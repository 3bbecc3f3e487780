"""FakeSlack with the production slack_sdk clients, and SlackDriver against a recording app."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.models.blocks import (
    RichTextBlock,
    RichTextElementParts,
    RichTextListElement,
    RichTextSectionElement,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack import GENERAL_CHANNEL, FakeSlack
from fakes.slack_driver import SlackDriver
from fakes.tls import TestCA

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALICE, BOB, CAROL = "U0ALICE01", "U0BOB0002", "U0CAROL03"
APPROVALS = "C0APPROVE"


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def fake(ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    slack = FakeSlack(ca)
    slack.add_user(ALICE, "alice", email="alice@example.com", real_name="Alice A", tz="Europe/Paris")
    slack.add_user(BOB, "bob", email="bob@example.com")
    slack.add_user(CAROL, "carol")
    slack.add_channel(APPROVALS, "oauth-approvals", members=[BOB])
    slack.start()
    yield slack
    slack.stop()


@pytest.fixture
def web(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")


@dataclass
class Recorder:
    """A stand-in app: records each POST, answers with `reply(path, body)`."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    reply: Callable[[bytes], tuple[int, bytes]] = lambda body: (200, b"")

    def payload(self, index: int = -1) -> Any:
        return json.loads(parse_qs(self.requests[index]["body"].decode())["payload"][0])

    def form(self, index: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[index]["body"].decode()).items()}


@pytest.fixture
def app() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, answer = recorder.reply(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def driver(fake: FakeSlack, app: Recorder) -> Iterator[SlackDriver]:
    with SlackDriver(app_url=app.url, signing_secret=SECRET, slack=fake) as slack_driver:
        yield slack_driver


def modal(title: str = "New app", blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "new_app",
        "private_metadata": '{"request": 7}',
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Request"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks if blocks is not None else [],
    }


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def input_block(block_id: str, label: str, element: dict[str, Any], **extra: Any) -> dict[str, Any]:
    block = {"type": "input", "block_id": block_id, "label": {"type": "plain_text", "text": label}}
    return {**block, "element": element, **extra}


FORM_BLOCKS = [
    input_block("name", "App name", {"type": "plain_text_input", "action_id": "v"}),
    input_block(
        "aud",
        "Who can sign in",
        {
            "type": "static_select",
            "action_id": "v",
            "options": [
                option("My organisation only", "AzureADMyOrg"),
                option("Any organisation", "AzureADMultipleOrgs"),
            ],
            "initial_option": option("My organisation only", "AzureADMyOrg"),
        },
    ),
    input_block(
        "kind",
        "Platform",
        {
            "type": "radio_buttons",
            "action_id": "v",
            "options": [option("Web", "web"), option("SPA", "spa")],
        },
    ),
    input_block(
        "scopes",
        "Permissions",
        {
            "type": "checkboxes",
            "action_id": "v",
            "options": [option("User.Read", "ur"), option("Mail.Read", "mr")],
        },
        optional=True,
    ),
    input_block(
        "envs",
        "Environments",
        {
            "type": "multi_static_select",
            "action_id": "v",
            "options": [option("dev", "dev"), option("prod", "prod")],
        },
        optional=True,
    ),
    input_block("expires", "Secret expires", {"type": "datepicker", "action_id": "v"}),
    input_block(
        "months",
        "Months",
        {"type": "number_input", "action_id": "v", "is_decimal_allowed": False, "max_value": "24"},
    ),
    input_block("redirect", "Redirect URI", {"type": "url_text_input", "action_id": "v"}),
    input_block("owner", "Owner email", {"type": "email_text_input", "action_id": "v"}, optional=True),
    input_block("notes", "Notes", {"type": "plain_text_input", "action_id": "v"}, optional=True),
    input_block(
        "team",
        "Team",
        {"type": "plain_text_input", "action_id": "v", "initial_value": "platform"},
        optional=True,
    ),
]


def open_modal(driver: SlackDriver, web: WebClient, user: str, view: dict[str, Any]) -> dict[str, Any]:
    trigger = driver.slack.issue_trigger(user)
    return dict(web.views_open(trigger_id=trigger, view=view)["view"])


# --- the Web API with the production clients ----------------------------------------------
def test_post_update_and_dm_keep_history(fake: FakeSlack, web: WebClient) -> None:
    """chat.postMessage / chat.update: ids, strictly increasing ts, version history, DMs."""
    first = web.chat_postMessage(channel=GENERAL_CHANNEL, text="hello")
    second = web.chat_postMessage(channel=GENERAL_CHANNEL, text="again", thread_ts=first["ts"])
    assert first["channel"] == GENERAL_CHANNEL and first["message"]["text"] == "hello"
    assert float(second["ts"]) > float(first["ts"]) and second["ts"] > first["ts"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]
    updated = web.chat_update(channel=GENERAL_CHANNEL, ts=first["ts"], text="bye", blocks=blocks)
    assert updated["message"]["text"] == "bye"
    [message, reply] = fake.messages(GENERAL_CHANNEL)
    assert message["text"] == "bye" and message["blocks"][0]["block_id"]
    assert [v["text"] for v in message["history"]] == ["hello"]
    assert reply["thread_ts"] == first["ts"]

    dm = web.chat_postMessage(channel=ALICE, text="your app is ready")
    opened = web.conversations_open(users=ALICE)
    assert dm["channel"].startswith("D") and opened["channel"]["id"] == dm["channel"]
    assert [m["text"] for m in fake.dm_messages(ALICE)] == ["your app is ready"]
    assert fake.dm_messages(BOB) == []
    link = web.chat_getPermalink(channel=dm["channel"], message_ts=dm["ts"])
    assert dm["ts"].replace(".", "") in link["permalink"]
    web.chat_delete(channel=dm["channel"], ts=dm["ts"])
    assert fake.dm_messages(ALICE) == []


def test_api_errors_are_http_200_with_slack_codes(fake: FakeSlack, web: WebClient) -> None:
    """channel_not_found, no_text, message_not_found, user_not_found, unknown_method."""
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: web.chat_postMessage(channel="C0NOPE", text="x"), "channel_not_found"),
        (lambda: web.chat_postMessage(channel="U0NOBODY", text="x"), "channel_not_found"),
        (lambda: web.api_call("chat.postMessage", json={"channel": GENERAL_CHANNEL}), "no_text"),
        (
            lambda: web.chat_update(channel=GENERAL_CHANNEL, ts="1.000001", text="x"),
            "message_not_found",
        ),
        (lambda: web.users_info(user="U0NOBODY"), "user_not_found"),
        (lambda: web.users_lookupByEmail(email="nobody@example.com"), "users_not_found"),
        (lambda: web.api_call("apps.notAMethod"), "unknown_method"),
        (
            lambda: web.chat_postEphemeral(channel=APPROVALS, user=ALICE, text="x"),
            "user_not_in_channel",
        ),
    ]
    for call, error in cases:
        with pytest.raises(SlackApiError) as caught:
            call()
        assert caught.value.response.status_code == 200
        assert caught.value.response["error"] == error
    assert [c["error"] for c in fake.api_calls()] == [error for _, error in cases]


def test_users_directory(web: WebClient) -> None:
    """users.info and users.lookupByEmail answer from the seeded directory."""
    user = web.users_info(user=ALICE)["user"]
    assert user["name"] == "alice" and user["profile"]["email"] == "alice@example.com"
    assert user["tz"] == "Europe/Paris" and user["tz_offset"] in (3600, 7200)
    assert web.users_lookupByEmail(email="BOB@example.com")["user"]["id"] == BOB


def test_wrong_or_missing_token(fake: FakeSlack) -> None:
    """A token other than the bot token is invalid_auth; no token at all is not_authed."""
    wrong = WebClient(token="xoxb-someone-else", base_url=f"{fake.url}/api/")
    with pytest.raises(SlackApiError) as caught:
        wrong.auth_test()
    assert caught.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as caught:
        WebClient(base_url=f"{fake.url}/api/").auth_test()
    assert caught.value.response["error"] == "not_authed"
    form_token = httpx.post(
        f"{fake.url}/api/auth.test", data={"token": fake.bot_token}, verify=fake.ca.client_context()
    )
    assert form_token.json()["user_id"] == fake.bot_user_id


def test_form_encoded_blocks_are_parsed(fake: FakeSlack, web: WebClient) -> None:
    """Form bodies with blocks as a JSON string work like JSON bodies."""
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "form"}}]
    web.api_call("chat.postMessage", data={"channel": GENERAL_CHANNEL, "blocks": json.dumps(blocks)})
    [message] = fake.messages(GENERAL_CHANNEL)
    assert message["blocks"][0]["text"]["text"] == "form"
    assert fake.api_calls("chat.postMessage")[0]["args"]["blocks"][0]["type"] == "section"


def test_views_open_with_fresh_trigger(fake: FakeSlack, web: WebClient) -> None:
    """views.open takes a trigger issued for a user, once; the view gets id/hash/state."""
    trigger = fake.issue_trigger(ALICE)
    view = web.views_open(trigger_id=trigger, view=modal(blocks=FORM_BLOCKS))["view"]
    assert view["id"].startswith("V") and view["hash"] and view["state"] == {"values": {}}
    assert view["team_id"] == fake.team_id and view["app_id"] == fake.app_id
    assert view["callback_id"] == "new_app" and view["private_metadata"] == '{"request": 7}'
    [opened] = fake.opened_views(ALICE)
    assert opened["view_id"] == view["id"] and opened["trigger_id"] == trigger
    assert (fake.current_modal(ALICE) or {}).get("id") == view["id"]
    for bad, error in ((trigger, "exchanged_trigger_id"), ("123.456.abc", "invalid_trigger_id")):
        with pytest.raises(SlackApiError) as caught:
            web.views_open(trigger_id=bad, view=modal())
        assert caught.value.response["error"] == error


def test_expired_trigger(fake: FakeSlack, web: WebClient) -> None:
    """A trigger_id older than 3 s is expired_trigger_id (the fake's clock is moved)."""
    now = [1000.0]
    fake.clock = lambda: now[0]
    trigger = fake.issue_trigger(ALICE)
    now[0] += 3.5
    with pytest.raises(SlackApiError) as caught:
        web.views_open(trigger_id=trigger, view=modal())
    assert caught.value.response["error"] == "expired_trigger_id"
    fresh = fake.issue_trigger(ALICE)
    now[0] += 2.9
    assert web.views_open(trigger_id=fresh, view=modal())["ok"]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda v: v.update(title={"type": "plain_text", "text": "x" * 25}), "/view/title/text"),
        (lambda v: v.update(submit={"type": "mrkdwn", "text": "Go"}), "/view/submit/type"),
        (lambda v: v.update(private_metadata="m" * 3001), "/view/private_metadata"),
        (lambda v: v.update(callback_id="c" * 256), "/view/callback_id"),
        (lambda v: v.update(blocks=[{"type": "divider"}] * 101), "/view/blocks"),
        (lambda v: v.update(blocks=[{"type": "divider", "block_id": "a"}] * 2), "/view/blocks/1"),
        (
            lambda v: v.update(blocks=[{"type": "input", "element": {"type": "plain_text_input"}}]),
            "/view/blocks/0/label",
        ),
        (
            lambda v: v.update(blocks=[{"type": "input", "label": {"type": "plain_text", "text": "L"}}]),
            "/view/blocks/0/element",
        ),
        (lambda v: (v.pop("submit"), v.update(blocks=FORM_BLOCKS[:1])), "/view/submit"),
        (lambda v: v.update(type="home"), "/view/type"),
    ],
)
def test_invalid_view_is_refused(
    fake: FakeSlack, web: WebClient, change: Callable[[dict[str, Any]], Any], pointer: str
) -> None:
    """views.open validates the modal strictly: invalid_arguments with pointer messages."""
    view = modal()
    change(view)
    with pytest.raises(SlackApiError) as caught:
        web.views_open(trigger_id=fake.issue_trigger(ALICE), view=view)
    assert caught.value.response["error"] == "invalid_arguments"
    messages = caught.value.response["response_metadata"]["messages"]
    assert any(f"[json-pointer:{pointer}" in m for m in messages), messages
    assert fake.opened_views() == []


def test_views_update_push_and_publish(fake: FakeSlack, web: WebClient) -> None:
    """views.update (hash checked), views.push (stack) and views.publish (home tab)."""
    view = web.views_open(trigger_id=fake.issue_trigger(ALICE), view=modal())["view"]
    with pytest.raises(SlackApiError) as caught:
        web.views_update(view_id=view["id"], hash="stale", view=modal("Other"))
    assert caught.value.response["error"] == "hash_conflict"
    updated = web.views_update(view_id=view["id"], hash=view["hash"], view=modal("Step 2"))["view"]
    assert updated["id"] == view["id"] and updated["hash"] != view["hash"]
    pushed = web.views_push(trigger_id=fake.issue_trigger(ALICE), view=modal("Details"))["view"]
    assert pushed["previous_view_id"] == view["id"] and pushed["root_view_id"] == view["id"]
    assert [v["title"]["text"] for v in fake.modal_stack(ALICE)] == ["Step 2", "Details"]

    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
    }
    published = web.views_publish(user_id=ALICE, view=home)["view"]
    assert (fake.home_view(ALICE) or {}).get("id") == published["id"]
    assert fake.home_view(BOB) is None
    with pytest.raises(SlackApiError):
        web.views_publish(user_id=ALICE, view=modal())


# --- rich_text, validated as Slack validates it ---------------------------------------------
def rich(*containers: Any) -> list[dict[str, Any]]:
    return [{"type": "rich_text", "elements": list(containers)}]


def section(*inline: Any) -> dict[str, Any]:
    return {"type": "rich_text_section", "elements": list(inline)}


def text(value: str = "x", **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


EVERY_RICH_TEXT_SHAPE = rich(
    section(
        text("plain "),
        text("styled", style={"bold": True, "italic": False, "strike": True, "code": True}),
        {"type": "link", "url": "https://portal.azure.com/", "text": "portal", "unsafe": False},
        {"type": "link", "url": "https://example.com/", "style": {"bold": True}},
        {"type": "emoji", "name": "key", "unicode": "1f511"},
        {"type": "user", "user_id": ALICE, "style": {"highlight": True, "unlink": True}},
        {"type": "usergroup", "usergroup_id": "S0ADMINS1"},
        {"type": "channel", "channel_id": APPROVALS, "style": {"client_highlight": True}},
        {"type": "broadcast", "range": "here"},
        {"type": "date", "timestamp": 1_767_225_600, "format": "{date_short}", "fallback": "1 Jan 2026"},
        {"type": "date", "timestamp": 1_767_225_600, "format": "{time}", "url": "https://example.com/"},
        {"type": "color", "value": "#36a64f"},
    ),
    {"type": "rich_text_list", "style": "bullet", "elements": [section(text("one")), section(text("two"))]},
    {
        "type": "rich_text_list",
        "style": "ordered",
        "indent": 8,
        "offset": 3,
        "border": 1,
        "elements": [section()],
    },
    {"type": "rich_text_preformatted", "elements": [text("az keyvault secret show")], "border": 0},
    {"type": "rich_text_quote", "elements": [text("quoted "), {"type": "user", "user_id": BOB}]},
)


def test_rich_text_in_every_documented_shape_is_accepted(fake: FakeSlack, web: WebClient) -> None:
    """Sections, bullet and ordered lists (indent, offset, border), preformatted and quote
    blocks holding every inline element with its optional fields and styles post as they are,
    as do the blocks slack_sdk's own RichText models build."""
    posted = web.chat_postMessage(channel=GENERAL_CHANNEL, text="fallback", blocks=EVERY_RICH_TEXT_SHAPE)
    assert posted["ok"]
    [stored] = fake.messages(GENERAL_CHANNEL)
    assert stored["blocks"][0]["elements"] == EVERY_RICH_TEXT_SHAPE[0]["elements"]

    built = RichTextBlock(
        elements=[
            RichTextSectionElement(
                elements=[
                    RichTextElementParts.Text(text="Client ID ", style={"bold": True}),
                    RichTextElementParts.User(user_id=ALICE),
                    RichTextElementParts.Link(url="https://example.com/", text="vault"),
                ]
            ),
            RichTextListElement(style="bullet", elements=[RichTextSectionElement(elements=[text("a")])]),
        ]
    )
    assert web.chat_postMessage(channel=GENERAL_CHANNEL, text="sdk", blocks=[built])["ok"]


def _in_section(element: dict[str, Any]) -> list[dict[str, Any]]:
    return rich(section(element))


INVALID_RICH_TEXT = [
    # (blocks, json-pointer of the error), grouped by what is wrong
    pytest.param(rich(), "/blocks/0/elements", id="no-elements"),
    pytest.param([{"type": "rich_text"}], "/blocks/0/elements", id="elements-missing"),
    pytest.param(
        [{"type": "rich_text", "elements": [section(text())], "text": "x"}], "/blocks/0/text", id="block-key"
    ),
    pytest.param(
        rich({"type": "rich_text_table", "elements": []}), "/blocks/0/elements/0/type", id="container-type"
    ),
    pytest.param(rich(text()), "/blocks/0/elements/0/type", id="inline-at-top"),
    pytest.param(
        _in_section({"type": "sparkle", "text": "x"}),
        "/blocks/0/elements/0/elements/0/type",
        id="inline-type",
    ),
    pytest.param(
        rich(section({"type": "rich_text_list", "style": "bullet", "elements": [section(text())]})),
        "/blocks/0/elements/0/elements/0/type",
        id="list-in-section",
    ),
    pytest.param(
        rich({"type": "rich_text_quote", "elements": [section(text())]}),
        "/blocks/0/elements/0/elements/0/type",
        id="section-in-quote",
    ),
    pytest.param(
        rich({"type": "rich_text_list", "style": "bullet", "elements": [text()]}),
        "/blocks/0/elements/0/elements/0/type",
        id="text-in-list",
    ),
    pytest.param(
        rich(
            {
                "type": "rich_text_list",
                "style": "bullet",
                "elements": [{"type": "rich_text_quote", "elements": []}],
            }
        ),
        "/blocks/0/elements/0/elements/0/type",
        id="quote-in-list",
    ),
    pytest.param(
        rich({"type": "rich_text_list", "elements": [section()]}),
        "/blocks/0/elements/0/style",
        id="list-no-style",
    ),
    pytest.param(
        rich({"type": "rich_text_list", "style": "numbered", "elements": [section()]}),
        "/blocks/0/elements/0/style",
        id="list-style",
    ),
    pytest.param(
        rich({"type": "rich_text_list", "style": "bullet", "elements": []}),
        "/blocks/0/elements/0/elements",
        id="empty-list",
    ),
    pytest.param(
        rich({"type": "rich_text_list", "style": "bullet", "indent": 9, "elements": [section()]}),
        "/blocks/0/elements/0/indent",
        id="indent",
    ),
    pytest.param(
        rich({"type": "rich_text_list", "style": "bullet", "offset": -1, "elements": [section()]}),
        "/blocks/0/elements/0/offset",
        id="offset",
    ),
    pytest.param(
        rich({"type": "rich_text_preformatted", "border": 2, "elements": [text()]}),
        "/blocks/0/elements/0/border",
        id="border",
    ),
    pytest.param(
        rich({"type": "rich_text_section", "border": 1, "elements": []}),
        "/blocks/0/elements/0/border",
        id="section-border",
    ),
    pytest.param(
        rich({"type": "rich_text_quote", "elements": "x"}),
        "/blocks/0/elements/0/elements",
        id="elements-not-list",
    ),
    pytest.param(_in_section(text("")), "/blocks/0/elements/0/elements/0/text", id="empty-text"),
    pytest.param(_in_section({"type": "text"}), "/blocks/0/elements/0/elements/0/text", id="text-missing"),
    pytest.param(
        _in_section(text(7)),  # type: ignore[arg-type]  # deliberately not a string
        "/blocks/0/elements/0/elements/0/text",
        id="text-not-string",
    ),
    pytest.param(_in_section(text(colour="red")), "/blocks/0/elements/0/elements/0/colour", id="inline-key"),
    pytest.param(
        _in_section(text(style={"bold": "yes"})),
        "/blocks/0/elements/0/elements/0/style/bold",
        id="style-not-bool",
    ),
    pytest.param(
        _in_section(text(style={"blink": True})),
        "/blocks/0/elements/0/elements/0/style/blink",
        id="style-key",
    ),
    pytest.param(
        _in_section(text(style="bold")), "/blocks/0/elements/0/elements/0/style", id="style-not-object"
    ),
    pytest.param(
        _in_section({"type": "link", "url": "https://e.example/", "style": {"highlight": True}}),
        "/blocks/0/elements/0/elements/0/style/highlight",
        id="link-mention-style",
    ),
    pytest.param(
        _in_section({"type": "link", "text": "x"}), "/blocks/0/elements/0/elements/0/url", id="link-no-url"
    ),
    pytest.param(
        _in_section({"type": "link", "url": "https://e.example/", "unsafe": "no"}),
        "/blocks/0/elements/0/elements/0/unsafe",
        id="link-unsafe",
    ),
    pytest.param(_in_section({"type": "emoji"}), "/blocks/0/elements/0/elements/0/name", id="emoji-no-name"),
    pytest.param(_in_section({"type": "user"}), "/blocks/0/elements/0/elements/0/user_id", id="user-no-id"),
    pytest.param(
        _in_section({"type": "usergroup", "user_id": ALICE}),
        "/blocks/0/elements/0/elements/0/user_id",
        id="usergroup-key",
    ),
    pytest.param(
        _in_section({"type": "channel", "channel_id": ""}),
        "/blocks/0/elements/0/elements/0/channel_id",
        id="channel-empty",
    ),
    pytest.param(
        _in_section({"type": "broadcast", "range": "all"}),
        "/blocks/0/elements/0/elements/0/range",
        id="broadcast-range",
    ),
    pytest.param(
        _in_section({"type": "date", "timestamp": "1767225600", "format": "{date}"}),
        "/blocks/0/elements/0/elements/0/timestamp",
        id="date-timestamp",
    ),
    pytest.param(
        _in_section({"type": "date", "timestamp": 1_767_225_600}),
        "/blocks/0/elements/0/elements/0/format",
        id="date-no-format",
    ),
    pytest.param(
        _in_section({"type": "color"}), "/blocks/0/elements/0/elements/0/value", id="color-no-value"
    ),
]


@pytest.mark.parametrize(("blocks", "pointer"), INVALID_RICH_TEXT)
def test_rich_text_slack_would_refuse_is_refused(
    fake: FakeSlack, web: WebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    """Unknown element types or fields, wrong nesting, bad list fields, non-boolean or unknown
    styles, empty or missing required values: invalid_blocks with an [ERROR] message pointing
    at the field, and nothing is posted."""
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel=GENERAL_CHANNEL, text="fallback", blocks=blocks)
    answer = caught.value.response
    assert answer["error"] == "invalid_blocks"
    messages = answer["response_metadata"]["messages"]
    assert any(m.startswith("[ERROR] ") and m.endswith(f"[json-pointer:{pointer}]") for m in messages), (
        messages
    )
    assert fake.messages(GENERAL_CHANNEL) == []


def test_rich_text_is_checked_in_updates_and_views_too(fake: FakeSlack, web: WebClient) -> None:
    """chat.update refuses bad rich_text (invalid_blocks) and leaves the message; views.publish
    refuses it with invalid_arguments pointing into /view/blocks."""
    posted = web.chat_postMessage(channel=GENERAL_CHANNEL, text="card", blocks=rich(section(text("v1"))))
    with pytest.raises(SlackApiError) as caught:
        web.chat_update(channel=GENERAL_CHANNEL, ts=posted["ts"], text="card", blocks=rich(section(text(""))))
    assert caught.value.response["error"] == "invalid_blocks"
    assert fake.messages(GENERAL_CHANNEL)[0]["blocks"][0]["elements"][0]["elements"][0]["text"] == "v1"

    home = {"type": "home", "blocks": rich(section({"type": "rich_text_list", "style": "bullet"}))}
    with pytest.raises(SlackApiError) as caught:
        web.views_publish(user_id=ALICE, view=home)
    assert caught.value.response["error"] == "invalid_arguments"
    messages = caught.value.response["response_metadata"]["messages"]
    assert any("[json-pointer:/view/blocks/0/elements/0/elements/0/type]" in m for m in messages), messages
    assert fake.home_view(ALICE) is None


def test_rate_limit_honoured_with_retry_handler(fake: FakeSlack, web: WebClient) -> None:
    """An injected 429 carries Retry-After; RateLimitErrorRetryHandler waits and retries."""
    fake.rate_limit("chat.postMessage", retry_after=1)
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel=GENERAL_CHANNEL, text="one")
    assert caught.value.response.status_code == 429
    assert (
        caught.value.response.headers["Retry-After"] == ["1"]
        or caught.value.response.headers["Retry-After"] == "1"
    )
    assert caught.value.response["error"] == "ratelimited"

    fake.rate_limit("chat.postMessage", retry_after=1)
    patient = WebClient(
        token=fake.bot_token,
        base_url=f"{fake.url}/api/",
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    started = time.monotonic()
    assert patient.chat_postMessage(channel=GENERAL_CHANNEL, text="two")["ok"]
    assert time.monotonic() - started >= 1.0
    assert len(fake.calls_to("POST", r"^/api/chat\.postMessage$")) == 3
    assert [m["text"] for m in fake.messages(GENERAL_CHANNEL)] == ["two"]


def test_async_web_client(fake: FakeSlack) -> None:
    """AsyncWebClient (aiohttp): GET users.info, query-string conversations.open, JSON posts."""

    async def run() -> None:
        client = AsyncWebClient(
            token=fake.bot_token, base_url=f"{fake.url}/api/", ssl=ssl.create_default_context()
        )
        assert (await client.auth_test())["bot_id"] == fake.bot_id
        assert (await client.users_info(user=ALICE))["user"]["name"] == "alice"
        channel = (await client.conversations_open(users=ALICE))["channel"]["id"]
        await client.chat_postMessage(channel=channel, text="async hello")
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C0NOPE", text="x")
        assert caught.value.response["error"] == "channel_not_found"

    asyncio.run(run())
    assert [m["text"] for m in fake.dm_messages(ALICE)] == ["async hello"]
    assert fake.api_calls("users.info")[0]["http_method"] == "GET"


def test_async_web_client_default_ssl_in_fresh_process(fake: FakeSlack) -> None:
    """With SSL_CERT_FILE set when the process starts, an AsyncWebClient built with no ssl
    argument trusts the fake (aiohttp reads the CA bundle at import time)."""
    script = (
        "import asyncio, sys\n"
        "from slack_sdk.web.async_client import AsyncWebClient\n"
        "async def main():\n"
        "    c = AsyncWebClient(token=sys.argv[1], base_url=sys.argv[2])\n"
        "    print((await c.auth_test())['user_id'])\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, fake.bot_token, f"{fake.url}/api/"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"SSL_CERT_FILE": str(fake.ca.bundle_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == fake.bot_user_id


def test_response_url_replaces_and_limits_uses(fake: FakeSlack, web: WebClient) -> None:
    """response_url: replace_original edits the bound message; the 6th use is refused."""
    posted = web.chat_postMessage(channel=APPROVALS, text="pending")
    url = fake.issue_response_url(BOB, channel_id=APPROVALS, message_ts=posted["ts"])
    verify = fake.ca.client_context()
    answer = httpx.post(url, json={"replace_original": True, "text": "approved"}, verify=verify)
    assert (answer.status_code, answer.text) == (200, "ok")
    assert fake.messages(APPROVALS)[0]["text"] == "approved"
    for _ in range(4):
        httpx.post(url, json={"text": "note"}, verify=verify)
    assert [e["text"] for e in fake.ephemerals(BOB)] == ["note"] * 4
    refused = httpx.post(url, json={"text": "sixth"}, verify=verify)
    assert (refused.status_code, refused.text) == (404, "used_url")
    assert [r["status"] for r in fake.responses(BOB)] == [200] * 5 + [404]
    assert fake.responses(BOB)[0]["body"] == {"replace_original": True, "text": "approved"}


def test_all_text_sees_every_body(fake: FakeSlack, web: WebClient) -> None:
    """all_text() holds what clients sent, decoded, for canary searches."""
    canary = "s3cr3t~canary/+=&"
    web.api_call("chat.postMessage", data={"channel": GENERAL_CHANNEL, "text": f"x {canary} y"})
    web.views_publish(
        user_id=BOB,
        view={
            "type": "home",
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "üñí " + canary}}],
        },
    )
    text = fake.all_text()
    assert f"x {canary} y" in text and "üñí " + canary in text
    assert "never-sent" not in text


# --- the driver -------------------------------------------------------------------------------
def test_command_is_signed_like_slack(fake: FakeSlack, driver: SlackDriver, app: Recorder) -> None:
    """A slash command: every Slack form field, a signature SignatureVerifier accepts."""
    driver.command(ALICE, "/oauth-app", "new my-app")
    request = app.requests[-1]
    assert request["path"] == "/slack/events"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(request["body"], request["headers"])
    assert not SignatureVerifier("another-secret").is_valid_request(request["body"], request["headers"])
    form = app.form()
    assert set(form) >= {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert (form["command"], form["text"], form["user_name"]) == (
        "/oauth-app",
        "new my-app",
        "alice",
    )
    assert form["channel_name"] == "general" and form["response_url"].startswith(fake.url)
    web = WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
    assert web.views_open(trigger_id=form["trigger_id"], view=modal())["ok"]

    old = driver.sign(b"{}", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(b"{}", old)
    driver.post_raw(b"payload=%7B%7D", {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"})
    assert app.requests[-1]["headers"]["X-Slack-Signature"] == "v0=00"


def test_command_ack_body_shows_as_ephemeral(fake: FakeSlack, driver: SlackDriver, app: Recorder) -> None:
    """Text in the command's ack is shown to the user as Slack shows it."""
    app.reply = lambda body: (200, json.dumps({"text": "Working on it"}).encode())
    driver.command(ALICE, "/oauth-app")
    [shown] = fake.ephemerals(ALICE)
    assert (shown["text"], shown["channel"], shown["via"]) == (
        "Working on it",
        GENERAL_CHANNEL,
        "command_ack",
    )
    with pytest.raises(KeyError):
        driver.command("U0STRANGER", "/oauth-app")
    with pytest.raises(LookupError):
        driver.command(ALICE, "/oauth-app", channel_id=APPROVALS)


def test_submit_fills_inputs_by_label(fake: FakeSlack, driver: SlackDriver, app: Recorder) -> None:
    """view_submission: values by label per element type; unnamed inputs as Slack sends them."""
    web = WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
    view = open_modal(driver, web, ALICE, modal(blocks=FORM_BLOCKS))
    assert driver.modal_for(ALICE)["id"] == view["id"]
    driver.submit(
        ALICE,
        driver.modal_for(ALICE),
        {
            "App name": "billing-api",
            "Platform": "SPA",
            "Permissions": ["User.Read", "mr"],
            "Environments": ["prod"],
            "Secret expires": "2027-01-31",
            "Months": 12,
            "Redirect URI": "https://billing.example.com/auth",
        },
    )
    payload = app.payload()
    assert payload["type"] == "view_submission" and payload["user"]["id"] == ALICE
    assert payload["user"]["username"] == "alice" and payload["team"]["id"] == fake.team_id
    assert payload["response_urls"] == [] and payload["trigger_id"]
    sent = payload["view"]
    assert (sent["id"], sent["hash"], sent["callback_id"]) == (view["id"], view["hash"], "new_app")
    assert sent["private_metadata"] == '{"request": 7}'
    values = sent["state"]["values"]
    assert values["name"]["v"] == {"type": "plain_text_input", "value": "billing-api"}
    assert values["aud"]["v"]["selected_option"]["value"] == "AzureADMyOrg"  # initial kept
    assert values["kind"]["v"] == {"type": "radio_buttons", "selected_option": option("SPA", "spa")}
    assert [o["value"] for o in values["scopes"]["v"]["selected_options"]] == ["ur", "mr"]
    assert values["envs"]["v"]["type"] == "multi_static_select"
    assert values["expires"]["v"] == {"type": "datepicker", "selected_date": "2027-01-31"}
    assert values["months"]["v"] == {"type": "number_input", "value": "12"}
    assert values["redirect"]["v"]["value"] == "https://billing.example.com/auth"
    assert values["owner"]["v"] == {"type": "email_text_input", "value": None}
    assert values["notes"]["v"] == {"type": "plain_text_input", "value": None}
    assert values["team"]["v"]["value"] == "platform"
    assert fake.current_modal(ALICE) is None  # an empty 200 ack closes the modal


def test_submit_refuses_what_slack_would_not_send(fake: FakeSlack, driver: SlackDriver) -> None:
    """Unknown labels and options raise KeyError; the client's own checks raise ValueError."""
    web = WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
    view = open_modal(driver, web, ALICE, modal(blocks=FORM_BLOCKS))
    good = {
        "App name": "a",
        "Platform": "Web",
        "Secret expires": "2027-01-31",
        "Months": "3",
        "Redirect URI": "https://x.example/cb",
    }
    with pytest.raises(KeyError, match="Colour"):
        driver.submit(ALICE, view, {**good, "Colour": "red"})
    with pytest.raises(KeyError, match="Desktop"):
        driver.submit(ALICE, view, {**good, "Platform": "Desktop"})
    for label, bad in (
        ("App name", None),
        ("Months", "2.5"),
        ("Months", "25"),
        ("Redirect URI", "not a url"),
        ("Secret expires", "31/01/2027"),
    ):
        with pytest.raises(ValueError, match=label):
            driver.submit(ALICE, view, {**good, label: bad})
    with pytest.raises(ValueError, match="Owner email"):
        driver.submit(ALICE, view, {**good, "Owner email": "nobody"})
    assert driver.app_url and not [r for r in fake.calls if r.path == "/slack/events"]


def test_submit_response_actions_drive_the_modal_stack(
    fake: FakeSlack, driver: SlackDriver, app: Recorder
) -> None:
    """errors keeps the modal, update replaces it, and close sends view_closed if asked."""
    web = WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
    view = open_modal(driver, web, ALICE, {**modal(blocks=FORM_BLOCKS[:1]), "notify_on_close": True})
    app.reply = lambda body: (
        200,
        json.dumps({"response_action": "errors", "errors": {"name": "taken"}}).encode(),
    )
    assert driver.submit(ALICE, view, {"App name": "dup"}).json()["errors"] == {"name": "taken"}
    assert driver.modal_for(ALICE)["id"] == view["id"]
    app.reply = lambda body: (
        200,
        json.dumps(
            {"response_action": "update", "view": {**modal("Done"), "notify_on_close": True}}
        ).encode(),
    )
    driver.submit(ALICE, view, {"App name": "fresh"})
    current = driver.modal_for(ALICE)
    assert current["id"] == view["id"] and current["title"]["text"] == "Done"
    app.reply = lambda body: (200, b"")
    closed = driver.close(ALICE, current)
    assert closed is not None and app.payload()["type"] == "view_closed"
    assert app.payload()["is_cleared"] is False and fake.current_modal(ALICE) is None
    with pytest.raises(LookupError):
        driver.submit(ALICE, current, {})


def test_click_finds_button_by_text(fake: FakeSlack, driver: SlackDriver, app: Recorder) -> None:
    """block_actions from a message button found by its text; LookupError lists the buttons."""
    web = WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
    buttons = [
        {
            "type": "button",
            "action_id": "approve",
            "value": "req-7",
            "style": "primary",
            "text": {"type": "plain_text", "text": "Approve"},
        },
        {
            "type": "button",
            "action_id": "deny",
            "value": "req-7",
            "text": {"type": "plain_text", "text": "Deny"},
        },
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Request 7"}},
        {"type": "actions", "block_id": "decide", "elements": buttons},
    ]
    posted = web.chat_postMessage(channel=APPROVALS, text="Request 7", blocks=blocks)
    web.chat_postMessage(channel=APPROVALS, text="unrelated")

    driver.click(BOB, "Approve", channel=APPROVALS)
    payload = app.payload()
    assert payload["type"] == "block_actions" and payload["user"]["id"] == BOB
    [action] = payload["actions"]
    assert {k: action[k] for k in ("action_id", "block_id", "value", "type")} == {
        "action_id": "approve",
        "block_id": "decide",
        "value": "req-7",
        "type": "button",
    }
    assert action["text"]["text"] == "Approve" and action["action_ts"]
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": APPROVALS,
        "is_ephemeral": False,
    }
    assert payload["channel"] == {"id": APPROVALS, "name": "oauth-approvals"}
    assert payload["message"]["ts"] == posted["ts"] and payload["trigger_id"]
    respond = httpx.post(
        payload["response_url"],
        verify=fake.ca.client_context(),
        json={"replace_original": True, "text": "Approved by bob"},
    )
    assert respond.text == "ok"
    assert (fake.message(APPROVALS, posted["ts"]) or {}).get("text") == "Approved by bob"

    with pytest.raises(LookupError, match="Deny"):
        driver.click(BOB, "Reject", channel=APPROVALS)
    with pytest.raises(LookupError, match="cannot see"):
        driver.click(ALICE, "Approve", channel=APPROVALS)


def test_click_in_home_tab_and_dm(fake: FakeSlack, driver: SlackDriver, app: Recorder) -> None:
    """Buttons in the Home tab send container type view; DM buttons are found by default."""
    web = WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")
    button = {"type": "button", "text": {"type": "plain_text", "text": "New app"}}
    home = {"type": "home", "blocks": [{"type": "actions", "elements": [button]}]}
    published = web.views_publish(user_id=CAROL, view=home)["view"]
    driver.click(CAROL, "New app", view=published)
    payload = app.payload()
    assert payload["container"] == {"type": "view", "view_id": published["id"]}
    assert payload["view"]["id"] == published["id"] and "response_url" not in payload
    assert payload["actions"][0]["action_id"] == published["blocks"][0]["elements"][0]["action_id"]

    web.chat_postMessage(
        channel=CAROL,
        text="x",
        blocks=[
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Show secret"}}],
            }
        ],
    )
    driver.click(CAROL, "Show secret")
    assert app.payload()["container"]["channel_id"] == fake.dm_channel(CAROL)


def test_events_envelope_and_retries(fake: FakeSlack, driver: SlackDriver, app: Recorder) -> None:
    """Events API: event_callback JSON envelope, signed; retries carry X-Slack-Retry-*."""
    driver.home_opened(ALICE)
    request = app.requests[-1]
    assert request["headers"]["Content-Type"] == "application/json"
    assert SignatureVerifier(SECRET).is_valid_request(request["body"], request["headers"])
    envelope = json.loads(request["body"])
    assert envelope["type"] == "event_callback" and envelope["team_id"] == fake.team_id
    assert envelope["api_app_id"] == "A0FAKEAPP" and envelope["event_id"].startswith("Ev")
    assert isinstance(envelope["event_time"], int)
    assert envelope["authorizations"][0]["user_id"] == fake.bot_user_id
    event = envelope["event"]
    assert (event["type"], event["user"], event["tab"]) == ("app_home_opened", ALICE, "home")
    assert event["channel"] == fake.dm_channel(ALICE) and "view" not in event
    assert "X-Slack-Retry-Num" not in request["headers"]

    driver.event({"type": "app_mention", "user": ALICE, "text": "hi"}, event_id="Ev1", retry_num=1)
    headers = app.requests[-1]["headers"]
    assert (headers["X-Slack-Retry-Num"], headers["X-Slack-Retry-Reason"]) == ("1", "http_timeout")
    assert json.loads(app.requests[-1]["body"])["event_id"] == "Ev1"


def test_driver_against_a_real_bolt_app(fake: FakeSlack) -> None:
    """End to end with a slack-bolt AsyncApp: command -> modal -> submit -> DM -> click."""
    from aiohttp import web as aioweb
    from slack_bolt.async_app import AsyncApp

    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def build() -> AsyncApp:
        client = AsyncWebClient(
            token=fake.bot_token, base_url=f"{fake.url}/api/", ssl=ssl.create_default_context()
        )
        bolt = AsyncApp(client=client, signing_secret=SECRET)

        @bolt.command("/oauth-app")
        async def open_form(ack: Any, body: Any, client: Any) -> None:
            await ack()
            await client.views_open(trigger_id=body["trigger_id"], view=modal(blocks=FORM_BLOCKS[:1]))

        @bolt.view("new_app")
        async def submitted(ack: Any, body: Any, view: Any, client: Any) -> None:
            await ack()
            name = view["state"]["values"]["name"]["v"]["value"]
            await client.chat_postMessage(
                channel=body["user"]["id"],
                text=f"{name} requested",
                blocks=[
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "ok",
                                "text": {"type": "plain_text", "text": "OK"},
                            }
                        ],
                    }
                ],
            )

        @bolt.action("ok")
        async def clicked(ack: Any, respond: Any) -> None:
            await ack()
            await respond(replace_original=True, text="acknowledged")

        return bolt

    async def serve() -> None:
        runner = aioweb.AppRunner(build().web_app())
        await runner.setup()
        site = aioweb.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["port"] = runner.addresses[0][1]
        holder["runner"] = runner
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    assert started.wait(10)
    try:
        with SlackDriver(
            app_url=f"http://127.0.0.1:{holder['port']}", signing_secret=SECRET, slack=fake
        ) as driver:
            assert driver.command(ALICE, "/oauth-app").status_code == 200
            # The listener acks first and opens the modal afterwards: wait for it.
            deadline = time.monotonic() + 5
            while fake.current_modal(ALICE) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert driver.modal_for(ALICE)["callback_id"] == "new_app"
            assert driver.submit(ALICE, driver.modal_for(ALICE), {"App name": "payroll"}).status_code == 200
            while not fake.dm_messages(ALICE) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [m["text"] for m in fake.dm_messages(ALICE)] == ["payroll requested"]
            assert driver.click(ALICE, "OK").status_code == 200
            while fake.dm_messages(ALICE)[0]["text"] != "acknowledged" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert fake.dm_messages(ALICE)[0]["text"] == "acknowledged"
            bad = driver.post_raw(
                b"payload=%7B%7D",
                {
                    "X-Slack-Signature": "v0=00",
                    "X-Slack-Request-Timestamp": str(int(time.time())),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert bad.status_code == 401
    finally:

        async def drain() -> None:
            # The fake answers before the app's client has finished (its session closes after
            # the response): let the listeners finish before the loop goes away.
            await holder["runner"].cleanup()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=10)

        asyncio.run_coroutine_threadsafe(drain(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# --- a choice inside an input block: block_actions only with dispatch_action --------------------
def test_a_choice_in_an_input_block_reaches_the_app_only_with_dispatch_action(
    fake: FakeSlack, web: WebClient, driver: SlackDriver, app: Recorder
) -> None:
    """Slack sends block_actions for a select inside an input block only when the block has
    dispatch_action: true; the payload's view.state then holds the choice and what was typed."""
    choices = {"type": "static_select", "action_id": "v", "options": [option("A", "a"), option("B", "b")]}
    blocks = [
        input_block("name", "Name", {"type": "plain_text_input", "action_id": "v"}),
        input_block("quiet", "Quiet", dict(choices)),
        input_block("loud", "Loud", dict(choices), dispatch_action=True),
    ]
    view = web.views_open(trigger_id=fake.issue_trigger(ALICE), view=modal(blocks=blocks))["view"]
    with pytest.raises(LookupError, match="without dispatch_action"):
        driver.select(ALICE, "A", view=view)  # the first select with an "A" is the quiet one
    assert app.requests == []
    blocks[1] = input_block("quiet", "Quiet", {**choices, "options": [option("C", "c")]})
    web.views_update(view_id=view["id"], view=modal(blocks=blocks))
    driver.select(ALICE, "B", view=fake.modal_stack(ALICE)[0], typed={"Name": "billing"})
    payload = app.payload()
    assert payload["type"] == "block_actions"
    assert payload["actions"][0]["block_id"] == "loud"
    assert payload["view"]["state"]["values"]["loud"]["v"]["selected_option"]["value"] == "b"
    assert payload["view"]["state"]["values"]["name"]["v"]["value"] == "billing"
    assert payload["view"]["hash"] == fake.modal_stack(ALICE)[0]["hash"]


def test_views_update_refuses_a_non_boolean_dispatch_action(fake: FakeSlack, web: WebClient) -> None:
    """dispatch_action is a boolean; anything else is invalid_arguments with its pointer."""
    view = web.views_open(trigger_id=fake.issue_trigger(ALICE), view=modal(blocks=FORM_BLOCKS[:1]))["view"]
    bad = [input_block("name", "Name", {"type": "plain_text_input", "action_id": "v"}, dispatch_action="yes")]
    with pytest.raises(SlackApiError) as caught:
        web.views_update(view_id=view["id"], hash=view["hash"], view=modal(blocks=bad))
    assert caught.value.response["error"] == "invalid_arguments"
    assert any("dispatch_action" in m for m in caught.value.response["response_metadata"]["messages"])
