"""Tenant limits and usage-aware retirement

`requests.lifetime_note` says how an app management policy capped a rotation's new secret
("capped at 90 days by the tenant's default app management policy"), for the card and the DM.
On `credentials`, a retiring secret's usage check: `retire_state` (null: removed when its grace
period ends; `watching`: kept because it is still used, checked again at `check_after`;
`admin`: past OAUTH_BOT_MAX_GRACE_DAYS, an admin decides; `removing`: claimed for removal, so a
crash removes it once), and `last_sign_in` (the last use the sign-in report showed).

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = {
    "requests": (sa.Column("lifetime_note", sa.String(length=256), nullable=True),),
    "credentials": (
        sa.Column("retire_state", sa.String(length=16), nullable=True),
        sa.Column("check_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sign_in", sa.DateTime(timezone=True), nullable=True),
    ),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column.name not in present:  # (a database adopted from create_all may be newer)
                op.add_column(table, column)


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
