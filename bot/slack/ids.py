"""Every Slack callback, action and block ID, named once."""

from __future__ import annotations

import enum


class Callback(enum.StrEnum):
    NEW_APP = "oauth_app_new"
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
    VALUE = "value"  # the one element inside each input block


class Field(enum.StrEnum):
    """Input block IDs; they are also the field names of bot.core.validation's validation errors."""

    NAME = "name"
    AUDIENCE = "audience"
    REDIRECT_URI = "redirect_uri"
    PLATFORM = "platform"
    SECRET_DESCRIPTION = "secret_description"
    SECRET_EXPIRY = "secret_expiry"
    JUSTIFICATION = "justification"
    EXTRA_READERS = "extra_readers"
    DENY_REASON = "deny_reason"
