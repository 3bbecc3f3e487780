"""Requests and their leases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from bot.core.clock import utc
from bot.core.errors import NotFound
from bot.core.model import (
    OPEN_STATUSES,
    ExtraReader,
    FederatedCredentialSpec,
    Kind,
    ReaderKind,
    Request,
    Status,
)
from bot.store.database import Database, columns, entity
from bot.store.tables import RequestRow


def request_of(row: RequestRow) -> Request:
    readers = tuple(
        ExtraReader(r["object_id"], ReaderKind(r["kind"]), r["display_name"]) for r in row.extra_readers or ()
    )
    return entity(
        Request,
        row,
        kind=Kind(row.kind),
        status=Status(row.status),
        federated=_spec(row.federated),
        extra_readers=readers,
    )


def _readers_column(readers: tuple[ExtraReader, ...]) -> list[dict[str, str]] | None:
    return [
        {"object_id": r.object_id, "kind": str(r.kind), "display_name": r.display_name} for r in readers
    ] or None


def _spec(data: dict[str, Any] | None) -> FederatedCredentialSpec | None:
    if not data:
        return None
    return FederatedCredentialSpec(
        name=str(data["name"]),
        issuer=str(data["issuer"]),
        subject=str(data["subject"]),
        audiences=tuple(str(a) for a in data.get("audiences") or ()),
        description=str(data.get("description") or ""),
    )


def _spec_json(spec: FederatedCredentialSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {
        "name": spec.name,
        "issuer": spec.issuer,
        "subject": spec.subject,
        "audiences": list(spec.audiences),
        "description": spec.description,
    }


class RequestRepository(Database):
    def add_request(self, request: Request, *, ttl: timedelta) -> Request:
        now = self.now()
        request.created_at = request.updated_at = now
        request.expires_at = now + ttl
        request.status = request.status or Status.PENDING
        row = RequestRow(
            **columns(request, skip=("id", "federated", "extra_readers")),
            federated=_spec_json(request.federated),
            extra_readers=_readers_column(request.extra_readers),
        )
        with self.session() as session:
            session.add(row)
            session.flush()  # assigns the id, also inside an outer atomic() transaction
            request.id = row.id
        return request

    def get_request(self, request_id: int) -> Request:
        with self.session() as session:
            found = session.get(RequestRow, request_id)
            if found is None:
                raise NotFound(f"There is no request #{request_id}.")
            return request_of(found)

    def update_request(self, request_id: int, **values: Any) -> None:
        with self.session() as session:
            session.execute(
                update(RequestRow).where(RequestRow.id == request_id).values(updated_at=self.now(), **values)
            )

    def transition(
        self, request_id: int, *, from_status: Sequence[str], to_status: str, **values: Any
    ) -> bool:
        """Compare-and-set on the status: True only for the one caller that moved it."""
        with self.session() as session:
            result = session.execute(
                update(RequestRow)
                .where(RequestRow.id == request_id, RequestRow.status.in_(list(from_status)))
                .values(status=to_status, updated_at=self.now(), **values)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def requests_by(self, requester_id: str, statuses: Sequence[str] = OPEN_STATUSES) -> list[Request]:
        with self.session() as session:
            rows = session.scalars(
                select(RequestRow)
                .where(RequestRow.requester_id == requester_id, RequestRow.status.in_(list(statuses)))
                .order_by(RequestRow.id)
            )
            return [request_of(row) for row in rows]

    def requests_in(self, statuses: Sequence[str]) -> list[Request]:
        with self.session() as session:
            rows = session.scalars(
                select(RequestRow).where(RequestRow.status.in_(list(statuses))).order_by(RequestRow.id)
            )
            return [request_of(row) for row in rows]

    def count_recent_requests(self, requester_id: str, since: datetime) -> int:
        with self.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(RequestRow)
                    .where(RequestRow.requester_id == requester_id, RequestRow.created_at >= since)
                )
                or 0
            )

    def expired_pending(self) -> list[Request]:
        with self.session() as session:
            rows = session.scalars(
                select(RequestRow).where(
                    RequestRow.status == Status.PENDING, RequestRow.expires_at <= self.now()
                )
            )
            return [request_of(row) for row in rows]

    def claim(self, request_id: int, owner: str, lease: timedelta, *, taking_over: str | None = None) -> bool:
        """Take (or renew) the lease on an approved request; False if another holder has it.
        `taking_over` names a holder known to be dead: its lease is taken even if not run out
        (a compare-and-set on that name, so of two replicas taking over, one wins)."""
        now = self.now()
        free = [
            RequestRow.lease_owner.is_(None),
            RequestRow.lease_owner == owner,
            RequestRow.lease_until < now,
        ]
        if taking_over is not None:
            free.append(RequestRow.lease_owner == taking_over)
        with self.session() as session:
            result = session.execute(
                update(RequestRow)
                .where(RequestRow.id == request_id, RequestRow.status == Status.APPROVED, or_(*free))
                .values(lease_owner=owner, lease_until=now + lease, attempts=RequestRow.attempts + 1)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def renew(self, request_id: int, owner: str, lease: timedelta) -> bool:
        """Extend a lease this owner still holds; False if it was lost (taken over, or finished)."""
        with self.session() as session:
            result = session.execute(
                update(RequestRow)
                .where(
                    RequestRow.id == request_id,
                    RequestRow.status == Status.APPROVED,
                    RequestRow.lease_owner == owner,
                )
                .values(lease_until=self.now() + lease)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def release(self, request_id: int, owner: str) -> None:
        with self.session() as session:
            session.execute(
                update(RequestRow)
                .where(RequestRow.id == request_id, RequestRow.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def approved_leases(self, limit: int = 100) -> list[tuple[int, str | None]]:
        """Approved requests with their lease holder (None: free, or its lease ran out)."""
        now = self.now()
        with self.session() as session:
            rows = session.execute(
                select(RequestRow.id, RequestRow.lease_owner, RequestRow.lease_until)
                .where(RequestRow.status == Status.APPROVED)
                .order_by(RequestRow.id)
                .limit(limit)
            )
            return [
                (id_, owner if owner is not None and until is not None and utc(until) >= now else None)
                for id_, owner, until in rows
            ]
