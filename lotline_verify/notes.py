"""C2SP signed notes, checkpoints and Ed25519 cosignatures, read and checked (cryptography + stdlib only).

Written from c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, independently
of the ledger's own code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = 1
COSIGNATURE_V1 = 4


class Invalid(Exception):
    """Something in the export does not verify; the message says what and why."""


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{what} is not valid base64") from None


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Key:
    """A public key a note may be signed with; (name, key ID) is how signature lines name it."""

    name: str
    sig_type: int
    public_key: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.id.hex()}+{blob}"


def parse_vkey(text: str) -> Key:
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise Invalid(f"verifier key {text.strip()!r} is not name+keyid+key")
    raw = b64decode(parts[2], "verifier key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise Invalid(f"verifier key {parts[0]} is not an Ed25519 (0x01) or cosignature (0x04) key")
    key = Key(parts[0], raw[0], raw[1:])
    if key.id.hex() != parts[1].lower():
        raise Invalid(f"verifier key {parts[0]}: key ID {parts[1]} does not match its key")
    return key


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[SignatureLine, ...]

    def by(self, key: Key) -> list[SignatureLine]:
        return [s for s in self.signatures if s.name == key.name and s.key_id == key.id]


def parse_note(data: str) -> Note:
    """Split a signed note at its last blank line into text and `— name base64` signature lines."""
    if any(ord(ch) < 0x20 and ch != "\n" for ch in data):
        raise Invalid("note holds a control character")
    if not data.endswith("\n"):
        raise Invalid("note does not end with a newline")
    cut = data.rfind("\n\n")
    if cut < 0:
        raise Invalid("note has no blank line before its signatures")
    lines = data[cut + 2 :].split("\n")[:-1]
    if not lines:
        raise Invalid("note has no signature")
    sigs = []
    for line in lines:
        head, _, rest = line.partition(" ")
        name, _, blob = rest.partition(" ")
        if head != "\u2014" or not name or not blob or " " in blob or "+" in name:
            raise Invalid(f"bad signature line {line[:60]!r}")
        raw = b64decode(blob, f"signature by {name}")
        if len(raw) < 5:
            raise Invalid(f"signature by {name} is too short")
        sigs.append(SignatureLine(name, raw[:4], raw[4:]))
    return Note(data[: cut + 1], tuple(sigs))


@dataclass(frozen=True)
class Head:
    """origin, size and root of a checkpoint body."""

    origin: str
    size: int
    root: bytes


def parse_head(text: str) -> Head:
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] or not lines[0]:
        raise Invalid("checkpoint text is not exactly the three lines origin, size, root")
    size = lines[1]
    if not (size.isascii() and size.isdigit()) or (len(size) > 1 and size[0] == "0"):
        raise Invalid(f"checkpoint size {size!r} is not a plain decimal")
    root = b64decode(lines[2], "checkpoint root")
    if len(root) != 32:
        raise Invalid("checkpoint root is not 32 bytes")
    return Head(lines[0], int(size), root)


def verify_signed(note: Note, keys: Iterable[Key]) -> Key:
    """The known Ed25519 key that signed the note; Invalid if a known key's signature fails or none did."""
    signer = None
    for key in keys:
        if key.sig_type != ED25519:
            continue
        for sig in note.by(key):
            if not key.verify(sig.signature, note.text.encode()):
                raise Invalid(f"the signature by {key.name} ({key.id.hex()}) does not verify")
            signer = signer or key
    if signer is None:
        names = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in note.signatures)
        raise Invalid(f"not signed by any known log key (signed by {names})")
    return signer


def verify_cosignature(body: str, sig: SignatureLine, key: Key) -> int:
    """The POSIX time of a valid `cosignature/v1` by `key` over checkpoint `body`."""
    if key.sig_type != COSIGNATURE_V1 or sig.name != key.name or sig.key_id != key.id:
        raise Invalid(f"cosignature by {sig.name} does not name witness key {key.name} ({key.id.hex()})")
    if len(sig.signature) != 8 + 64:
        raise Invalid(f"cosignature by {sig.name} is not a timestamped Ed25519 signature")
    when = int.from_bytes(sig.signature[:8], "big")
    message = f"cosignature/v1\ntime {when}\n".encode() + body.encode()
    if not key.verify(sig.signature[8:], message):
        raise Invalid(f"the cosignature by {sig.name} does not verify")
    return when
