"""Extra readers, when a request is filed: the object IDs typed in the form, looked up in
Microsoft Graph (POST /directoryObjects/getByIds, which needs Directory.Read.All) and kept
only if each is a group or a service principal (a managed identity is one), named as Graph
names it. Any other answer is a field error on the form naming the object ID."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from bot.core.errors import RemoteError, ValidationError
from bot.core.model import ExtraReader, ReaderKind
from bot.core.ports import Directory

DIRECTORY_READ_ROLE = "Directory.Read.All"  # what POST /directoryObjects/getByIds needs
READERS_FIELD = "extra_readers"
READER_TYPES = {"group": ReaderKind.GROUP, "servicePrincipal": ReaderKind.SERVICE_PRINCIPAL}
NO_READERS = (
    "Extra readers need per-secret read access, which is not set up in oauth-bot (KEY_VAULT_RESOURCE_ID). "
    "Leave this empty, or ask the oauth-bot admins."
)
NO_SECRET_TO_READ = "A federated credential has no secret to read: leave this empty."
GRAPH_UNAVAILABLE = "Microsoft Graph could not be asked about the extra readers just now; try again."


def look_up_readers(
    graph: Directory, granted_roles: Callable[[], set[str]], object_ids: list[str], *, set_up: bool
) -> tuple[ExtraReader, ...]:
    """The groups and service principals with these object ids; ValidationError otherwise
    (also when per-secret read access is not `set_up`)."""
    if not object_ids:
        return ()
    if not set_up:
        raise ValidationError({READERS_FIELD: NO_READERS})
    cannot_look_up = (
        f"oauth-bot cannot look up directory objects (it needs the Microsoft Graph application "
        f"permission {DIRECTORY_READ_ROLE}). Leave this empty, or ask the oauth-bot admins."
    )
    if DIRECTORY_READ_ROLE not in granted_roles():
        raise ValidationError({READERS_FIELD: cannot_look_up})
    try:
        found = graph.directory_objects(object_ids)
    except RemoteError as error:
        if error.status == HTTPStatus.FORBIDDEN:
            raise ValidationError({READERS_FIELD: cannot_look_up}) from None
        raise ValidationError({READERS_FIELD: GRAPH_UNAVAILABLE}) from None
    readers = []
    for object_id in object_ids:
        item = found.get(object_id.lower())
        if item is None:
            raise ValidationError(
                {READERS_FIELD: f"Nothing in this directory has the object ID {object_id}."}
            )
        kind = READER_TYPES.get(item.type)
        if kind is None:
            raise ValidationError({READERS_FIELD: _not_a_reader(object_id, item.type, item.display_name)})
        readers.append(ExtraReader(object_id.lower(), kind, item.display_name or object_id))
    return tuple(readers)


def _not_a_reader(object_id: str, kind: str, name: str) -> str:
    what = {"user": "a user", "application": "an app registration", "device": "a device"}.get(
        kind, f"a {kind}"
    )
    hint = (
        " Use the Object ID of its service principal (Enterprise applications) instead."
        if kind == "application"
        else " Add users to a group and name the group."
        if kind == "user"
        else ""
    )
    return (
        f"{object_id} is {what} ({name}): extra readers must be groups or managed identities / service "
        f"principals.{hint}"
    )
