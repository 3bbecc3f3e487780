"""Builds the bot's parts from the settings: one of each per process."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from bot.azure.arm import RoleAssignments
from bot.azure.graph import GraphClient
from bot.azure.identity import TokenSource
from bot.azure.retry import RetryPolicy
from bot.azure.vault import Vault
from bot.azure.verify import SecretVerifier
from bot.config import Settings
from bot.core.access import Access
from bot.core.clock import Clock
from bot.core.errors import OAuthBotError
from bot.core.model import Kind, Request
from bot.engine.liveness import Liveness, liveness_for
from bot.engine.runner import BoundaryHook, Runner, new_worker_id, no_hook
from bot.engine.scheduler import Scheduler
from bot.engine.worker import Worker
from bot.flows.approvals import Approvals
from bot.flows.federation import FederationFlow
from bot.flows.intake import Intake
from bot.flows.issuance import SecretIssuer
from bot.flows.lifecycle import Lifecycle
from bot.flows.lifetimes import TenantLimits
from bot.flows.new_app import NewAppFlow
from bot.flows.outcomes import Outcomes
from bot.flows.read_access import ReadAccessFlow
from bot.flows.removal import RemovalFlow
from bot.flows.retirement import Retirement
from bot.flows.rotation import RotationFlow
from bot.logs import redact_value
from bot.metrics import BotMetrics
from bot.slack.client import web_client
from bot.slack.home import build_home
from bot.slack.notifier import SlackNotifier
from bot.slack.usergroups import SlackApprovers
from bot.store import Store
from bot.store.schema import ensure_schema

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    tokens: TokenSource
    graph: GraphClient
    vault: Vault
    intake: Intake
    runner: Runner
    worker: Worker
    lifecycle: Lifecycle
    scheduler: Scheduler
    notifier: SlackNotifier
    liveness: Liveness
    step_pool: ThreadPoolExecutor  # the new-app flow's side steps (service principal, owners)
    metrics: BotMetrics  # this process's registry, served on GET /metrics
    tenant_limits: TenantLimits  # the tenant's app management policy, when the bot may read it
    read_access: ReadAccessFlow | None = None
    role_assignments: RoleAssignments | None = None

    def refresh_homes(self, user_ids: list[str]) -> None:
        """Re-publish the App Home of these users (in the background; best effort)."""
        for user_id in dict.fromkeys(user_ids):
            self._home_pool.submit(self._publish_home, user_id)

    def _publish_home(self, user_id: str) -> None:
        try:
            self.notifier.publish_home(user_id, build_home(self.lifecycle.home(user_id)))
        except OAuthBotError as error:
            log.info("home of %s not refreshed: %s", user_id, error)

    def __post_init__(self) -> None:
        self._home_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="home")

    def close(self) -> None:
        self.scheduler.stop()
        self.worker.stop()
        self.liveness.close()  # after the worker: from now on others may carry on what it left
        self.step_pool.shutdown(wait=True)
        self._home_pool.shutdown(wait=True)
        self.tenant_limits.close()
        self.graph.close()
        self.vault.close()
        if self.role_assignments is not None:
            self.role_assignments.close()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    create_schema: bool = True,
    at_boundary: BoundaryHook = no_hook,
) -> Services:
    """Every part of the bot, wired: the composition root (`at_boundary`: tests' fault hook)."""
    for secret in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.azure_client_secret,
    ):
        if secret is not None:
            redact_value(secret.get_secret_value())
    store = Store.from_url(settings.database_url, clock=clock)
    # One registry per process (not prometheus_client's global one: in-process tests run several bots).
    metrics = BotMetrics()
    metrics.watch_expiry(store.credential_expiry_counts, store.now)
    # Only SQLite is created on the fly; PostgreSQL (replicas) is migrated with `oauth-bot migrate`.
    ensure_schema(store, auto_create=create_schema and store.engine.dialect.name == "sqlite")
    tokens = TokenSource(settings)
    graph = GraphClient(
        settings.graph_base,
        tokens.graph_auth(),
        retry=RetryPolicy(budget_seconds=settings.oauth_bot_retry_budget_seconds),
        timeout=settings.oauth_bot_http_timeout_seconds,
        metrics=metrics,
    )
    vault = Vault(
        str(settings.key_vault_url),
        tokens.credential(),
        tenant_id=str(settings.azure_tenant_id),
        portal_url=settings.cloud.portal_url,
        timeout=settings.oauth_bot_http_timeout_seconds,
        budget_seconds=settings.oauth_bot_retry_budget_seconds,
        metrics=metrics,
    )
    notifier = SlackNotifier(web_client(settings, metrics), settings)
    role_assignments = (
        RoleAssignments(
            settings.resource_manager_base,
            tokens.credential(),
            vault_resource_id=settings.key_vault_resource_id,
            timeout=settings.oauth_bot_http_timeout_seconds,
            budget_seconds=settings.oauth_bot_retry_budget_seconds,
        )
        if settings.key_vault_resource_id
        else None
    )

    @lru_cache(maxsize=1)
    def granted_roles() -> frozenset[str]:
        return frozenset(tokens.graph_roles())

    verifier = SecretVerifier(
        authority_host=settings.authority_host,
        tenant_id=str(settings.azure_tenant_id),
        scope=tokens.graph_scope,
        budget_seconds=settings.oauth_bot_verify_budget_seconds,
        timeout=settings.oauth_bot_http_timeout_seconds,
    )
    liveness = liveness_for(store.engine, new_worker_id())
    runner = Runner(
        store,
        liveness,
        lease=timedelta(seconds=settings.oauth_bot_lease_seconds),
        at_boundary=at_boundary,
        metrics=metrics,
    )
    roles = lambda: set(granted_roles())  # noqa: E731
    access = Access(
        settings=settings, store=store, directory=graph, email_of=notifier.user_email, granted_roles=roles
    )
    tenant_limits = TenantLimits(graph=graph, clock=store, granted_roles=roles)
    outcomes = Outcomes(settings=settings, store=store, notifier=notifier, steps=runner, metrics=metrics)
    issuer = SecretIssuer(settings=settings, store=store, graph=graph, vault=vault, steps=runner)
    step_pool = ThreadPoolExecutor(
        max_workers=2 * settings.oauth_bot_worker_threads, thread_name_prefix="step"
    )
    read_access = ReadAccessFlow(
        settings=settings,
        store=store,
        graph=graph,
        notifier=notifier,
        access=access,
        grants=role_assignments,
        steps=runner,
        pool=step_pool,
        granted_roles=roles,
        outcomes=outcomes,
    )
    federation = FederationFlow(settings=settings, store=store, graph=graph, steps=runner, outcomes=outcomes)
    retirement = Retirement(
        settings=settings,
        store=store,
        graph=graph,
        sign_ins=graph,
        notifier=notifier,
        granted_roles=roles,
    )
    removal = RemovalFlow(
        store=store,
        graph=graph,
        vault=vault,
        notifier=notifier,
        steps=runner,
        outcomes=outcomes,
        usage=retirement,
    )
    new_app = NewAppFlow(
        store=store,
        graph=graph,
        notifier=notifier,
        granted_roles=roles,
        steps=runner,
        issuer=issuer,
        outcomes=outcomes,
        pool=step_pool,
        federation=federation,
        read_access=read_access,
    )
    rotation = RotationFlow(
        store=store,
        graph=graph,
        steps=runner,
        issuer=issuer,
        outcomes=outcomes,
        verify=verifier,
        read_access=read_access,
    )

    def failed(request: Request, message: str, code: str | None) -> None:
        # No grant outlives a request that failed; ended first, so a Retry right after the
        # failure cannot have its new grants withdrawn.
        try:
            read_access.withdraw(request)
        except Exception:  # failing the request matters more; the revocation job finishes it
            log.exception("grants of failed request %s not withdrawn", request.id)
        outcomes.fail(request, message, code)

    runner.connect(
        {
            Kind.NEW_APP: new_app.run,
            Kind.ROTATE: rotation.run,
            Kind.READ_ACCESS: read_access.run,
            Kind.FEDERATE: federation.run,
            Kind.REMOVE_SECRET: removal.run,
        },
        on_failure=failed,
    )
    approvals = Approvals(
        settings=settings,
        store=store,
        notifier=notifier,
        approvers=SlackApprovers(web_client(settings, metrics)),
        outcomes=outcomes,
    )
    intake = Intake(
        settings=settings,
        store=store,
        graph=graph,
        notifier=notifier,
        access=access,
        outcomes=outcomes,
        approvals=approvals,
        read_access=read_access,
        tenant_limits=tenant_limits,
    )
    worker = Worker(
        runner,
        store,
        liveness,
        before_poll=intake.expire_stale,
        threads=settings.oauth_bot_worker_threads,
        poll_seconds=settings.oauth_bot_poll_seconds,
        metrics=metrics,
    )
    lifecycle = Lifecycle(
        settings=settings,
        store=store,
        graph=graph,
        vault=vault,
        notifier=notifier,
        access=access,
        retirement=retirement,
        metrics=metrics,
    )
    scheduler = Scheduler(store, liveness=liveness)
    scheduler.add("expiry-scan", timedelta(hours=settings.oauth_bot_scan_interval_hours), lifecycle.scan)
    scheduler.add("retire-old-secrets", timedelta(minutes=1), lifecycle.retire_due)
    scheduler.add("remind-approvers", timedelta(minutes=5), approvals.remind)
    if read_access.enabled:
        scheduler.add("revoke-read-access", timedelta(minutes=5), read_access.revoke_expired)
    services = Services(
        settings,
        store,
        tokens,
        graph,
        vault,
        intake,
        runner,
        worker,
        lifecycle,
        scheduler,
        notifier,
        liveness,
        step_pool,
        metrics,
        tenant_limits,
        read_access,
        role_assignments,
    )
    outcomes.on_change = services.refresh_homes
    return services


def warm_up(services: Services) -> None:
    """Fetch the tokens and the vault's auth challenge now, off the requests' critical path."""
    services.tokens.token(services.tokens.graph_scope)
    services.vault.check_access()
    if services.role_assignments is not None:  # the grant before the DM then needs no token call
        try:
            services.tokens.token(services.role_assignments.token_scope)
        except OAuthBotError as error:  # read access is an extra: the bot serves without it
            log.warning("no Resource Manager token yet (read access will try again): %s", error)
