"""Approval policy: the rule that applied to a request, its approvals, its reminders

Each request keeps the approval policy's rule that applied when it was filed (its number and
words, how many approvals it needs and from which approver set), and when its approvers and
then the admins were reminded (set once, by a compare-and-set). `request_approvals` holds
one row per person who approved a request; its unique key makes a person count once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("rule_number", sa.Integer(), nullable=True),
        sa.Column("rule_text", sa.Text(), nullable=True),
        sa.Column("approvals_needed", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("approver_set", sa.String(64), nullable=True),
        sa.Column("approvers_reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("admins_reminded_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("requests")}
    for column in _columns():
        if column.name not in present:  # (a database adopted from create_all may be newer)
            op.add_column("requests", column)
    if "request_approvals" in inspector.get_table_names():
        return
    op.create_table(
        "request_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "approver_id", name="uq_request_approvals_approver"),
    )
    op.create_index(
        op.f("ix_request_approvals_request_id"), "request_approvals", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_request_approvals_request_id"), table_name="request_approvals")
    op.drop_table("request_approvals")
    for column in reversed(_columns()):
        op.execute(f"ALTER TABLE requests DROP COLUMN {column.name}")
