"""Per-secret read access, end to end: the requester (and only they) can read their new
secret's value with their own token for OAUTH_BOT_READ_ACCESS_HOURS; then the scheduled job
takes it away; owners get it back on demand; rotation re-grants; Resource Manager's replication
delay is waited out and a missing right degrades cleanly."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient

from bot.core.errors import ArmError, TokenError
from bot.core.model import Request, RoleAssignment, Status
from bot.core.ports import AccessGrants
from bot.runtime import Services
from fakes.arm import KEY_VAULT_SECRETS_USER, RBAC_ADMINISTRATOR
from fakes.clock import ManualClock
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    BOT_CLIENT_ID,
    BOT_CLIENT_SECRET,
    BOT_PRINCIPAL_ID,
    DEVELOPER,
    LEAST_PRIVILEGE,
    OUTSIDER,
    OWNER_ROLES,
    SIGNING_SECRET,
    FakeCloud,
    entra_user_id,
)
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import LogCapture, wait_until
from tests.e2e.flows import approve, request_id_of, request_new_app, request_rotation, wait_for_status
from tests.e2e.test_faults import CANARY, _places_holding, _record_answers

HOURS = 24  # the default window
README = Path(__file__).resolve().parents[2] / "README.md"
# The least-privilege alternative the README gives: RBAC Administrator, limited to assigning
# and removing Key Vault Secrets User.
CONDITION = (
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
    "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
    "{4633458b-17de-408a-b874-0445c86b69e6})) AND "
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
    "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals "
    "{4633458b-17de-408a-b874-0445c86b69e6}))"
)


@pytest.fixture(autouse=True)
def _bot_may_read_users(cloud: FakeCloud) -> Iterator[None]:
    """The bot matches a requester to their Entra user by email, which needs User.Read.All;
    Resource Manager's knobs and the bot's right to assign are put back afterwards."""
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, OWNER_ROLES)
    yield
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, LEAST_PRIVILEGE)
    cloud.arm.principal_replication_delay = 0.0
    cloud.arm.propagation_delay = 0.0
    cloud.give_bot_assignment_right()  # Key Vault Data Access Administrator, as FakeCloud starts


@pytest.fixture
def bot_settings(_bot_may_read_users: None, cloud: FakeCloud, database_path: Path) -> dict[str, Any]:
    return {"oauth_bot_retry_budget_seconds": 20.0}


def _services(bot: BackgroundBot) -> Services:
    assert bot.services is not None
    return bot.services


def _new_app(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str, user: str = DEVELOPER
) -> Request:
    card = request_new_app(slack, user, name)
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    return request


def _read(cloud: FakeCloud, person: str, client_id: str) -> str | None:
    """The latest value of the app's vault secret, read with `person`'s own token (None: refused)."""
    client = SecretClient(cloud.vault.url, cloud.credential_for(person))
    try:
        return client.get_secret(f"oauth-{client_id}").value
    except HttpResponseError as error:
        assert error.status_code == 403, error
        return None
    finally:
        client.close()


def _dm(cloud: FakeCloud, user: str, request_id: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_until(
        lambda: [m for m in cloud.slack.dm_messages(user) if f"#{request_id} is done" in m.get("text", "")],
        what=f"the DM of request #{request_id}",
    )
    return found[-1]


def _reader_assignments(cloud: FakeCloud, person: str, client_id: str) -> list[dict[str, Any]]:
    return [
        a
        for a in cloud.arm.assignments(entra_user_id(person))
        if a["properties"]["scope"].endswith(f"/secrets/oauth-{client_id}")
        and a["properties"]["roleDefinitionId"].endswith(KEY_VAULT_SECRETS_USER)
    ]


def _answer(cloud: FakeCloud, slack: SlackDriver, user: str, text: str) -> str:
    """What the bot answered `/oauth-secret {text}` with (through response_url), as JSON text."""
    before = len(cloud.slack.responses(user))
    assert slack.command(user, "/oauth-secret", text).status_code == 200
    wait_until(lambda: len(cloud.slack.responses(user)) > before, what=f"an answer to {user}")
    return json.dumps(cloud.slack.responses(user)[-1]["body"])


def _actions(services: Services, client_id: str) -> list[str]:
    return [e.action for e in services.store.audit_events() if e.client_id == client_id]


def test_the_requester_alone_reads_the_value_until_the_window_ends(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """After approval the requester reads the value with their own token (Resource Manager's
    token was fetched at start-up, not on the way to the DM) and a colleague is refused; the
    DM says until when; after 24 hours the job deletes the assignment (audited, the row marked
    revoked, a second run does nothing) and the requester is refused again."""
    arm_scope = f"{cloud.arm.url}/.default"
    arm_tokens = len(cloud.entra.token_requests(arm_scope))
    assert arm_tokens >= 1, "Resource Manager's token is fetched at start-up"
    request = _new_app(cloud, bot, slack, "readable-app")
    client_id = request.client_id or ""
    assert len(cloud.entra.token_requests(arm_scope)) == arm_tokens, "no token call before the DM"
    value = cloud.vault.value_of(f"oauth-{client_id}")
    assert value and _read(cloud, DEVELOPER, client_id) == value
    assert _read(cloud, OUTSIDER, client_id) is None
    (assignment,) = _reader_assignments(cloud, DEVELOPER, client_id)
    assert assignment["properties"]["principalType"] == "User"
    assert f"request #{request.id}" in assignment["properties"]["description"]
    dm = json.dumps(_dm(cloud, DEVELOPER, request.id)["blocks"])
    assert "you can read the value until" in dm and "Get read access" in dm
    services = _services(bot)
    assert services.read_access is not None
    (grant,) = services.store.read_grants(request_id=request.id)
    assert grant.expires_at == grant.granted_at + timedelta(hours=HOURS)
    assert grant.assignment_name == assignment["name"] and grant.revoked_at is None

    clock.advance(timedelta(hours=HOURS - 1))
    assert services.read_access.revoke_expired() == 0
    assert _read(cloud, DEVELOPER, client_id) == value
    clock.advance(timedelta(hours=1, minutes=1))
    assert "revoke-read-access" in services.scheduler.tick()  # the scheduled job, on its leader
    assert services.read_access.revoke_expired() == 0  # idempotent
    assert _reader_assignments(cloud, DEVELOPER, client_id) == []
    assert _read(cloud, DEVELOPER, client_id) is None
    assert services.store.read_grants(request_id=request.id)[0].revoked_at is not None
    actions = _actions(services, client_id)
    assert actions.count("grant.created") == 1 and actions.count("grant.revoked") == 1


def test_get_read_access_and_the_access_command_restore_it_for_owners_only(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """Once the window is over, the DM's Get read access button and `/oauth-secret access`
    give an owner the same access again (audited, same duration); a non-owner (an admin too)
    gets a refusal and no assignment; the scheduled job ends it again."""
    request = _new_app(cloud, bot, slack, "again-readable-app")
    client_id = request.client_id or ""
    services = _services(bot)
    assert services.read_access is not None
    clock.advance(timedelta(hours=HOURS, minutes=1))
    assert services.read_access.revoke_expired() == 1
    assert _read(cloud, DEVELOPER, client_id) is None

    dm = _dm(cloud, DEVELOPER, request.id)
    assert slack.click(DEVELOPER, "Get read access", message=dm).status_code == 200
    wait_until(lambda: _read(cloud, DEVELOPER, client_id) is not None, what="read access again")
    wait_until(
        lambda: any(
            "You can read the client secret" in json.dumps(m) for m in cloud.slack.ephemerals(DEVELOPER)
        ),
        what="the answer to the click",
    )
    clock.advance(timedelta(hours=HOURS, minutes=1))
    assert services.read_access.revoke_expired() == 1
    assert _read(cloud, DEVELOPER, client_id) is None

    for other in (OUTSIDER, ADMINS[0]):  # owners only: an admin who is not an owner neither
        assert "Only the owners" in _answer(cloud, slack, other, f"access {client_id}")
        assert _reader_assignments(cloud, other, client_id) == []
    assert _read(cloud, OUTSIDER, client_id) is None
    assert "You can read the client secret" in _answer(cloud, slack, DEVELOPER, "access again-readable-app")
    assert _read(cloud, DEVELOPER, client_id) is not None
    created = [
        e for e in services.store.audit_events() if e.action == "grant.created" and e.client_id == client_id
    ]
    assert [e.actor for e in created] == ["oauth-bot", DEVELOPER, DEVELOPER]


def test_rotation_regrants_read_access_to_the_new_version(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """A rotation gives the requester read access to the new value (the assignment they
    still hold is adopted, not twinned); when both windows are over it is removed once."""
    created = _new_app(cloud, bot, slack, "rotated-readable-app")
    client_id = created.client_id or ""
    services = _services(bot)
    assert services.read_access is not None
    clock.advance(timedelta(hours=1))
    card = request_rotation(slack, DEVELOPER, client_id)
    slack.click(ADMINS[1], "Approve", message=card, channel=APPROVAL_CHANNEL)
    rotation = wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)
    assert rotation.status == Status.COMPLETED, rotation.error
    newest = cloud.vault.versions(f"oauth-{client_id}")[-1]
    assert newest["tags"]["secret-id"] == rotation.key_id
    assert _read(cloud, DEVELOPER, client_id) == newest["value"]
    assert len(_reader_assignments(cloud, DEVELOPER, client_id)) == 1
    (regrant,) = services.store.read_grants(request_id=rotation.id)
    assert regrant.adopted
    assert "you can read the value until" in json.dumps(_dm(cloud, DEVELOPER, rotation.id)["blocks"])

    clock.advance(timedelta(hours=HOURS - 1, minutes=1))  # the first window is over, not the second
    assert services.read_access.revoke_expired() == 1
    assert _read(cloud, DEVELOPER, client_id) == newest["value"]
    clock.advance(timedelta(hours=1))
    assert services.read_access.revoke_expired() == 1
    assert _reader_assignments(cloud, DEVELOPER, client_id) == []
    assert _read(cloud, DEVELOPER, client_id) is None


def test_a_requester_new_to_resource_manager_is_granted_after_retries(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A user created moments ago answers 400 PrincipalNotFound for a while: the grant is
    retried with backoff within the budget and succeeds; one assignment, no twin."""
    slack_id, email = "U0NEWHIRE1", "newhire@contoso.example"
    object_id = str(uuid.uuid5(uuid.NAMESPACE_OID, slack_id))
    cloud.slack.add_user(slack_id, "nina.new", real_name="Nina New", email=email)
    cloud.graph.add_user(object_id, email, "Nina New", mail=email, new=True)
    cloud.arm.principal_replication_delay = 4.0
    answers_before = len(cloud.arm.answers)
    request = _new_app(cloud, bot, slack, "new-hire-app", user=slack_id)
    client_id = request.client_id or ""
    refused = [status for _request, status in cloud.arm.answers[answers_before:] if status == 400]
    assert refused, "no PrincipalNotFound was answered"
    assignments = [
        a
        for a in cloud.arm.assignments(object_id)
        if a["properties"]["scope"].endswith(f"/secrets/oauth-{client_id}")
    ]
    assert len(assignments) == 1
    assert "you can read the value until" in json.dumps(_dm(cloud, slack_id, request.id)["blocks"])


