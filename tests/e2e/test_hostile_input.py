"""Hostile and bad input from Slack: fuzzed commands and forms, mrkdwn injection, forged requests.

The bot must answer every signed request fast and with a specific message (never a 500, never a
traceback), report bad form fields next to the field, show user text only as literal text, and
refuse anything whose signature or timestamp is wrong without doing anything at all.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.core.model import Request, Status
from bot.core.validation import NewAppInput
from bot.slack import views
from bot.slack.ids import Callback, Field
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import FORM as FORM_CONTENT_TYPE
from fakes.slack_driver import SlackDriver
from handlers.commands import SECRET_USAGE
from tests.e2e.conftest import LogCapture, wait_until
from tests.e2e.flows import FORM, approve, request_id_of, request_new_app, wait_for_status

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GENERAL = "C0FAKEGEN"
ADMIN = ADMINS[1]  # decides in these tests; ADMINS[0] is the one the hostile text tries to ping
SLACK_DEADLINE = 3.0
SOMETHING_WENT_WRONG = "Something went wrong on our side"

# Text that means something to Slack's mrkdwn parser, or to a careless program.
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    f"<@{ADMINS[0]}>",
    f"<#{APPROVAL_CHANNEL}>",
    "<!subteam^S0HOSTILE>",
    "<https://evil.example|click here>",
    "*bold* _it_ ~strike~ `code`",
    "```preformatted```",
    "&lt;",
    "&amp;gt;",
    "%s %(name)s {0} {name}",
    "' OR 1=1 --",
    "\\",
]
# Parts of the above that must never show up outside literal text (a parsed mention or link
# would leave one of these behind in a mrkdwn string, a URL or a fallback text).
HOSTILE_FRAGMENTS = ["!channel", "!here", "!everyone", "!subteam", "evil.example", "click here", "*bold*"]
HOSTILE_FRAGMENTS += ["~strike~", "&lt;", "&amp;gt;", "```preformatted```", f"#{APPROVAL_CHANNEL}>"]

TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)"
    r"|File \"[^\"]*\", line \d+"
    r"|\b(?:bot|handlers|slack_bolt|slack_sdk|sqlalchemy|sqlite3|psycopg|aiohttp|httpx|builtins)"
    r"(?:\.\w+)+(?:Error|Exception)\b"
    r"|\b(?:Value|Type|Key|Attribute|Index|Lookup|Runtime|Assertion|Name|UnicodeEncode|UnicodeDecode"
    r"|JSONDecode|Operational|Integrity|Data|SlackApi|Programming|Overflow|ZeroDivision)Error\b"
)


@pytest.fixture
def bot_settings(cloud: FakeCloud, database_path: Path) -> dict[str, Any]:
    """Flood limits far above what a fuzz run files, so every refusal comes from validation."""
    return {
        "oauth_bot_retry_budget_seconds": 20.0,
        "oauth_bot_max_open_requests": 100_000,
        "oauth_bot_max_requests_per_hour": 100_000,
    }


# --- helpers -------------------------------------------------------------------------------
def _store(bot: BackgroundBot) -> Any:
    assert bot.services is not None
    return bot.services.store


def _all_requests(bot: BackgroundBot) -> list[Request]:
    return list(_store(bot).requests_in(list(Status)))


def _no_traceback(*texts: str) -> None:
    for text in texts:
        found = TRACEBACK.search(text)
        assert found is None, f"traceback-like text shown in Slack: {found.group(0)!r} in {text[:400]!r}"


def _visible_since(cloud: FakeCloud, user: str, mark: dict[str, int]) -> list[str]:
    """Everything Slack showed `user` (as JSON text) since `mark` was taken."""
    shown = cloud.slack.ephemerals(user)[mark["ephemerals"] :]
    shown += [r["body"] or {} for r in cloud.slack.responses(user)[mark["responses"] :]]
    shown += cloud.slack.dm_messages(user)[mark["dms"] :]
    return [json.dumps(item, ensure_ascii=False) for item in shown]


def _mark(cloud: FakeCloud, user: str) -> dict[str, int]:
    return {
        "ephemerals": len(cloud.slack.ephemerals(user)),
        "responses": len(cloud.slack.responses(user)),
        "dms": len(cloud.slack.dm_messages(user)),
        "opened": len(cloud.slack.opened_views(user)),
    }


def _something_went_wrong(cloud: FakeCloud, user: str) -> list[str]:
    return [m["text"] for m in cloud.slack.dm_messages(user) if SOMETHING_WENT_WRONG in m.get("text", "")]


def _no_unhandled_errors(cloud: FakeCloud, logs: LogCapture, *users: str) -> None:
    for user in users:
        assert not _something_went_wrong(cloud, user), f"{user} was told something went wrong"
    assert "unhandled" not in logs.text(), logs.text()[-3000:]


def _bad_name_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text)


def _bad_multiline_characters(text: str) -> bool:
    return any(
        (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r") or unicodedata.category(ch) == "Cs"
        for ch in text
    )


def _forged(value: str) -> dict[str, Any]:
    """An option the modal never offered, as a tampered client would send it."""
    return {"text": {"type": "plain_text", "text": f"forged {value}"[:75] or "forged"}, "value": value}


# --- strategies ------------------------------------------------------------------------------
controls = st.text(
    alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"], codec="utf-8"), min_size=1, max_size=6
)
fragment = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), controls)
hostile_text = st.lists(fragment, max_size=6).map("".join)


# --- 1. fuzzed slash commands -----------------------------------------------------------------
SUBCOMMANDS = ["", "new", "NEW", "New", "list", "list all", "show", "help", "rotate", "frobnicate", "new\n"]
command_text = st.one_of(
    st.text(max_size=200),
    hostile_text,
    st.builds(
        lambda sub, sep, rest: f"{sub}{sep}{rest}",
        st.sampled_from(SUBCOMMANDS),
        st.sampled_from([" ", "  ", "\t", "\n", " \u200b"]),
        hostile_text,
    ),
    st.builds(
        lambda sub, ch, n: f"{sub} {ch * n}",
        st.sampled_from(SUBCOMMANDS),
        st.sampled_from(["x", "<", "é", "`", "\u202e", "🙂"]),
        st.integers(min_value=2_900, max_value=6_000),
    ),
)


def _expect_command_answer(cloud: FakeCloud, command: str, text: str, mark: dict[str, int]) -> str:
    """The specific answer this command must get; returns what Slack showed (for more checks)."""
    subcommand, _, rest = text.strip().partition(" ")
    subcommand = subcommand.lower()
    acked = [str(e["text"]) for e in cloud.slack.ephemerals(DEVELOPER)[mark["ephemerals"] :]]

    def responded() -> list[str]:
        return [
            str((r["body"] or {}).get("text")) for r in cloud.slack.responses(DEVELOPER)[mark["responses"] :]
        ]

    if command == "/oauth-app" and subcommand == "new":
        opened = wait_until(
            lambda: cloud.slack.opened_views(DEVELOPER)[mark["opened"] :], timeout=5, what="the new-app modal"
        )
        view = opened[0]["view"]
        assert view["callback_id"] == Callback.NEW_APP
        element = next(b for b in view["blocks"] if b["block_id"] == Field.NAME)["element"]
        assert element.get("initial_value") == (rest.strip()[:3000] or None)
        return json.dumps(view, ensure_ascii=False)
    if subcommand in ("", "help"):
        assert acked == [views.USAGE if command == "/oauth-app" else SECRET_USAGE], acked
        return acked[0]
    if command == "/oauth-app" and subcommand == "show" and not rest.strip():
        assert acked == ["Usage: `/oauth-app show &lt;client-id&gt;`"], acked
        return acked[0]
    if command == "/oauth-secret" and subcommand in ("rotate", "list") and not rest.strip():
        assert acked == [f"Name the app: `/oauth-secret {subcommand} &lt;client-id or app name&gt;`"], acked
        return acked[0]
    if command == "/oauth-app" and subcommand == "list":
        shown: list[str] = wait_until(responded, timeout=5, what="the app list")
        everyone = rest.strip().lower() == "all"
        assert shown == (
            ["Only the oauth-bot admins can list every app."] if everyone else ["Your app registrations: 0"]
        ), shown
        return shown[0]
    if (command, subcommand) in (
        ("/oauth-app", "show"),
        ("/oauth-secret", "rotate"),
        ("/oauth-secret", "list"),
    ):
        shown = list(wait_until(responded, timeout=5, what="the not-found answer"))
        assert len(shown) == 1 and shown[0].startswith("oauth-bot does not manage an app"), shown
        return shown[0]
    usage = views.USAGE if command == "/oauth-app" else SECRET_USAGE
    assert len(acked) == 1 and acked[0].startswith("Unknown subcommand `"), acked
    assert acked[0].endswith(usage)
    return acked[0]


def _check_mrkdwn_answer_is_inert(shown: str) -> None:
    """An answer in mrkdwn may echo the user's words only with < > escaped (no ping, no link)."""
    assert "<" not in shown and ">" not in shown, f"raw < or > from user text in mrkdwn: {shown[:300]!r}"


