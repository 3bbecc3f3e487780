"""Rules of a federated identity credential (workload identity federation): how a workload
signs in, and what each way needs — GitHub Actions, a Kubernetes service account, another OIDC
issuer — as field errors (ValidationError), the way bot.core.validation checks the rest of a form."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from urllib.parse import urlsplit

from bot.core.errors import ValidationError
from bot.core.model import (
    FEDERATED_AUDIENCE,
    GITHUB_ISSUER,
    KUBERNETES_SUBJECT_PREFIX,
    FederatedCredentialSpec,
    Workload,
)


def has_control_characters(text: str) -> bool:
    """Control and format characters, line/paragraph separators, and lone surrogates."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text)


# The Entra admin center's wording for the scenarios (each within Slack's 75-character limit).
WORKLOAD_LABELS = {
    Workload.SECRET: "Client secret",
    Workload.GITHUB: "GitHub Actions",
    Workload.KUBERNETES: "Kubernetes service account",
    Workload.OTHER: "Other OIDC issuer",
}
GITHUB_ENTITIES = {
    "branch": "Branch",
    "environment": "Environment",
    "tag": "Tag",
    "pull_request": "Pull request",
}
MAX_FEDERATED_FIELD = 600  # Graph's limit for issuer, subject and description
MAX_ENVIRONMENT = 255  # GitHub's limit for an environment name
MAX_DNS_NAME = 253  # a Kubernetes object name (RFC 1123 subdomain)
MIN_CREDENTIAL_NAME = 3
CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")
GITHUB_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
GITHUB_REPO = r"[A-Za-z0-9._-]{1,100}"
GITHUB_REPOSITORY = re.compile(rf"^(?P<owner>{GITHUB_OWNER})/(?P<repo>{GITHUB_REPO})$")
# GitHub's immutable subject form: repo:OWNER@OWNER_ID/REPO@REPO_ID:…
GITHUB_IMMUTABLE = re.compile(rf"^(?P<owner>{GITHUB_OWNER})@\d{{1,20}}/(?P<repo>{GITHUB_REPO})@\d{{1,20}}$")
DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$")
REF_FORBIDDEN = re.compile(r"[\x00-\x20~^:?*\[\\\x7f]")


def parse_workload(value: str | None) -> Workload | None:
    """The sign-in choice of the form (none chosen: a client secret, today's flow)."""
    if not value:
        return Workload.SECRET
    try:
        return Workload(value)
    except ValueError:
        return None


def _text(values: Mapping[str, str | None], key: str) -> str:
    return (values.get(key) or "").strip()


def issuer_problem(issuer: str) -> str | None:
    """Why Entra would not match tokens of this issuer, or None: an https URL, as exact as the
    `iss` claim (no wildcards, query or fragment)."""
    if not issuer:
        return "Enter the issuer URL (https://…)."
    if len(issuer) > MAX_FEDERATED_FIELD:
        return f"Use at most {MAX_FEDERATED_FIELD} characters."
    if "*" in issuer:
        return "Wildcards are not allowed: the issuer must match the token's iss claim exactly."
    if any(ch.isspace() for ch in issuer) or has_control_characters(issuer):
        return "The issuer cannot contain spaces or control characters."
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme != "https" or not host:
        return "Enter an https:// URL: Entra trusts only https issuers."
    if "@" in parts.netloc:
        return "The issuer cannot contain a user name or password (the part before @)."
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        return "The issuer cannot have a query (?…) or fragment (#…)."
    return None


def _git_ref_problem(ref: str, what: str) -> str | None:
    """git's rules for a branch or tag name (git check-ref-format), as a field error."""
    if not ref:
        return f"Enter the {what} name."
    if len(ref) > MAX_FEDERATED_FIELD - 100:
        return "That name is too long."
    if "*" in ref:
        return "Wildcards are not allowed: Entra matches the subject exactly. Name one " + what + "."
    if has_control_characters(ref):
        return f"A {what} name cannot contain control or invisible characters."
    if REF_FORBIDDEN.search(ref) or ".." in ref or "@{" in ref or "//" in ref:
        return f"A {what} name cannot contain spaces, '..', '@{{', '//' or any of ~ ^ : ? [ \\."
    if ref.startswith(("/", "-", ".")) or ref.endswith(("/", ".", ".lock")) or ref == "@":
        return f"That is not a valid {what} name (it cannot start or end with / or ., or end with .lock)."
    if any(part.startswith(".") for part in ref.split("/")):
        return f"No part of a {what} name can start with a dot."
    return None


