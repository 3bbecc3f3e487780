"""Plays Slack's part towards the app: signed slash commands, interactivity and events.

A `SlackDriver` posts to the app's `/slack/events` what Slack would post when a person
types a command, fills in and submits a modal, clicks a button or opens the Home tab, and
then updates the `FakeSlack` as the Slack client would (modal stack, ack bodies). The
payloads themselves come from `fakes.slack_payloads`, shared with the Socket Mode driver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode

import httpx

from fakes.slack import GENERAL_CHANNEL, JSON, FakeSlack
from fakes.slack_payloads import EMAIL_RE, VERIFICATION_TOKEN, SlackPayloads

__all__ = ["EMAIL_RE", "FORM", "USER_AGENT", "VERIFICATION_TOKEN", "SlackDriver"]

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
FORM = "application/x-www-form-urlencoded"


class SlackDriver(SlackPayloads):
    """Sends the app what Slack sends, signed with the app's signing secret."""

    def __init__(
        self,
        *,
        app_url: str,
        signing_secret: str,
        slack: FakeSlack,
        team_id: str | None = None,
        api_app_id: str = "A0FAKEAPP",
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(slack=slack, team_id=team_id, api_app_id=api_app_id)
        self.app_url = app_url.rstrip("/")
        self.events_url = f"{self.app_url}/slack/events"
        self.signing_secret = signing_secret
        self.client = client or httpx.Client(timeout=30.0)
        self._owns_client = client is None
        self.timings: list[tuple[str, float]] = []  # (payload kind, seconds to answer)

    def shutdown(self) -> None:
        """Close the HTTP client if the driver made it."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> SlackDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- signing and transport ---------------------------------------------------------
    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """X-Slack-Request-Timestamp and X-Slack-Signature (v0 HMAC-SHA256) for `body`."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + ts.encode() + b":" + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    def post_raw(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST exactly these bytes and headers (no signing): for bad-signature tests."""
        return self.client.post(self.events_url, content=body, headers=headers)

    def _send(
        self, kind: str, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **self.sign(body)}
        headers.update(extra or {})
        started = time.monotonic()
        response = self.client.post(self.events_url, content=body, headers=headers)
        self.timings.append((kind, time.monotonic() - started))
        return response

    def _send_payload(self, payload: JSON) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self._send(str(payload["type"]), body, FORM)

    # --- slash commands -----------------------------------------------------------------
    def command(
        self, user_id: str, command: str, text: str = "", *, channel_id: str = GENERAL_CHANNEL
    ) -> httpx.Response:
        """The form Slack posts for `/command text`; an ack body is shown as Slack shows it."""
        form = self.command_form(user_id, command, text, channel_id=channel_id)
        response = self._send("command", urlencode(form).encode(), FORM)
        if response.status_code == 200 and response.content.strip():
            try:
                body = response.json()
            except ValueError:
                body = {"text": response.text}
            if isinstance(body, dict):
                self.slack.respond(user_id, channel_id, body, via="command_ack")
        return response

    # --- modals ---------------------------------------------------------------------------
    def submit(
        self, user_id: str, view: JSON, values: dict[str, object], *, validate: bool = True
    ) -> httpx.Response:
        """view_submission with inputs filled by label; applies response_action to the stack.

        Values: str for text inputs, option text (or value) for selects/radios, a list of
        option texts for multi-selects/checkboxes, YYYY-MM-DD (or a date) for datepickers.
        `validate` makes the Slack client's own checks (required, email, URL, number).
        """
        live, payload = self.submission(user_id, view, values, validate=validate)
        response = self._send_payload(payload)
        self.slack.apply_view_response(user_id, live["id"], response.status_code, response.content)
        return response

    def signed_submission(
        self, user_id: str, view: JSON, values: dict[str, object], *, validate: bool = True
    ) -> tuple[bytes, dict[str, str]]:
        """The body and signed headers of the view_submission `submit` would send, unsent:
        to deliver one submission several times (a double click, a retrying proxy) with
        `post_raw`. The modal stack is left as it is."""
        _, payload = self.submission(user_id, view, values, validate=validate)
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, {"Content-Type": FORM, "User-Agent": USER_AGENT, **self.sign(body)}

    def close(self, user_id: str, view: JSON) -> httpx.Response | None:
        """The user closes the modal; view_closed is sent only if notify_on_close was set."""
        live, payload = self.closing(user_id, view)
        response = self._send_payload(payload) if payload is not None else None
        self.slack.close_view(user_id, live["id"])
        return response

    # --- block actions ---------------------------------------------------------------------
    def click(
        self,
        user_id: str,
        button_text: str,
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
    ) -> httpx.Response:
        """Click the button labelled `button_text` (newest message first; default: the DM, then
        the Home tab). Raises LookupError listing the buttons present if there is none."""
        payload = self.click_payload(user_id, button_text, message=message, channel=channel, view=view)
        return self._send_payload(payload)

    def select(
        self,
        user_id: str,
        option_text: str,
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
        typed: dict[str, object] | None = None,
    ) -> httpx.Response:
        """Pick an option of a static_select / overflow / radio_buttons outside input blocks, or
        in an input block with dispatch_action (`typed`: the view's other inputs so far, by label)."""
        payload = self.select_payload(
            user_id, option_text, message=message, channel=channel, view=view, typed=typed
        )
        return self._send_payload(payload)

    # --- Events API -------------------------------------------------------------------------
    def event(
        self,
        event: JSON,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> httpx.Response:
        """An event_callback envelope around `event`; retries carry X-Slack-Retry-*."""
        envelope = self.event_callback(event, event_id=event_id)
        extra = {}
        if retry_num is not None:
            extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        body = json.dumps(envelope).encode()
        return self._send("event_callback", body, "application/json", extra)

    def home_opened(self, user_id: str) -> httpx.Response:
        """app_home_opened for the Home tab (with the current view once one was published)."""
        return self.event(self.home_opened_event(user_id))

    def url_verification(self, challenge: str | None = None) -> httpx.Response:
        """The handshake Slack sends when the Request URL is saved."""
        body = {
            "token": VERIFICATION_TOKEN,
            "challenge": challenge or secrets.token_urlsafe(24),
            "type": "url_verification",
        }
        return self._send("url_verification", json.dumps(body).encode(), "application/json")