def test_fuzzed_command_text_always_gets_a_fast_specific_answer(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture
) -> None:
    """`/oauth-app <text>` and `/oauth-secret <text>` with any unicode, control characters, very
    long text, mentions, links, backticks or `new` + junk: HTTP 200 within 3 s and the specific
    answer for the subcommand (usage help, the modal with the name filled in, a list or a
    not-found message); user text in mrkdwn answers is escaped; no traceback anywhere in Slack."""

    @FUZZ
    @given(command=st.sampled_from(["/oauth-app", "/oauth-secret"]), text=command_text)
    @example(command="/oauth-app", text="new <!channel> <@U0ADMIN001> `x`")
    @example(command="/oauth-app", text="show <!channel> <https://evil.example|click here>")
    @example(command="/oauth-secret", text="rotate <!here> &lt;")
    @example(command="/oauth-secret", text="list <@U0ADMIN001>")
    @example(command="/oauth-app", text="\x00\x01\x02")
    @example(command="/oauth-secret", text="new" + "\u202e" * 50)
    def run(command: str, text: str) -> None:
        mark = _mark(cloud, DEVELOPER)
        started = time.monotonic()
        response = slack.command(DEVELOPER, command, text)
        elapsed = time.monotonic() - started
        assert response.status_code == 200, (response.status_code, response.text[:300])
        assert elapsed < SLACK_DEADLINE, elapsed
        shown = _expect_command_answer(cloud, command, text, mark)
        if not (command == "/oauth-app" and text.strip().partition(" ")[0].lower() == "new"):
            _check_mrkdwn_answer_is_inert(shown)
        _no_traceback(response.text, shown, *_visible_since(cloud, DEVELOPER, mark))
        assert len(cloud.slack.dm_messages(DEVELOPER)) == mark["dms"], "a command answered with a DM"

    run()
    _no_unhandled_errors(cloud, logs, DEVELOPER)
    assert not cloud.slack.messages(GENERAL), "a command answer went to the channel"


