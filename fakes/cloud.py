"""All the fakes together (Slack, Entra ID, Graph, Key Vault, Resource Manager), seeded with a
small workspace and tenant, and the bot's settings that point at them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from bot.config import Settings
from fakes.arm import KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, KEY_VAULT_SECRETS_OFFICER, FakeArm
from fakes.entra import FakeEntra, service_principal_object_id
from fakes.graph import FakeGraph
from fakes.keyvault import FakeKeyVault
from fakes.signin import PersonCredential
from fakes.slack import FakeSlack
from fakes.socket_mode import APP_TOKEN, FakeSocketMode
from fakes.tls import TestCA

TENANT_ID = "8c7a1b2e-5f3d-4e6a-9b1c-2d3e4f5a6b7c"
BOT_CLIENT_ID = "0b07b07b-0000-4000-8000-00000000b07b"
BOT_CLIENT_SECRET = "fake-bot-credential-for-loopback-only"  # the fake Entra's record of the bot
SIGNING_SECRET = "fake-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-0000000000-fake-bot-token"
APPROVAL_CHANNEL = "C0APPROVALS"
ADMINS = ("U0ADMIN001", "U0ADMIN002")
DEVELOPER = "U0DEV00001"
OUTSIDER = "U0OUTSIDER"
VAULT_NAME = "contoso-apps"  # the vault's name in Resource Manager
# The Azure CLI's public client id: how people sign in to read a secret (az keyvault secret show).
CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
LEAST_PRIVILEGE = ["Application.ReadWrite.OwnedBy"]
OWNER_ROLES = ["Application.ReadWrite.OwnedBy", "Application.ReadWrite.All", "User.Read.All"]

PEOPLE = {
    DEVELOPER: ("dana.dev", "Dana Developer", "dana@contoso.example"),
    ADMINS[0]: ("alex.admin", "Alex Admin", "alex@contoso.example"),
    ADMINS[1]: ("sam.admin", "Sam Admin", "sam@contoso.example"),
    OUTSIDER: ("olly.other", "Olly Other", "olly@contoso.example"),
}


def entra_user_id(slack_user_id: str) -> str:
    """The Entra object id of a seeded person (stable, GUID-shaped)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, slack_user_id))


def password_of(slack_user_id: str) -> str:
    """The Entra password of a seeded person (the fake Entra's record, loopback only)."""
    return f"fake-password-{PEOPLE[slack_user_id][0]}"


BOT_PRINCIPAL_ID = service_principal_object_id(TENANT_ID, BOT_CLIENT_ID)


