"""The tenant's limits on client secrets, read up front when the bot may read them.

With the Graph application permission Policy.Read.All, the tenant's default app management
policy (and, for a rotation, the app's own policies, which override it) says the longest
lifetime a new client secret may have and whether one may be added at all; the form offers only
what is allowed, and submitting checks it again. Without the permission (the role is not in
the bot's token, or Graph answers 403) nothing is known up front and Entra's refusal
(CredentialInvalidLifetimeAsPerAppPolicy) is explained as before. What was read is kept for an
hour (CACHE_FOR), by the injected clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as NotYet
from datetime import datetime, timedelta

from bot.core.clock import Clock, utc
from bot.core.errors import GraphError
from bot.core.lifetimes import UNKNOWN, AppManagementPolicy, PasswordLimit, password_limit
from bot.core.ports import AppPolicies

log = logging.getLogger(__name__)

# Policy.Read.All is the least privilege; the two ApplicationConfiguration ones also read them.
POLICY_READ_ROLES = frozenset(
    {"Policy.Read.All", "Policy.Read.ApplicationConfiguration", "Policy.ReadWrite.ApplicationConfiguration"}
)
POLICY_READ_ROLE = "Policy.Read.All"
CACHE_FOR = timedelta(hours=1)
# The form must open (trigger_id) and be answered (view_submission) within Slack's 3 seconds:
# a slower Graph leaves the form as without the permission, and the read fills the cache anyway.
FORM_WAIT_SECONDS = 1.5


class TenantLimits:
    def __init__(self, *, graph: AppPolicies, clock: Clock, granted_roles: Callable[[], set[str]]) -> None:
        self.graph = graph
        self.clock = clock
        self.granted_roles = granted_roles
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[datetime, object]] = {}
        self._reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tenant-limits")

    def close(self) -> None:
        self._reads.shutdown(wait=False, cancel_futures=True)

    @property
    def may_read(self) -> bool:
        return bool(POLICY_READ_ROLES & self.granted_roles())

    def for_form(self, within: float = FORM_WAIT_SECONDS) -> PasswordLimit:
        """for_new_app, or no limit known if Graph takes longer than `within` seconds."""
        if not self.may_read:
            return UNKNOWN
        future = self._reads.submit(self.for_new_app)
        try:
            return future.result(timeout=within)
        except NotYet:
            log.warning("the tenant's app management policy took over %ss; the form does without", within)
            return UNKNOWN

    def for_new_app(self) -> PasswordLimit:
        """What the tenant's default policy allows a secret of an app created now."""
        if not self.may_read:
            return UNKNOWN
        tenant = self._tenant()
        if tenant is None:
            return UNKNOWN
        return password_limit(tenant, (), created=self.clock.now())

    def for_app(self, object_id: str, created: datetime | None) -> PasswordLimit:
        """What the app's effective policy (its own, else the tenant default) allows."""
        if not self.may_read:
            return UNKNOWN
        tenant = self._tenant()
        own = self._cached(f"app:{object_id}", lambda: self.graph.app_management_policies(object_id))
        if tenant is None or own is None:  # either unreadable: the tenant's alone could mislead
            return UNKNOWN
        assert isinstance(own, tuple)
        return password_limit(tenant, own, created=utc(created) if created else self.clock.now())

    def _tenant(self) -> AppManagementPolicy | None:
        found = self._cached("tenant", self.graph.default_app_management_policy)
        return found if isinstance(found, AppManagementPolicy) else None

    def _cached(self, key: str, read: Callable[[], object]) -> object | None:
        now = self.clock.now()
        with self._lock:
            held = self._cache.get(key)
            if held is not None and now - held[0] < CACHE_FOR:
                return held[1]
        try:
            value = read()
        except GraphError as error:  # 403 without the permission, or Graph down: Entra decides
            log.info("app management policy not read (%s); lifetimes are not capped up front", error)
            return None
        with self._lock:
            self._cache[key] = (now, value)
        return value
