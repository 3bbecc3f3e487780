"""The modals: the new-app request form, the rotation form and the deny reason."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.config import Settings
from bot.core.lifetimes import UNKNOWN, PasswordLimit
from bot.core.model import ManagedApp
from bot.core.validation import AUDIENCE_LABELS, MAX_EXTRA_READERS, PLATFORM_LABELS, lifetime_label
from bot.slack.ids import Action, Callback, Field


def new_app_modal(
    settings: Settings, *, name: str = "", channel_id: str | None = None, limit: PasswordLimit = UNKNOWN
) -> dict[str, Any]:
    """The request form, with the name typed after `/oauth-app new` filled in; its lifetimes
    within what the tenant's app management policy allows (`limit`, when the bot may read it)."""
    maximum = settings.max_secret_days(max_days=limit.max_days)
    view = copy.deepcopy(
        _new_app_form(
            settings.lifetime_choices(max_days=limit.max_days),
            settings.default_days(max_days=limit.max_days),
            secret_expiry_hint(settings, limit, maximum),
            readers=bool(settings.key_vault_resource_id),
        )
    )
    if name:
        view["blocks"][0]["element"]["initial_value"] = name[:3000]
    view["private_metadata"] = json.dumps({"channel_id": channel_id})
    return view


def extra_readers_block() -> InputBlock:
    """Optional groups and managed identities / service principals that may read the secret too."""
    return InputBlock(
        block_id=Field.EXTRA_READERS,
        label="Extra readers",
        optional=True,
        hint=(
            "Object IDs of Microsoft Entra groups or managed identities / service principals that may "
            f"also read the secret, one per line or comma-separated (at most {MAX_EXTRA_READERS}). "
            "The approvers see them by name."
        ),
        element=PlainTextInputElement(
            action_id=Action.VALUE, multiline=True, placeholder="00000000-0000-0000-0000-000000000000"
        ),
    )


def rotate_modal(app: ManagedApp, *, readers: bool, response_url: str | None = None) -> dict[str, Any]:
    """Confirm a rotation of this app's client secret, with optional extra readers; the answer
    goes to `response_url` (the command's or the button's) when there is one, else a DM."""
    blocks: list[Block] = [
        SectionBlock(
            text=PlainTextObject(
                text=f"A new client secret for {app.display_name[:200]} ({app.client_id}), next to the "
                "old one. The value goes into Key Vault; you get a DM.",
                emoji=False,
            )
        )
    ]
    if readers:
        blocks.append(extra_readers_block())
    return View(
        type="modal",
        callback_id=Callback.ROTATE,
        title=PlainTextObject(text="Rotate secret"),
        submit=PlainTextObject(text="Submit"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=json.dumps({"client_id": app.client_id, "response_url": response_url}),
        blocks=blocks,
    ).to_dict()


def secret_expiry_hint(settings: Settings, limit: PasswordLimit, maximum: int) -> str:
    """Under the Secret expiry field: the longest lifetime and whose rule it is; or, when the
    tenant allows no client secret, that (the federated credential is the way then)."""
    if not limit.passwords_allowed:
        return limit.blocked_message()
    if maximum < settings.oauth_bot_max_secret_days:
        return f"Your tenant's app management policy allows at most {lifetime_label(maximum)}."
    return f"Policy allows at most {lifetime_label(maximum)}."


@functools.cache
def _new_app_form(
    lifetimes: tuple[int, ...], default_days: int, expiry_hint: str, *, readers: bool = False
) -> dict[str, Any]:
    """The form built and checked once per policy (slack_sdk's models validate lengths)."""
    audience_options = [Option(value=key, text=label) for key, label in AUDIENCE_LABELS.items()]
    platform_options = [Option(value=key, text=label) for key, label in PLATFORM_LABELS.items()]
    lifetime_options = [Option(value=str(days), text=lifetime_label(days)) for days in lifetimes]
    default_lifetime = next(o for o in lifetime_options if o.value == str(default_days))
    view = View(
        type="modal",
        callback_id=Callback.NEW_APP,
        title=PlainTextObject(text="New app registration"),
        submit=PlainTextObject(text="Request"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id=Field.NAME,
                label="Name",
                hint="The user-facing display name for this application.",
                element=PlainTextInputElement(
                    action_id=Action.VALUE,
                    placeholder="e.g. billing-api",
                ),
            ),
            InputBlock(
                block_id=Field.AUDIENCE,
                label="Supported account types",
                hint="Who can use this application or access this API?",
                element=RadioButtonsElement(
                    action_id=Action.VALUE, options=audience_options, initial_option=audience_options[0]
                ),
            ),
            InputBlock(
                block_id=Field.REDIRECT_URI,
                label="Redirect URI",
                optional=True,
                hint="Where sign-in responses go: https:// (http:// only for localhost).",
                element=PlainTextInputElement(
                    action_id=Action.VALUE, placeholder="https://app.example.com/auth/callback"
                ),
            ),
            InputBlock(
                block_id=Field.PLATFORM,
                label="Platform",
                optional=True,
                hint="The platform of the redirect URI.",
                element=StaticSelectElement(
                    action_id=Action.VALUE, options=platform_options, initial_option=platform_options[0]
                ),
            ),
            InputBlock(
                block_id=Field.SECRET_DESCRIPTION,
                label="Secret description",
                optional=True,
                element=PlainTextInputElement(action_id=Action.VALUE, placeholder="e.g. CI deploys"),
            ),
            InputBlock(
                block_id=Field.SECRET_EXPIRY,
                label="Secret expiry",
                hint=expiry_hint,
                element=StaticSelectElement(
                    action_id=Action.VALUE, options=lifetime_options, initial_option=default_lifetime
                ),
            ),
            InputBlock(
                block_id=Field.JUSTIFICATION,
                label="Justification",
                hint="What is the application for? The approvers read this.",
                element=PlainTextInputElement(action_id=Action.VALUE, multiline=True),
            ),
            *([extra_readers_block()] if readers else []),
        ],
    )
    return view.to_dict()


def deny_reason_modal(request_id: int) -> dict[str, Any]:
    return View(
        type="modal",
        callback_id=Callback.DENY_REASON,
        title=PlainTextObject(text=f"Deny request #{request_id}"[:24]),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Back"),
        private_metadata=json.dumps({"request_id": request_id}),
        blocks=[
            InputBlock(
                block_id=Field.DENY_REASON,
                label="Reason",
                hint="The requester receives this reason.",
                element=PlainTextInputElement(action_id=Action.VALUE, multiline=True),
            )
        ],
    ).to_dict()


# --- the approval card ----------------------------------------------------------------
