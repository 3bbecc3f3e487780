"""Engine and sessions: one transaction per unit of work, shared by the repositories."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.core.clock import Clock, SystemClock, utc

T = TypeVar("T")
D = TypeVar("D", bound="Database")


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


def detail(values: dict[str, Any]) -> dict[str, Any]:
    """Audit/step detail, made JSON-safe."""
    return dict(json.loads(json.dumps(values, default=str)))


def entity(cls: type[T], row: Any, **overrides: Any) -> T:
    """A row as its bot.core.model dataclass (timestamps made timezone-aware: SQLite drops it)."""
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(row, f.name)
        values[f.name] = utc(value) if isinstance(value, datetime) else value
    return cls(**(values | overrides))


def columns(item: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass's fields as column values for its row."""
    return {f.name: getattr(item, f.name) for f in fields(item) if f.name not in skip}


class Database:
    """The engine, a clock, and the thread's current transaction."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._local = threading.local()

    @classmethod
    def from_url(cls: type[D], url: str, *, clock: Clock | None = None) -> D:
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
            else:
                self._begin_immediately(session)

    @staticmethod
    def _begin_immediately(session: Session) -> None:
        """SQLite: take the database's write lock now, not at the first write."""
        connection = session.connection()
        if connection.dialect.name == "sqlite" and not _in_transaction(connection):
            # pysqlite begins a transaction only before its first INSERT/UPDATE/DELETE (the
            # reads before that run outside any); with nothing written yet, begin it here.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    def ping(self) -> None:
        """Raise if the database cannot answer a query now (readiness)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def now(self) -> datetime:
        return self.clock.now()
