"""The store's schema: Alembic migrations (`ledger/migrations/`), applied by `lotline db upgrade`, and the
check every other entry point makes before it touches a store.

Only `upgrade` makes tables. It runs every migration, and then the caller's own step (the read
models' tables), in one transaction that holds the store's schema lock (PostgreSQL: an advisory
lock; SQLite: the write lock), so two processes upgrading at once apply each migration once. A store
made before migrations existed (tables, no `alembic_version`) is brought to the head by the same
path: the first revision creates only what such a store lacks. `require_current` refuses a SQLite
file that does not exist (without creating it), a store without the schema, and a schema behind or
ahead of this Lotline's, saying which command to run. Formats and policy: docs/migrations.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from ledger.db import open_engine, redacted, sqlite_path, write_lock
from ledger.errors import NotReady

MIGRATIONS = "ledger:migrations"
"""Where the revisions live (Alembic's package-resource form)."""

LEDGER_TABLES = ("lotline_events", "ledger_chain", "lotline_users", "ledger_log_keys", "ledger_merkle_nodes")
"""Tables any Lotline store has once it was used: with no `alembic_version`, they mark a store made
by a release before migrations."""

_LOCK_KEY = zlib.crc32(b"lotline schema")
"""The PostgreSQL advisory lock that serialises schema upgrades of one database."""


class StoreNotReady(NotReady):
    """The store does not exist, or its schema is not the one this Lotline needs."""

    code = "store_not_ready"


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a store's schema is: its revision (None: never migrated) and this Lotline's head."""

    url: str
    revision: str | None
    head: str
    has_tables: bool
    """Whether Lotline tables exist (a store of a release before migrations has tables, no revision)."""
    known: bool
    """Whether this Lotline's migrations know `revision` (a newer release may have written another)."""

    @property
    def current(self) -> bool:
        return self.revision == self.head

    def describe(self) -> str:
        """One line: where the store is and, if it is not current, what to run."""
        where = redacted(self.url)
        upgrade = f"run `lotline db upgrade --database-url {where}`"
        if self.current:
            return f"the store at {where} is at revision {self.head} (current)"
        if self.revision is None and self.has_tables:
            return (
                f"the store at {where} was made by a Lotline release before schema migrations (no revision); "
                f"this Lotline needs revision {self.head}: {upgrade}"
            )
        if self.revision is None:
            return f"the store at {where} has no Lotline schema (an empty database): {upgrade}"
        if not self.known:
            return (
                f"the store at {where} is at revision {self.revision}, which this Lotline does not know "
                f"(a newer release upgraded it); use that release, this one needs revision {self.head}"
            )
        return (
            f"the store at {where} is at revision {self.revision}, this Lotline needs {self.head}: {upgrade}"
        )


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What `upgrade` did: the revision before (None: a new store or one made before migrations) and after."""

    url: str
    before: str | None
    after: str

    def describe(self) -> str:
        where = redacted(self.url)
        if self.before == self.after:
            return f"the store at {where} is already at revision {self.after}"
        return f"upgraded the store at {where} from revision {self.before or '(none)'} to {self.after}"


def head() -> str:
    """The revision this Lotline's schema is at."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None, "ledger/migrations has no revision"
    return found


def require_store(database_url: str) -> None:
    """Refuse a SQLite file that does not exist (opening it would create an empty store)."""
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        raise StoreNotReady(
            f"no Lotline store at {database_url}: the file {path.resolve()} does not exist; make one with "
            f"`lotline db upgrade --database-url {database_url}` (or `lotline demo`)",
            database_url=database_url,
        )


def state(database_url: str) -> SchemaState:
    """Where the store's schema is; StoreNotReady if the store does not exist or cannot be opened."""
    require_store(database_url)
    script = ScriptDirectory.from_config(_config())
    with _connection(database_url) as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        has_tables = bool(set(LEDGER_TABLES) & set(inspect(conn).get_table_names()))
    known = revision is None or _knows(script, revision)
    return SchemaState(database_url, revision, head(), has_tables, known)


def require_current(database_url: str) -> None:
    """Refuse to go on unless the store exists and its schema is this Lotline's (StoreNotReady says why)."""
    found = state(database_url)
    if not found.current:
        raise StoreNotReady(found.describe(), database_url=redacted(database_url), revision=found.revision,
                            head=found.head)


def upgrade(database_url: str, *, then: Callable[[Connection], None] | None = None) -> Upgraded:
    """Bring the store to this Lotline's head revision, creating it if needed; then run `then(conn)`
    in the same transaction (e.g. the read models' tables). Safe to run again, and from two processes."""
    with _connection(database_url, create=True) as conn, write_lock(conn).begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        script = ScriptDirectory.from_config(_config())
        if before is not None and not _knows(script, before):
            raise StoreNotReady(SchemaState(database_url, before, head(), True, False).describe())
        command.upgrade(_config(conn), "head")
        if then is not None:
            then(conn)
        after = MigrationContext.configure(conn).get_current_revision()
    assert after is not None
    return Upgraded(database_url, before, after)


class _connection:
    """A connection on its own engine, disposed of afterwards; a store that cannot be opened is
    StoreNotReady with the driver's reason."""

    def __init__(self, database_url: str, *, create: bool = False) -> None:
        self.url = database_url
        path = sqlite_path(database_url)
        if create and path is not None and not path.parent.exists():
            raise StoreNotReady(
                f"cannot make the store {database_url}: the folder {path.parent.resolve()} does not exist"
            )
        self.engine = open_engine(database_url)

    def __enter__(self) -> Connection:
        try:
            self.conn = self.engine.connect()
        except SQLAlchemyError as e:
            self.engine.dispose()
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise StoreNotReady(f"cannot open the store at {redacted(self.url)}: {reason}") from None
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()
        self.engine.dispose()


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def _knows(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except (RevisionError, CommandError):
        return False


__all__ = ["SchemaState", "StoreNotReady", "Upgraded", "head", "require_current", "require_store", "state",
           "upgrade"]
