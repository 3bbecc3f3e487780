"""`oauth-bot serve` and `oauth-bot demo` as real processes, as an operator runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fakes.arm import CONTRIBUTOR
from fakes.cloud import BOT_PRINCIPAL_ID, DEVELOPER, SIGNING_SECRET, FakeCloud
from fakes.slack_driver import SlackDriver
from tests.e2e.conftest import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `oauth-bot ARGS` as an operator would (the console script's module)."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_in_http_mode_answers_healthz_and_slack_and_stops_on_sigterm(
    cloud: FakeCloud, tmp_path: Path
) -> None:
    """Configured only by environment variables, `oauth-bot serve` listens on $PORT, reports
    healthy on /healthz, opens the modal for a signed command, and exits cleanly on SIGTERM."""
    port = _free_port()
    env = {**os.environ, **cloud.environment(f"sqlite:///{tmp_path / 'serve.db'}", port=port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url) or process.poll() is not None, timeout=60, what="/healthz")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        with SlackDriver(app_url=url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
            assert slack.command(DEVELOPER, "/oauth-app", "new from-serve").status_code == 200
            modal = wait_until(lambda: cloud.slack.current_modal(DEVELOPER), what="the modal")
            assert modal["blocks"][0]["element"]["initial_value"] == "from-serve"
            assert (
                slack.post_raw(
                    b"command=/oauth-app", {"Content-Type": "application/x-www-form-urlencoded"}
                ).status_code
                == 401
            )
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert (tmp_path / "serve.db").exists()


def test_serve_with_missing_configuration_says_what_is_missing(tmp_path: Path) -> None:
    """No Slack or Azure settings: exit code 2 and the missing variable names, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AZURE_", "OAUTH_BOT_"))}
    result = _cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "AZURE_TENANT_ID" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["environment", ".env file"])
