"""Deciding on requests under the approval policy (bot.core.policy): which rule applies when a
request is filed, approvals one person at a time until the rule's number is reached, a deny by
any approver, approval by policy, and the reminders to approvers who have not decided.

Who may decide is checked at every click: a member of the rule's approver set (a Slack user
group's members now, or its listed user IDs) counts as one of its approvals, never the
requester, each person once. An oauth-bot admin may deny any request, and approves under a
rule that names no approvers (the built-in policy); an admin outside a rule's approver set
does not count as one of its approvals. Removing a secret (Kind.REMOVE_SECRET) is always the
admins' decision, whatever the file says.

Each approval is recorded with the request's row locked, so of any number of clicks on any
number of replicas exactly one reaches the rule's number and moves it pending → approved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from bot.config import Settings
from bot.core.access import check_can_decide
from bot.core.errors import Conflict, NotAllowed, RemoteError, ValidationError
from bot.core.model import ApproverReminder, Kind, Request, Status, require_status
from bot.core.policy import ADMINS, ApproverSet, Facts, Policy, Rule, may_approve
from bot.core.ports import ApproverDirectory, Notifier, Repository
from bot.core.validation import lifetime_label
from bot.flows.outcomes import Outcomes

log = logging.getLogger(__name__)
POLICY_ACTOR = "policy"  # the audit log's actor for an approval by policy
OWN_REQUEST = "You cannot approve or deny your own request; another approver has to."


class Approvals:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Repository,
        notifier: Notifier,
        approvers: ApproverDirectory,
        outcomes: Outcomes,
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.approvers = approvers
        self.outcomes = outcomes
        self.policy = settings.policy

    # --- the rule -------------------------------------------------------------------------
    def in_group(self, group: ApproverSet, user_id: str) -> bool:
        if group.usergroup:
            return user_id in self.approvers.usergroup_members(group.usergroup)
        return user_id in group.users

    def rule_for(self, request: Request) -> Rule:
        if request.kind == Kind.REMOVE_SECRET:  # whatever the file says: one admin approves
            return Policy.built_in().rules[0]
        return self.policy.rule_for(Facts.of(request), self.in_group)

    def check_lifetime(self, request: Request) -> None:
        """ValidationError on the form's expiry if the request's rule caps its lifetime lower."""
        if request.federated is not None:
            return  # no secret: nothing has a lifetime
        rule = self.rule_for(request)
        longest = self.settings.max_secret_days(max_days=rule.max_days)
        if request.secret_days > longest:
            raise ValidationError(
                {
                    "secret_expiry": f"The approval policy allows at most {lifetime_label(longest)} for this "
                    f"request ({rule.describe()}); choose a shorter lifetime."
                }
            )

    def assign_rule(self, request: Request) -> Rule:
        """Set the rule that applies on a request about to be filed (nothing without a policy file)."""
        rule = self.rule_for(request)
        if self.policy.from_file and request.kind != Kind.REMOVE_SECRET:
            request.rule_number, request.rule_text = rule.number, rule.describe()
            request.approvals_needed, request.approver_set = rule.approvals, rule.approvers
            if rule.auto and request.extra_readers:  # a new reader is a new trust: an admin decides
                request.rule_text += "; extra readers are named, so an oauth-bot admin approves"
        return rule

    def check_enough_approvers(self, request: Request, rule: Rule) -> None:
        """NotAllowed when the rule needs more approvals than its fixed list of people (or the
        admins) has people besides this request's requester, who never counts: filed, it could
        only expire. (A Slack user group's members change; its clicks are checked as they come.
        Without a policy file the admins decide, as they always did.)"""
        if rule.auto or not self.policy.from_file:
            return
        group = self.policy.approver_set(rule.approvers)
        if group is not None and group.usergroup:
            return
        people = set(group.users) if group is not None else set(self.settings.admins)
        eligible = people - {request.requester_id}
        if len(eligible) < rule.approvals:
            who = group.name if group is not None else ADMINS
            raise NotAllowed(
                f"The approval policy's rule {rule.number} needs {rule.approvals} approvals from "
                f"{who}, but only {len(eligible)} of them can approve a request of yours. "
                "Ask an oauth-bot admin to change the policy."
            )

    # --- who may decide -------------------------------------------------------------------
    def _who(self, request: Request) -> str:
        return request.approver_set or ADMINS

    def _counts_for(self, request: Request, actor: str) -> bool:
        """In the rule's approver set now (a set gone from the policy since: the admins)."""
        rule_approvers = self.policy.approver_set(request.approver_set)
        return may_approve(rule_approvers, actor, admins=self.settings.admins, in_group=self.in_group)

    def check_can_approve(self, request: Request, actor: str) -> None:
        if request.approver_set is None:
            check_can_decide(self.settings, actor, request)  # the admins, as without a policy
            return
        if request.requester_id == actor:
            raise NotAllowed(OWN_REQUEST)
        if not self._counts_for(request, actor):
            raise NotAllowed(f"Only {self._who(request)} can approve request #{request.id}.")

    def check_can_deny(self, request: Request, actor: str) -> None:
        """Any of the rule's approvers may deny, and any oauth-bot admin."""
        if request.approver_set is None:
            check_can_decide(self.settings, actor, request)
            return
        if request.requester_id == actor:
            raise NotAllowed(OWN_REQUEST)
        if actor not in self.settings.admins and not self._counts_for(request, actor):
            raise NotAllowed(
                f"Only {self._who(request)} or the oauth-bot admins can deny request #{request.id}."
            )

    # --- decisions ------------------------------------------------------------------------
    def approve(self, request_id: int, *, actor: str, retire_old_now: bool = False) -> Request:
        """Count this person's approval; the one that reaches the rule's number moves the request
        pending → approved (exactly once). Returns the request, pending if more are needed."""
        request = self.store.get_request(request_id)
        self.check_can_approve(request, actor)  # (a user group is read outside the transaction)
        with self.store.atomic():
            self.store.lock_request(request_id)
            request = self.store.get_request(request_id)
            require_status(request, Status.PENDING)
            earlier = [a.approver_id for a in self.store.approvals(request_id)]
            if actor in earlier:
                raise Conflict(
                    f"You have approved request #{request_id} already; {self.progress(request, earlier)}."
                )
            self.store.add_approval(request_id, actor)
            approvers = [*earlier, actor]
            if len(approvers) < request.approvals_needed:
                self.store.audit(
                    actor,
                    "request.approval",
                    request_id=request_id,
                    rule=request.rule_number,
                    approvals=len(approvers),
                    needed=request.approvals_needed,
                )
            else:
                self._approved(request, actor, approvers, retire_old_now)
        return self.store.get_request(request_id)

    def _approved(self, request: Request, actor: str, approvers: list[str], retire_old_now: bool) -> None:
        extra = {"grace_days": 0.0} if retire_old_now and request.grace_days else {}
        detail: dict[str, object] = {"retire_old_now": bool(extra)}
        if request.rule_number is not None:
            detail.update(rule=request.rule_number, rule_text=request.rule_text, approvers=approvers)
        self.outcomes.move(
            request.id,
            actor=actor,
            action="request.approved",
            from_status=[Status.PENDING],
            to_status=Status.APPROVED,
            detail=detail,
            approver_id=actor,
            decided_at=self.store.now(),
            **extra,
        )

    def progress(self, request: Request, approvers: Sequence[str]) -> str:
        """e.g. "1 of 2 approvals; 1 more is needed from identity-team"."""
        left = request.approvals_needed - len(approvers)
        done = f"{len(approvers)} of {request.approvals_needed} approvals"
        return f"{done}; {left} more {'is' if left == 1 else 'are'} needed from {self._who(request)}"

    def approve_by_policy(self, request: Request) -> Request:
        """A rule with `auto: true`: approved by the policy (audited so), the card posted for the
        record only (it can fail: the request runs without it)."""
        try:
            channel, ts = self.notifier.post_request_card(replace(request, status=Status.APPROVED), ())
            self.store.update_request(request.id, card_channel=channel, card_ts=ts)
        except RemoteError as error:
            log.warning("request %s: the card for the record was not posted: %s", request.id, error)
        self.outcomes.move(
            request.id,
            actor=POLICY_ACTOR,
            action="request.approved",
            from_status=[Status.PENDING],
            to_status=Status.APPROVED,
            detail={"rule": request.rule_number, "rule_text": request.rule_text, "auto": True},
            decided_at=self.store.now(),
        )
        self.outcomes.refresh_card(request.id)
        return self.store.get_request(request.id)

    # --- reminders (a scheduled job) -------------------------------------------------------
    def remind(self) -> int:
        """A pending request older than OAUTH_BOT_APPROVER_REMINDER_HOURS: one threaded reminder
        to its approvers (and the requester told when it expires); as long again after that, one
        to the admins. Each is marked by a compare-and-set first, so it goes out once across
        replicas (unmarked when it could not be sent, to be tried at the next run)."""
        every = timedelta(hours=self.settings.oauth_bot_approver_reminder_hours)
        now = self.store.now()
        sent = 0
        for request in self.store.pending_unreminded(ApproverReminder.APPROVERS, now - every):
            sent += self._remind(request, ApproverReminder.APPROVERS)
        for request in self.store.pending_unreminded(ApproverReminder.ADMINS, now - 2 * every):
            reminded = request.approvers_reminded_at
            if reminded is not None and reminded <= now - every:
                sent += self._remind(request, ApproverReminder.ADMINS)
        return sent

    def _remind(self, request: Request, reminder: ApproverReminder) -> int:
        escalated = reminder == ApproverReminder.ADMINS
        if request.card_ts is None or not self.store.mark_reminded(request.id, reminder):
            return 0
        users, usergroup = self._mentions(request, escalated=escalated)
        try:
            self.notifier.remind_approvers(request, users=users, usergroup=usergroup, escalated=escalated)
        except RemoteError as error:
            log.warning("request %s: reminder not sent (tried again later): %s", request.id, error)
            self.store.unmark_reminded(request.id, reminder)
            return 0
        self.store.audit(
            "oauth-bot",
            "request.escalated" if escalated else "request.reminded",
            request_id=request.id,
            rule=request.rule_number,
            users=list(users),
            usergroup=usergroup,
        )
        if not escalated:
            self.outcomes.safely(self.notifier.request_waiting, request)
        return 1

    def _mentions(self, request: Request, *, escalated: bool) -> tuple[list[str], str | None]:
        """Whom a reminder names: the user group, or the people still in the workspace."""
        group = None if escalated else self.policy.approver_set(request.approver_set)
        if group is not None and group.usergroup:
            return [], group.usergroup
        people = group.users if group is not None else tuple(sorted(self.settings.admins))
        return [u for u in people if u != request.requester_id and self._active(u)], None

    def _active(self, user_id: str) -> bool:
        try:
            return self.approvers.is_active(user_id)
        except RemoteError:
            return True  # not known to have left: named
