"""Builds the bot's parts from the settings: one of each per process."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

from bot.clock import Clock
from bot.config import Settings
from bot.graph import GraphClient
from bot.identity import TokenSource
from bot.logs import redact_value
from bot.notifier import SlackNotifier, make_web_client
from bot.retry import RetryPolicy
from bot.store import Store
from bot.vault import Vault
from bot.worker import Worker
from bot.workflow import Workflow

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    tokens: TokenSource
    graph: GraphClient
    vault: Vault
    workflow: Workflow
    worker: Worker

    def close(self) -> None:
        self.worker.stop()
        self.graph.close()
        self.vault.close()


def build(settings: Settings, *, clock: Clock | None = None, create_schema: bool = True) -> Services:
    for secret in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.azure_client_secret,
    ):
        if secret is not None:
            redact_value(secret.get_secret_value())
    store = Store.from_url(settings.database_url, clock=clock)
    if create_schema:
        store.create_schema()
    tokens = TokenSource(settings)
    graph = GraphClient(
        settings.graph_base,
        tokens.graph_auth(),
        retry=RetryPolicy(budget_seconds=settings.oauth_bot_retry_budget_seconds),
        timeout=settings.oauth_bot_http_timeout_seconds,
    )
    vault = Vault(
        str(settings.key_vault_url),
        tokens.credential(),
        tenant_id=str(settings.azure_tenant_id),
        portal_url=settings.cloud.portal_url,
        timeout=settings.oauth_bot_http_timeout_seconds,
        budget_seconds=settings.oauth_bot_retry_budget_seconds,
    )
    notifier = SlackNotifier(make_web_client(settings), settings)

    @lru_cache(maxsize=1)
    def granted_roles() -> frozenset[str]:
        return frozenset(tokens.graph_roles())

    workflow = Workflow(
        settings=settings,
        store=store,
        graph=graph,
        vault=vault,
        notifier=notifier,
        granted_roles=lambda: set(granted_roles()),
        executor=ThreadPoolExecutor(
            max_workers=3 * settings.oauth_bot_worker_threads, thread_name_prefix="step"
        ),
    )
    worker = Worker(
        workflow,
        store,
        threads=settings.oauth_bot_worker_threads,
        poll_seconds=settings.oauth_bot_poll_seconds,
    )
    return Services(settings, store, tokens, graph, vault, workflow, worker)


def warm_up(services: Services) -> None:
    """Fetch the tokens and the vault's auth challenge now, off the requests' critical path."""
    services.tokens.token(services.tokens.graph_scope)
    services.vault.check_access()
