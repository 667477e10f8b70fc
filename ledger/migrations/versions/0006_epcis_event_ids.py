"""EPCIS events found by their eventID, and the values a partner browses: an index on
`epcis_event.event_id` (`GET /epcis/events/{eventID}`, `EQ_eventID`), on its disposition and business
location (`GET /epcis/dispositions`, `/bizLocations`), each event's action and error declaration as
columns of their own (`EQ_action`, `EXISTS_errorDeclaration`, `EQ_errorReason`), and the identifiers
by role, among them each event's read point (`GET /epcis/readPoints`, `EQ_readPoint`), its EPCs told
apart by list (`MATCH_inputEPC`, `MATCH_outputEPC`). The EPCIS index is emptied: it is derived from
the chain, and the projection worker (or `lotline project`) builds it again with all of these.

Revision ID: 0006
Revises: 0005
Created: EPCIS event lookup and top-level resources
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("epcis_event_epc", "epcis_event", "epcis_index_position"):
        op.execute(f"DELETE FROM {table}")  # first: the indexes below are then made on empty tables
    op.add_column("epcis_event", sa.Column("action", sa.String(10)))
    op.add_column("epcis_event", sa.Column("error_reason", sa.String(200)))
    op.create_index("epcis_event_id", "epcis_event", ["event_id"])
    op.drop_index("epcis_event_step", table_name="epcis_event")
    for name, column in (("step", "biz_step"), ("disposition", "disposition"), ("location", "biz_location"),
                         ("type", "type"), ("action", "action")):
        # Each value's events in ledger order: a page of a common value reads its rows, sorts none.
        op.create_index(f"epcis_event_{name}", "epcis_event", [column, "seq", "idx"])
    op.create_index("epcis_event_error", "epcis_event", ["error_reason"])
    op.create_index("epcis_epc_role", "epcis_event_epc", ["role", "epc"])