def test_an_empty_app_token_is_http_mode_with_signatures_checked(
    cloud: FakeCloud, tmp_path: Path, where: str
) -> None:
    """`SLACK_APP_TOKEN=` (present but empty, in the environment or as a line of .env) is unset:
    `oauth-bot serve` runs in HTTP mode, a signed command works, and an unsigned command or a
    forged signature gets 401 and makes the bot call no Slack API."""
    port = _free_port()
    env = {**os.environ, **cloud.environment(f"sqlite:///{tmp_path / 'serve.db'}", port=port)}
    if where == "environment":
        env["SLACK_APP_TOKEN"] = ""
    else:
        (tmp_path / ".env").write_text("SLACK_APP_TOKEN=\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url) or process.poll() is not None, timeout=60, what="/healthz")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        with SlackDriver(app_url=url, signing_secret=SIGNING_SECRET, slack=cloud.slack) as slack:
            assert slack.command(DEVELOPER, "/oauth-app", "help").status_code == 200  # signed: served
            calls_before = len(cloud.slack.api_calls())
            body = b"command=%2Foauth-app&text=new&user_id=" + DEVELOPER.encode()
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            forged = slack.sign(body) | {"X-Slack-Signature": "v0=" + "0" * 64}
            assert slack.post_raw(body, form).status_code == 401
            assert slack.post_raw(body, form | forged).status_code == 401
            # A signed request afterwards as a barrier: the forged ones were answered before it.
            assert slack.command(DEVELOPER, "/oauth-app", "help").status_code == 200
            caused = [c["method"] for c in cloud.slack.api_calls()[calls_before:]]
            assert caused == [], caused
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "HTTP mode" in output and "Socket Mode" not in output, output


def test_serve_with_bad_values_exits_listing_every_variable_at_fault(
    cloud: FakeCloud, tmp_path: Path
) -> None:
    """A default lifetime the form does not offer, a non-number and an http Slack URL: `serve`
    exits with code 2 before it serves or touches the database, and stderr names all three
    variables in one readable message, with no traceback."""
    port = _free_port()
    env = {**os.environ, **cloud.environment(f"sqlite:///{tmp_path / 'serve.db'}", port=port)}
    env.update(
        OAUTH_BOT_DEFAULT_SECRET_DAYS="100",
        OAUTH_BOT_WORKER_THREADS="abc",
        SLACK_API_URL="http://slack.example/api/",
    )
    result = _cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    for name in ("OAUTH_BOT_DEFAULT_SECRET_DAYS", "OAUTH_BOT_WORKER_THREADS", "SLACK_API_URL"):
        assert name in result.stderr, result.stderr
    assert "3 problem(s)" in result.stderr
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    assert not (tmp_path / "serve.db").exists(), "the database was opened before the check"


def test_demo_plays_the_whole_story_without_any_account(tmp_path: Path) -> None:
    """The README's first command: the modal, the card, the DM and the masked vault content; then
    the requester reading the value with their own token until the access window ends; the
    rotation (its form naming a managed identity, which then reads the new value) with its grace
    period, the requester refused another app's secret, the old secret's removal, an expiry
    reminder with its Rotate button and the App Home; then a secretless app for a GitHub Actions
    job — each card with a Block Kit Builder link."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    result = _cli("demo", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in (
        "Modal: New app registration",
        "[ Approve ]  [ Deny ]",
        "Only the oauth-bot admins",
        "Your app registration is ready",
        "Application (client) ID",
        "az keyvault secret show --id",
        "(40 characters, masked)",
        "The secret value was sent to Slack: no",
        "Secret rotation request #2",
        "Old secret: stays valid for 7 more days",
        "was removed: its grace period ended",
        "[ Rotate now ]",
        "reads the value with their own Entra sign-in",
        "(40 characters, masked) — Key Vault Secrets User on this secret only",
        "the access window ends",
        "refused: HTTP 403 Forbidden — Get read access in the DM gives it back",
        "Extra readers: Managed identity / service principal: billing-prod",
        "billing-prod, with its own (app-only) token: oauth-",
        "refused: HTTP 403 Forbidden (payroll-api's: the vault refuses it)",
        "┌─ App Home",
        "How will your workload sign in?",
        "repo:contoso/deploy-pipeline:environment:production",
        "azure/login@v2",
        "'deploy-pipeline' has 0 client secrets and 1 federated credential",
        "see it rendered: https://app.slack.com/block-kit-builder/#",
    ):
        assert expected in result.stdout, expected


def test_scan_runs_once_by_hand_with_the_serve_environment(cloud: FakeCloud, tmp_path: Path) -> None:
    """`oauth-bot scan` with the same variables as serve pages through the managed apps and reports."""
    env = {**os.environ, **cloud.environment(f"sqlite:///{tmp_path / 'scan.db'}")}
    result = _cli("scan", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scanned ") and "reminder(s)" in result.stdout
    assert cloud.graph.calls_to("GET", r"^/v1\.0/applications$")[-1].arg("$top") == "999"


def test_doctor_checks_every_dependency_and_names_what_is_missing(cloud: FakeCloud, tmp_path: Path) -> None:
    """With full configuration every check passes; a bot app without Graph permissions fails the
    Entra check with the permission it lacks."""
    env = {**os.environ, **cloud.environment(f"sqlite:///{tmp_path / 'doctor.db'}")}
    assert _cli("migrate", env=env, cwd=tmp_path).returncode == 0
    ok = _cli("doctor", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all checks passed" in ok.stdout and "owners of record only" in ok.stdout
    cloud.entra.register_client("0b07b07b-0000-4000-8000-0000000000d0", "doctor-secret", [])
    env.update(AZURE_CLIENT_ID="0b07b07b-0000-4000-8000-0000000000d0", AZURE_CLIENT_SECRET="doctor-secret")
    bad = _cli("doctor", env=env, cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAIL  Entra ID + Graph" in bad.stdout and "Application.ReadWrite.OwnedBy" in bad.stdout


def test_doctor_reads_the_bots_permissions_on_the_vault(cloud: FakeCloud, tmp_path: Path) -> None:
    """doctor asks Resource Manager for the bot's effective permissions at the vault: with Key
    Vault Data Access Administrator it may write role assignments (ok); without any right,
    and with Contributor (whose notActions exclude Microsoft.Authorization/*/Write), it may
    not: a note names the action and the role to give (the bot serves without read access, so
    doctor still passes)."""
    env = {**os.environ, **cloud.environment(f"sqlite:///{tmp_path / 'doctor.db'}")}
    assert _cli("migrate", env=env, cwd=tmp_path).returncode == 0
    ok = _cli("doctor", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok    Resource Manager (read access): the bot may create and delete role assignments" in ok.stdout
    assert "extra readers need the Graph permission Directory.Read.All" in ok.stdout  # least privilege
    asked = cloud.arm.calls_to("GET", r"/providers/Microsoft\.Authorization/permissions$")
    assert asked and asked[-1].arg("api-version") == "2022-04-01"
    try:
        for role in (None, CONTRIBUTOR):
            cloud.take_bot_assignment_right()
            if role is not None:
                cloud.bot_assignment_right = cloud.arm.grant(BOT_PRINCIPAL_ID, role, cloud.vault_resource_id)
            bad = _cli("doctor", env=env, cwd=tmp_path)
            assert bad.returncode == 0, bad.stdout
            assert "note  Resource Manager (read access)" in bad.stdout, bad.stdout
            assert "Microsoft.Authorization/roleAssignments/write" in bad.stdout
            assert "Key Vault Data Access Administrator" in bad.stdout
            assert "all checks passed" in bad.stdout
    finally:
        cloud.give_bot_assignment_right()
