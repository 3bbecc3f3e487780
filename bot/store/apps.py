"""Managed apps, their owners and the credentials oauth-bot issued for them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update

from bot.core.model import (
    LIVE_CREDENTIALS,
    AppOwner,
    Credential,
    CredentialStatus,
    ManagedApp,
    RetireState,
)
from bot.store.database import Database, columns, entity
from bot.store.tables import AppOwnerRow, CredentialRow, ManagedAppRow


def _credential(row: CredentialRow) -> Credential:
    state = RetireState(row.retire_state) if row.retire_state else None
    return entity(Credential, row, status=CredentialStatus(row.status), retire_state=state)


class AppRepository(Database):
    def add_managed_app(self, app: ManagedApp, owners: dict[str, str | None]) -> None:
        with self.session() as session:
            if session.get(ManagedAppRow, app.client_id) is None:
                app.created_at = self.now()
                session.add(ManagedAppRow(**columns(app)))
                session.flush()
            for slack_user_id, entra_user_id in owners.items():
                if session.get(AppOwnerRow, (app.client_id, slack_user_id)) is None:
                    session.add(
                        AppOwnerRow(
                            client_id=app.client_id, slack_user_id=slack_user_id, entra_user_id=entra_user_id
                        )
                    )

    def set_entra_owner(self, client_id: str, slack_user_id: str, entra_user_id: str) -> None:
        with self.session() as session:
            session.execute(
                update(AppOwnerRow)
                .where(AppOwnerRow.client_id == client_id, AppOwnerRow.slack_user_id == slack_user_id)
                .values(entra_user_id=entra_user_id)
            )

    def managed_app(self, client_id: str) -> ManagedApp | None:
        with self.session() as session:
            row = session.get(ManagedAppRow, client_id)
            return None if row is None else entity(ManagedApp, row)

    def managed_apps_named(self, display_name: str) -> list[ManagedApp]:
        with self.session() as session:
            rows = session.scalars(select(ManagedAppRow).where(ManagedAppRow.display_name == display_name))
            return [entity(ManagedApp, row) for row in rows]

    def managed_apps(self, owner: str | None = None) -> list[ManagedApp]:
        with self.session() as session:
            query = select(ManagedAppRow).order_by(ManagedAppRow.display_name)
            if owner is not None:
                query = query.join(AppOwnerRow).where(AppOwnerRow.slack_user_id == owner)
            return [entity(ManagedApp, row) for row in session.scalars(query)]

    def owners(self, client_id: str) -> list[AppOwner]:
        with self.session() as session:
            rows = session.scalars(select(AppOwnerRow).where(AppOwnerRow.client_id == client_id))
            return [entity(AppOwner, row) for row in rows]

    def owners_of(self, client_ids: Sequence[str]) -> dict[str, list[str]]:
        """The Slack owners of each of these apps (apps without owners left out): one query."""
        found: dict[str, list[str]] = {}
        if not client_ids:
            return found
        with self.session() as session:
            rows = session.execute(
                select(AppOwnerRow.client_id, AppOwnerRow.slack_user_id)
                .where(AppOwnerRow.client_id.in_(list(client_ids)))
                .order_by(AppOwnerRow.client_id, AppOwnerRow.slack_user_id)
            )
            for client_id, slack_user_id in rows:
                found.setdefault(client_id, []).append(slack_user_id)
        return found

    def add_credential(self, credential: Credential) -> None:
        with self.session() as session:
            if session.get(CredentialRow, credential.key_id) is None:
                credential.created_at = self.now()
                session.add(CredentialRow(**columns(credential)))

    def credentials(self, client_id: str, statuses: Sequence[str] = LIVE_CREDENTIALS) -> list[Credential]:
        with self.session() as session:
            rows = session.scalars(
                select(CredentialRow)
                .where(CredentialRow.client_id == client_id, CredentialRow.status.in_(list(statuses)))
                .order_by(CredentialRow.created_at)
            )
            return [_credential(row) for row in rows]

    def soonest_credentials(
        self, *, owner: str | None = None, limit: int = 20
    ) -> list[tuple[ManagedApp, Credential]]:
        """Live credentials, soonest expiry first (expired first of all), with their apps: one query."""
        with self.session() as session:
            query = (
                select(ManagedAppRow, CredentialRow)
                .join(CredentialRow, CredentialRow.client_id == ManagedAppRow.client_id)
                .where(CredentialRow.status.in_(list(LIVE_CREDENTIALS)))
                .order_by(CredentialRow.end.is_(None), CredentialRow.end)
                .limit(limit)
            )
            if owner is not None:
                query = query.join(AppOwnerRow, AppOwnerRow.client_id == ManagedAppRow.client_id).where(
                    AppOwnerRow.slack_user_id == owner
                )
            rows = session.execute(query).all()
            return [(entity(ManagedApp, app), _credential(credential)) for app, credential in rows]

    def credential(self, key_id: str) -> Credential | None:
        with self.session() as session:
            row = session.get(CredentialRow, key_id)
            return None if row is None else _credential(row)

    def set_credential_status(self, key_id: str, status: CredentialStatus, **values: Any) -> None:
        with self.session() as session:
            session.execute(
                update(CredentialRow).where(CredentialRow.key_id == key_id).values(status=status, **values)
            )

    def retire_if(
        self,
        key_id: str,
        *,
        expect: RetireState | None,
        expect_check_after: datetime | None = None,
        **values: Any,
    ) -> bool:
        """Compare-and-set on a retiring secret's retire_state and check_after: True only for
        the one caller whose expectation still held (two replicas, or a rerun, never act twice)."""
        state, check = CredentialRow.retire_state, CredentialRow.check_after
        with self.session() as session:
            result = session.execute(
                update(CredentialRow)
                .where(
                    CredentialRow.key_id == key_id,
                    CredentialRow.status == CredentialStatus.RETIRING,
                    state.is_(None) if expect is None else state == expect,
                    check.is_(None) if expect_check_after is None else check == expect_check_after,
                )
                .values(**values)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def credentials_due_for_removal(self) -> list[Credential]:
        with self.session() as session:
            rows = session.scalars(
                select(CredentialRow).where(
                    CredentialRow.status == CredentialStatus.RETIRING,
                    CredentialRow.remove_after <= self.now(),
                )
            )
            return [_credential(row) for row in rows]

    def credential_expiry_counts(self, now: datetime, limits: Sequence[int]) -> dict[str, int]:
        """Live credentials already expired, and those ending within each limit in days
        (cumulative, not yet expired): {"expired": n, "7": n, "30": n}. One query (/metrics)."""
        end = CredentialRow.end
        buckets = {"expired": end <= now} | {
            str(limit): (end > now) & (end <= now + timedelta(days=limit)) for limit in limits
        }
        with self.session() as session:
            row = session.execute(
                select(*(func.coalesce(func.sum(case((c, 1), else_=0)), 0) for c in buckets.values())).where(
                    CredentialRow.status.in_(list(LIVE_CREDENTIALS))
                )
            ).one()
        return {name: int(count) for name, count in zip(buckets, row, strict=True)}
