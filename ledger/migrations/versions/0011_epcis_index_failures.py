"""The EPCIS index records where and why it stopped, as the read models do (revision 0003): the first
chain position it could not index and the error, until it moves again. `/ready` lists it with the read
models that failed (503) and `lotline project` reports it and exits 1; before, only the projection
worker's log said so, and the API answered ready while EPCIS queries waited for ever.

Revision ID: 0011
Revises: 0010
Created: EPCIS index failures
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSITION = "epcis_index_position"


def upgrade() -> None:
    op.add_column(POSITION, sa.Column("failed_position", sa.BigInteger, nullable=True))
    op.add_column(POSITION, sa.Column("failed_error", sa.Text, nullable=True))