# --- 2. fuzzed modal fields ----------------------------------------------------------------------
NAME, AUDIENCE, REDIRECT, PLATFORM = "Name", "Supported account types", "Redirect URI", "Platform"
DESCRIPTION, EXPIRY, JUSTIFICATION = "Secret description", "Secret expiry", "Justification"
BLOCK_IDS = {str(f) for f in Field if f != Field.DENY_REASON}
LISTED_DAYS = {"90", "180", "365"}
AUDIENCES = [
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
]
FORGED_DAYS = ["730", "99999", "abc", "545", "0", "-1", "1e3", "365.0", "18O", "<!channel>"]
FORGED_AUDIENCES = ["AzureADMyOrg ", "Everyone", "azureadmyorg", "<!here>", "AzureADMyOrg\u200b"]
BAD_REDIRECTS = [
    "http://app.example.com/cb",
    "http://localhost.evil.example/cb",
    "ftp://files.example.com/cb",
    "javascript:alert(1)",
    "javascript://app.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/auth/callback",
    "auth/callback",
    "//app.example.com/cb",
    "https://*.example.com/cb",
    "https://app.example.com/*",
    "https://app.example.com/cb#fragment",
    "https://app.example.com/cb#",
    "https://app.example.com/" + "a" * 277,  # 300 characters
    "https://app.example.com/c b",
    "https://app.example.com/cb\nhttps://evil.example",
    "https://app.example.com/cb\u202e",
    "https://app.example.com/\u200bcb",
    "https://app.example.com:99999/cb",
    "https://[::1/cb",
    "https://:443/cb",
    "https://@/cb",
    "https:///cb",
    "http://evil.example\\@localhost/cb",
    "https://app.example.com@evil.example/cb",
    "https://app.ex\u0430mple.com/cb",
    "http://[::1]/cb",
]
GOOD_REDIRECTS = [
    "https://app.example.com/auth/callback",
    "http://localhost:3000/cb",
    "http://127.0.0.1/cb",
    "https://app.example.com/cb?next=%2Fhome",
]


def _fill(values: dict[str, Any]) -> dict[str, Any]:
    """Form values by label: text as typed, options by their value (or a forged option dict)."""
    filled = dict(values)
    for label in (AUDIENCE, PLATFORM, EXPIRY):
        value = filled.get(label)
        if isinstance(value, str):
            filled[label] = _forged(value)  # a dict is sent as is: listed or not, it is what we say
    return filled


