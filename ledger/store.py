"""The event store's settings: one database URL becomes the eventsourcing library's environment."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ledger.errors import InvalidInput

SQLITE_RECORDER = "ledger.recorders:ChainedSQLiteApplicationRecorder"
POSTGRES_RECORDER = "ledger.recorders:ChainedPostgresApplicationRecorder"


def store_env(database_url: str) -> dict[str, str]:
    """The eventsourcing environment for `sqlite:///path` or `postgresql://user:pw@host:port/db`."""
    parts = urlsplit(database_url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        path = database_url.split("://", 1)[1]
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel.db -> rel.db
        if not path:
            raise InvalidInput(
                "sqlite URL needs a file path, e.g. sqlite:///lotline.db", field="database_url"
            )
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER,
        }
    if scheme in ("postgresql", "postgres"):
        if not parts.hostname or not parts.path.strip("/"):
            raise InvalidInput("postgresql URL needs a host and a database name", field="database_url")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER,
        }
    raise InvalidInput(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:/// or postgresql://",
        field="database_url",
    )


def sqlalchemy_url(database_url: str) -> str:
    """The same database for SQLAlchemy (projections), with the psycopg 3 driver on PostgreSQL."""
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url
