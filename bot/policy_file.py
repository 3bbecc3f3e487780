"""Reading OAUTH_BOT_POLICY_FILE (YAML) into bot.core.policy's Policy, checking every part.

Every problem is collected with where it is ("rule 2, approvals: ...", "approvers.leads: ...")
and reported at once, as bot/config.py reports the configuration: a PolicyFileError lists
them all. The reference of the file is the README's "Approval policy" section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.core.errors import ConfigError
from bot.core.model import REDIRECT_PLATFORMS
from bot.core.policy import ACCOUNT_TYPES, KINDS, SIGN_INS, ApproverSet, Match, Policy, Rule

USERGROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
TOP_KEYS = ("approvers", "rules")
SET_KEYS = ("usergroup", "users")
RULE_KEYS = ("match", "auto", "approvers", "approvals", "max_days")
MATCH_KEYS = (
    "kind",
    "sign_in",
    "account_types",
    "lifetime_days_at_most",
    "redirect_platforms",
    "requester_in",
)
MAX_DAYS = 730  # the longest lifetime oauth-bot ever offers (OAUTH_BOT_MAX_SECRET_DAYS's maximum)


class PolicyFileError(ConfigError):
    """The policy file cannot be used; `problems` says every reason, each with its place."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"the policy file {path} has {len(problems)} problem(s):\n{lines}")


