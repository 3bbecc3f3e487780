"""The steps a person takes in Slack, as reusable test helpers."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bot.core.model import Request, Status
from bot.store import Store
from fakes.cloud import APPROVAL_CHANNEL, FakeCloud
from fakes.harness import BackgroundBot
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until

FORM = {
    "Name": "billing-api",
    "Justification": "The billing service reads invoices through Graph.",
}


def request_new_app(slack: SlackDriver, user: str, name: str, **fields: Any) -> dict[str, Any]:
    """/oauth-app new → modal → submit; returns the approval card posted for it."""
    before = len(slack.slack.messages(APPROVAL_CHANNEL))
    response = slack.command(user, "/oauth-app", f"new {name}")
    assert response.status_code == 200, response.text
    modal = open_modal(slack, user)
    submitted = slack.submit(user, modal, {"Justification": FORM["Justification"], **fields})
    assert submitted.status_code == 200, submitted.text
    assert submitted.content in (b"", b"{}") or "errors" not in submitted.json(), submitted.text
    return wait_until(
        lambda: (
            len(slack.slack.messages(APPROVAL_CHANNEL)) > before
            and slack.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the approval card",
    )


def ask_rotation(slack: SlackDriver, user: str, target: str, **fields: Any) -> httpx.Response:
    """/oauth-secret rotate <target> → the "Rotate secret" modal → Submit (with `fields`, e.g.
    {"Extra readers": "..."}); returns the submission's answer (errors or none)."""
    shown = slack.slack.current_modal(user)
    response = slack.command(user, "/oauth-secret", f"rotate {target}")
    assert response.status_code == 200, response.text
    modal = rotation_form(slack, user, not_id=shown["id"] if shown else None)
    submitted = slack.submit(user, modal, fields)
    assert submitted.status_code == 200, submitted.text
    return submitted


def rotation_form(slack: SlackDriver, user: str, not_id: str | None = None) -> dict[str, Any]:
    """The "Rotate secret" modal the bot opens after acking the command or the button (not
    the one with id `not_id`, open before)."""

    def opened() -> dict[str, Any] | None:
        modal = slack.slack.current_modal(user)
        if modal and modal.get("callback_id") == "oauth_secret_rotate" and modal["id"] != not_id:
            return modal
        return None

    return wait_until(opened, what=f"the rotation form for {user}")


