"""The rotation flow: a new secret next to the old one (verified at the token endpoint), the old
one kept for the grace period; at the two-secret limit, the room "Retire oldest" asked for first."""

from __future__ import annotations

from datetime import timedelta

from bot.core.errors import NotFound, SecretLimitReached
from bot.core.model import (
    MAX_PERSONAL_ACCOUNT_SECRETS,
    PERSONAL_ACCOUNT_AUDIENCES,
    Application,
    CredentialStatus,
    Request,
    StepState,
)
from bot.core.ports import Directory, Repository, Steps, Verify
from bot.flows.issuance import SecretIssuer
from bot.flows.outcomes import Outcomes, started
from bot.flows.read_access import ReadAccessFlow


class RotationFlow:
    def __init__(
        self,
        *,
        store: Repository,
        graph: Directory,
        steps: Steps,
        issuer: SecretIssuer,
        outcomes: Outcomes,
        verify: Verify,
        read_access: ReadAccessFlow | None = None,
    ) -> None:
        self.store = store
        self.graph = graph
        self.steps = steps
        self.issuer = issuer
        self.outcomes = outcomes
        self.verify = verify
        self.read_access = read_access

    def run(self, request: Request) -> None:
        app = self.graph.get_application(request.object_id or "")
        if app is None:
            raise NotFound(
                f"The app {request.display_name} ({request.client_id}) no longer exists in Entra ID."
            )
        app = self._retire_for_room(request, app)
        if (
            request.key_id is None
            and not started(self.store, request, "add_password")
            and app.sign_in_audience in PERSONAL_ACCOUNT_AUDIENCES
            and len(app.passwords) >= MAX_PERSONAL_ACCOUNT_SECRETS
        ):
            in_use = app.passwords
            oldest = min(in_use, key=lambda p: p.end or self.store.now())
            raise SecretLimitReached(
                f"{app.display_name} accepts personal Microsoft accounts, so Entra allows it at most "
                f"{MAX_PERSONAL_ACCOUNT_SECRETS} client secrets, and it has {len(in_use)}. Retire the oldest "
                f"(Secret ID {oldest.key_id}, expires {oldest.end:%Y-%m-%d}) first to make room."
            )
        principal = self.read_access.look_up(request) if self.read_access else None
        issued = self.issuer.issue(request, app, verify=self.verify)
        if self.read_access is not None:
            issued = self.read_access.grant_for(request, issued, principal)
        self._schedule_retirement(request, app, keep=issued.key_id)
        self.outcomes.finish(request, issued)

    def _retire_for_room(self, request: Request, app: Application) -> Application:
        """The removal that "Retire oldest and rotate" asked for, once, as a logged step."""
        asked = [s for s in self.store.steps(request.id) if s.step == "retire_oldest"]
        if not asked or asked[-1].state == StepState.FINISHED:
            return app
        key_id = str(asked[-1].detail["key_id"])

        def retire() -> str:
            self.graph.remove_password(app.object_id, key_id)
            with self.store.atomic():
                self.store.set_credential_status(
                    key_id, CredentialStatus.REMOVED, removed_at=self.store.now()
                )
                self.store.audit(
                    str(asked[-1].detail.get("actor") or "oauth-bot"),
                    "secret.removed",
                    request_id=request.id,
                    client_id=app.client_id,
                    key_id=key_id,
                    reason="retired to make room for a rotation",
                )
            return key_id

        self.steps.run(request, "retire_oldest", retire, key_id=key_id)
        return self.graph.get_application(app.object_id) or app

    def _schedule_retirement(self, request: Request, app: Application, *, keep: str) -> None:
        """The app's older secrets stay valid for the grace period, then are removed."""
        grace = timedelta(days=request.grace_days if request.grace_days is not None else 0)
        remove_after = self.store.now() + grace
        for credential in self.store.credentials(app.client_id, statuses=(CredentialStatus.ACTIVE,)):
            if credential.key_id != keep:
                with self.store.atomic():
                    self.store.set_credential_status(
                        credential.key_id, CredentialStatus.RETIRING, remove_after=remove_after
                    )
                    self.store.audit(
                        "oauth-bot",
                        "secret.retiring",
                        request_id=request.id,
                        client_id=app.client_id,
                        key_id=credential.key_id,
                        remove_after=remove_after.isoformat(),
                    )
