"""The event store's settings: one database URL becomes the eventsourcing library's environment.

The library never creates tables here (`CREATE_TABLE` is off): the schema is made and upgraded by
`lotline db upgrade` (`ledger.schema`), so a ledger opened on a store without it fails instead of
quietly making an empty one.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ledger.db import BUSY_TIMEOUT_SECONDS, MAX_OVERFLOW, POOL_SIZE, sqlite_path
from ledger.errors import InvalidInput

SQLITE_RECORDER = "ledger.recorders:ChainedSQLiteApplicationRecorder"
POSTGRES_RECORDER = "ledger.recorders:ChainedPostgresApplicationRecorder"


def store_env(database_url: str) -> dict[str, str]:
    """The eventsourcing environment for `sqlite:///path` or `postgresql://user:pw@host:port/db`."""
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "CREATE_TABLE": "false",
            "SQLITE_DBNAME": str(sqlite_path(database_url)),
            "SQLITE_LOCK_TIMEOUT": str(BUSY_TIMEOUT_SECONDS),
            "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER,
        }
    if scheme in ("postgresql", "postgres"):
        if not parts.hostname or not parts.path.strip("/"):
            raise InvalidInput("postgresql URL needs a host and a database name", field="database_url")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "CREATE_TABLE": "false",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": str(POOL_SIZE),
            "POSTGRES_MAX_OVERFLOW": str(MAX_OVERFLOW),
            "POSTGRES_LOCK_TIMEOUT": str(BUSY_TIMEOUT_SECONDS),
            "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER,
        }
    raise InvalidInput(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:/// or postgresql://",
        field="database_url",
    )

