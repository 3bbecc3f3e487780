"""The federatedIdentityCredentials of an application, as fakes/graph.py serves them.

`/applications/{id}/federatedIdentityCredentials` (list, create), `…/{id or name}` (get, update,
delete) and the alternate key `…/federatedIdentityCredentials(name='…')` (get, delete, and the
upsert that the CSDL's UpdateRestrictions/Upsertable allows). Checked like Graph checks them:
properties against EntityType federatedIdentityCredential in graph-v1.0-Prod.csdl (unknown
ones refused), required name/issuer/subject/audiences, one audience, 600-character limits, the
name's rules, uniqueness of the name and of issuer+subject per app, at most 20 per app, the
name immutable once set.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn

# EntityType federatedIdentityCredential (BaseType graph.entity: id) in graph-v1.0-Prod.csdl.
FEDERATED_PROPERTIES = frozenset({"id", "audiences", "description", "issuer", "name", "subject"})
MAX_PER_APP = 20
MAX_LENGTH = 600  # issuer, subject, description and the one audience (Graph's documentation)
# 3 to 120 characters, URL friendly: letters, digits, hyphens and underscores, starting with a
# letter or digit (the Entra admin center's rule for the name; Graph documents "URL friendly").
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")


class FederatedFailure(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _fail(status: int, code: str, message: str) -> NoReturn:
    raise FederatedFailure(status, code, message)


def _bad(message: str, code: str = "Request_BadRequest") -> NoReturn:
    _fail(400, code, message)


@dataclass
class FederatedCredentials:
    """One application's federated identity credentials."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def find(self, key: str) -> dict[str, Any] | None:
        """By id or by name (Graph addresses a credential by either in the path)."""
        return next((c for c in self.items if c["id"] == key.lower() or c["name"] == key), None)

    def resolve(self, key: str) -> dict[str, Any]:
        found = self.find(key)
        if found is None:
            _fail(
                404,
                "Request_ResourceNotFound",
                f"FederatedIdentityCredential with name or id {key} not found.",  # as azwi quotes it
            )
        return found

    def create(self, body: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
        if name is not None:  # the upsert: the name is the key's
            if body.get("name", name) != name:
                _bad("The name in the body does not match the name in the key.")
            body = {**body, "name": name}
        values = _validated(body, creating=True)
        _check_name(values["name"])
        if any(c["name"] == values["name"] for c in self.items):
            # Code and message as Graph answers them (quoted in Azure/azure-workload-identity).
            _fail(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                f"FederatedIdentityCredential with name {values['name']} already exists.",
            )
        self._check_pair(values["issuer"], values["subject"], keep=None)
        if len(self.items) >= MAX_PER_APP:
            # The limit is documented; the wire code and wording could not be confirmed.
            _bad(
                f"Maximum number of federated identity credentials ({MAX_PER_APP}) reached for this "
                "application."
            )
        credential = {"id": str(uuid.uuid4()), "description": None, **values}
        self.items = [*self.items, credential]
        return credential

    def update(self, key: str, body: dict[str, Any]) -> None:
        credential = self.resolve(key)
        values = _validated(body, creating=False)
        if "name" in values and values["name"] != credential["name"]:
            _bad("Property 'name' is immutable and cannot be changed after creation.")
        merged = {**credential, **values}
        self._check_pair(merged["issuer"], merged["subject"], keep=credential["id"])
        self.items = [merged if c["id"] == credential["id"] else c for c in self.items]

    def delete(self, key: str) -> None:
        credential = self.resolve(key)
        self.items = [c for c in self.items if c["id"] != credential["id"]]

    def _check_pair(self, issuer: str, subject: str, *, keep: str | None) -> None:
        for other in self.items:
            if other["id"] != keep and other["issuer"] == issuer and other["subject"] == subject:
                # Documented as unique per app; the code and wording could not be confirmed.
                _fail(
                    409,
                    "Request_MultipleObjectsWithSameKeyValue",
                    f"FederatedIdentityCredential with issuer {issuer} and subject {subject} already exists.",
                )


def _check_name(name: str) -> None:
    if not NAME.match(name):
        _bad(
            "The federated identity credential name must be 3-120 characters long, start with a "
            "letter or number, and contain only letters, numbers, hyphens and underscores."
        )


def _validated(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name.startswith("@odata."):
            continue
        if name not in FEDERATED_PROPERTIES:
            _bad(
                f"Property '{name}' does not exist on type 'microsoft.graph.federatedIdentityCredential'. "
                "Make sure to only use property names that are defined by the type.",
                "BadRequest",
            )
        if name == "id":
            _bad("Property 'id' is read-only and cannot be set.")
        if name == "audiences":
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                _bad(
                    "Invalid value specified for property 'audiences' of resource "
                    "'FederatedIdentityCredential'."
                )
            if len(value) != 1:
                _bad("Federated identity credential 'audiences' must contain exactly one value.")
            if len(value[0]) > MAX_LENGTH or not value[0]:
                _bad(f"An audience must be 1-{MAX_LENGTH} characters long.")
        elif value is not None and not isinstance(value, str):
            _bad(f"Invalid value specified for property '{name}' of resource 'FederatedIdentityCredential'.")
        elif name in ("issuer", "subject", "description") and value is not None and len(value) > MAX_LENGTH:
            _bad(f"Property '{name}' is longer than {MAX_LENGTH} characters.")
        values[name] = value
    if creating:
        missing = [n for n in ("name", "issuer", "subject", "audiences") if not values.get(n)]
        if missing:
            # Wording as Graph answers it (quoted in zioproto/istio-aks-example#6).
            _bad(
                "The request format was unexpected. Federated Identity Credential must specify "
                "'issuer', 'subject' and 'audience'."
                if missing != ["name"]
                else "Property 'name' is required."
            )
    for key in ("issuer", "subject", "name"):
        if key in values and not values[key]:
            _bad(f"Property '{key}' cannot be empty.")
    return values
