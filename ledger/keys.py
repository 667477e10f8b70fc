"""The log's Ed25519 signing keys: private keys in files of a key directory, public keys in a table.

A private key file (`<key ID hex>.key`, mode 0600, in a 0700 directory) holds
`PRIVATE+KEY+<name>+<key ID hex>+base64(0x01 || 32-byte seed)` (the Go `note` signer format); its
public half is in `<key ID hex>.vkey` and in `ledger_log_keys` with its validity period. One key is
active (no `valid_until`); rotation retires it and activates a new one in one transaction, and retired
public keys stay in the table so the checkpoints they signed still verify.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Column, Engine, LargeBinary, MetaData, String, Table, Text, select, update

from ledger.db import writing
from ledger.errors import LedgerError
from ledger.notes import ED25519, VerifierKey, parse_signer, public_bytes, require_key_name, signer_text

KEYS_TABLE = "ledger_log_keys"

metadata = MetaData()
keys_table = Table(
    KEYS_TABLE,
    metadata,
    Column("name", String(200), primary_key=True),
    Column("key_id", String(8), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("vkey", Text, nullable=False),
    Column("valid_from", String(40), nullable=False),
    Column("valid_until", String(40), nullable=True),
)


class SigningKeyError(LedgerError):
    """The signing key is missing, already exists, or its file does not match the table."""

    code = "signing_key_error"


@dataclass(frozen=True, slots=True)
class LogKey:
    """A log public key and the period in which it signs (ISO-8601 UTC; `valid_until` None = active)."""

    name: str
    key_id: str
    public_key: bytes
    vkey: str
    valid_from: str
    valid_until: str | None

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, ED25519, self.public_key)

    def valid_at(self, when: str) -> bool:
        """Whether this key was the signing key at ISO time `when`."""
        return _instant(self.valid_from) <= _instant(when) and (
            self.valid_until is None or _instant(when) <= _instant(self.valid_until)
        )


class KeyRing:
    """Generates, rotates, lists and loads the log's signing keys."""

    def __init__(self, engine: Engine, keys_dir: Path, name: str) -> None:
        self.engine = engine
        self.keys_dir = Path(keys_dir)
        self.name = require_key_name(name)

    def all(self) -> list[LogKey]:
        """Every key of this log, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(keys_table).order_by(keys_table.c.valid_from)).all()
        return [_key(r._mapping) for r in rows]

    def verifiers(self) -> list[VerifierKey]:
        """Every public key (active and retired) that may have signed a checkpoint of this log."""
        return [k.verifier for k in self.all()]

    def active(self) -> LogKey | None:
        """The key that signs new checkpoints, if one was generated."""
        live = [k for k in self.all() if k.valid_until is None and k.name == self.name]
        return live[-1] if live else None

    def generate(self) -> LogKey:
        """Create the log's first key; refuses when a key is already active (use `rotate`)."""
        with writing(self.engine, KEYS_TABLE) as conn:
            if self._active(conn) is not None:
                raise SigningKeyError("a signing key is already active; rotate it instead")
            return self._new_key(conn, _now())

    def rotate(self) -> tuple[LogKey | None, LogKey]:
        """Retire the active key and activate a new one, atomically; return (retired, new)."""
        with writing(self.engine, KEYS_TABLE) as conn:
            old, when = self._active(conn), _now()
            if old is not None:
                conn.execute(
                    update(keys_table)
                    .where(keys_table.c.name == old.name, keys_table.c.key_id == old.key_id)
                    .values(valid_until=when)
                )
            new = self._new_key(conn, when)
            retired = None if old is None else LogKey(**{**_fields(old), "valid_until": when})
            return retired, new

    def signer(self) -> tuple[LogKey, Ed25519PrivateKey]:
        """The active key and its private half, read from the key directory."""
        key = self.active()
        if key is None:
            raise SigningKeyError("no signing key: run `lotline keys generate`")
        path = self.keys_dir / f"{key.key_id}.key"
        try:
            vkey, private = parse_signer(path.read_text())
        except FileNotFoundError:
            raise SigningKeyError(f"the private key of {key.key_id} is not in {self.keys_dir}") from None
        if vkey.key_id.hex() != key.key_id or vkey.public_key != key.public_key:
            raise SigningKeyError(f"{path} does not hold key {key.key_id}")
        return key, private

    def _active(self, conn: Any) -> LogKey | None:
        rows = conn.execute(
            select(keys_table).where(keys_table.c.valid_until.is_(None), keys_table.c.name == self.name)
        ).all()
        return _key(rows[-1]._mapping) if rows else None

    def _new_key(self, conn: Any, when: str) -> LogKey:
        private = Ed25519PrivateKey.generate()
        verifier = VerifierKey(self.name, ED25519, public_bytes(private))
        key = LogKey(self.name, verifier.key_id.hex(), verifier.public_key, verifier.encode(), when, None)
        self._write_files(key, private)
        conn.execute(keys_table.insert().values(**_fields(key)))
        return key

    def _write_files(self, key: LogKey, private: Ed25519PrivateKey) -> None:
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_file(self.keys_dir / f"{key.key_id}.key", signer_text(key.name, ED25519, private))
        (self.keys_dir / f"{key.key_id}.vkey").write_text(key.vkey + "\n")


def write_private_file(path: Path, content: str) -> None:
    """Create `path` with mode 0600 (never overwriting) and write `content` and a newline to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _key(m: Any) -> LogKey:
    return LogKey(
        m["name"], m["key_id"], bytes(m["public_key"]), m["vkey"], m["valid_from"], m["valid_until"]
    )


def _fields(key: LogKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "key_id": key.key_id,
        "public_key": key.public_key,
        "vkey": key.vkey,
        "valid_from": key.valid_from,
        "valid_until": key.valid_until,
    }
