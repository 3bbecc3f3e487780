"""A fake Microsoft Entra ID token service: OIDC discovery, the client-credentials grant and,
for people, the device authorization grant (device code flow).

Strict like the real one: one `<resource>/.default` scope, a registered client with the
right secret (or a certificate assertion), errors in AAD's JSON shape with AADSTS codes.
Access tokens are HS256 JWTs signed with a key only this server knows; `validate` is how
the fake Graph, Key Vault and Resource Manager check them.

App-only tokens (client credentials) carry `idtyp: app` and the app's `roles`; delegated
tokens issued to a person (device code flow, `issue_user_token`) carry `idtyp: user`, `scp`,
`upn` and the person's object id in `oid`. The device code flow is what MSAL's
`PublicClientApplication.initiate_device_flow` / `acquire_token_by_device_flow` (and
`az login --use-device-code`) speak: a registered public client (`register_public_client`)
asks for a code, the person signs in with it "in a browser" (`sign_in_device`, with the
password given to `add_user`), and the client's next poll gets the tokens. (MSAL's ROPC
cannot reach a fake: before the password grant it asks `https://{host}/common/userrealm/...`
without the authority's port.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fakes.base import FakeServer, Request, Response
from fakes.tls import TestCA

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_CLOCK_SKEW = 300  # seconds Entra tolerates on nbf/exp of a client assertion
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
DELEGATED_SCOPE = "user_impersonation"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 900  # seconds, as Entra's device codes


def service_principal_object_id(tenant_id: str, app_id: str) -> str:
    """The object id of the service principal of `app_id` in `tenant_id` (deterministic)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"entra:{tenant_id}:sp:{app_id.lower()}"))


def is_delegated(claims: dict[str, Any]) -> bool:
    """A token issued to a person through an app (it has `scp`), not an app-only token."""
    return "scp" in claims


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass
class _Client:
    secret_hash: bytes | None  # None: a certificate client (or a public client), no secret
    roles: list[str]
    public: bool = False  # a public client (no credential); may use the password grant


@dataclass
class _User:
    object_id: str
    upn: str
    display_name: str
    password_hash: bytes


@dataclass
class _DeviceCode:
    user_code: str
    client_id: str
    scopes: list[str]
    resource: str
    expires_at: float  # time.monotonic()
    user: _User | None = None  # set when the person signed in with the user code
    redeemed: bool = False


