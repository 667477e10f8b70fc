"""The eventIDs partners named their captured events with, one event each, written with the events.

Revision ID: 0010
Revises: 0009
Created: EPCIS sender event IDs
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Captures before this revision are found through the EPCIS index (epcis/capture.py `_taken_ids`).
    op.create_table(
        "epcis_sender_event_id",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("event_hash", sa.String(200), nullable=False),
    )
