"""Extra readers: the groups and service principals a request asks to read its secret

A JSON list on the request, each item {"object_id", "kind" ("Group" | "ServicePrincipal"),
"display_name"} as Microsoft Graph named it when the request was filed; null when none.
Their role assignments are rows of read_grants (no expiry).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("requests")}
    if "extra_readers" in columns:
        return  # (a database adopted from create_all may be newer than 0001)
    op.add_column("requests", sa.Column("extra_readers", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE requests DROP COLUMN extra_readers")
