"""The database schema's version: Alembic migrations packaged in bot/store/migrations.

`oauth-bot migrate` brings a database to HEAD (upgrade); every process checks at start that
its database is exactly at HEAD (ensure_schema). Only a SQLite database is created on the
fly: with PostgreSQL and several replicas, migrating is a deliberate release step.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.core.errors import ConfigError
from bot.store import Base, Store, make_engine

SCRIPT_LOCATION = Path(__file__).with_name("migrations")
MIGRATE = "run `oauth-bot migrate`"
PREDATES_MIGRATIONS = "0001"  # the revision whose tables create_all made before migrations existed
MIGRATION_LOCK_KEY = 0x6F617574  # the advisory lock bot/store/migrations/env.py takes too
# Alembic's `context` is a module-level proxy: one migration command at a time per process.
# (Across processes and replicas, env.py serialises PostgreSQL migrations with an advisory lock.)
_commands = threading.Lock()


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without an alembic.ini: the packaged scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _head() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {SCRIPT_LOCATION}")
    return head


HEAD: str = _head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is stamped with (None: no alembic_version, or empty)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _app_tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) & set(Base.metadata.tables)


def upgrade(target: str | Engine, revision: str = "head") -> str:
    """Migrate the database (a URL or an engine) to `revision`; returns the revision reached.

    A database made by `create_all` before migrations existed (the tables, no alembic_version)
    is adopted: if its tables are exactly the models', it is stamped at the first revision
    (what such a database is) and migrated from there, so it gets what later revisions add
    beyond tables (the audit log's triggers)."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with _commands, engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # before looking: see bot/store/migrations/env.py
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            cfg = config(connection)
            stamped = MigrationContext.configure(connection).get_current_revision()
            if stamped is None and _app_tables(connection):
                _adopt(connection, cfg)
            else:
                command.upgrade(cfg, revision)
        reached = current_revision(engine)
    except (CommandError, SQLAlchemyError) as error:
        raise ConfigError(f"cannot migrate the database: {error}") from None
    finally:
        if isinstance(target, str):
            engine.dispose()
    return reached or ""


def _adopt(connection: Connection, cfg: Config) -> None:
    differences = compare_metadata(
        MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
    )
    if differences:
        shown = "; ".join(str(d) for d in differences[:5])
        raise ConfigError(
            f"the database has oauth-bot tables but no schema revision, and they differ from "
            f"revision {HEAD} ({shown}); migrate it by hand, then `alembic stamp` it"
        )
    command.stamp(cfg, PREDATES_MIGRATIONS)
    command.upgrade(cfg, "head")


def ensure_schema(store: Store, *, auto_create: bool) -> str:
    """Make sure the database is at HEAD; returns the revision.

    An empty database is created when `auto_create` (SQLite); anything else that is not at
    HEAD is a ConfigError that says to run `oauth-bot migrate`."""
    current = current_revision(store.engine)
    if current == HEAD:
        return current
    if current is None:
        with store.engine.connect() as connection:
            has_tables = bool(_app_tables(connection))
        if has_tables:
            raise ConfigError(
                f"the database has tables but no schema revision (it predates migrations); "
                f"oauth-bot needs revision {HEAD}: {MIGRATE}"
            )
        if not auto_create:
            raise ConfigError(f"the database has no schema: {MIGRATE}")
        return upgrade(store.engine)
    if _known(current):
        raise ConfigError(
            f"the database schema is at revision {current}, this oauth-bot needs revision {HEAD}: {MIGRATE}"
        )
    raise ConfigError(
        f"the database schema is at revision {current}, which is not one of this oauth-bot's migrations "
        f"(it needs revision {HEAD}); {MIGRATE} of the oauth-bot release that wrote it, or restore a backup"
    )


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(config()).get_revision(revision) is not None
    except CommandError:
        return False
