"""Federated identity credentials: no secret, only a trust. A workload's own OIDC token (GitHub
Actions, a Kubernetes service account, another issuer) is exchanged for the app's token.

- `add` is the one step that creates the credential (`federated_credential`), never a twin:
  POST is not idempotent, so the app's credentials are listed first (a resumed or retried step
  finds the one it made, by name or by issuer and subject, and adopts it), and a lost answer is
  reconciled by listing again, never by sending the POST again blindly;
- Entra's limit of 20 credentials per app is told in words before anything is sent;
- `run` adds a credential to an app the bot manages (`/oauth-app federate`, approved).
"""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.core.errors import (
    FederatedConflict,
    FederatedLimitReached,
    GraphError,
    NotFound,
    OutcomeUnknown,
)
from bot.core.federation import FederatedRecord, FederationReady
from bot.core.model import (
    MAX_FEDERATED_CREDENTIALS,
    Application,
    FederatedCredential,
    FederatedCredentialSpec,
    Request,
)
from bot.core.ports import Directory, Repository, Steps
from bot.flows.outcomes import Outcomes

log = logging.getLogger(__name__)
MAX_CREATE_ATTEMPTS = 3
STEP = "federated_credential"


def matching(
    existing: list[FederatedCredential], spec: FederatedCredentialSpec
) -> FederatedCredential | None:
    """The credential that already is this trust: the same issuer and subject (unique per app,
    so a second one could not be made), whatever its name."""
    for credential in existing:
        if credential.issuer == spec.issuer and credential.subject == spec.subject:
            return credential
    return None


class FederationFlow:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        graph: Directory,
        steps: Steps,
        outcomes: Outcomes,
    ) -> None:
        self.settings = settings
        self.store = store
        self.graph = graph
        self.steps = steps
        self.outcomes = outcomes

    def run(self, request: Request) -> None:
        """A federated credential for an app the bot manages (Kind.FEDERATE)."""
        app = self.graph.get_application(request.object_id or "")
        if app is None:
            raise NotFound(
                f"The app {request.display_name} ({request.client_id}) no longer exists in Entra ID."
            )
        self.outcomes.finish(request, self.add(request, app))

    def add(self, request: Request, app: Application) -> FederationReady:
        """The `federated_credential` step: made once, or found and adopted; then recorded."""
        spec = request.federated
        assert spec is not None, "a federated request carries its credential"
        credential = self.steps.run(
            request, STEP, lambda: self._ensure(request, app, spec), credential_name=spec.name
        )
        self.store.add_federated(
            FederatedRecord(
                credential_id=credential.id,
                client_id=app.client_id,
                name=credential.name,
                issuer=credential.issuer,
                subject=credential.subject,
                request_id=request.id,
            )
        )
        return FederationReady(
            app=app,
            tenant_id=str(self.settings.azure_tenant_id),
            credential=credential,
            authority=f"{self.settings.authority_host.rstrip('/')}/{self.settings.azure_tenant_id}",
        )

    def _ensure(
        self, request: Request, app: Application, spec: FederatedCredentialSpec
    ) -> FederatedCredential:
        existing = self.graph.list_federated_credentials(app.object_id)
        found = self._adoptable(request, app, existing, spec, why="already on the app")
        if found is not None:
            return found
        unknown: OutcomeUnknown | None = None
        for attempt in range(MAX_CREATE_ATTEMPTS):
            if unknown is not None:
                self.graph.pause_before_resend(attempt)
            try:
                made = self.graph.add_federated_credential(app.object_id, spec)
            except OutcomeUnknown as error:
                log.warning("request %s: %s; listing the app's federated credentials", request.id, error)
                unknown = error
                existing = self.graph.list_federated_credentials(app.object_id)
                found = self._adoptable(
                    request, app, existing, spec, why="read back after an answer was lost"
                )
                if found is not None:
                    return found
                continue
            except GraphError as error:
                if error.status in (400, 409):  # a twin, a taken name or the limit, raced in meanwhile
                    existing = self.graph.list_federated_credentials(app.object_id)
                    found = self._adoptable(request, app, existing, spec, why="made meanwhile")
                    if found is not None:
                        return found
                raise
            self.store.audit(
                "oauth-bot",
                "federated.added",
                request_id=request.id,
                client_id=app.client_id,
                credential_id=made.id,
                name=made.name,
                issuer=made.issuer,
                subject=made.subject,
            )
            return made
        raise GraphError(
            f"{unknown} — {MAX_CREATE_ATTEMPTS} attempts, and none was seen on the app afterwards. "
            "The admins can retry; a retry finds the credential if it was made after all.",
            status=unknown.status if unknown else None,
        )

    def _adoptable(
        self,
        request: Request,
        app: Application,
        existing: list[FederatedCredential],
        spec: FederatedCredentialSpec,
        *,
        why: str,
    ) -> FederatedCredential | None:
        """The existing credential to adopt; FederatedConflict if the name is another trust's,
        FederatedLimitReached if there is no room for one more."""
        found = matching(existing, spec)
        if found is not None:
            known = {
                str(e.detail.get("credential_id"))
                for e in self.store.audit_events(request_id=request.id)
                if e.action in ("federated.added", "federated.adopted")
            }
            if found.id not in known:  # (a resumed request finds its own credential: no new event)
                # Under the name this request chose it was made by this request (its answer lost,
                # or the process stopped before it came); under another, by someone else.
                self.store.audit(
                    "oauth-bot",
                    "federated.added" if found.name == spec.name else "federated.adopted",
                    request_id=request.id,
                    client_id=app.client_id,
                    credential_id=found.id,
                    name=found.name,
                    found=why,
                )
            return found
        taken = next((c for c in existing if c.name == spec.name), None)
        if taken is not None:
            raise FederatedConflict(
                f"{app.display_name} already has a federated credential named {spec.name!r}, for issuer "
                f"{taken.issuer} and subject {taken.subject}. Ask again with another Credential name."
            )
        if len(existing) >= MAX_FEDERATED_CREDENTIALS:
            raise FederatedLimitReached(
                f"{app.display_name} already has {len(existing)} federated credentials, the most Entra ID "
                f"allows on one app ({MAX_FEDERATED_CREDENTIALS}). Remove one it no longer needs (the "
                "portal: App registrations → Certificates & secrets → Federated credentials), or use "
                "another app registration for this workload."
            )
        return None
