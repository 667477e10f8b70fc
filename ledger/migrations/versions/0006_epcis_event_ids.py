"""EPCIS events found by their eventID: an index on `epcis_event.event_id`, for `GET /epcis/events/{eventID}`
and the `EQ_eventID` query parameter.

Revision ID: 0006
Revises: 0005
Created: EPCIS event lookup
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("epcis_event_id", "epcis_event", ["event_id"])
