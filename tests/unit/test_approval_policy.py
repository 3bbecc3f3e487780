"""The approval policy file: the issue's example is accepted and means what it says, every
problem of a bad file is listed with its place at start-up (exit 2, naming
OAUTH_BOT_POLICY_FILE), and `oauth-bot policy check` / `explain` say it in words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.config import Settings, load_settings
from bot.core.errors import ConfigError
from bot.core.policy import ApproverSet, Facts, Policy
from bot.policy_file import PolicyFileError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "policy.example.yml"
LEADS = ("U0LEAD1", "U0LEAD2")


def facts(
    kind: str = "new_app", audience: str = "AzureADMyOrg", days: int | None = 180, **extra: Any
) -> Facts:
    return Facts(
        kind=kind,
        sign_in=extra.get("sign_in", "secret"),
        sign_in_audience=audience,
        days=days,
        redirect_platform=extra.get("platform"),
        requester_id=extra.get("requester", "U0DEV"),
    )


def no_groups(group: ApproverSet, user: str) -> bool:
    return user in group.users


def test_the_shipped_example_is_the_readme_s_and_means_what_the_issue_says() -> None:
    """deploy/policy.example.yml is the README's example, valid, and: federated credentials are
    approved by policy; multitenant and personal audiences need 2 of identity-team; a lead's
    short single-tenant app is approved by policy; the rest needs 1 of identity-team, 180 days
    at most."""
    readme = (ROOT / "README.md").read_text()
    example = EXAMPLE.read_text()
    body = example[example.index("approvers:") :]
    assert body.strip() in readme
    policy = load_policy(EXAMPLE)
    assert policy.approver_sets["identity-team"] == ApproverSet("identity-team", usergroup="S0ADMINS")
    assert policy.approver_sets["leads"].users == LEADS
    assert policy.rule_for(facts("federated"), no_groups).auto
    for audience in ("AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"):
        rule = policy.rule_for(facts(audience=audience), no_groups)
        assert (rule.number, rule.approvers, rule.approvals) == (2, "identity-team", 2)
    short_by_lead = policy.rule_for(facts(days=90, requester=LEADS[0]), no_groups)
    assert short_by_lead.number == 3 and short_by_lead.auto
    # A new app that signs in with a federated credential is still a new app: a risky audience
    # needs two approvers; a single-tenant one is approved by policy (rule 4), as is a
    # federated credential for an existing app (rule 1).
    risky = policy.rule_for(facts(audience="AzureADMultipleOrgs", days=None, sign_in="federated"), no_groups)
    assert (risky.number, risky.approvals) == (2, 2)
    assert policy.rule_for(facts(days=None, sign_in="federated"), no_groups).number == 4
    assert policy.rule_for(facts(days=None, sign_in="federated", requester=LEADS[0]), no_groups).number == 4
    rest = policy.rule_for(facts(days=90), no_groups)
    assert (rest.number, rest.approvals, rest.max_days) == (5, 1, 180)
    assert policy.rule_for(facts("rotation"), no_groups).number == 5
    assert policy.offered_max_days("new_app") is None  # rule 2 lets multitenant apps have longer
    assert policy.offered_max_days("rotation") == 180


def test_a_usergroup_requester_in_is_asked_through_the_callable() -> None:
    """requester_in with a user group: membership is whatever the caller's lookup says."""
    policy = parse_policy(
        "approvers: {team: {usergroup: S0TEAM}}\n"
        "rules:\n  - {match: {requester_in: team}, auto: true}\n  - {match: {}}\n",
        source="inline",
    )
    assert policy.rule_for(facts(requester="U0IN"), lambda g, u: u == "U0IN").auto
    assert not policy.rule_for(facts(requester="U0OUT"), lambda g, u: u == "U0IN").auto


BAD = """
approvers:
  team: {usergroup: not-a-group}
  pair: {users: [U0ONE, U0TWO]}
  both: {usergroup: S0X, users: [U0ONE]}
  extra: {users: [U0ONE], colour: blue}
rules:
  - match: {kind: new_apps, account_types: [everyone], redirect_platforms: [ios]}
    approvers: pair
    approvals: 3
  - match: {lifetime_days_at_most: 0, requester_in: nobody}
    auto: true
    approvers: pair
  - match: {kind: rotation}
    approvers: ghosts
    approvals: 0
    max_days: -5
    when: always
"""


def test_every_problem_of_a_bad_file_is_listed_with_its_place() -> None:
    """One PolicyFileError lists each problem with where it is: a bad user group ID, both kinds
    of set at once, unknown keys, unknown kinds, account types and platforms, more approvals
    than a fixed list has people, auto with approvers, an unknown approver set, approvals below
    1, max_days not positive, and no catch-all rule."""
    with pytest.raises(PolicyFileError) as caught:
        parse_policy(BAD, source="bad.yml")
    problems = caught.value.problems
    expected = [
        "approvers.team.usergroup: 'not-a-group' is not a Slack user group ID",
        "approvers.both: give either usergroup",
        "approvers.extra: unknown key 'colour'",
        "rule 1, match.kind: unknown 'new_apps'",
        "rule 1, match.account_types: unknown 'everyone'",
        "rule 1, match.redirect_platforms: unknown 'ios'",
        "rule 1, approvals: 3 approvals need 3 different people, but pair has 2",
        "rule 2, match.lifetime_days_at_most: must be a whole number",
        "rule 2, match.requester_in: unknown approver set 'nobody'",
        "rule 2: auto: true approves by policy; it cannot also name approvers",
        "rule 3: unknown key 'when'",
        "rule 3, approvers: unknown approver set 'ghosts'",
        "rule 3, approvals: must be a whole number of at least 1",
        "rule 3, max_days: must be a whole number of days from 1 to 730",
        "rules: no rule matches every request",
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), (start, problems)
    assert len(problems) == len(expected), problems
    assert "bad.yml has 15 problem(s)" in str(caught.value)


def test_rules_after_a_catch_all_never_apply_and_admins_bound_unnamed_approvals() -> None:
    """A rule after `match: {}` is reported as never applying; a rule without approvers means the
    admins, so it cannot ask for more approvals than OAUTH_BOT_ADMINS has people."""
    text = "rules:\n  - {match: {}, approvals: 3}\n  - {match: {kind: rotation}, auto: true}\n"
    with pytest.raises(PolicyFileError) as caught:
        parse_policy(text, source="p.yml", admins=frozenset({"U0A", "U0B"}))
    assert caught.value.problems == [
        "rule 1, approvals: 3 approvals need 3 different people, but OAUTH_BOT_ADMINS has 2",
        "rule 2: never applies: rule 1 before it matches everything",
    ]


def test_start_up_names_oauth_bot_policy_file_for_each_problem(tmp_path: Path) -> None:
    """load_settings reports the file's problems like any configuration problem, each line
    naming OAUTH_BOT_POLICY_FILE; an unreadable file and invalid YAML are problems too."""
    bad = tmp_path / "policy.yml"
    bad.write_text(BAD)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, oauth_bot_policy_file=str(bad), oauth_bot_admins="U0ADMIN1")
    lines = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert len(lines) == 15 and all(line.startswith(f"  - OAUTH_BOT_POLICY_FILE: {bad}: ") for line in lines)
    for text, says in (("rules: [", "is not valid YAML"), (None, "cannot be read")):
        path = tmp_path / "other.yml"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(says)):
            load_settings(_env_file=None, oauth_bot_policy_file=str(path))


def test_serve_exits_2_naming_the_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`oauth-bot serve` with a broken policy file stops before serving, exit status 2."""
    bad = tmp_path / "policy.yml"
    bad.write_text("rules: []\n")
    monkeypatch.setenv("OAUTH_BOT_POLICY_FILE", str(bad))
    assert cli.main(["serve"]) == 2
    assert "OAUTH_BOT_POLICY_FILE" in capsys.readouterr().err


def test_without_a_policy_file_one_admin_approves_everything() -> None:
    """The built-in policy: one rule, no approver set (the admins), one approval, no cap."""
    policy = Settings(_env_file=None).policy  # type: ignore[call-arg]
    assert policy == Policy.built_in() and not policy.from_file
    rule = policy.rule_for(facts("rotation"), no_groups)
    assert (rule.approvers, rule.approvals, rule.auto, rule.max_days) == (None, 1, False, None)


def test_max_days_is_one_more_input_to_the_lifetimes_offered() -> None:
    """Settings.lifetime_choices takes the policy's cap beside OAUTH_BOT_MAX_SECRET_DAYS."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.lifetime_choices() == settings.secret_lifetime_choices == (90, 180, 365)
    assert settings.lifetime_choices(max_days=180) == (90, 180)
    assert settings.lifetime_choices(max_days=120) == (90, 120)
    assert settings.default_days(max_days=90) == 90
    assert settings.lifetime_choices(max_days=500) == (90, 180, 365)


def test_policy_check_explains_each_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """`oauth-bot policy check FILE`: valid, each approver set and each rule in words."""
    assert cli.main(["policy", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "valid; 5 rule(s)" in out
    assert "Approvers identity-team (Slack user group S0ADMINS)" in out
    assert "Rule 1: federated credentials for existing apps are approved by policy." in out
    assert (
        "Rule 2: new apps for multitenant, multitenant_personal or personal accounts need 2 approvals "
        "from identity-team." in out
    )
    assert "Rule 3: new apps of at most 90 days from members of leads are approved by policy." in out
    assert "Rule 4: new apps signing in with a federated credential are approved by policy." in out
    assert (
        "Rule 5: all other requests need 1 approval from identity-team; secrets last at most 180 days." in out
    )


def test_policy_check_of_a_bad_file_lists_the_problems_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD)
    assert cli.main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "15 problem(s)" in err and "rule 3, approvers: unknown approver set 'ghosts'" in err


def test_policy_explain_shows_the_rule_a_sample_request_hits_and_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`policy explain`: each rule passed over with the reason, the one that applies; without a
    Slack token user groups are assumed not to include the requester, unless given."""
    args = ["policy", "explain", "--file", str(EXAMPLE), "--kind", "new_app"]
    assert (
        cli.main(
            [
                *args,
                "--account-type",
                "multitenant",
                "--days",
                "90",
                "--platform",
                "web",
                "--requester",
                "U123",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Rule 1 does not apply: its kind is new_app, not federated." in out
    assert "Applies: Rule 2:" in out
    assert "assumed to be in no Slack user group" in out
    assert cli.main([*args, "--days", "365", "--requester", LEADS[0]]) == 0
    out = capsys.readouterr().out
    assert "Rule 3 does not apply: its lifetime of 365 days is over 90 days." in out
    assert "Rule 4 does not apply: it signs in with a client secret, not a federated credential." in out
    assert "Applies: Rule 5:" in out and "refused: this rule allows at most 180 days" in out
    assert cli.main([*args, "--days", "90", "--requester", LEADS[0]]) == 0
    assert "Applies: Rule 3:" in capsys.readouterr().out
    assert cli.main([*args, "--sign-in", "federated", "--account-type", "multitenant"]) == 0
    out = capsys.readouterr().out
    assert "no secret" in out and "Applies: Rule 2:" in out
    assert cli.main([*args, "--sign-in", "federated"]) == 0
    out = capsys.readouterr().out
    assert "Rule 3 does not apply: it gives no secret" in out and "Applies: Rule 4:" in out
