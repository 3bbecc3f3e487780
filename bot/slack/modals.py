"""The modals: the new-app request form (updated in place when the sign-in choice changes), the
rotation form, the federated credential form for an existing app, and the deny reason."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
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
from bot.core.model import ManagedApp, Workload
from bot.core.validation import AUDIENCE_LABELS, MAX_EXTRA_READERS, PLATFORM_LABELS, lifetime_label
from bot.core.workloads import GITHUB_ENTITIES, WORKLOAD_LABELS
from bot.slack.ids import Action, Callback, Field

# What a view_submission's state holds for an element → what sets it when the view is built.
_INITIAL = {
    "value": "initial_value",
    "selected_option": "initial_option",
    "selected_options": "initial_options",
    "selected_users": "initial_users",
    "selected_conversations": "initial_conversations",
    "selected_channels": "initial_channels",
    "selected_date": "initial_date",
}


def new_app_modal(
    settings: Settings,
    *,
    name: str = "",
    channel_id: str | None = None,
    limit: PasswordLimit = UNKNOWN,
    workload: Workload = Workload.SECRET,
    entity: str = "branch",
) -> dict[str, Any]:
    """The request form, with the name typed after `/oauth-app new` filled in; the fields shown
    are those the sign-in choice (`workload`, and for GitHub the entity type) needs, and its
    lifetimes within what the tenant's app management policy and the approval policy allow
    (`limit`)."""
    maximum = settings.max_secret_days(max_days=limit.max_days)
    view = copy.deepcopy(
        _new_app_form(
            settings.lifetime_choices(max_days=limit.max_days),
            settings.default_days(max_days=limit.max_days),
            secret_expiry_hint(settings, limit, maximum),
            workload,
            entity,
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
        return f"{limit.source[:1].upper()}{limit.source[1:]} allows at most {lifetime_label(maximum)}."
    return f"Policy allows at most {lifetime_label(maximum)}."


def federate_modal(
    *, client_id: str, app_name: str, workload: Workload = Workload.GITHUB, entity: str = "branch"
) -> dict[str, Any]:
    """`/oauth-app federate`: a federated credential for an app the bot manages."""
    view = copy.deepcopy(_federate_form(workload, entity))
    view["blocks"][0]["elements"][0]["text"] = f"App: {app_name[:200]} ({client_id})"
    view["private_metadata"] = json.dumps({"client_id": client_id})
    return view


def updated_modal(settings: Settings, view: dict[str, Any], limit: PasswordLimit = UNKNOWN) -> dict[str, Any]:
    """The form again after the sign-in choice (or GitHub entity type) changed, showing only the
    fields the new choice needs, with everything already typed or chosen kept."""
    values: dict[str, Any] = (view.get("state") or {}).get("values") or {}
    workload = _chosen(values, Field.WORKLOAD, Workload.SECRET)
    entity = _chosen(values, Field.GITHUB_ENTITY, "branch")
    try:
        chosen = Workload(workload)
    except ValueError:
        chosen = Workload.SECRET
    if entity not in GITHUB_ENTITIES:
        entity = "branch"
    if view.get("callback_id") == Callback.FEDERATE:
        if chosen == Workload.SECRET:
            chosen = Workload.GITHUB
        metadata = json.loads(view.get("private_metadata") or "{}")
        new = federate_modal(
            client_id=str(metadata.get("client_id", "")), app_name="", workload=chosen, entity=entity
        )
        new["blocks"][0] = copy.deepcopy(view["blocks"][0])  # the app line, as it was shown
    else:
        new = new_app_modal(settings, limit=limit, workload=chosen, entity=entity)
    new["private_metadata"] = view.get("private_metadata") or new["private_metadata"]
    for block in new["blocks"]:
        typed = values.get(block.get("block_id"), {}).get(Action.VALUE) if block["type"] == "input" else None
        for state_key, initial_key in _INITIAL.items():
            if typed and typed.get(state_key) not in (None, "", []):
                block["element"][initial_key] = copy.deepcopy(typed[state_key])
    return new


def _chosen(values: dict[str, Any], block_id: str, default: str) -> str:
    option = (values.get(block_id) or {}).get(Action.VALUE, {}).get("selected_option")
    return str(option["value"]) if option else default


def _workload_blocks(workload: Workload, entity: str, *, secret_choice: bool) -> list[Block]:
    """The sign-in select and the fields the chosen way needs (self-contained: block IDs in Field)."""
    choices = [w for w in Workload if secret_choice or w != Workload.SECRET]
    options = [Option(value=w.value, text=WORKLOAD_LABELS[w]) for w in choices]
    blocks: list[Block] = [
        InputBlock(
            block_id=Field.WORKLOAD,
            label="How will your workload sign in?",
            hint=(
                "A workload with an identity of its own (GitHub Actions, Kubernetes, another cloud) "
                "needs no secret: Entra ID trusts its tokens instead."
            ),
            dispatch_action=True,
            element=StaticSelectElement(
                action_id=Action.VALUE,
                options=options,
                initial_option=next(o for o in options if o.value == workload.value),
            ),
        )
    ]
    if workload == Workload.GITHUB:
        entities = [Option(value=key, text=label) for key, label in GITHUB_ENTITIES.items()]
        blocks += [
            InputBlock(
                block_id=Field.GITHUB_REPOSITORY,
                label="Repository",
                hint=(
                    "organization/repository, e.g. contoso/billing-api — or GitHub's immutable form "
                    "contoso@123456/billing-api@7890123."
                ),
                element=PlainTextInputElement(action_id=Action.VALUE, placeholder="contoso/billing-api"),
            ),
            InputBlock(
                block_id=Field.GITHUB_ENTITY,
                label="Entity type",
                hint="Which workflow runs may sign in.",
                dispatch_action=True,
                element=StaticSelectElement(
                    action_id=Action.VALUE,
                    options=entities,
                    initial_option=next(o for o in entities if o.value == entity),
                ),
            ),
        ]
        if entity != "pull_request":
            label, example = {
                "branch": ("Branch", "main"),
                "environment": ("Environment", "production"),
                "tag": ("Tag", "v1.2.0"),
            }[entity]
            blocks.append(
                InputBlock(
                    block_id=Field.GITHUB_REF,
                    label=label,
                    hint="One exact name: Entra ID allows no wildcards.",
                    element=PlainTextInputElement(action_id=Action.VALUE, placeholder=f"e.g. {example}"),
                )
            )
    elif workload == Workload.KUBERNETES:
        blocks += [
            InputBlock(
                block_id=Field.K8S_ISSUER,
                label="Cluster issuer URL",
                hint=(
                    "The cluster's OIDC issuer, exactly (AKS: az aks show -n CLUSTER -g GROUP "
                    "--query oidcIssuerProfile.issuerUrl -o tsv)."
                ),
                element=PlainTextInputElement(
                    action_id=Action.VALUE, placeholder="https://eastus.oic.prod-aks.azure.com/…/…/"
                ),
            ),
            InputBlock(
                block_id=Field.K8S_NAMESPACE,
                label="Namespace",
                element=PlainTextInputElement(action_id=Action.VALUE, placeholder="e.g. billing"),
            ),
            InputBlock(
                block_id=Field.K8S_SERVICE_ACCOUNT,
                label="Service account",
                element=PlainTextInputElement(action_id=Action.VALUE, placeholder="e.g. billing-api"),
            ),
        ]
    elif workload == Workload.OTHER:
        blocks += [
            InputBlock(
                block_id=Field.OIDC_ISSUER,
                label="Issuer",
                hint="The https URL in the iss claim of the workload's tokens, exactly.",
                element=PlainTextInputElement(
                    action_id=Action.VALUE, placeholder="https://issuer.example.com"
                ),
            ),
            InputBlock(
                block_id=Field.OIDC_SUBJECT,
                label="Subject identifier",
                hint="The sub claim of the workload's tokens, exactly (no wildcards).",
                element=PlainTextInputElement(action_id=Action.VALUE),
            ),
        ]
    if workload != Workload.SECRET:
        blocks += [
            InputBlock(
                block_id=Field.CREDENTIAL_NAME,
                label="Credential name",
                optional=True,
                hint="3 to 120 letters, digits, - or _; fixed once made. Empty: named after the workload.",
                element=PlainTextInputElement(action_id=Action.VALUE),
            ),
            InputBlock(
                block_id=Field.CREDENTIAL_DESCRIPTION,
                label="Credential description",
                optional=True,
                element=PlainTextInputElement(action_id=Action.VALUE),
            ),
        ]
    return blocks


@functools.cache
def _federate_form(workload: Workload, entity: str) -> dict[str, Any]:
    return View(
        type="modal",
        callback_id=Callback.FEDERATE,
        title=PlainTextObject(text="Add federated credential"),
        submit=PlainTextObject(text="Request"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            ContextBlock(block_id="app", elements=[PlainTextObject(text="App")]),
            *_workload_blocks(workload, entity, secret_choice=False),
            InputBlock(
                block_id=Field.JUSTIFICATION,
                label="Justification",
                optional=True,
                hint="Why this workload needs to sign in as the app. The approvers read this.",
                element=PlainTextInputElement(action_id=Action.VALUE, multiline=True),
            ),
        ],
    ).to_dict()


@functools.cache
def _new_app_form(
    lifetimes: tuple[int, ...],
    default_days: int,
    expiry_hint: str,
    workload: Workload,
    entity: str,
    *,
    readers: bool = False,
) -> dict[str, Any]:
    """The form built and checked once per policy and sign-in choice (slack_sdk's models
    validate lengths)."""
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
            *_workload_blocks(workload, entity, secret_choice=True),
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
            *(
                [
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
                ]
                if workload == Workload.SECRET
                else []
            ),
            InputBlock(
                block_id=Field.JUSTIFICATION,
                label="Justification",
                hint="What is the application for? The approvers read this.",
                element=PlainTextInputElement(action_id=Action.VALUE, multiline=True),
            ),
            *([extra_readers_block()] if readers and workload == Workload.SECRET else []),
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
