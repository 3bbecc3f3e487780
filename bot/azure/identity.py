"""The bot's own Entra identity: one MSAL application per process, one token source for
Graph (as an httpx.Auth) and for Key Vault (as an azure-core TokenCredential)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import msal
import requests
from azure.core.credentials import AccessToken

from bot.config import Settings
from bot.core.errors import ConfigError, TokenError


def _certificate_credential(path: str) -> dict[str, str]:
    """MSAL's certificate form from a PEM file holding the private key and the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    pem = Path(path).read_bytes()
    start = pem.find(b"-----BEGIN CERTIFICATE-----")
    if start < 0 or b"PRIVATE KEY-----" not in pem:
        raise ConfigError(
            "AZURE_CLIENT_CERTIFICATE_PATH must be a PEM file with the private key and the certificate"
        )
    certificate = x509.load_pem_x509_certificate(pem[start:])
    return {
        "private_key": pem.decode(),
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - Entra's thumbprint is SHA-1
        "public_certificate": pem[start:].decode(),
    }


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token, unverified (it is our own token, for its roles)."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError):
        return {}


class TokenSource:
    """Access tokens for the bot's app registration, cached by MSAL until near expiry.

    A lock per scope makes concurrent first callers share one token request.
    """

    def __init__(self, settings: Settings) -> None:
        settings.require("azure_tenant_id")
        self._settings = settings
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        timeout = settings.oauth_bot_http_timeout_seconds
        self._managed: msal.ManagedIdentityClient | None = None
        self._confidential: msal.ConfidentialClientApplication | None = None
        if settings.azure_client_secret or settings.azure_client_certificate_path:
            settings.require("azure_client_id")
            credential: Any = (
                settings.azure_client_secret.get_secret_value()
                if settings.azure_client_secret
                else _certificate_credential(str(settings.azure_client_certificate_path))
            )
            try:
                self._confidential = msal.ConfidentialClientApplication(
                    settings.azure_client_id,
                    client_credential=credential,
                    authority=f"{settings.authority_host}/{settings.azure_tenant_id}",
                    # Outside Microsoft's clouds MSAL must not ask the public cloud for discovery.
                    instance_discovery=None if settings.authority_is_microsoft else False,
                    timeout=timeout,
                )
            except (ValueError, requests.RequestException) as error:
                raise TokenError(
                    f"could not reach the authority {settings.authority_host}: {type(error).__name__}"
                ) from None
        else:
            identity: Any = (
                msal.UserAssignedManagedIdentity(client_id=settings.azure_client_id)
                if settings.azure_client_id
                else msal.SystemAssignedManagedIdentity()
            )
            self._managed = msal.ManagedIdentityClient(identity, http_client=requests.Session())

    def _lock_for(self, scope: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(scope, threading.Lock())

    def token(self, scope: str) -> AccessToken:
        """A token for `scope` (e.g. "https://graph.microsoft.com/.default")."""
        with self._lock_for(scope):
            try:
                if self._confidential is not None:
                    result = self._confidential.acquire_token_for_client(scopes=[scope])
                else:
                    assert self._managed is not None
                    result = self._managed.acquire_token_for_client(resource=scope.removesuffix("/.default"))
            except requests.RequestException as error:
                raise TokenError(f"token endpoint unreachable: {type(error).__name__}") from None
        if "access_token" not in result:
            description = str(result.get("error_description", "")).splitlines()[0:1]
            raise TokenError(
                f"token request refused: {result.get('error', 'unknown error')}"
                + (f" ({description[0]})" if description else ""),
                code=str(result.get("error")),
            )
        expires_in = int(result.get("expires_in", 3600))
        return AccessToken(result["access_token"], int(time.time()) + expires_in)

    @property
    def graph_scope(self) -> str:
        return f"{self._settings.graph_base}/.default"

    def graph_roles(self) -> set[str]:
        """The application permissions granted to the bot on Graph (the token's roles claim)."""
        return set(token_claims(self.token(self.graph_scope).token).get("roles", []))

    def graph_auth(self) -> GraphAuth:
        return GraphAuth(self)

    def credential(self) -> VaultCredential:
        return VaultCredential(self)


class GraphAuth(httpx.Auth):
    """Puts the bot's Graph token on each request."""

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self._tokens.token(self._tokens.graph_scope).token
        yield request


class VaultCredential:
    """An azure-core TokenCredential backed by the same MSAL application."""

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if len(scopes) != 1:
            raise TokenError(f"expected one scope, got {len(scopes)}")
        return self._tokens.token(scopes[0])
