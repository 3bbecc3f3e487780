"""Federated identity credentials oauth-bot added to the apps it manages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from bot.core.federation import FederatedRecord
from bot.core.model import ManagedApp
from bot.store.database import Database, columns, entity
from bot.store.tables import AppOwnerRow, FederatedCredentialRow, ManagedAppRow


class FederationRepository(Database):
    def add_federated(self, record: FederatedRecord) -> None:
        """Record a credential once (a resumed request records the one it adopted, again)."""
        with self.session() as session:
            if session.get(FederatedCredentialRow, record.credential_id) is None:
                record.created_at = self.now()
                session.add(FederatedCredentialRow(**columns(record)))

    def federated(self, client_id: str) -> list[FederatedRecord]:
        """The app's federated credentials that oauth-bot added and did not see removed."""
        with self.session() as session:
            rows = session.scalars(
                select(FederatedCredentialRow)
                .where(
                    FederatedCredentialRow.client_id == client_id,
                    FederatedCredentialRow.removed_at.is_(None),
                )
                .order_by(FederatedCredentialRow.created_at)
            )
            return [entity(FederatedRecord, row) for row in rows]

    def owners_and_federated(self, client_ids: Sequence[str]) -> tuple[dict[str, list[str]], set[str]]:
        """The Slack owners of each of these apps (as owners_of), and which of them have a
        federated credential oauth-bot added: one query (the expiry scan asks once per page)."""
        owners: dict[str, list[str]] = {}
        federated: set[str] = set()
        if not client_ids:
            return owners, federated
        has_federated = (
            select(FederatedCredentialRow.credential_id)
            .where(
                FederatedCredentialRow.client_id == AppOwnerRow.client_id,
                FederatedCredentialRow.removed_at.is_(None),
            )
            .exists()
        )
        with self.session() as session:
            rows = session.execute(
                select(AppOwnerRow.client_id, AppOwnerRow.slack_user_id, has_federated)
                .where(AppOwnerRow.client_id.in_(list(client_ids)))
                .order_by(AppOwnerRow.client_id, AppOwnerRow.slack_user_id)
            )
            for client_id, slack_user_id, trusted in rows:
                owners.setdefault(client_id, []).append(slack_user_id)
                if trusted:
                    federated.add(client_id)
        return owners, federated

    def federated_of(
        self, *, owner: str | None = None, limit: int = 20
    ) -> list[tuple[ManagedApp, FederatedRecord]]:
        """Federated credentials with their apps, newest first (App Home): one query."""
        with self.session() as session:
            query = (
                select(ManagedAppRow, FederatedCredentialRow)
                .join(FederatedCredentialRow, FederatedCredentialRow.client_id == ManagedAppRow.client_id)
                .where(FederatedCredentialRow.removed_at.is_(None))
                .order_by(FederatedCredentialRow.created_at.desc())
                .limit(limit)
            )
            if owner is not None:
                query = query.join(AppOwnerRow, AppOwnerRow.client_id == ManagedAppRow.client_id).where(
                    AppOwnerRow.slack_user_id == owner
                )
            rows = session.execute(query).all()
            return [(entity(ManagedApp, app), entity(FederatedRecord, fic)) for app, fic in rows]

    def mark_federated_removed(self, credential_id: str, at: datetime) -> None:
        with self.session() as session:
            session.execute(
                update(FederatedCredentialRow)
                .where(FederatedCredentialRow.credential_id == credential_id)
                .values(removed_at=at)
            )
