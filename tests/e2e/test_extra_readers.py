"""Extra readers, end to end: the new-app and rotation forms take Entra groups and managed
identities / service principals by object ID; the bot looks each up in Graph (a field error
naming a bad one), the approval card shows them by type and name, and on approval each gets
Key Vault Secrets User on exactly that secret for as long as the app exists: a group member
reads the value with their own token, the managed identity with its app-only token, anyone
else is refused. A missing right degrades as for the requester; a request that fails after
granting leaves no access behind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient

from bot.core.model import Request, Status
from bot.runtime import Services
from fakes.arm import KEY_VAULT_SECRETS_USER
from fakes.clock import ManualClock
from fakes.cloud import (
    ADMINS,
    APPROVAL_CHANNEL,
    BOT_CLIENT_ID,
    BOT_CLIENT_SECRET,
    DEVELOPER,
    LEAST_PRIVILEGE,
    OUTSIDER,
    OWNER_ROLES,
    SIGNING_SECRET,
    FakeCloud,
    entra_user_id,
)
from fakes.harness import BackgroundBot
from fakes.signin import WorkloadCredential
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import LogCapture, wait_until
from tests.e2e.flows import (
    FORM,
    approve,
    ask_rotation,
    open_modal,
    request_id_of,
    request_new_app,
    request_rotation,
    wait_for_status,
)
from tests.e2e.test_faults import CANARY, _places_holding, _record_answers
from tests.e2e.test_read_access import HOURS, _dm

READERS = "Extra readers"
DIRECTORY_READER_ROLES = [*OWNER_ROLES, "Directory.Read.All"]


class Workload:
    """A managed identity: its service principal in Graph, an app-only credential in Entra,
    and the vault deciding its reads by RBAC."""

    def __init__(self, cloud: FakeCloud, name: str, *, new: bool = False) -> None:
        self.client_id = str(uuid.uuid4())
        secret = f"fake-workload-credential-{self.client_id[:8]}"
        cloud.entra.register_client(self.client_id, secret, [])
        self.object_id = cloud.graph.add_managed_identity(self.client_id, name, new=new)
        cloud.vault.workload_clients.add(self.client_id)
        self.credential = WorkloadCredential(cloud.entra, self.client_id, secret)
        self.name = name


@pytest.fixture(autouse=True)
def _bot_may_look_up_readers(cloud: FakeCloud) -> Iterator[None]:
    """The bot looks readers up (Directory.Read.All) and requesters by email (User.Read.All)."""
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, DIRECTORY_READER_ROLES)
    yield
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, LEAST_PRIVILEGE)
    cloud.give_bot_assignment_right()
    cloud.arm.principal_replication_delay = 0.0


@pytest.fixture
def bot_settings(_bot_may_look_up_readers: None, cloud: FakeCloud, database_path: Path) -> dict[str, Any]:
    return {"oauth_bot_retry_budget_seconds": 20.0}


@pytest.fixture
def group(cloud: FakeCloud) -> str:
    """A security group whose one member is OUTSIDER (not an owner of anything)."""
    group_id = str(uuid.uuid4())
    cloud.graph.add_group(group_id, f"payments-readers-{group_id[:4]}", members=[entra_user_id(OUTSIDER)])
    return group_id


@pytest.fixture
def workload(cloud: FakeCloud) -> Workload:
    return Workload(cloud, f"billing-prod-{uuid.uuid4().hex[:4]}")


def _services(bot: BackgroundBot) -> Services:
    assert bot.services is not None
    return bot.services


def _read_as(cloud: FakeCloud, credential: TokenCredential, client_id: str) -> str | None:
    """The latest value of the app's vault secret read with `credential` (None: 403)."""
    client = SecretClient(cloud.vault.url, credential)
    try:
        return client.get_secret(f"oauth-{client_id}").value
    except HttpResponseError as error:
        assert error.status_code == 403, error
        return None
    finally:
        client.close()


def _assignments_of(cloud: FakeCloud, principal_id: str, client_id: str) -> list[dict[str, Any]]:
    return [
        a
        for a in cloud.arm.assignments(principal_id)
        if a["properties"]["scope"].endswith(f"/secrets/oauth-{client_id}")
        and a["properties"]["roleDefinitionId"].endswith(KEY_VAULT_SECRETS_USER)
    ]


