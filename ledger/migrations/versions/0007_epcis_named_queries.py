"""EPCIS named queries (`/epcis/queries`): an event query kept under a name, who made it and when.

Revision ID: 0007
Revises: 0006
Created: EPCIS named queries
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "epcis_named_query",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("query", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
