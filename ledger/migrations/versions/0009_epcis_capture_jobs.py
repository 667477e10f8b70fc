"""EPCIS capture jobs (`/epcis/capture/{captureID}`): what became of each captured document.

Revision ID: 0009
Revises: 0008
Created: EPCIS capture jobs
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "epcis_capture_job",
        sa.Column("capture_id", sa.String(60), primary_key=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("finished_at", sa.String(40), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("epcis_capture_job_newest", "epcis_capture_job", ["created_at", "capture_id"])
