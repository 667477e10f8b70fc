"""`lotline db upgrade|current`: make or upgrade the store's schema, or say where it is.

`upgrade_store(url)` is the one way a store gets its tables: `db upgrade`, `demo` and `serve` run it
(and the tests' store fixtures). It applies the ledger's migrations (`ledger.schema`), then creates
the read models' tables and restarts any whose tables changed (`projections.runner.prepare`): on
PostgreSQL in the same transaction, under the store's schema lock; on SQLite, whose read models live
in a file of their own (`projections.db.read_side_url`), in a transaction there right after, and
read models left in the store's own file by an earlier release are dropped (they start over in
theirs). Every other command calls `existing_store(url)` first, which refuses a store that does not
exist or whose schema is not current.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from ledger import schema
from ledger.config import Settings
from ledger.db import open_engine, redacted, sqlite_path
from ledger.identity import Identity, operator
from ledger.recorders import CHAIN_TABLE
from ledger.writer import adopt_head
from projections.base import tracking_metadata
from projections.db import open_engine as open_read_engine
from projections.db import read_side_url, reading, writing
from projections.runner import READ_MODELS, not_ready, prepare

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "db", help="make or upgrade the store's schema (upgrade), or show where it is (current)",
        description="The store's schema is versioned by Alembic revisions. `upgrade` makes a new store, "
        "brings one made by an earlier release up to this release (including a release from before "
        "migrations) and creates or restarts the read models' tables; it is safe to re-run and to run "
        "from two processes at once. `current` prints the store's revision and read models and exits "
        "1 unless both are what this Lotline needs.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (
        ("upgrade", "make the store or bring its schema up to this release"),
        ("current", "show the store's schema revision and read models; exit 1 unless current"),
    ):
        a = actions.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    url = args.database_url or Settings().database_url
    if args.action == "upgrade":
        print(upgrade_store(url).describe())
        return 0
    return _current(url)


def upgrade_store(database_url: str, keys_dir: Path | None = None) -> schema.Upgraded:
    """Make the store at `database_url` or bring it to this release: migrations, then read models; a
    store made before writer signatures has its head signed once, as adopted (ledger/writer.py)."""
    apart = read_side_url(database_url) != database_url
    upgraded = schema.upgrade(database_url, then=_read_models_left_behind if apart else _read_models)
    if apart:
        engine, ledger_engine = open_read_engine(database_url), open_engine(database_url)
        try:
            # The ledger is read once the read models' write lock is held: a projection worker cannot
            # move them past the head read, which would look like read models of another ledger.
            with writing(engine) as conn, ledger_engine.connect() as ledger_conn:
                prepare(conn, ledger=_ledger(ledger_conn))
        finally:
            engine.dispose()
            ledger_engine.dispose()
    if upgraded.before in (None, "0001"):
        # Only the upgrade that made the signatures table adopts: a later upgrade never signs a head
        # whose signatures someone deleted.
        engine = open_engine(database_url)
        try:
            adopt_head(engine, keys_dir or Settings().keys_dir)
        finally:
            engine.dispose()
    if upgraded.before in (None, "0001", "0002", "0003"):
        # Likewise only the upgrade that put access changes in the chain records the users it finds
        # in the old tables: a row written there later, behind the ledger's back, is nobody.
        identity = Identity.open(database_url, keys_dir=keys_dir)
        try:
            for principal in identity.adopt_table_users(operator("lotline db upgrade")):
                log.info("recorded the account of %s, a user from before accounts were events", principal)
        finally:
            identity.close()
    return upgraded


def existing_store(database_url: str | None = None) -> str:
    """The store URL (the argument, else LOTLINE_DATABASE_URL), once it exists at this release's schema;
    StoreNotReady (which says what to run) otherwise. Never creates a store."""
    url = database_url or Settings().database_url
    schema.require_current(url)
    return url


def _read_models(conn: Connection) -> None:
    """The read models in the store's own database (PostgreSQL), in the schema transaction."""
    prepare(conn, ledger=_ledger(conn))  # warns about each read model it restarts, and why


def _ledger(conn: Connection) -> tuple[int, bytes | None]:
    """The chain's head position and the hash of its first event (None while it is empty)."""
    last = conn.execute(text(f"SELECT MAX(seq) FROM {CHAIN_TABLE}")).scalar()
    first = conn.execute(text(f"SELECT chain_hash FROM {CHAIN_TABLE} WHERE seq = 1")).scalar()
    return int(last or 0), bytes(first) if first is not None else None


def _read_models_left_behind(conn: Connection) -> None:
    """Drop the read models an earlier release kept in the SQLite store's own file."""
    tables = set(inspect(conn).get_table_names())
    left = [p for p in READ_MODELS if tables & set(p.metadata.tables)]
    for p in left:
        p.drop_tables(conn)
    tracking_metadata.drop_all(conn)
    if left:
        log.warning("read models %s moved to their own file; they start over there from position 0",
                    ", ".join(p.name for p in left))


def _current(url: str) -> int:
    try:
        found = schema.state(url)
    except schema.StoreNotReady as e:
        print(e.message, file=sys.stderr)
        return 1
    print(found.describe())
    if not found.current:
        return 1
    read_file = sqlite_path(read_side_url(url))
    if read_file is not None and not read_file.exists():  # not made here: that is `db upgrade`'s job
        behind: dict[str, int | None] = {p.name: None for p in READ_MODELS}
    else:
        engine = open_read_engine(url)
        try:
            with reading(engine) as conn:
                behind = not_ready(conn)
        finally:
            engine.dispose()
    if behind:
        print(f"read models not ready at {redacted(url)}: {', '.join(sorted(behind))}; "
              f"run `lotline db upgrade --database-url {redacted(url)}`")
        return 1
    print("read models: " + ", ".join(f"{p.name} (schema {p.schema})" for p in READ_MODELS))
    return 0
