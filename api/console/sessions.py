"""Console sessions: a person's sign-in, kept server-side so every API worker shares it and a
sign-out or an idle timeout ends it everywhere. The cookie holds a random secret; the store keeps its
SHA-256, the principal, the CSRF token of the session's forms and when it was last used."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select, update

metadata = MetaData()

sessions = Table(  # made by migration 0005
    "lotline_console_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("principal", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("last_seen_at", String(40), nullable=False),
    Column("ended_at", String(40)),
)

_TOUCH_EVERY = timedelta(seconds=30)
"""A session's last use is written at most this often (a page view need not be a write)."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in person: who, and the token their forms must carry (CSRF)."""

    principal: str
    csrf: str


class ConsoleSessions:
    """Opens, finds and ends console sessions in the ledger's database."""

    def __init__(self, engine: Engine, idle: timedelta) -> None:
        self.engine = engine
        self.idle = idle

    def open(self, principal: str) -> tuple[str, ConsoleSession]:
        """A new session of `principal`: the cookie's secret (kept nowhere) and the session."""
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        at = _now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(sessions).values(
                    session_hash=_hash(secret),
                    principal=principal,
                    csrf=csrf,
                    created_at=at.isoformat(),
                    last_seen_at=at.isoformat(),
                    ended_at=None,
                )
            )
        return secret, ConsoleSession(principal, csrf)

    def find(self, secret: str | None) -> ConsoleSession | None:
        """The live session of a cookie's secret; None if unknown, ended or idle too long (then ended)."""
        if not secret:
            return None
        digest = _hash(secret)
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.session_hash == digest)).mappings().first()
        if row is None or row["ended_at"] is not None:
            return None
        at, seen = _now(), datetime.fromisoformat(row["last_seen_at"])
        if at - seen > self.idle:
            self._end(digest, at)
            return None
        if at - seen > _TOUCH_EVERY:
            with self.engine.begin() as conn:
                touched = update(sessions).where(sessions.c.session_hash == digest)
                conn.execute(touched.values(last_seen_at=at.isoformat()))
        return ConsoleSession(row["principal"], row["csrf"])

    def end(self, secret: str | None) -> None:
        """Sign the session out (a cookie shown again finds nothing)."""
        if secret:
            self._end(_hash(secret), _now())

    def _end(self, digest: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(sessions)
                .where(sessions.c.session_hash == digest, sessions.c.ended_at.is_(None))
                .values(ended_at=at.isoformat())
            )


def csrf_matches(session: ConsoleSession, given: str | None) -> bool:
    """Whether a form carried its session's CSRF token."""
    return given is not None and hmac.compare_digest(session.csrf, given)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)
