"""Read grants: who may read which app's vault secret through a role assignment, until when."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import select, update

from bot.core.model import ReadGrant
from bot.store.database import Database, columns, entity
from bot.store.tables import ReadGrantRow


class GrantRepository(Database):
    def add_read_grant(self, grant: ReadGrant) -> ReadGrant:
        with self.session() as session:
            row = ReadGrantRow(**columns(grant, skip=("id",)))
            session.add(row)
            session.flush()
            return replace(grant, id=row.id)

    def read_grants(self, *, request_id: int) -> list[ReadGrant]:
        with self.session() as session:
            rows = session.scalars(
                select(ReadGrantRow).where(ReadGrantRow.request_id == request_id).order_by(ReadGrantRow.id)
            )
            return [entity(ReadGrant, row) for row in rows]

    def read_grants_due(self, now: datetime) -> list[ReadGrant]:
        """Grants not yet revoked whose time is up."""
        with self.session() as session:
            rows = session.scalars(
                select(ReadGrantRow)
                .where(
                    ReadGrantRow.revoked_at.is_(None),
                    ReadGrantRow.expires_at.is_not(None),
                    ReadGrantRow.expires_at <= now,
                )
                .order_by(ReadGrantRow.expires_at, ReadGrantRow.id)
            )
            return [entity(ReadGrant, row) for row in rows]

    def read_grants_on(self, assignment_name: str) -> list[ReadGrant]:
        """Every grant (revoked or not) that rests on this role assignment."""
        with self.session() as session:
            rows = session.scalars(
                select(ReadGrantRow)
                .where(ReadGrantRow.assignment_name == assignment_name)
                .order_by(ReadGrantRow.id)
            )
            return [entity(ReadGrant, row) for row in rows]

    def end_read_grants(self, request_id: int, at: datetime) -> list[ReadGrant]:
        """Make every live grant of a request due at `at` (its request failed); those grants."""
        with self.session() as session:
            session.execute(
                update(ReadGrantRow)
                .where(ReadGrantRow.request_id == request_id, ReadGrantRow.revoked_at.is_(None))
                .values(expires_at=at)
            )
        return [g for g in self.read_grants(request_id=request_id) if g.revoked_at is None]

    def mark_read_grant_revoked(self, grant_id: int) -> bool:
        """Mark it revoked; False if it was already (so a revocation is audited once)."""
        with self.session() as session:
            result = session.execute(
                update(ReadGrantRow)
                .where(ReadGrantRow.id == grant_id, ReadGrantRow.revoked_at.is_(None))
                .values(revoked_at=self.now())
            )
            return bool(getattr(result, "rowcount", 0) == 1)
