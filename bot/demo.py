"""`oauth-bot demo`: the whole story on one machine, against the built-in loopback fakes.

A developer asks for an app in Slack, an admin approves it, the bot creates the app
registration in (fake) Entra ID, puts the secret value into (fake) Key Vault and DMs the
developer the IDs and the vault link. The developer reads the value with their own sign-in
(their time-bound Key Vault Secrets User on exactly that secret) until the access window
ends. Then the secret is rotated with a managed identity as extra reader, which reads the new
value with its own token, while the developer is refused another app's secret; the old
secret is kept for the grace period, then removed; an expiry reminder arrives with its Rotate
button, and the App Home shows it all. Last, a second app for a GitHub Actions workflow that
needs no secret at all (a federated credential). The bot's clock is moved by hand between
acts. No Slack or Azure account is needed. `--step` pauses between acts; every card also gets
a Block Kit Builder link.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient

from bot import logs
from fakes.clock import ManualClock
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    DEVELOPER,
    OUTSIDER,
    OWNER_ROLES,
    PEOPLE,
    SIGNING_SECRET,
    FakeCloud,
)
from fakes.harness import BackgroundBot
from fakes.signin import WorkloadCredential
from fakes.slack_driver import SlackDriver

# The demo's bot may look people up (User.Read.All: the requester's read access) and directory
# objects (Directory.Read.All: extra readers).
DEMO_ROLES = [*OWNER_ROLES, "Directory.Read.All"]
WORKLOAD_CLIENT_ID = "6d1c0f0e-2b7a-4c1e-9f3a-5e8d7c6b5a40"  # the billing-prod managed identity
WORKLOAD_SECRET = "fake-workload-credential-demo"


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo timed out waiting for {what}")
        time.sleep(0.02)
    return result


def _name(user_id: str) -> str:
    return "@" + PEOPLE[user_id][0] if user_id in PEOPLE else f"<@{user_id}>"


def _rich(element: dict[str, Any]) -> str:
    kind = element.get("type")
    if kind == "text":
        text = str(element["text"])
        style = element.get("style") or {}
        return f"`{text}`" if style.get("code") else text
    if kind == "user":
        return _name(str(element["user_id"]))
    if kind == "channel":
        return (
            "#oauth-approvals" if element["channel_id"] == APPROVAL_CHANNEL else f"#{element['channel_id']}"
        )
    if kind == "link":
        return f"{element.get('text') or element['url']} <{element['url']}>"
    if kind in ("rich_text_section", "rich_text_preformatted"):
        inner = "".join(_rich(e) for e in element.get("elements", []))
        return f"    $ {inner}" if kind == "rich_text_preformatted" else inner
    return ""


def render(blocks: list[dict[str, Any]]) -> str:
    """Block Kit as a person would read it, in plain text."""
    lines: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            lines += [block["text"]["text"], "=" * len(block["text"]["text"])]
        elif kind == "rich_text":
            lines += "\n".join(_rich(e) for e in block["elements"]).splitlines()
        elif kind == "context":
            lines.append("  (" + " ".join(e.get("text", "") for e in block["elements"]) + ")")
        elif kind == "actions":
            lines.append("  " + "  ".join(f"[ {e['text']['text']} ]" for e in block["elements"]))
        elif kind == "input":
            element = block["element"]
            optional = " (optional)" if block.get("optional") else ""
            shown = (element.get("initial_option") or {}).get("text", {}).get("text") or element.get(
                "initial_value", ""
            )
            lines.append(f"  {block['label']['text']}{optional}: [{shown}]")
            for option in element.get("options", []):
                lines.append(f"      - {option['text']['text']}")
        elif kind == "section" and block.get("text"):
            lines.append(block["text"]["text"])
    return "\n".join(lines)


BUILDER = "https://app.slack.com/block-kit-builder/#"


def builder_link(surface: dict[str, Any]) -> str:
    """A Block Kit Builder link that renders these blocks (a message, a modal or a Home tab)."""
    shown = {k: surface[k] for k in ("type", "title", "submit", "close", "blocks") if k in surface}
    return BUILDER + quote(json.dumps(shown, separators=(",", ":")), safe="")


def _box(title: str, body: str, surface: dict[str, Any] | None = None) -> None:
    print(f"\n┌─ {title}")
    for line in body.splitlines():
        print(f"│ {line}")
    print("└" + "─" * 60)
    if surface is not None:
        print(f"  see it rendered: {builder_link(surface)}")


class _Acts:
    """Numbered acts, with a pause before each one under --step (when a person is at the terminal)."""

    def __init__(self, step: bool) -> None:
        self.number = 0
        self.step = step and sys.stdin.isatty()

    def next(self, text: str) -> None:
        self.number += 1
        if self.step and self.number > 1:
            input("\n(press Enter for the next act) ")
        print(f"\n{self.number}. {text}")


def _mask(value: str) -> str:
    return value[:3] + "•" * 12 + f"  ({len(value)} characters, masked)"


def run_demo(*, verbose: bool = False, step: bool = False) -> int:
    logs.configure("INFO" if verbose else "ERROR")
    if not verbose:
        logging.getLogger().setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="oauth-bot-demo-"))
    with FakeCloud(work, roles=DEMO_ROLES) as cloud:
        cloud.trust()
        settings = cloud.settings(f"sqlite:///{work / 'oauth-bot.db'}")
        clock = ManualClock()
        acts = _Acts(step)
        print("oauth-bot demo: Slack, Entra ID, Microsoft Graph and Azure Key Vault are loopback fakes;")
        print(f"the bot is the real one, serving HTTP at POST /slack/events. Scratch files: {work}")
        with (
            BackgroundBot(settings, clock=clock) as bot,
            SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
        ):
            acts.next(f"{_name(DEVELOPER)} types: /oauth-app new billing-api")
            slack.command(DEVELOPER, "/oauth-app", "new billing-api")
            modal = _wait(lambda: cloud.slack.current_modal(DEVELOPER), "the modal")
            _box("Modal: " + modal["title"]["text"], render(modal["blocks"]), modal)

            acts.next("They fill it in and press Request.")
            slack.submit(
                DEVELOPER,
                modal,
                {
                    "Redirect URI": "https://billing.contoso.example/auth/callback",
                    "Secret description": "billing-api CI",
                    "Justification": "The billing service reads invoices through Microsoft Graph.",
                },
            )
            card = _wait(lambda: cloud.slack.messages(APPROVAL_CHANNEL), "the approval card")[-1]
            _box("#oauth-approvals", render(card["blocks"]), card)

            acts.next(f"{_name(OUTSIDER)} (not an admin) clicks Approve:")
            slack.click(OUTSIDER, "Approve", message=card, channel=APPROVAL_CHANNEL)
            refusal = _wait(lambda: cloud.slack.ephemerals(OUTSIDER), "the refusal")[-1]
            print(f"   only they see: {refusal['text']}")

            acts.next(f"{_name(ADMINS[0])} (an admin) clicks Approve.")
            slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
            dm = _wait(
                lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "is done" in m.get("text", "")],
                "the DM with the IDs",
            )[-1]
            final = _wait(
                lambda: (m := cloud.slack.message(APPROVAL_CHANNEL, card["ts"])) and "done" in str(m) and m,
                "the card's outcome",
            )
            _box("#oauth-approvals (the card now)", render(final["blocks"]), final)
            _box(f"DM to {_name(DEVELOPER)}", render(dm["blocks"]), dm)

            name = next(n for n in cloud.vault.names() if n.startswith("oauth-"))
            stored = cloud.vault.versions(name)[-1]
            tags = "\n".join(f"  {k}: {v}" for k, v in sorted(stored["tags"].items()))
            _box(
                "Key Vault holds",
                textwrap.dedent(f"""\
                    secret: {name}
                    version: {stored["id"].rsplit("/", 1)[-1]}
                    content type: {stored.get("contentType")}
                    expires: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stored["attributes"]["exp"]))}
                    value: {_mask(stored["value"])}
                    tags:
                    """)
                + tags,
            )
            in_slack = stored["value"] in cloud.slack.all_text()
            print(
                "\nThe secret value was sent to Slack: "
                + ("YES — this is a bug" if in_slack else "no (it is only in the vault)")
            )
            app = cloud.graph.app_by_client_id(stored["tags"]["client-id"]) or {}
            print(
                f"Entra ID now has '{app.get('displayName')}' ({app.get('signInAudience')}) with "
                f"{len(cloud.graph.passwords(app.get('id', '')))} client secret; the request is complete."
            )
            if in_slack:
                return 1
            _read_access(cloud, bot, clock, acts, name)
            _after_delivery(cloud, bot, slack, clock, acts, stored["tags"]["client-id"])
            return 0


def _read(credential: TokenCredential, vault_url: str, name: str) -> str:
    """What reading a vault secret with this credential gives: its masked value or the refusal."""
    client = SecretClient(vault_url, credential)
    try:
        return "read " + _mask(client.get_secret(name).value or "")
    except HttpResponseError as error:
        return f"refused: HTTP {error.status_code} {getattr(error.error, 'code', '')}".rstrip()
    finally:
        client.close()


def _read_access(cloud: FakeCloud, bot: BackgroundBot, clock: ManualClock, acts: _Acts, name: str) -> None:
    """The requester reads their value with their own token; the access window ends."""
    assert bot.services is not None and bot.services.read_access is not None
    developer = cloud.credential_for(DEVELOPER)
    acts.next(
        f"{_name(DEVELOPER)} reads the value with their own Entra sign-in (as az keyvault secret show):"
    )
    print(
        f"   {name}: {_read(developer, cloud.vault.url, name)} — Key Vault Secrets User on this secret only"
    )
    hours = bot.services.settings.oauth_bot_read_access_hours
    acts.next(f"{hours:g} hours later (the bot's clock moves) the access window ends.")
    clock.advance(timedelta(hours=hours, minutes=1))
    bot.services.read_access.revoke_expired()
    print(f"   The read grant ended and its role assignment on {name} was deleted:")
    print(f"   {name}: {_read(developer, cloud.vault.url, name)} — Get read access in the DM gives it back")


def _another_app(cloud: FakeCloud, slack: SlackDriver, acts: _Acts, name: str) -> None:
    """Someone else's app: the requester, who reads their own secret, is refused its secret."""
    developer = cloud.credential_for(DEVELOPER)
    acts.next(
        f"{_name(OUTSIDER)} gets payroll-api approved; {_name(DEVELOPER)} reads their own secret and "
        "tries payroll-api's:"
    )
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    slack.command(OUTSIDER, "/oauth-app", "new payroll-api")
    modal = _wait(lambda: cloud.slack.current_modal(OUTSIDER), "the modal")
    slack.submit(OUTSIDER, modal, {"Justification": "Payroll exports."})
    card = _wait(lambda: cloud.slack.messages(APPROVAL_CHANNEL)[before:], "the approval card")[-1]
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    _wait(lambda: [m for m in cloud.slack.dm_messages(OUTSIDER) if "is done" in m.get("text", "")], "the DM")
    other = next(n for n in cloud.vault.names() if n.startswith("oauth-") and n != name)
    print(f"   {name}: {_read(developer, cloud.vault.url, name)} (their own: granted again by the rotation)")
    print(f"   {other}: {_read(developer, cloud.vault.url, other)} (payroll-api's: the vault refuses it)")


