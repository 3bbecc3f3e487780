"""The messages about federated credentials: the trust as an approver sees it, the requester's
DM with a ready-to-paste snippet for the workload, and the notice of a removed secret."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    RichTextBlock,
    RichTextPreformattedElement,
    RichTextSectionElement,
)

from bot.core.federation import FederationReady
from bot.core.model import FederatedCredentialSpec, Kind, Request, Workload
from bot.core.workloads import WORKLOAD_LABELS
from bot.slack.views import Message, code, dicts, facts, text


def federated_rows(spec: FederatedCredentialSpec) -> list[tuple[str, Any]]:
    """The trust in full: an approver must see exactly which tokens will sign in as the app."""
    return [
        ("Sign-in", f"{WORKLOAD_LABELS[spec.workload]} — federated credential, no secret"),
        ("Issuer", code(spec.issuer) if spec.issuer else None),
        ("Subject", code(spec.subject) if spec.subject else None),  # (Slack refuses empty text)
        ("Credential name", spec.name),
        ("Audience", ", ".join(spec.audiences)),
    ]


def workload_snippet(ready: FederationReady) -> str:
    """What to paste where the workload runs: the IDs, and nothing secret (there is none)."""
    credential, client_id, tenant_id = ready.credential, ready.app.client_id, ready.tenant_id
    spec = FederatedCredentialSpec(credential.name, credential.issuer, credential.subject)
    if spec.workload == Workload.GITHUB:
        environment = credential.subject.partition(":environment:")[2]
        job = f"    environment: {environment}\n" if environment else ""
        return (
            "jobs:\n"
            "  deploy:\n"
            "    runs-on: ubuntu-latest\n"
            f"{job}"
            "    permissions:\n"
            "      id-token: write   # lets the job ask GitHub for its OIDC token\n"
            "      contents: read\n"
            "    steps:\n"
            "      - uses: azure/login@v2\n"
            "        with:\n"
            f"          client-id: {client_id}\n"
            f"          tenant-id: {tenant_id}\n"
            "          allow-no-subscriptions: true   # or subscription-id: <your subscription ID>\n"
        )
    if spec.workload == Workload.KUBERNETES:
        _, _, rest = credential.subject.partition("system:serviceaccount:")
        namespace, _, account = rest.partition(":")
        return (
            "apiVersion: v1\n"
            "kind: ServiceAccount\n"
            "metadata:\n"
            f"  name: {account}\n"
            f"  namespace: {namespace}\n"
            "  annotations:\n"
            f'    azure.workload.identity/client-id: "{client_id}"\n'
            f'    azure.workload.identity/tenant-id: "{tenant_id}"\n'
            "---\n"
            "# and in the pod template of the workload:\n"
            "metadata:\n"
            "  labels:\n"
            '    azure.workload.identity/use: "true"\n'
            "spec:\n"
            f"  serviceAccountName: {account}\n"
        )
    return (
        "# Exchange the workload's own token (its sub claim must be the Subject above) for an Entra token:\n"
        f"curl -s -X POST {ready.authority}/oauth2/v2.0/token \\\n"
        f"  -d client_id={client_id} \\\n"
        "  -d grant_type=client_credentials \\\n"
        "  -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \\\n"
        '  -d client_assertion="$WORKLOAD_TOKEN" \\\n'
        "  -d scope=https://graph.microsoft.com/.default\n"
    )


def federation_ready(request: Request, ready: FederationReady) -> Message:
    """The DM for a federated credential: the IDs, the trust, the snippet; no secret exists."""
    credential = ready.credential
    spec = FederatedCredentialSpec(credential.name, credential.issuer, credential.subject)
    rows: list[tuple[str, Any]] = [
        ("App name", ready.app.display_name),
        ("Application (client) ID", code(ready.app.client_id)),
        ("Directory (tenant) ID", code(ready.tenant_id)),
        ("Object ID", code(ready.app.object_id)),
        ("Sign-in", f"{WORKLOAD_LABELS[spec.workload]} — federated credential, no secret"),
        ("Credential name", credential.name),
        ("Issuer", code(credential.issuer)),
        ("Subject", code(credential.subject)),
    ]
    blocks: list[Block] = [
        HeaderBlock(
            text="Your app registration is ready"
            if request.kind == Kind.NEW_APP
            else "Your federated credential is ready"
        ),
        facts(rows),
        RichTextBlock(
            elements=[
                RichTextSectionElement(elements=[text("Paste this where the workload runs:")]),
                RichTextPreformattedElement(elements=[text(workload_snippet(ready))]),
            ]
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Request #{request.id}. There is no secret to store or rotate. The first token "
                    "exchange may fail with AADSTS70021 (no matching federated identity record) for a "
                    "few minutes while the credential propagates: retry then."
                )
            ]
        ),
    ]
    return f"Request #{request.id} is done: client ID {ready.app.client_id}, no secret.", dicts(blocks)


def secret_removed(request: Request, key_id: str) -> Message:
    blocks: list[Block] = [
        RichTextBlock(
            elements=[
                RichTextSectionElement(
                    elements=[
                        text(f"Request #{request.id}: the client secret was removed from ", bold=True),
                        text(request.display_name, bold=True),
                        text(".\nSecret ID: "),
                        text(key_id, code=True),
                        text(
                            "\nIts version in Key Vault is disabled (nobody can read it); the app "
                            "signs in with its federated credential."
                        ),
                    ]
                )
            ]
        )
    ]
    return f"The client secret {key_id} of app {request.client_id} was removed.", dicts(blocks)
