"""The Slack Web API clients and their one retry configuration.

Bolt's listeners run on the event loop and use the AsyncWebClient; the workflow's notifier runs
in worker threads and uses the WebClient. Both are built here from the same settings and the
same retry policy: rate limits (honouring Retry-After), connection errors and 5xx.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

CONNECTION_RETRIES = 3
RATE_LIMIT_RETRIES = 5
SERVER_ERROR_RETRIES = 3


def _token(settings: Settings) -> str | None:
    return settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None


def web_client(settings: Settings) -> WebClient:
    """For worker threads (the notifier, doctor)."""
    return WebClient(
        token=_token(settings),
        base_url=settings.slack_api_url,
        timeout=int(settings.oauth_bot_http_timeout_seconds),
        ssl=ssl.create_default_context(),  # the platform's trust store (SSL_CERT_FILE)
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
            RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
        ],
    )


def async_web_client(settings: Settings) -> AsyncWebClient:
    """For Bolt's listeners. Call it inside the running event loop: it keeps one aiohttp session
    (kept-alive TLS connections), closed with the app."""
    trust = ssl.create_default_context()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
    retry: list[Any] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
    ]
    return AsyncWebClient(
        session=session,
        ssl=trust,  # also used by respond() for response URLs
        token=_token(settings),
        base_url=settings.slack_api_url,
        timeout=int(settings.oauth_bot_http_timeout_seconds),
        retry_handlers=retry,
    )
