"""Retiring old secrets after a rotation, without breaking what still uses them.

When a retiring secret's grace period ends and the bot may read sign-in activity
(AuditLog.Read.All, in a tenant with Entra ID P1), the app credential activity report says when
it last signed in. Used within the last OAUTH_BOT_RETIRE_QUIET_HOURS: it is kept, its owners are
told what still uses it (time, and IP address and resource when the sign-in log has them), and
it is checked again a day later; once quiet it is removed. Still used OAUTH_BOT_MAX_GRACE_DAYS
after the planned removal, an admin decides on a card in the approvals channel: Remove now, or
Keep 7 more days (then it is checked again). Without the permission or the licence the secret
is removed when its grace period ends, as before.

Every move is a compare-and-set on the credential's retire_state (and check_after), so two
replicas or a rerun after a crash never tell the owners twice, post two cards or remove twice;
a secret claimed for removal (`removing`) is removed by the next run if a crash came between.
Only secrets oauth-bot issued (its credentials table) are ever removed here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Protocol

from bot.config import Settings
from bot.core.access import is_admin
from bot.core.errors import Conflict, GraphError, NotAllowed, NotFound, OAuthBotError
from bot.core.model import Credential, CredentialStatus, ManagedApp, RetireState
from bot.core.ports import Directory, Repository, SignInActivity

log = logging.getLogger(__name__)

AUDIT_READ_ROLES = frozenset({"AuditLog.Read.All", "Directory.Read.All"})
AUDIT_READ_ROLE = "AuditLog.Read.All"
NO_PREMIUM_LICENCE = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
CHECK_EVERY = timedelta(days=1)
ADMIN_KEEPS_FOR = timedelta(days=7)
UNAVAILABLE_FOR = timedelta(hours=1)  # after a 403, the report is asked again this much later


@dataclass(frozen=True)
class Retired:
    client_id: str
    app_name: str
    key_id: str
    owners: tuple[str, ...]
    why: str = "its grace period ended"


@dataclass(frozen=True)
class StillUsed:
    """A retiring secret that something still signs in with."""

    client_id: str
    app_name: str
    key_id: str
    description: str
    owners: tuple[str, ...]
    last_sign_in: datetime
    ip_address: str | None
    resource: str | None
    planned_removal: datetime
    next_check: datetime | None  # None: an admin decides now


class RetirementNotifier(Protocol):
    def secret_retired(self, retired: Retired) -> None: ...
    def secret_still_used(self, notice: StillUsed) -> None: ...
    def retirement_decision(self, notice: StillUsed) -> None: ...


class Retirement:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        graph: Directory,
        sign_ins: SignInActivity,
        notifier: RetirementNotifier,
        granted_roles: Callable[[], set[str]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.sign_ins = sign_ins
        self.notifier = notifier
        self.granted_roles = granted_roles
        self._unavailable_until: datetime | None = None

    @property
    def quiet(self) -> timedelta:
        return timedelta(hours=self.settings.oauth_bot_retire_quiet_hours)

    def may_check_usage(self) -> bool:
        if not AUDIT_READ_ROLES & self.granted_roles():
            return False
        return self._unavailable_until is None or self.store.now() >= self._unavailable_until

    def retire_due(self) -> list[Retired]:
        """Handle every retiring secret whose grace period (or last check) is over."""
        retired = []
        now = self.store.now()
        for credential in self.store.credentials_due_for_removal():
            app = self.store.managed_app(credential.client_id)
            if app is None or not self._due(credential, now):
                continue
            done = self._retire(credential, app, now)
            if done is not None:
                retired.append(done)
        return retired

    def _due(self, credential: Credential, now: datetime) -> bool:
        if credential.retire_state == RetireState.ADMIN:
            return False  # an admin decides
        if credential.retire_state == RetireState.WATCHING:
            return credential.check_after is None or credential.check_after <= now
        return True

    def _retire(self, credential: Credential, app: ManagedApp, now: datetime) -> Retired | None:
        if credential.retire_state != RetireState.REMOVING:
            known, used = self._recent_use(credential)
            if not known:  # could not tell this time (Graph failed): ask again next run
                return None
            if used is not None:
                self._keep(credential, app, used, now)
                return None
            if not self.store.retire_if(
                credential.key_id,
                expect=credential.retire_state,
                expect_check_after=credential.check_after,
                retire_state=RetireState.REMOVING,
            ):
                return None  # another run moved it
        if credential.retire_state == RetireState.WATCHING:  # kept while in use; quiet now
            hours = f"{self.settings.oauth_bot_retire_quiet_hours:g}"
            why = f"nothing signed in with it for {hours} hours after it was kept in use"
            return self._remove(credential, app, actor="oauth-bot", reason=why, why=why)
        return self._remove(credential, app, actor="oauth-bot", reason="grace period ended")

    def _recent_use(self, credential: Credential) -> tuple[bool, datetime | None]:
        """(known, the last sign-in within the quiet period): None when there was none or the
        bot may not tell (then the timed removal goes ahead); not known when Graph failed."""
        if not self.may_check_usage():
            return True, None
        try:
            usage = self.sign_ins.credential_usage(credential.key_id)
        except GraphError as error:
            if error.status == HTTPStatus.FORBIDDEN:
                why = "no Entra ID P1 licence" if error.code == NO_PREMIUM_LICENCE else "no permission"
                log.warning("sign-in activity not readable (%s): %s; retiring by time", why, error)
                self._unavailable_until = self.store.now() + UNAVAILABLE_FOR
                return True, None
            log.warning("sign-in activity of %s not read: %s; checking again", credential.key_id, error)
            return False, None
        last = usage.last_sign_in if usage else None
        if last is None or self.store.now() - last >= self.quiet:
            return True, None
        return True, last

    def _keep(self, credential: Credential, app: ManagedApp, last: datetime, now: datetime) -> None:
        planned = credential.remove_after or now
        final = now >= planned + timedelta(days=self.settings.oauth_bot_max_grace_days)
        next_check = None if final else now + CHECK_EVERY
        if not self.store.retire_if(
            credential.key_id,
            expect=credential.retire_state,
            expect_check_after=credential.check_after,
            retire_state=RetireState.ADMIN if final else RetireState.WATCHING,
            check_after=next_check,
            last_sign_in=last,
        ):
            return  # another run got there first
        notice = self._notice(credential, app, last, planned, next_check)
        self.store.audit(
            "oauth-bot",
            "secret.retirement_escalated" if final else "secret.kept_in_use",
            client_id=app.client_id,
            key_id=credential.key_id,
            last_sign_in=last.isoformat(),
            ip_address=notice.ip_address,
            resource=notice.resource,
        )
        try:
            (self.notifier.retirement_decision if final else self.notifier.secret_still_used)(notice)
        except OAuthBotError as error:
            log.warning("retirement notice for %s not sent: %s", credential.key_id, error)
            if final:  # no admin would ever see it: post it again on the next run
                self.store.retire_if(
                    credential.key_id,
                    expect=RetireState.ADMIN,
                    retire_state=credential.retire_state,
                    check_after=credential.check_after,
                )

    def _notice(
        self,
        credential: Credential,
        app: ManagedApp,
        last: datetime,
        planned: datetime,
        next_check: datetime | None,
    ) -> StillUsed:
        detail = None
        try:
            detail = self.sign_ins.last_sign_in(
                app.client_id, credential.key_id, since=last - timedelta(minutes=5)
            )
        except GraphError as error:
            log.info("sign-in details of %s not read: %s", credential.key_id, error)
        return StillUsed(
            client_id=app.client_id,
            app_name=app.display_name,
            key_id=credential.key_id,
            description=credential.description,
            owners=tuple(o.slack_user_id for o in self.store.owners(app.client_id)),
            last_sign_in=detail.at if detail else last,
            ip_address=detail.ip_address if detail else None,
            resource=detail.resource if detail else None,
            planned_removal=planned,
            next_check=next_check,
        )

    def _remove(
        self, credential: Credential, app: ManagedApp, *, actor: str, reason: str, why: str = ""
    ) -> Retired | None:
        """removePassword (an already removed secret counts), then the record and its audit
        event together, then the owners told (`why`: what their DM says; default the grace)."""
        try:
            self.graph.remove_password(app.object_id, credential.key_id)
        except OAuthBotError as error:
            log.warning("could not retire %s: %s (trying again next run)", credential.key_id, error)
            return None
        with self.store.atomic():
            self.store.set_credential_status(
                credential.key_id, CredentialStatus.REMOVED, removed_at=self.store.now()
            )
            self.store.audit(
                actor, "secret.removed", client_id=app.client_id, key_id=credential.key_id, reason=reason
            )
        owners = tuple(o.slack_user_id for o in self.store.owners(app.client_id))
        done = Retired(app.client_id, app.display_name, credential.key_id, owners)
        done = replace(done, why=why) if why else done
        try:
            self.notifier.secret_retired(done)
        except OAuthBotError as error:
            log.warning("owners of %s not told about the retired secret: %s", app.client_id, error)
        return done

    # --- the admin's decision -----------------------------------------------------------
    def decide(self, key_id: str, *, actor: str, remove: bool) -> datetime | None:
        """Remove now (returns None) or keep 7 more days (returns until when), once: the
        clicker must be an admin, and the secret still waiting for this decision."""
        if not is_admin(self.settings, actor):
            raise NotAllowed("Only the oauth-bot admins can decide about a secret that is still in use.")
        credential = self.store.credential(key_id)
        app = self.store.managed_app(credential.client_id) if credential else None
        if credential is None or app is None:
            raise NotFound("oauth-bot has no record of that client secret.")
        if credential.status != CredentialStatus.RETIRING or credential.retire_state != RetireState.ADMIN:
            raise Conflict("This secret is no longer waiting for a decision (another admin decided).")
        checked = credential.check_after
        if remove:
            if not self.store.retire_if(
                key_id,
                expect=RetireState.ADMIN,
                expect_check_after=checked,
                retire_state=RetireState.REMOVING,
            ):
                raise Conflict("Another admin decided about this secret just now.")
            why = "an oauth-bot admin removed it while it was still in use"
            if self._remove(credential, app, actor=actor, reason=why, why=why) is None:
                raise Conflict("Graph did not remove the secret yet; oauth-bot tries again within a minute.")
            return None
        until = self.store.now() + ADMIN_KEEPS_FOR
        if not self.store.retire_if(
            key_id,
            expect=RetireState.ADMIN,
            expect_check_after=checked,
            retire_state=RetireState.WATCHING,
            check_after=until,
        ):
            raise Conflict("Another admin decided about this secret just now.")
        self.store.audit(
            actor,
            "secret.retirement_extended",
            client_id=app.client_id,
            key_id=key_id,
            until=until.isoformat(),
        )
        return until