def test_without_the_right_to_assign_the_request_completes_and_the_admins_are_told_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """403 AuthorizationFailed: the app and secret are made, the request completes, the DM says
    read access could not be granted and whom to ask, each admin gets one alert, and the
    requester cannot read the value."""
    cloud.take_bot_assignment_right()
    request = _new_app(cloud, bot, slack, "unreadable-app")
    client_id = request.client_id or ""
    dm = json.dumps(_dm(cloud, DEVELOPER, request.id)["blocks"])
    assert "could not give you read access" in dm and "ask them" in dm
    assert _read(cloud, DEVELOPER, client_id) is None
    services = _services(bot)
    assert services.store.read_grants(request_id=request.id) == []

    def alerts(admin: str) -> list[dict[str, Any]]:
        said = f"requester of request #{request.id}"
        return [m for m in cloud.slack.dm_messages(admin) if said in json.dumps(m)]

    wait_until(lambda: all(alerts(admin) for admin in ADMINS), what="the admins' alert")
    assert [len(alerts(admin)) for admin in ADMINS] == [1] * len(ADMINS)
    assert "grant.created" not in _actions(services, client_id)


def test_the_canary_value_stays_in_the_vault_when_the_requester_reads_it(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, logs: LogCapture, database_path: Path
) -> None:
    """With read access granted and used, the secret value is still in no Slack call, answer,
    log record or database byte: only in the vault (and in what the requester read)."""
    answers = _record_answers(slack)
    cloud.graph.next_secret_text = CANARY
    request = _new_app(cloud, bot, slack, "canary-reader-app")
    assert _read(cloud, DEVELOPER, request.client_id or "") == CANARY
    time.sleep(0.2)  # let the last card refresh and App Home land before searching
    assert _places_holding(CANARY, cloud, logs, answers, database_path) == []


