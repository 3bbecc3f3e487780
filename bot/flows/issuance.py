"""Secret issuance: addPassword → Key Vault (→ a sign-in check), once.

- addPassword is never blindly repeated: each attempt's marks (its name and start time, which
  Graph keeps) are in the step log before it is sent; after a lost answer the app's secrets are
  read back and the one that attempt made is removed, since nobody holds its value;
- a secret is recorded as oauth-bot's only once its value is in the vault; if the vault write
  fails for good, the secret is removed again;
- only secrets this request's own attempts made are ever removed here;
- the value lives only in this process's memory between addPassword and the vault write.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from bot.config import Settings
from bot.core.clock import iso, utc
from bot.core.errors import GraphError, LifetimePolicyError, OutcomeUnknown, PasswordsNotAllowed, VaultError
from bot.core.lifetimes import FEDERATED_INSTEAD
from bot.core.model import (
    APP_TAG,
    Application,
    Credential,
    CredentialStatus,
    IssuedSecret,
    NewPassword,
    Request,
    SecretValue,
    StepState,
    VaultReference,
    secret_name_for,
)
from bot.core.ports import Directory, Repository, SecretStore, Steps, Verify
from bot.flows.outcomes import finished, started

log = logging.getLogger(__name__)
MAX_ADD_PASSWORD_ATTEMPTS = 3


class SecretIssuer:
    def __init__(
        self, *, settings: Settings, store: Repository, graph: Directory, vault: SecretStore, steps: Steps
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.vault = vault
        self.steps = steps

    @property
    def tenant_id(self) -> str:
        return str(self.settings.azure_tenant_id)

    def issue(self, request: Request, app: Application, verify: Verify | None = None) -> IssuedSecret:
        """addPassword → vault (→ verify), once, with orphans from earlier attempts removed."""
        resumed = self._resume_secret(request, app)
        if resumed is not None:
            if verify is None or finished(self.store, request, "verify"):
                return resumed
            # The value left memory with the process that stopped: read it back to check it.
            return self._verified(request, resumed, self.vault.read(resumed.vault), verify)
        try:
            new = self._add_password(request, app)
        except LifetimePolicyError:
            raise LifetimePolicyError(
                f"Your tenant's app management policy does not allow a client secret that lasts "
                f"{request.secret_days} days. Ask again with a shorter Secret expiry (oauth-bot allows up to "
                f"{self.settings.oauth_bot_max_secret_days} days; the tenant's policy is stricter).",
                code="CredentialInvalidLifetimeAsPerAppPolicy",
            ) from None
        except PasswordsNotAllowed:
            raise PasswordsNotAllowed(
                FEDERATED_INSTEAD.format(what=app.display_name), code="CredentialTypeNotAllowedAsPerAppPolicy"
            ) from None
        reference = self._deposit(request, app, new)
        end = new.credential.end or self.store.now() + timedelta(days=request.secret_days)
        issued = self._record_secret(
            request,
            app=app,
            key_id=new.credential.key_id,
            hint=new.credential.hint,
            end=end,
            reference=reference,
        )
        return issued if verify is None else self._verified(request, issued, new.secret, verify)

    def _add_password(self, request: Request, app: Application) -> NewPassword:
        """addPassword, never blindly repeated. Each attempt's marks (its name and start time,
        which Graph keeps) are in the step log before it is sent; when an answer is lost, the
        app's secrets are read back, the one that attempt made (if it did) is removed, since
        nobody holds its value, and a new attempt is made."""
        unknown: OutcomeUnknown | None = None
        for attempt in range(MAX_ADD_PASSWORD_ATTEMPTS):
            if unknown is not None:
                self.graph.pause_before_resend(attempt)
            # Entra compares startDateTime with its own clock: the real time, to the second.
            start = datetime.now(UTC).replace(microsecond=0)
            end = self.store.now() + timedelta(days=request.secret_days)
            try:
                return self.steps.run(
                    request,
                    "add_password",
                    partial(self._add_and_audit, request, app, start, end),
                    display_name=request.secret_description,
                    start=iso(start),
                )
            except OutcomeUnknown as error:
                log.warning("request %s: %s; reading the app's client secrets back", request.id, error)
                self.remove_orphans(request, app.object_id, keep=set())
                unknown = error
        raise GraphError(
            f"{unknown} — {MAX_ADD_PASSWORD_ATTEMPTS} attempts, and every client secret they made was "
            "removed again, so none exists whose value nobody holds. The admins can retry.",
            status=unknown.status if unknown else None,
        )

    def _add_and_audit(
        self, request: Request, app: Application, start: datetime, end: datetime
    ) -> NewPassword:
        added = self.graph.add_password(
            app.object_id, display_name=request.secret_description, start=start, end=end
        )
        # Audited before the step is marked finished: a crash in between leaves an orphan
        # whose removal is audited too, never a secret the trail does not mention.
        self.store.audit(
            "oauth-bot",
            "secret.added",
            request_id=request.id,
            client_id=app.client_id,
            key_id=added.credential.key_id,
        )
        return added

    def _resume_secret(self, request: Request, app: Application) -> IssuedSecret | None:
        """The secret an earlier run of this request already stored, if any; orphans of an
        earlier run that stopped between addPassword and the vault are removed."""
        if request.key_id and request.vault_secret_id:
            return self._issued_from_record(request, app)
        if started(self.store, request, "add_password"):
            adopted = self._adopt_from_vault(request, app)
            if adopted is not None:
                return adopted
            self.remove_orphans(request, app.object_id, keep=set())
        return None

    def _verified(
        self, request: Request, issued: IssuedSecret, secret: SecretValue, verify: Verify
    ) -> IssuedSecret:
        def check() -> bool:
            # Stored inside the step, like `notified`: a restart after "verify finished" keeps it.
            result = verify(issued.app.client_id, secret)
            self.store.update_request(request.id, verified=result)
            return result

        verified = self.steps.run(request, "verify", check)
        request.verified = verified
        return replace(issued, verified=verified)

    def _deposit(self, request: Request, app: Application, new: NewPassword) -> VaultReference:
        name = secret_name_for(app.client_id)
        tags = {
            "client-id": app.client_id,
            "secret-id": new.credential.key_id,
            "request-id": str(request.id),
            "requester": request.requester_id,
            "app-name": app.display_name,
            "managed-by": APP_TAG,
        }
        try:
            return self.steps.run(
                request,
                "vault",
                lambda: self.vault.deposit(name, new.secret, expires_on=new.credential.end, tags=tags),
                secret_name=name,
                key_id=new.credential.key_id,
            )
        except VaultError as error:
            # Nobody will ever hold this value: take the credential away again.
            self.steps.run(
                request,
                "remove_password",
                lambda: self.graph.remove_password(app.object_id, new.credential.key_id),
                key_id=new.credential.key_id,
            )
            self.store.audit(
                "oauth-bot",
                "secret.removed",
                request_id=request.id,
                client_id=app.client_id,
                key_id=new.credential.key_id,
                reason="vault write failed",
            )
            raise VaultError(
                f"{error} The new client secret was removed again, so no credential exists "
                "whose value nobody holds.",
                status=error.status,
                code=error.code,
            ) from None

    def _record_secret(
        self,
        request: Request,
        *,
        app: Application,
        key_id: str,
        hint: str,
        end: datetime,
        reference: VaultReference,
    ) -> IssuedSecret:
        with self.store.atomic():  # the record and its audit event: both or neither
            self.store.add_credential(
                Credential(
                    key_id=key_id,
                    client_id=app.client_id,
                    description=request.secret_description,
                    hint=hint,
                    end=end,
                    vault_secret_id=reference.secret_id,
                    status=CredentialStatus.ACTIVE,
                    request_id=request.id,
                )
            )
            self.store.update_request(
                request.id, key_id=key_id, secret_end=end, vault_secret_id=reference.secret_id
            )
            self.store.audit(
                "oauth-bot",
                "secret.stored",
                request_id=request.id,
                client_id=app.client_id,
                key_id=key_id,
                vault_secret_id=reference.secret_id,
            )
        request.key_id, request.secret_end, request.vault_secret_id = key_id, end, reference.secret_id
        return IssuedSecret(
            app=app,
            tenant_id=self.tenant_id,
            key_id=key_id,
            description=request.secret_description,
            hint=hint,
            end=end,
            vault=reference,
        )

    def _issued_from_record(self, request: Request, app: Application) -> IssuedSecret:
        assert request.key_id and request.vault_secret_id and request.secret_end
        credential = self.store.credential(request.key_id)
        name, version = request.vault_secret_id.rstrip("/").split("/")[-2:]
        return IssuedSecret(
            verified=request.verified,
            app=app,
            tenant_id=self.tenant_id,
            key_id=request.key_id,
            description=request.secret_description,
            hint=credential.hint if credential else "",
            end=utc(request.secret_end),
            vault=self.vault.reference(name, version),
        )

    def _adopt_from_vault(self, request: Request, app: Application) -> IssuedSecret | None:
        """After a crash right after the vault write: the vault's latest version names the
        secret it holds; if that secret is still on the app, it is ours."""
        name = secret_name_for(app.client_id)
        current = self.vault.current(name)
        if current is None or current.tags.get("request-id") != str(request.id):
            return None
        fresh = self.graph.get_application(app.object_id)
        key_id = current.tags.get("secret-id")
        on_app = next((p for p in (fresh.passwords if fresh else ()) if p.key_id == key_id), None)
        if on_app is None or on_app.end is None:
            return None
        self.remove_orphans(request, app.object_id, keep={on_app.key_id})
        return self._record_secret(
            request,
            app=app,
            key_id=on_app.key_id,
            hint=on_app.hint,
            end=on_app.end,
            reference=self.vault.reference(name, current.version),
        )

    def remove_orphans(self, request: Request, object_id: str, *, keep: set[str]) -> None:
        """Remove the client secrets that this request's own addPassword attempts made and whose
        value the vault does not hold. A secret is this request's when its name and start time
        are those an attempt recorded before it was sent; any other secret on the app (added in
        the portal, by another tool, by another request) is never touched."""
        app = self.graph.get_application(object_id)
        if app is None:
            return
        marks = {
            (str(s.detail.get("display_name")), str(s.detail.get("start")))
            for s in self.store.steps(request.id)
            if s.step == "add_password" and s.state == StepState.STARTED and s.detail.get("start")
        }
        held = {c.key_id for c in self.store.credentials(app.client_id)} | keep
        audited = {
            str(e.detail.get("key_id"))
            for e in self.store.audit_events(request_id=request.id)
            if e.action == "secret.added"
        }
        for password in app.passwords:
            mark = (password.display_name, iso(password.start) if password.start else "")
            if password.key_id in held or mark not in marks:
                continue
            if password.key_id not in audited:  # its answer was lost: the trail learns of it now
                self.store.audit(
                    "oauth-bot",
                    "secret.added",
                    request_id=request.id,
                    client_id=app.client_id,
                    key_id=password.key_id,
                    found="read back after an answer was lost",
                )
            self.steps.run(
                request,
                "remove_orphan",
                partial(self.graph.remove_password, object_id, password.key_id),
                key_id=password.key_id,
            )
            self.store.audit(
                "oauth-bot",
                "secret.removed",
                request_id=request.id,
                client_id=app.client_id,
                key_id=password.key_id,
                reason="orphan: no value in the vault",
            )
