"""How many requests one person may have open (OAUTH_BOT_MAX_OPEN_REQUESTS) and file in an
hour (OAUTH_BOT_MAX_REQUESTS_PER_HOUR): nobody floods the approvers."""

from __future__ import annotations

from datetime import timedelta

from bot.config import Settings
from bot.core.errors import RateLimited
from bot.core.model import OPEN_STATUSES
from bot.core.ports import Repository


def check_request_limits(settings: Settings, store: Repository, requester_id: str) -> None:
    """Stop one person from flooding the approvers."""
    open_requests = [r for r in store.requests_by(requester_id) if r.status in OPEN_STATUSES]
    if len(open_requests) >= settings.oauth_bot_max_open_requests:
        raise RateLimited(
            f"You already have {len(open_requests)} open requests (the limit is "
            f"{settings.oauth_bot_max_open_requests}). Wait for them to be decided, or cancel one."
        )
    recent = store.count_recent_requests(requester_id, store.now() - timedelta(hours=1))
    if recent >= settings.oauth_bot_max_requests_per_hour:
        raise RateLimited(
            f"You have made {recent} requests in the last hour (the limit is "
            f"{settings.oauth_bot_max_requests_per_hour}). Try again later."
        )
