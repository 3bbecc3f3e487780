"""A person's azure-core TokenCredential against FakeEntra: MSAL's device code flow, as
`az login --use-device-code` signs someone in, so that a test can call Key Vault (or ARM)
"as the requester" with the real SDK clients."""

from __future__ import annotations

import threading
import time
from typing import Any

import msal
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from fakes.entra import FakeEntra

_EARLY = 300  # seconds before expiry a cached token is renewed, as MSAL does


class PersonCredential:
    """Signs `upn` in through `client_id` (a public client FakeEntra knows): the device code
    request, the person entering the code with their password (FakeEntra.sign_in_device), the
    client's poll. One sign-in per scope per token lifetime; `sign_ins` counts them."""

    def __init__(self, entra: FakeEntra, client_id: str, upn: str, password: str) -> None:
        self._entra = entra
        self._upn = upn
        self._password = password
        self._app = msal.PublicClientApplication(
            client_id, authority=f"{entra.url}/{entra.tenant_id}", instance_discovery=False
        )
        self._tokens: dict[tuple[str, ...], AccessToken] = {}
        self._lock = threading.Lock()
        self.sign_ins = 0

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires_on - _EARLY > time.time():
                return cached
            flow = self._app.initiate_device_flow(scopes=list(scopes))
            if "user_code" not in flow:
                raise ClientAuthenticationError(message=str(flow.get("error_description", flow)))
            self._entra.sign_in_device(flow["user_code"], self._upn, self._password)
            result = self._app.acquire_token_by_device_flow(flow)
            if "access_token" not in result:
                raise ClientAuthenticationError(message=str(result.get("error_description", result)))
            self.sign_ins += 1
            token = AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))
            self._tokens[scopes] = token
            return token


class WorkloadCredential:
    """A workload's app-only azure-core TokenCredential against FakeEntra (MSAL's client
    credentials flow), as a managed identity or a service principal reads a vault secret."""

    def __init__(self, entra: FakeEntra, client_id: str, secret: str) -> None:
        self._app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=f"{entra.url}/{entra.tenant_id}",
            instance_discovery=False,
        )

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        result = self._app.acquire_token_for_client(scopes=list(scopes))
        if "access_token" not in result:
            raise ClientAuthenticationError(message=str(result.get("error_description", result)))
        return AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))
