"""SQLAlchemy 2 models and the queries the bot needs (SQLite by default, PostgreSQL for replicas).

Rows are read as detached snapshots (expire_on_commit=False); every change goes through a
method here, and the ones that decide something (approve, claim) are compare-and-set
UPDATEs, so two clicks or two replicas cannot both win. The audit table has no update or
delete path here, and the database refuses both (triggers, bot/migrations/versions/0002).
The schema is made only by the migrations (bot/schema.py), never by create_all.
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from bot.clock import Clock, SystemClock, utc
from bot.exceptions import Conflict, NotFound


class Base(DeclarativeBase):
    pass


class Kind(enum.StrEnum):
    NEW_APP = "new_app"
    ROTATE = "rotate"


class Status(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # decided; the workflow owns it until completed or failed
    COMPLETED = "completed"
    FAILED = "failed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


OPEN_STATUSES = (Status.PENDING, Status.APPROVED)


class Request(Base):
    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    requester_id: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    # what was asked for
    display_name: Mapped[str] = mapped_column(String(256))
    sign_in_audience: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str | None] = mapped_column(String(512))
    redirect_platform: Mapped[str | None] = mapped_column(String(16))
    secret_description: Mapped[str] = mapped_column(String(256))
    secret_days: Mapped[int] = mapped_column(Integer)
    justification: Mapped[str] = mapped_column(Text)
    # decision
    approver_id: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deny_reason: Mapped[str | None] = mapped_column(Text)
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    # what the workflow made (IDs only, never a value)
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    object_id: Mapped[str | None] = mapped_column(String(64))
    service_principal_id: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64))
    secret_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vault_secret_id: Mapped[str | None] = mapped_column(String(512))
    old_key_id: Mapped[str | None] = mapped_column(String(64))
    grace_days: Mapped[float | None] = mapped_column()
    verified: Mapped[bool | None] = mapped_column(Boolean)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    # work distribution
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Step(Base):
    """The step log: each workflow step is written before ("started") and after it runs."""

    __tablename__ = "request_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # started | finished | failed
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ManagedApp(Base):
    __tablename__ = "managed_apps"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256))
    sign_in_audience: Mapped[str] = mapped_column(String(64))
    vault_secret_name: Mapped[str] = mapped_column(String(127))
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppOwner(Base):
    __tablename__ = "app_owners"

    client_id: Mapped[str] = mapped_column(ForeignKey("managed_apps.client_id"), primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    entra_user_id: Mapped[str | None] = mapped_column(String(64))


class Credential(Base):
    """A client secret whose value the vault holds (a row is written only after the vault write)."""

    __tablename__ = "credentials"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("managed_apps.client_id"), index=True)
    description: Mapped[str] = mapped_column(String(256))
    hint: Mapped[str] = mapped_column(String(16))
    end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vault_secret_id: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | retiring | removed
    remove_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReminderSent(Base):
    __tablename__ = "reminders_sent"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    threshold_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobLease(Base):
    """A lease row per scheduled job: the holder is the leader for that job until `until`;
    `last_run` is when any replica last ran it."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _in_transaction(connection: Connection) -> bool:
    """Has the DBAPI connection (pysqlite) begun a transaction of its own yet?"""
    return bool(getattr(connection.connection.dbapi_connection, "in_transaction", False))


def _detail(values: dict[str, Any]) -> dict[str, Any]:
    """Audit/step detail, made JSON-safe."""
    return dict(json.loads(json.dumps(values, default=str)))


