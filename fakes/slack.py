"""A strict loopback fake of the Slack Web API and of response_url webhooks.

Production clients (slack_sdk `WebClient` / `AsyncWebClient`) talk to it unmodified with
`base_url=f"{fake.url}/api/"`. Answers follow Slack: HTTP 200 with `{"ok": false, "error"}`
for API errors; 429 + Retry-After only when a test scripts it (`rate_limit`, `inject`).
Tokens are checked by type as Slack checks them: the bot token (`xoxb-`) for the bot's
methods, an app-level token (`xapp-`, registered by the Socket Mode fake) for
`apps.connections.open`; the other type gets `not_allowed_token_type`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fakes.base import FakeServer, Request, Response
from fakes.tls import TestCA

JSON = dict[str, Any]

GENERAL_CHANNEL = "C0FAKEGEN"
DEFAULT_BOT_TOKEN = "xoxb-fake-bot-token"
TRIGGER_TTL = 3.0  # seconds a trigger_id stays good for views.open / views.push
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
MODAL_STACK_LIMIT = 3
MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
MESSAGE_TEXT_LIMIT = 40_000
# The bot token's scopes (as manifest.yml asks for them), and the one a method needs.
BOT_SCOPES = ("commands", "chat:write", "users:read", "users:read.email", "usergroups:read")
METHOD_SCOPES = {
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.users.list": "usergroups:read",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


BLOCK_TYPES = _words(
    "actions call context context_actions divider file header image input markdown"
    " rich_text section table video"
)
INPUT_ELEMENTS = _words(
    "plain_text_input email_text_input url_text_input number_input rich_text_input"
    " static_select multi_static_select external_select multi_external_select users_select"
    " multi_users_select conversations_select multi_conversations_select channels_select"
    " multi_channels_select radio_buttons checkboxes datepicker timepicker datetimepicker"
    " file_input"
)


# rich_text (https://docs.slack.dev/reference/block-kit/blocks/rich-text-block): its elements
# are containers; a list holds sections only; the others hold inline elements. Fields per type.
RICH_TEXT_CONTAINERS: dict[str, frozenset[str]] = {
    "rich_text_section": _words("type elements"),
    "rich_text_list": _words("type elements style indent offset border"),
    "rich_text_preformatted": _words("type elements border"),
    "rich_text_quote": _words("type elements border"),
}
_STYLES = _words("bold italic strike code underline")
_MENTION_STYLES = _STYLES | _words("highlight client_highlight unlink")
# inline type -> (required fields, optional fields, style keys)
RICH_TEXT_INLINE: dict[str, tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]] = {
    "text": (("text",), (), _MENTION_STYLES),
    "link": (("url",), ("text", "unsafe"), _STYLES),
    "emoji": (("name",), ("unicode",), _STYLES),
    "user": (("user_id",), (), _MENTION_STYLES),
    "usergroup": (("usergroup_id",), (), _MENTION_STYLES),
    "channel": (("channel_id",), (), _MENTION_STYLES),
    "broadcast": (("range",), (), _MENTION_STYLES),
    "date": (("timestamp", "format"), ("url", "fallback"), _MENTION_STYLES),
    "color": (("value",), (), _STYLES),
}


class SlackError(Exception):
    """An API error answered as `{"ok": false, "error": code}` (HTTP 200)."""

    def __init__(self, error: str, messages: list[str] | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []
        self.extra = extra

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            body["response_metadata"] = {"messages": list(self.messages)}
        return body


def format_ts(micros: int) -> str:
    """Slack's message timestamp form: seconds.microseconds (6 digits)."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def iter_strings(value: Any) -> Iterator[str]:
    """Every string leaf (and dict key) in a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from iter_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_strings(item)


def parse_body(request: Request) -> JSON:
    """Query string plus form, JSON or multipart body, as one dict of arguments."""
    args: JSON = {k: v[-1] for k, v in request.query.items()}
    if not request.body:
        return args
    ctype = (request.headers.get("Content-Type") or "").lower()
    if "application/json" in ctype:
        try:
            parsed = json.loads(request.body)
        except ValueError as exc:
            raise SlackError("invalid_json") from exc
        if not isinstance(parsed, dict):
            raise SlackError("invalid_json")
        args.update(parsed)
    elif "multipart/form-data" in ctype:
        head = f"Content-Type: {request.headers.get('Content-Type')}\r\n\r\n".encode()
        message = BytesParser(policy=policy.HTTP).parsebytes(head + request.body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                args[name] = payload.decode("utf-8", "replace")
    else:
        try:
            text = request.body.decode()
        except UnicodeDecodeError as exc:
            raise SlackError("invalid_form_data") from exc
        for key, values in parse_qs(text, keep_blank_values=True).items():
            args[key] = values[-1]
    return args


def _pointer_error(message: str, pointer: str) -> str:
    return f"[ERROR] {message} [json-pointer:{pointer}]"


class _BlockChecker:
    """Validates Block Kit JSON the way Slack does, collecting messages; fills missing ids."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(_pointer_error(message, f"{self.root}{pointer}"))

    def text(self, obj: Any, pointer: str, *, limit: int, plain: bool = False, required: bool = True) -> None:
        if obj is None:
            if required:
                self.fail("missing required field", pointer)
            return
        if not isinstance(obj, dict):
            self.fail("must be a text object", pointer)
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.fail(f"must be one of {list(allowed)}", f"{pointer}/type")
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            self.fail("must be more than 0 characters", f"{pointer}/text")
        elif len(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", f"{pointer}/text")

    def blocks(self, blocks: Any, *, limit: int) -> list[JSON]:
        if not isinstance(blocks, list):
            self.fail("must be an array", "")
            return []
        if len(blocks) > limit:
            self.fail(f"no more than {limit} items allowed", "")
        seen: set[str] = set()
        out: list[JSON] = []
        for index, raw in enumerate(blocks):
            pointer = f"/{index}"
            if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
                self.fail("must be a block object with a type", pointer)
                continue
            block = copy.deepcopy(raw)
            kind = block["type"]
            if kind not in BLOCK_TYPES:
                self.fail(f"unsupported type: {kind}", f"{pointer}/type")
                continue
            block_id = block.get("block_id")
            if block_id is None:
                block["block_id"] = secrets.token_urlsafe(4)[:5]
            elif not isinstance(block_id, str) or not 0 < len(block_id) <= 255:
                self.fail("must be between 1 and 255 characters", f"{pointer}/block_id")
            elif block_id in seen:
                self.fail(f"duplicate block_id: {block_id}", f"{pointer}/block_id")
            seen.add(str(block["block_id"]))
            self.block(block, pointer)
            out.append(block)
        return out

    def block(self, block: JSON, pointer: str) -> None:
        kind = block["type"]
        if kind == "section":
            if block.get("text") is None and not block.get("fields"):
                self.fail("must provide either text or fields", pointer)
            self.text(block.get("text"), f"{pointer}/text", limit=3000, required=False)
            fields = block.get("fields") or []
            if len(fields) > 10:
                self.fail("no more than 10 items allowed", f"{pointer}/fields")
            for i, field in enumerate(fields):
                self.text(field, f"{pointer}/fields/{i}", limit=2000)
            if block.get("accessory") is not None:
                self.element(block["accessory"], f"{pointer}/accessory", set())
        elif kind == "header":
            self.text(block.get("text"), f"{pointer}/text", limit=150, plain=True)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                self.fail("must provide at least 1 element", f"{pointer}/elements")
                return
            if len(elements) > 25:
                self.fail("no more than 25 items allowed", f"{pointer}/elements")
            action_ids: set[str] = set()
            for i, element in enumerate(elements):
                self.element(element, f"{pointer}/elements/{i}", action_ids)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 10:
                self.fail("must provide between 1 and 10 elements", f"{pointer}/elements")
        elif kind == "rich_text":
            self.rich_text(block, pointer)
        elif kind == "input":
            if "dispatch_action" in block and not isinstance(block["dispatch_action"], bool):
                self.fail("must be a boolean", f"{pointer}/dispatch_action")
            self.text(block.get("label"), f"{pointer}/label", limit=2000, plain=True)
            self.text(block.get("hint"), f"{pointer}/hint", limit=2000, plain=True, required=False)
            element = block.get("element")
            if not isinstance(element, dict):
                self.fail("missing required field", f"{pointer}/element")
            elif element.get("type") not in INPUT_ELEMENTS:
                self.fail(f"unsupported type: {element.get('type')}", f"{pointer}/element/type")
            else:
                self.element(element, f"{pointer}/element", set())

    # --- rich_text: containers hold inline elements; nothing nests deeper --------------------
    def _keys(self, obj: JSON, allowed: frozenset[str], pointer: str) -> None:
        for key in obj:
            if key not in allowed:
                self.fail(f"unexpected field: {key}", f"{pointer}/{key}")

    def _children(self, obj: JSON, pointer: str, *, non_empty: bool) -> list[Any]:
        children = obj.get("elements")
        if not isinstance(children, list):
            self.fail(
                "missing required field" if children is None else "must be an array", f"{pointer}/elements"
            )
            return []
        if non_empty and not children:
            self.fail("must provide at least 1 element", f"{pointer}/elements")
        return children

    def rich_text(self, block: JSON, pointer: str) -> None:
        self._keys(block, frozenset({"type", "block_id", "elements"}), pointer)
        for i, child in enumerate(self._children(block, pointer, non_empty=True)):
            self.rich_text_container(child, f"{pointer}/elements/{i}")

    def rich_text_container(self, obj: Any, pointer: str, *, only: str | None = None) -> None:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(kind, str):
            self.fail("must be an element object with a type", pointer)
            return
        if kind not in RICH_TEXT_CONTAINERS or (only is not None and kind != only):
            expected = [only] if only else sorted(RICH_TEXT_CONTAINERS)
            self.fail(f"unsupported type: {kind} (must be one of {expected})", f"{pointer}/type")
            return
        self._keys(obj, RICH_TEXT_CONTAINERS[kind], pointer)
        if kind == "rich_text_list":
            if obj.get("style") not in ("bullet", "ordered"):
                self.fail("must be one of ['bullet', 'ordered']", f"{pointer}/style")
            self._integer(obj, "indent", pointer, 0, 8)
            self._integer(obj, "offset", pointer, 0, None)
            for i, item in enumerate(self._children(obj, pointer, non_empty=True)):
                self.rich_text_container(item, f"{pointer}/elements/{i}", only="rich_text_section")
        else:
            for i, item in enumerate(self._children(obj, pointer, non_empty=False)):
                self.rich_text_inline(item, f"{pointer}/elements/{i}")
        if kind != "rich_text_section":
            self._integer(obj, "border", pointer, 0, 1)

    def _integer(self, obj: JSON, key: str, pointer: str, low: int, high: int | None) -> None:
        value = obj.get(key)
        if value is None:
            return
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(f"must be an integer {bounds}", f"{pointer}/{key}")

    def _string(self, obj: JSON, key: str, pointer: str, *, required: bool = True) -> None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail("missing required field", f"{pointer}/{key}")
        elif not isinstance(value, str) or not value:
            self.fail("must be more than 0 characters", f"{pointer}/{key}")

    def rich_text_inline(self, obj: Any, pointer: str) -> None:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(kind, str):
            self.fail("must be an element object with a type", pointer)
            return
        if kind not in RICH_TEXT_INLINE:
            self.fail(f"unsupported type: {kind}", f"{pointer}/type")
            return
        required, optional, styles = RICH_TEXT_INLINE[kind]
        self._keys(obj, frozenset({"type", "style", *required, *optional}), pointer)
        for key in required + optional:
            value, where = obj.get(key), f"{pointer}/{key}"
            if key == "timestamp":
                if isinstance(value, bool) or not isinstance(value, int):
                    self.fail("must be an integer (a Unix timestamp)", where)
            elif key == "range":
                if value not in ("here", "channel", "everyone"):
                    self.fail("must be one of ['here', 'channel', 'everyone']", where)
            elif key == "unsafe":
                if value is not None and not isinstance(value, bool):
                    self.fail("must be a boolean", where)
            else:
                self._string(obj, key, pointer, required=key in required)
        style = obj.get("style")
        if style is None:
            return
        if not isinstance(style, dict):
            self.fail("must be an object", f"{pointer}/style")
            return
        for key, value in style.items():
            if key not in styles:
                self.fail(f"unexpected field: {key}", f"{pointer}/style/{key}")
            elif not isinstance(value, bool):
                self.fail("must be a boolean", f"{pointer}/style/{key}")

    def element(self, element: Any, pointer: str, action_ids: set[str]) -> None:
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.fail("must be an element object with a type", pointer)
            return
        action_id = element.get("action_id")
        if action_id is None:
            element["action_id"] = secrets.token_urlsafe(4)[:5]
        elif not isinstance(action_id, str) or not 0 < len(action_id) <= 255:
            self.fail("must be between 1 and 255 characters", f"{pointer}/action_id")
        elif action_id in action_ids:
            self.fail(f"duplicate action_id: {action_id}", f"{pointer}/action_id")
        action_ids.add(str(element["action_id"]))
        kind = element["type"]
        if kind == "button":
            self.text(element.get("text"), f"{pointer}/text", limit=75, plain=True)
            if len(str(element.get("value", ""))) > 2000:
                self.fail("must be less than 2001 characters", f"{pointer}/value")
            if len(str(element.get("url", ""))) > 3000:
                self.fail("must be less than 3001 characters", f"{pointer}/url")
            if element.get("style") not in (None, "primary", "danger"):
                self.fail("must be one of ['primary', 'danger']", f"{pointer}/style")
        elif kind in (
            "static_select",
            "multi_static_select",
            "overflow",
            "radio_buttons",
            "checkboxes",
        ):
            self.options(element, pointer)
        elif kind == "plain_text_input":
            for key in ("min_length", "max_length"):
                value = element.get(key)
                if value is not None and not (isinstance(value, int) and 0 <= value <= 3000):
                    self.fail("must be an integer between 0 and 3000", f"{pointer}/{key}")
        elif kind == "datepicker":
            initial = element.get("initial_date")
            if initial is not None and not _is_date(initial):
                self.fail("must be a date in the format YYYY-MM-DD", f"{pointer}/initial_date")
        if element.get("placeholder") is not None:
            self.text(element["placeholder"], f"{pointer}/placeholder", limit=150, plain=True)

    def options(self, element: JSON, pointer: str) -> None:
        kind = element["type"]
        options = list(element.get("options") or [])
        for group in element.get("option_groups") or []:
            options.extend(group.get("options") or [])
        if not options:
            self.fail("must provide options or option_groups", f"{pointer}/options")
        if len(options) > 100:
            self.fail("no more than 100 items allowed", f"{pointer}/options")
        plain = kind in ("static_select", "multi_static_select", "overflow")
        values: set[str] = set()
        for i, option in enumerate(options):
            where = f"{pointer}/options/{i}"
            if not isinstance(option, dict):
                self.fail("must be an option object", where)
                continue
            self.text(option.get("text"), f"{where}/text", limit=75, plain=plain)
            value = option.get("value")
            if not isinstance(value, str) or not 0 < len(value) <= 150:
                self.fail("must be between 1 and 150 characters", f"{where}/value")
            elif value in values:
                self.fail(f"duplicate option value: {value}", f"{where}/value")
            else:
                values.add(value)
        initial: list[Any] = []
        if element.get("initial_option") is not None:
            initial.append(element["initial_option"])
        initial.extend(element.get("initial_options") or [])
        for option in initial:
            if not isinstance(option, dict) or option.get("value") not in values:
                self.fail("initial option must be one of the options", f"{pointer}/initial_option")


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


class FakeSlack(FakeServer):
    """Slack's Web API under /api/{method} and response URLs under /responses/{token}."""

    name = "slack"

    def __init__(
        self,
        ca: TestCA,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        team_id: str = "T0FAKE01",
        bot_user_id: str = "U0BOT0001",
        bot_id: str = "B0FAKEBOT",
        app_id: str = "A0FAKEAPP",
        team_name: str = "Fake Workspace",
        team_domain: str = "fakeworkspace",
        bot_name: str = "oauth-bot",
    ) -> None:
        super().__init__(ca)
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_name = bot_name
        self.clock: Callable[[], float] = time.monotonic
        self._users: dict[str, JSON] = {}
        self._channels: dict[str, JSON] = {}
        self._dms: dict[str, str] = {}  # user id -> D channel id
        self._messages: list[JSON] = []
        self._ephemerals: list[JSON] = []
        self._triggers: dict[str, JSON] = {}
        self._response_urls: dict[str, JSON] = {}
        self._responses: list[JSON] = []
        self._views: dict[str, JSON] = {}
        self._view_owner: dict[str, str] = {}
        self._stacks: dict[str, list[str]] = {}
        self._homes: dict[str, str] = {}
        self._opened: list[JSON] = []
        self._api_calls: list[JSON] = []
        self._app_tokens: dict[str, Callable[[], str]] = {}  # app-level token -> a new wss URL
        self._usergroups: dict[str, JSON] = {}
        self.bot_scopes: set[str] = set(BOT_SCOPES)  # a test takes one away to see missing_scope
        self._counter = itertools.count(1)
        self._ts_micros = 1_700_000_000_000_000
        self._methods: dict[str, Callable[[JSON], JSON]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }
        # Methods that take an app-level token (xapp-…), and no other: handler(token, args).
        self._app_methods: dict[str, Callable[[str, JSON], JSON]] = {
            "apps.connections.open": self._apps_connections_open,
        }
        self.add_user(bot_user_id, bot_name, real_name=bot_name, is_bot=True)
        self.add_channel(GENERAL_CHANNEL, "general")
        for verb in ("GET", "POST"):
            self.route(verb, r"/api/(?P<method>[A-Za-z0-9_.]*)", self._handle_api)
        self.route("POST", r"/responses/(?P<token>[A-Za-z0-9_-]+)", self._handle_response_url)

    def start(self) -> FakeSlack:
        super().start()
        return self

    def __enter__(self) -> FakeSlack:
        return self.start()

    def reset(self) -> None:
        """Forget every message, view, response, user group and recorded call, and give the bot
        token its scopes back; keep users and channels."""
        with self.lock:
            self._usergroups.clear()
            self.bot_scopes = set(BOT_SCOPES)
            for store in (
                self.calls,
                self._messages,
                self._ephemerals,
                self._responses,
                self._opened,
                self._api_calls,
            ):
                store.clear()
            for mapping in (
                self._triggers,
                self._response_urls,
                self._views,
                self._view_owner,
                self._stacks,
                self._homes,
            ):
                mapping.clear()

    # --- directory --------------------------------------------------------------------
    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        email: str | None = None,
        real_name: str | None = None,
        tz: str = "UTC",
        is_admin: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> JSON:
        """Seed a workspace member and their DM with the app; returns users.info's user."""
        try:
            offset = ZoneInfo(tz).utcoffset(datetime.now(UTC).replace(tzinfo=None))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        profile: JSON = {
            "real_name": real_name or name,
            "real_name_normalized": real_name or name,
            "display_name": name,
            "display_name_normalized": name,
            "team": self.team_id,
        }
        if email is not None:
            profile["email"] = email
        user: JSON = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real_name or name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "is_admin": is_admin,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "profile": profile,
        }
        with self.lock:
            self._users[user_id] = user
            dm = "D" + hashlib.sha1(f"{self.team_id}:{user_id}".encode()).hexdigest()[:10].upper()
            self._dms[user_id] = dm
            self._channels[dm] = {
                "id": dm,
                "name": "directmessage",
                "is_im": True,
                "user": user_id,
                "members": [user_id, self.bot_user_id],
            }
        return copy.deepcopy(user)

    def add_channel(
        self,
        channel_id: str,
        name: str,
        members: Iterable[str] | None = None,
        *,
        bot_member: bool = True,
        is_private: bool = False,
    ) -> None:
        """A channel; `members=None` means every workspace member is in it."""
        with self.lock:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "is_im": False,
                "is_private": is_private,
                "members": None if members is None else list(members),
                "bot_member": bot_member,
            }

    def add_usergroup(
        self, usergroup_id: str, handle: str, users: Iterable[str], *, disabled: bool = False
    ) -> None:
        """A user group (its members in the order given); calling it again replaces the members."""
        with self.lock:
            self._usergroups[usergroup_id] = {
                "id": usergroup_id,
                "handle": handle,
                "users": list(users),
                "date_delete": 1 if disabled else 0,
            }

    def register_app_token(self, token: str, issue_url: Callable[[], str]) -> None:
        """Accept `token` (xapp-…) for apps.connections.open, which answers with `issue_url()`:
        a fresh one-time wss:// URL of the Socket Mode fake (see fakes/socket_mode.py)."""
        if not token.startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp-")
        with self.lock:
            self._app_tokens[token] = issue_url

    def user(self, user_id: str) -> JSON | None:
        with self.lock:
            found = self._users.get(user_id)
            return copy.deepcopy(found) if found else None

    def channel(self, channel_id: str) -> JSON | None:
        with self.lock:
            found = self._channels.get(channel_id)
            return copy.deepcopy(found) if found else None

    def dm_channel(self, user_id: str) -> str:
        """The app's DM channel with a seeded user."""
        with self.lock:
            if user_id not in self._dms:
                raise KeyError(f"user {user_id} is not in the fake Slack directory (add_user)")
            return self._dms[user_id]

    def can_see(self, user_id: str, channel_id: str) -> bool:
        """Whether a member can read `channel_id` (is in it)."""
        with self.lock:
            channel = self._channels.get(channel_id)
            if channel is None or user_id not in self._users:
                return False
            members = channel["members"]
            return members is None or user_id in members

    # --- ids and tokens the driver hands to the app -------------------------------------
    def _next_ts(self) -> str:
        self._ts_micros += 100
        return format_ts(self._ts_micros)

    def issue_trigger(self, user_id: str) -> str:
        """A fresh trigger_id for `user_id`, good for one views.open/push within 3 s."""
        with self.lock:
            n = next(self._counter)
            team_num = int(hashlib.sha1(self.team_id.encode()).hexdigest()[:8], 16)
            trigger = f"{7_000_000_000_000 + n}.{team_num}.{secrets.token_hex(16)}"
            self._triggers[trigger] = {"user": user_id, "at": self.clock(), "used": False}
            return trigger

    def issue_response_url(
        self,
        user_id: str,
        *,
        channel_id: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """A response_url (5 uses in 30 minutes), optionally bound to a message to replace."""
        with self.lock:
            token = secrets.token_urlsafe(18)
            self._response_urls[token] = {
                "user": user_id,
                "channel": channel_id,
                "message_ts": message_ts,
                "ephemeral": ephemeral,
                "at": self.clock(),
                "uses": 0,
            }
        return f"{self.url}/responses/{token}"

    def rate_limit(self, method: str, *, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls of an API method with 429 + Retry-After."""
        self.inject(
            "*",
            rf"^/api/{re.escape(method)}$",
            status=429,
            times=times,
            headers={"Retry-After": str(retry_after)},
            body={"ok": False, "error": "ratelimited"},
        )

    # --- test queries (deep copies) -----------------------------------------------------
    def messages(self, channel: str | None = None, *, include_deleted: bool = False) -> list[JSON]:
        """Current state of every message (oldest first), each with its `history`."""
        with self.lock:
            if channel is not None and channel.startswith(("U", "W")) and channel in self._dms:
                channel = self._dms[channel]
            return [
                copy.deepcopy(m)
                for m in self._messages
                if (channel is None or m["channel"] == channel) and (include_deleted or not m.get("deleted"))
            ]

    def message(self, channel: str, ts: str) -> JSON | None:
        with self.lock:
            found = self._find_message(channel, ts)
            return copy.deepcopy(found) if found else None

    def dm_messages(self, user_id: str) -> list[JSON]:
        return self.messages(self.dm_channel(user_id))

    def ephemerals(self, user_id: str | None = None) -> list[JSON]:
        with self.lock:
            return [copy.deepcopy(e) for e in self._ephemerals if user_id is None or e["user"] == user_id]

    def opened_views(self, user_id: str | None = None) -> list[JSON]:
        """Each views.open/views.push: {user, trigger_id, method, view_id, view (as opened)}."""
        with self.lock:
            return [copy.deepcopy(o) for o in self._opened if user_id is None or o["user"] == user_id]

    def view(self, view_id: str) -> JSON | None:
        """The current version of a view."""
        with self.lock:
            found = self._views.get(view_id)
            return copy.deepcopy(found) if found else None

    def modal_stack(self, user_id: str) -> list[JSON]:
        """The modals open for a user, root first (views.update applied)."""
        with self.lock:
            return [copy.deepcopy(self._views[v]) for v in self._stacks.get(user_id, [])]

    def current_modal(self, user_id: str) -> JSON | None:
        stack = self.modal_stack(user_id)
        return stack[-1] if stack else None

    def home_view(self, user_id: str) -> JSON | None:
        with self.lock:
            view_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def responses(self, user_id: str | None = None) -> list[JSON]:
        """Bodies posted to response URLs: {user, channel, message_ts, body, status}."""
        with self.lock:
            return [copy.deepcopy(r) for r in self._responses if user_id is None or r["user"] == user_id]

    def api_calls(self, method: str | None = None) -> list[JSON]:
        """Recorded Web API calls: {method, http_method, args, ok, error}."""
        with self.lock:
            return [copy.deepcopy(c) for c in self._api_calls if method is None or c["method"] == method]

    def all_text(self) -> str:
        """Everything clients sent (targets, raw bodies, decoded values), for canary searches."""
        with self.lock:
            calls = list(self.calls)
        parts: list[str] = []
        for call in calls:
            parts.append(call.path)
            parts.extend(iter_strings(call.query))
            parts.append(call.body.decode("utf-8", "replace"))
            try:
                parsed = parse_body(call)
            except SlackError:
                continue
            for value in iter_strings(parsed):
                parts.append(value)
                if value[:1] in "[{":
                    with contextlib.suppress(ValueError):
                        parts.extend(iter_strings(json.loads(value)))
        return "\n".join(parts)

    # --- HTTP entry points ----------------------------------------------------------------
    def _handle_api(self, request: Request, match: re.Match[str]) -> Response:
        method = match["method"]
        record: JSON = {
            "method": method,
            "http_method": request.method,
            "args": {},
            "at": self.clock(),
        }
        try:
            args = parse_body(request)
            record["args"] = self._decoded_args(args)
            handler = self._methods.get(method)
            app_handler = self._app_methods.get(method)
            if handler is None and app_handler is None:
                raise SlackError("unknown_method")
            token = (
                "" if method == "api.test" else self._authenticate(request, args, app_level=bool(app_handler))
            )
            needed = METHOD_SCOPES.get(method)
            if needed is not None and needed not in self.bot_scopes:
                raise SlackError("missing_scope", needed=needed, provided=",".join(sorted(self.bot_scopes)))
            with self.lock:
                if app_handler is not None:
                    result = app_handler(token, args)
                else:
                    assert handler is not None
                    result = handler(args)
            body: JSON = {"ok": True, **result}
        except SlackError as exc:
            body = exc.body()
        record["ok"] = body["ok"]
        record["error"] = body.get("error")
        with self.lock:
            self._api_calls.append(record)
        return Response(200, body)

    def _authenticate(self, request: Request, args: JSON, *, app_level: bool) -> str:
        """The request's token, if it is one this method takes (its type checked as Slack does)."""
        header = request.headers.get("Authorization") or ""
        token: Any = None
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
        elif "token" in args:
            token = args["token"]
        if not token:
            raise SlackError("not_authed")
        with self.lock:
            is_app_token = token in self._app_tokens
        accepted = is_app_token if app_level else token == self.bot_token
        if accepted:
            return str(token)
        if is_app_token or token == self.bot_token:
            raise SlackError("not_allowed_token_type")  # a real token, of the other type
        raise SlackError("invalid_auth")

    @staticmethod
    def _decoded_args(args: JSON) -> JSON:
        decoded = dict(args)
        for key in ("blocks", "view", "attachments", "metadata"):
            value = decoded.get(key)
            if isinstance(value, str) and value[:1] in "[{":
                with contextlib.suppress(ValueError):
                    decoded[key] = json.loads(value)
        return decoded

    def _handle_response_url(self, request: Request, match: re.Match[str]) -> Response:
        token = match["token"]
        with self.lock:
            entry = self._response_urls.get(token)
            record: JSON = {
                "user": entry["user"] if entry else None,
                "channel": entry["channel"] if entry else None,
                "message_ts": entry["message_ts"] if entry else None,
                "body": None,
                "status": 200,
            }
            self._responses.append(record)
            status, text = self._use_response_url(entry, request)
            record["status"] = status
            if status == 200:
                record["body"] = json.loads(request.body)
            elif request.body:
                record["raw"] = request.body.decode("utf-8", "replace")
        return Response(status, text)

    def _use_response_url(self, entry: JSON | None, request: Request) -> tuple[int, str]:
        if entry is None:
            return 404, "invalid_token"
        if self.clock() - entry["at"] > RESPONSE_URL_TTL:
            return 404, "expired_url"
        if entry["uses"] >= RESPONSE_URL_USES:
            return 404, "used_url"
        entry["uses"] += 1
        try:
            body = json.loads(request.body)
        except ValueError:
            return 400, "invalid_payload"
        if not isinstance(body, dict):
            return 400, "invalid_payload"
        return self.respond(
            entry["user"],
            entry["channel"],
            body,
            message_ts=entry["message_ts"],
            ephemeral=entry["ephemeral"],
            via="response_url",
        )

    def respond(
        self,
        user_id: str,
        channel_id: str | None,
        body: JSON,
        *,
        message_ts: str | None = None,
        ephemeral: bool = False,
        via: str = "ack",
    ) -> tuple[int, str]:
        """Apply a response_url / slash-command-ack body as Slack shows it; (status, text)."""
        with self.lock:
            original = self._find_message(channel_id, message_ts) if message_ts else None
            if body.get("delete_original"):
                if original is not None and not ephemeral:
                    original["deleted"] = True
                elif ephemeral:
                    self._ephemerals = [e for e in self._ephemerals if e["message_ts"] != message_ts]
                return 200, "ok"
            text = body.get("text")
            blocks = body.get("blocks")
            if not text and not blocks:
                return 400, "no_text"
            if blocks is not None:
                checker = _BlockChecker("/blocks")
                blocks = checker.blocks(blocks, limit=MESSAGE_BLOCK_LIMIT)
                if checker.errors:
                    return 400, "invalid_blocks"
            if body.get("replace_original") and message_ts:
                if ephemeral:
                    for eph in self._ephemerals:
                        if eph["message_ts"] == message_ts:
                            eph.update(text=text or "", blocks=blocks or [])
                elif original is not None:
                    self._edit(original, text, blocks)
                return 200, "ok"
            if channel_id is None:
                return 404, "channel_not_found"
            if body.get("response_type") == "in_channel":
                self._store_message(channel_id, text or "", blocks or [], body.get("thread_ts"))
            else:
                self._ephemerals.append(
                    {
                        "channel": channel_id,
                        "user": user_id,
                        "message_ts": self._next_ts(),
                        "text": text or "",
                        "blocks": blocks or [],
                        "via": via,
                    }
                )
            return 200, "ok"

    # --- argument helpers -------------------------------------------------------------------
    @staticmethod
    def _arg(args: JSON, name: str, *, missing: str = "invalid_arguments") -> str:
        value = args.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise SlackError(missing, [f"[ERROR] missing required field: {name}"])
        return value

    @staticmethod
    def _json_arg(args: JSON, name: str, *, error: str = "invalid_arguments") -> Any:
        value = args.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise SlackError(error, [f"[ERROR] invalid JSON in {name}"]) from exc
        return value

    def _resolve_channel(self, channel: str) -> JSON:
        if channel.startswith("#"):
            for found in self._channels.values():
                if found["name"] == channel[1:] and not found["is_im"]:
                    return found
            raise SlackError("channel_not_found")
        if channel.startswith(("U", "W")) and channel in self._users:
            return self._channels[self._dms[channel]]
        direct = self._channels.get(channel)
        if direct is None:
            raise SlackError("channel_not_found")
        return direct

    def _message_channel(self, args: JSON) -> JSON:
        channel = self._channels.get(self._arg(args, "channel", missing="channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _find_message(self, channel: str | None, ts: str | None) -> JSON | None:
        for message in self._messages:
            if message["channel"] == channel and message["ts"] == ts and not message.get("deleted"):
                return message
        return None

    def _message_content(self, args: JSON, *, required: bool) -> tuple[str | None, list[JSON] | None]:
        text = args.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks = self._json_arg(args, "blocks", error="invalid_blocks_format")
        if blocks is not None:
            checker = _BlockChecker("/blocks")
            blocks = checker.blocks(blocks, limit=MESSAGE_BLOCK_LIMIT)
            if checker.errors:
                raise SlackError("invalid_blocks", checker.errors)
        if required and not text and not blocks and not args.get("attachments"):
            raise SlackError("no_text")
        if text is not None and len(text) > MESSAGE_TEXT_LIMIT:
            raise SlackError("msg_too_long")
        return text, blocks

    def _store_message(self, channel: str, text: str, blocks: list[JSON], thread_ts: str | None) -> JSON:
        message: JSON = {
            "type": "message",
            "channel": channel,
            "ts": self._next_ts(),
            "text": text,
            "blocks": blocks,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "history": [],
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        self._messages.append(message)
        return message

    def _edit(self, message: JSON, text: str | None, blocks: list[JSON] | None) -> None:
        message["history"].append(
            {"text": message["text"], "blocks": message["blocks"], "edited_ts": self._next_ts()}
        )
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        message["edited"] = {"user": self.bot_user_id, "ts": message["history"][-1]["edited_ts"]}

    @staticmethod
    def public_message(message: JSON) -> JSON:
        """A stored message as Slack's API shows it (no channel/history bookkeeping)."""
        return {k: copy.deepcopy(v) for k, v in message.items() if k not in ("channel", "history", "deleted")}

    # --- Web API methods ------------------------------------------------------------------
    def _api_test(self, args: JSON) -> JSON:
        return {"args": {k: v for k, v in args.items() if k != "token"}}

    def _auth_test(self, args: JSON) -> JSON:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, args: JSON) -> JSON:
        user = self._users.get(self._arg(args, "user", missing="user_not_found"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _usergroups_users_list(self, args: JSON) -> JSON:
        """A user group's member IDs; a disabled group only with include_disabled."""
        group = self._usergroups.get(self._arg(args, "usergroup", missing="invalid_arguments"))
        if group is None:
            raise SlackError("no_such_subteam")
        include_disabled = str(args.get("include_disabled", "")).lower() in ("1", "true")
        if group["date_delete"] and not include_disabled:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _users_lookup_by_email(self, args: JSON) -> JSON:
        email = self._arg(args, "email", missing="users_not_found").lower()
        for user in self._users.values():
            if str(user["profile"].get("email", "")).lower() == email and not user["deleted"]:
                return {"user": copy.deepcopy(user)}
        raise SlackError("users_not_found")

    def _conversations_open(self, args: JSON) -> JSON:
        if args.get("channel"):
            channel = self._channels.get(str(args["channel"]))
            if channel is None or not channel["is_im"]:
                raise SlackError("channel_not_found")
            return {"channel": {"id": channel["id"]}, "no_op": True, "already_open": True}
        raw = args.get("users")
        users = raw if isinstance(raw, list) else str(raw or "").split(",")
        users = [u.strip() for u in users if u and u.strip()]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("fake_not_supported", ["[ERROR] the fake opens 1:1 DMs only"])
        if users[0] not in self._users:
            raise SlackError("user_not_found")
        return {"channel": {"id": self._dms[users[0]]}, "no_op": True, "already_open": True}

    def _conversations_info(self, args: JSON) -> JSON:
        channel = self._channels.get(self._arg(args, "channel", missing="channel_not_found"))
        if channel is None:
            raise SlackError("channel_not_found")
        info = {
            "id": channel["id"],
            "name": channel["name"],
            "is_im": channel["is_im"],
            "is_channel": not channel["is_im"],
            "is_private": bool(channel.get("is_private")),
        }
        if channel["is_im"]:
            info["user"] = channel["user"]
        return {"channel": info}

    def _chat_post_message(self, args: JSON) -> JSON:
        channel = self._resolve_channel(self._arg(args, "channel", missing="channel_not_found"))
        if not channel["is_im"] and not channel.get("bot_member", True):
            raise SlackError("not_in_channel")
        text, blocks = self._message_content(args, required=True)
        thread_ts = args.get("thread_ts")
        message = self._store_message(
            channel["id"], text or "", blocks or [], str(thread_ts) if thread_ts else None
        )
        return {
            "channel": channel["id"],
            "ts": message["ts"],
            "message": self.public_message(message),
        }

    def _chat_update(self, args: JSON) -> JSON:
        channel = self._message_channel(args)
        ts = self._arg(args, "ts", missing="message_not_found")
        message = self._find_message(channel["id"], ts)
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = self._message_content(args, required=False)
        if text is None and blocks is None:
            raise SlackError("no_text")
        self._edit(message, text, blocks)
        return {
            "channel": channel["id"],
            "ts": ts,
            "text": message["text"],
            "message": self.public_message(message),
        }

    def _chat_post_ephemeral(self, args: JSON) -> JSON:
        channel = self._resolve_channel(self._arg(args, "channel", missing="channel_not_found"))
        user = self._arg(args, "user", missing="user_not_found")
        if user not in self._users:
            raise SlackError("user_not_found")
        if not self.can_see(user, channel["id"]):
            raise SlackError("user_not_in_channel")
        text, blocks = self._message_content(args, required=True)
        message_ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel["id"],
                "user": user,
                "message_ts": message_ts,
                "text": text or "",
                "blocks": blocks or [],
                "via": "chat.postEphemeral",
            }
        )
        return {"message_ts": message_ts}

    def _chat_delete(self, args: JSON) -> JSON:
        channel = self._message_channel(args)
        ts = self._arg(args, "ts", missing="message_not_found")
        message = self._find_message(channel["id"], ts)
        if message is None:
            raise SlackError("message_not_found")
        message["deleted"] = True
        return {"channel": channel["id"], "ts": ts}

    def _chat_get_permalink(self, args: JSON) -> JSON:
        channel = self._message_channel(args)
        ts = self._arg(args, "message_ts", missing="message_not_found")
        if self._find_message(channel["id"], ts) is None:
            raise SlackError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel['id']}/p" + ts.replace(".", "")
        return {"channel": channel["id"], "permalink": link}

    # --- views --------------------------------------------------------------------------------
    def _check_view(self, raw: Any, *, kind: str) -> JSON:
        if not isinstance(raw, dict):
            raise SlackError("invalid_arguments", ["[ERROR] missing required field: view"])
        checker = _BlockChecker("/view/blocks")
        errors: list[str] = []
        if raw.get("type") != kind:
            errors.append(_pointer_error(f"must be {kind}", "/view/type"))
        head = _BlockChecker("/view")
        if kind == "modal":
            head.text(raw.get("title"), "/title", limit=24, plain=True)
            head.text(raw.get("submit"), "/submit", limit=24, plain=True, required=False)
            head.text(raw.get("close"), "/close", limit=24, plain=True, required=False)
        errors.extend(head.errors)
        for key, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
            value = raw.get(key)
            if value is not None and not isinstance(value, str):
                errors.append(_pointer_error("must be a string", f"/view/{key}"))
            elif value is not None and len(value) > limit:
                errors.append(_pointer_error(f"must be less than {limit + 1} characters", f"/view/{key}"))
        if "blocks" not in raw:
            errors.append(_pointer_error("missing required field", "/view/blocks"))
        blocks = checker.blocks(raw.get("blocks", []), limit=VIEW_BLOCK_LIMIT)
        has_input = any(b["type"] == "input" for b in blocks)
        if kind == "modal" and has_input and raw.get("submit") is None:
            errors.append(_pointer_error("submit is required when an input block is present", "/view/submit"))
        errors.extend(checker.errors)
        for key in raw:
            if key not in (
                "type",
                "title",
                "submit",
                "close",
                "blocks",
                "private_metadata",
                "callback_id",
                "external_id",
                "clear_on_close",
                "notify_on_close",
                "submit_disabled",
            ):
                errors.append(_pointer_error(f"unexpected field: {key}", f"/view/{key}"))
        if errors:
            raise SlackError("invalid_arguments", errors)
        view = copy.deepcopy(raw)
        view["blocks"] = blocks
        return view

    def _make_view(self, spec: JSON, *, view_id: str | None, user_id: str) -> JSON:
        external_id = spec.get("external_id") or ""
        if external_id:
            for other_id, other in self._views.items():
                if other_id != view_id and other.get("external_id") == external_id:
                    raise SlackError("duplicate_external_id")
        new_id = view_id or f"V0F{next(self._counter):08d}"
        view: JSON = {
            "id": new_id,
            "team_id": self.team_id,
            "type": spec["type"],
            "blocks": spec["blocks"],
            "private_metadata": spec.get("private_metadata") or "",
            "callback_id": spec.get("callback_id") or "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "close": spec.get("close"),
            "submit": spec.get("submit"),
            "previous_view_id": None,
            "root_view_id": new_id,
            "app_id": self.app_id,
            "external_id": external_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        if spec["type"] == "modal":
            view["title"] = spec["title"]
            view["submit_disabled"] = bool(spec.get("submit_disabled", False))
        self._views[new_id] = view
        self._view_owner[new_id] = user_id
        return view

    def _check_trigger(self, args: JSON) -> JSON:
        trigger = self._triggers.get(self._arg(args, "trigger_id"))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if self.clock() - trigger["at"] > TRIGGER_TTL:
            raise SlackError("expired_trigger_id")
        if trigger["used"]:
            raise SlackError("exchanged_trigger_id")
        return trigger

    def _record_open(self, method: str, user: str, args: JSON, view: JSON) -> None:
        self._opened.append(
            {
                "method": method,
                "user": user,
                "trigger_id": args["trigger_id"],
                "view_id": view["id"],
                "view": copy.deepcopy(view),
            }
        )

    def _views_open(self, args: JSON) -> JSON:
        trigger = self._check_trigger(args)
        spec = self._check_view(self._json_arg(args, "view"), kind="modal")
        user = str(trigger["user"])
        view = self._make_view(spec, view_id=None, user_id=user)
        trigger["used"] = True
        self._stacks[user] = [view["id"]]
        self._record_open("views.open", user, args, view)
        return {"view": copy.deepcopy(view)}

    def _views_push(self, args: JSON) -> JSON:
        trigger = self._check_trigger(args)
        spec = self._check_view(self._json_arg(args, "view"), kind="modal")
        user = str(trigger["user"])
        stack = self._stacks.get(user) or []
        if not stack:
            raise SlackError("not_found", ["[ERROR] no open view to push onto"])
        if len(stack) >= MODAL_STACK_LIMIT:
            raise SlackError("push_limit_reached")
        view = self._make_view(spec, view_id=None, user_id=user)
        trigger["used"] = True
        view["previous_view_id"] = stack[-1]
        view["root_view_id"] = stack[0]
        stack.append(view["id"])
        self._record_open("views.push", user, args, view)
        return {"view": copy.deepcopy(view)}

    def _views_update(self, args: JSON) -> JSON:
        view_id = args.get("view_id")
        external_id = args.get("external_id")
        if not view_id and not external_id:
            raise SlackError("invalid_arguments", ["[ERROR] view_id or external_id required"])
        current = None
        if view_id:
            current = self._views.get(str(view_id))
        else:
            current = next((v for v in self._views.values() if v.get("external_id") == external_id), None)
        if current is None:
            raise SlackError("not_found")
        owner = self._view_owner[current["id"]]
        if current["type"] == "modal" and current["id"] not in self._stacks.get(owner, []):
            raise SlackError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        spec = self._check_view(self._json_arg(args, "view"), kind=current["type"])
        return {"view": copy.deepcopy(self._replace_view(current, spec))}

    def _replace_view(self, current: JSON, spec: JSON) -> JSON:
        view = self._make_view(spec, view_id=current["id"], user_id=self._view_owner[current["id"]])
        view["previous_view_id"] = current["previous_view_id"]
        view["root_view_id"] = current["root_view_id"]
        return view

    def _apps_connections_open(self, token: str, args: JSON) -> JSON:
        """A one-time wss:// URL for a Socket Mode connection (the app-level token's app)."""
        return {"url": self._app_tokens[token]()}

    def _views_publish(self, args: JSON) -> JSON:
        user = self._arg(args, "user_id")
        if user not in self._users:
            raise SlackError("user_not_found")
        spec = self._check_view(self._json_arg(args, "view"), kind="home")
        current_id = self._homes.get(user)
        if current_id and args.get("hash") and args["hash"] != self._views[current_id]["hash"]:
            raise SlackError("hash_conflict")
        view = self._make_view(spec, view_id=current_id, user_id=user)
        self._homes[user] = view["id"]
        return {"view": copy.deepcopy(view)}

    # --- what the Slack client does after a modal interaction -----------------------------
    def apply_view_response(self, user_id: str, view_id: str, status: int, body: bytes) -> None:
        """Update the user's modal stack as Slack does after a view_submission answer."""
        with self.lock:
            stack = self._stacks.get(user_id, [])
            if status != 200 or view_id not in stack:
                return  # Slack shows a connection error and keeps the modal
            answer: Any = json.loads(body) if body.strip() else {}
            action = answer.get("response_action") if isinstance(answer, dict) else None
            if action is None:
                stack.remove(view_id)
            elif action == "clear":
                stack.clear()
            elif action == "update":
                spec = self._check_view(answer.get("view"), kind="modal")
                self._replace_view(self._views[view_id], spec)
            elif action == "push":
                if len(stack) >= MODAL_STACK_LIMIT:
                    raise SlackError("push_limit_reached")
                spec = self._check_view(answer.get("view"), kind="modal")
                view = self._make_view(spec, view_id=None, user_id=user_id)
                view["previous_view_id"] = stack[-1]
                view["root_view_id"] = stack[0]
                stack.append(view["id"])
            elif action != "errors":
                raise SlackError("invalid_arguments", [f"unknown response_action {action!r}"])

    def close_view(self, user_id: str, view_id: str) -> None:
        """The user closed the top modal (back to the previous one, if any)."""
        with self.lock:
            stack = self._stacks.get(user_id, [])
            if view_id in stack:
                del stack[stack.index(view_id) :]
