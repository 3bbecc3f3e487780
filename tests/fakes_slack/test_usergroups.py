"""usergroups.users.list on the Slack fake (strict like Slack: the usergroups:read scope, unknown
and disabled groups), and bot.slack.usergroups.SlackApprovers over it: members and departures
remembered for a minute, then asked again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.errors import SlackError
from bot.slack.usergroups import SlackApprovers
from fakes.slack import FakeSlack
from fakes.tls import TestCA

TEAM, OLD_TEAM = "S0TEAM0001", "S0OLDTEAM1"
ALICE, BOB, GONE = "U0ALICE01", "U0BOB0002", "U0GONE003"


@pytest.fixture
def fake(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))
    slack = FakeSlack(ca)
    slack.add_user(ALICE, "alice")
    slack.add_user(BOB, "bob")
    slack.add_user(GONE, "gone", deleted=True)
    slack.add_usergroup(TEAM, "team", [ALICE, BOB])
    slack.add_usergroup(OLD_TEAM, "old-team", [ALICE], disabled=True)
    with slack:
        yield slack


@pytest.fixture
def web(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=f"{fake.url}/api/")


def _error(call: Callable[[], object]) -> dict[str, object]:
    with pytest.raises(SlackApiError) as caught:
        call()
    return dict(caught.value.response.data)


def test_usergroups_users_list_answers_like_slack(fake: FakeSlack, web: WebClient) -> None:
    """The members' IDs; no_such_subteam for an unknown group and for a disabled one unless
    include_disabled; missing_scope (naming the scope needed) without usergroups:read."""
    assert web.usergroups_users_list(usergroup=TEAM)["users"] == [ALICE, BOB]
    assert _error(lambda: web.usergroups_users_list(usergroup="S0NOSUCH1"))["error"] == "no_such_subteam"
    assert _error(lambda: web.usergroups_users_list(usergroup=OLD_TEAM))["error"] == "no_such_subteam"
    assert web.usergroups_users_list(usergroup=OLD_TEAM, include_disabled=True)["users"] == [ALICE]
    fake.bot_scopes.discard("usergroups:read")
    refused = _error(lambda: web.usergroups_users_list(usergroup=TEAM))
    assert refused["error"] == "missing_scope" and refused["needed"] == "usergroups:read"


def test_slack_approvers_remember_for_a_minute(fake: FakeSlack, web: WebClient) -> None:
    """Members and departures are asked once a minute at most; a change shows after that; a
    person whom users.info says is deleted is not active; a refusal is a SlackError that says
    which scope the app lacks."""
    now = [0.0]
    approvers = SlackApprovers(web, clock=lambda: now[0])
    assert approvers.usergroup_members(TEAM) == {ALICE, BOB}
    fake.add_usergroup(TEAM, "team", [ALICE])
    now[0] = 59.0
    assert approvers.usergroup_members(TEAM) == {ALICE, BOB}
    assert len(fake.api_calls("usergroups.users.list")) == 1
    now[0] = 61.0
    assert approvers.usergroup_members(TEAM) == {ALICE}
    assert approvers.is_active(BOB) and not approvers.is_active(GONE)
    fake.bot_scopes.discard("usergroups:read")
    with pytest.raises(SlackError, match="usergroups:read"):
        approvers.usergroup_members(OLD_TEAM)
