"""The production SDK clients pointed at the fakes, for the fake tests."""

from __future__ import annotations

import time
from typing import Any

import msal
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.mgmt.authorization import AuthorizationManagementClient

from fakes.arm import FakeArm
from fakes.entra import FakeEntra


class AppCredential:
    """An azure-core TokenCredential for a confidential client (client credentials, MSAL)."""

    def __init__(self, entra: FakeEntra, client_id: str, secret: str) -> None:
        self.app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret,
            authority=f"{entra.url}/{entra.tenant_id}",
            instance_discovery=False,
        )
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        result = self.app.acquire_token_for_client(scopes=list(scopes))
        if "access_token" not in result:
            raise ClientAuthenticationError(message=str(result.get("error_description")))
        return AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))


def authorization_client(arm: FakeArm, credential: Any) -> AuthorizationManagementClient:
    """The client the bot will use: base_url and credential scope of this (national) cloud."""
    return AuthorizationManagementClient(
        credential,
        arm.subscription_id,
        base_url=arm.url,
        credential_scopes=[f"{arm.url}/.default"],
        retry_total=0,  # the tests see every answer; the bot sets its own budget
    )
