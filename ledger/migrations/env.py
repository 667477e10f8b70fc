"""Alembic's entry point: runs the revisions on the connection `ledger.schema.upgrade` hands over.

That connection is already in a transaction holding the schema lock, so every revision applies in it
and commits (or rolls back) with it. There is no offline (`--sql`) mode and no URL of our own here:
upgrade a store with `lotline db upgrade`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

log = logging.getLogger("lotline.schema")


def _applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    doc = (getattr(step.up_revision, "doc", None) or "").strip().splitlines()
    log.info("applied revision %s: %s", step.up_revision_id, doc[0] if doc else "")


connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("Lotline's migrations run through `lotline db upgrade` (ledger.schema.upgrade)")

context.configure(connection=connection, target_metadata=None, on_version_apply=_applied)
with context.begin_transaction():
    context.run_migrations()
