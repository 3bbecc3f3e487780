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

    def resource_manager() -> str:
        return _read_access_check(settings, tokens)

    check("Resource Manager (read access)", resource_manager)

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


def _read_access_check(settings: Settings, tokens: list[TokenSource]) -> str:
    """Whether the bot may write (and delete) role assignments at the vault: its effective
    permissions there, notActions honoured. Conditions (the built-in one of Key Vault Data
    Access Administrator, or one on Role Based Access Control Administrator) are not listed
    by the permissions API: they only narrow which roles it may assign."""
    from bot.azure.arm import DELETE, WRITE, RoleAssignments, allows
    from bot.flows.readers import DIRECTORY_READ_ROLE

    if not settings.key_vault_resource_id:
        return "off (KEY_VAULT_RESOURCE_ID unset): requesters ask the admins for read access"
    if not tokens:
        raise OAuthBotError("skipped: no token")
    arm = RoleAssignments(
        settings.resource_manager_base,
        tokens[0].credential(),
        vault_resource_id=settings.key_vault_resource_id,
        timeout=settings.oauth_bot_http_timeout_seconds,
        budget_seconds=settings.oauth_bot_retry_budget_seconds,
    )
    try:
        permissions = arm.effective_permissions()
    finally:
        arm.close()
    missing = [action for action in (WRITE, DELETE) if not allows(permissions, action)]
    if missing:
        raise OAuthBotError(
            f"the bot's identity may not {' or '.join(missing)} on the vault, so requesters and extra "
            "readers cannot be given read access to their secret (the requests still complete): give it "
            "'Key Vault Data Access Administrator' on the vault, or 'Role Based Access Control "
            "Administrator' with the README's condition"
        )
    readers = (
        "extra readers are looked up with Directory.Read.All"
        if DIRECTORY_READ_ROLE in tokens[0].graph_roles()
        else f"extra readers need the Graph permission {DIRECTORY_READ_ROLE} (forms naming them say so)"
    )
    may = "the bot may create and delete role assignments on the vault (per-secret read access works)"
    return f"{may}; {readers}"
