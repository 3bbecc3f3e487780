"""Who may approve: the members of a Slack user group (usergroups.users.list, scope
usergroups:read) and whether a person is still in the workspace (users.info `deleted`),
each remembered for a short while so a burst of clicks makes one call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.errors import SlackError

CACHE_SECONDS = 60.0


class SlackApprovers:
    """bot.core.ports.ApproverDirectory through the Slack Web API."""

    def __init__(
        self,
        client: WebClient,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    def usergroup_members(self, usergroup_id: str) -> frozenset[str]:
        """The user group's members now (a minute old at most)."""
        return frozenset(
            self._cached(
                "usergroup",
                usergroup_id,
                lambda: self._call("usergroups.users.list", usergroup=usergroup_id)["users"],
            )
        )

    def is_active(self, user_id: str) -> bool:
        """False for a person who left the workspace (deactivated: users.info says deleted)."""
        user = self._cached("user", user_id, lambda: self._call("users.info", user=user_id)["user"])
        return not user.get("deleted", False)

    def _cached(self, kind: str, key: str, fetch: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            found = self._cache.get((kind, key))
        if found is not None and now - found[0] < self._cache_seconds:
            return found[1]
        value = fetch()
        with self._lock:
            self._cache[(kind, key)] = (now, value)
        return value

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method.replace(".", "_"))(**kwargs)
        except SlackApiError as error:
            code = str(error.response.get("error", "error")) if error.response is not None else "error"
            hint = " (the Slack app needs the usergroups:read scope)" if code == "missing_scope" else ""
            raise SlackError(f"Slack {method} failed: {code}{hint}", code=code) from None
        except SlackClientError as error:
            raise SlackError(f"Slack {method} failed: {type(error).__name__}") from None
