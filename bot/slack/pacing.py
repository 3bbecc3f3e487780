"""Spacing for bursts of messages, within Slack's rate tier for chat.postMessage: about one
message per second per channel (a DM is its own channel) under a workspace-wide limit.

Pacing keeps a burst (the first expiry scan's thousands of reminders) under the limits; the
retry handlers of bot.slack.client remain the one layer that waits out a 429 that comes anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

PER_CHANNEL_SECONDS = 1.0
REMEMBERED_CHANNELS = 10_000


class Pacer:
    """`wait(channel)` returns once at least `per_channel` seconds have passed since the last
    message to that channel and `overall` seconds since the last message to any channel."""

    def __init__(
        self,
        *,
        overall: float,
        per_channel: float = PER_CHANNEL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._overall = overall
        self._per_channel = per_channel
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._last_any = float("-inf")
        self._lock = threading.Lock()

    def wait(self, channel: str) -> None:
        with self._lock:
            now = self._clock()
            channel_ready = self._last.get(channel, float("-inf")) + self._per_channel
            ready = max(channel_ready, self._last_any + self._overall)
            if ready > now:
                self._sleep(ready - now)
                now = max(ready, self._clock())
            self._last[channel] = self._last_any = now
            if len(self._last) > REMEMBERED_CHANNELS:  # forget channels whose spacing has passed anyway
                horizon = now - self._per_channel
                self._last = {c: at for c, at in self._last.items() if at > horizon}
