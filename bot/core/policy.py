"""The approval policy: who approves which request, how many of them, or whether the policy
approves it itself; and the longest secret lifetime a request may have.

Plain data and pure functions: bot/policy_file.py reads the YAML file into these, the flows
ask `Policy.rule_for`, and whether someone is in a Slack user group is a callable the caller
passes in (`in_group`), so nothing here knows Slack or YAML. Without a policy file the policy
is `Policy.built_in()`: one rule, one approval by an oauth-bot admin (what oauth-bot always did).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bot.core.model import Kind, Request

# The policy file's words for a request's kind, and the account types by the portal's short names.
KINDS = ("new_app", "rotation", "federated", "read_access")
SIGN_INS = ("secret", "federated")  # a new app's credential: a client secret, or a federated one
KIND_WORDS = {
    "new_app": "new apps",
    "rotation": "rotations",
    "federated": "federated credentials for existing apps",
    "read_access": "read access requests",
}
SIGN_IN_WORDS = {"secret": "a client secret", "federated": "a federated credential"}
ACCOUNT_TYPES = {
    "single_tenant": "AzureADMyOrg",
    "multitenant": "AzureADMultipleOrgs",
    "multitenant_personal": "AzureADandPersonalMicrosoftAccount",
    "personal": "PersonalMicrosoftAccount",
}
ACCOUNT_TYPE_NAMES = {audience: name for name, audience in ACCOUNT_TYPES.items()}
ADMINS = "the oauth-bot admins"  # who approves under a rule that names no approvers
POLICY_CAP = "the approval policy"  # whose cap it is when a rule's max_days shortens the lifetimes


def policy_kind(request: Request) -> str:
    """The policy file's kind of a request: the one place a Kind becomes a policy kind. A new
    app is a new app however it signs in (a rule for risky account types holds for a secretless
    one too; `sign_in: federated` tells them apart); a federated credential for an existing app
    is "federated". Removing a secret never reaches the policy: the admins decide it
    (Approvals.rule_for)."""
    if request.kind == Kind.FEDERATE:
        return "federated"
    if request.kind == Kind.ROTATE:
        return "rotation"
    if request.kind == Kind.READ_ACCESS:
        return "read_access"
    return "new_app"


def _gives_secret(request: Request) -> bool:
    return request.kind in (Kind.NEW_APP, Kind.ROTATE) and request.federated is None


def sign_in_of(request: Request) -> str:
    """How the app the request gives signs in: "federated" (no secret) or "secret"."""
    return "federated" if request.federated is not None else "secret"


@dataclass(frozen=True)
class ApproverSet:
    """People who may approve: the members of a Slack user group, or a list of user IDs."""

    name: str
    usergroup: str | None = None
    users: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.usergroup:
            return f"{self.name} (Slack user group {self.usergroup})"
        return f"{self.name} ({', '.join(self.users)})"


@dataclass(frozen=True)
class Facts:
    """What a rule looks at: the request as the policy file names it."""

    kind: str  # one of KINDS
    sign_in: str  # one of SIGN_INS
    sign_in_audience: str
    days: int | None  # the secret's lifetime; None: the request gives no secret
    redirect_platform: str | None
    requester_id: str

    @classmethod
    def of(cls, request: Request) -> Facts:
        return cls(
            kind=policy_kind(request),
            sign_in=sign_in_of(request),
            sign_in_audience=request.sign_in_audience,
            days=request.secret_days if _gives_secret(request) else None,
            redirect_platform=request.redirect_platform if request.redirect_uri else None,
            requester_id=request.requester_id,
        )


InGroup = Callable[[ApproverSet, str], bool]  # (approver set, user id) → is the user in it?


def _lifetime_failure(days: int | None, at_most: int) -> str | None:
    if days is None:  # a lifetime rule is about secrets; a request without one is not "short-lived"
        return "it gives no secret, so it has no lifetime to be short"
    return f"its lifetime of {days} days is over {at_most} days" if days > at_most else None


@dataclass(frozen=True)
class Match:
    """What a rule applies to; an empty Match applies to every request."""

    kinds: frozenset[str] = frozenset()  # empty: any kind
    sign_ins: frozenset[str] = frozenset()  # SIGN_INS; empty: either
    audiences: frozenset[str] = frozenset()  # signInAudience values; empty: any
    lifetime_days_at_most: int | None = None
    redirect_platforms: frozenset[str] = frozenset()  # empty: any (or none)
    requester_in: str | None = None  # an approver set's name

    def failed_condition(
        self, facts: Facts, requester_in: ApproverSet | None, in_group: InGroup
    ) -> str | None:
        """The first condition the request does not meet, in words (None: it matches)."""
        return next((why for why in self._failures(facts, requester_in, in_group) if why), None)

    def _failures(
        self, facts: Facts, requester_in: ApproverSet | None, in_group: InGroup
    ) -> Iterator[str | None]:
        if self.kinds and facts.kind not in self.kinds:
            yield f"its kind is {facts.kind}, not {_either(sorted(self.kinds))}"
        if self.sign_ins and facts.sign_in not in self.sign_ins:
            wanted = _either(SIGN_IN_WORDS[w] for w in sorted(self.sign_ins))
            yield f"it signs in with {SIGN_IN_WORDS[facts.sign_in]}, not {wanted}"
        if self.audiences and facts.sign_in_audience not in self.audiences:
            name = ACCOUNT_TYPE_NAMES.get(facts.sign_in_audience, facts.sign_in_audience)
            yield f"its account type {name} is not one of {_either(_account_types(self.audiences))}"
        if self.lifetime_days_at_most is not None:
            yield _lifetime_failure(facts.days, self.lifetime_days_at_most)
        if self.redirect_platforms and facts.redirect_platform not in self.redirect_platforms:
            platform = facts.redirect_platform or "none"
            yield f"its redirect platform ({platform}) is not {_either(sorted(self.redirect_platforms))}"
        if requester_in is not None and not in_group(requester_in, facts.requester_id):
            yield f"the requester is not in {requester_in.name}"

    def describe(self) -> str:
        """e.g. "new apps for multitenant or personal accounts, of at most 90 days"."""
        words = _either(KIND_WORDS[k] for k in sorted(self.kinds)) if self.kinds else "requests"
        conditions = []
        if self.sign_ins:
            conditions.append(f"signing in with {_either(SIGN_IN_WORDS[w] for w in sorted(self.sign_ins))}")
        if self.audiences:
            conditions.append(f"for {_either(_account_types(self.audiences))} accounts")
        if self.lifetime_days_at_most is not None:
            conditions.append(f"of at most {self.lifetime_days_at_most} days")
        if self.redirect_platforms:
            conditions.append(f"with a {_either(sorted(self.redirect_platforms))} redirect URI")
        if self.requester_in:
            conditions.append(f"from members of {self.requester_in}")
        if not conditions and not self.kinds:
            return "all other requests"
        return " ".join([words, *conditions])


@dataclass(frozen=True)
class Rule:
    """One rule of the policy: what it matches and what it decides."""

    number: int  # 1-based, as people count the rules in the file
    match: Match
    auto: bool = False
    approvers: str | None = None  # an approver set's name; None: the oauth-bot admins
    approvals: int = 1
    max_days: int | None = None

    def describe(self) -> str:
        """e.g. "Rule 2: new apps for multitenant accounts need 2 approvals from identity-team"."""
        subject = self.match.describe()
        if self.auto:
            action = "are approved by policy"
        else:
            plural = "approval" if self.approvals == 1 else "approvals"
            who = self.approvers or ADMINS
            action = f"need {self.approvals} {plural} from {who}"
        cap = f"; secrets last at most {self.max_days} days" if self.max_days else ""
        return f"Rule {self.number}: {subject} {action}{cap}"


@dataclass(frozen=True)
class Verdict:
    """Which rule a request hits, and why each rule before it did not apply."""

    rule: Rule
    skipped: tuple[tuple[Rule, str], ...]


@dataclass(frozen=True)
class Policy:
    approver_sets: dict[str, ApproverSet]
    rules: tuple[Rule, ...]
    source: str | None = None  # the file it was read from; None: the built-in policy

    @classmethod
    def built_in(cls) -> Policy:
        """One approval by an oauth-bot admin, for every request (no OAUTH_BOT_POLICY_FILE)."""
        return cls(approver_sets={}, rules=(Rule(1, Match()),))

    @property
    def from_file(self) -> bool:
        return self.source is not None

    def approver_set(self, name: str | None) -> ApproverSet | None:
        return self.approver_sets.get(name) if name else None

    def verdict(self, facts: Facts, in_group: InGroup) -> Verdict:
        """The first rule that matches (the file is checked to end with a catch-all rule)."""
        skipped: list[tuple[Rule, str]] = []
        for rule in self.rules:
            group = self.approver_set(rule.match.requester_in)
            why_not = rule.match.failed_condition(facts, group, in_group)
            if why_not is None:
                return Verdict(rule, tuple(skipped))
            skipped.append((rule, why_not))
        return Verdict(Policy.built_in().rules[0], tuple(skipped))

    def rule_for(self, facts: Facts, in_group: InGroup) -> Rule:
        return self.verdict(facts, in_group).rule

    def offered_max_days(self, kind: str) -> int | None:
        """The longest lifetime any rule for this kind of request allows (None: no rule caps
        it), to cap the lifetimes a form offers before the rest of the request is known."""
        caps = [rule.max_days for rule in self.rules if not rule.match.kinds or kind in rule.match.kinds]
        return None if not caps or None in caps else max(cap for cap in caps if cap is not None)


def may_approve(
    rule_approvers: ApproverSet | None, user_id: str, *, admins: frozenset[str], in_group: InGroup
) -> bool:
    """Whether a person counts as one of a rule's approvers: a member of its approver set, or
    (for a rule that names none) an oauth-bot admin."""
    if rule_approvers is None:
        return user_id in admins
    return in_group(rule_approvers, user_id)


def _account_types(audiences: Iterable[str]) -> list[str]:
    return sorted(ACCOUNT_TYPE_NAMES.get(a, a) for a in audiences)


def _either(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
