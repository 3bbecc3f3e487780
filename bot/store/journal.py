"""The step log of each request and the append-only audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.core.model import AuditEvent, Step, StepState
from bot.store.database import Database, detail, entity
from bot.store.tables import AuditEventRow, StepRow


class JournalRepository(Database):
    def record_step(self, request_id: int, step: str, state: StepState, **values: Any) -> None:
        with self.session() as session:
            session.add(
                StepRow(request_id=request_id, step=step, state=state, at=self.now(), detail=detail(values))
            )

    def steps(self, request_id: int) -> list[Step]:
        with self.session() as session:
            query = select(StepRow).where(StepRow.request_id == request_id).order_by(StepRow.id)
            rows = session.scalars(query)
            return [entity(Step, row, state=StepState(row.state)) for row in rows]

    def audit(
        self,
        actor: str,
        action: str,
        *,
        request_id: int | None = None,
        client_id: str | None = None,
        **values: Any,
    ) -> None:
        """Append an event (the database refuses to change or delete one)."""
        with self.session() as session:
            session.add(
                AuditEventRow(
                    at=self.now(),
                    actor=actor,
                    action=action,
                    request_id=request_id,
                    client_id=client_id,
                    detail=detail(values),
                )
            )

    def audit_events(self, *, request_id: int | None = None) -> list[AuditEvent]:
        with self.session() as session:
            query = select(AuditEventRow).order_by(AuditEventRow.id)
            if request_id is not None:
                query = query.where(AuditEventRow.request_id == request_id)
            return [entity(AuditEvent, row) for row in session.scalars(query)]
