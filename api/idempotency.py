"""Idempotency keys: a command sent again with the same `Idempotency-Key` is answered, not repeated.

Keys are per principal. The first request claims the key (a row without an answer), runs, and
stores its answer with the hash of the request (method, path and canonical JSON body). A retry with
the same key and the same request gets the stored answer and records nothing; with another request
it is refused (409). A request that fails releases its key, since it recorded nothing; a claim left
by a process that died is taken over after `STALE_AFTER`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
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
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from api.errors import IdempotencyConflict

STALE_AFTER = timedelta(seconds=60)

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

    def claim(self, principal: str, key: str, digest: str) -> Stored | None:
        """Claim `key` for this request; the stored answer if it was already given to it."""
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(keys).values(
                            principal=principal, key=key, request_hash=digest, created_at=_now()
                        )
                    )
                return None
            except IntegrityError:
                found = self._get(principal, key)
            if found is None:
                continue  # released meanwhile: claim again
            if found["request_hash"] != digest:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used with a different request; use a new key for a new request",
                    idempotency_key=key,
                )
            if found["status"] is not None:
                return Stored(found["status"], json.loads(found["response"]))
            if datetime.fromisoformat(found["created_at"]) > datetime.now(UTC) - STALE_AFTER:
                raise IdempotencyConflict(
                    "the first request with this Idempotency-Key is still running; retry shortly",
                    idempotency_key=key,
                    retryable=True,
                )
            self.release(principal, key)
        raise IdempotencyConflict("could not claim the Idempotency-Key; retry", idempotency_key=key)

    def complete(self, principal: str, key: str, status: int, body: Any) -> None:
        """Store the answer of the request that claimed `key`."""
        with self.engine.begin() as conn:
            conn.execute(
                update(keys)
                .where(_key(principal, key))
                .values(status=status, response=json.dumps(body, separators=(",", ":")))
            )

    def release(self, principal: str, key: str) -> None:
        """Forget an unanswered claim (its request failed and recorded nothing)."""
        with self.engine.begin() as conn:
            conn.execute(delete(keys).where(_key(principal, key), keys.c.status.is_(None)))

    def _get(self, principal: str, key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(keys).where(_key(principal, key))).mappings().first()


class Once:
    """One request's idempotency: `once(step)` runs the step unless its key was answered before."""

    def __init__(self, store: IdempotencyStore, principal: str, key: str | None, digest: str) -> None:
        self.store, self.principal, self.key, self.digest = store, principal, key, digest

    def __call__(self, step: Callable[[], BaseModel], status: int = 200) -> BaseModel | JSONResponse:
        if self.key is None:
            return step()
        stored = self.store.claim(self.principal, self.key, self.digest)
        if stored is not None:
            return JSONResponse(
                stored.body, status_code=stored.status, headers={"Idempotent-Replayed": "true"}
            )
        answered = False
        try:
            answer = step()
            self.store.complete(self.principal, self.key, status, answer.model_dump(mode="json"))
            answered = True
            return answer
        finally:
            if not answered:
                self.store.release(self.principal, self.key)


def _key(principal: str, key: str) -> Any:
    return and_(keys.c.principal == principal, keys.c.key == key)


def _now() -> str:
    return datetime.now(UTC).isoformat()
