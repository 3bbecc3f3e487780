"""Guards: forged workspaces, per-user request limits, an approvals channel the bot cannot post
to, and the audit log with its export (append-only in the database)."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import Status
from fakes.cloud import ADMINS, APPROVAL_CHANNEL, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until
from tests.e2e.flows import (
    approve,
    assert_only_the_limit_was_filed,
    open_modal,
    request_new_app,
    submit_copies_at_once,
)


def test_a_signed_request_for_another_workspace_is_refused(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A correctly signed command naming another team gets 401 and opens nothing."""
    with SlackDriver(
        app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack, team_id="T0FORGED"
    ) as forged:
        response = forged.command(DEVELOPER, "/oauth-app", "new forged-app")
    assert response.status_code == 401
    assert not cloud.slack.api_calls("views.open")


class TestRequestLimits:
    @pytest.fixture
    def bot_settings(self) -> dict[str, Any]:
        return {"oauth_bot_max_open_requests": 2, "oauth_bot_max_requests_per_hour": 3}

    def test_open_request_and_hourly_limits_stop_spam(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
    ) -> None:
        """A third open request is refused in the modal; after one is decided, the hourly limit is next."""
        first = request_new_app(slack, DEVELOPER, "limit-app-1")
        request_new_app(slack, DEVELOPER, "limit-app-2")
        slack.command(DEVELOPER, "/oauth-app", "new limit-app-3")
        refused = slack.submit(DEVELOPER, open_modal(slack, DEVELOPER), {"Justification": "third"})
        assert refused.json()["response_action"] == "errors"
        assert "You already have 2 open requests" in refused.json()["errors"]["name"]

        approve(slack, cloud, bot, first, ADMINS[0])
        request_new_app(slack, DEVELOPER, "limit-app-3")  # 2 open again, 3 this hour
        approve(slack, cloud, bot, cloud.slack.messages(APPROVAL_CHANNEL)[-1], ADMINS[0])
        slack.command(DEVELOPER, "/oauth-app", "new limit-app-4")
        refused = slack.submit(DEVELOPER, open_modal(slack, DEVELOPER), {"Justification": "fourth"})
        assert "3 requests in the last hour" in refused.json()["errors"]["name"]
        assert bot.services is not None
        assert len(bot.services.store.requests_by(DEVELOPER, statuses=list(Status))) == 3


class TestConcurrentSubmissions:
    @pytest.fixture
    def bot_settings(self) -> dict[str, Any]:
        return {"oauth_bot_max_open_requests": 2}

    def test_one_submission_delivered_eight_times_at_once_files_only_up_to_the_limit(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
    ) -> None:
        """The same signed view_submission arriving 8 times at once against a limit of 2 open
        requests files exactly 2 (2 approval cards); each of the other 6 is refused with the
        limit, as a field error in the modal or, if it was acked before the limit was reached
        in the database, in a DM."""
        responses = submit_copies_at_once(slack, DEVELOPER, "race-app")
        assert bot.services is not None
        assert_only_the_limit_was_filed(cloud, bot.services.store, responses, DEVELOPER, "race-app", 2)

    def test_two_bots_on_one_sqlite_file_file_only_up_to_the_limit(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, bot_settings: dict[str, Any]
    ) -> None:
        """A second bot on the same SQLite file (its own engine and connections): the 8 copies
        spread over both still file exactly 2, since the lock is the database's, not a process's."""
        other = BackgroundBot(cloud.settings(bot.settings.database_url, **bot_settings)).start()
        try:
            with SlackDriver(app_url=other.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as second:
                responses = submit_copies_at_once(slack, DEVELOPER, "race-two-app", via=[slack, second])
            assert bot.services is not None
            assert_only_the_limit_was_filed(
                cloud, bot.services.store, responses, DEVELOPER, "race-two-app", 2
            )
        finally:
            other.stop()


class TestUnpostableCard:
    @pytest.fixture
    def bot_settings(self) -> dict[str, Any]:
        return {"oauth_bot_approval_channel": "C0NOWHERE"}

    def test_a_card_that_cannot_be_posted_fails_the_request_and_says_why(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
    ) -> None:
        """channel_not_found for the approvals channel: the requester is told, nothing stays pending."""
        slack.command(DEVELOPER, "/oauth-app", "new orphan-card-app")
        slack.submit(DEVELOPER, open_modal(slack, DEVELOPER), {"Justification": "x"})
        dm = wait_until(
            lambda: [
                m for m in cloud.slack.dm_messages(DEVELOPER) if "could not be filed" in m.get("text", "")
            ],
            what="the requester's notice",
        )[-1]
        assert "channel_not_found" in dm["text"] and "invite the bot" in dm["text"]
        assert bot.services is not None
        statuses = [r.status for r in bot.services.store.requests_by(DEVELOPER, statuses=list(Status))]
        assert statuses == [Status.FAILED]
        alert = wait_until(
            lambda: [m for m in cloud.slack.dm_messages(ADMINS[0]) if "could not post" in m.get("text", "")],
            what="the admins' alert",
        )
        assert "OAUTH_BOT_APPROVAL_CHANNEL" in alert[-1]["text"]


def test_audit_log_records_every_decision_and_exports_without_values(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, database_path: Path
) -> None:
    """The audit log holds who did what for a whole flow, exports as JSONL and CSV, and holds no value."""
    card = request_new_app(slack, DEVELOPER, "audited-app")
    request = approve(slack, cloud, bot, card, ADMINS[1])
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database_path}"}
    exports = {
        fmt: subprocess.run(
            [sys.executable, "-m", "bot.cli", "audit", "export", "--format", fmt],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        for fmt in ("jsonl", "csv")
    }
    events = [json.loads(line) for line in exports["jsonl"].splitlines()]
    actions = [(e["actor"], e["action"]) for e in events if e["request_id"] == request.id]
    assert actions[:2] == [(DEVELOPER, "request.submitted"), (ADMINS[1], "request.approved")]
    assert {"app.created", "secret.added", "secret.stored", "request.completed"} <= {a for _, a in actions}
    rows = list(csv.DictReader(io.StringIO(exports["csv"])))
    assert len(rows) == len(events) and rows[0]["action"] == events[0]["action"]
    value = cloud.vault.value_of(f"oauth-{request.client_id}") or "unreachable"
    assert value not in exports["jsonl"] and value not in exports["csv"]


def test_the_bots_own_database_refuses_to_change_or_delete_audit_rows(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, database_path: Path
) -> None:
    """The SQLite database the bot creates on the fly carries the audit triggers: after a
    request is filed, an UPDATE or DELETE of its audit rows from another connection fails with
    "audit_events is append-only" and the rows stay as they were."""
    request_new_app(slack, DEVELOPER, "append-only-app")
    with closing(sqlite3.connect(database_path, timeout=30)) as database:
        before = database.execute("SELECT * FROM audit_events ORDER BY id").fetchall()
        assert [row for row in before if "request.submitted" in row], before
        for statement in ("UPDATE audit_events SET actor = 'U0MALLORY'", "DELETE FROM audit_events"):
            with pytest.raises(sqlite3.IntegrityError, match="audit_events is append-only"):
                database.execute(statement)
            database.rollback()
        assert database.execute("SELECT * FROM audit_events ORDER BY id").fetchall() == before