def _after_delivery(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock, acts: _Acts, client_id: str
) -> None:
    """Rotation, the grace period's end, an expiry reminder and the App Home."""
    assert bot.services is not None
    services = bot.services
    app = cloud.graph.app_by_client_id(client_id) or {}

    cloud.entra.register_client(WORKLOAD_CLIENT_ID, WORKLOAD_SECRET, [])
    workload = cloud.graph.add_managed_identity(WORKLOAD_CLIENT_ID, "billing-prod")
    cloud.vault.workload_clients.add(WORKLOAD_CLIENT_ID)
    acts.next(
        f"{_name(DEVELOPER)} rotates the secret: /oauth-secret rotate billing-api, naming the billing-prod "
        "managed identity as an extra reader."
    )
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    slack.command(DEVELOPER, "/oauth-secret", "rotate billing-api")
    form = _wait(
        lambda: (
            (m := cloud.slack.current_modal(DEVELOPER)) and m["callback_id"] == "oauth_secret_rotate" and m
        ),
        "the rotation form",
    )
    _box("Modal: " + form["title"]["text"], render(form["blocks"]), form)
    slack.submit(DEVELOPER, form, {"Extra readers": workload})
    card = _wait(lambda: cloud.slack.messages(APPROVAL_CHANNEL)[before:], "the rotation card")[-1]
    _box("#oauth-approvals", render(card["blocks"]), card)
    slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL)
    dm = _wait(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "is done" in m.get("text", "")][1:],
        "the rotation's DM",
        timeout=120,
    )[-1]
    _box(f"DM to {_name(DEVELOPER)}", render(dm["blocks"]), dm)
    name = f"oauth-{client_id}"
    reader = WorkloadCredential(cloud.entra, WORKLOAD_CLIENT_ID, WORKLOAD_SECRET)
    print(f"billing-prod, with its own (app-only) token: {name}: {_read(reader, cloud.vault.url, name)}")
    print(
        f"Entra ID: {len(cloud.graph.passwords(app.get('id', '')))} client secrets — the old one stays valid "
        f"for the grace period ({services.settings.oauth_bot_grace_days:g} days)."
    )
    _another_app(cloud, slack, acts, name)

    grace = services.settings.oauth_bot_grace_days
    acts.next(f"{grace:g} days later (the bot's clock moves): the grace period ends.")
    clock.advance(timedelta(days=services.settings.oauth_bot_grace_days, minutes=1))
    services.lifecycle.retire_due()
    retired = _wait(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "was removed" in m.get("text", "")],
        "the retirement DM",
    )[-1]
    _box(f"DM to {_name(DEVELOPER)}", render(retired["blocks"]), retired)
    print(f"Entra ID: {len(cloud.graph.passwords(app.get('id', '')))} client secret left.")

    left = services.settings.default_secret_days - services.settings.oauth_bot_grace_days - 10
    acts.next(f"{left:g} days after that, the daily expiry scan runs.")
    clock.advance(timedelta(days=left))
    report = services.lifecycle.scan()
    reminder = _wait(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "expires" in m.get("text", "")],
        "the expiry reminder",
    )[-1]
    _box(f"DM to {_name(DEVELOPER)}", render(reminder["blocks"]), reminder)
    found = f"{report.apps} app(s), {report.secrets} secret(s)"
    print(f"The scan paged {found}: {len(report.reminders)} reminder(s).")

    acts.next(f"{_name(DEVELOPER)} opens oauth-bot's Home tab.")
    published = len(cloud.slack.api_calls("views.publish"))
    slack.home_opened(DEVELOPER)
    _wait(lambda: len(cloud.slack.api_calls("views.publish")) > published, "the Home tab")
    home = cloud.slack.home_view(DEVELOPER) or {"blocks": []}
    _box("App Home", render(home["blocks"]), home)
    _secretless(cloud, slack, acts)