def _option(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def _submit_new_app(
    cloud: FakeCloud, slack: SlackDriver, values: dict[str, Any]
) -> tuple[httpx.Response, float]:
    modal = _open_new_modal(cloud, slack, DEVELOPER)
    started = time.monotonic()
    response = slack.submit(DEVELOPER, modal, _fill(values), validate=False)
    return response, time.monotonic() - started


def _open_new_modal(cloud: FakeCloud, slack: SlackDriver, user: str) -> dict[str, Any]:
    """The modal this `/oauth-app new` opens (not one a refused submission left open)."""
    mark = len(cloud.slack.opened_views(user))
    assert slack.command(user, "/oauth-app", "new").status_code == 200
    opened = wait_until(lambda: cloud.slack.opened_views(user)[mark:], timeout=5, what="the new modal")
    modal = cloud.slack.view(opened[0]["view_id"])
    assert modal is not None
    return modal


def _check_errors_answer(response: httpx.Response, elapsed: float) -> dict[str, str]:
    """200 within 3 s; either {} (a clean close) or field errors naming real input blocks."""
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert elapsed < SLACK_DEADLINE, elapsed
    _no_traceback(response.text)
    if not response.content.strip():
        return {}
    body = response.json()
    assert body.get("response_action") == "errors", body
    errors = body["errors"]
    assert errors and set(errors) <= BLOCK_IDS | {Field.DENY_REASON}, errors
    assert all(isinstance(m, str) and m.strip() for m in errors.values()), errors
    return dict(errors)


def _wait_stored(cloud: FakeCloud, bot: BackgroundBot, before: int) -> Request:
    """The request filed by a submission that closed cleanly (or a clear failure if it crashed)."""
    wait_until(
        lambda: len(_all_requests(bot)) > before or _something_went_wrong(cloud, DEVELOPER),
        timeout=10,
        what="the request to be stored",
    )
    assert not _something_went_wrong(cloud, DEVELOPER), "the submission closed cleanly and then crashed"
    requests = _all_requests(bot)
    assert len(requests) == before + 1
    return max(requests, key=lambda r: r.id)


def _value(values: dict[str, Any], label: str) -> str | None:
    value = values.get(label)
    return value["value"] if isinstance(value, dict) else value


FIELD_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({NAME: ""}, Field.NAME),
    ({NAME: None}, Field.NAME),
    ({NAME: " \t "}, Field.NAME),
    ({NAME: "x" * 121}, Field.NAME),
    ({NAME: "é" * 3000}, Field.NAME),
    ({NAME: "x" * 120}, None),
    ({NAME: "billing\napi"}, Field.NAME),
    ({NAME: "billing\rapi"}, Field.NAME),
    ({NAME: "billing\u2028api"}, Field.NAME),
    ({NAME: "billing\u2029api"}, Field.NAME),
    ({NAME: "billing\x00api"}, Field.NAME),
    ({NAME: "billing\u200bapi"}, Field.NAME),
    ({NAME: "\u200b"}, Field.NAME),
    ({NAME: "\u202eipa-gnillib"}, Field.NAME),
    ({NAME: "billing\u200fapi"}, Field.NAME),
    ({NAME: "billing\ufeffapi"}, Field.NAME),
    ({NAME: "billing\ud800api"}, Field.NAME),
    ({NAME: "<!channel> <@U0ADMIN001> `x` *y*"}, None),
    ({DESCRIPTION: "d" * 121}, Field.SECRET_DESCRIPTION),
    ({DESCRIPTION: "ci\tdeploys"}, Field.SECRET_DESCRIPTION),
    ({DESCRIPTION: "ci\u202edeploys"}, Field.SECRET_DESCRIPTION),
    ({DESCRIPTION: "ci\udfffdeploys"}, Field.SECRET_DESCRIPTION),
    ({JUSTIFICATION: ""}, Field.JUSTIFICATION),
    ({JUSTIFICATION: None}, Field.JUSTIFICATION),
    ({JUSTIFICATION: "\n\n \t"}, Field.JUSTIFICATION),
    ({JUSTIFICATION: "j" * 2001}, Field.JUSTIFICATION),
    ({JUSTIFICATION: "j" * 2000}, None),
    ({JUSTIFICATION: "line one\nline two\r\n\ttabbed"}, None),
    ({JUSTIFICATION: "right-to-left \u202eevil\u202c and zero\u200bwidth"}, None),
    ({JUSTIFICATION: "nul \x00 byte"}, Field.JUSTIFICATION),
    ({JUSTIFICATION: "escape \x1b[31m red"}, Field.JUSTIFICATION),
    ({JUSTIFICATION: "lone \ud83d surrogate"}, Field.JUSTIFICATION),
    *[({REDIRECT: uri}, Field.REDIRECT_URI) for uri in BAD_REDIRECTS],
    *[({REDIRECT: uri}, None) for uri in GOOD_REDIRECTS],
    ({REDIRECT: "https://app.example.com/ok\ud800"}, Field.REDIRECT_URI),
    *[({EXPIRY: days}, Field.SECRET_EXPIRY) for days in FORGED_DAYS],
    *[({AUDIENCE: audience}, Field.AUDIENCE) for audience in FORGED_AUDIENCES],
    ({PLATFORM: "ios"}, Field.PLATFORM),
    ({PLATFORM: "Web"}, Field.PLATFORM),
    ({EXPIRY: _option("365"), AUDIENCE: _option("PersonalMicrosoftAccount")}, None),
]


def test_each_bad_modal_field_is_reported_next_to_that_field(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture
) -> None:
    """Empty, over-long and multi-line names, zero-width and right-to-left control characters,
    lone surrogates, bad redirect URIs (http elsewhere than localhost, ftp:, javascript:,
    relative, wildcard, fragment, 300 characters, no host) and forged lifetimes and account
    types: each gets HTTP 200 with `response_action: errors` naming exactly that block; the
    good ones close the modal cleanly and store the request exactly as typed."""
    for overrides, expected in FIELD_CASES:
        values = {NAME: "hostile-form-app", JUSTIFICATION: "Fuzzing the form.", **overrides}
        before = len(_all_requests(bot))
        response, elapsed = _submit_new_app(cloud, slack, values)
        errors = _check_errors_answer(response, elapsed)
        if expected is None:
            assert errors == {}, (overrides, errors)
            stored = _wait_stored(cloud, bot, before)
            assert stored.display_name == (_value(values, NAME) or "").strip()
            assert stored.justification == (_value(values, JUSTIFICATION) or "").strip()
            assert cloud.slack.current_modal(DEVELOPER) is None, "the modal stayed open"
        else:
            assert set(errors) == {expected}, (overrides, errors)
            assert len(_all_requests(bot)) == before, f"{overrides} was stored"
            assert cloud.slack.current_modal(DEVELOPER) is not None, "the modal closed on an error"
    wait_until(lambda: all(r.card_ts for r in _all_requests(bot)), what="every accepted request's card")
    _no_unhandled_errors(cloud, logs, DEVELOPER)


