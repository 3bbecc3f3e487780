"""A fake Azure Key Vault (secrets, REST API 7.5) with the challenge authentication of the real one.

The SDK's first request to a vault goes without a token and without a body; the vault
answers 401 with a `WWW-Authenticate` challenge naming the authority and the resource,
and the client gets a token for `{resource}/.default` and sends the request again. This
fake answers every request without a valid token that way, never 200.

`resource` is `https://0.0.1:PORT`: the SDK checks that the vault host ends with "." plus
the resource's host, and "127.0.0.1:PORT" ends with ".0.0.1:PORT".

Data-plane access (the vault uses the Azure RBAC permission model): a token issued to a
person (a delegated token, see `fakes.entra.is_delegated`) is allowed an operation only when
`authorize(claims, data_action, resource_id)` says so; FakeArm sets it (and
`arm_resource_id`) when the vault is registered there, and answers from its role
assignments, inherited from the vault and above. Without FakeArm, people are refused
everything. App-only tokens of a workload (a managed identity or service principal whose
client id is in `workload_clients`) are checked the same way, against their service
principal's assignments. Other app-only tokens (the bot) keep the simpler knobs
`forbid_reads` / `forbid_writes`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlencode

from fakes.base import FakeServer, Request, Response
from fakes.entra import FakeEntra, is_delegated
from fakes.tls import TestCA

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_TAG_LENGTH = 256
MAX_CONTENT_TYPE = 255
RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
_API_VERSION = re.compile(r"^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$")
_PAGE_MAX = 25
_SET_KEYS = frozenset({"value", "contentType", "attributes", "tags"})
_UPDATE_KEYS = frozenset({"contentType", "attributes", "tags"})
_ATTRIBUTE_KEYS = frozenset({"enabled", "nbf", "exp"})
_NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the "
    "correct recovery command. For help resolving this issue, please see "
    "https://go.microsoft.com/fwlink/?linkid=2125182"
)


class VaultFailure(Exception):
    """An error answer in Key Vault's shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.headers = headers or {}


def _fail(status: int, code: str, message: str, inner: str | None = None) -> NoReturn:
    raise VaultFailure(status, code, message, inner)


def _bad(message: str) -> NoReturn:
    _fail(400, "BadParameter", message)


@dataclass
class _Version:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass
class _Secret:
    name: str  # as first written; names are case-insensitive
    versions: list[_Version] = field(default_factory=list)
    deleted: int | None = None  # unix time of a soft delete


