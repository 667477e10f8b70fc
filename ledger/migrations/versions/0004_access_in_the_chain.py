"""Access changes are events of the chain (`ledger.domain.account`); passwords are kept beside it.

A user's role, places and whether they are enabled are now the state of their account's events;
`lotline_users` and `lotline_user_sites` keep only what they held before (read once, when
`lotline db upgrade` records an account for every user who has none: scripts/db.py). A password
hash is a row of `lotline_passwords`, written in the transaction of the event that says a password
was set (`seq`: its chain position); the newest row of a principal is their password.

Revision ID: 0004
Revises: 0003
Created: access changes in the chain
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lotline_passwords",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
    )
