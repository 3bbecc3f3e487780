"""`oauth-bot doctor`: check each dependency the way the bot uses it, and say what to fix."""

from __future__ import annotations

from collections.abc import Callable

from slack_sdk.errors import SlackApiError

from bot.azure.identity import TokenSource
from bot.config import Settings
from bot.core.access import USER_READ_ROLE
from bot.core.errors import OAuthBotError
from bot.flows.new_app import OWNER_ROLE
from bot.slack.client import web_client
from bot.slack.usergroups import SlackApprovers
from bot.store import Store
from bot.store.schema import ensure_schema

NEEDED_ROLE = "Application.ReadWrite.OwnedBy"


def run_doctor(settings: Settings, *, out: Callable[[str], None] = print) -> int:
    failures = 0

    def check(name: str, action: Callable[[], str]) -> None:
        nonlocal failures
        try:
            out(f"ok    {name}: {action()}")
        except (OAuthBotError, SlackApiError, OSError, ValueError) as error:
            failures += 1
            out(f"FAIL  {name}: {error}")

    def configuration() -> str:
        settings.require_for_serve()
        return "complete"

    check("configuration", configuration)

    def slack() -> str:
        response = web_client(settings).auth_test()
        return f"signed in as {response.get('user')} in {response.get('team')}"

    check("Slack", slack)

    def approval_policy() -> str:
        policy = settings.policy
        if not policy.from_file:
            return "no OAUTH_BOT_POLICY_FILE: one oauth-bot admin approves each request"
        approvers = SlackApprovers(web_client(settings))
        groups = sorted({s.usergroup for s in policy.approver_sets.values() if s.usergroup})
        sizes = [f"{group} ({len(approvers.usergroup_members(group))} members)" for group in groups]
        read = f"; user groups readable: {', '.join(sizes)}" if sizes else ""
        return f"{policy.source}: {len(policy.rules)} rule(s){read}"

    check("approval policy", approval_policy)
    tokens: list[TokenSource] = []

    def entra() -> str:
        tokens.append(TokenSource(settings))
        roles = tokens[0].graph_roles()
        if NEEDED_ROLE not in roles and "Application.ReadWrite.All" not in roles:
            raise OAuthBotError(f"the bot's app has no {NEEDED_ROLE} application permission (admin consent)")
        extra = (
            "adds requesters as Entra owners"
            if {OWNER_ROLE, USER_READ_ROLE} <= roles
            else (f"owners of record only (grant {OWNER_ROLE} and {USER_READ_ROLE} to add Entra owners)")
        )
        return f"token issued; roles {sorted(roles)}; {extra}"

    check("Entra ID + Graph", entra)

    def vault() -> str:
        from bot.azure.vault import Vault

        if not tokens:
            raise OAuthBotError("skipped: no token")
        Vault(
            str(settings.key_vault_url),
            tokens[0].credential(),
            tenant_id=str(settings.azure_tenant_id),
            portal_url=settings.cloud.portal_url,
        ).check_access()
        return f"{settings.key_vault_url} answers with the bot's token"

    check("Key Vault", vault)

    def database() -> str:
        store = Store.from_url(settings.database_url)
        try:
            revision = ensure_schema(store, auto_create=False)
        finally:
            store.engine.dispose()
        where = store.engine.url.render_as_string(hide_password=True)
        return f"{where} reachable, schema at revision {revision}"

    check("database", database)
    out("all checks passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1
