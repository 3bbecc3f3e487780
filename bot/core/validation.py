"""Rules: what a valid request is, who may decide, how often one may ask."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.config import Settings
from bot.core.errors import ValidationError
from bot.core.lifetimes import UNKNOWN, PasswordLimit
from bot.core.model import REDIRECT_PLATFORMS, SIGN_IN_AUDIENCES, FederatedCredentialSpec, Workload
from bot.core.workloads import has_control_characters, parse_workload, validate_federated

MAX_NAME = 120
MAX_DESCRIPTION = 120
MAX_JUSTIFICATION = 2000
MAX_DENY_REASON = 2000
MONTHS_FROM_DAYS = 60  # lifetimes this long are also said in months, as the portal does
MAX_REDIRECT_URI = 256
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})  # Entra's http:// exceptions ([::1] is not one)
# What follows the scheme's "//" up to the path, query or fragment, as a browser reads it.
AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
# An ASCII host name (IDNA names in their xn-- form) or IPv4 address, or a bracketed IPv6
# address, with an optional port: no userinfo, no %-escapes, nothing a browser would remap.
HOST_AND_PORT = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::\d*)?")
DEFAULT_SECRET_DESCRIPTION = "Created by oauth-bot"
MAX_EXTRA_READERS = 5
SHOWN_ID = 40  # how much of a bad object ID its field error repeats
READERS_FIELD = "extra_readers"
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
READER_SEPARATORS = re.compile(r"[\s,;]+")

# The portal's wording for the four account types (each within Slack's 75-character limit).
AUDIENCE_LABELS = {
    "AzureADMyOrg": "Accounts in this organizational directory only (single tenant)",
    "AzureADMultipleOrgs": "Accounts in any organizational directory (multitenant)",
    "AzureADandPersonalMicrosoftAccount": (
        "Accounts in any organizational directory and personal Microsoft accounts"
    ),
    "PersonalMicrosoftAccount": "Personal Microsoft accounts only",
}
PLATFORM_LABELS = {
    "web": "Web",
    "spa": "Single-page application (SPA)",
    "publicClient": "Public client/native (mobile & desktop)",
}


@dataclass(frozen=True)
class NewAppInput:
    display_name: str
    sign_in_audience: str
    redirect_uri: str | None
    redirect_platform: str | None
    secret_description: str
    secret_days: int
    justification: str
    federated: FederatedCredentialSpec | None = None  # None: a client secret


def reader_ids(text: str | None) -> list[str]:
    """The object IDs of the extra readers field: one per line or separated by commas, each a
    GUID, at most MAX_EXTRA_READERS, repeats dropped; ValidationError naming the bad one."""
    ids = list(dict.fromkeys(i.lower() for i in READER_SEPARATORS.split(text or "") if i))
    for object_id in ids:
        if not OBJECT_ID.match(object_id):
            shown = object_id[:SHOWN_ID] + ("…" if len(object_id) > SHOWN_ID else "")
            raise ValidationError(
                {
                    READERS_FIELD: f"{shown} is not an object ID: give each group or managed identity by its "
                    "Object ID, like 00000000-0000-0000-0000-000000000000."
                }
            )
    if len(ids) > MAX_EXTRA_READERS:
        raise ValidationError(
            {READERS_FIELD: f"Name at most {MAX_EXTRA_READERS} extra readers (this has {len(ids)})."}
        )
    return ids


def has_bad_multiline_characters(text: str) -> bool:
    """For free text that may span lines: control characters other than tab and line breaks
    (NUL cannot be stored in PostgreSQL), and lone surrogates (not storable as UTF-8)."""
    return any(
        (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r") or unicodedata.category(ch) == "Cs"
        for ch in text
    )


def lifetime_label(days: int) -> str:
    months = round(days / 30.4)
    return f"{days} days ({months} months)" if days >= MONTHS_FROM_DAYS else f"{days} days"


def redirect_uri_problem(uri: str) -> str | None:
    """Why Entra would refuse this redirect URI, or why a browser would go somewhere else than
    it seems to say, or None if it is acceptable. Checked as a browser parses a URL, not only
    as urlsplit does: `http://evil.example\\@localhost/` is evil.example to a browser."""
    if len(uri) > MAX_REDIRECT_URI:
        return f"Use at most {MAX_REDIRECT_URI} characters."
    if any(ch.isspace() for ch in uri) or has_control_characters(uri):
        return "A redirect URI cannot contain spaces or control characters."
    if "\\" in uri:
        return "A redirect URI cannot contain a backslash (\\): browsers read it as / and go elsewhere."
    if "*" in uri:
        return "Wildcards are not allowed in redirect URIs."
    if "#" in uri:
        return "A redirect URI cannot contain a fragment (#…)."
    authority = AUTHORITY.match(uri)
    if authority is not None:
        if "@" in authority.group(1):
            return (
                "A redirect URI cannot contain a user name or password (the part before @): "
                "put only the host name after https://."
            )
        if not authority.group(1).isascii():
            return "Write the host name in plain ASCII (an international domain name in its xn-- form)."
        if authority.group(1)[:1] not in ("", ":") and not HOST_AND_PORT.fullmatch(authority.group(1)):
            return "The host name can contain only letters, digits, hyphens and dots (no % escapes)."
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("https", "http") or not host or authority is None:
        return "Enter an absolute URL starting with https:// (http:// only for localhost)."
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return "Use https://. Plain http:// is allowed only for localhost and 127.0.0.1."
    return None


def lifetime_problem(settings: Settings, days: int, limit: PasswordLimit = UNKNOWN) -> dict[str, str]:
    """The secret expiry's field error, if `days` is not offered (OAUTH_BOT_MAX_SECRET_DAYS and
    the tenant's app management policy, whichever is stricter)."""
    maximum = settings.max_secret_days(max_days=limit.max_days)
    if days > maximum:
        why = f" ({limit.source} allows no longer)" if maximum < settings.oauth_bot_max_secret_days else ""
        longest = lifetime_label(maximum)
        return {"secret_expiry": f"The longest lifetime allowed is {longest}{why}; choose a shorter one."}
    if days not in settings.lifetime_choices(max_days=limit.max_days):
        return {"secret_expiry": "Choose one of the listed lifetimes."}
    return {}