def test_a_hand_built_submission_with_forged_and_missing_values_gets_field_errors(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture
) -> None:
    """A view_submission built and signed by hand: a lifetime of 99999 days and an unknown account
    type that the modal never offered, and a state with no values at all, are answered with
    field errors; nothing is stored."""
    modal = _open_new_modal(cloud, slack, DEVELOPER)
    state = slack.state_values(
        modal["blocks"], {NAME: "forged-app", JUSTIFICATION: "Forged."}, validate=False
    )
    forged_state = copy.deepcopy(state)
    for block_id, value in ((Field.SECRET_EXPIRY, "99999"), (Field.AUDIENCE, "AzureADEveryone")):
        entry = next(iter(forged_state[block_id].values()))
        entry["selected_option"] = {"text": {"type": "plain_text", "text": "Forever"}, "value": value}

    def post(values: dict[str, Any]) -> httpx.Response:
        view = {**modal, "state": {"values": values}}
        payload = {
            "type": "view_submission",
            "team": {"id": cloud.slack.team_id, "domain": cloud.slack.team_domain},
            "user": {
                "id": DEVELOPER,
                "username": "dana.dev",
                "name": "dana.dev",
                "team_id": cloud.slack.team_id,
            },
            "api_app_id": "A0FAKEAPP",
            "token": "fake-verification-token",
            "trigger_id": cloud.slack.issue_trigger(DEVELOPER),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        started = time.monotonic()
        response = slack.post_raw(body, slack.sign(body) | {"Content-Type": FORM_CONTENT_TYPE})
        assert time.monotonic() - started < SLACK_DEADLINE
        return response

    forged = _check_errors_answer(post(forged_state), 0.0)
    assert set(forged) == {Field.SECRET_EXPIRY, Field.AUDIENCE}, forged
    assert "365 days" in forged[Field.SECRET_EXPIRY]
    empty = _check_errors_answer(post({}), 0.0)
    assert set(empty) == {Field.NAME, Field.JUSTIFICATION}, empty
    assert _all_requests(bot) == []
    _no_unhandled_errors(cloud, logs, DEVELOPER)


name_strategy = st.one_of(
    st.just(""),
    st.text(max_size=40),
    hostile_text.map(lambda s: s[:130]),
    st.text(alphabet="ab ", min_size=115, max_size=126),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=10), controls, st.text(max_size=10)),
)
redirect_strategy = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(BAD_REDIRECTS + GOOD_REDIRECTS),
    st.builds(
        lambda scheme, host, path: f"{scheme}{host}{path}",
        st.sampled_from(["https://", "http://", "ftp://", "javascript:", "", "//", "HTTPS://"]),
        st.sampled_from(
            ["app.example.com", "localhost", "127.0.0.1", "[::1]", "*.example.com", "", "evil.example:0"]
        ),
        st.text(max_size=20),
    ),
)
justification_strategy = st.one_of(
    st.just(""),
    st.text(max_size=200),
    hostile_text,
    st.text(alphabet="jk\n", min_size=1995, max_size=2006),
    st.builds(lambda a, c: a + c, st.text(min_size=1, max_size=10), controls),
)


def _mostly(listed: list[str], forged: list[str]) -> st.SearchStrategy[Any]:
    """A listed option (as a dict) five times in six, else a forged value (a str)."""
    return st.integers(0, 5).flatmap(
        lambda n: st.sampled_from(forged) if n == 0 else st.sampled_from(listed).map(_option)
    )


option_strategy = {
    EXPIRY: _mostly(sorted(LISTED_DAYS), FORGED_DAYS),
    AUDIENCE: _mostly(AUDIENCES, FORGED_AUDIENCES),
    PLATFORM: _mostly(["web", "spa", "publicClient"], ["ios", "Web", "<!here>"]),
}


def test_fuzzed_modal_fields_get_field_errors_or_are_stored_exactly(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture
) -> None:
    """Every field of the new-app modal fuzzed at once (values the Slack client would refuse
    included): the answer is 200 within 3 s and either field errors on real block IDs with a
    message, including every field that breaks the rules, or a clean close with the request
    stored exactly as typed (trimmed); never a 500, never a traceback, never a crash after the
    modal closed."""

    @FUZZ
    @given(
        name=name_strategy,
        redirect=redirect_strategy,
        description=st.one_of(st.none(), st.text(max_size=125), hostile_text.map(lambda s: s[:125])),
        justification=justification_strategy,
        expiry=option_strategy[EXPIRY],
        audience=option_strategy[AUDIENCE],
        platform=option_strategy[PLATFORM],
    )
    @example(
        name="<!channel> *hostile* but valid",
        redirect="https://app.example.com/cb?next=<!here>",
        description="<@U0ADMIN001>",
        justification="Line one\n<https://evil.example|click here>\n\tindented \u202e RTL",
        expiry=_option("365"),
        audience=_option("AzureADMultipleOrgs"),
        platform=_option("spa"),
    )
    def run(
        name: str, redirect: str | None, description: str | None, justification: str, **options: Any
    ) -> None:
        values = {
            NAME: name,
            REDIRECT: redirect,
            DESCRIPTION: description,
            JUSTIFICATION: justification,
            EXPIRY: options["expiry"],
            AUDIENCE: options["audience"],
            PLATFORM: options["platform"],
        }
        before = len(_all_requests(bot))
        response, elapsed = _submit_new_app(cloud, slack, values)
        errors = _check_errors_answer(response, elapsed)
        trimmed_name, trimmed_reason = name.strip(), justification.strip()
        name_bad = not trimmed_name or len(trimmed_name) > 120 or _bad_name_characters(trimmed_name)
        reason_bad = (
            not trimmed_reason or len(trimmed_reason) > 2000 or _bad_multiline_characters(trimmed_reason)
        )
        assert (Field.NAME in errors) == name_bad, (name, errors)
        assert (Field.JUSTIFICATION in errors) == reason_bad, (justification[:100], errors)
        assert (Field.SECRET_EXPIRY in errors) == isinstance(options["expiry"], str), errors
        assert (Field.AUDIENCE in errors) == isinstance(options["audience"], str), errors
        assert (Field.PLATFORM in errors) == isinstance(options["platform"], str), errors
        if redirect in BAD_REDIRECTS:
            assert Field.REDIRECT_URI in errors, (redirect, errors)
        if redirect in GOOD_REDIRECTS:
            assert Field.REDIRECT_URI not in errors, (redirect, errors)
        if errors:
            assert len(_all_requests(bot)) == before
            return
        stored = _wait_stored(cloud, bot, before)
        assert stored.display_name == trimmed_name
        assert stored.justification == trimmed_reason
        assert stored.redirect_uri == ((redirect or "").strip() or None)
        assert stored.secret_days == int(options["expiry"]["value"])
        assert stored.sign_in_audience == options["audience"]["value"]

    run()
    wait_until(lambda: all(r.card_ts for r in _all_requests(bot)), what="every accepted request's card")
    _no_unhandled_errors(cloud, logs, DEVELOPER)


