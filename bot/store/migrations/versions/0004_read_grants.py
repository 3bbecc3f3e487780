"""Read grants: a requester's read access to one app's vault secret, and when it ends

One row per role assignment the bot made (or found already there and adopted) for a person
at a vault secret's scope: the request it was for (none for `/oauth-secret access`), the
assignment's scope and name (what DELETE needs), when it was granted, when the bot takes it
away (null: kept) and when it did.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    if "read_grants" in sa.inspect(op.get_bind()).get_table_names():
        return  # (a database adopted from create_all may be newer than 0001)
    op.create_table(
        "read_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=512), nullable=False),
        sa.Column("assignment_name", sa.String(length=64), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("adopted", sa.Boolean(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_read_grants_request_id"), "read_grants", ["request_id"], unique=False)
    op.create_index(op.f("ix_read_grants_client_id"), "read_grants", ["client_id"], unique=False)
    op.create_index(
        op.f("ix_read_grants_assignment_name"), "read_grants", ["assignment_name"], unique=False
    )
    op.create_index(op.f("ix_read_grants_expires_at"), "read_grants", ["expires_at"], unique=False)


def downgrade() -> None:
    for column in ("expires_at", "assignment_name", "client_id", "request_id"):
        op.drop_index(op.f(f"ix_read_grants_{column}"), table_name="read_grants")
    op.drop_table("read_grants")
