"""The secret lifecycle around the workflow: what exists, what expires, what retires.

- `inventory`: the apps a person may see, with their secrets read from Graph (the source of
  truth for credentials) and who asked and why from the database.
- `scan`: pages through the apps the bot manages (tag `oauth-bot`, `$select`, `$top=999`),
  at most two pages in memory, and reminds owners of secrets expiring within the thresholds —
  once per threshold per secret, even across a scan that died half-way — with a digest for
  the admins.
- `retire_due`: old secrets whose grace period after a rotation has ended (bot/flows/retirement.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Protocol

from bot.config import Settings
from bot.core.access import Access, AppAction
from bot.core.clock import utc
from bot.core.errors import NotAllowed, OAuthBotError
from bot.core.federation import FederatedRecord
from bot.core.model import (
    APP_TAG,
    OPEN_STATUSES,
    Application,
    Credential,
    CredentialStatus,
    FederatedCredential,
    ManagedApp,
    PasswordCredential,
    Request,
    Status,
    TaggedApp,
)
from bot.core.ports import NO_METRICS, Directory, Metrics, Repository, SecretStore
from bot.flows.retirement import Retired, Retirement

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
    federated: tuple[FederatedCredential, ...] = ()  # no secret: trusts in other issuers' tokens


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
    # The app signs in with a federated credential oauth-bot added, and oauth-bot issued this
    # secret: the reminder suggests removing the secret instead of rotating it.
    removable: bool = False


@dataclass
class ScanReport:
    apps: int = 0
    secrets: int = 0
    reminders: list[Reminder] = field(default_factory=list)
    paging_seconds: float = 0.0  # Graph's pages and the reminders due in them
    sending_seconds: float = 0.0  # the reminders' DMs (paced for Slack) and their records


HOME_ROWS = 20
SCAN_PAGE = 999  # the scan's Graph page ($top): the database is read once per this many apps


@dataclass(frozen=True)
class HomeData:
    """What one person's App Home shows: their secrets (soonest expiry first) and open requests;
    for an admin also the approval queue and the soonest-expiring secrets of every app."""

    now: datetime
    secrets: list[tuple[ManagedApp, Credential]]
    open_requests: list[Request]
    admin: tuple[list[Request], list[tuple[ManagedApp, Credential]]] | None
    federated: list[tuple[ManagedApp, FederatedRecord]] = field(default_factory=list)


class LifecycleNotifier(Protocol):
    def expiry_reminder(self, reminder: Reminder) -> None: ...
    def expiry_digest(self, reminders: list[Reminder]) -> None: ...


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
        retirement: Retirement,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.retirement = retirement
        self.settings = settings
        self.access = access
        self.metrics = metrics
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

    def app_view(self, app: ManagedApp, *, federated: bool = False) -> AppView:
        """One app: its secrets from Graph and, with `federated` (or when oauth-bot added one),
        its federated credentials from Graph too."""
        current = self.graph.get_application(app.object_id)
        if current is None:
            return AppView(app, (), self._owners(app), None, exists=False)
        trusts: tuple[FederatedCredential, ...] = ()
        if federated or self.store.federated(app.client_id):
            trusts = tuple(self.graph.list_federated_credentials(app.object_id))
        return AppView(
            app, self._secrets(app, current), self._owners(app), self._portal_url(app), federated=trusts
        )

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
        """Everything the App Home of this person shows, read in five queries at most."""
        admin = None
        if self.access.is_admin(user_id):
            queue = self.store.requests_in([Status.PENDING])[:HOME_ROWS]
            admin = (queue, self.store.soonest_credentials(limit=HOME_ROWS))
        return HomeData(
            now=self.store.now(),
            secrets=self.store.soonest_credentials(owner=user_id, limit=HOME_ROWS),
            open_requests=self.store.requests_by(user_id, statuses=list(OPEN_STATUSES))[:HOME_ROWS],
            admin=admin,
            federated=self.store.federated_of(owner=user_id, limit=HOME_ROWS),
        )

    # --- expiry watch -----------------------------------------------------------------
    def threshold_for(self, days: int) -> int | None:
        """The smallest reminder threshold this many days left falls within (0: expired)."""
        if days < 0:
            return 0
        within = [t for t in self.settings.reminder_days if days <= t]
        return min(within) if within else None

    def scan(self) -> ScanReport:
        """Two phases. Paging: Graph's pages are read as they come (at most two in memory), and
        for each page with secrets due the database is asked twice — the owners of those apps and
        the reminders already sent for those secrets — never once per secret. Sending: then the
        reminders due are sent one by one, paced for Slack, each recorded just before its DMs (so
        a scan that dies half-way and runs again sends the rest, and none twice) and unrecorded if
        Slack refused it (sent by the next scan)."""
        report = ScanReport()
        now = self.store.now()
        horizon = now + timedelta(days=max(self.settings.reminder_days, default=0) + 1)
        started = time.perf_counter()
        apps = self.graph.iter_tagged_apps(APP_TAG, expiring_before=horizon)
        due: list[Reminder] = []
        while page := list(islice(apps, SCAN_PAGE)):
            report.apps += len(page)
            report.secrets += sum(app.secrets for app in page)
            due.extend(self._due(page, now))
        paged = time.perf_counter()
        report.reminders = [reminder for reminder in due if self._send(reminder)]
        report.paging_seconds, report.sending_seconds = paged - started, time.perf_counter() - paged
        self.metrics.scan_done(report.paging_seconds + report.sending_seconds, report.apps, report.secrets)
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

    def _due(self, page: list[TaggedApp], now: datetime) -> list[Reminder]:
        """The reminders of one page not sent yet, for apps this installation manages."""
        candidates: list[tuple[TaggedApp, PasswordCredential, datetime, int, int]] = []
        for app in page:
            for password in app.expiring:
                left = days_left(password.end, now)
                threshold = None if left is None else self.threshold_for(left)
                if threshold is not None and left is not None and password.end is not None:
                    candidates.append((app, password, password.end, left, threshold))
        if not candidates:
            return []
        owners, trusted = self.store.owners_and_federated(sorted({app.client_id for app, *_ in candidates}))
        sent = self.store.reminders_sent(sorted({password.key_id for _, password, *_ in candidates}))
        federated = {c for c in trusted if self._still_federated(c)}
        return [
            Reminder(
                client_id=app.client_id,
                app_name=app.display_name,
                key_id=password.key_id,
                description=password.display_name,
                hint=password.hint,
                end=end,
                days_left=left,
                threshold=threshold,
                owners=owners[app.client_id],
                removable=app.client_id in federated and self._issued(password.key_id),
            )
            for app, password, end, left, threshold in candidates
            if app.client_id in owners  # else not an app this installation created
            and (password.key_id, threshold) not in sent
        ]

    def _still_federated(self, client_id: str) -> bool:
        """A federated credential oauth-bot added is still on the app (Graph says so); those
        removed meanwhile (in the portal) are marked removed."""
        app = self.store.managed_app(client_id)
        if app is None:
            return False
        try:
            on_app = {c.id for c in self.graph.list_federated_credentials(app.object_id)}
        except OAuthBotError as error:
            log.warning("federated credentials of %s not read: %s", client_id, error)
            return False
        still = False
        for record in self.store.federated(client_id):
            if record.credential_id in on_app:
                still = True
            else:
                self.store.mark_federated_removed(record.credential_id, self.store.now())
        return still

    def _issued(self, key_id: str) -> bool:
        """oauth-bot issued this secret (only those may be removed from a reminder)."""
        credential = self.store.credential(key_id)
        return credential is not None and credential.status != CredentialStatus.REMOVED

    def _send(self, reminder: Reminder) -> bool:
        if not self.store.mark_reminder(reminder.key_id, reminder.threshold):
            return False  # sent meanwhile (another replica's scan)
        try:
            self.notifier.expiry_reminder(reminder)
        except OAuthBotError as error:
            self.store.unmark_reminder(reminder.key_id, reminder.threshold)  # try again next scan
            log.warning("expiry reminder for %s not sent: %s", reminder.key_id, error)
            return False
        self.store.audit(
            "oauth-bot",
            "secret.reminded",
            client_id=reminder.client_id,
            key_id=reminder.key_id,
            threshold_days=reminder.threshold,
        )
        return True

    # --- grace periods ------------------------------------------------------------------
    def retire_due(self) -> list[Retired]:
        """Old secrets whose grace period ended: removed, or kept while still used (retirement)."""
        return self.retirement.retire_due()
