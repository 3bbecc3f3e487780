"""Azure Key Vault over azure-keyvault-secrets: deposit a client secret value, return where it is."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy, SansIOHTTPPolicy
from azure.keyvault.secrets import SecretClient

from bot.core.errors import VaultError, VaultPermissionError
from bot.core.model import SecretValue, StoredVersion, VaultReference
from bot.core.ports import NO_METRICS, Metrics

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; client secret of a Microsoft Entra ID application"
MAX_TAG_LENGTH = 256
SERVICE = "keyvault"
_PATH_WORDS = frozenset({"secrets", "versions", "deletedsecrets", "backup", "restore", "recover"})
_LAST = "oauth_bot.last_attempt"  # pipeline context: what the previous attempt of this call got


def operation(request: Any) -> str:
    """The call as a metric label: "PUT /secrets/{name}", "GET /secrets/{name}/versions"."""
    placeholders = iter(("{name}", "{version}"))
    parts = [
        part if not part or part in _PATH_WORDS else next(placeholders, "{id}")
        for part in urlsplit(request.url).path.split("/")
    ]
    return f"{request.method} {'/'.join(parts)}"


class CallMetrics(HTTPPolicy):
    """First in the pipeline: each Key Vault call once, with its final status or error."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def send(self, request: PipelineRequest) -> PipelineResponse:
        name = operation(request.http_request)
        try:
            response = self.next.send(request)
        except Exception as error:
            self._metrics.remote_call(SERVICE, name, type(error).__name__)
            raise
        self._metrics.remote_call(SERVICE, name, str(response.http_response.status_code))
        return response


class AttemptMetrics(SansIOHTTPPolicy):
    """Right after the SDK's retry policy: each attempt it sends again, and each 429."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def on_request(self, request: PipelineRequest) -> None:
        previous = request.context.get(_LAST)
        if previous is not None:
            self._metrics.remote_retry(SERVICE, operation(request.http_request), previous)

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        status = response.http_response.status_code
        request.context[_LAST] = str(status)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            self._metrics.remote_throttled(SERVICE, operation(request.http_request))

    def on_exception(self, request: PipelineRequest) -> None:
        request.context[_LAST] = type(sys.exc_info()[1]).__name__


class Vault:
    def __init__(
        self,
        vault_url: str,
        credential: TokenCredential,
        *,
        tenant_id: str,
        portal_url: str,
        timeout: float = 15.0,
        budget_seconds: float = 60.0,
        metrics: Metrics = NO_METRICS,
        **client_options: Any,
    ) -> None:
        self.vault_url = vault_url.rstrip("/")
        self._tenant_id = tenant_id
        self._portal_url = portal_url.rstrip("/")
        self._client = SecretClient(
            self.vault_url,
            credential,
            connection_timeout=timeout,
            read_timeout=timeout,
            retry_total=6,
            retry_backoff_factor=0.5,
            retry_backoff_max=8,
            timeout=budget_seconds,
            per_call_policies=[CallMetrics(metrics)],
            per_retry_policies=[AttemptMetrics(metrics)],
            **client_options,
        )

    @property
    def vault_name(self) -> str:
        return (urlsplit(self.vault_url).hostname or "").split(".")[0]

    def reference(self, name: str, version: str) -> VaultReference:
        secret_id = f"{self.vault_url}/secrets/{name}/{version}"
        return VaultReference(
            name=name,
            version=version,
            secret_id=secret_id,
            portal_url=(
                f"{self._portal_url}/#@{self._tenant_id}/asset/Microsoft_Azure_KeyVault/Secret/{secret_id}"
            ),
            cli_command=f"az keyvault secret show --id {secret_id} --query value -o tsv",
        )

    def deposit(
        self, name: str, secret: SecretValue, *, expires_on: datetime | None, tags: dict[str, str]
    ) -> VaultReference:
        """Write the value as a new version of `name`."""
        clean_tags = {k: v[:MAX_TAG_LENGTH] for k, v in tags.items()}
        try:
            stored = self._client.set_secret(
                name,
                secret.reveal(),
                content_type=CONTENT_TYPE,
                expires_on=expires_on,
                tags=clean_tags,
            )
        except HttpResponseError as error:
            raise _vault_error("store the secret value", error) from None
        except AzureError as error:
            raise _vault_failure("store the secret value", error) from None
        version = str(stored.properties.version)
        return self.reference(name, version)

    def read(self, reference: VaultReference) -> SecretValue:
        """The value of one version (to verify a secret after a restart; kept in memory only)."""
        try:
            stored = self._client.get_secret(reference.name, reference.version)
        except HttpResponseError as error:
            raise _vault_error("read the secret value", error) from None
        except AzureError as error:
            raise _vault_failure("read the secret value", error) from None
        return SecretValue(str(stored.value))

    def current(self, name: str) -> StoredVersion | None:
        """The latest version's id and tags (never its value), or None."""
        try:
            properties = next(
                iter(
                    sorted(
                        self._client.list_properties_of_secret_versions(name),
                        key=lambda p: p.created_on or datetime.min,
                        reverse=True,
                    )
                ),
                None,
            )
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            raise _vault_error("read the secret", error) from None
        except AzureError as error:
            raise _vault_failure("read the secret", error) from None
        if properties is None:
            return None
        return StoredVersion(str(properties.version), dict(properties.tags or {}))

    def retire(self, reference: VaultReference) -> None:
        """A value nobody may use any more: this version disabled (the secret itself stays, so
        the next rotation can add a version). A version already gone counts as done."""
        try:
            self._client.update_secret_properties(reference.name, reference.version, enabled=False)
        except ResourceNotFoundError:
            return
        except HttpResponseError as error:
            raise _vault_error("remove the secret value", error) from None
        except AzureError as error:
            raise _vault_failure("remove the secret value", error) from None

    def check_access(self) -> None:
        """Make one authenticated call (warms the auth challenge; used by start-up and doctor)."""
        try:
            self._client.get_secret("oauth-bot-access-check")
        except ResourceNotFoundError:
            return
        except HttpResponseError as error:
            raise _vault_error("reach the vault", error) from None
        except AzureError as error:
            raise _vault_failure("reach the vault", error) from None

    def close(self) -> None:
        self._client.close()


def _vault_error(action: str, error: HttpResponseError) -> VaultError:
    status = error.status_code
    code = getattr(error.error, "code", None) if error.error else None
    if status == HTTPStatus.FORBIDDEN or (
        isinstance(error, ClientAuthenticationError) and status != HTTPStatus.UNAUTHORIZED
    ):
        return VaultPermissionError(
            f"Azure Key Vault refused to {action} (HTTP 403 {code or 'Forbidden'}): give the bot's identity "
            "the 'Key Vault Secrets Officer' role on the vault (or a set/get/list access policy)",
            status=status,
            code=code,
        )
    return VaultError(
        f"Azure Key Vault could not {action}: HTTP {status} {code or ''}".strip() + " (after retries).",
        status=status,
        code=code,
    )


def _vault_failure(action: str, error: AzureError) -> VaultError:
    """A failure with no HTTP answer to show (connection, timeout, retry budget spent)."""
    # The error's name in brackets, not after a colon: "the secret value: X" reads to the log
    # redaction as a key and its value, and the cause would vanish from the logs.
    return VaultError(f"Azure Key Vault could not {action} ({type(error).__name__}, after retries).")
