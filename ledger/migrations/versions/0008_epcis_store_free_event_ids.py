"""EPCIS eventIDs that do not depend on the store: exported events no longer carry `lotline:source` (the
storing ledger's position and chain hash), so every eventID of a Lotline event changes, and a captured
event keeps the ID it was sent with. The EPCIS index is emptied: it is derived from the chain, and the
projection worker (or `lotline project`) builds it again with the new IDs.

Revision ID: 0008
Revises: 0007
Created: store-free EPCIS event IDs
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("epcis_event_epc", "epcis_event", "epcis_index_position"):
        op.execute(f"DELETE FROM {table}")

