"""Console sessions: a person signed in to the console holds a session cookie; the store keeps its
hash, the principal, the CSRF token of its forms and when it was last used (idle timeout), so that
several API workers share sessions and a sign-out ends one everywhere.

Revision ID: 0005
Revises: 0004
Created: console sign-in
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lotline_console_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("last_seen_at", sa.String(40), nullable=False),
        sa.Column("ended_at", sa.String(40)),
    )