class FakeCloud:
    """Slack, Entra ID, Graph, Key Vault and Resource Manager on 127.0.0.1, sharing one test CA;
    with `socket_mode`, also Slack's Socket Mode server, and the bot's environment gets the
    app-level token (SLACK_APP_TOKEN) that opens it, which puts the bot in Socket Mode.

    In Resource Manager the vault is `vault_resource_id`; the bot's service principal holds
    Key Vault Secrets Officer on it and, as its right to grant people read access to their
    secret, Key Vault Data Access Administrator (`take_bot_assignment_right` /
    `give_bot_assignment_right` change that). Each seeded person can sign in to Entra with
    `password_of(slack_user_id)` through the public client CLI_CLIENT_ID (device code flow):
    `credential_for(slack_user_id)` is their TokenCredential, e.g. for a SecretClient.
    """

    def __init__(
        self, directory: Path | None = None, *, roles: list[str] | None = None, socket_mode: bool = False
    ) -> None:
        self.ca = TestCA(directory)
        self.entra = FakeEntra(self.ca, TENANT_ID)
        self.graph = FakeGraph(self.ca, self.entra)
        self.vault = FakeKeyVault(self.ca, self.entra, TENANT_ID)
        self.arm = FakeArm(self.ca, self.entra, self.graph, TENANT_ID)
        self.slack = FakeSlack(self.ca, bot_token=BOT_TOKEN)
        self.socket_mode = FakeSocketMode(self.ca, self.slack, app_token=APP_TOKEN) if socket_mode else None
        self._roles = list(roles or LEAST_PRIVILEGE)
        self.vault_resource_id = ""
        self.bot_assignment_right: str | None = None  # the name of the bot's KVDAA assignment

    @property
    def servers(self) -> list[Any]:
        socket_mode = [self.socket_mode] if self.socket_mode is not None else []
        return [self.entra, self.graph, self.vault, self.arm, self.slack, *socket_mode]

    def start(self) -> FakeCloud:
        for server in self.servers:
            server.start()
        self.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, self._roles)
        self.entra.register_public_client(CLI_CLIENT_ID)
        self.slack.add_channel(APPROVAL_CHANNEL, "oauth-approvals")
        for user_id, (name, real_name, email) in PEOPLE.items():
            self.slack.add_user(user_id, name, real_name=real_name, email=email)
            self.graph.add_user(entra_user_id(user_id), email, real_name, mail=email)
            self.entra.add_user(email, password_of(user_id), entra_user_id(user_id), real_name)
        self.vault_resource_id = self.arm.add_vault(self.vault, VAULT_NAME)
        self.arm.grant(BOT_PRINCIPAL_ID, KEY_VAULT_SECRETS_OFFICER, self.vault_resource_id)
        self.give_bot_assignment_right()
        return self

    def give_bot_assignment_right(self, role: str = KEY_VAULT_DATA_ACCESS_ADMINISTRATOR) -> None:
        """Let the bot create and delete role assignments on the vault (and its secrets) with `role`."""
        self.take_bot_assignment_right()
        self.bot_assignment_right = self.arm.grant(BOT_PRINCIPAL_ID, role, self.vault_resource_id)

    def credential_for(self, slack_user_id: str) -> PersonCredential:
        """A seeded person's TokenCredential (device code sign-in through the CLI's client)."""
        return PersonCredential(
            self.entra, CLI_CLIENT_ID, PEOPLE[slack_user_id][2], password_of(slack_user_id)
        )

    def take_bot_assignment_right(self) -> None:
        if self.bot_assignment_right is not None:
            self.arm.revoke(self.bot_assignment_right)
            self.bot_assignment_right = None

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def trust(self) -> None:
        """Make this process's clients trust the fakes' CA (the standard variables only)."""
        os.environ["SSL_CERT_FILE"] = str(self.ca.bundle_path)
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.ca.bundle_path)

    def environment(self, database_url: str, port: int = 0) -> dict[str, str]:
        """The bot's environment variables (as an operator would set them) for these fakes."""
        environment = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{self.slack.url}/api/",
            "PORT": str(port),
            "OAUTH_BOT_APPROVAL_CHANNEL": APPROVAL_CHANNEL,
            "OAUTH_BOT_ADMINS": ",".join(ADMINS),
            "AZURE_TENANT_ID": TENANT_ID,
            "AZURE_CLIENT_ID": BOT_CLIENT_ID,
            "AZURE_CLIENT_SECRET": BOT_CLIENT_SECRET,
            "AZURE_AUTHORITY_HOST": self.entra.url,
            "GRAPH_URL": self.graph.url,
            "KEY_VAULT_URL": self.vault.url,
            "AZURE_RESOURCE_MANAGER_URL": self.arm.url,
            "KEY_VAULT_RESOURCE_ID": self.vault_resource_id,
            "DATABASE_URL": database_url,
            "SSL_CERT_FILE": str(self.ca.bundle_path),
            "REQUESTS_CA_BUNDLE": str(self.ca.bundle_path),
        }
        if self.socket_mode is not None:
            environment["SLACK_APP_TOKEN"] = self.socket_mode.app_token
        return environment

    def settings(self, database_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            key.lower(): value
            for key, value in self.environment(database_url).items()
            if key not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]
