"""Persistence: SQLAlchemy tables (tables), engine and transactions (database), a repository per
aggregate (requests and their leases, apps and credentials, the step and audit journal, jobs
and reminders, read grants), the schema's version and its Alembic migrations. Rows are mapped to
bot.core.model dataclasses here and never leave. May import bot.core; nothing above it."""

from __future__ import annotations

from bot.store.approvals import ApprovalRepository
from bot.store.apps import AppRepository
from bot.store.database import make_engine
from bot.store.federation import FederationRepository
from bot.store.grants import GrantRepository
from bot.store.jobs import JobRepository
from bot.store.journal import JournalRepository
from bot.store.requests import RequestRepository
from bot.store.tables import Base

__all__ = ["Base", "Store", "make_engine"]


class Store(
    RequestRepository,
    ApprovalRepository,
    AppRepository,
    JournalRepository,
    JobRepository,
    GrantRepository,
    FederationRepository,
):
    """One database, every repository: each unit of work (`atomic()`) spans them all."""