def _secretless(cloud: FakeCloud, slack: SlackDriver, acts: _Acts) -> None:
    """A GitHub Actions workflow that signs in with its own OIDC token: a federated credential."""
    acts.next(f"{_name(DEVELOPER)} asks for an app for a GitHub Actions deploy job: no secret needed.")
    slack.command(DEVELOPER, "/oauth-app", "new deploy-pipeline")
    modal = _wait(lambda: cloud.slack.current_modal(DEVELOPER), "the modal")
    for choice in ("GitHub Actions", "Environment"):  # each choice updates the form in place
        shown = modal["hash"]
        slack.select(DEVELOPER, choice, view=modal)

        def updated(before: str = shown) -> dict[str, Any] | None:
            current = cloud.slack.current_modal(DEVELOPER)
            return current if current and current["hash"] != before else None

        modal = _wait(updated, "the form to update")
    _box("Modal: " + modal["title"]["text"], render(modal["blocks"]), modal)
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    slack.submit(
        DEVELOPER,
        modal,
        {
            "Repository": "contoso/deploy-pipeline",
            "Environment": "production",
            "Justification": "The production deploy job publishes to Azure.",
        },
    )
    card = _wait(lambda: cloud.slack.messages(APPROVAL_CHANNEL)[before:], "the approval card")[-1]
    _box("#oauth-approvals", render(card["blocks"]), card)
    slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
    dm = _wait(
        lambda: [m for m in cloud.slack.dm_messages(DEVELOPER) if "no secret" in m.get("text", "")],
        "the DM with the snippet",
    )[-1]
    _box(f"DM to {_name(DEVELOPER)}", render(dm["blocks"]), dm)
    app = next(a for a in cloud.graph.apps() if a["displayName"] == "deploy-pipeline")
    secrets, trusts = cloud.graph.passwords(app["id"]), cloud.graph.federated_credentials(app["id"])
    print(
        f"Entra ID: '{app['displayName']}' has {len(secrets)} client secrets and {len(trusts)} "
        "federated credential; Key Vault has nothing for it."
    )