def _submit_new_app(slack: SlackDriver, name: str, readers: str) -> httpx.Response:
    assert slack.command(DEVELOPER, "/oauth-app", f"new {name}").status_code == 200
    modal = open_modal(slack, DEVELOPER)
    return slack.submit(DEVELOPER, modal, {"Justification": FORM["Justification"], READERS: readers})


def _field_error(response: httpx.Response) -> str:
    assert response.status_code == 200 and response.content.strip(), response.text
    answer = response.json()
    assert answer["response_action"] == "errors", answer
    assert list(answer["errors"]) == ["extra_readers"], answer
    return str(answer["errors"]["extra_readers"])


def _alerts(cloud: FakeCloud, admin: str, said: str) -> list[dict[str, Any]]:
    return [m for m in cloud.slack.dm_messages(admin) if said in json.dumps(m)]


def test_a_group_and_a_managed_identity_read_the_secret_after_approval(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    clock: ManualClock,
    group: str,
    workload: Workload,
) -> None:
    """The card names both readers by type and name with their object IDs; on approval the
    group gets the role with principalType Group and the managed identity with
    ServicePrincipal, at the secret's scope; a group member and the workload read the value,
    a colleague outside both is refused; the DM says who can read it; when the requester's
    window ends the readers keep their access (no expiry) and their rows stay live."""
    card = request_new_app(
        slack, DEVELOPER, "shared-secret-app", **{READERS: f"{group}, {workload.object_id}"}
    )
    shown = json.dumps(card["blocks"])
    assert f"Group: payments-readers-{group[:4]}" in shown and group in shown
    assert f"Managed identity / service principal: {workload.name}" in shown and workload.object_id in shown
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    client_id = request.client_id or ""
    value = cloud.vault.value_of(f"oauth-{client_id}")

    ((by_group,), (by_workload,)) = (
        _assignments_of(cloud, group, client_id),
        _assignments_of(cloud, workload.object_id, client_id),
    )
    assert by_group["properties"]["principalType"] == "Group"
    assert by_workload["properties"]["principalType"] == "ServicePrincipal"
    assert f"request #{request.id}" in by_workload["properties"]["description"]
    assert _read_as(cloud, cloud.credential_for(OUTSIDER), client_id) == value  # through the group
    assert _read_as(cloud, workload.credential, client_id) == value
    assert _read_as(cloud, cloud.credential_for(ADMINS[1]), client_id) is None
    dm = json.dumps(_dm(cloud, DEVELOPER, request.id)["blocks"])
    assert "Extra readers who can read it" in dm and workload.name in dm

    services = _services(bot)
    assert services.read_access is not None
    grants = {g.principal_id: g for g in services.store.read_grants(request_id=request.id)}
    assert grants[group].expires_at is None and grants[workload.object_id].expires_at is None
    clock.advance(timedelta(hours=HOURS, minutes=1))
    assert services.read_access.revoke_expired() == 1  # the requester's window only
    assert _read_as(cloud, cloud.credential_for(DEVELOPER), client_id) is None
    assert _read_as(cloud, workload.credential, client_id) == value
    assert _read_as(cloud, cloud.credential_for(OUTSIDER), client_id) == value
    submitted = [
        e for e in services.store.audit_events(request_id=request.id) if e.action == "request.submitted"
    ]
    assert submitted[0].detail["extra_readers"] == [group, workload.object_id]