def test_rbac_administrator_with_the_readme_condition_is_enough(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """Instead of Key Vault Data Access Administrator, Role Based Access Control Administrator
    on the vault with the README's condition (only Key Vault Secrets User may be assigned or
    removed) lets the bot grant and revoke."""
    assert CONDITION in README.read_text()
    cloud.take_bot_assignment_right()
    cloud.bot_assignment_right = cloud.arm.grant(
        BOT_PRINCIPAL_ID, RBAC_ADMINISTRATOR, cloud.vault_resource_id, condition=CONDITION
    )
    request = _new_app(cloud, bot, slack, "conditioned-app")
    client_id = request.client_id or ""
    assert _read(cloud, DEVELOPER, client_id) is not None
    clock.advance(timedelta(hours=HOURS, minutes=1))
    services = _services(bot)
    assert services.read_access is not None and services.read_access.revoke_expired() == 1
    assert _reader_assignments(cloud, DEVELOPER, client_id) == []


def test_an_assignment_the_bot_did_not_make_is_adopted_and_never_deleted(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, clock: ManualClock
) -> None:
    """When the person already holds Key Vault Secrets User on the secret (given in the portal),
    the grant's PUT answers 409: that assignment is adopted, and when the window ends the row is
    closed (audited) but the assignment stays."""
    request = _new_app(cloud, bot, slack, "foreign-reader-app")
    client_id = request.client_id or ""
    services = _services(bot)
    assert services.read_access is not None
    clock.advance(timedelta(hours=HOURS, minutes=1))
    assert services.read_access.revoke_expired() == 1
    scope = f"{cloud.vault_resource_id}/secrets/oauth-{client_id}"
    portal = cloud.arm.grant(entra_user_id(DEVELOPER), KEY_VAULT_SECRETS_USER, scope, principal_type="User")
    assert "You can read the client secret" in _answer(cloud, slack, DEVELOPER, f"access {client_id}")
    clock.advance(timedelta(hours=HOURS, minutes=1))
    assert services.read_access.revoke_expired() == 1
    assert [a["name"] for a in _reader_assignments(cloud, DEVELOPER, client_id)] == [portal]
    revoked = [
        e for e in services.store.audit_events() if e.action == "grant.revoked" and e.client_id == client_id
    ]
    assert [e.detail["deleted"] for e in revoked] == [True, False]


class _LostAnswer:
    """Resource Manager carries the PUT out, but its answer never arrives (once)."""

    def __init__(self, real: AccessGrants) -> None:
        self.real = real
        self.lost = 0

    def grant_secret_read(
        self,
        secret_name: str,
        principal_id: str,
        *,
        name: str,
        description: str,
        principal_type: str = "User",
    ) -> RoleAssignment:
        made = self.real.grant_secret_read(
            secret_name, principal_id, name=name, description=description, principal_type=principal_type
        )
        if not self.lost:
            self.lost += 1
            raise ArmError("Azure Resource Manager could not grant read access: ReadTimeout (after retries).")
        return made

    def secret_scope(self, secret_name: str) -> str:
        return self.real.secret_scope(secret_name)

    def revoke(self, scope: str, name: str) -> None:
        self.real.revoke(scope, name)


def test_a_grant_whose_answer_is_lost_leaves_no_access_behind(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A grant that fails past the retries may still have been carried out: the bot deletes
    that assignment name, so no access exists without a record; the request completes, the DM
    says to use Get read access later, and that works."""
    services = _services(bot)
    assert services.read_access is not None and services.read_access.grants is not None
    losing = _LostAnswer(services.read_access.grants)
    services.read_access.grants = losing
    request = _new_app(cloud, bot, slack, "lost-grant-app")
    client_id = request.client_id or ""
    assert losing.lost == 1
    assert _reader_assignments(cloud, DEVELOPER, client_id) == []
    assert services.store.read_grants(request_id=request.id) == []
    dm = _dm(cloud, DEVELOPER, request.id)
    assert "use Get read access later" in json.dumps(dm["blocks"])
    assert slack.click(DEVELOPER, "Get read access", message=dm).status_code == 200
    wait_until(lambda: _read(cloud, DEVELOPER, client_id) is not None, what="read access on demand")


class _NoToken(_LostAnswer):
    """The token endpoint refuses the bot's Resource Manager token (every call)."""

    def grant_secret_read(
        self,
        secret_name: str,
        principal_id: str,
        *,
        name: str,
        description: str,
        principal_type: str = "User",
    ) -> RoleAssignment:
        raise TokenError("token request refused: temporarily_unavailable")

    def revoke(self, scope: str, name: str) -> None:
        raise TokenError("token request refused: temporarily_unavailable")


def test_no_resource_manager_token_does_not_fail_the_request(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Read access is an extra: without a Resource Manager token the request still completes
    and the DM says read access could not be granted just now."""
    services = _services(bot)
    assert services.read_access is not None and services.read_access.grants is not None
    services.read_access.grants = _NoToken(services.read_access.grants)
    request = _new_app(cloud, bot, slack, "tokenless-grant-app")
    assert "use Get read access later" in json.dumps(_dm(cloud, DEVELOPER, request.id)["blocks"])
    assert services.store.read_grants(request_id=request.id) == []


def test_without_key_vault_resource_id_nothing_is_granted(
    cloud: FakeCloud, database_path: Path, clock: ManualClock
) -> None:
    """Unset KEY_VAULT_RESOURCE_ID turns the feature off: no role assignment, no read-access
    line or button in the DM, and `/oauth-secret access` says how to get access instead."""
    settings = cloud.settings(f"sqlite:///{database_path}", key_vault_resource_id=None)
    with (
        BackgroundBot(settings, clock=clock) as bot,
        SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
    ):
        answers_before = len(cloud.arm.answers)
        request = _new_app(cloud, bot, slack, "no-grant-app")
        client_id = request.client_id or ""
        dm = json.dumps(_dm(cloud, DEVELOPER, request.id)["blocks"])
        assert "read access" not in dm.lower() and "Get read access" not in dm
        assert _read(cloud, DEVELOPER, client_id) is None
        assert "Key Vault Secrets User role" in _answer(cloud, slack, DEVELOPER, f"access {client_id}")
        assert len(cloud.arm.answers) == answers_before, "Resource Manager was called"
