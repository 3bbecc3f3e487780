"""Check that a new client secret really signs in: ask the tenant's token endpoint for a
client-credentials token with it. Entra takes seconds to replicate a new secret, so a
refusal is retried until the time budget is spent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http import HTTPStatus

import httpx

from bot.core.model import SecretValue

log = logging.getLogger(__name__)


class SecretVerifier:
    def __init__(
        self,
        *,
        authority_host: str,
        tenant_id: str,
        scope: str,
        budget_seconds: float,
        timeout: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = f"{authority_host.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self.scope = scope
        self.budget_seconds = budget_seconds
        self._timeout = timeout
        self._sleep = sleep
        self._monotonic = monotonic

    def __call__(self, client_id: str, secret: SecretValue) -> bool:
        """True once a token is issued with this secret; False if the budget runs out first."""
        deadline = self._monotonic() + self.budget_seconds
        delay = 1.0
        attempts = 0
        with httpx.Client(timeout=self._timeout) as client:
            while True:
                attempts += 1
                try:
                    response = client.post(
                        self.token_url,
                        data={
                            "grant_type": "client_credentials",
                            "client_id": client_id,
                            "client_secret": secret.reveal(),
                            "scope": self.scope,
                        },
                    )
                    if response.status_code == HTTPStatus.OK and "access_token" in response.json():
                        log.info("new secret of %s verified after %d attempt(s)", client_id, attempts)
                        return True
                    outcome = f"HTTP {response.status_code}"
                except (httpx.HTTPError, ValueError) as error:
                    outcome = type(error).__name__
                if self._monotonic() + delay > deadline:
                    log.warning(
                        "new secret of %s not verified after %d attempts (%s)", client_id, attempts, outcome
                    )
                    return False
                self._sleep(delay)
                delay = min(delay * 1.5, 5.0)
