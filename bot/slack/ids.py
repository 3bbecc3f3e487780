"""Every Slack callback, action and block ID, named once."""

from __future__ import annotations

import enum


class Callback(enum.StrEnum):
    NEW_APP = "oauth_app_new"
    FEDERATE = "oauth_app_federate"
    DENY_REASON = "oauth_request_deny_reason"
    ROTATE = "oauth_secret_rotate"


class Action(enum.StrEnum):
    APPROVE = "request_approve"
    DENY = "request_deny"
    CANCEL = "request_cancel"
    RETRY = "request_retry"
    APPROVE_RETIRE_NOW = "request_approve_retire_now"
    RETIRE_OLDEST = "request_retire_oldest"
    RETIRE_CONFIRMED = "request_retire_confirmed"  # an admin named a secret oauth-bot did not issue
    ROTATE_NOW = "secret_rotate_now"
    GET_READ_ACCESS = "secret_get_read_access"
    RETIRE_REMOVE_NOW = "secret_retire_remove_now"  # a secret still in use at the maximum grace
    RETIRE_KEEP = "secret_retire_keep_7_days"
    REMOVE_SECRET = "secret_remove"  # from a reminder: the app signs in with a federated credential
    VALUE = "value"  # the one element inside each input block


class Field(enum.StrEnum):
    """Input block IDs; they are also the field names of bot.core.validation's validation errors."""

    NAME = "name"
    AUDIENCE = "audience"
    # how the workload signs in (a select that updates the form), and what each choice needs
    WORKLOAD = "workload"
    GITHUB_REPOSITORY = "github_repository"
    GITHUB_ENTITY = "github_entity"
    GITHUB_REF = "github_ref"
    K8S_ISSUER = "k8s_issuer"
    K8S_NAMESPACE = "k8s_namespace"
    K8S_SERVICE_ACCOUNT = "k8s_service_account"
    OIDC_ISSUER = "oidc_issuer"
    OIDC_SUBJECT = "oidc_subject"
    CREDENTIAL_NAME = "credential_name"
    CREDENTIAL_DESCRIPTION = "credential_description"
    REDIRECT_URI = "redirect_uri"
    PLATFORM = "platform"
    SECRET_DESCRIPTION = "secret_description"
    SECRET_EXPIRY = "secret_expiry"
    JUSTIFICATION = "justification"
    EXTRA_READERS = "extra_readers"
    DENY_REASON = "deny_reason"
