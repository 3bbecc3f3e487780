"""The SQLAlchemy tables. Rows never leave bot/store: the repositories map them to bot.core.model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    requester_id: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    # what was asked for
    display_name: Mapped[str] = mapped_column(String(256))
    sign_in_audience: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str | None] = mapped_column(String(512))
    redirect_platform: Mapped[str | None] = mapped_column(String(16))
    federated: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a FederatedCredentialSpec
    secret_description: Mapped[str] = mapped_column(String(256))
    secret_days: Mapped[int] = mapped_column(Integer)
    lifetime_note: Mapped[str | None] = mapped_column(String(256))
    justification: Mapped[str] = mapped_column(Text)
    # extra readers: [{"object_id", "kind", "display_name"}] (null: none)
    extra_readers: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # decision
    approver_id: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deny_reason: Mapped[str | None] = mapped_column(Text)
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    # the approval policy's rule that applied (bot.core.policy)
    rule_number: Mapped[int | None] = mapped_column(Integer)
    rule_text: Mapped[str | None] = mapped_column(Text)
    approvals_needed: Mapped[int] = mapped_column(Integer, default=1)
    approver_set: Mapped[str | None] = mapped_column(String(64))
    approvers_reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    admins_reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # what the workflow made (IDs only, never a value)
    client_id: Mapped[str | None] = mapped_column(String(64), index=True)
    object_id: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64))
    secret_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vault_secret_id: Mapped[str | None] = mapped_column(String(512))
    grace_days: Mapped[float | None] = mapped_column()
    verified: Mapped[bool | None] = mapped_column(Boolean)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    # work distribution
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApprovalRow(Base):
    """An approval of a request by one person: the unique key makes a person count once."""

    __tablename__ = "request_approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver_id", name="uq_request_approvals_approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    approver_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StepRow(Base):
    """The step log: each workflow step is written before ("started") and after it runs."""

    __tablename__ = "request_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # started | finished | failed
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ManagedAppRow(Base):
    __tablename__ = "managed_apps"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256))
    sign_in_audience: Mapped[str] = mapped_column(String(64))
    vault_secret_name: Mapped[str] = mapped_column(String(127))
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppOwnerRow(Base):
    __tablename__ = "app_owners"

    client_id: Mapped[str] = mapped_column(ForeignKey("managed_apps.client_id"), primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    entra_user_id: Mapped[str | None] = mapped_column(String(64))


class CredentialRow(Base):
    """A client secret whose value the vault holds (a row is written only after the vault write)."""

    __tablename__ = "credentials"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("managed_apps.client_id"), index=True)
    description: Mapped[str] = mapped_column(String(256))
    hint: Mapped[str] = mapped_column(String(16))
    end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    vault_secret_id: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | retiring | removed
    remove_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # usage-aware retirement: None (timed) | watching | admin | removing (bot/flows/retirement.py)
    retire_state: Mapped[str | None] = mapped_column(String(16))
    check_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sign_in: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FederatedCredentialRow(Base):
    """A federated identity credential oauth-bot added to an app (no value exists anywhere)."""

    __tablename__ = "federated_credentials"

    credential_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("managed_apps.client_id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    issuer: Mapped[str] = mapped_column(String(600))
    subject: Mapped[str] = mapped_column(String(600))
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReadGrantRow(Base):
    """A person's read access (a role assignment) to one app's vault secret, and its end."""

    __tablename__ = "read_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    principal_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(512))
    assignment_name: Mapped[str] = mapped_column(String(64), index=True)
    granted_by: Mapped[str] = mapped_column(String(64))
    adopted: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReminderSentRow(Base):
    __tablename__ = "reminders_sent"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    threshold_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobLeaseRow(Base):
    """A lease row per scheduled job: the holder is the leader for that job until `until`;
    `last_run` is when any replica last ran it."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
