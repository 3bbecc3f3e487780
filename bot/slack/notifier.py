"""What the workflow tells people, sent through the Slack Web API (the WebClient of
bot.slack.client, whose retry handlers are Slack's one retry layer)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.config import Settings
from bot.core.errors import SlackError
from bot.core.federation import FederationReady
from bot.core.model import IssuedSecret, ReadGrant, Request
from bot.flows.lifecycle import Reminder
from bot.flows.retirement import Retired, StillUsed
from bot.slack import cards, federation, lists, retirement, views
from bot.slack.pacing import Pacer

log = logging.getLogger(__name__)


class SlackNotifier:
    def __init__(self, client: WebClient, settings: Settings) -> None:
        self._client = client
        self._approval_channel = str(settings.oauth_bot_approval_channel)
        self._admins = settings.admins
        self._max_grace_days = settings.oauth_bot_max_grace_days
        self._vault_url = str(settings.key_vault_url)
        self._reminders = Pacer(overall=60 / settings.oauth_bot_reminder_dms_per_minute)

    def _call(self, method: str, **kwargs: Any) -> Any:
        """Call a Web API method by its name, e.g. "chat.postMessage", with typed errors."""
        try:
            return getattr(self._client, method.replace(".", "_"))(**kwargs)
        except SlackApiError as error:
            code = error.response.get("error", "error") if error.response is not None else "error"
            raise SlackError(f"Slack {method} failed: {code}", code=str(code)) from None
        except SlackClientError as error:
            raise SlackError(f"Slack {method} failed: {type(error).__name__}") from None

    def _post(self, channel: str, message: views.Message, **extra: Any) -> Any:
        text, body = message
        return self._call("chat.postMessage", channel=channel, text=text, blocks=body, **extra)

    def _dm(self, user_id: str, message: views.Message) -> None:
        self._post(user_id, message)

    def user_email(self, user_id: str) -> str | None:
        try:
            response = self._call("users.info", user=user_id)
        except SlackError as error:
            log.info("no email for %s: %s", user_id, error)
            return None
        email = response.get("user", {}).get("profile", {}).get("email")
        return str(email) if email else None

    def post_request_card(self, request: Request, approved_by: Sequence[str] = ()) -> tuple[str, str]:
        response = self._post(self._approval_channel, cards.request_card(request, approved_by))
        return str(response["channel"]), str(response["ts"])

    def update_request_card(self, request: Request, approved_by: Sequence[str] = ()) -> None:
        if request.card_channel and request.card_ts:
            text, body = cards.request_card(request, approved_by)
            self._call(
                "chat.update", channel=request.card_channel, ts=request.card_ts, text=text, blocks=body
            )

    def remind_approvers(
        self, request: Request, *, users: Sequence[str], usergroup: str | None, escalated: bool
    ) -> None:
        """A reply in the card's thread that names the approvers (or, escalated, the admins)."""
        if request.card_channel and request.card_ts:
            message = cards.approvers_reminder(request, users, usergroup, escalated=escalated)
            self._post(request.card_channel, message, thread_ts=request.card_ts)

    def request_waiting(self, request: Request) -> None:
        self._dm(request.requester_id, cards.request_waiting(request))

    def request_received(self, request: Request) -> None:
        self._dm(request.requester_id, cards.request_received(request, self._approval_channel))

    def request_denied(self, request: Request) -> None:
        self._dm(request.requester_id, cards.request_denied(request))

    def request_cancelled(self, request: Request) -> None:
        self._dm(request.requester_id, views.simple(f"Request #{request.id} was cancelled."))

    def request_expired(self, request: Request) -> None:
        self._dm(
            request.requester_id,
            views.simple(
                f"Request #{request.id} expired: nobody decided in time. Ask again if you still need it."
            ),
        )

    def secret_ready(self, request: Request, issued: IssuedSecret) -> None:
        self._dm(request.requester_id, cards.secret_ready(request, issued))

    def read_access_ready(self, request: Request, grant: ReadGrant) -> None:
        text = f"Request #{request.id} is done. " + cards.read_access_granted(grant, self._vault_url)
        self._call("chat.postMessage", channel=request.requester_id, text=text)
    def federation_ready(self, request: Request, ready: FederationReady) -> None:
        self._dm(request.requester_id, federation.federation_ready(request, ready))

    def secret_removed(self, request: Request, key_id: str) -> None:
        self._dm(request.requester_id, federation.secret_removed(request, key_id))

    def expiry_reminder(self, reminder: Reminder) -> None:
        """One DM per owner, paced (the first scan sends thousands); a 429 that comes anyway is
        waited out by the client's rate-limit retry handler."""
        for owner in reminder.owners:
            self._reminders.wait(owner)
            self._dm(owner, lists.expiry_reminder(reminder))

    def expiry_digest(self, reminders: list[Reminder]) -> None:
        self._post(self._approval_channel, lists.expiry_digest(reminders))

    def secret_retired(self, retired: Retired) -> None:
        for owner in retired.owners:
            self._dm(owner, lists.secret_retired(retired))

    def secret_still_used(self, notice: StillUsed) -> None:
        for owner in notice.owners:
            self._dm(owner, retirement.still_used(notice))

    def retirement_decision(self, notice: StillUsed) -> None:
        self._post(self._approval_channel, retirement.decision_card(notice, self._max_grace_days))

    def alert_admins(self, text: str) -> None:
        """A DM to every admin, for problems the approvals channel cannot show."""
        for admin in sorted(self._admins):
            self._dm(admin, views.simple(text))

    def publish_home(self, user_id: str, view: dict[str, Any]) -> None:
        self._call("views.publish", user_id=user_id, view=view)

    def request_failed(self, request: Request, message: str) -> None:
        self._dm(request.requester_id, cards.request_failed(request, message))
        if request.card_channel and request.card_ts:
            self._post(
                request.card_channel, cards.request_failed(request, message), thread_ts=request.card_ts
            )