class FakeEntra(FakeServer):
    """Entra ID's v2.0 endpoints for one tenant, at `{url}/{tenant_id}`.

    `register_client` adds a confidential client (the bot). Clients it does not know are
    checked with `secret_checker` (set by FakeGraph for app secrets made through Graph) and
    `client_exists`. `token_lifetime` is the `expires_in` of new tokens.
    """

    name = "entra"

    def __init__(self, ca: TestCA, tenant_id: str) -> None:
        super().__init__(ca)
        self.tenant_id = tenant_id
        self.token_lifetime = 3599
        self.secret_checker: Callable[[str, str], bool] | None = None
        self.client_exists: Callable[[str], bool] | None = None
        self.answers: list[tuple[Request, int | None]] = []
        self._clients: dict[str, _Client] = {}
        self._users: dict[str, _User] = {}  # by UPN, case-folded
        self._devices: dict[str, _DeviceCode] = {}  # by device code
        self._key = secrets.token_bytes(32)
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/devicecode", self._device_code)
        self.route("GET", r"/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration", self._discovery)
        self.route("GET", r"/(?P<tenant>[^/]+)/discovery(?:/v2\.0)?/instance", self._instance)
        self.route("GET", r"/(?P<tenant>[^/]+)/discovery/v2\.0/keys", self._keys)
        self.route("POST", r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token", self._token)

    # --- configuration and inspection -------------------------------------------------
    def register_client(self, client_id: str, secret: str | None, roles: list[str]) -> None:
        """A confidential client; `secret=None` means it authenticates with a certificate."""
        with self.lock:
            self._clients[client_id.lower()] = _Client(
                None if secret is None else _sha256(secret), list(roles)
            )

    def register_public_client(self, client_id: str) -> None:
        """A public client (a CLI, a desktop app): no credential; it signs people in."""
        with self.lock:
            self._clients[client_id.lower()] = _Client(None, [], public=True)

    def add_user(self, upn: str, password: str, object_id: str, display_name: str = "") -> None:
        """A person who can sign in with `upn` and `password` (the directory entry is FakeGraph's)."""
        with self.lock:
            self._users[upn.casefold()] = _User(
                object_id.lower(), upn, display_name or upn, _sha256(password)
            )

    def sign_in_device(self, user_code: str, upn: str, password: str) -> None:
        """The person opens the verification page, enters `user_code` and signs in; the
        client's next poll gets their tokens. Raises ValueError where the page would refuse."""
        with self.lock:
            device = next((d for d in self._devices.values() if d.user_code == user_code), None)
            user = self._users.get(upn.casefold())
            if device is None or device.expires_at <= time.monotonic():
                raise ValueError(f"unknown or expired user code {user_code!r}")
            if user is None or not hmac.compare_digest(user.password_hash, _sha256(password)):
                raise ValueError(
                    "AADSTS50126: Error validating credentials due to invalid username or password."
                )
            device.user = user

    def principal_ids(self) -> dict[str, str]:
        """Object id of each registered client's service principal -> its client id."""
        with self.lock:
            return {service_principal_object_id(self.tenant_id, cid): cid for cid in self._clients}

    def token_requests(self, scope: str | None = None) -> list[Request]:
        """Token endpoint calls, optionally only those that asked for `scope`."""
        calls = self.calls_to("POST", r"/oauth2/v2\.0/token$")
        if scope is None:
            return calls
        return [c for c in calls if c.form().get("scope") == scope]

    @property
    def issuer(self) -> str:
        return f"{self.url}/{self.tenant_id}/v2.0"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{self.tenant_id}/oauth2/v2.0/token"

    def dispatch(self, request: Request) -> tuple[Response | None, float]:
        response, delay = super().dispatch(request)
        with self.lock:
            self.answers.append((request, None if response is None else response.status))
        return response, delay

    # --- tokens -------------------------------------------------------------------------
    def issue_token(
        self,
        client_id: str,
        audience: str,
        roles: list[str] | None = None,
        lifetime: int | None = None,
    ) -> str:
        """Mint an access token as the token endpoint would (no HTTP)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + (self.token_lifetime if lifetime is None else lifetime),
            "tid": self.tenant_id,
            "appid": client_id,
            "azp": client_id,
            "oid": service_principal_object_id(self.tenant_id, client_id),
            "sub": service_principal_object_id(self.tenant_id, client_id),
            "idtyp": "app",
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if roles:
            claims["roles"] = list(roles)
        return self._sign(claims)

    def issue_user_token(
        self,
        object_id: str,
        upn: str,
        audience: str,
        client_id: str,
        lifetime: int | None = None,
        name: str | None = None,
    ) -> str:
        """Mint a delegated access token for a person, as the password grant does (no HTTP)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + (self.token_lifetime if lifetime is None else lifetime),
            "tid": self.tenant_id,
            "appid": client_id,
            "azp": client_id,
            "oid": object_id.lower(),
            "sub": _b64url(hashlib.sha256(f"{object_id}:{client_id}".encode()).digest()),
            "upn": upn,
            "preferred_username": upn,
            "name": name or upn,
            "scp": DELEGATED_SCOPE,
            "idtyp": "user",
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        return self._sign(claims)

    def _sign(self, claims: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def inspect(self, token: str, audience: str) -> tuple[dict[str, Any] | None, str]:
        """Check a token: (claims, "") when valid, else (None, why)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None, "malformed"
        header, payload, signature = parts
        expected = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(expected, _b64url_decode(signature)):
                return None, "signature"
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            return None, "malformed"
        if not isinstance(claims, dict):
            return None, "malformed"
        if claims.get("iss") != self.issuer:
            return None, "issuer"
        if str(claims.get("aud", "")).rstrip("/") != audience.rstrip("/"):
            return None, "audience"
        now = time.time()
        if claims.get("nbf", 0) > now + 5:
            return None, "not yet valid"
        if claims.get("exp", 0) <= now:
            return None, "expired"
        return claims, ""

    def validate(self, token: str, audience: str) -> dict[str, Any] | None:
        """The token's claims if it is ours, for `audience` and not expired; else None."""
        return self.inspect(token, audience)[0]

    # --- handlers -----------------------------------------------------------------------
    def _tenant_ok(self, tenant: str) -> bool:
        return tenant.lower() == self.tenant_id.lower()

    def _discovery(self, request: Request, match: re.Match[str]) -> Response:
        tenant = match["tenant"]
        if not self._tenant_ok(tenant):
            return self._tenant_not_found(request, tenant)
        base = f"{self.url}/{self.tenant_id}"
        return Response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": self.issuer,
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.url}/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "127.0.0.1",
                "cloud_graph_host_name": "127.0.0.1",
                "msgraph_host": "127.0.0.1",
                "rbac_url": "https://127.0.0.1",
            },
        )

    def _instance(self, request: Request, match: re.Match[str]) -> Response:
        # Instance discovery is for Microsoft's public clouds; a client built with
        # instance_discovery=False never calls it. Recorded in `calls`, always refused.
        return self._error(request, 400, "invalid_instance", 50049, "Unknown or invalid instance.")

    def _keys(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, {"keys": []})  # HS256 tokens: no public keys to publish

    def _token(self, request: Request, match: re.Match[str]) -> Response:
        tenant = match["tenant"]
        if not self._tenant_ok(tenant):
            return self._tenant_not_found(request, tenant)
        form = request.form()
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return self._missing(request, "grant_type")
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_code_grant(request, form)
        if grant_type != "client_credentials":
            return self._error(
                request,
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id", "")
        if not client_id:
            return self._missing(request, "client_id")
        scope = form.get("scope", "")
        if not scope:
            return self._missing(request, "scope")
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default") or scopes[0] == "/.default":
            return self._error(
                request,
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scopes[0][: -len("/.default")]
        denied = self._authenticate(request, form, client_id)
        if denied is not None:
            return denied
        with self.lock:
            client = self._clients.get(client_id.lower())
            roles = list(client.roles) if client else []
            lifetime = self.token_lifetime
        token = self.issue_token(client_id, resource, roles, lifetime)
        return Response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    def _device_code(self, request: Request, match: re.Match[str]) -> Response:
        """The device authorization request: a public client asks for a user code."""
        tenant = match["tenant"]
        if not self._tenant_ok(tenant):
            return self._tenant_not_found(request, tenant)
        form = request.form()
        for parameter in ("client_id", "scope"):
            if not form.get(parameter):
                return self._missing(request, parameter)
        client_id = form["client_id"]
        with self.lock:
            client = self._clients.get(client_id.lower())
        if client is None:
            return self._unknown_client(request, client_id)
        scopes = form["scope"].split()
        resource = self._delegated_resource(scopes)
        if resource is None:
            return self._error(
                request,
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope "
                f"{form['scope']} is not valid.",
            )
        device_code = _b64url(secrets.token_bytes(32))
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        with self.lock:
            self._devices[device_code] = _DeviceCode(
                user_code, client_id, scopes, resource, time.monotonic() + DEVICE_CODE_LIFETIME
            )
        verification = f"{self.url}/devicelogin"
        return Response(
            200,
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": verification,
                "expires_in": DEVICE_CODE_LIFETIME,
                "interval": 5,
                "message": f"To sign in, use a web browser to open the page {verification} and enter "
                f"the code {user_code} to authenticate.",
            },
        )

    def _device_code_grant(self, request: Request, form: dict[str, str]) -> Response:
        """The client polls with its device code until the person has signed in."""
        for parameter in ("client_id", "device_code"):
            if not form.get(parameter):
                return self._missing(request, parameter)
        client_id = form["client_id"]
        with self.lock:
            client = self._clients.get(client_id.lower())
            device = self._devices.get(form["device_code"])
            lifetime = self.token_lifetime
        if client is None:
            return self._unknown_client(request, client_id)
        if not client.public:
            # Entra accepts the flow from a confidential client only with its credential.
            denied = self._authenticate(request, form, client_id)
            if denied is not None:
                return denied
        if device is None or device.client_id.lower() != client_id.lower() or device.redeemed:
            return self._error(
                request, 400, "invalid_grant", 70000, "The provided grant is invalid or malformed."
            )
        if device.expires_at <= time.monotonic():
            return self._error(
                request,
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This device "
                "code has expired.",
            )
        if device.user is None:
            return self._error(
                request,
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        with self.lock:
            device.redeemed = True
        return Response(
            200,
            self._user_tokens(device.user, client_id, device.resource, device.scopes, form, lifetime),
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    @staticmethod
    def _delegated_resource(scopes: list[str]) -> str | None:
        """The one resource of `<resource>/.default` among the OIDC scopes, or None."""
        resource_scopes = [s for s in scopes if s not in _OIDC_SCOPES]
        if len(resource_scopes) != 1 or not resource_scopes[0].endswith("/.default"):
            return None
        resource = resource_scopes[0][: -len("/.default")]
        return resource or None

    def _user_tokens(
        self,
        user: _User,
        client_id: str,
        resource: str,
        scopes: list[str],
        form: dict[str, str],
        lifetime: int,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join([f"{resource}/{DELEGATED_SCOPE}", *[s for s in scopes if s in _OIDC_SCOPES]]),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.issue_user_token(
                user.object_id, user.upn, resource, client_id, lifetime, user.display_name
            ),
        }
        if "offline_access" in scopes:
            body["refresh_token"] = _b64url(secrets.token_bytes(48))
        if "openid" in scopes:
            now = int(time.time())
            body["id_token"] = self._sign(
                {
                    "aud": client_id,
                    "iss": self.issuer,
                    "iat": now,
                    "nbf": now,
                    "exp": now + 3600,
                    "oid": user.object_id,
                    "sub": _b64url(hashlib.sha256(f"{user.object_id}:{client_id}".encode()).digest()),
                    "tid": self.tenant_id,
                    "preferred_username": user.upn,
                    "name": user.display_name,
                    "ver": "2.0",
                }
            )
        if form.get("client_info") == "1":
            info = {"uid": user.object_id, "utid": self.tenant_id}
            body["client_info"] = _b64url(json.dumps(info).encode())
        return body

    def _unknown_client(self, request: Request, client_id: str) -> Response:
        return self._error(
            request,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the "
            f"directory '{self.tenant_id}'. This can happen if the application has "
            "not been installed by the administrator of the tenant or consented to "
            "by any user in the tenant. You may have sent your authentication "
            "request to the wrong tenant.",
        )

    def _authenticate(self, request: Request, form: dict[str, str], client_id: str) -> Response | None:
        """None when the client proved who it is, else the error answer."""
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None and assertion is not None:
            return self._error(
                request,
                400,
                "invalid_request",
                50027,
                "Only one client credential may be sent: client_secret or client_assertion.",
            )
        if secret is None and assertion is None:
            return self._error(
                request,
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        with self.lock:
            client = self._clients.get(client_id.lower())
        if client is None:
            exists = self.client_exists(client_id) if self.client_exists else False
            checker = self.secret_checker
            if not exists or checker is None:
                return self._unknown_client(request, client_id)
            if secret is not None and checker(client_id, secret):
                return None
            return self._bad_secret(request, client_id)
        if client.public:
            return self._error(
                request,
                401,
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            )
        if assertion is not None:
            if client.secret_hash is not None:
                return self._error(
                    request,
                    401,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation: the client has no certificate registered.",
                )
            return self._check_assertion(request, form, client_id, assertion)
        assert secret is not None
        if client.secret_hash is None or not hmac.compare_digest(client.secret_hash, _sha256(secret)):
            return self._bad_secret(request, client_id)
        return None

    def _check_assertion(
        self, request: Request, form: dict[str, str], client_id: str, assertion: str
    ) -> Response | None:
        """The assertion's claims, not its signature (the fake keeps no certificates)."""
        if form.get("client_assertion_type") != JWT_BEARER:
            return self._error(
                request,
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion_type'.",
            )
        try:
            claims = json.loads(_b64url_decode(assertion.split(".")[1]))
        except (IndexError, ValueError):
            return self._error(request, 401, "invalid_client", 50027, "JWT token is invalid or malformed.")
        if not isinstance(claims, dict):
            return self._error(request, 401, "invalid_client", 50027, "JWT token is invalid or malformed.")
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return self._error(
                request,
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.token_endpoint not in audiences and self.issuer not in audiences:
            return self._error(
                request,
                401,
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience.",
            )
        now = time.time()
        if claims.get("exp", 0) + _CLOCK_SKEW <= now:
            return self._error(
                request, 401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            )
        return None

    # --- errors -------------------------------------------------------------------------
    def _bad_secret(self, request: Request, client_id: str) -> Response:
        return self._error(
            request,
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            "the client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
        )

    def _missing(self, request: Request, parameter: str) -> Response:
        return self._error(
            request,
            400,
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{parameter}'.",
        )

    def _tenant_not_found(self, request: Request, tenant: str) -> Response:
        return self._error(
            request,
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription "
            "administrator, this may happen if there are no active subscriptions for the "
            "tenant.",
        )

    def _error(self, request: Request, status: int, error: str, code: int, text: str) -> Response:
        """AAD's error JSON: AADSTS code and text, trace and correlation ids."""
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        now = datetime.now(UTC)
        timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: "
            f"{correlation_id} Timestamp: {timestamp}"
        )
        return Response(
            status,
            {
                "error": error,
                "error_description": description,
                "error_codes": [code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"{self.url}/error?code={code}",
            },
            {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )
