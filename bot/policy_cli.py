"""`oauth-bot policy check FILE` and `oauth-bot policy explain`: the approval policy in words,
and which rule a sample request hits and why the rules before it do not apply."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pydantic import ValidationError as PydanticValidationError

from bot.config import Settings
from bot.core.errors import ConfigError
from bot.core.policy import ACCOUNT_TYPES, KINDS, SIGN_INS, ApproverSet, Facts, Policy
from bot.core.validation import lifetime_label
from bot.policy_file import load_policy

SAMPLE_REQUESTER = "U0REQUESTER"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="check or explain the approval policy file")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate a policy file and say what each rule does")
    check.add_argument("file")
    explain = policy_commands.add_parser("explain", help="which rule a sample request hits, and why")
    explain.add_argument("--file", help="the policy file (default: OAUTH_BOT_POLICY_FILE)")
    explain.add_argument("--kind", choices=KINDS, default="new_app")
    explain.add_argument(
        "--sign-in", choices=SIGN_INS, default="secret", help="a new app's credential (default: secret)"
    )
    explain.add_argument("--account-type", choices=tuple(ACCOUNT_TYPES), default="single_tenant")
    explain.add_argument("--days", type=int, help="the secret's lifetime (default: the preselected one)")
    explain.add_argument("--platform", choices=("web", "spa", "publicClient"), help="redirect URI platform")
    explain.add_argument("--requester", default=SAMPLE_REQUESTER, help="the requester's Slack user ID")
    explain.add_argument(
        "--requester-groups",
        help="comma-separated Slack user group IDs the requester is in (default: asked of Slack when "
        "SLACK_BOT_TOKEN is set, else assumed none)",
    )


def run(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.policy_command == "check":
        print("\n".join(describe(load_policy(args.file, admins=settings.admins), settings)))
        return 0
    return explain(args, settings)


def describe(policy: Policy, settings: Settings) -> list[str]:
    lines = [f"{policy.source}: valid; {len(policy.rules)} rule(s), the first that matches applies."]
    for approver_set in policy.approver_sets.values():
        lines.append(f"Approvers {approver_set.describe()}")
    lines += [rule.describe() + "." for rule in policy.rules]
    offered = settings.max_secret_days(max_days=policy.offered_max_days("new_app"))
    lines.append(f"The new-app form offers lifetimes up to {lifetime_label(offered)}.")
    return lines


def explain(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or settings.oauth_bot_policy_file
    if not path:
        raise ConfigError("name the policy file: --file FILE, or set OAUTH_BOT_POLICY_FILE")
    policy = load_policy(path, admins=settings.admins)
    secret = args.kind in ("new_app", "rotation") and args.sign_in == "secret"
    facts = Facts(
        kind=args.kind,
        sign_in=args.sign_in if args.kind == "new_app" else "secret",
        sign_in_audience=ACCOUNT_TYPES[args.account_type],
        days=(args.days if args.days is not None else settings.default_secret_days) if secret else None,
        redirect_platform=args.platform,
        requester_id=args.requester,
    )
    in_group, how = _membership(args, settings)
    verdict = policy.verdict(facts, in_group)
    platform = f"a {facts.redirect_platform} redirect URI" if facts.redirect_platform else "no redirect URI"
    lifetime = f"{facts.days} days" if facts.days is not None else "no secret"
    print(f"Request: {facts.kind}, {args.account_type} accounts, {lifetime}, {platform}")
    print(f"Requester: {facts.requester_id}")
    for rule, why_not in verdict.skipped:
        print(f"Rule {rule.number} does not apply: {why_not}.")
    print(f"Applies: {verdict.rule.describe()}.")
    longest = settings.max_secret_days(max_days=verdict.rule.max_days)
    if facts.days is not None and facts.days > longest:
        print(f"The lifetime is refused: this rule allows at most {lifetime_label(longest)}.")
    print(how)
    return 0


def _membership(
    args: argparse.Namespace, settings: Settings
) -> tuple[Callable[[ApproverSet, str], bool], str]:
    """How the requester's user groups are known: given, asked of Slack, or assumed none."""
    if args.requester_groups is not None:
        groups = {g.strip() for g in args.requester_groups.split(",") if g.strip()}
        shown = ", ".join(sorted(groups)) or "none"
        return (lambda s, user: user in s.users or (s.usergroup in groups)), f"User groups given: {shown}."
    if settings.slack_bot_token:
        from bot.slack.client import web_client
        from bot.slack.usergroups import SlackApprovers

        slack = SlackApprovers(web_client(settings))

        def asked(group: ApproverSet, user: str) -> bool:
            return user in group.users or bool(
                group.usergroup and user in slack.usergroup_members(group.usergroup)
            )

        return asked, "User group membership as Slack says now."
    note = (
        "No SLACK_BOT_TOKEN: the requester is assumed to be in no Slack user group (use --requester-groups)."
    )
    return (lambda s, user: user in s.users), note


def _settings() -> Settings:
    """The environment's settings for the admins and lifetimes (defaults if they do not parse)."""
    try:
        return Settings()
    except PydanticValidationError:
        return Settings(_env_file=None)  # type: ignore[call-arg]
