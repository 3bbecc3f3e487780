"""Removing a client secret an app no longer needs (Kind.REMOVE_SECRET, after an admin's
approval): typically because the app signs in with a federated credential now.

Only a secret oauth-bot issued is ever removed here (one it has a record of, whose value it put
in the vault). First, once (a logged step): the app must still have a federated credential in
Entra, and — when the bot may read sign-in activity — nothing may have signed in with the
secret within OAUTH_BOT_RETIRE_QUIET_HOURS; else the request fails and says why. Then the
password is removed from the app, then its version in the vault is disabled (never the whole
vault secret: a deleted one would block the app's next rotation for the vault's retention
period). Each is a logged step, safe to repeat.
"""

from __future__ import annotations

from bot.core.clock import iso
from bot.core.errors import Conflict, NotFound, SecretStillNeeded
from bot.core.model import Credential, CredentialStatus, ManagedApp, Request
from bot.core.ports import Directory, Notifier, Repository, SecretStore, Steps
from bot.flows.outcomes import Outcomes, finished
from bot.flows.retirement import Retirement


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
        usage: Retirement,
    ) -> None:
        self.usage = usage
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
            if not finished(self.store, request, "check_not_needed"):  # (not again once removed)
                self.steps.run(request, "check_not_needed", lambda: self._check_not_needed(app, credential))
            self.steps.run(
                request,
                "remove_password",
                lambda: self.graph.remove_password(app.object_id, key_id),
                key_id=key_id,
            )
            name, version = credential.vault_secret_id.rstrip("/").split("/")[-2:]
            reference = self.vault.reference(name, version)
            self.steps.run(
                request,
                "retire_value",
                lambda: self.vault.retire(reference),
                secret_name=name,
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
                    vault="version disabled",
                )
        self.outcomes.complete(request, lambda: self.notifier.secret_removed(request, key_id), app.client_id)

    def _check_not_needed(self, app: ManagedApp, credential: Credential) -> dict[str, str]:
        """SecretStillNeeded if the app has no federated credential in Entra now, or the secret
        signed in lately (when the bot may read sign-in activity)."""
        if not self.graph.list_federated_credentials(app.object_id):
            raise SecretStillNeeded(
                f"{app.display_name} has no federated credential any more: without its client "
                f"secret {credential.key_id} nothing could sign in as it, so the secret is kept."
            )
        known, last = self.usage.recent_use(credential)
        if not known:
            raise SecretStillNeeded(
                "Whether the secret is still used could not be read from Entra now; it is kept. "
                "Retry in a few minutes."
            )
        if last is not None:
            raise SecretStillNeeded(
                f"Something signed in with client secret {credential.key_id} at {iso(last)}: it is "
                "still used, so it is kept. Move that workload to the federated credential, then "
                "ask again."
            )
        return {}