class FakeKeyVault(FakeServer):
    """One vault at `url`; tokens must be for `resource` and the vault's tenant.

    Knobs: `forbid_writes` / `forbid_reads` (403 ForbiddenByRbac for app-only tokens).
    `authorize` / `arm_resource_id`: data-plane RBAC for people's tokens (set by FakeArm).
    Helpers: `value_of`, `versions`, `names`, `deleted_names`; `answers` records (request,
    status) pairs.
    """

    name = "keyvault"

    def __init__(self, ca: TestCA, entra: FakeEntra, tenant_id: str) -> None:
        super().__init__(ca)
        self.entra = entra
        self.tenant_id = tenant_id
        self.forbid_writes = False
        self.forbid_reads = False
        self.workload_clients: set[str] = set()  # app ids whose app-only tokens RBAC decides
        # (claims, data action, ARM resource id) -> allowed; FakeArm.add_vault sets both.
        self.authorize: Callable[[dict[str, Any], str, str], bool] | None = None
        self.arm_resource_id: str | None = None
        self.answers: list[tuple[Request, int | None]] = []
        self._secrets: dict[str, _Secret] = {}
        for method in ("GET", "PUT", "PATCH", "DELETE", "POST", "HEAD"):
            self.route(method, r"/.*", self._serve)

    @property
    def resource(self) -> str:
        return f"https://0.0.1:{self.port}"

    # --- test helpers -------------------------------------------------------------------
    def value_of(self, name: str, version: str | None = None) -> str | None:
        """The value of the latest (or the given) version; None if absent or deleted."""
        with self.lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted is not None or not secret.versions:
                return None
            if version is None:
                return secret.versions[-1].value
            found = next((v for v in secret.versions if v.version == version.lower()), None)
            return None if found is None else found.value

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of `name` as a SecretBundle (with its value), oldest first."""
        with self.lock:
            secret = self._secrets.get(name.lower())
            if secret is None:
                return []
            return [self._bundle(secret, v, with_value=True) for v in secret.versions]

    def canonical_name(self, name: str) -> str | None:
        """The secret's name as first written, if it exists and is not deleted."""
        with self.lock:
            secret = self._secrets.get(name.lower())
            return None if secret is None or secret.deleted is not None else secret.name

    def names(self) -> list[str]:
        """Names of the secrets that are not deleted."""
        with self.lock:
            return [s.name for s in self._secrets.values() if s.deleted is None]

    def deleted_names(self) -> list[str]:
        with self.lock:
            return [s.name for s in self._secrets.values() if s.deleted is not None]

    def dispatch(self, request: Request) -> tuple[Response | None, float]:
        response, delay = super().dispatch(request)
        with self.lock:
            self.answers.append((request, None if response is None else response.status))
        return response, delay

    # --- dispatch -----------------------------------------------------------------------
    def _serve(self, request: Request, match: re.Match[str]) -> Response:
        try:
            claims = self._authenticate(request)
            version = request.arg("api-version")
            if not version:
                _bad("The 'api-version' query parameter is required.")
            if not _API_VERSION.match(version):
                _bad(f"The specified version ({version}) is not recognized.")
            status, body = self._route(request, claims)
        except VaultFailure as failure:
            return self._error(failure)
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return Response(status, body, headers)

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            self._unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
        claims, why = self.entra.inspect(token.strip(), self.resource)
        if claims is None:
            # AKV codes for the cases other than a missing token are not confirmed.
            messages = {
                "audience": f"AKV10022: Invalid audience. Expected {self.resource}.",
                "expired": "AKV10013: Token has expired.",
                "issuer": "AKV10032: Invalid issuer.",
            }
            self._unauthorized(messages.get(why, "AKV10001: Token validation failed."))
        if str(claims.get("tid", "")).lower() != self.tenant_id.lower():
            self._unauthorized("AKV10032: Invalid issuer. The token's tenant is not the vault's tenant.")
        return claims

    def _unauthorized(self, message: str) -> NoReturn:
        challenge = f'Bearer authorization="{self.entra.url}/{self.tenant_id}", resource="{self.resource}"'
        raise VaultFailure(401, "Unauthorized", message, headers={"WWW-Authenticate": challenge})

    def _route(self, request: Request, claims: dict[str, Any]) -> tuple[int, Any]:
        parts = [unquote(p) for p in request.path.split("/")[1:]]
        method = request.method

        def check(action: str, name: str | None = None) -> None:
            self._check_rbac(request, claims, action, name)

        if parts[:1] == ["secrets"]:
            if len(parts) == 1 and method == "GET":
                check("secrets/readMetadata/action")
                return 200, self._list(request, self._items())
            if len(parts) >= 2:
                name = self._name(parts[1])
                tail = parts[2:]
                if not tail and method == "PUT":
                    check("secrets/setSecret/action", name)
                    return 200, self._set(request, name)
                if not tail and method == "DELETE":
                    check("secrets/delete", name)
                    return 200, self._delete(name)
                if tail in ([], [""]) and method == "GET":
                    check("secrets/getSecret/action", name)
                    return 200, self._get(name, None)
                if tail == ["versions"] and method == "GET":
                    check("secrets/readMetadata/action", name)
                    return 200, self._list(request, self._version_items(name))
                if len(tail) == 1 and tail[0] and method == "GET":
                    check("secrets/getSecret/action", name)
                    return 200, self._get(name, tail[0])
                if len(tail) == 1 and method == "PATCH":
                    check("secrets/write", name)
                    return 200, self._update(request, name, tail[0])
        if parts[:1] == ["deletedsecrets"]:
            if len(parts) == 1 and method == "GET":
                check("deletedSecrets/read")
                return 200, self._list(request, self._deleted_items())
            if len(parts) >= 2:
                name = self._name(parts[1])
                tail = parts[2:]
                if not tail and method == "GET":
                    check("deletedSecrets/read")
                    return 200, self._get_deleted(name)
                if not tail and method == "DELETE":
                    check("deletedSecrets/delete")
                    return self._purge(name)
                if tail == ["recover"] and method == "POST":
                    check("deletedSecrets/recover/action")
                    return 200, self._recover(name)
        _fail(
            404,
            "NotFound",
            f"The requested operation {method} {request.path} is not supported by this vault.",
        )

    def _check_rbac(
        self, request: Request, claims: dict[str, Any], action: str, name: str | None = None
    ) -> None:
        data_action = f"Microsoft.KeyVault/vaults/{action}"
        if is_delegated(claims) or str(claims.get("appid") or "").lower() in self.workload_clients:
            # A person or a workload: the vault asks Azure RBAC about the secret (or the vault).
            resource = self._resource_id(name)
            authorize = self.authorize
            if resource is not None and authorize is not None and authorize(claims, data_action, resource):
                return
        else:
            refused = self.forbid_reads if request.method == "GET" else self.forbid_writes
            if not refused:
                return
        shown = self._resource_id(name) or f"{self.url}{request.path}"
        vault_name = (self.arm_resource_id or "").rpartition("/")[2] or "fake"
        _fail(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.\r\n"
            "If role assignments, deny assignments or role definitions were changed "
            "recently, please observe propagation time.\r\n"
            f"Caller: appid={claims.get('appid')};oid={claims.get('oid')};iss={claims.get('iss')}\r\n"
            f"Action: '{data_action}'\r\n"
            f"Resource: '{shown.lower()}'\r\n"
            "Assignment: (not found)\r\n"
            "DenyAssignmentId: null\r\n"
            "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
            f"Vault: {vault_name};location=local\r\n",
            "ForbiddenByRbac",
        )

    def _resource_id(self, name: str | None) -> str | None:
        """The ARM resource id access is checked at: the secret, or the vault itself."""
        if self.arm_resource_id is None:
            return None
        if name is None:
            return self.arm_resource_id
        return f"{self.arm_resource_id}/secrets/{self.canonical_name(name) or name}"

    # --- operations ---------------------------------------------------------------------
    def _set(self, request: Request, name: str) -> dict[str, Any]:
        body = _json_object(request)
        unknown = set(body) - _SET_KEYS
        if unknown:
            _bad(f"Unknown property in the request body: '{sorted(unknown)[0]}'.")
        value = body.get("value")
        if not isinstance(value, str):
            _bad("The request body must contain the secret 'value' as a string.")
        if len(value.encode()) > MAX_VALUE_BYTES:
            _bad(f"The secret value is too large: the maximum is {MAX_VALUE_BYTES} bytes.")
        content_type = _content_type(body)
        tags = _tags(body)
        enabled, nbf, exp = _attributes(body)
        with self.lock:
            secret = self._secrets.get(name.lower())
            if secret is not None and secret.deleted is not None:
                _fail(
                    409,
                    "Conflict",
                    f"Secret {secret.name} is currently in a deleted but recoverable state, "
                    "and its name cannot be reused; in this state, the secret can only be "
                    "recovered or purged.",
                    "ObjectIsDeletedButRecoverable",
                )
            if secret is None:
                secret = self._secrets[name.lower()] = _Secret(name)
            now = int(time.time())
            version = _Version(
                secrets.token_hex(16),
                value,
                content_type,
                tags,
                True if enabled is None else enabled,
                nbf,
                exp,
                now,
                now,
            )
            secret.versions.append(version)
            return self._bundle(secret, version, with_value=True)

    def _get(self, name: str, version_id: str | None) -> dict[str, Any]:
        with self.lock:
            secret, version = self._find(name, version_id)
            if not version.enabled:
                _fail(
                    403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
                )
            return self._bundle(secret, version, with_value=True)

    def _update(self, request: Request, name: str, version_id: str) -> dict[str, Any]:
        body = _json_object(request)
        unknown = set(body) - _UPDATE_KEYS
        if unknown:
            _bad(f"Unknown property in the request body: '{sorted(unknown)[0]}'.")
        content_type = _content_type(body)
        tags = _tags(body)
        enabled, nbf, exp = _attributes(body)
        with self.lock:
            secret, version = self._find(name, version_id or None)
            if "contentType" in body:
                version.content_type = content_type
            if "tags" in body:
                version.tags = tags
            attributes = body.get("attributes") or {}
            if enabled is not None:
                version.enabled = enabled
            if "nbf" in attributes:
                version.nbf = nbf
            if "exp" in attributes:
                version.exp = exp
            version.updated = int(time.time())
            return self._bundle(secret, version, with_value=False)

    def _delete(self, name: str) -> dict[str, Any]:
        with self.lock:
            secret, _ = self._find(name, None)
            secret.deleted = int(time.time())
            return self._deleted_bundle(secret)

    def _get_deleted(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self._deleted_bundle(self._find_deleted(name))

    def _purge(self, name: str) -> tuple[int, Any]:
        with self.lock:
            secret = self._find_deleted(name)
            del self._secrets[secret.name.lower()]
        return 204, None

    def _recover(self, name: str) -> dict[str, Any]:
        with self.lock:
            secret = self._find_deleted(name)
            secret.deleted = None
            return self._bundle(secret, secret.versions[-1], with_value=False)

    # --- lists --------------------------------------------------------------------------
    def _items(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                self._item(s, s.versions[-1], versioned=False)
                for s in self._secrets.values()
                if s.deleted is None
            ]

    def _version_items(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            secret = self._secrets.get(name.lower())
            if secret is None or secret.deleted is not None:
                return []
            return [self._item(secret, v, versioned=True) for v in secret.versions]

    def _deleted_items(self) -> list[dict[str, Any]]:
        with self.lock:
            items = []
            for secret in self._secrets.values():
                if secret.deleted is None:
                    continue
                item = self._item(secret, secret.versions[-1], versioned=False)
                item.update(self._deletion_fields(secret))
                items.append(item)
            return items

    def _list(self, request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
        size_text = request.arg("maxresults")
        size = _PAGE_MAX
        if size_text is not None:
            if not size_text.isdigit() or not 1 <= int(size_text) <= _PAGE_MAX:
                _bad(f"Invalid maxresults: {size_text}. It must be between 1 and {_PAGE_MAX}.")
            size = int(size_text)
        token = request.arg("$skiptoken") or "0"
        if not token.isdigit():
            _bad("Invalid $skiptoken.")
        start = int(token)
        next_link = None
        if start + size < len(items):
            pairs = [(k, v) for k, values in request.query.items() if k != "$skiptoken" for v in values]
            pairs.append(("$skiptoken", str(start + size)))
            next_link = f"{self.url}{request.path}?{urlencode(pairs, quote_via=quote)}"
        return {"value": items[start : start + size], "nextLink": next_link}

    # --- state --------------------------------------------------------------------------
    @staticmethod
    def _name(text: str) -> str:
        if not NAME.match(text):
            _bad(f"The request URI contains an invalid name: {text}")
        return text

    def _find(self, name: str, version_id: str | None) -> tuple[_Secret, _Version]:
        secret = self._secrets.get(name.lower())
        if secret is not None and secret.deleted is None and secret.versions:
            if version_id is None:
                return secret, secret.versions[-1]
            for version in secret.versions:
                if version.version == version_id.lower():
                    return secret, version
        shown = name if version_id is None else f"{name}/{version_id}"
        _fail(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {shown} was not found in this key vault. {_NOT_FOUND_HELP}",
        )

    def _find_deleted(self, name: str) -> _Secret:
        secret = self._secrets.get(name.lower())
        if secret is None or secret.deleted is None:
            _fail(404, "SecretNotFound", "Deleted Secret not found")
        return secret

    def _attributes(self, version: _Version) -> dict[str, Any]:
        attributes: dict[str, Any] = {"enabled": version.enabled}
        if version.nbf is not None:
            attributes["nbf"] = version.nbf
        if version.exp is not None:
            attributes["exp"] = version.exp
        attributes.update(
            {
                "created": version.created,
                "updated": version.updated,
                "recoveryLevel": RECOVERY_LEVEL,
                "recoverableDays": RECOVERABLE_DAYS,
            }
        )
        return attributes

    def _bundle(self, secret: _Secret, version: _Version, *, with_value: bool) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        if with_value:
            bundle["value"] = version.value
        bundle["id"] = f"{self.url}/secrets/{secret.name}/{version.version}"
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        bundle["attributes"] = self._attributes(version)
        if version.tags is not None:
            bundle["tags"] = dict(version.tags)
        return bundle

    def _item(self, secret: _Secret, version: _Version, *, versioned: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": (
                f"{self.url}/secrets/{secret.name}/{version.version}"
                if versioned
                else f"{self.url}/secrets/{secret.name}"
            ),
            "attributes": self._attributes(version),
        }
        if version.tags is not None:
            item["tags"] = dict(version.tags)
        if version.content_type is not None:
            item["contentType"] = version.content_type
        return item

    def _deletion_fields(self, secret: _Secret) -> dict[str, Any]:
        deleted = secret.deleted or 0
        return {
            "recoveryId": f"{self.url}/deletedsecrets/{secret.name}",
            "deletedDate": deleted,
            "scheduledPurgeDate": deleted + RECOVERABLE_DAYS * 86400,
        }

    def _deleted_bundle(self, secret: _Secret) -> dict[str, Any]:
        bundle = self._bundle(secret, secret.versions[-1], with_value=False)
        return {**self._deletion_fields(secret), **bundle}

    # --- answers ------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-keyvault-service-version": "1.9.0.0",
            "x-ms-keyvault-network-info": "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
            "x-ms-keyvault-region": "local",
            "Cache-Control": "no-cache",
        }

    def _error(self, failure: VaultFailure) -> Response:
        error: dict[str, Any] = {"code": failure.code, "message": failure.message}
        if failure.inner:
            error["innererror"] = {"code": failure.inner}
        headers = {**self._headers(), **failure.headers, "x-ms-error-code": failure.inner or failure.code}
        return Response(failure.status, {"error": error}, headers)


def _json_object(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        _bad("The request body is empty; a JSON object is expected.")
    try:
        body = json.loads(request.body)
    except ValueError:
        _bad("The request body is not valid JSON.")
    if not isinstance(body, dict):
        _bad("The request body must be a JSON object.")
    return body


def _content_type(body: dict[str, Any]) -> str | None:
    value = body.get("contentType")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_CONTENT_TYPE:
        _bad(f"The content type must be a string of at most {MAX_CONTENT_TYPE} characters.")
    return value


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict):
        _bad("Tags must be a JSON object of strings.")
    if len(tags) > MAX_TAGS:
        _bad(f"Too many tags: {len(tags)}. At most {MAX_TAGS} are allowed.")
    for key, value in tags.items():
        if not isinstance(value, str):
            _bad(f"The value of tag '{key}' must be a string.")
        if not key or len(key) > MAX_TAG_LENGTH or len(value) > MAX_TAG_LENGTH:
            _bad(f"Tag names and values must be at most {MAX_TAG_LENGTH} characters.")
    return dict(tags)


def _attributes(body: dict[str, Any]) -> tuple[bool | None, int | None, int | None]:
    attributes = body.get("attributes")
    if attributes is None:
        return None, None, None
    if not isinstance(attributes, dict):
        _bad("Attributes must be a JSON object.")
    unknown = set(attributes) - _ATTRIBUTE_KEYS
    if unknown:
        _bad(f"Unknown or read-only attribute: '{sorted(unknown)[0]}'.")
    enabled = attributes.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        _bad("Attribute 'enabled' must be a boolean.")
    times: list[int | None] = []
    for key in ("nbf", "exp"):
        value = attributes.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            _bad(f"Attribute '{key}' must be an integer (Unix time in seconds).")
        times.append(value)
    nbf, exp = times
    if nbf is not None and exp is not None and exp <= nbf:
        _bad("The expiry time must be after the not-before time.")
    return enabled, nbf, exp
