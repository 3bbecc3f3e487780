"""Plays Slack's part towards an app in Socket Mode: what `SlackDriver` posts over HTTP, sent
as envelopes over the app's Socket Mode connection instead.

The payloads are the very ones `SlackDriver` sends (`fakes.slack_payloads`); only the
delivery differs: `slash_commands` / `interactive` / `events_api` envelopes through a
`FakeSocketMode`, each answered by an ack. Like the Slack client, the driver waits for the ack
(Slack waits 3 s) and applies its payload to the `FakeSlack`: a command's ack body is shown to
the person, a view_submission's `response_action` changes the modal stack. An envelope that is
not acked in time leaves things as they were (the person sees an error).
"""

from __future__ import annotations

import json

from fakes.slack import GENERAL_CHANNEL, JSON, FakeSlack
from fakes.slack_payloads import SlackPayloads
from fakes.socket_mode import Envelope, FakeSocketMode


class SocketModeDriver(SlackPayloads):
    """Sends the app what Slack sends, over its Socket Mode connection.

    Each method returns the `Envelope` once the app acked it or Slack gave up on it
    (`.acked`, `.answer` — the ack's payload where the envelope takes one —, `.seconds`).
    `wait` bounds the whole exchange, including the time an envelope waits for a connection.
    """

    def __init__(
        self,
        *,
        socket: FakeSocketMode,
        slack: FakeSlack | None = None,
        team_id: str | None = None,
        api_app_id: str | None = None,
        wait: float = 30.0,
    ) -> None:
        super().__init__(slack=slack or socket.slack, team_id=team_id, api_app_id=api_app_id or socket.app_id)
        self.socket = socket
        self.wait = wait

    def _exchange(self, kind: str, payload: JSON) -> Envelope:
        envelope_id = self.socket.send(kind, payload)
        return self.socket.wait_for_outcome(envelope_id, timeout=self.wait)

    # --- slash commands -----------------------------------------------------------------
    def command(
        self, user_id: str, command: str, text: str = "", *, channel_id: str = GENERAL_CHANNEL
    ) -> Envelope:
        """`/command text` as a slash_commands envelope; the ack's body is shown as Slack shows it."""
        form = self.command_form(user_id, command, text, channel_id=channel_id)
        envelope = self._exchange("slash_commands", form)
        answer = envelope.answer
        if answer:
            self.slack.respond(user_id, channel_id, answer, via="command_ack")
        return envelope

    # --- modals ---------------------------------------------------------------------------
    def submit(
        self, user_id: str, view: JSON, values: dict[str, object], *, validate: bool = True
    ) -> Envelope:
        """view_submission with inputs filled by label (values as for `SlackDriver.submit`);
        the ack's response_action is applied to the modal stack, as the Slack client does."""
        live, payload = self.submission(user_id, view, values, validate=validate)
        envelope = self._exchange("interactive", payload)
        if envelope.acked:
            answer = envelope.answer
            body = json.dumps(answer).encode() if answer else b""
            self.slack.apply_view_response(user_id, live["id"], 200, body)
        return envelope

    def close(self, user_id: str, view: JSON) -> Envelope | None:
        """The user closes the modal; view_closed is sent only if notify_on_close was set."""
        live, payload = self.closing(user_id, view)
        envelope = self._exchange("interactive", payload) if payload is not None else None
        self.slack.close_view(user_id, live["id"])
        return envelope

    # --- block actions ---------------------------------------------------------------------
    def click(
        self,
        user_id: str,
        button_text: str,
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
    ) -> Envelope:
        """Click the button labelled `button_text` (found as `SlackDriver.click` finds it)."""
        payload = self.click_payload(user_id, button_text, message=message, channel=channel, view=view)
        return self._exchange("interactive", payload)

    def select(
        self,
        user_id: str,
        option_text: str,
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
    ) -> Envelope:
        """Pick an option of a static_select / overflow / radio_buttons outside input blocks."""
        payload = self.select_payload(user_id, option_text, message=message, channel=channel, view=view)
        return self._exchange("interactive", payload)

    # --- Events API -------------------------------------------------------------------------
    def event(self, event: JSON, *, event_id: str | None = None) -> Envelope:
        """An events_api envelope around `event`. Unacked, the fake redelivers it (retry_attempt
        1, 2, … with retry_reason "timeout"); this returns once it is acked or given up on."""
        return self._exchange("events_api", self.event_callback(event, event_id=event_id))

    def home_opened(self, user_id: str) -> Envelope:
        """app_home_opened for the Home tab (with the current view once one was published)."""
        return self.event(self.home_opened_event(user_id))