def validate_new_app(
    settings: Settings,
    limit: PasswordLimit = UNKNOWN,
    /,
    *,
    name: str | None,
    audience: str | None,
    redirect_uri: str | None,
    platform: str | None,
    secret_description: str | None,
    secret_days: str | None,
    justification: str | None,
    workload: str | None = None,
    **federated: str | None,
) -> NewAppInput:
    """Check a new-app request; raise ValidationError with a message per bad field. `limit`:
    what the tenant's app management policy allows a client secret (when the bot may read it),
    within the approval policy's cap (PasswordLimit.within). With a `workload` other than a
    client secret, the federated credential's fields (`federated`, by field name:
    github_repository, k8s_namespace, ...) are checked instead of the secret's."""
    errors: dict[str, str] = {}
    spec = _workload_spec(workload, federated, errors)
    if spec is not None or errors:
        secret_description, secret_days = None, None  # no secret: its fields are not on the form
    display_name = (name or "").strip()
    if not display_name:
        errors["name"] = "Enter a name for the application."
    elif len(display_name) > MAX_NAME:
        errors["name"] = f"Use at most {MAX_NAME} characters (this one has {len(display_name)})."
    elif has_control_characters(display_name):
        errors["name"] = "The name cannot contain line breaks or control characters."

    sign_in_audience = audience or "AzureADMyOrg"
    if sign_in_audience not in SIGN_IN_AUDIENCES:
        errors["audience"] = "Choose one of the supported account types."

    uri = (redirect_uri or "").strip() or None
    chosen_platform = platform or "web"
    if uri is not None:
        problem = redirect_uri_problem(uri)
        if problem:
            errors["redirect_uri"] = problem
    if chosen_platform not in REDIRECT_PLATFORMS:
        errors["platform"] = "Choose Web, Single-page application or Public client."

    description = (secret_description or "").strip() or DEFAULT_SECRET_DESCRIPTION
    if len(description) > MAX_DESCRIPTION:
        errors["secret_description"] = f"Use at most {MAX_DESCRIPTION} characters."
    elif has_control_characters(description):
        errors["secret_description"] = "The description cannot contain line breaks or control characters."

    days = settings.default_days(max_days=limit.max_days)
    if secret_days:
        try:
            days = int(secret_days)
        except ValueError:
            errors["secret_expiry"] = "Choose one of the listed lifetimes."
    wants_secret = parse_workload(workload) == Workload.SECRET  # (not a federated form with a typo)
    if wants_secret and not limit.passwords_allowed:
        errors["secret_expiry"] = limit.blocked_message()
    if wants_secret and "secret_expiry" not in errors:
        errors.update(lifetime_problem(settings, days, limit))

    reason = (justification or "").strip()
    if not reason:
        errors["justification"] = "Tell the approvers what the application is for."
    elif len(reason) > MAX_JUSTIFICATION:
        errors["justification"] = f"Use at most {MAX_JUSTIFICATION} characters."
    elif has_bad_multiline_characters(reason):
        errors["justification"] = "The justification cannot contain control characters."

    if errors:
        raise ValidationError(errors)
    return NewAppInput(
        display_name=display_name,
        sign_in_audience=sign_in_audience,
        redirect_uri=uri,
        redirect_platform=chosen_platform if uri else None,
        secret_description="" if spec else description,
        secret_days=days,
        justification=reason,
        federated=spec,
    )


def _workload_spec(
    workload: str | None, values: Mapping[str, str | None], errors: dict[str, str]
) -> FederatedCredentialSpec | None:
    """The federated credential a new-app form asks for (None: a client secret); errors added."""
    chosen = parse_workload(workload)
    if chosen is None:
        errors["workload"] = "Choose how the workload will sign in."
    elif chosen != Workload.SECRET:
        try:
            return validate_federated(chosen, values)
        except ValidationError as error:
            errors.update(error.fields)
    return None
