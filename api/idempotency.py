"""Idempotency keys: a command sent again with the same `Idempotency-Key` is answered, not repeated.

Keys are per principal. A request's answer (status and JSON body) is stored with the hash of the
request (method, path and canonical JSON body) in the same database transaction as the events it
records: the ledger hands the row to its write (`Ledger.handle(..., alongside=...)`), and the body is
made there, from the chain positions and hashes the write assigns. So an answer is kept exactly when
its command is, and a retry after a crash at any point gets the original answer, or runs the command
because it never committed. A retry with the same key and request gets the stored answer and
records nothing; with another request it is refused (409). Two requests with one key at once: one
records, the other's write is refused on the key and it answers with the stored answer. A refused
request records nothing and stores nothing, so a corrected request may use its key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from api.errors import IdempotencyConflict
from ledger.commands import Recorded
from ledger.errors import LedgerError
from ledger.recorders import Row, RowExists

STALE_AFTER = timedelta(seconds=60)
"""How long a claim without an answer, left by a release before answers were kept with their
command, may still belong to a running request; an older one is forgotten."""

metadata = MetaData()

keys = Table(
    "api_idempotency_keys",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer),
    Column("response", Text),
    Column("created_at", String(40), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Stored:
    """The answer first given to a request."""

    status: int
    body: Any


def request_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the request: method, path and the body as canonical JSON (raw bytes if not JSON)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class IdempotencyStore:
    """The keys table in the ledger's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def answered(self, principal: str, key: str, digest: str) -> Stored | None:
        """The answer stored for `key`, if any; 409 if it answered another request."""
        found = self._get(principal, key)
        if found is not None and found["status"] is None:
            found = self._unanswered(principal, key, found)
        if found is None:
            return None
        if found["request_hash"] != digest:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request; use a new key for a new request",
                idempotency_key=key,
            )
        return Stored(found["status"], json.loads(found["response"]))

    def row(self, principal: str, key: str, digest: str, status: int, body: Any) -> Row:
        """The stored answer as a row for the command's own write transaction."""
        values = dict(
            principal=principal,
            key=key,
            request_hash=digest,
            status=status,
            response=json.dumps(body, separators=(",", ":")),
            created_at=_now(),
        )
        return Row(keys.name, values)

    def store(self, row: Row) -> bool:
        """Store an answer in a transaction of its own (a command that recorded no event); False if
        the key was answered meanwhile."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(keys).values(**row.values))
        except IntegrityError:
            return False
        return True

    def _unanswered(self, principal: str, key: str, found: Any) -> Any:
        # A claim without an answer is left only by a release that claimed keys in a transaction of
        # its own: while it may still be running, say so; after that, forget it (nothing answers it).
        if datetime.fromisoformat(found["created_at"]) > datetime.now(UTC) - STALE_AFTER:
            raise IdempotencyConflict(
                "the first request with this Idempotency-Key is still running; retry shortly",
                idempotency_key=key,
                retryable=True,
            )
        with self.engine.begin() as conn:
            conn.execute(delete(keys).where(_key(principal, key), keys.c.status.is_(None)))
        return self._get(principal, key)

    def _get(self, principal: str, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(_GET, {"principal": principal, "key": key}).mappings().first()


class Once:
    """One request's idempotency: `once(step, answer)` runs the step unless its key was answered
    before; the answer is stored in the step's own write transaction."""

    def __init__(self, store: IdempotencyStore, principal: str, key: str | None, digest: str) -> None:
        self.store, self.principal, self.key, self.digest = store, principal, key, digest

    def __call__(
        self,
        step: Callable[[Callable[[Recorded], Sequence[Row]] | None], Recorded],
        answer: Callable[[Recorded], BaseModel],
        status: int = 200,
    ) -> BaseModel | JSONResponse:
        """Run `step` (handed the rows to write with its events) and answer with `answer` of what it
        recorded; or replay the answer stored for this key."""
        if self.key is None:
            return answer(step(None))
        key = self.key
        stored = self.store.answered(self.principal, key, self.digest)
        if stored is not None:
            return _replay(stored)

        def rows(recorded: Recorded) -> Sequence[Row]:
            body = answer(recorded).model_dump(mode="json")
            return [self.store.row(self.principal, key, self.digest, status, body)]

        try:
            recorded = step(rows)
        except RowExists:
            return self._the_stored_answer()  # the same key recorded first, meanwhile
        except LedgerError:
            # Refused, perhaps because the same request with this key recorded first meanwhile.
            stored = self.store.answered(self.principal, key, self.digest)
            if stored is not None:
                return _replay(stored)
            raise
        if not recorded.events and not self.store.store(rows(recorded)[0]):
            return self._the_stored_answer()
        return answer(recorded)

    def _the_stored_answer(self) -> JSONResponse:
        assert self.key is not None
        stored = self.store.answered(self.principal, self.key, self.digest)
        if stored is None:
            raise IdempotencyConflict("could not store the answer to this Idempotency-Key; retry",
                                      idempotency_key=self.key, retryable=True)
        return _replay(stored)


def _replay(stored: Stored) -> JSONResponse:
    return JSONResponse(stored.body, status_code=stored.status, headers={"Idempotent-Replayed": "true"})


_GET = select(keys).where(keys.c.principal == bindparam("principal"), keys.c.key == bindparam("key"))
"""Made once: every write with a key reads it first (building it was a tenth of a receipt's time)."""


def _key(principal: str, key: str) -> Any:
    return and_(keys.c.principal == principal, keys.c.key == key)


def _now() -> str:
    return datetime.now(UTC).isoformat()
