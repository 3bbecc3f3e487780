"""The new-app flow: create the app registration (an upsert: no twin), its service principal
and the requester as owner beside the secret, then the secret, then the DM."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from bot.core.access import USER_READ_ROLE
from bot.core.model import APP_TAG, Application, ManagedApp, Request, secret_name_for
from bot.core.ports import Directory, Notifier, Repository, Steps
from bot.flows.federation import FederationFlow
from bot.flows.issuance import SecretIssuer
from bot.flows.outcomes import Outcomes
from bot.flows.read_access import ReadAccessFlow

OWNER_ROLE = "Application.ReadWrite.All"


class NewAppFlow:
    def __init__(
        self,
        *,
        store: Repository,
        graph: Directory,
        notifier: Notifier,
        granted_roles: Callable[[], set[str]],
        steps: Steps,
        issuer: SecretIssuer,
        outcomes: Outcomes,
        pool: Executor,
        federation: FederationFlow,
        read_access: ReadAccessFlow | None = None,
    ) -> None:
        self.store = store
        self.graph = graph
        self.notifier = notifier
        self.granted_roles = granted_roles
        self.steps = steps
        self.issuer = issuer
        self.outcomes = outcomes
        self.pool = pool
        self.federation = federation
        self.read_access = read_access

    def run(self, request: Request) -> None:
        app = self.steps.run(request, "create_app", lambda: self._create_app(request))
        if request.client_id is None:
            with self.store.atomic():
                self.store.update_request(request.id, client_id=app.client_id, object_id=app.object_id)
                self.store.audit(
                    "oauth-bot",
                    "app.created",
                    request_id=request.id,
                    client_id=app.client_id,
                    object_id=app.object_id,
                    display_name=app.display_name,
                )
            request.client_id, request.object_id = app.client_id, app.object_id
        self.store.add_managed_app(
            ManagedApp(
                client_id=app.client_id,
                object_id=app.object_id,
                display_name=app.display_name,
                sign_in_audience=app.sign_in_audience,
                vault_secret_name=secret_name_for(app.client_id),
                request_id=request.id,
            ),
            owners={request.requester_id: None},
        )
        # The service principal and the owner are not on the way to the secret: overlap them.
        side_steps: list[Future[Any]] = [
            self.pool.submit(
                self.steps.run,
                request,
                "service_principal",
                lambda: self.graph.ensure_service_principal(app.client_id),
            ),
            self.pool.submit(self.steps.run, request, "owners", lambda: self._add_entra_owner(request, app)),
        ]
        if request.federated is not None:  # secretless: a trust instead of a password
            ready = self.federation.add(request, app)
            for future in side_steps:
                future.result()
            self.outcomes.finish(request, ready)
            return
        principal = self.read_access.look_up(request) if self.read_access else None
        issued = self.issuer.issue(request, app)
        if self.read_access is not None:
            issued = self.read_access.grant_for(request, issued, principal)
        for future in side_steps:
            future.result()
        self.outcomes.finish(request, issued)

    def _create_app(self, request: Request) -> Application:
        body: dict[str, Any] = {
            "displayName": request.display_name,
            "signInAudience": request.sign_in_audience,
            "tags": [APP_TAG],
            "notes": (
                f"Created by oauth-bot for request #{request.id}, asked by Slack user "
                f"{request.requester_id}, approved by {request.approver_id}."
            ),
        }
        if request.redirect_uri and request.redirect_platform:
            body[request.redirect_platform] = {"redirectUris": [request.redirect_uri]}
        return self.graph.upsert_application(f"oauth-bot-{request.uid}", body)

    def _add_entra_owner(self, request: Request, app: Application) -> str | None:
        """Make the requester an Entra owner when the bot has the permissions to; else None."""
        roles = self.granted_roles()
        if OWNER_ROLE not in roles or USER_READ_ROLE not in roles:
            return None
        email = self.notifier.user_email(request.requester_id)
        user_id = self.graph.find_user(email) if email else None
        if user_id is None:
            return None
        self.graph.add_owner(app.object_id, user_id)
        self.store.set_entra_owner(app.client_id, request.requester_id, user_id)
        self.store.audit(
            "oauth-bot",
            "app.owner_added",
            request_id=request.id,
            client_id=app.client_id,
            entra_user_id=user_id,
        )
        return user_id

    # --- the secret ---------------------------------------------------------------------
