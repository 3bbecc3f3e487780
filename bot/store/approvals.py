"""Approvals of requests (one row per person) and the reminders to their approvers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from bot.core.model import Approval, ApproverReminder, Request, Status
from bot.store.database import Database, entity
from bot.store.requests import request_of
from bot.store.tables import ApprovalRow, RequestRow


class ApprovalRepository(Database):
    def lock_request(self, request_id: int) -> None:
        """Inside atomic(): no other transaction (thread, process or replica) decides on this
        request until this one ends. PostgreSQL: the request's row, locked (FOR UPDATE).
        SQLite: the database's write lock, taken now (as lock_requester does)."""
        if getattr(self._local, "session", None) is None:
            raise RuntimeError("lock_request() holds only inside Store.atomic()")
        with self.session() as session:
            if session.connection().dialect.name == "postgresql":
                session.execute(select(RequestRow.id).where(RequestRow.id == request_id).with_for_update())
            else:
                self._begin_immediately(session)

    def approvals(self, request_id: int) -> list[Approval]:
        with self.session() as session:
            rows = session.scalars(
                select(ApprovalRow).where(ApprovalRow.request_id == request_id).order_by(ApprovalRow.id)
            )
            return [entity(Approval, row) for row in rows]

    def add_approval(self, request_id: int, approver_id: str) -> Approval:
        """Record an approval (the unique key refuses a second one by the same person)."""
        approval = Approval(request_id=request_id, approver_id=approver_id, at=self.now())
        with self.session() as session:
            session.add(ApprovalRow(request_id=request_id, approver_id=approver_id, at=approval.at))
            session.flush()
        return approval

    def pending_unreminded(self, reminder: ApproverReminder, filed_before: datetime) -> list[Request]:
        """Pending requests filed before `filed_before` whose reminder of this kind is not sent."""
        column = getattr(RequestRow, reminder)
        with self.session() as session:
            rows = session.scalars(
                select(RequestRow)
                .where(
                    RequestRow.status == Status.PENDING,
                    RequestRow.created_at <= filed_before,
                    column.is_(None),
                )
                .order_by(RequestRow.id)
            )
            return [request_of(row) for row in rows]

    def mark_reminded(self, request_id: int, reminder: ApproverReminder) -> bool:
        """Compare-and-set: True for the one caller (of any replica) that sends this reminder."""
        column = getattr(RequestRow, reminder)
        with self.session() as session:
            result = session.execute(
                update(RequestRow)
                .where(RequestRow.id == request_id, RequestRow.status == Status.PENDING, column.is_(None))
                .values({str(reminder): self.now()})
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def unmark_reminded(self, request_id: int, reminder: ApproverReminder) -> None:
        """The reminder could not be sent: the next run tries again."""
        with self.session() as session:
            session.execute(
                update(RequestRow).where(RequestRow.id == request_id).values({str(reminder): None})
            )