def _github_subject(values: Mapping[str, str | None], errors: dict[str, str]) -> tuple[str, str]:
    """The subject for GitHub Actions, and a default credential name."""
    repository = _text(values, "github_repository").removeprefix("https://github.com/").strip("/")
    match = GITHUB_REPOSITORY.match(repository) or GITHUB_IMMUTABLE.match(repository)
    if not repository:
        errors["github_repository"] = (
            "Enter the repository as organization/repository, e.g. contoso/billing-api."
        )
    elif "*" in repository:
        errors["github_repository"] = "Wildcards are not allowed: name one repository."
    elif match is None or match["repo"] in (".", ".."):
        errors["github_repository"] = (
            "Write it as organization/repository (e.g. contoso/billing-api), or in GitHub's immutable "
            "form organization@ID/repository@ID: letters, digits and hyphens in the organization; "
            "letters, digits, '.', '-' and '_' in the repository."
        )
    entity = _text(values, "github_entity") or "branch"
    value = _text(values, "github_ref")
    if entity not in GITHUB_ENTITIES:
        errors["github_entity"] = "Choose Branch, Environment, Tag or Pull request."
        return "", ""
    if entity == "branch":
        value = value.removeprefix("refs/heads/")
        problem = _git_ref_problem(value, "branch")
        tail = f"ref:refs/heads/{value}"
    elif entity == "tag":
        value = value.removeprefix("refs/tags/")
        problem = _git_ref_problem(value, "tag")
        tail = f"ref:refs/tags/{value}"
    elif entity == "environment":
        problem = None
        if not value:
            problem = "Enter the environment name."
        elif len(value) > MAX_ENVIRONMENT:
            problem = f"GitHub allows at most {MAX_ENVIRONMENT} characters."
        elif "*" in value:
            problem = "Wildcards are not allowed: name one environment."
        elif has_control_characters(value):
            problem = "The environment name cannot contain control characters."
        tail = f"environment:{value}"
    else:
        problem, tail = None, "pull_request"
    if problem:
        errors["github_ref"] = problem
    if match is None:
        return "", ""
    default_name = f"github-{match['owner']}-{match['repo']}-{entity}" + (f"-{value}" if value else "")
    return f"repo:{repository}:{tail}", default_name


def _kubernetes_subject(values: Mapping[str, str | None], errors: dict[str, str]) -> tuple[str, str, str]:
    issuer = _text(values, "k8s_issuer")
    problem = issuer_problem(issuer)
    if problem:
        errors["k8s_issuer"] = problem
    namespace = _text(values, "k8s_namespace")
    account = _text(values, "k8s_service_account")
    if "*" in namespace or not DNS_LABEL.match(namespace):
        errors["k8s_namespace"] = (
            "A namespace is a DNS label: at most 63 lowercase letters, digits and hyphens, starting and "
            "ending with a letter or digit (no wildcards)."
        )
    if "*" in account or len(account) > MAX_DNS_NAME or not DNS_SUBDOMAIN.match(account):
        errors["k8s_service_account"] = (
            "A service account name is a DNS name: lowercase letters, digits, '-' and '.', starting and "
            "ending with a letter or digit, at most 253 characters (no wildcards)."
        )
    return issuer, f"{KUBERNETES_SUBJECT_PREFIX}{namespace}:{account}", f"kubernetes-{namespace}-{account}"


def _other_subject(values: Mapping[str, str | None], errors: dict[str, str]) -> tuple[str, str, str]:
    issuer = _text(values, "oidc_issuer")
    problem = issuer_problem(issuer)
    if problem:
        errors["oidc_issuer"] = problem
    subject = _text(values, "oidc_subject")
    if not subject:
        errors["oidc_subject"] = "Enter the subject identifier: the sub claim of the workload's tokens."
    elif len(subject) > MAX_FEDERATED_FIELD:
        errors["oidc_subject"] = f"Use at most {MAX_FEDERATED_FIELD} characters."
    elif "*" in subject:
        errors["oidc_subject"] = "Wildcards are not allowed: Entra matches the subject exactly."
    elif has_control_characters(subject):
        errors["oidc_subject"] = "The subject cannot contain line breaks or control characters."
    host = (urlsplit(issuer).hostname or "oidc") if not problem else "oidc"
    return issuer, subject, f"{host}-{subject}"


def credential_name_from(text: str) -> str:
    """A valid credential name made of `text`: other characters become hyphens."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")
    name = re.sub(r"-{2,}", "-", name)[:120].rstrip("-_")
    return name if len(name) >= MIN_CREDENTIAL_NAME else f"oauth-bot-{name}".rstrip("-")


def validate_federated(workload: Workload, values: Mapping[str, str | None]) -> FederatedCredentialSpec:
    """A federated credential from the form's fields (by field name); ValidationError per bad field."""
    errors: dict[str, str] = {}
    if workload == Workload.GITHUB:
        issuer = GITHUB_ISSUER
        subject, default_name = _github_subject(values, errors)
    elif workload == Workload.KUBERNETES:
        issuer, subject, default_name = _kubernetes_subject(values, errors)
    elif workload == Workload.OTHER:
        issuer, subject, default_name = _other_subject(values, errors)
    else:
        raise ValidationError({"workload": "Choose GitHub Actions, Kubernetes or another OIDC issuer."})
    if len(subject) > MAX_FEDERATED_FIELD:
        errors.setdefault("github_ref", f"The subject would be longer than {MAX_FEDERATED_FIELD} characters.")
    name = _text(values, "credential_name")
    if name and not CREDENTIAL_NAME.match(name):
        errors["credential_name"] = (
            "Use 3 to 120 letters, digits, hyphens or underscores, starting with a letter or digit "
            "(it becomes part of a URL and cannot be changed later)."
        )
    description = _text(values, "credential_description")
    if len(description) > MAX_FEDERATED_FIELD:
        errors["credential_description"] = f"Use at most {MAX_FEDERATED_FIELD} characters."
    elif has_control_characters(description):
        errors["credential_description"] = "The description cannot contain line breaks or control characters."
    if errors:
        raise ValidationError(errors)
    return FederatedCredentialSpec(
        name=name or credential_name_from(default_name),
        issuer=issuer,
        subject=subject,
        audiences=(FEDERATED_AUDIENCE,),
        description=description,
    )
