"""Removing a client secret an app no longer needs (Kind.REMOVE_SECRET, after an admin's
approval): typically because the app signs in with a federated credential now.

Only a secret oauth-bot issued is ever removed here (one it has a record of, whose value it put
in the vault): the password is removed from the app, then its value in the vault is retired —
the whole vault secret deleted when no other live secret of the app has a version in it, else
just that version disabled. Both are logged steps, each safe to repeat.
"""

from __future__ import annotations

from bot.core.errors import Conflict, NotFound
from bot.core.model import CredentialStatus, Request
from bot.core.ports import Directory, Notifier, Repository, SecretStore, Steps
from bot.flows.outcomes import Outcomes


class RemovalFlow:
    def __init__(
        self,
        *,
        store: Repository,
        graph: Directory,
        vault: SecretStore,
        notifier: Notifier,
        steps: Steps,
        outcomes: Outcomes,
    ) -> None:
        self.store = store
        self.graph = graph
        self.vault = vault
        self.notifier = notifier
        self.steps = steps
        self.outcomes = outcomes

    def run(self, request: Request) -> None:
        key_id = request.key_id or ""
        credential = self.store.credential(key_id)
        if credential is None or credential.client_id != request.client_id:
            raise Conflict(f"Secret ID {key_id} was not issued by oauth-bot for this app: it is not removed.")
        app = self.store.managed_app(credential.client_id)
        if app is None:
            raise NotFound(f"oauth-bot does not manage the app {request.client_id}.")
        if credential.status != CredentialStatus.REMOVED:
            self.steps.run(
                request,
                "remove_password",
                lambda: self.graph.remove_password(app.object_id, key_id),
                key_id=key_id,
            )
            others = [c for c in self.store.credentials(app.client_id) if c.key_id != key_id]
            name, version = credential.vault_secret_id.rstrip("/").split("/")[-2:]
            reference = self.vault.reference(name, version)
            self.steps.run(
                request,
                "retire_value",
                lambda: self.vault.retire(reference, whole_secret=not others),
                secret_name=name,
                whole_secret=not others,
            )
            with self.store.atomic():
                self.store.set_credential_status(
                    key_id, CredentialStatus.REMOVED, removed_at=self.store.now()
                )
                self.store.audit(
                    request.approver_id or "oauth-bot",
                    "secret.removed",
                    request_id=request.id,
                    client_id=app.client_id,
                    key_id=key_id,
                    reason="not needed: the app signs in with a federated credential",
                    vault=("deleted" if not others else "version disabled"),
                )
        self.outcomes.complete(request, lambda: self.notifier.secret_removed(request, key_id), app.client_id)