class Store:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._local = threading.local()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> Store:
        return cls(make_engine(url), clock=clock)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction; inside `atomic()` every call on this thread joins the same one."""
        current: Session | None = getattr(self._local, "session", None)
        if current is not None:
            yield current
            return
        with self._sessions.begin() as session:
            self._local.session = session
            try:
                yield session
            finally:
                self._local.session = None

    def atomic(self) -> AbstractContextManager[Session]:
        """Group several changes (a state change and its audit event) into one transaction."""
        return self.session()

    def lock_requester(self, requester_id: str) -> None:
        """Inside atomic(): until that transaction ends, no other transaction anywhere (thread,
        process or replica) holds this lock for the same requester, so counting their requests
        and filing one cannot interleave with another's. PostgreSQL: a transaction-scoped
        advisory lock keyed by the requester. SQLite: the database's write lock, taken now
        (BEGIN IMMEDIATE) instead of at the first write, so the counts read next stay true."""
        if getattr(self._local, "session", None) is None:
            raise RuntimeError("lock_requester() holds only inside Store.atomic()")
        with self.session() as session:
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                    {"key": f"oauth-bot requests of {requester_id}"},
                )
            elif connection.dialect.name == "sqlite" and not _in_transaction(connection):
                # pysqlite begins a transaction only before its first INSERT/UPDATE/DELETE (the
                # reads before that run outside any); with nothing written yet, begin it here.
                connection.exec_driver_sql("BEGIN IMMEDIATE")

    def now(self) -> datetime:
        return self.clock.now()

    # --- requests ---------------------------------------------------------------------
    def add_request(self, request: Request, *, ttl: timedelta) -> Request:
        now = self.now()
        request.created_at = request.updated_at = now
        request.expires_at = now + ttl
        request.status = request.status or Status.PENDING
        with self.session() as session:
            session.add(request)
            session.flush()  # assigns the id, also inside an outer atomic() transaction
        return request

    def get_request(self, request_id: int) -> Request:
        with self.session() as session:
            found = session.get(Request, request_id)
        if found is None:
            raise NotFound(f"There is no request #{request_id}.")
        return found

    def update_request(self, request_id: int, **values: Any) -> None:
        with self.session() as session:
            session.execute(
                update(Request).where(Request.id == request_id).values(updated_at=self.now(), **values)
            )

    def transition(
        self, request_id: int, *, from_status: Sequence[str], to_status: str, **values: Any
    ) -> bool:
        """Compare-and-set on the status: True only for the one caller that moved it."""
        with self.session() as session:
            result = session.execute(
                update(Request)
                .where(Request.id == request_id, Request.status.in_(list(from_status)))
                .values(status=to_status, updated_at=self.now(), **values)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def requests_by(self, requester_id: str, statuses: Sequence[str] = OPEN_STATUSES) -> list[Request]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(Request)
                    .where(Request.requester_id == requester_id, Request.status.in_(list(statuses)))
                    .order_by(Request.id)
                )
            )

    def requests_in(self, statuses: Sequence[str]) -> list[Request]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(Request).where(Request.status.in_(list(statuses))).order_by(Request.id)
                )
            )

    def count_recent_requests(self, requester_id: str, since: datetime) -> int:
        with self.session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Request)
                    .where(Request.requester_id == requester_id, Request.created_at >= since)
                )
                or 0
            )

    def expired_pending(self) -> list[Request]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(Request).where(Request.status == Status.PENDING, Request.expires_at <= self.now())
                )
            )

    # --- leases -----------------------------------------------------------------------
    def claim(
        self, request_id: int, owner: str, lease: timedelta, *, taking_over: str | None = None
    ) -> bool:
        """Take (or renew) the lease on an approved request; False if another holder has it.
        `taking_over` names a holder known to be dead: its lease is taken even if not run out
        (a compare-and-set on that name, so of two replicas taking over, one wins)."""
        now = self.now()
        free = [Request.lease_owner.is_(None), Request.lease_owner == owner, Request.lease_until < now]
        if taking_over is not None:
            free.append(Request.lease_owner == taking_over)
        with self.session() as session:
            result = session.execute(
                update(Request)
                .where(Request.id == request_id, Request.status == Status.APPROVED, or_(*free))
                .values(lease_owner=owner, lease_until=now + lease, attempts=Request.attempts + 1)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def renew(self, request_id: int, owner: str, lease: timedelta) -> bool:
        """Extend a lease this owner still holds; False if it was lost (taken over, or finished)."""
        with self.session() as session:
            result = session.execute(
                update(Request)
                .where(
                    Request.id == request_id, Request.status == Status.APPROVED, Request.lease_owner == owner
                )
                .values(lease_until=self.now() + lease)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def release(self, request_id: int, owner: str) -> None:
        with self.session() as session:
            session.execute(
                update(Request)
                .where(Request.id == request_id, Request.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    def approved_leases(self, limit: int = 100) -> list[tuple[int, str | None]]:
        """Approved requests with their lease holder (None: free, or its lease ran out)."""
        now = self.now()
        with self.session() as session:
            rows = session.execute(
                select(Request.id, Request.lease_owner, Request.lease_until)
                .where(Request.status == Status.APPROVED)
                .order_by(Request.id)
                .limit(limit)
            )
            return [
                (id_, owner if owner is not None and until is not None and utc(until) >= now else None)
                for id_, owner, until in rows
            ]

    def acquire_job(
        self, name: str, holder: str, lease: timedelta, *, taking_over: str | None = None
    ) -> bool:
        """Become (or stay) the leader for a scheduled job until the lease runs out;
        `taking_over` names a leader known to be dead, whose lease is taken at once."""
        now = self.now()
        try:
            with self.session() as session:
                if session.get(JobLease, name) is None:
                    session.add(JobLease(name=name, holder=None, until=None))
        except IntegrityError:
            pass  # another replica created the row first
        with self.session() as session:
            result = session.execute(
                update(JobLease)
                .where(
                    JobLease.name == name,
                    or_(
                        JobLease.holder.is_(None),
                        JobLease.holder == holder,
                        JobLease.until < now,
                        JobLease.holder == taking_over,
                    ),
                )
                .values(holder=holder, until=now + lease)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def job_holder(self, name: str) -> str | None:
        with self.session() as session:
            lease = session.get(JobLease, name)
            return None if lease is None else lease.holder

    def job_due(self, name: str, every: timedelta) -> bool:
        """True if no replica ran the job within `every`."""
        with self.session() as session:
            lease = session.get(JobLease, name)
            return lease is None or lease.last_run is None or self.now() - utc(lease.last_run) >= every

    def job_ran(self, name: str) -> None:
        with self.session() as session:
            session.execute(update(JobLease).where(JobLease.name == name).values(last_run=self.now()))

    # --- steps ------------------------------------------------------------------------
    def record_step(self, request_id: int, step: str, state: str, **detail: Any) -> None:
        with self.session() as session:
            session.add(
                Step(request_id=request_id, step=step, state=state, at=self.now(), detail=_detail(detail))
            )

    def steps(self, request_id: int) -> list[Step]:
        with self.session() as session:
            return list(session.scalars(select(Step).where(Step.request_id == request_id).order_by(Step.id)))

    # --- apps and credentials ---------------------------------------------------------
    def add_managed_app(self, app: ManagedApp, owners: dict[str, str | None]) -> None:
        with self.session() as session:
            if session.get(ManagedApp, app.client_id) is None:
                app.created_at = self.now()
                session.add(app)
                session.flush()
            for slack_user_id, entra_user_id in owners.items():
                if session.get(AppOwner, (app.client_id, slack_user_id)) is None:
                    session.add(
                        AppOwner(
                            client_id=app.client_id, slack_user_id=slack_user_id, entra_user_id=entra_user_id
                        )
                    )

    def set_entra_owner(self, client_id: str, slack_user_id: str, entra_user_id: str) -> None:
        with self.session() as session:
            session.execute(
                update(AppOwner)
                .where(AppOwner.client_id == client_id, AppOwner.slack_user_id == slack_user_id)
                .values(entra_user_id=entra_user_id)
            )

    def managed_app(self, client_id: str) -> ManagedApp | None:
        with self.session() as session:
            return session.get(ManagedApp, client_id)

    def managed_apps_named(self, display_name: str) -> list[ManagedApp]:
        with self.session() as session:
            return list(session.scalars(select(ManagedApp).where(ManagedApp.display_name == display_name)))

    def managed_apps(self, owner: str | None = None) -> list[ManagedApp]:
        with self.session() as session:
            query = select(ManagedApp).order_by(ManagedApp.display_name)
            if owner is not None:
                query = query.join(AppOwner).where(AppOwner.slack_user_id == owner)
            return list(session.scalars(query))

    def owners(self, client_id: str) -> list[AppOwner]:
        with self.session() as session:
            return list(session.scalars(select(AppOwner).where(AppOwner.client_id == client_id)))

    def add_credential(self, credential: Credential) -> None:
        with self.session() as session:
            if session.get(Credential, credential.key_id) is None:
                credential.created_at = self.now()
                session.add(credential)

    def credentials(
        self, client_id: str, statuses: Sequence[str] = ("active", "retiring")
    ) -> list[Credential]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(Credential)
                    .where(Credential.client_id == client_id, Credential.status.in_(list(statuses)))
                    .order_by(Credential.created_at)
                )
            )

    def soonest_credentials(
        self, *, owner: str | None = None, limit: int = 20
    ) -> list[tuple[ManagedApp, Credential]]:
        """Live credentials, soonest expiry first (expired first of all), with their apps: one query."""
        with self.session() as session:
            query = (
                select(ManagedApp, Credential)
                .join(Credential, Credential.client_id == ManagedApp.client_id)
                .where(Credential.status.in_(["active", "retiring"]))
                .order_by(Credential.end.is_(None), Credential.end)
                .limit(limit)
            )
            if owner is not None:
                query = query.join(AppOwner, AppOwner.client_id == ManagedApp.client_id).where(
                    AppOwner.slack_user_id == owner
                )
            return [(app, credential) for app, credential in session.execute(query).all()]

    def credential(self, key_id: str) -> Credential | None:
        with self.session() as session:
            return session.get(Credential, key_id)

    def set_credential_status(self, key_id: str, status: str, **values: Any) -> None:
        with self.session() as session:
            session.execute(
                update(Credential).where(Credential.key_id == key_id).values(status=status, **values)
            )

    def credentials_due_for_removal(self) -> list[Credential]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(Credential).where(
                        Credential.status == "retiring", Credential.remove_after <= self.now()
                    )
                )
            )

    # --- reminders --------------------------------------------------------------------
    def mark_reminder(self, key_id: str, threshold_days: int) -> bool:
        """Record a reminder; False if it was already sent (so it is sent once)."""
        try:
            with self.session() as session:
                session.add(ReminderSent(key_id=key_id, threshold_days=threshold_days, sent_at=self.now()))
        except IntegrityError:
            return False
        return True

    def unmark_reminder(self, key_id: str, threshold_days: int) -> None:
        with self.session() as session:
            found = session.get(ReminderSent, (key_id, threshold_days))
            if found is not None:
                session.delete(found)

    # --- audit (append-only) ----------------------------------------------------------
    def audit(
        self,
        actor: str,
        action: str,
        *,
        request_id: int | None = None,
        client_id: str | None = None,
        **detail: Any,
    ) -> None:
        with self.session() as session:
            session.add(
                AuditEvent(
                    at=self.now(),
                    actor=actor,
                    action=action,
                    request_id=request_id,
                    client_id=client_id,
                    detail=_detail(detail),
                )
            )

    def audit_events(self, *, request_id: int | None = None) -> list[AuditEvent]:
        with self.session() as session:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if request_id is not None:
                query = query.where(AuditEvent.request_id == request_id)
            return list(session.scalars(query))


def require_status(request: Request, *allowed: str) -> None:
    if request.status not in allowed:
        raise Conflict(f"Request #{request.id} is already {request.status}.")
