"""Alembic migrations: `oauth-bot migrate` builds exactly the models' schema, and a process
refuses to start on a database that is not at the head revision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from bot.core.errors import ConfigError
from bot.store import Base, Store, make_engine, schema
from bot.store.schema import HEAD, current_revision, ensure_schema, upgrade
from bot.store.tables import AuditEventRow
from fakes.cloud import FakeCloud
from tests.postgres.conftest import process_env

pytestmark = pytest.mark.postgres

MIGRATE = "run `oauth-bot migrate`"
APPEND_ONLY = "audit_events is append-only"


def _differences(engine: Engine) -> list[object]:
    """What autogenerate would change to make the database match bot.store's models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@pytest.fixture(params=["postgresql", "sqlite"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'oauth-bot.db'}"
    return str(request.getfixturevalue("database_url"))


def test_upgrade_builds_exactly_the_models_schema(any_url: str) -> None:
    """On an empty PostgreSQL or SQLite database, upgrade reaches HEAD, the tables, columns,
    types, indexes, unique and foreign keys are the models' (autogenerate finds nothing to do),
    a second upgrade changes nothing, and the migration's downgrade removes it all again."""
    assert ScriptDirectory.from_config(schema.config()).get_current_head() == HEAD
    engine = make_engine(any_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(any_url) == HEAD
        assert current_revision(engine) == HEAD
        assert _tables(engine) == set(Base.metadata.tables) | {"alembic_version"}
        assert _differences(engine) == []
        assert upgrade(any_url) == HEAD  # idempotent
        assert ensure_schema(Store(engine), auto_create=False) == HEAD

        with engine.begin() as connection:
            command.downgrade(schema.config(connection), "base")
        assert _tables(engine) <= {"alembic_version"}
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_sqlite_is_created_on_the_fly_postgresql_is_not(database_url: str, tmp_path: Path) -> None:
    """ensure_schema(auto_create=True) migrates an empty SQLite file to HEAD; an empty
    PostgreSQL database is refused with a ConfigError that says to run `oauth-bot migrate`,
    and nothing is created in it."""
    sqlite = Store.from_url(f"sqlite:///{tmp_path / 'fresh.db'}")
    postgres = Store.from_url(database_url)
    try:
        assert ensure_schema(sqlite, auto_create=True) == HEAD
        assert _differences(sqlite.engine) == []

        with pytest.raises(ConfigError, match=r"the database has no schema: run `oauth-bot migrate`"):
            ensure_schema(postgres, auto_create=False)
        assert _tables(postgres.engine) == set()
    finally:
        sqlite.engine.dispose()
        postgres.engine.dispose()


def test_migrate_command_brings_an_empty_database_to_head_even_when_run_twice_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """`oauth-bot migrate` with DATABASE_URL (two replicas' start-up jobs at the same moment):
    both exit 0 and print the head revision; the schema is the models'."""
    env = {**os.environ, "DATABASE_URL": database_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "migrate"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert f"the database schema is at revision {HEAD} (head)" in stdout
        assert "Traceback" not in stderr
    store = Store.from_url(database_url)
    try:
        assert ensure_schema(store, auto_create=False) == HEAD
        assert _differences(store.engine) == []
    finally:
        store.engine.dispose()


def test_an_old_or_unknown_revision_is_refused_with_both_revisions_named(migrated_url: str) -> None:
    """A database stamped with a revision this oauth-bot does not have, or one behind HEAD,
    is refused even where creating is allowed; the message names the database's revision,
    the required one, and `oauth-bot migrate`."""
    store = Store.from_url(migrated_url)
    try:
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0000abc'"))
        for auto_create in (False, True):
            with pytest.raises(ConfigError) as refused:
                ensure_schema(store, auto_create=auto_create)
            assert "revision 0000abc" in str(refused.value)
            assert f"revision {HEAD}" in str(refused.value)
            assert MIGRATE in str(refused.value)

        # A known revision behind HEAD (as after installing a release with a new migration).
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        with pytest.raises(ConfigError) as behind:
            ensure_schema(store, auto_create=True)
        assert str(behind.value) == (
            f"the database schema is at revision 0001, this oauth-bot needs revision {HEAD}: {MIGRATE}"
        )
    finally:
        store.engine.dispose()


def test_tables_made_before_migrations_are_refused_then_adopted_by_migrate(database_url: str) -> None:
    """A database made by create_all (the tables, no alembic_version) is refused at start-up
    with a message naming the required revision; `oauth-bot migrate` adopts it when its tables
    are exactly the models' (it is revision 0001's schema: stamped so, then migrated to HEAD,
    so it gets the audit triggers; the rows are kept), and refuses if they differ."""
    store = Store.from_url(database_url)
    try:
        Base.metadata.create_all(store.engine)  # what oauth-bot did before it had migrations
        store.audit("tester", "legacy.row")
        with pytest.raises(ConfigError, match=rf"no schema revision .* needs revision {HEAD}: {MIGRATE}"):
            ensure_schema(store, auto_create=True)
        assert upgrade(database_url) == HEAD
        assert ensure_schema(store, auto_create=False) == HEAD
        assert [e.action for e in store.audit_events()] == ["legacy.row"]
        with pytest.raises(DBAPIError, match=APPEND_ONLY), store.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_events"))

        with store.engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
            connection.execute(text("DROP INDEX ix_requests_status"))
        with pytest.raises(ConfigError, match="differ from revision"):
            upgrade(database_url)
        assert current_revision(store.engine) is None
    finally:
        store.engine.dispose()


def _audit_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, actor, action FROM audit_events ORDER BY id"))
        return [tuple(row) for row in rows]


def test_the_database_refuses_to_change_or_delete_audit_rows(any_url: str) -> None:
    """At HEAD, on PostgreSQL and SQLite, an UPDATE or DELETE of an audit row (plain SQL, or
    the ORM in the bot's own session) is refused by the database and leaves the row as it
    was; PostgreSQL refuses TRUNCATE too; inserting still works."""
    upgrade(any_url)
    store = Store.from_url(any_url)
    try:
        store.audit("U0DEV00001", "request.submitted", request_id=1)
        before = _audit_rows(store.engine)
        refused = [
            "UPDATE audit_events SET actor = 'U0MALLORY'",
            "UPDATE audit_events SET action = 'request.denied' WHERE id = 1",
            "DELETE FROM audit_events",
            "DELETE FROM audit_events WHERE id = 1",
        ]
        if store.engine.dialect.name == "postgresql":
            refused.append("TRUNCATE audit_events")
        for statement in refused:
            with pytest.raises(DBAPIError, match=APPEND_ONLY), store.engine.begin() as connection:
                connection.execute(text(statement))
            assert _audit_rows(store.engine) == before, statement
        with pytest.raises(DBAPIError, match=APPEND_ONLY), store.atomic() as session:
            session.delete(session.get(AuditEventRow, 1))
        with pytest.raises(DBAPIError, match=APPEND_ONLY), store.atomic() as session:
            session.execute(update(AuditEventRow).values(detail={"rewritten": True}))
        assert _audit_rows(store.engine) == before

        store.audit("U0ADMIN001", "request.approved", request_id=1)
        assert [e.action for e in store.audit_events()] == ["request.submitted", "request.approved"]
    finally:
        store.engine.dispose()


def test_migrate_upgrades_a_0001_database_and_only_then_are_audit_rows_protected(
    any_url: str, tmp_path: Path
) -> None:
    """A database at revision 0001 (the release before the triggers) lets an audit row be
    changed; `oauth-bot migrate` brings it to HEAD, keeps the rows, and from then on the
    database refuses UPDATE and DELETE on them."""
    assert upgrade(any_url, "0001") == "0001"
    store = Store.from_url(any_url)
    try:
        store.audit("U0DEV00001", "request.submitted", request_id=1)
        store.audit("U0DEV00001", "request.cancelled", request_id=1)
        with store.engine.begin() as connection:  # not yet protected: the triggers are what refuse
            connection.execute(text("UPDATE audit_events SET actor = 'U0DEV00001' WHERE id = 1"))

        migrated = subprocess.run(
            [sys.executable, "-m", "bot.cli", "migrate"],
            check=False,
            env={**os.environ, "DATABASE_URL": any_url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr
        assert f"the database schema is at revision {HEAD} (head)" in migrated.stdout
        assert current_revision(store.engine) == HEAD
        before = _audit_rows(store.engine)
        assert [row[2] for row in before] == ["request.submitted", "request.cancelled"]
        for statement in ("UPDATE audit_events SET actor = 'U0MALLORY'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match=APPEND_ONLY), store.engine.begin() as connection:
                connection.execute(text(statement))
        assert _audit_rows(store.engine) == before
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("state", ["empty", "unknown revision"])
def test_serve_refuses_to_start_on_a_database_not_at_head(
    state: str, cloud: FakeCloud, database_url: str, tmp_path: Path
) -> None:
    """`oauth-bot serve` (fully configured for the fakes) on an empty PostgreSQL database or
    one at a revision it does not have exits with code 2 and the ConfigError's message, no
    traceback, and leaves the database as it was."""
    if state == "unknown revision":
        upgrade(database_url)
        engine = make_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0000abc'"))
        engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        check=False,
        env=process_env(cloud, database_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert MIGRATE in result.stderr
    assert "Traceback" not in result.stderr
    engine = make_engine(database_url)
    try:
        if state == "empty":
            assert "oauth-bot: the database has no schema: run `oauth-bot migrate`" in result.stderr
            assert _tables(engine) == set()
        else:
            assert "at revision 0000abc" in result.stderr and f"revision {HEAD}" in result.stderr
            assert current_revision(engine) == "0000abc"
    finally:
        engine.dispose()
