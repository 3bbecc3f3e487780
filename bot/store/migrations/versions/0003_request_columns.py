"""Requests: drop the columns nothing used, add the failure's error code

`service_principal_id` and `old_key_id` were never used: the service principal is looked up
by appId, and the secrets a rotation retires are the credentials table's. (ALTER TABLE ...
DROP COLUMN: PostgreSQL, and SQLite from 3.35, without rebuilding the table.) `error_code`
holds the code of the typed error that failed a request, so what the bot offers next (Retry,
or Retire oldest and rotate) depends on that code and never on the message's text.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

DEAD = ("service_principal_id", "old_key_id")


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("requests")}
    for column in DEAD:
        if column in present:  # (a database adopted from create_all may be newer than 0001)
            op.execute(f"ALTER TABLE requests DROP COLUMN {column}")
    if "error_code" not in present:
        op.add_column("requests", sa.Column("error_code", sa.String(64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE requests DROP COLUMN error_code")
    for column in DEAD:
        op.add_column("requests", sa.Column(column, sa.String(64), nullable=True))
