"""What the Slack client builds when a person acts: slash-command forms, interaction payloads
(block_actions, view_submission, view_closed) and event callbacks, shaped as Slack sends them.

`SlackPayloads` is shared by the two ways Slack delivers them to an app: `SlackDriver`
(signed HTTP posts to /slack/events) and `SocketModeDriver` (envelopes over a Socket Mode
connection). It reads the `FakeSlack` for what a person can see (messages, modals, the Home
tab), fills modals by their labels, finds buttons by their text, and makes the checks the
Slack client makes before it lets a person submit.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from fakes.slack import GENERAL_CHANNEL, INPUT_ELEMENTS, JSON, FakeSlack

VERIFICATION_TOKEN = "fake-verification-token"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# element type -> (state key, initial key, kind); kind: text | option | options | plain | list
_STATE: dict[str, tuple[str, str, str]] = {
    "plain_text_input": ("value", "initial_value", "text"),
    "email_text_input": ("value", "initial_value", "text"),
    "url_text_input": ("value", "initial_value", "text"),
    "number_input": ("value", "initial_value", "text"),
    "rich_text_input": ("rich_text_value", "initial_value", "plain"),
    "static_select": ("selected_option", "initial_option", "option"),
    "external_select": ("selected_option", "initial_option", "option"),
    "radio_buttons": ("selected_option", "initial_option", "option"),
    "multi_static_select": ("selected_options", "initial_options", "options"),
    "multi_external_select": ("selected_options", "initial_options", "options"),
    "checkboxes": ("selected_options", "initial_options", "options"),
    "users_select": ("selected_user", "initial_user", "plain"),
    "multi_users_select": ("selected_users", "initial_users", "list"),
    "conversations_select": ("selected_conversation", "initial_conversation", "plain"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations", "list"),
    "channels_select": ("selected_channel", "initial_channel", "plain"),
    "multi_channels_select": ("selected_channels", "initial_channels", "list"),
    "datepicker": ("selected_date", "initial_date", "plain"),
    "timepicker": ("selected_time", "initial_time", "plain"),
    "datetimepicker": ("selected_date_time", "initial_date_time", "plain"),
    "file_input": ("files", "initial_files", "list"),
}


def _text(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _options(element: JSON) -> list[JSON]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _match_option(element: JSON, wanted: Any, where: str) -> JSON:
    if isinstance(wanted, dict):
        return copy.deepcopy(wanted)
    options = _options(element)
    for key in (lambda o: _text(o.get("text")), lambda o: o.get("value")):
        for option in options:
            if key(option) == wanted:
                return copy.deepcopy(option)
    texts = [_text(o.get("text")) for o in options]
    raise KeyError(f"{where}: no option {wanted!r}; options are {texts}")


def _elements(block: JSON) -> list[JSON]:
    if block.get("type") == "input" and isinstance(block.get("element"), dict):
        return [block["element"]]
    if block.get("type") == "actions":
        return [e for e in block.get("elements") or [] if isinstance(e, dict)]
    if block.get("type") == "section" and isinstance(block.get("accessory"), dict):
        return [block["accessory"]]
    return []


def _initial_state(element: JSON) -> JSON:
    kind = str(element.get("type"))
    state_key, initial_key, shape = _STATE[kind]
    default: Any = [] if shape in ("options", "list") else None
    return {"type": kind, state_key: copy.deepcopy(element.get(initial_key, default))}


def _filled_state(element: JSON, value: Any, where: str) -> JSON:
    kind = str(element.get("type"))
    state_key, _, shape = _STATE[kind]
    entry: JSON = {"type": kind}
    if value is None:
        entry[state_key] = [] if shape in ("options", "list") else None
    elif shape == "text":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{where}: {kind} takes a string, got {value!r}")
        entry[state_key] = str(value)
    elif shape == "option":
        entry[state_key] = _match_option(element, value, where)
    elif shape == "options":
        items = [value] if isinstance(value, str | dict) else list(value)
        entry[state_key] = [_match_option(element, item, where) for item in items]
    elif shape == "list":
        entry[state_key] = [value] if isinstance(value, str) else list(value)
    elif kind == "datepicker":
        entry[state_key] = value.isoformat() if isinstance(value, date) else str(value)
    else:
        entry[state_key] = value
    return entry


def _client_side_check(block: JSON, entry: JSON, label: str) -> None:
    """The checks the Slack client makes before it lets a person submit."""
    element = block["element"]
    kind = entry["type"]
    state_key = _STATE[kind][0]
    value = entry[state_key]
    if value in (None, "", []):
        if not block.get("optional", False):
            raise ValueError(f"{label!r} is required: Slack will not submit it empty")
        return
    if kind == "plain_text_input":
        if len(value) > int(element.get("max_length", 3000)):
            raise ValueError(f"{label!r}: longer than max_length")
        if len(value) < int(element.get("min_length", 0)):
            raise ValueError(f"{label!r}: shorter than min_length")
    elif kind == "email_text_input" and not EMAIL_RE.match(value):
        raise ValueError(f"{label!r}: Slack only accepts an email address here")
    elif kind == "url_text_input":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{label!r}: Slack only accepts a URL here")
    elif kind == "number_input":
        _check_number(element, value, label)
    elif kind == "datepicker":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{label!r}: a date is YYYY-MM-DD, got {value!r}") from None
    elif isinstance(value, list) and len(value) > int(element.get("max_selected_items") or 100):
        raise ValueError(f"{label!r}: more than max_selected_items")


def _check_number(element: JSON, value: str, label: str) -> None:
    pattern = r"-?\d+(\.\d+)?" if element.get("is_decimal_allowed") else r"-?\d+"
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{label!r}: {value!r} is not an accepted number")
    number = float(value)
    if element.get("min_value") is not None and number < float(element["min_value"]):
        raise ValueError(f"{label!r}: below min_value")
    if element.get("max_value") is not None and number > float(element["max_value"]):
        raise ValueError(f"{label!r}: above max_value")


class SlackPayloads:
    """Builds what Slack sends an app when a person acts in the fake workspace.

    Subclasses deliver the payloads (over HTTP or a Socket Mode connection) and apply the
    app's answer to the `FakeSlack` as the Slack client would.
    """

    def __init__(
        self, *, slack: FakeSlack, team_id: str | None = None, api_app_id: str = "A0FAKEAPP"
    ) -> None:
        self.slack = slack
        self.team_id = team_id or slack.team_id
        self.api_app_id = api_app_id

    # --- who is acting ------------------------------------------------------------------
    def _member(self, user_id: str) -> JSON:
        user = self.slack.user(user_id)
        if user is None:
            raise KeyError(f"user {user_id} is not in the fake Slack directory: add_user() first")
        return user

    def _user_obj(self, user_id: str) -> JSON:
        name = self._member(user_id)["name"]
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _team_obj(self) -> JSON:
        return {"id": self.team_id, "domain": self.slack.team_domain}

    def _channel_obj(self, channel_id: str) -> JSON:
        channel = self.slack.channel(channel_id)
        return {"id": channel_id, "name": channel["name"] if channel else "unknown"}

    def _base(self, kind: str, user_id: str) -> JSON:
        return {
            "type": kind,
            "user": self._user_obj(user_id),
            "api_app_id": self.api_app_id,
            "token": VERIFICATION_TOKEN,
            "team": self._team_obj(),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    # --- slash commands -----------------------------------------------------------------
    def command_form(
        self, user_id: str, command: str, text: str = "", *, channel_id: str = GENERAL_CHANNEL
    ) -> dict[str, str]:
        """The fields Slack sends for `/command text` typed by `user_id` in `channel_id` (all
        strings: form-encoded over HTTP, a JSON object of the same strings over a socket)."""
        user = self._member(user_id)
        if not self.slack.can_see(user_id, channel_id):
            raise LookupError(f"{user_id} cannot type in {channel_id}: not a member / unknown")
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": self.slack.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_obj(channel_id)["name"],
            "user_id": user_id,
            "user_name": user["name"],
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": self.slack.issue_response_url(user_id, channel_id=channel_id),
            "trigger_id": self.slack.issue_trigger(user_id),
        }

    # --- modals ---------------------------------------------------------------------------
    def modal_for(self, user_id: str) -> JSON:
        """The modal on top of the user's stack (views.open/push/update applied)."""
        view = self.slack.current_modal(user_id)
        if view is None:
            raise LookupError(f"no modal is open for {user_id}")
        return view

    def _live_view(self, user_id: str, view: JSON) -> JSON:
        view_id = view.get("id")
        current = self.slack.view(str(view_id)) if view_id else None
        if current is None:
            built = copy.deepcopy(view)  # a hand-built view the fake never saw
            built.setdefault("id", f"V0HAND{secrets.token_hex(3).upper()}")
            built.setdefault("hash", f"{int(time.time())}.{secrets.token_hex(4)}")
            built.setdefault("team_id", self.team_id)
            built.setdefault("app_id", self.api_app_id)
            return built
        open_ids = [v["id"] for v in self.slack.modal_stack(user_id)]
        home = self.slack.home_view(user_id)
        if current["id"] not in open_ids and not (home and home["id"] == current["id"]):
            raise LookupError(f"view {view_id} is not open for {user_id}")
        return current

    def state_values(
        self, blocks: list[JSON], values: dict[str, object] | None = None, *, validate: bool
    ) -> JSON:
        """view.state.values for `blocks`, with input blocks filled by label text."""
        values = dict(values or {})
        labels = [_text(b.get("label")) for b in blocks if b.get("type") == "input"]
        missing = [label for label in values if label not in labels]
        if missing:
            raise KeyError(f"no input labelled {missing}; the view's labels are {labels}")
        state: JSON = {}
        for index, block in enumerate(blocks):
            label = _text(block.get("label")) if block.get("type") == "input" else None
            for position, element in enumerate(_elements(block)):
                if element.get("type") not in INPUT_ELEMENTS or element["type"] not in _STATE:
                    continue
                if label is not None and label in values:
                    entry = _filled_state(element, values[label], repr(label))
                else:
                    entry = _initial_state(element)
                if validate and label is not None:
                    _client_side_check(block, entry, label)
                block_id = block.get("block_id") or f"block-{index}"
                action_id = element.get("action_id") or f"action-{position}"
                state.setdefault(block_id, {})[action_id] = entry
        return state

    def submission(
        self, user_id: str, view: JSON, values: dict[str, object], *, validate: bool = True
    ) -> tuple[JSON, JSON]:
        """The open view and the view_submission payload Slack sends when the user submits it
        with inputs filled by label (see `SlackDriver.submit` for the value forms). `validate`
        makes the Slack client's own checks (required, email, URL, number) first."""
        live = self._live_view(user_id, view)
        live["state"] = {"values": self.state_values(live["blocks"], values, validate=validate)}
        payload = self._base("view_submission", user_id)
        payload.update(
            trigger_id=self.slack.issue_trigger(user_id),
            view=live,
            response_urls=[],
        )
        return live, payload

    def closing(self, user_id: str, view: JSON) -> tuple[JSON, JSON | None]:
        """The open view the user closes and the view_closed payload Slack sends for it, which
        is None unless the view was opened with notify_on_close."""
        live = self._live_view(user_id, view)
        if not live.get("notify_on_close"):
            return live, None
        live["state"] = {"values": self.state_values(live["blocks"], validate=False)}
        payload = self._base("view_closed", user_id)
        payload.update(view=live, is_cleared=False)
        return live, payload

    # --- block actions ---------------------------------------------------------------------
    def _surfaces(
        self, user_id: str, message: JSON | None, channel: str | None, view: JSON | None
    ) -> list[JSON]:
        """Where the person can see blocks, newest first."""
        if view is not None:
            return [{"kind": "view", "view": self._live_view(user_id, view)}]
        if message is not None:
            channel = channel or message.get("channel")
            ts = message.get("ts") or message.get("message_ts")
            if not channel or not ts:
                raise ValueError("pass channel= with a message that has no 'channel'")
            if "message_ts" in message and "ts" not in message:
                return [{"kind": "ephemeral", "channel": channel, "message": message}]
            stored = self.slack.message(channel, str(ts))
            if stored is None:
                raise LookupError(f"message {ts} in {channel} does not exist (deleted?)")
            return [{"kind": "message", "channel": channel, "message": stored}]
        surfaces: list[JSON] = []
        channels = [channel] if channel else [self.slack.dm_channel(user_id)]
        for ch in channels:
            found = [
                {"kind": "message", "channel": ch, "message": m, "ts": m["ts"]}
                for m in self.slack.messages(ch)
            ]
            found += [
                {"kind": "ephemeral", "channel": ch, "message": e, "ts": e["message_ts"]}
                for e in self.slack.ephemerals(user_id)
                if e["channel"] == ch
            ]
            surfaces += sorted(found, key=lambda s: s["ts"], reverse=True)
        home = self.slack.home_view(user_id) if channel is None else None
        if home is not None:
            surfaces.append({"kind": "view", "view": home})
        return surfaces

    def _find(
        self,
        user_id: str,
        what: str,
        match: Callable[[JSON], bool],
        describe: Callable[[JSON], list[str]],
        *,
        message: JSON | None,
        channel: str | None,
        view: JSON | None,
    ) -> tuple[JSON, JSON, JSON]:
        seen: list[str] = []
        for surface in self._surfaces(user_id, message, channel, view):
            if surface["kind"] != "view" and not self.slack.can_see(user_id, surface["channel"]):
                raise LookupError(f"{user_id} cannot see channel {surface['channel']}")
            holder = surface["view"] if surface["kind"] == "view" else surface["message"]
            for block in holder.get("blocks") or []:
                for element in _elements(block):
                    if match(element):
                        return surface, block, element
                    seen.extend(describe(element))
        raise LookupError(f"no {what}; present: {seen}")

    def _action_payload(
        self, user_id: str, surface: JSON, action: JSON, typed: dict[str, object] | None = None
    ) -> JSON:
        payload = self._base("block_actions", user_id)
        payload["trigger_id"] = self.slack.issue_trigger(user_id)
        if surface["kind"] == "view":
            live = copy.deepcopy(surface["view"])
            live["state"] = {"values": self.state_values(live["blocks"], typed, validate=False)}
            payload["container"] = {"type": "view", "view_id": live["id"]}
            payload["view"] = live
        else:
            channel = surface["channel"]
            held = surface["message"]
            ephemeral = surface["kind"] == "ephemeral"
            ts = held["message_ts"] if ephemeral else held["ts"]
            payload["container"] = {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            }
            payload["channel"] = self._channel_obj(channel)
            if not ephemeral:
                payload["message"] = FakeSlack.public_message(held)
            blocks = held.get("blocks") or []
            payload["state"] = {"values": self.state_values(blocks, validate=False)}
            payload["response_url"] = self.slack.issue_response_url(
                user_id, channel_id=channel, message_ts=ts, ephemeral=ephemeral
            )
        action["action_ts"] = f"{time.time():.6f}"
        payload["actions"] = [action]
        return payload

    def click_payload(
        self,
        user_id: str,
        button_text: str,
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
    ) -> JSON:
        """The block_actions payload of a click on the button labelled `button_text` (newest
        message first; default: the DM, then the Home tab). Raises LookupError listing the
        buttons present if there is none."""

        def is_button(element: JSON) -> bool:
            return element.get("type") == "button" and _text(element.get("text")) == button_text

        def describe(element: JSON) -> list[str]:
            return [_text(element.get("text"))] if element.get("type") == "button" else []

        surface, block, element = self._find(
            user_id,
            f"button {button_text!r}",
            is_button,
            describe,
            message=message,
            channel=channel,
            view=view,
        )
        action: JSON = {
            "action_id": element["action_id"],
            "block_id": block["block_id"],
            "text": copy.deepcopy(element["text"]),
            "type": "button",
        }
        for key in ("value", "style", "url"):
            if key in element:
                action[key] = element[key]
        return self._action_payload(user_id, surface, action)

    def select_payload(
        self,
        user_id: str,
        option_text: str,
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
        typed: dict[str, object] | None = None,
    ) -> JSON:
        """The block_actions payload of picking an option of a static_select / overflow /
        radio_buttons outside input blocks, or inside an input block that has `dispatch_action`
        (Slack sends nothing for a choice in any other input block: it is only part of the
        view's state at submission). `typed`: what the person has entered in the view's other
        inputs so far, by label (it is in the payload's view.state)."""
        kinds = ("static_select", "overflow", "radio_buttons")

        def has_option(element: JSON) -> bool:
            return element.get("type") in kinds and any(
                _text(o.get("text")) == option_text or o.get("value") == option_text
                for o in _options(element)
            )

        def describe(element: JSON) -> list[str]:
            if element.get("type") not in kinds:
                return []
            return [_text(o.get("text")) for o in _options(element)]

        surface, block, element = self._find(
            user_id,
            f"option {option_text!r}",
            has_option,
            describe,
            message=message,
            channel=channel,
            view=view,
        )
        typed = dict(typed or {})
        if block.get("type") == "input":
            if block.get("dispatch_action") is not True:
                raise LookupError(
                    f"{_text(block.get('label'))!r} is in an input block without dispatch_action: "
                    "Slack sends the app no block_actions for it"
                )
            typed[_text(block.get("label"))] = option_text
        action: JSON = {
            "action_id": element["action_id"],
            "block_id": block["block_id"],
            "type": element["type"],
            "selected_option": _match_option(element, option_text, "select"),
        }
        if element.get("placeholder"):
            action["placeholder"] = copy.deepcopy(element["placeholder"])
        return self._action_payload(user_id, surface, action, typed)

    # --- Events API -------------------------------------------------------------------------
    def event_callback(self, event: JSON, *, event_id: str | None = None) -> JSON:
        """The event_callback Slack sends for `event` (the body over HTTP, the payload of an
        events_api envelope over a socket)."""
        inner = copy.deepcopy(event)
        inner.setdefault("event_ts", f"{time.time():.6f}")
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": inner,
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.slack.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_urlsafe(24)}",
        }

    def home_opened_event(self, user_id: str) -> JSON:
        """app_home_opened for the Home tab (with the current view once one was published)."""
        self._member(user_id)
        event: JSON = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": self.slack.dm_channel(user_id),
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        home = self.slack.home_view(user_id)
        if home is not None:
            event["view"] = home
        return event
