"""Scheduled jobs' leader leases and the expiry reminders already sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.core.clock import utc
from bot.store.database import Database
from bot.store.tables import JobLeaseRow, ReminderSentRow


class JobRepository(Database):
    def acquire_job(
        self, name: str, holder: str, lease: timedelta, *, taking_over: str | None = None
    ) -> bool:
        """Become (or stay) the leader for a scheduled job until the lease runs out;
        `taking_over` names a leader known to be dead, whose lease is taken at once."""
        now = self.now()
        try:
            with self.session() as session:
                if session.get(JobLeaseRow, name) is None:
                    session.add(JobLeaseRow(name=name, holder=None, until=None))
        except IntegrityError:
            pass  # another replica created the row first
        with self.session() as session:
            result = session.execute(
                update(JobLeaseRow)
                .where(
                    JobLeaseRow.name == name,
                    or_(
                        JobLeaseRow.holder.is_(None),
                        JobLeaseRow.holder == holder,
                        JobLeaseRow.until < now,
                        JobLeaseRow.holder == taking_over,
                    ),
                )
                .values(holder=holder, until=now + lease)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def job_holder(self, name: str) -> str | None:
        with self.session() as session:
            lease = session.get(JobLeaseRow, name)
            return None if lease is None else lease.holder

    def job_due(self, name: str, every: timedelta) -> bool:
        """True if no replica ran the job within `every`."""
        with self.session() as session:
            lease = session.get(JobLeaseRow, name)
            return lease is None or lease.last_run is None or self.now() - utc(lease.last_run) >= every

    def job_ran(self, name: str) -> None:
        with self.session() as session:
            session.execute(update(JobLeaseRow).where(JobLeaseRow.name == name).values(last_run=self.now()))

    def mark_reminder(self, key_id: str, threshold_days: int) -> bool:
        """Record a reminder; False if it was already sent (so it is sent once)."""
        try:
            with self.session() as session:
                session.add(ReminderSentRow(key_id=key_id, threshold_days=threshold_days, sent_at=self.now()))
        except IntegrityError:
            return False
        return True

    def reminders_sent(self, key_ids: Sequence[str]) -> set[tuple[str, int]]:
        """(key id, threshold) of every reminder already recorded for these secrets: one query."""
        if not key_ids:
            return set()
        with self.session() as session:
            rows = session.execute(
                select(ReminderSentRow.key_id, ReminderSentRow.threshold_days).where(
                    ReminderSentRow.key_id.in_(list(key_ids))
                )
            )
            return {(key_id, threshold) for key_id, threshold in rows}

    def unmark_reminder(self, key_id: str, threshold_days: int) -> None:
        with self.session() as session:
            found = session.get(ReminderSentRow, (key_id, threshold_days))
            if found is not None:
                session.delete(found)
