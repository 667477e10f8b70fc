"""The schema of the release before migrations (commit 1c6d1b2), which made its tables on first use.

Creates, where missing, every table that release made and that cannot be rebuilt from the events
(or is costly to): the event store and its hash chain with their append-only triggers, the Merkle
tree, users and tokens, the log's keys, checkpoints and cosignatures, API idempotency keys, captured
EPCIS events and the EPCIS query index. A store of that release gets what it lacks (e.g. the EPCIS
tables when the API never ran) after its existing tables are checked to be that release's; a new
store gets all of it. The definitions are copied here on purpose: a revision never changes with the
code. The read models' tables are not here: they are rebuilt from the events (docs/migrations.md).

Revision ID: 0001
Revises:
Created: the schema of 1c6d1b2
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.schema import StoreNotReady

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS, CHAIN = "lotline_events", "ledger_chain"

metadata = sa.MetaData()

sa.Table(
    "ledger_merkle_nodes", metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sqlite_with_rowid=False,
)
sa.Table(
    "lotline_users", metadata,
    sa.Column("principal", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.String(300)),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
sa.Table(
    "lotline_user_sites", metadata,
    sa.Column("principal", sa.String(64), sa.ForeignKey("lotline_users.principal"), primary_key=True),
    sa.Column("site_id", sa.Uuid, primary_key=True),
)
sa.Table(
    "lotline_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(64), sa.ForeignKey("lotline_users.principal"), nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40)),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Index("lotline_tokens_principal", "principal"),
)
sa.Table(
    "ledger_log_keys", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("public_key", sa.LargeBinary(32), nullable=False),
    sa.Column("vkey", sa.Text, nullable=False),
    sa.Column("valid_from", sa.String(40), nullable=False),
    sa.Column("valid_until", sa.String(40), nullable=True),
)
sa.Table(
    "ledger_checkpoints", metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("origin", sa.String(200), nullable=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("key_id", sa.String(8), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
sa.Table(
    "ledger_cosignatures", metadata,
    sa.Column("size", sa.BigInteger, sa.ForeignKey("ledger_checkpoints.size"), primary_key=True,
              autoincrement=False),
    sa.Column("witness", sa.String(200), primary_key=True),
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("timestamp", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("public_key", sa.LargeBinary(32), nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.Column("received_at", sa.String(40), nullable=False),
)
sa.Table(
    "api_idempotency_keys", metadata,
    sa.Column("principal", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("response", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False),
)
sa.Table(
    "epcis_captured", metadata,
    sa.Column("event_hash", sa.String(200), primary_key=True),
    sa.Column("seq", sa.BigInteger),
    sa.Column("principal", sa.String(100), nullable=False),
    sa.Column("captured_at", sa.String(40), nullable=False),
)
sa.Table(
    "epcis_event", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("event_time", sa.String(40), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("biz_step", sa.String(200)),
    sa.Column("disposition", sa.String(200)),
    sa.Column("biz_location", sa.String(200)),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Index("epcis_event_time", "event_time"),
    sa.Index("epcis_event_step", "biz_step"),
)
sa.Table(
    "epcis_event_epc", metadata,
    sa.Column("epc", sa.String(300), primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
)
sa.Table(
    "epcis_index_position", metadata,
    sa.Column("name", sa.String(16), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

EVENT_STORE_COLUMNS = {
    EVENTS: {"originator_id", "originator_version", "topic", "state"},
    CHAIN: {"seq", "originator_id", "originator_version", "chain_hash"},
}
"""The event store's columns on both stores (PostgreSQL's event table also has `notification_id`)."""

# The event store, exactly as the eventsourcing library (9.5) and `ledger.recorders` made it.
SQLITE_EVENT_STORE = [
    f"CREATE TABLE IF NOT EXISTS {EVENTS} (originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB, PRIMARY KEY (originator_id, originator_version))",
    f"CREATE TABLE IF NOT EXISTS {CHAIN} (seq INTEGER PRIMARY KEY, originator_id TEXT NOT NULL, "
    "originator_version INTEGER NOT NULL, chain_hash BLOB NOT NULL, "
    "UNIQUE (originator_id, originator_version))",
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'lotline: {table} is append-only'); END"
        for table in (EVENTS, CHAIN)
        for action in ("UPDATE", "DELETE")
    ),
]

POSTGRES_EVENT_STORE = [
    f'CREATE TABLE IF NOT EXISTS "public"."{EVENTS}" (originator_id "uuid" NOT NULL, '
    "originator_version bigint NOT NULL, topic text, state bytea, notification_id bigserial, "
    "PRIMARY KEY (originator_id, originator_version)) WITH ("
    "    autovacuum_enabled = true,"
    "    autovacuum_vacuum_threshold = 100000000,"
    "    autovacuum_vacuum_scale_factor = 0.5,"
    "    autovacuum_analyze_threshold = 1000,"
    "    autovacuum_analyze_scale_factor = 0.01"
    ")",
    f'CREATE UNIQUE INDEX IF NOT EXISTS "{EVENTS}_notification_id_idx" '
    f'ON "public"."{EVENTS}" (notification_id ASC);',
    # The library's insert function (used when its db functions are enabled; kept as it made it).
    'CREATE OR REPLACE FUNCTION "public"."es_insert_events_uuid"(events "public"."stored_event_uuid"[]) '
    "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$BEGIN"
    "    SET LOCAL lock_timeout = '30s';"
    f'    NOTIFY "{EVENTS}";'
    "    RETURN QUERY"
    f'    INSERT INTO "public"."{EVENTS}" AS t ('
    "    originator_id, originator_version, topic, state)"
    "    SELECT originator_id, originator_version, topic, state"
    "    FROM unnest(events)"
    "    RETURNING notification_id;"
    "END;$BODY$",
    f'CREATE TABLE IF NOT EXISTS "public"."{CHAIN}" (seq bigint PRIMARY KEY, originator_id "uuid" NOT NULL, '
    "originator_version bigint NOT NULL, chain_hash bytea NOT NULL, "
    "UNIQUE (originator_id, originator_version))",
    'CREATE OR REPLACE FUNCTION "public".lotline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN '
    "RAISE EXCEPTION 'lotline: % is append-only', TG_TABLE_NAME; END $$",
    *(
        statement
        for table in (EVENTS, CHAIN)
        for statement in (
            f'CREATE OR REPLACE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "public"."{table}" '
            'FOR EACH ROW EXECUTE FUNCTION "public".lotline_append_only()',
            f'CREATE OR REPLACE TRIGGER "{table}_no_truncate" BEFORE TRUNCATE ON "public"."{table}" '
            'FOR EACH STATEMENT EXECUTE FUNCTION "public".lotline_append_only()',
        )
    ),
]

POSTGRES_EVENT_TYPE = (
    'CREATE TYPE "public"."stored_event_uuid" AS (originator_id "uuid", originator_version bigint, '
    "topic text, state bytea)"
)


def upgrade() -> None:
    bind = op.get_bind()
    _require_previous_release(bind)
    if bind.dialect.name == "postgresql":
        exists = bind.execute(sa.text(
            "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typname = 'stored_event_uuid'"
        )).first()
        statements = POSTGRES_EVENT_STORE if exists else [POSTGRES_EVENT_TYPE, *POSTGRES_EVENT_STORE]
    else:
        statements = SQLITE_EVENT_STORE
    for statement in statements:
        bind.exec_driver_sql(statement.replace("%", "%%") if bind.dialect.name == "postgresql" else statement)
    metadata.create_all(bind, checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("Lotline's store is only ever upgraded; restore a backup to go back")


def _require_previous_release(bind: sa.Connection) -> None:
    """Tables that exist already must be the previous release's: refuse another program's tables."""
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    expected = {t.name: {c.name for c in t.columns} for t in metadata.tables.values()}
    expected.update(EVENT_STORE_COLUMNS)
    for table in sorted(existing & set(expected)):
        columns = {c["name"] for c in inspector.get_columns(table)} - {"notification_id"}
        if columns != expected[table]:
            raise StoreNotReady(
                f"the table {table} exists but is not the one Lotline makes (columns {sorted(columns)}, "
                f"expected {sorted(expected[table])}); is this another program's database?",
                table=table,
            )
