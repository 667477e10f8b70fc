"""A read model that fails on an event records it in its tracking row: the event's position and the error.

The tracking table is made by `projections.runner.prepare` (it is derived data, docs/migrations.md),
after the revisions run: a new store gets the columns from the code's table. A store whose tracking
table predates them gets them here, so that every process of this release can read the failures.

Revision ID: 0003
Revises: 0002
Created: read models stop alone
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACKING = "projection_tracking"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(TRACKING):
        return
    have = {c["name"] for c in inspector.get_columns(TRACKING)}
    if "failed_position" not in have:
        op.add_column(TRACKING, sa.Column("failed_position", sa.BigInteger, nullable=True))
    if "failed_error" not in have:
        op.add_column(TRACKING, sa.Column("failed_error", sa.Text, nullable=True))
