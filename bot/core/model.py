"""The domain: plain dataclasses and enums, the same for every layer. No Slack, Azure wire
format or database row appears here; bot/store maps rows to these, bot/azure maps Graph and
Key Vault answers to these, bot/slack renders these."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.errors import Conflict

APP_TAG = "oauth-bot"  # on every app registration oauth-bot creates
SIGN_IN_AUDIENCES = (
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
)
PERSONAL_ACCOUNT_AUDIENCES = frozenset({"AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"})
MAX_PERSONAL_ACCOUNT_SECRETS = 2  # Entra's limit for apps whose audience includes personal accounts
REDIRECT_PLATFORMS = ("web", "spa", "publicClient")


def secret_name_for(client_id: str) -> str:
    """One vault secret per application; each rotation is a new version of it."""
    return f"oauth-{client_id}"


class Kind(enum.StrEnum):
    NEW_APP = "new_app"
    ROTATE = "rotate"
    READ_ACCESS = "read_access"  # on-demand read access that the approval policy wants approved
    FEDERATE = "federate"  # a federated identity credential on an app the bot manages
    REMOVE_SECRET = "remove_secret"  # drop an oauth-bot-issued secret the app no longer needs


# --- workload identity federation -----------------------------------------------------------
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"  # Entra's one audience for token exchange
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
KUBERNETES_SUBJECT_PREFIX = "system:serviceaccount:"
MAX_FEDERATED_CREDENTIALS = 20  # Entra's limit per application


class Workload(enum.StrEnum):
    """How a workload signs in: with a client secret, or with a token of its own (federated)."""

    SECRET = "secret"
    GITHUB = "github"
    KUBERNETES = "kubernetes"
    OTHER = "other"


@dataclass(frozen=True)
class FederatedCredentialSpec:
    """A federated identity credential to add: tokens from `issuer` whose `sub` is `subject`
    may sign in as the app; no secret exists."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (FEDERATED_AUDIENCE,)
    description: str = ""

    @property
    def workload(self) -> Workload:
        if self.issuer == GITHUB_ISSUER:
            return Workload.GITHUB
        if self.subject.startswith(KUBERNETES_SUBJECT_PREFIX):
            return Workload.KUBERNETES
        return Workload.OTHER


@dataclass(frozen=True)
class FederatedCredential:
    """A federated identity credential as Entra holds it."""

    id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    description: str = ""


class Status(enum.StrEnum):
    """A request's status."""

    PENDING = "pending"
    APPROVED = "approved"  # decided; the engine runs it until completed or failed
    COMPLETED = "completed"
    FAILED = "failed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


OPEN_STATUSES = (Status.PENDING, Status.APPROVED)


class ApproverReminder(enum.StrEnum):
    """The reminders a pending request gets, each once (the request's column that marks it)."""

    APPROVERS = "approvers_reminded_at"
    ADMINS = "admins_reminded_at"  # the escalation


class CredentialStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRING = "retiring"  # replaced by a rotation; removed when its grace period ends
    REMOVED = "removed"


LIVE_CREDENTIALS = (CredentialStatus.ACTIVE, CredentialStatus.RETIRING)


class RetireState(enum.StrEnum):
    """Where a retiring secret is in usage-aware retirement (bot/flows/retirement.py)."""

    WATCHING = "watching"  # still used at its planned removal: kept, checked again daily
    ADMIN = "admin"  # still used at the maximum grace: an admin decides on a card
    REMOVING = "removing"  # claimed for removal (a crash resumes the removal, never a twin)


class StepState(enum.StrEnum):
    REQUESTED = "requested"  # asked for by a decision, carried out by the engine later
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class ReaderKind(enum.StrEnum):
    """The kinds of extra reader a request may name (Resource Manager's principalType values)."""

    GROUP = "Group"
    SERVICE_PRINCIPAL = "ServicePrincipal"  # a managed identity is one too


READER_LABELS = {
    ReaderKind.GROUP: "Group",
    ReaderKind.SERVICE_PRINCIPAL: "Managed identity / service principal",
}


@dataclass(frozen=True)
class ExtraReader:
    """A group or service principal (managed identity) the requester asked to read the secret
    too, as Microsoft Graph named it when the request was filed."""

    object_id: str
    kind: ReaderKind
    display_name: str

    @property
    def label(self) -> str:
        return f"{READER_LABELS[self.kind]}: {self.display_name}"


@dataclass
class Request:
    """A request for a new app or a rotation, from filing to its end."""

    kind: Kind
    requester_id: str
    display_name: str
    sign_in_audience: str
    secret_description: str
    secret_days: int
    justification: str
    team_id: str | None = None
    lifetime_note: str | None = None  # how a policy capped secret_days ("capped at 90 days by ...")
    redirect_uri: str | None = None
    redirect_platform: str | None = None
    federated: FederatedCredentialSpec | None = None  # None: a client secret (the default)
    extra_readers: tuple[ExtraReader, ...] = ()  # granted read on the secret for the app's life
    id: int = 0
    uid: str = ""
    status: Status = Status.PENDING
    # decision
    approver_id: str | None = None
    decided_at: datetime | None = None
    deny_reason: str | None = None
    card_channel: str | None = None
    card_ts: str | None = None
    # the approval policy's rule that applied when it was filed (None: no policy file)
    rule_number: int | None = None
    rule_text: str | None = None
    approvals_needed: int = 1
    approver_set: str | None = None  # the rule's approver set; None: the oauth-bot admins
    approvers_reminded_at: datetime | None = None
    admins_reminded_at: datetime | None = None
    # what was made (IDs only, never a value)
    client_id: str | None = None
    object_id: str | None = None
    key_id: str | None = None
    secret_end: datetime | None = None
    vault_secret_id: str | None = None
    grace_days: float | None = None
    verified: bool | None = None
    notified: bool = False
    error: str | None = None
    error_code: str | None = None  # the code of the typed error that failed it (bot.core.errors)
    # work distribution
    lease_owner: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Approval:
    """One person's approval of a request (a person counts once)."""

    request_id: int
    approver_id: str
    at: datetime