def _pending_request(bot: BackgroundBot, cloud: FakeCloud, name: str) -> dict[str, Any]:
    """A pending request filed straight through the workflow; returns its approval card."""
    assert bot.services is not None
    data = NewAppInput(
        display_name=name,
        sign_in_audience="AzureADMyOrg",
        redirect_uri=None,
        redirect_platform=None,
        secret_description="CI",
        secret_days=180,
        justification="A request to deny.",
    )
    request = bot.services.intake.submit_new_app(requester_id=DEVELOPER, team_id=None, data=data)
    card = cloud.slack.message(APPROVAL_CHANNEL, str(request.card_ts))
    assert card is not None
    return card


def _deny_with(
    cloud: FakeCloud, slack: SlackDriver, card: dict[str, Any], reason: str
) -> tuple[httpx.Response, float]:
    mark = len(cloud.slack.opened_views(ADMIN))
    slack.click(ADMIN, "Deny", message=card, channel=APPROVAL_CHANNEL)
    opened = wait_until(lambda: cloud.slack.opened_views(ADMIN)[mark:], timeout=5, what="the reason form")
    modal = cloud.slack.view(opened[0]["view_id"])
    assert modal is not None
    started = time.monotonic()
    response = slack.submit(ADMIN, modal, {"Reason": reason}, validate=False)
    return response, time.monotonic() - started


reason_strategy = st.one_of(
    st.just(""),
    st.text(max_size=200),
    hostile_text,
    st.text(alphabet="r \n", min_size=1995, max_size=2006),
    st.builds(lambda a, c: a + c, st.text(min_size=1, max_size=10), controls),
)


def test_fuzzed_deny_reasons_get_a_field_error_or_deny_with_that_reason(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture
) -> None:
    """The deny-reason form fuzzed (empty, whitespace, 2000+ characters, control characters,
    lone surrogates, mentions and markup): an error on `deny_reason` with a message, or a clean
    close that denies the request with exactly the trimmed reason; never a crash afterwards."""
    current = {"card": _pending_request(bot, cloud, "deny-fuzz-app")}

    def attempt(reason: str) -> None:
        card = current["card"]
        request_id = request_id_of(card)
        response, elapsed = _deny_with(cloud, slack, card, reason)
        errors = _check_errors_answer(response, elapsed)
        trimmed = reason.strip()
        bad = not trimmed or len(trimmed) > 2000 or _bad_multiline_characters(trimmed)
        if bad:
            assert set(errors) == {Field.DENY_REASON}, (reason[:80], errors)
            assert _store(bot).get_request(request_id).status == Status.PENDING
            return
        assert errors == {}, (reason[:80], errors)
        denied = wait_until(
            lambda: (
                _store(bot).get_request(request_id).status == Status.DENIED
                or _something_went_wrong(cloud, ADMIN)
            ),
            timeout=10,
            what="the denial",
        )
        assert denied is True, "the reason form closed cleanly and then crashed"
        assert _store(bot).get_request(request_id).deny_reason == trimmed
        current["card"] = _pending_request(bot, cloud, f"deny-fuzz-app-{request_id}")

    @settings(FUZZ, max_examples=40)
    @given(reason=reason_strategy)
    def run(reason: str) -> None:
        attempt(reason)

    for literal in ("", "   ", "x" * 2001, "nul\x00", "lone \udc00", "<!channel> *no*"):
        attempt(literal)
    run()
    _no_unhandled_errors(cloud, logs, DEVELOPER, ADMIN)


