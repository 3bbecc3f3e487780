"""The approvals table: one row per person and request (its unique key refuses a second), and
the reminders' compare-and-set marks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from bot.core.model import ApproverReminder, Kind, Request, Status
from bot.store import Store
from bot.store.schema import ensure_schema
from fakes.clock import ManualClock


def _store(tmp_path: Path) -> Store:
    store = Store.from_url(f"sqlite:///{tmp_path / 'approvals.db'}", clock=ManualClock())
    ensure_schema(store, auto_create=True)
    return store


def _pending(store: Store) -> Request:
    request = Request(
        kind=Kind.NEW_APP,
        requester_id="U0DEV",
        display_name="app",
        sign_in_audience="AzureADMyOrg",
        secret_description="d",
        secret_days=90,
        justification="j",
        uid="u1",
        approvals_needed=2,
        approver_set="team",
    )
    return store.add_request(request, ttl=timedelta(days=7))


def test_one_person_approves_a_request_once(tmp_path: Path) -> None:
    """A second approval row for the same person and request is refused by the database."""
    store = _store(tmp_path)
    request = _pending(store)
    store.add_approval(request.id, "U0ONE")
    with pytest.raises(IntegrityError):
        store.add_approval(request.id, "U0ONE")
    store.add_approval(request.id, "U0TWO")
    assert [a.approver_id for a in store.approvals(request.id)] == ["U0ONE", "U0TWO"]
    assert store.get_request(request.id).approvals_needed == 2


def test_each_reminder_is_marked_once_and_only_while_pending(tmp_path: Path) -> None:
    """A reminder mark is a compare-and-set: once, again after being unmarked, never once decided."""
    store = _store(tmp_path)
    request = _pending(store)
    assert store.mark_reminded(request.id, ApproverReminder.APPROVERS)
    assert not store.mark_reminded(request.id, ApproverReminder.APPROVERS)
    store.unmark_reminded(request.id, ApproverReminder.APPROVERS)
    assert store.mark_reminded(request.id, ApproverReminder.APPROVERS)
    store.transition(request.id, from_status=[Status.PENDING], to_status=Status.DENIED)
    assert not store.mark_reminded(request.id, ApproverReminder.ADMINS)