def load_policy(path: str | Path, *, admins: frozenset[str] = frozenset()) -> Policy:
    """The policy in this file; PolicyFileError listing every problem if it cannot be used."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(shown, [f"cannot be read ({type(error).__name__}: {error})"]) from None
    return parse_policy(text, source=shown, admins=admins)


def parse_policy(text: str, *, source: str, admins: frozenset[str] = frozenset()) -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyFileError(source, [f"is not valid YAML: {error}".replace("\n", " ")]) from None
    reader = _Reader(admins)
    policy = reader.policy(data, source)
    if reader.problems:
        raise PolicyFileError(source, reader.problems)
    return policy


class _Reader:
    def __init__(self, admins: frozenset[str]) -> None:
        self.admins = admins
        self.problems: list[str] = []
        self.catch_alls: list[int] = []  # rules written `match: {}` (not ones whose match was all wrong)

    def bad(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def keys(self, value: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
        """A mapping with only the allowed keys (an unknown key is reported, then ignored)."""
        if not isinstance(value, dict):
            self.bad(where, f"must be a mapping with the keys {', '.join(allowed)}")
            return {}
        for key in value:
            if key not in allowed:
                self.bad(where, f"unknown key {key!r} (the keys are {', '.join(allowed)})")
        return {k: v for k, v in value.items() if k in allowed}

    def policy(self, data: Any, source: str) -> Policy:
        top = self.keys(data, TOP_KEYS, "the file")
        sets = self.approver_sets(top.get("approvers", {}))
        raw_rules = top.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            self.bad("rules", "must be a list of rules (the first that matches a request applies)")
            raw_rules = []
        rules = [self.rule(raw, number, sets) for number, raw in enumerate(raw_rules, start=1)]
        self.order(rules)
        return Policy(approver_sets=sets, rules=tuple(rules), source=source)

    def approver_sets(self, raw: Any) -> dict[str, ApproverSet]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.bad("approvers", "must map names to {usergroup: S…} or {users: [U…, …]}")
            return {}
        sets = {}
        for name, spec in raw.items():
            where = f"approvers.{name}"
            values = self.keys(spec, SET_KEYS, where)
            group, users = values.get("usergroup"), values.get("users")
            if (group is None) == (users is None):
                self.bad(where, "give either usergroup (a Slack user group ID) or users (a list of user IDs)")
                continue
            if group is not None:
                if not isinstance(group, str) or not USERGROUP_ID.fullmatch(group):
                    self.bad(
                        f"{where}.usergroup", f"{group!r} is not a Slack user group ID such as S0123ABCD"
                    )
                    continue
                sets[str(name)] = ApproverSet(str(name), usergroup=group)
                continue
            if not isinstance(users, list) or not users:
                self.bad(f"{where}.users", "must be a non-empty list of Slack user IDs such as U012AB3CD")
                continue
            wrong = [str(u) for u in users if not isinstance(u, str) or not USER_ID.fullmatch(u)]
            if wrong:
                self.bad(f"{where}.users", f"not Slack user IDs: {', '.join(wrong)}")
                continue
            sets[str(name)] = ApproverSet(str(name), users=tuple(dict.fromkeys(users)))
        return sets

    def rule(self, raw: Any, number: int, sets: dict[str, ApproverSet]) -> Rule:
        where = f"rule {number}"
        values = self.keys(raw, RULE_KEYS, where)
        if "match" not in values and isinstance(raw, dict):
            self.bad(where, "has no match (use `match: {}` for a rule that matches every request)")
        if values.get("match") == {}:
            self.catch_alls.append(number)
        match = self.match(values.get("match") or {}, where, sets)
        auto = values.get("auto", False)
        if not isinstance(auto, bool):
            self.bad(f"{where}, auto", "must be true or false")
            auto = False
        approvers = values.get("approvers")
        if approvers is not None and approvers not in sets:
            known = ", ".join(sets) or "none are defined"
            self.bad(f"{where}, approvers", f"unknown approver set {approvers!r} (approvers: {known})")
        approvals = values.get("approvals", 1)
        if auto and ("approvers" in values or "approvals" in values):
            self.bad(where, "auto: true approves by policy; it cannot also name approvers or approvals")
        elif not _whole(approvals) or approvals < 1:
            self.bad(f"{where}, approvals", f"must be a whole number of at least 1 (not {approvals!r})")
            approvals = 1
        else:
            self.enough_people(where, approvals, sets.get(approvers) if approvers else None)
        max_days = values.get("max_days")
        if max_days is not None and (not _whole(max_days) or not 1 <= max_days <= MAX_DAYS):
            self.bad(f"{where}, max_days", f"must be a whole number of days from 1 to {MAX_DAYS}")
            max_days = None
        return Rule(
            number,
            match,
            auto=auto,
            approvers=str(approvers) if approvers in sets else None,
            approvals=approvals,
            max_days=max_days,
        )

    def enough_people(self, where: str, approvals: int, approver_set: ApproverSet | None) -> None:
        """N approvals from a fixed list need N people on it (a user group is checked at click)."""
        people = approver_set.users if approver_set is not None else tuple(self.admins)
        if approver_set is not None and approver_set.usergroup:
            return
        if approver_set is None and not self.admins:
            return  # OAUTH_BOT_ADMINS is reported on its own when it is missing
        if approvals > len(people):
            who = approver_set.name if approver_set is not None else "OAUTH_BOT_ADMINS"
            self.bad(
                f"{where}, approvals",
                f"{approvals} approvals need {approvals} different people, but {who} has {len(people)}",
            )

    def match(self, raw: Any, where: str, sets: dict[str, ApproverSet]) -> Match:
        where = f"{where}, match"
        values = self.keys(raw, MATCH_KEYS, where)
        kinds = self.words(values.get("kind"), KINDS, f"{where}.kind")
        sign_ins = self.words(values.get("sign_in"), SIGN_INS, f"{where}.sign_in")
        account_types = self.words(
            values.get("account_types"), tuple(ACCOUNT_TYPES), f"{where}.account_types"
        )
        platforms = self.words(
            values.get("redirect_platforms"), REDIRECT_PLATFORMS, f"{where}.redirect_platforms"
        )
        at_most = values.get("lifetime_days_at_most")
        if at_most is not None and (not _whole(at_most) or at_most < 1):
            self.bad(f"{where}.lifetime_days_at_most", "must be a whole number of days, at least 1")
            at_most = None
        requester_in = values.get("requester_in")
        if requester_in is not None and requester_in not in sets:
            known = ", ".join(sets) or "none are defined"
            self.bad(f"{where}.requester_in", f"unknown approver set {requester_in!r} (approvers: {known})")
            requester_in = None
        return Match(
            kinds=frozenset(kinds),
            sign_ins=frozenset(sign_ins),
            audiences=frozenset(ACCOUNT_TYPES[a] for a in account_types),
            lifetime_days_at_most=at_most,
            redirect_platforms=frozenset(platforms),
            requester_in=str(requester_in) if requester_in is not None else None,
        )

    def words(self, raw: Any, allowed: tuple[str, ...], where: str) -> list[str]:
        """One word or a list of them, each one of `allowed`."""
        if raw is None:
            return []
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(item, str) for item in items):
            self.bad(where, f"must be one of {', '.join(allowed)}, or a list of them")
            return []
        unknown = [item for item in items if item not in allowed]
        if unknown:
            self.bad(where, f"unknown {', '.join(map(repr, unknown))} (one of {', '.join(allowed)})")
        return [item for item in items if item in allowed]

    def order(self, rules: list[Rule]) -> None:
        """The last rule matches everything, and no rule hides behind such a rule."""
        catch_all = next((rule for rule in rules if rule.number in self.catch_alls), None)
        if rules and catch_all is None:
            self.bad(
                "rules",
                "no rule matches every request: end with a catch-all rule (`- match: {}`) "
                "so that every request has a rule",
            )
        if catch_all is not None:
            for rule in rules[catch_all.number :]:
                self.bad(
                    f"rule {rule.number}",
                    f"never applies: rule {catch_all.number} before it matches everything",
                )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