# --- 3. injection: user text shows only as literal text ---------------------------------------
class Inertness:
    """Walks Slack messages and records every place user text could become live."""

    def __init__(self, fragments: list[str], users: set[str], channels: set[str]) -> None:
        self.fragments = fragments
        self.users = users
        self.channels = channels
        self.problems: list[str] = []
        self.literal: list[str] = []

    def check(self, node: Any, where: str) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                self.check(item, f"{where}/{index}")
            return
        if isinstance(node, str):
            for fragment in self.fragments:
                if fragment in node:
                    self.problems.append(
                        f"{where}: user text {fragment!r} outside literal text: {node[:200]!r}"
                    )
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "broadcast":
            self.problems.append(f"{where}: a broadcast element ({node.get('range')})")
        elif kind == "usergroup":
            self.problems.append(f"{where}: a user group mention")
        elif kind == "user" and node.get("user_id") not in self.users:
            self.problems.append(f"{where}: a mention of {node.get('user_id')} made from user text")
        elif kind == "channel" and node.get("channel_id") not in self.channels:
            self.problems.append(f"{where}: a channel link to {node.get('channel_id')} made from user text")
        for key, value in node.items():
            if key == "text" and isinstance(value, str) and kind in ("plain_text", "text"):
                self.literal.append(value)  # shown literally by Slack
                continue
            self.check(value, f"{where}/{key}")

    def messages(self, messages: list[dict[str, Any]], label: str) -> None:
        for message in messages:
            versions = [message, *message.get("history", [])]
            for number, version in enumerate(versions):
                where = f"{label} {message.get('ts') or message.get('message_ts')} v{number}"
                fallback = str(version.get("text") or "")
                for fragment in self.fragments:
                    assert fragment not in fallback, f"{where}: user text in the fallback text {fallback!r}"
                self.check({k: v for k, v in version.items() if k != "history"}, where)


def test_mentions_links_and_markup_in_user_text_stay_literal_everywhere(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture
) -> None:
    """Names, descriptions, redirect URIs, justifications and a deny reason full of `<!channel>`,
    `<!here>`, `<@U0ADMIN001>`, `<https://evil.example|click here>`, `*bold* _it_ ~strike~
    `code``, `&lt;`: in the approval cards (every version), the requester's confirmation,
    denial and ready DMs they appear only inside plain_text objects or rich_text text
    elements — never in mrkdwn, a link, a mention, a broadcast or the fallback text."""
    justification = "Hostile justification:\n" + "\n".join(HOSTILE)
    reason = "Denied because " + " ".join(HOSTILE)
    denied_card = request_new_app(
        slack,
        DEVELOPER,
        f"<!channel> <@{ADMINS[0]}> &lt; <!everyone>",
        Justification=justification,
        **{"Secret description": "<!here> &amp;gt; *bold* _it_ ~strike~ `code`"},
        **{"Redirect URI": "https://app.example.com/cb?next=<!here>"},
    )
    denied_id = request_id_of(denied_card)
    response, _ = _deny_with(cloud, slack, denied_card, reason)
    assert response.status_code == 200 and not response.content.strip(), response.text
    denied = wait_for_status(bot, denied_id, Status.DENIED)
    assert denied.deny_reason == reason

    approved_card = request_new_app(
        slack,
        DEVELOPER,
        "<https://evil.example|click here> *bold* _it_ ~strike~ `code` <#C0APPROVALS>",
        Justification=justification,
        **{"Secret description": "<!subteam^S0HOSTILE> ```preformatted```"},
    )
    finished = approve(slack, cloud, bot, approved_card, ADMIN)
    assert finished.status == Status.COMPLETED, finished.error
    wait_until(
        lambda: (
            any("was denied" in m["text"] for m in cloud.slack.dm_messages(DEVELOPER))
            and any("is done" in m["text"] for m in cloud.slack.dm_messages(DEVELOPER))
        ),
        what="the denial and ready DMs",
    )
    wait_until(
        lambda: (
            "Denied by" in json.dumps(cloud.slack.message(APPROVAL_CHANNEL, denied_card["ts"]))
            and "done" in json.dumps(cloud.slack.message(APPROVAL_CHANNEL, approved_card["ts"]))
        ),
        what="both cards to show the decision",
    )

    walker = Inertness(HOSTILE_FRAGMENTS, users={DEVELOPER, ADMIN}, channels={APPROVAL_CHANNEL})
    walker.messages(cloud.slack.messages(include_deleted=True), "message")
    walker.messages(cloud.slack.ephemerals(), "ephemeral")
    shown_name = json.dumps(finished.display_name)[1:-1]  # as it appears inside the view's JSON
    for user in (DEVELOPER, *ADMINS):  # each opens the Home tab: their apps, or every app for admins
        assert slack.home_opened(user).status_code == 200
        home = wait_until(
            lambda u=user: (h := cloud.slack.home_view(u)) and shown_name in json.dumps(h) and h,  # type: ignore[misc]
            what=f"{user}'s Home tab to list the approved app",
        )
        walker.check(home["blocks"], f"home of {user}")
    assert not walker.problems, "\n".join(walker.problems)

    literal = "\n".join(walker.literal)
    for token in HOSTILE:
        assert token in literal, f"{token!r} is not shown literally anywhere (escaped or dropped?)"
    assert reason in literal and f"<!channel> <@{ADMINS[0]}> &lt; <!everyone>" in literal
    _no_unhandled_errors(cloud, logs, DEVELOPER, ADMIN)