def request_rotation(slack: SlackDriver, user: str, target: str, **fields: Any) -> dict[str, Any]:
    """Ask for a rotation through its form; returns the approval card posted for it."""
    before = len(slack.slack.messages(APPROVAL_CHANNEL))
    submitted = ask_rotation(slack, user, target, **fields)
    assert submitted.content in (b"", b"{}") or "errors" not in submitted.json(), submitted.text
    return wait_until(
        lambda: (
            len(slack.slack.messages(APPROVAL_CHANNEL)) > before
            and slack.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the rotation card",
    )


def rotation_card(slack: SlackDriver, user: str, client_id: str) -> dict[str, Any]:
    """/oauth-secret rotate → its form, submitted as it is → the rotation's approval card."""
    return request_rotation(slack, user, client_id)


def open_modal(slack: SlackDriver, user: str) -> dict[str, Any]:
    """The modal the bot opens after acking (views.open follows the ack)."""
    return wait_until(lambda: slack.slack.current_modal(user), what=f"a modal for {user}")


def request_id_of(card: dict[str, Any]) -> int:
    for block in card["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == "request_approve":
                return int(element["value"])
    raise AssertionError("the card has no Approve button")


def wait_for_status(bot: BackgroundBot, request_id: int, *statuses: str, timeout: float = 60) -> Request:
    assert bot.services is not None
    store = bot.services.store
    return wait_until(
        lambda: (r := store.get_request(request_id)).status in statuses and r,
        timeout=timeout,
        what=f"request #{request_id} to become {'/'.join(statuses)}",
    )


def approve(
    slack: SlackDriver, cloud: FakeCloud, bot: BackgroundBot, card: dict[str, Any], admin: str
) -> Request:
    response = slack.click(admin, "Approve", message=card, channel=APPROVAL_CHANNEL)
    assert response.status_code == 200
    return wait_for_status(bot, request_id_of(card), Status.COMPLETED, Status.FAILED)


COPIES = 8


def submit_copies_at_once(
    slack: SlackDriver, user: str, name: str, *, copies: int = COPIES, via: list[SlackDriver] | None = None
) -> list[httpx.Response]:
    """/oauth-app new, fill in the modal, then deliver that one signed view_submission `copies`
    times at the same moment (each held at a barrier until all are ready), spread over the
    drivers in `via` (one per replica; default: `slack`)."""
    assert slack.command(user, "/oauth-app", f"new {name}").status_code == 200
    body, headers = slack.signed_submission(user, open_modal(slack, user), {"Justification": "race"})
    drivers = via or [slack]
    barrier = threading.Barrier(copies, timeout=30)

    def send(index: int) -> httpx.Response:
        barrier.wait()
        return drivers[index % len(drivers)].post_raw(body, headers)

    with ThreadPoolExecutor(max_workers=copies) as pool:
        return list(pool.map(send, range(copies), timeout=60))


def refused_for_the_limit(
    cloud: FakeCloud, responses: list[httpx.Response], user: str, limit: int
) -> list[str]:
    """What each refused copy was told: a field error in the modal, or (acked before the
    limit was reached in the database) a DM saying the request could not be filed."""
    said = f"open requests (the limit is {limit})"
    in_modal = [
        r.json()["errors"]["name"]
        for r in responses
        if r.content.strip() and r.json().get("response_action") == "errors"
    ]
    assert all(said in text for text in in_modal), in_modal
    in_dm = [
        m["text"]
        for m in cloud.slack.dm_messages(user)
        if "could not be filed" in m.get("text", "") and said in m.get("text", "")
    ]
    return in_modal + in_dm


def assert_only_the_limit_was_filed(
    cloud: FakeCloud, store: Store, responses: list[httpx.Response], user: str, name: str, limit: int
) -> None:
    """Every copy is accounted for: exactly `limit` filed (one approval card each), every other
    refused with "You already have {limit} open requests"."""
    assert [r.status_code for r in responses] == [200] * len(responses)

    def filed() -> list[Request]:
        return store.requests_by(user, statuses=list(Status))

    wait_until(
        lambda: len(filed()) + len(refused_for_the_limit(cloud, responses, user, limit)) >= len(responses),
        what="every copy to be filed or refused",
    )
    assert len(filed()) == limit, f"{len(filed())} requests filed against a limit of {limit}"
    refusals = refused_for_the_limit(cloud, responses, user, limit)
    assert len(refusals) == len(responses) - limit, refusals
    assert all(f"You already have {limit} open requests" in text for text in refusals), refusals
    cards = wait_until(
        lambda: [m for m in cloud.slack.messages(APPROVAL_CHANNEL) if name in json.dumps(m)],
        what="the approval cards",
    )
    assert len(cards) == limit, f"{len(cards)} approval cards"


def choose(
    slack: SlackDriver, user: str, option: str, *, typed: dict[str, object] | None = None
) -> dict[str, Any]:
    """Pick `option` in a select of the open form that updates it (dispatch_action); the form as
    the bot updated it (views.update)."""
    modal = slack.slack.current_modal(user)
    assert modal is not None, f"no form is open for {user}"
    assert slack.select(user, option, view=modal, typed=typed).status_code == 200
    return wait_until(
        lambda: (m := slack.slack.current_modal(user)) and m["hash"] != modal["hash"] and m,
        what=f"the form to update after choosing {option!r}",
    )


def fill_sign_in(
    slack: SlackDriver, user: str, name: str, workload: str, entity: str | None = None
) -> dict[str, Any]:
    """/oauth-app new NAME, then choose how the workload signs in (and GitHub's entity type)."""
    assert slack.command(user, "/oauth-app", f"new {name}").status_code == 200
    open_modal(slack, user)
    modal = choose(slack, user, workload, typed={"Name": name})
    return choose(slack, user, entity) if entity is not None else modal


def request_federated_app(
    slack: SlackDriver,
    user: str,
    name: str,
    workload: str,
    fields: dict[str, object],
    entity: str | None = None,
) -> dict[str, Any]:
    """A new app that signs in with a federated credential: the form filled by its labels and
    submitted; returns the approval card."""
    before = len(slack.slack.messages(APPROVAL_CHANNEL))
    fill_sign_in(slack, user, name, workload, entity)
    modal = slack.slack.current_modal(user)
    assert modal is not None
    submitted = slack.submit(user, modal, {"Justification": FORM["Justification"], **fields})
    assert submitted.content in (b"", b"{}"), submitted.text
    return wait_until(
        lambda: (
            len(slack.slack.messages(APPROVAL_CHANNEL)) > before
            and slack.slack.messages(APPROVAL_CHANNEL)[-1]
        ),
        what="the approval card",
    )
