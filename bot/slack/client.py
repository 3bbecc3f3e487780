"""The Slack Web API clients and their one retry configuration.

Bolt's listeners run on the event loop and use the AsyncWebClient; the workflow's notifier runs
in worker threads and uses the WebClient. Both are built here from the same settings and the
same retry policy: rate limits (honouring Retry-After), connection errors and 5xx.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
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
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.web.slack_response import SlackResponse

from bot.config import Settings
from bot.core.ports import NO_METRICS, Metrics

CONNECTION_RETRIES = 3
RATE_LIMIT_RETRIES = 5
SERVER_ERROR_RETRIES = 3
SERVICE = "slack"
THROTTLED = 429


def _status(error: Exception) -> str:
    """A failed call's status label: Slack's error code ("channel_not_found"), else the error."""
    if isinstance(error, SlackApiError) and error.response is not None:
        return str(error.response.get("error", "error"))
    return type(error).__name__


class _CountingWebClient(WebClient):
    """Each Web API call counted once, by method and its final status ("ok" or Slack's error)."""

    metrics: Metrics = NO_METRICS

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        try:
            response = super().api_call(api_method, **kwargs)
        except Exception as error:
            self.metrics.remote_call(SERVICE, api_method, _status(error))
            if _status(error) == "ratelimited":
                self.metrics.remote_throttled(SERVICE, api_method)
            raise
        self.metrics.remote_call(SERVICE, api_method, "ok")
        return response


class _CountingAsyncWebClient(AsyncWebClient):
    """The same for Bolt's listeners."""

    metrics: Metrics = NO_METRICS

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        try:
            response = await super().api_call(api_method, **kwargs)
        except Exception as error:
            self.metrics.remote_call(SERVICE, api_method, _status(error))
            if _status(error) == "ratelimited":
                self.metrics.remote_throttled(SERVICE, api_method)
            raise
        self.metrics.remote_call(SERVICE, api_method, "ok")
        return response


def _count_retry(
    metrics: Metrics, request: HttpRequest, response: HttpResponse | None, error: Exception | None
) -> None:
    method = urlsplit(request.url).path.rsplit("/", 1)[-1]
    if response is not None:
        metrics.remote_retry(SERVICE, method, str(response.status_code))
        if response.status_code == THROTTLED:
            metrics.remote_throttled(SERVICE, method)
    else:
        metrics.remote_retry(SERVICE, method, type(error).__name__)


class _CountingRetry(RetryHandler):
    """A retry handler that counts each attempt the handler it wraps sends again."""

    def __init__(self, inner: RetryHandler, metrics: Metrics) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self._inner, self._metrics = inner, metrics

    def can_retry(self, **kwargs: Any) -> bool:
        return self._inner.can_retry(**kwargs)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        _count_retry(self._metrics, request, response, error)
        self._inner.prepare_for_next_attempt(state=state, request=request, response=response, error=error)


class _CountingAsyncRetry(AsyncRetryHandler):
    def __init__(self, inner: AsyncRetryHandler, metrics: Metrics) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self._inner, self._metrics = inner, metrics

    async def can_retry_async(self, **kwargs: Any) -> bool:
        return await self._inner.can_retry_async(**kwargs)

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        _count_retry(self._metrics, request, response, error)
        await self._inner.prepare_for_next_attempt_async(
            state=state, request=request, response=response, error=error
        )


def _token(settings: Settings) -> str | None:
    return settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None


def web_client(settings: Settings, metrics: Metrics = NO_METRICS) -> WebClient:
    """For worker threads (the notifier, doctor)."""
    handlers: list[RetryHandler] = [
        ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
    ]
    client = _CountingWebClient(
        token=_token(settings),
        base_url=settings.slack_api_url,
        timeout=int(settings.oauth_bot_http_timeout_seconds),
        ssl=ssl.create_default_context(),  # the platform's trust store (SSL_CERT_FILE)
        retry_handlers=[_CountingRetry(handler, metrics) for handler in handlers],
    )
    client.metrics = metrics
    return client


def async_web_client(settings: Settings, metrics: Metrics = NO_METRICS) -> AsyncWebClient:
    """For Bolt's listeners. Call it inside the running event loop: it keeps one aiohttp session
    (kept-alive TLS connections), closed with the app."""
    trust = ssl.create_default_context()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
    retry: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
    ]
    client = _CountingAsyncWebClient(
        session=session,
        ssl=trust,  # also used by respond() for response URLs
        token=_token(settings),
        base_url=settings.slack_api_url,
        timeout=int(settings.oauth_bot_http_timeout_seconds),
        retry_handlers=[_CountingAsyncRetry(handler, metrics) for handler in retry],
    )
    client.metrics = metrics
    return client