# --- 4. request authenticity ----------------------------------------------------------------
def _signature(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class Capture:
    """The exact bytes and headers the driver sent (as an eavesdropper would record them)."""

    def __init__(self, client: httpx.Client) -> None:
        self.sent: list[tuple[bytes, dict[str, str]]] = []
        self.client = client

    def __call__(self, request: httpx.Request) -> None:
        self.sent.append((request.read(), dict(request.headers)))

    def __enter__(self) -> Capture:
        self.client.event_hooks["request"].append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.event_hooks["request"].remove(self)


@pytest.fixture
def eavesdropper(slack: SlackDriver) -> Iterator[Capture]:
    with Capture(slack.client) as capture:
        yield capture


def _command_body(cloud: FakeCloud, text: str) -> bytes:
    form = {
        "token": "fake-verification-token",
        "team_id": cloud.slack.team_id,
        "channel_id": GENERAL,
        "user_id": DEVELOPER,
        "user_name": "dana.dev",
        "command": "/oauth-app",
        "text": text,
        "api_app_id": "A0FAKEAPP",
        "response_url": cloud.slack.issue_response_url(DEVELOPER, channel_id=GENERAL),
        "trigger_id": cloud.slack.issue_trigger(DEVELOPER),
    }
    return urlencode(form).encode()


def test_unsigned_stale_and_replayed_requests_get_401_and_change_nothing(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    eavesdropper: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A command and a form submission with a wrong signature, a signature for other bytes, a
    timestamp older (or newer) than 5 minutes correctly signed for that timestamp, or no
    signature / timestamp header: 401, no Slack API call, no modal, nothing stored. A captured
    valid submission replayed 6 minutes later: 401, and still only the one original request."""
    modal = _open_new_modal(cloud, slack, DEVELOPER)
    assert slack.submit(DEVELOPER, modal, dict[str, object](FORM)).status_code == 200
    stored = wait_until(lambda: _all_requests(bot), what="the genuine request")
    wait_until(
        lambda: any("is waiting for approval" in m["text"] for m in cloud.slack.dm_messages(DEVELOPER)),
        what="its card and confirmation DM",
    )
    submission_body, submission_headers = eavesdropper.sent[-1]
    assert b"view_submission" in submission_body

    calls_before = len(cloud.slack.api_calls())
    opened_before = len(cloud.slack.opened_views())
    now = int(time.time())
    form = {"Content-Type": FORM_CONTENT_TYPE}
    forged_bodies = {
        "command": _command_body(cloud, "new forged <!channel>"),
        "submission": submission_body,
    }
    for kind, body in forged_bodies.items():
        cases = {
            "wrong secret": {
                "X-Slack-Request-Timestamp": str(now),
                "X-Slack-Signature": _signature(body, now, "wrong"),
            },
            "other bytes": {
                "X-Slack-Request-Timestamp": str(now),
                "X-Slack-Signature": _signature(body + b"&x=1", now),
            },
            "garbage": {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
            "v1 scheme": {
                "X-Slack-Request-Timestamp": str(now),
                "X-Slack-Signature": _signature(body, now).replace("v0=", "v1="),
            },
            "5 min 10 s old": {
                "X-Slack-Request-Timestamp": str(now - 310),
                "X-Slack-Signature": _signature(body, now - 310),
            },
            "a day old": {
                "X-Slack-Request-Timestamp": str(now - 86_400),
                "X-Slack-Signature": _signature(body, now - 86_400),
            },
            "6 min ahead": {
                "X-Slack-Request-Timestamp": str(now + 360),
                "X-Slack-Signature": _signature(body, now + 360),
            },
            "no signature": {"X-Slack-Request-Timestamp": str(now)},
            "no timestamp": {"X-Slack-Signature": _signature(body, now)},
            "no headers": {},
        }
        for case, headers in cases.items():
            response = slack.post_raw(body, headers | form)
            assert response.status_code == 401, (kind, case, response.status_code, response.text[:200])
            _no_traceback(response.text)

    assert len(cloud.slack.api_calls()) == calls_before, cloud.slack.api_calls()[calls_before:]
    assert len(cloud.slack.opened_views()) == opened_before
    assert [r.id for r in _all_requests(bot)] == [stored[0].id]
    assert not cloud.slack.ephemerals() and not cloud.slack.responses()

    # The eavesdropper's copy of the genuine submission, sent again 6 minutes later.
    from slack_sdk import signature

    monkeypatch.setattr(signature.Clock, "now", lambda self: time.time() + 360)
    replayed = slack.post_raw(submission_body, submission_headers)
    assert replayed.status_code == 401, replayed.text
    resigned = slack.post_raw(submission_body, slack.sign(submission_body, now - 360) | form)
    assert resigned.status_code == 401, resigned.text
    assert len(cloud.slack.api_calls()) == calls_before
    assert [r.id for r in _all_requests(bot)] == [stored[0].id]
    assert len([m for m in cloud.slack.messages(APPROVAL_CHANNEL) if "#" in m["text"]]) == 1


def test_a_non_numeric_timestamp_is_refused_without_side_effects(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """An unsigned request whose timestamp header is not a number is refused with 401 and makes
    the bot call no Slack API (in particular: no DM to the user named in the forged body)."""
    calls_before = len(cloud.slack.api_calls())
    body = _command_body(cloud, "new").replace(DEVELOPER.encode(), ADMINS[0].encode())
    statuses = []
    for timestamp in ("not-a-number", "", "1e9"):
        headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": "v0=" + "0" * 64}
        statuses.append(slack.post_raw(body, headers | {"Content-Type": FORM_CONTENT_TYPE}).status_code)
    # A valid request afterwards as a barrier: its answer comes after any DM the forged ones caused.
    assert slack.command(DEVELOPER, "/oauth-app", "help").status_code == 200
    assert statuses == [401, 401, 401]
    caused = [c for c in cloud.slack.api_calls()[calls_before:] if c["method"] != "auth.test"]
    assert caused == [], caused  # auth.test is the barrier request's own sign-in check
