"""Azure Resource Manager role assignments over azure-mgmt-authorization: give one person
Key Vault Secrets User on one vault secret, and take it away again.

- The assignment's name is the caller's (a deterministic GUID), so a PUT resent after a lost
  answer is a 200 for the same assignment, never a twin.
- 400 PrincipalNotFound (a directory object ARM has not seen yet) is retried with backoff
  within the retry budget; other failures are left to the SDK's retry policy (timeouts, 429,
  5xx), configured like the Key Vault client's.
- 409 RoleAssignmentExists: the person holds the role there already; that assignment is
  adopted (found by listing the scope for the principal) and marked as not made by the bot.
- 403 AuthorizationFailed is AssignmentNotPermitted: the flows degrade on it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

from bot.core.errors import ArmError, AssignmentNotPermitted
from bot.core.model import RoleAssignment

log = logging.getLogger(__name__)

KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"
PRINCIPAL_NOT_FOUND = "PrincipalNotFound"
FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 5.0  # azure-workload-identity retries 7 x 5 s


class RoleAssignments:
    def __init__(
        self,
        resource_manager_url: str,
        credential: TokenCredential,
        *,
        vault_resource_id: str,
        timeout: float = 15.0,
        budget_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        **client_options: Any,
    ) -> None:
        base = resource_manager_url.rstrip("/")
        self.vault_resource_id = vault_resource_id.rstrip("/")
        self.subscription_id = self.vault_resource_id.split("/")[2]
        self.token_scope = f"{base}/.default"
        self._budget = budget_seconds
        self._sleep = sleep
        self._client = AuthorizationManagementClient(
            credential,
            self.subscription_id,
            base_url=base,
            credential_scopes=[self.token_scope],
            connection_timeout=timeout,
            read_timeout=timeout,
            retry_total=6,
            retry_backoff_factor=0.5,
            retry_backoff_max=8,
            timeout=budget_seconds,
            **client_options,
        )

    def secret_scope(self, secret_name: str) -> str:
        return f"{self.vault_resource_id}/secrets/{secret_name}"

    def _role_definition_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.Authorization"
            f"/roleDefinitions/{KEY_VAULT_SECRETS_USER}"
        )

    def grant_secret_read(
        self,
        secret_name: str,
        principal_id: str,
        *,
        name: str,
        description: str,
        principal_type: str = "User",
    ) -> RoleAssignment:
        """Key Vault Secrets User on one secret for one principal, under the assignment name
        `name` (a GUID the caller derives, so a resent PUT is the same assignment)."""
        scope = self.secret_scope(secret_name)
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=self._role_definition_id(),
            principal_id=principal_id,
            principal_type=principal_type,
            description=description[:1024],
        )
        deadline = time.monotonic() + self._budget
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                created = self._client.role_assignments.create(scope, name, parameters)
                return RoleAssignment(scope=scope, name=str(created.name or name), made=True)
            except ResourceExistsError:
                return self._adopt(scope, principal_id)
            except HttpResponseError as error:
                if _code(error) == PRINCIPAL_NOT_FOUND and time.monotonic() + pause < deadline:
                    log.info("principal %s unknown to ARM yet; retry in %.0f s", principal_id, pause)
                    self._sleep(pause)
                    pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
                    continue
                raise _arm_error("grant read access to the secret", error) from None
            except AzureError as error:
                raise _arm_failure("grant read access to the secret", error) from None

    def _adopt(self, scope: str, principal_id: str) -> RoleAssignment:
        """The principal holds Key Vault Secrets User at this scope already: that assignment."""
        wanted = self._role_definition_id().lower()
        try:
            found = [
                a
                for a in self._client.role_assignments.list_for_scope(
                    scope, filter=f"principalId eq '{principal_id}'"
                )
                if str(a.scope or "").lower() == scope.lower()
                and str(a.role_definition_id or "").lower() == wanted
            ]
        except HttpResponseError as error:
            raise _arm_error("read the secret's role assignments", error) from None
        except AzureError as error:
            raise _arm_failure("read the secret's role assignments", error) from None
        if not found:
            raise ArmError(
                "Azure Resource Manager said the role assignment exists but did not list it.", status=409
            )
        return RoleAssignment(scope=scope, name=str(found[0].name), made=False)

    def revoke(self, scope: str, name: str) -> None:
        """Delete the assignment; one already gone counts as done (204)."""
        try:
            self._client.role_assignments.delete(scope, name)
        except HttpResponseError as error:
            if error.status_code == HTTPStatus.NOT_FOUND:
                return
            raise _arm_error("remove read access to the secret", error) from None
        except AzureError as error:
            raise _arm_failure("remove read access to the secret", error) from None

    def effective_permissions(self) -> list[tuple[list[str], list[str]]]:
        """The bot's (actions, notActions) at the vault: GET {vault}/providers/
        Microsoft.Authorization/permissions, one pair per role it holds there or above."""
        parts = self.vault_resource_id.split("/")
        try:
            found = self._client.permissions.list_for_resource(
                resource_group_name=parts[4],
                resource_provider_namespace=parts[6],
                parent_resource_path="",
                resource_type=parts[7],
                resource_name=parts[8],
            )
            return [(list(p.actions or []), list(p.not_actions or [])) for p in found]
        except HttpResponseError as error:
            raise _arm_error("read its permissions on the vault", error) from None
        except AzureError as error:
            raise _arm_failure("read its permissions on the vault", error) from None

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def allows(permissions: list[tuple[list[str], list[str]]], action: str) -> bool:
    """Whether any one permission (a role's actions less its notActions) allows `action`;
    wildcards as Azure RBAC matches them, case-insensitively."""
    return any(
        any(_matches(a, action) for a in actions) and not any(_matches(n, action) for n in not_actions)
        for actions, not_actions in permissions
    )


def _matches(pattern: str, action: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, flags=re.IGNORECASE) is not None


def _code(error: HttpResponseError) -> str | None:
    return getattr(error.error, "code", None) if error.error else None


def _arm_error(action: str, error: HttpResponseError) -> ArmError:
    status, code = error.status_code, _code(error)
    if status == HTTPStatus.FORBIDDEN:
        return AssignmentNotPermitted(
            f"Azure Resource Manager refused to let oauth-bot {action} (HTTP 403 {code or 'Forbidden'}): "
            "give the bot's identity 'Key Vault Data Access Administrator' on the vault (or 'Role Based "
            "Access Control Administrator' limited to Key Vault Secrets User)",
            code=code,
        )
    return ArmError(
        f"Azure Resource Manager could not {action}: HTTP {status} {code or ''}".strip()
        + " (after retries).",
        status=status,
        code=code,
    )


def _arm_failure(action: str, error: AzureError) -> ArmError:
    return ArmError(f"Azure Resource Manager could not {action}: {type(error).__name__} (after retries).")
