"""Federated identity credentials: what a request asks for, and what oauth-bot added

`requests.federated` holds the credential a request asks for (name, issuer, subject,
audiences, description) — null for a client secret. `federated_credentials` has one row per
federated identity credential oauth-bot added to an app: its Entra id, name, issuer and
subject, the request that added it, and when it was removed (null: still there).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "federated" not in {c["name"] for c in inspector.get_columns("requests")}:
        op.add_column("requests", sa.Column("federated", sa.JSON(), nullable=True))
    if "federated_credentials" in inspector.get_table_names():
        return  # (a database adopted from create_all may be newer than 0001)
    op.create_table(
        "federated_credentials",
        sa.Column("credential_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("issuer", sa.String(length=600), nullable=False),
        sa.Column("subject", sa.String(length=600), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["managed_apps.client_id"]),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.PrimaryKeyConstraint("credential_id"),
    )
    op.create_index(
        op.f("ix_federated_credentials_client_id"), "federated_credentials", ["client_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_federated_credentials_client_id"), table_name="federated_credentials")
    op.drop_table("federated_credentials")
    op.drop_column("requests", "federated")
