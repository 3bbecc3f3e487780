"""The secret lifecycle around the workflow: what exists, what expires, what retires.

- `inventory`: the apps a person may see, with their secrets read from Graph (the source of
  truth for credentials) and who asked and why from the database.
- `scan`: pages through the apps the bot manages (tag `oauth-bot`, `$select`, `$top=999`),
  one page in memory at a time, and reminds owners of secrets expiring within the
  thresholds — once per threshold per secret — with a digest for the admins.
- `retire_due`: removes old secrets whose grace period after a rotation has ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.config import Settings
from bot.core.access import Access, AppAction
from bot.core.clock import utc
from bot.core.errors import NotAllowed, OAuthBotError
from bot.core.model import (
    APP_TAG,
    OPEN_STATUSES,
    Application,
    Credential,
    CredentialStatus,
    ManagedApp,
    PasswordCredential,
    Request,
    Status,
    TaggedApp,
)
from bot.core.ports import Directory, Repository, SecretStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecretView:
    key_id: str
    description: str
    hint: str
    end: datetime | None
    days_left: int | None
    vault_secret_id: str | None


@dataclass(frozen=True)
class AppView:
    app: ManagedApp
    secrets: tuple[SecretView, ...]
    owners: tuple[str, ...]
    vault_portal_url: str | None
    exists: bool = True


@dataclass
class Reminder:
    client_id: str
    app_name: str
    key_id: str
    description: str
    hint: str
    end: datetime
    days_left: int
    threshold: int
    owners: list[str]


@dataclass
class ScanReport:
    apps: int = 0
    secrets: int = 0
    reminders: list[Reminder] = field(default_factory=list)


@dataclass(frozen=True)
class Retired:
    client_id: str
    app_name: str
    key_id: str
    owners: tuple[str, ...]


HOME_ROWS = 20


@dataclass(frozen=True)
class HomeData:
    """What one person's App Home shows: their secrets (soonest expiry first) and open requests;
    for an admin also the approval queue and the soonest-expiring secrets of every app."""

    now: datetime
    secrets: list[tuple[ManagedApp, Credential]]
    open_requests: list[Request]
    admin: tuple[list[Request], list[tuple[ManagedApp, Credential]]] | None


class LifecycleNotifier(Protocol):
    def expiry_reminder(self, reminder: Reminder) -> None: ...
    def expiry_digest(self, reminders: list[Reminder]) -> None: ...
    def secret_retired(self, retired: Retired) -> None: ...


def days_left(end: datetime | None, now: datetime) -> int | None:
    return None if end is None else (utc(end) - now).days


class Lifecycle:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        graph: Directory,
        vault: SecretStore,
        notifier: LifecycleNotifier,
        access: Access,
    ) -> None:
        self.settings = settings
        self.access = access
        self.store = store
        self.graph = graph
        self.vault = vault
        self.notifier = notifier

    # --- what exists ------------------------------------------------------------------
    def visible_apps(self, user_id: str, *, everyone: bool = False) -> list[ManagedApp]:
        """Your apps; with `everyone`, an admin sees every app the bot manages."""
        if everyone and not self.access.is_admin(user_id):
            raise NotAllowed("Only the oauth-bot admins can list every app.")
        return self.store.managed_apps(owner=None if everyone else user_id)

    def app_view(self, app: ManagedApp) -> AppView:
        current = self.graph.get_application(app.object_id)
        if current is None:
            return AppView(app, (), self._owners(app), None, exists=False)
        return AppView(app, self._secrets(app, current), self._owners(app), self._portal_url(app))

    def find_visible(self, user_id: str, target: str) -> ManagedApp:
        """The app named, if this person may see it (the same rules as every other command)."""
        return self.access.find(user_id, target, AppAction.VIEW)

    def _owners(self, app: ManagedApp) -> tuple[str, ...]:
        return tuple(o.slack_user_id for o in self.store.owners(app.client_id))

    def _secrets(self, app: ManagedApp, current: Application) -> tuple[SecretView, ...]:
        now = self.store.now()
        recorded = {c.key_id: c for c in self.store.credentials(app.client_id)}
        views = [
            SecretView(
                key_id=p.key_id,
                description=p.display_name,
                hint=p.hint,
                end=p.end,
                days_left=days_left(p.end, now),
                vault_secret_id=recorded[p.key_id].vault_secret_id if p.key_id in recorded else None,
            )
            for p in current.passwords
        ]
        return tuple(sorted(views, key=lambda v: v.days_left if v.days_left is not None else 10**6))

    def _portal_url(self, app: ManagedApp) -> str | None:
        latest = next(reversed(self.store.credentials(app.client_id)), None)
        if latest is None:
            return None
        name, version = latest.vault_secret_id.rstrip("/").split("/")[-2:]
        return self.vault.reference(name, version).portal_url

    def home(self, user_id: str) -> HomeData:
        """Everything the App Home of this person shows, read in four queries at most."""
        admin = None
        if self.access.is_admin(user_id):
            queue = self.store.requests_in([Status.PENDING])[:HOME_ROWS]
            admin = (queue, self.store.soonest_credentials(limit=HOME_ROWS))
        return HomeData(
            now=self.store.now(),
            secrets=self.store.soonest_credentials(owner=user_id, limit=HOME_ROWS),
            open_requests=self.store.requests_by(user_id, statuses=list(OPEN_STATUSES))[:HOME_ROWS],
            admin=admin,
        )

    # --- expiry watch -----------------------------------------------------------------
    def threshold_for(self, days: int) -> int | None:
        """The smallest reminder threshold this many days left falls within (0: expired)."""
        if days < 0:
            return 0
        within = [t for t in self.settings.reminder_days if days <= t]
        return min(within) if within else None

    def scan(self) -> ScanReport:
        report = ScanReport()
        now = self.store.now()
        horizon = now + timedelta(days=max(self.settings.reminder_days, default=0) + 1)
        for app in self.graph.iter_tagged_apps(APP_TAG, expiring_before=horizon):
            report.apps += 1
            report.secrets += app.secrets
            for password in app.expiring:
                left = days_left(password.end, now)
                threshold = None if left is None else self.threshold_for(left)
                if threshold is None or left is None or password.end is None:
                    continue
                reminder = self._remind(app, password, left, threshold)
                if reminder is not None:
                    report.reminders.append(reminder)
        if report.reminders:
            try:
                self.notifier.expiry_digest(report.reminders)
            except OAuthBotError as error:
                log.warning("expiry digest not posted: %s", error)
        self.store.audit(
            "oauth-bot",
            "scan.completed",
            apps=report.apps,
            secrets=report.secrets,
            reminders=len(report.reminders),
        )
        return report

    def _remind(
        self, app: TaggedApp, password: PasswordCredential, left: int, threshold: int
    ) -> Reminder | None:
        client_id = app.client_id
        owners = [o.slack_user_id for o in self.store.owners(client_id)]
        if not owners or password.end is None:
            return None  # not an app this installation created
        if not self.store.mark_reminder(password.key_id, threshold):
            return None  # already sent for this threshold
        reminder = Reminder(
            client_id=client_id,
            app_name=app.display_name,
            key_id=password.key_id,
            description=password.display_name,
            hint=password.hint,
            end=password.end,
            days_left=left,
            threshold=threshold,
            owners=owners,
        )
        try:
            self.notifier.expiry_reminder(reminder)
        except OAuthBotError as error:
            self.store.unmark_reminder(password.key_id, threshold)  # try again next scan
            log.warning("expiry reminder for %s not sent: %s", password.key_id, error)
            return None
        self.store.audit(
            "oauth-bot",
            "secret.reminded",
            client_id=client_id,
            key_id=password.key_id,
            threshold_days=threshold,
        )
        return reminder

    # --- grace periods ------------------------------------------------------------------
    def retire_due(self) -> list[Retired]:
        retired = []
        for credential in self.store.credentials_due_for_removal():
            app = self.store.managed_app(credential.client_id)
            if app is None:
                continue
            try:
                self.graph.remove_password(app.object_id, credential.key_id)
            except OAuthBotError as error:
                log.warning("could not retire %s: %s", credential.key_id, error)
                continue
            with self.store.atomic():
                self.store.set_credential_status(
                    credential.key_id, CredentialStatus.REMOVED, removed_at=self.store.now()
                )
                self.store.audit(
                    "oauth-bot",
                    "secret.removed",
                    client_id=app.client_id,
                    key_id=credential.key_id,
                    reason="grace period ended",
                )
            done = Retired(app.client_id, app.display_name, credential.key_id, self._owners(app))
            try:
                self.notifier.secret_retired(done)
            except OAuthBotError as error:
                log.warning("owners of %s not told about the retired secret: %s", app.client_id, error)
            retired.append(done)
        return retired
