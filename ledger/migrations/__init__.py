"""Alembic migrations of the store's schema, run by `ledger.schema.upgrade` (`lotline db upgrade`).

A new revision: `alembic -c ledger/migrations/alembic.ini revision -m "what changes and why"`, then
write its `upgrade()` for SQLite and PostgreSQL; see docs/migrations.md.
"""