@dataclass(frozen=True)
class Step:
    """One line of a request's step log."""

    request_id: int
    step: str
    state: StepState
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass
class ManagedApp:
    """An app registration oauth-bot created (and so may manage)."""

    client_id: str
    object_id: str
    display_name: str
    sign_in_audience: str
    vault_secret_name: str
    request_id: int
    created_at: datetime | None = None


@dataclass(frozen=True)
class AppOwner:
    client_id: str
    slack_user_id: str
    entra_user_id: str | None = None


@dataclass
class Credential:
    """A client secret oauth-bot issued, whose value the vault holds."""

    key_id: str
    client_id: str
    description: str
    hint: str
    end: datetime | None
    vault_secret_id: str
    request_id: int
    status: CredentialStatus = CredentialStatus.ACTIVE
    remove_after: datetime | None = None
    created_at: datetime | None = None
    removed_at: datetime | None = None
    retire_state: RetireState | None = None  # None: removed when the grace period ends
    check_after: datetime | None = None  # WATCHING: when its use is checked again
    last_sign_in: datetime | None = None  # the last use the sign-in report showed


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    actor: str
    action: str
    request_id: int | None = None
    client_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0


# --- app registrations and their secrets, as the directory holds them ------------------------
class SecretValue:
    """A client secret value. It never shows itself in repr/str, so it cannot leak into a
    log line or an exception message by accident; `reveal()` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(***)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a secret value cannot be pickled")


@dataclass(frozen=True)
class PasswordCredential:
    key_id: str
    display_name: str
    hint: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class NewPassword:
    credential: PasswordCredential
    secret: SecretValue


@dataclass(frozen=True)
class Application:
    object_id: str
    client_id: str
    display_name: str
    sign_in_audience: str
    passwords: tuple[PasswordCredential, ...] = ()


@dataclass(frozen=True)
class DirectoryObject:
    """A directory object as Graph's getByIds returns it: `type` is the OData type's last part
    ("user", "group", "servicePrincipal", "application", "device", ...)."""

    object_id: str
    type: str
    display_name: str


@dataclass(frozen=True)
class TaggedApp:
    """One app of a tag scan: how many secrets it holds, and those that end before the horizon."""

    client_id: str
    display_name: str
    secrets: int
    expiring: tuple[PasswordCredential, ...]


@dataclass(frozen=True)
class CredentialUsage:
    """The app credential activity report's entry for one credential."""

    key_id: str
    last_sign_in: datetime | None


@dataclass(frozen=True)
class SignInDetail:
    """One service principal sign-in: when, from where, and to which resource."""

    at: datetime
    ip_address: str | None
    resource: str | None


@dataclass(frozen=True)
class VaultReference:
    """Where a value is: the vault secret's id (with version) and its portal link."""

    name: str
    version: str
    secret_id: str  # https://{vault}/secrets/{name}/{version}
    portal_url: str
    cli_command: str


@dataclass(frozen=True)
class StoredVersion:
    """The latest version of a vault secret, as far as the bot needs it (never the value)."""

    version: str
    tags: dict[str, str]


class ReadAccess(enum.StrEnum):
    """What became of the requester's read access to their new secret (the DM says it)."""

    GRANTED = "granted"
    NOT_PERMITTED = "not_permitted"  # the bot lacks the right to assign the role: ask the admins
    NO_USER = "no_user"  # no Entra user matches the requester's Slack email
    FAILED = "failed"  # Resource Manager failed past the retry budget


@dataclass(frozen=True)
class RoleAssignment:
    """A role assignment at one scope; `made` is False when it existed before the bot's PUT."""

    scope: str
    name: str
    made: bool = True


@dataclass
class ReadGrant:
    """Read access of one person to one app's vault secret, as the bot granted (or adopted) it."""

    client_id: str
    principal_id: str
    scope: str
    assignment_name: str
    granted_at: datetime
    expires_at: datetime | None  # None: kept until removed by hand
    request_id: int | None = None
    granted_by: str = "oauth-bot"
    adopted: bool = False  # the assignment existed already (the bot did not make it with this row)
    revoked_at: datetime | None = None
    id: int = 0


@dataclass(frozen=True)
class IssuedSecret:
    """What the requester is told: IDs and where the value is — never the value."""

    app: Application
    tenant_id: str
    key_id: str
    description: str
    hint: str
    end: datetime
    vault: VaultReference
    verified: bool | None = None
    read_access: ReadAccess | None = None  # None: the feature is off
    read_until: datetime | None = None  # with GRANTED: None means until removed
    readers_granted: tuple[ExtraReader, ...] = ()  # the request's extra readers who can read it
    readers_not_granted: tuple[ExtraReader, ...] = ()  # those the bot could not give access


def require_status(request: Request, *allowed: str) -> None:
    if request.status not in allowed:
        raise Conflict(f"Request #{request.id} is already {request.status}.")
