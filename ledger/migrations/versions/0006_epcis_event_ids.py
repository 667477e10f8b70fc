"""EPCIS events found by their eventID, and the values a partner browses: an index on
`epcis_event.event_id` (`GET /epcis/events/{eventID}`, `EQ_eventID`), on its disposition and business
location (`GET /epcis/dispositions`, `/bizLocations`), and each event's read point among the
identifiers it names (`GET /epcis/readPoints`, `EQ_readPoint`), whose EPCs are now told apart by list
(`MATCH_inputEPC`, `MATCH_outputEPC`). The EPCIS index is emptied: it is
derived from the chain, and the next EPCIS query builds it again with the read points.

Revision ID: 0006
Revises: 0005
Created: EPCIS event lookup and top-level resources
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
    op.create_index("epcis_event_disposition", "epcis_event", ["disposition"])
    op.create_index("epcis_event_location", "epcis_event", ["biz_location"])
    for table in ("epcis_event_epc", "epcis_event", "epcis_index_position"):
        op.execute(f"DELETE FROM {table}")
