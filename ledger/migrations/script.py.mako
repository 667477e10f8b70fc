"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Created: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    """Both stores: write what differs between SQLite and PostgreSQL with `op.get_bind().dialect.name`."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    raise NotImplementedError("Lotline's store is only ever upgraded; restore a backup to go back")
