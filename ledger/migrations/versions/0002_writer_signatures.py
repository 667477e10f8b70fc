"""Writer signatures: one row per commit, an Ed25519 signature over its last position and chain hash.

A store made before this revision has no signature; its head is signed once (kind `adopted`) by the
first write of this release, inside that write's transaction (ledger/writer.py, docs/migrations.md).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_writer_signatures",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_writer_signatures")
