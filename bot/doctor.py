"""`oauth-bot doctor`: check each dependency the way the bot uses it, and say what to fix."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.azure.graph import GraphClient
from bot.azure.identity import TokenSource
from bot.azure.retry import RetryPolicy
from bot.config import Settings
from bot.core.access import USER_READ_ROLE
from bot.core.errors import GraphError, OAuthBotError
from bot.core.lifetimes import password_limit
from bot.flows.lifetimes import POLICY_READ_ROLE, POLICY_READ_ROLES
from bot.flows.new_app import OWNER_ROLE
from bot.flows.retirement import AUDIT_READ_ROLE, AUDIT_READ_ROLES, NO_PREMIUM_LICENCE
from bot.slack.client import web_client
from bot.slack.usergroups import SlackApprovers
from bot.store import Store
from bot.store.schema import ensure_schema

NEEDED_ROLE = "Application.ReadWrite.OwnedBy"


class Missing(OAuthBotError):
    """An optional capability the bot lacks: a "note" line, not a failure (it serves without)."""


def run_doctor(settings: Settings, *, out: Callable[[str], None] = print) -> int:
    failures = 0

    def check(name: str, action: Callable[[], str]) -> None:
        nonlocal failures
        try:
            out(f"ok    {name}: {action()}")
        except Missing as note:
            out(f"note  {name}: {note}")
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

    check("approval policy", lambda: _approval_policy(settings))
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
    if tokens:
        _optional_permissions(settings, tokens[0], out)

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

    check("database", lambda: _database(settings))
    out("all checks passed" if not failures else f"{failures} check(s) failed")
    return 0 if not failures else 1


def _approval_policy(settings: Settings) -> str:
    policy = settings.policy
    if not policy.from_file:
        return "no OAUTH_BOT_POLICY_FILE: one oauth-bot admin approves each request"
    approvers = SlackApprovers(web_client(settings))
    groups = sorted({s.usergroup for s in policy.approver_sets.values() if s.usergroup})
    sizes = [f"{group} ({len(approvers.usergroup_members(group))} members)" for group in groups]
    read = f"; user groups readable: {', '.join(sizes)}" if sizes else ""
    return f"{policy.source}: {len(policy.rules)} rule(s){read}"


def _database(settings: Settings) -> str:
    store = Store.from_url(settings.database_url)
    try:
        revision = ensure_schema(store, auto_create=False)
    finally:
        store.engine.dispose()
    where = store.engine.url.render_as_string(hide_password=True)
    return f"{where} reachable, schema at revision {revision}"


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
        raise Missing(
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


NO_SUCH_KEY = "00000000-0000-0000-0000-000000000000"  # asks the report without naming a real secret


def _optional_permissions(settings: Settings, tokens: TokenSource, out: Callable[[str], None]) -> None:
    """What the optional Graph permissions add, and what the bot does without them ("note"
    lines: the bot serves either way, so they are not failures)."""
    try:
        roles = tokens.graph_roles()
    except OAuthBotError:
        return
    graph = GraphClient(
        settings.graph_base,
        tokens.graph_auth(),
        retry=RetryPolicy(budget_seconds=min(settings.oauth_bot_retry_budget_seconds, 10)),
        timeout=settings.oauth_bot_http_timeout_seconds,
    )
    try:
        out(_tenant_limits_line(graph, roles))
        out(_sign_in_activity_line(graph, roles))
    finally:
        graph.close()


def _tenant_limits_line(graph: GraphClient, roles: set[str]) -> str:
    without = (
        "the form offers every lifetime up to OAUTH_BOT_MAX_SECRET_DAYS and a lifetime the tenant's "
        "app management policy refuses fails after approval, with a message to ask for a shorter one"
    )
    if not POLICY_READ_ROLES & roles:
        return f"note  Tenant lifetime limits: missing {POLICY_READ_ROLE} (application permission); {without}"
    try:
        tenant = graph.default_app_management_policy()
    except GraphError as error:
        unreadable = "the tenant's app management policy is not readable"
        return f"note  Tenant lifetime limits: {unreadable} ({error}); {without}"
    limit = password_limit(tenant, (), created=datetime.now(UTC))
    if not limit.passwords_allowed:
        found = "client secrets are not allowed on new apps (requesters are told to ask for a federated one)"
    elif limit.max_days is not None:
        found = f"client secrets of new apps last at most {limit.max_days} days: the form offers no longer"
    else:
        found = "the tenant's app management policy sets no limit on client secrets"
    return f"ok    Tenant lifetime limits: {found}"


def _sign_in_activity_line(graph: GraphClient, roles: set[str]) -> str:
    without = (
        "retiring secrets are removed when their grace period ends, whether or not something still uses them"
    )
    if not AUDIT_READ_ROLES & roles:
        return f"note  Safe retirement: missing {AUDIT_READ_ROLE} (application permission); {without}"
    try:
        graph.credential_usage(NO_SUCH_KEY)
    except GraphError as error:
        if error.code == NO_PREMIUM_LICENCE:
            licence = "the tenant has no Microsoft Entra ID P1 licence"
            return f"note  Safe retirement: {licence} ({error}); {without}"
        return f"note  Safe retirement: sign-in activity is not readable ({error}); {without}"
    return "ok    Safe retirement: sign-in activity is readable; a retiring secret still in use is kept"
