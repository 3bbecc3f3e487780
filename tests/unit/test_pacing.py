"""The reminders' pacer keeps Slack's chat.postMessage tier: one message per second per channel
and a workspace-wide spacing, on a clock the test moves (no real sleeping)."""

from __future__ import annotations

from bot.slack.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_messages_to_one_channel_are_a_second_apart_and_to_any_channel_the_overall_spacing() -> None:
    """Three DMs to different people wait only the workspace spacing (0.2 s); a second DM to the
    same person waits until a second has passed since their first."""
    clock = Clock()
    pacer = Pacer(overall=0.2, clock=clock, sleep=clock.sleep)
    for channel in ("U1", "U2", "U3"):
        pacer.wait(channel)
    assert clock.slept == [0.2, 0.2]
    pacer.wait("U1")  # U1 last at 100.0, now 100.4
    assert clock.slept == [0.2, 0.2, 0.6]


def test_no_wait_once_the_spacing_has_passed() -> None:
    """Messages slower than both limits are never held up."""
    clock = Clock()
    pacer = Pacer(overall=0.2, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        pacer.wait("U1")
        clock.now += 1.5
    assert clock.slept == []
