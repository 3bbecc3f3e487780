"""Microsoft Graph over httpx: applications, passwords, service principals, owners, users (v1.0);
app management policies (v1.0) and credential sign-in activity (beta: `version="beta"`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from bot.azure.policies import app_management_policy, credential_usage, sign_in_detail
from bot.azure.retry import BUDGET, IDEMPOTENT, RETRY_REPLICATION, RetryPolicy, RetryTransport
from bot.azure.shapes import application_from_graph, federated_from_graph, password_from_graph
from bot.core.clock import iso
from bot.core.errors import GraphError, LifetimePolicyError, OutcomeUnknown, PasswordsNotAllowed
from bot.core.lifetimes import AppManagementPolicy
from bot.core.model import (
    Application,
    CredentialUsage,
    DirectoryObject,
    FederatedCredential,
    FederatedCredentialSpec,
    NewPassword,
    SecretValue,
    SignInDetail,
    TaggedApp,
)
from bot.core.ports import NO_METRICS, Metrics

log = logging.getLogger(__name__)


LOOKUP_SECONDS = 2.0  # a directory lookup a form waits for
SCAN_SELECT = "id,appId,displayName,passwordCredentials"
APP_SELECT = "id,appId,displayName,signInAudience,passwordCredentials"


def _key(name: str, value: str) -> str:
    """An OData alternate-key segment: applications(uniqueName='x')."""
    return f"({name}='{quote(value.replace(chr(39), chr(39) * 2), safe='')}')"


def _error(response: httpx.Response, action: str) -> GraphError:
    try:
        body = response.json().get("error", {})
        code, message = str(body.get("code", "")), str(body.get("message", ""))
    except ValueError:
        code, message = "", response.reason_phrase
    text = f"Microsoft Graph could not {action}: HTTP {response.status_code} {code}: {message}".strip()
    if code == "CredentialInvalidLifetimeAsPerAppPolicy":
        return LifetimePolicyError(text, status=response.status_code, code=code)
    if code == "CredentialTypeNotAllowedAsPerAppPolicy":  # passwordAddition (code not confirmed)
        return PasswordsNotAllowed(text, status=response.status_code, code=code)
    return GraphError(text, status=response.status_code, code=code)


class GraphClient:
    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        *,
        retry: RetryPolicy,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._retry = retry
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=timeout,
            transport=RetryTransport(transport or httpx.HTTPTransport(), retry, metrics=metrics),
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def pause_before_resend(self, attempt: int) -> None:
        """The retry layer's backoff, for a caller that reconciled a write and now sends it anew."""
        self._retry.sleep(self._retry.backoff(attempt))

    def _call(  # noqa: PLR0913 - one Graph call's options, each with a default
        self,
        method: str,
        path: str,
        action: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        retry_replication: bool = False,
        idempotent: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
        version: str = "v1.0",
        budget: float | None = None,
    ) -> httpx.Response:
        """One Graph call to `path` under `version` (v1.0, or beta for what v1.0 lacks); an
        absolute URL (a nextLink) is called as it is. A call that is not idempotent and got no
        definite answer (a timeout, a dropped connection after sending, a 5xx) raises OutcomeUnknown.
        `budget`: this call's own time limit (each attempt's timeout and the retries' budget)
        instead of the defaults."""
        url = path if "://" in path else f"/{version}{path}"
        extensions: dict[str, Any] = {RETRY_REPLICATION: retry_replication, IDEMPOTENT: idempotent}
        if budget is not None:
            extensions[BUDGET] = budget
        try:
            response = self._http.request(
                method,
                url,
                json=json,
                params=params,
                headers=headers,
                extensions=extensions,
                timeout=budget if budget is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as error:
            if not idempotent:
                raise OutcomeUnknown(
                    f"Microsoft Graph did not answer whether it could {action}: {type(error).__name__}"
                ) from None
            raise GraphError(
                f"Microsoft Graph could not {action}: {type(error).__name__} (after retries)"
            ) from None
        if response.status_code not in ok:
            if not idempotent and response.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
                raise OutcomeUnknown(
                    f"Microsoft Graph did not answer whether it could {action}: HTTP {response.status_code}",
                    status=response.status_code,
                )
            raise _error(response, action)
        return response

    # --- applications -----------------------------------------------------------------
    def upsert_application(self, unique_name: str, body: dict[str, Any]) -> Application:
        """Create the application with this uniqueName, or update the one that has it.

        A retry after a lost answer finds the app made the first time: no twin.
        """
        path = "/applications" + _key("uniqueName", unique_name)
        response = self._call(
            "PATCH",
            path,
            "create application",
            json=body,
            headers={"Prefer": "create-if-missing"},
        )
        if response.status_code == HTTPStatus.CREATED:
            return application_from_graph(response.json())
        found = self.get_application_by_unique_name(unique_name)
        if found is None:
            raise GraphError(
                f"Microsoft Graph could not create the application: {unique_name} vanished after the upsert"
            )
        return found

    def get_application_by_unique_name(self, unique_name: str) -> Application | None:
        return self._get_app("/applications" + _key("uniqueName", unique_name))

    def get_application(self, object_id: str) -> Application | None:
        return self._get_app(f"/applications/{quote(object_id, safe='')}")

    def get_application_by_client_id(self, client_id: str) -> Application | None:
        return self._get_app("/applications" + _key("appId", client_id))

    def _get_app(self, path: str) -> Application | None:
        response = self._call("GET", path, "read application", params={"$select": APP_SELECT}, ok=(200, 404))
        return (
            None if response.status_code == HTTPStatus.NOT_FOUND else application_from_graph(response.json())
        )

    def iter_applications(
        self, *, select: str = APP_SELECT, filter: str | None = None, top: int = 999
    ) -> Iterator[dict[str, Any]]:
        """Every application the bot can see. The next page is fetched while the caller works
        through the current one, so at most two pages are in memory."""
        params = {"$select": select, "$top": str(top)}
        if filter:
            params["$filter"] = filter

        def fetch(url: str, query: dict[str, str] | None) -> dict[str, Any]:
            return dict(self._call("GET", url, "list applications", params=query).json())

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-pages") as pages:
            pending: Future[dict[str, Any]] | None = pages.submit(fetch, "/applications", params)
            while pending is not None:
                page = pending.result()
                next_link = page.get("@odata.nextLink")  # it carries the query parameters
                pending = pages.submit(fetch, next_link, None) if next_link else None
                yield from page.get("value", [])

    def iter_tagged_apps(self, tag: str, *, expiring_before: datetime) -> Iterator[TaggedApp]:
        """Every app carrying `tag`, with the secrets that end before `expiring_before` (a scan of
        tens of thousands: only those secrets are parsed; ISO 8601 UTC timestamps sort as text)."""
        horizon = iso(expiring_before)[:19]
        for data in self.iter_applications(select=SCAN_SELECT, filter=f"tags/any(t:t eq '{tag}')"):
            raw = data.get("passwordCredentials") or ()
            expiring = tuple(
                password_from_graph(p) for p in raw if str(p.get("endDateTime") or "9999")[:19] <= horizon
            )
            yield TaggedApp(str(data["appId"]), str(data.get("displayName") or ""), len(raw), expiring)

    # --- passwords --------------------------------------------------------------------
    def add_password(
        self, object_id: str, *, display_name: str, start: datetime, end: datetime
    ) -> NewPassword:
        """Add a client secret. Not idempotent: each call that Graph carries out makes one, so
        a lost answer raises OutcomeUnknown; the caller finds it by its name and start time."""
        response = self._call(
            "POST",
            f"/applications/{object_id}/addPassword",
            "add client secret",
            json={
                "passwordCredential": {
                    "displayName": display_name,
                    "startDateTime": iso(start),
                    "endDateTime": iso(end),
                }
            },
            retry_replication=True,
            idempotent=False,
        )
        data = response.json()
        secret = SecretValue(str(data.pop("secretText")))
        return NewPassword(password_from_graph(data), secret)

    def remove_password(self, object_id: str, key_id: str) -> None:
        """Remove a client secret; one that is already gone counts as removed."""
        response = self._call(
            "POST",
            f"/applications/{object_id}/removePassword",
            "remove client secret",
            json={"keyId": key_id},
            retry_replication=True,
            ok=(200, 204, 400, 404),
        )
        if response.status_code in (400, 404):
            app = self.get_application(object_id)
            if app is not None and any(p.key_id == key_id for p in app.passwords):
                raise _error(response, "remove client secret")

    # --- federated identity credentials -----------------------------------------------
    def list_federated_credentials(self, object_id: str) -> list[FederatedCredential]:
        """Every federated identity credential of the app (at most 20: one page)."""
        response = self._call(
            "GET",
            f"/applications/{quote(object_id, safe='')}/federatedIdentityCredentials",
            "read federated credentials",
            retry_replication=True,
        )
        return [federated_from_graph(item) for item in response.json().get("value", [])]

    def get_federated_credential(self, object_id: str, name: str) -> FederatedCredential | None:
        """One federated credential by its name (or id), or None."""
        response = self._call(
            "GET",
            f"/applications/{quote(object_id, safe='')}/federatedIdentityCredentials/{quote(name, safe='')}",
            "read federated credential",
            ok=(200, 404),
        )
        return None if response.status_code == HTTPStatus.NOT_FOUND else federated_from_graph(response.json())

    def add_federated_credential(self, object_id: str, spec: FederatedCredentialSpec) -> FederatedCredential:
        """Create a federated credential. Not idempotent (a POST carried out twice is refused the
        second time, or, with another name, makes a twin): a lost answer raises OutcomeUnknown and
        the caller lists the app's credentials to see whether it was made."""
        body: dict[str, Any] = {
            "name": spec.name,
            "issuer": spec.issuer,
            "subject": spec.subject,
            "audiences": list(spec.audiences),
        }
        if spec.description:
            body["description"] = spec.description
        response = self._call(
            "POST",
            f"/applications/{quote(object_id, safe='')}/federatedIdentityCredentials",
            "add federated credential",
            json=body,
            retry_replication=True,
            idempotent=False,
            ok=(201,),
        )
        return federated_from_graph(response.json())

    def delete_federated_credential(self, object_id: str, credential_id: str) -> None:
        """Delete a federated credential; one already gone counts as deleted."""
        self._call(
            "DELETE",
            f"/applications/{quote(object_id, safe='')}/federatedIdentityCredentials/"
            f"{quote(credential_id, safe='')}",
            "delete federated credential",
            ok=(204, 404),
        )

    # --- service principal and owners -------------------------------------------------
    def ensure_service_principal(self, client_id: str) -> str:
        """Create the app's service principal, or find the one that exists. Returns its id."""
        response = self._call(
            "POST",
            "/servicePrincipals",
            "create service principal",
            json={"appId": client_id},
            retry_replication=True,
            ok=(201, 400, 409),
        )
        if response.status_code == HTTPStatus.CREATED:
            return str(response.json()["id"])
        existing = self._call(
            "GET",
            "/servicePrincipals" + _key("appId", client_id),
            "read service principal",
            params={"$select": "id,appId"},
            ok=(200, 404),
        )
        if existing.status_code == HTTPStatus.NOT_FOUND:
            raise _error(response, "create service principal")
        return str(existing.json()["id"])

    def add_owner(self, object_id: str, user_object_id: str) -> None:
        """Make a user an owner of the app; already being one counts as done."""
        response = self._call(
            "POST",
            f"/applications/{object_id}/owners/$ref",
            "add owner",
            json={"@odata.id": f"{self.base_url}/v1.0/directoryObjects/{user_object_id}"},
            retry_replication=True,
            ok=(204, 400),
        )
        if response.status_code == HTTPStatus.BAD_REQUEST and b"already exist" not in response.content:
            raise _error(response, "add owner")

    def list_owners(self, object_id: str) -> set[str]:
        """The object ids of the app's owners."""
        response = self._call(
            "GET", f"/applications/{object_id}/owners", "read owners", params={"$select": "id"}
        )
        return {str(owner["id"]) for owner in response.json().get("value", [])}

    def find_user(self, email: str) -> str | None:
        """The object id of the user whose UPN or mail is this address, or None."""
        response = self._call(
            "GET",
            f"/users/{quote(email, safe='@')}",
            "find user",
            params={"$select": "id"},
            ok=(200, 404),
        )
        if response.status_code == HTTPStatus.OK:
            return str(response.json()["id"])
        escaped = email.replace("'", "''")
        found = (
            self._call(
                "GET",
                "/users",
                "find user",
                params={"$filter": f"mail eq '{escaped}'", "$select": "id"},
            )
            .json()
            .get("value", [])
        )
        return str(found[0]["id"]) if len(found) == 1 else None

    def directory_objects(self, object_ids: Sequence[str]) -> dict[str, DirectoryObject]:
        """The directory objects with these object ids, of any type, by lower-case id (an id
        the directory does not know is absent). POST /directoryObjects/getByIds: a read, so
        safe to resend; needs Directory.Read.All. A form waits for it (Slack allows 3 s), so
        it has LOOKUP_SECONDS in all."""
        if not object_ids:
            return {}
        response = self._call(
            "POST",
            "/directoryObjects/getByIds",
            "look up directory objects",
            json={"ids": list(object_ids)},
            budget=LOOKUP_SECONDS,
        )
        found: dict[str, DirectoryObject] = {}
        for item in response.json().get("value", []):
            kind = str(item.get("@odata.type") or "").rpartition(".")[2]
            object_id = str(item.get("id") or "").lower()
            found[object_id] = DirectoryObject(object_id, kind, str(item.get("displayName") or ""))
        return found

    # --- app management policies (Policy.Read.All) ------------------------------------
    def default_app_management_policy(self) -> AppManagementPolicy:
        """The tenant's default app management policy (403 without Policy.Read.All)."""
        response = self._call(
            "GET", "/policies/defaultAppManagementPolicy", "read the tenant's app management policy"
        )
        return app_management_policy(response.json(), restrictions="applicationRestrictions")

    def app_management_policies(self, object_id: str) -> tuple[AppManagementPolicy, ...]:
        """The app management policies assigned to one app (they override the tenant default)."""
        response = self._call(
            "GET",
            f"/applications/{quote(object_id, safe='')}/appManagementPolicies",
            "read the app's app management policies",
        )
        return tuple(
            app_management_policy(p, restrictions="restrictions") for p in response.json().get("value", [])
        )

    # --- sign-in activity (AuditLog.Read.All, Entra ID P1; beta) ----------------------
    def credential_usage(self, key_id: str) -> CredentialUsage | None:
        """When this credential last signed in (the app credential activity report), or None
        when the report has no entry for it."""
        response = self._call(
            "GET",
            "/reports/appCredentialSignInActivities",
            "read the credential's sign-in activity",
            params={"$filter": f"keyId eq '{key_id}'"},
            version="beta",
        )
        found = response.json().get("value", [])
        return credential_usage(found[0]) if found else None

    def last_sign_in(self, app_id: str, key_id: str, since: datetime) -> SignInDetail | None:
        """The newest service principal sign-in of this app with this credential since `since`
        (where from, to which resource), or None if the log has none."""
        response = self._call(
            "GET",
            "/auditLogs/signIns",
            "read the app's sign-ins",
            params={
                "$filter": (
                    f"appId eq '{app_id}' and createdDateTime ge {iso(since)} "
                    "and signInEventTypes/any(t: t eq 'servicePrincipal')"
                ),
                "$top": "50",
            },
            version="beta",
        )
        found = [
            sign_in_detail(entry)
            for entry in response.json().get("value", [])
            if str(entry.get("servicePrincipalCredentialKeyId") or "").lower() == key_id.lower()
        ]
        return max(found, key=lambda detail: detail.at) if found else None