def test_a_managed_identity_new_to_resource_manager_is_granted_after_retries(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """A managed identity created moments ago answers 400 PrincipalNotFound for a while: its
    grant is retried with backoff within the budget and made once; it reads the value."""
    cloud.arm.principal_replication_delay = 3.0
    fresh = Workload(cloud, "just-created-identity", new=True)
    answers_before = len(cloud.arm.answers)
    card = request_new_app(slack, DEVELOPER, "fresh-identity-app", **{READERS: fresh.object_id})
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    client_id = request.client_id or ""
    assert any(status == 400 for _call, status in cloud.arm.answers[answers_before:]), "no PrincipalNotFound"
    assert len(_assignments_of(cloud, fresh.object_id, client_id)) == 1
    assert _read_as(cloud, fresh.credential, client_id) == cloud.vault.value_of(f"oauth-{client_id}")


def test_object_ids_that_are_not_groups_or_service_principals_are_field_errors(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """Not a GUID, a GUID nobody has, a user, an app registration (not its service principal)
    and more than five: each is a field error on Extra readers naming the ID; nothing is filed."""
    unknown = str(uuid.uuid4())
    user = entra_user_id(DEVELOPER)
    app_object_id = cloud.graph.seed_apps(1, owner_appid="some-other-tool", tag=None)[0]
    six = ", ".join(str(uuid.uuid4()) for _ in range(6))
    cases = {
        "not-a-guid": "not-a-guid is not an object ID",
        unknown: f"Nothing in this directory has the object ID {unknown}",
        user: f"{user} is a user (Dana Developer)",
        app_object_id: f"{app_object_id} is an app registration",
        six: "at most 5 extra readers (this has 6)",
    }
    for typed, said in cases.items():
        assert said in _field_error(_submit_new_app(slack, "unfiled-app", typed)), typed
    assert _services(bot).store.requests_by(DEVELOPER, statuses=list(Status)) == []
    assert cloud.slack.messages(APPROVAL_CHANNEL) == []


def test_a_slow_graph_is_a_field_error_within_slacks_wait(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, group: str
) -> None:
    """Slack waits 3 s for a form's answer: a lookup Graph answers only after 5 s is given up
    (its own 2 s budget, not the default minute) and the field says to try again."""
    cloud.graph.latency(5.0, "POST", r"/directoryObjects/getByIds")
    error = _field_error(_submit_new_app(slack, "slow-lookup-app", group))
    assert "could not be asked about the extra readers just now; try again" in error
    assert _services(bot).store.requests_by(DEVELOPER, statuses=list(Status)) == []


def test_without_directory_read_all_the_form_says_which_permission_is_missing(
    cloud: FakeCloud, database_path: Path, clock: ManualClock, group: str
) -> None:
    """Without Directory.Read.All the bot does not call getByIds at all: the field error
    names the permission; the same form without extra readers is filed."""
    cloud.entra.register_client(BOT_CLIENT_ID, BOT_CLIENT_SECRET, OWNER_ROLES)
    settings = cloud.settings(f"sqlite:///{database_path}")
    with (
        BackgroundBot(settings, clock=clock) as bot,
        SlackDriver(app_url=bot.url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack,
    ):
        lookups = len(cloud.graph.calls_to("POST", r"/directoryObjects/getByIds"))
        error = _field_error(_submit_new_app(slack, "no-lookup-app", group))
        assert "Directory.Read.All" in error
        assert len(cloud.graph.calls_to("POST", r"/directoryObjects/getByIds")) == lookups
        card = request_new_app(slack, DEVELOPER, "no-lookup-app")
        assert "Extra readers" not in json.dumps(card["blocks"])


def test_rotation_adds_a_reader_and_the_earlier_reader_reads_the_new_version(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    group: str,
    workload: Workload,
) -> None:
    """A rotation's form takes an extra reader too (shown on the rotation card; the requester is
    told where they typed the command that it waits for approval); after it the
    new reader reads the new version, and the group named on the new app, whose assignment is
    at the secret (not a version), reads the new version as well without a new assignment."""
    card = request_new_app(slack, DEVELOPER, "rotated-shared-app", **{READERS: group})
    created = approve(slack, cloud, bot, card, ADMINS[0])
    assert created.status == Status.COMPLETED, created.error
    client_id = created.client_id or ""
    assignments_before = len(cloud.arm.assignments(group))

    rotation_card = request_rotation(slack, DEVELOPER, client_id, **{READERS: workload.object_id})
    assert f"Managed identity / service principal: {workload.name}" in json.dumps(rotation_card["blocks"])
    waiting = f"Rotation request #{request_id_of(rotation_card)}"
    wait_until(  # the answer goes where the command was typed (its response_url)
        lambda: any(waiting in json.dumps(r["body"]) for r in cloud.slack.responses(DEVELOPER)),
        what="the answer to the rotation form",
    )
    slack.click(ADMINS[1], "Approve", message=rotation_card, channel=APPROVAL_CHANNEL)
    rotation = wait_for_status(bot, request_id_of(rotation_card), Status.COMPLETED, Status.FAILED)
    assert rotation.status == Status.COMPLETED, rotation.error
    newest = cloud.vault.versions(f"oauth-{client_id}")[-1]
    assert newest["tags"]["secret-id"] == rotation.key_id
    assert _read_as(cloud, workload.credential, client_id) == newest["value"]
    assert _read_as(cloud, cloud.credential_for(OUTSIDER), client_id) == newest["value"]
    assert len(cloud.arm.assignments(group)) == assignments_before
    assert len(_assignments_of(cloud, workload.object_id, client_id)) == 1


def test_a_bad_reader_on_the_rotation_form_is_a_field_error(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver
) -> None:
    """The rotation form checks its extra readers as the new-app form does; nothing is filed."""
    created = approve(slack, cloud, bot, request_new_app(slack, DEVELOPER, "rotation-typo-app"), ADMINS[0])
    unknown = str(uuid.uuid4())
    answer = ask_rotation(slack, DEVELOPER, created.client_id or "", **{READERS: unknown})
    assert f"Nothing in this directory has the object ID {unknown}" in _field_error(answer)
    assert [r.kind for r in _services(bot).store.requests_by(DEVELOPER)] == []


def test_without_the_right_to_assign_readers_the_request_completes_and_the_admins_are_told_once(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, group: str, workload: Workload
) -> None:
    """403 AuthorizationFailed for everyone: the request completes, the DM names the readers
    not given access, each admin gets one alert naming them, and nobody can read the value."""
    cloud.take_bot_assignment_right()
    card = request_new_app(slack, DEVELOPER, "unshared-app", **{READERS: f"{group}\n{workload.object_id}"})
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    client_id = request.client_id or ""
    dm = json.dumps(_dm(cloud, DEVELOPER, request.id)["blocks"])
    assert "Extra readers not given access" in dm and workload.name in dm and "ask the oauth-bot admins" in dm
    said = f"requester of request #{request.id}"
    wait_until(lambda: all(_alerts(cloud, a, said) for a in ADMINS), what="the admins' alert")
    for admin in ADMINS:
        (alert,) = _alerts(cloud, admin, said)
        assert workload.name in json.dumps(alert)
    assert _read_as(cloud, workload.credential, client_id) is None
    assert _assignments_of(cloud, group, client_id) == []
    assert _services(bot).store.read_grants(request_id=request.id) == []


def test_a_request_that_fails_after_granting_leaves_no_access_behind(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, group: str, workload: Workload
) -> None:
    """The service principal cannot be created (403) while the secret is stored and the grants
    are made: the request fails, and the requester's and the readers' assignments are deleted
    (audited "request failed"); nobody can read the value."""
    cloud.graph.inject(
        "POST",
        r"/v1\.0/servicePrincipals$",
        status=403,
        times=20,
        delay=1.0,
        body={"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}},
    )
    card = request_new_app(
        slack, DEVELOPER, "failing-shared-app", **{READERS: f"{group},{workload.object_id}"}
    )
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.FAILED
    client_id = _request_client_id(bot, request)
    grants = _services(bot).store.read_grants(request_id=request.id)
    assert {g.principal_id for g in grants} == {entra_user_id(DEVELOPER), group, workload.object_id}
    assert all(g.revoked_at is not None for g in grants)
    for principal in (entra_user_id(DEVELOPER), group, workload.object_id):
        assert _assignments_of(cloud, principal, client_id) == []
    assert _read_as(cloud, workload.credential, client_id) is None
    assert _read_as(cloud, cloud.credential_for(DEVELOPER), client_id) is None
    revoked = [
        e for e in _services(bot).store.audit_events(request_id=request.id) if e.action == "grant.revoked"
    ]
    assert len(revoked) == 3 and all(e.detail["reason"] == "request failed" for e in revoked)


def _request_client_id(bot: BackgroundBot, request: Request) -> str:
    assert request.client_id, "the app was made before the failure"
    return request.client_id


def test_the_canary_value_stays_in_the_vault_when_readers_read_it(
    cloud: FakeCloud,
    bot: BackgroundBot,
    slack: SlackDriver,
    logs: LogCapture,
    database_path: Path,
    workload: Workload,
) -> None:
    """With an extra reader granted and reading, the value is still in no Slack call, answer,
    log record or database byte: only in the vault (and in what the workload read)."""
    answers = _record_answers(slack)
    cloud.graph.next_secret_text = CANARY
    card = request_new_app(slack, DEVELOPER, "canary-shared-app", **{READERS: workload.object_id})
    request = approve(slack, cloud, bot, card, ADMINS[0])
    assert request.status == Status.COMPLETED, request.error
    assert _read_as(cloud, workload.credential, request.client_id or "") == CANARY
    wait_until(
        lambda: any("done" in json.dumps(m) for m in cloud.slack.messages(APPROVAL_CHANNEL)),
        what="the card's last refresh",
    )
    assert _places_holding(CANARY, cloud, logs, answers, database_path) == []


class TestReadersAreNeverSelfApproved:
    """A new reader is a new trust, so naming one always needs someone's approval: an owner's
    own rotation (OAUTH_BOT_OWNER_SELF_ROTATE) and a rule with `auto: true` run at once
    without readers, and wait for an admin with them."""

    @pytest.fixture
    def bot_settings(self, _bot_may_look_up_readers: None, tmp_path: Path) -> dict[str, Any]:
        policy = tmp_path / "policy.yml"
        policy.write_text("rules:\n  - match: {kind: new_app}\n    auto: true\n  - match: {}\n")
        return {
            "oauth_bot_retry_budget_seconds": 20.0,
            "oauth_bot_owner_self_rotate": True,
            "oauth_bot_policy_file": str(policy),
        }

    def test_an_owners_rotation_naming_a_reader_waits_for_an_admin(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, workload: Workload
    ) -> None:
        created = _auto_approved_app(cloud, bot, slack, "self-rotated-app", readers="")
        client_id = created.client_id or ""
        ask_rotation(slack, DEVELOPER, client_id)  # no reader: the owner's own rotation runs
        wait_until(
            lambda: any(
                "Rotating the client secret" in json.dumps(r["body"])
                for r in cloud.slack.responses(DEVELOPER)
            ),
            what="the self-service rotation",
        )
        card = request_rotation(slack, DEVELOPER, client_id, **{READERS: workload.object_id})
        request_id = request_id_of(card)
        assert _services(bot).store.get_request(request_id).status == Status.PENDING
        assert _read_as(cloud, workload.credential, client_id) is None
        slack.click(ADMINS[0], "Approve", message=card, channel=APPROVAL_CHANNEL)
        done = wait_for_status(bot, request_id, Status.COMPLETED, Status.FAILED)
        assert done.status == Status.COMPLETED, done.error
        assert _read_as(cloud, workload.credential, client_id) is not None

    def test_an_auto_rule_does_not_approve_a_new_app_naming_a_reader(
        self, cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, group: str
    ) -> None:
        before = len(cloud.slack.messages(APPROVAL_CHANNEL))
        assert _submit_new_app(slack, "auto-but-readers", group).content in (b"", b"{}")
        card = wait_until(
            lambda: (
                len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
                and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
            ),
            what="the card",
        )
        assert "extra readers are named, so an oauth-bot admin approves" in json.dumps(card["blocks"])
        request_id = request_id_of(card)  # it has an Approve button: not approved by policy
        assert _services(bot).store.get_request(request_id).status == Status.PENDING
        done = approve(slack, cloud, bot, card, ADMINS[0])
        assert done.status == Status.COMPLETED, done.error
        assert _read_as(cloud, cloud.credential_for(OUTSIDER), done.client_id or "") is not None


def _auto_approved_app(
    cloud: FakeCloud, bot: BackgroundBot, slack: SlackDriver, name: str, readers: str
) -> Request:
    """A new app the `auto: true` rule approves at once (no reader named): the request, done."""
    before = len(cloud.slack.messages(APPROVAL_CHANNEL))
    assert _submit_new_app(slack, name, readers).content in (b"", b"{}")
    card = wait_until(
        lambda: (
            len(cloud.slack.messages(APPROVAL_CHANNEL)) > before
            and cloud.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the card posted for the record",
    )
    assert "Approved by policy" in json.dumps(card["blocks"])
    header = next(b for b in card["blocks"] if b["type"] == "header")["text"]["text"]
    done = wait_for_status(bot, int(header.rsplit("#", 1)[1]), Status.COMPLETED, Status.FAILED)
    assert done.status == Status.COMPLETED, done.error
    return done
