"""C2SP signed notes, checkpoints and Ed25519 cosignatures, read and checked (cryptography + stdlib only).

Written from c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, independently
of the ledger's own code. Parsing is at least as strict as Go's golang.org/x/mod/sumdb/note.Open and
tlog.ParseTree (and filippo.io/torchwood's ParseCheckpoint), and stricter where one note could otherwise be
written two ways: base64 must be canonical, and Lotline's checkpoints have no extension lines. Every
refusal names the note's line and why (docs/merkle-and-checkpoints.md, "Parsing").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = 1
COSIGNATURE_V1 = 4
MAX_SIGNATURES = 100  # what Go's note.Open accepts; c2sp.org/signed-note asks for at least 16
MAX_SIZE = 2**63 - 1  # Go parses the tree size as an int64
DECIMAL = re.compile(r"0|[1-9][0-9]*")  # ASCII digits; no sign, leading zero or "_"


class Invalid(Exception):
    """Something in the export does not verify; the message says what and why."""


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{what} is not valid base64") from None


def canonical_b64decode(text: str, what: str) -> bytes:
    """Standard padded base64 written the one way it encodes (RFC 4648 3.5: zero padding bits).

    Go's base64.StdEncoding refuses a wrong alphabet, spaces and missing or extra padding but accepts
    non-zero padding bits (only its Strict() mode refuses them); re-encoding and comparing refuses those
    too, so a signed checkpoint has exactly one text."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{what} is not base64 (standard alphabet, with '=' padding)") from None
    canonical = base64.b64encode(raw).decode()
    if canonical != text:
        raise Invalid(f"{what} is not canonical base64: the bytes it holds are written {canonical}")
    return raw


def valid_key_name(name: str) -> bool:
    """signed-note: key names are non-empty, without Unicode spaces and without '+'."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


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
    if len(parts) != 3 or not valid_key_name(parts[0]):
        raise Invalid(f"verifier key {text.strip()[:80]!r} is not name+keyid+key")
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
    for n, line in enumerate(data.split("\n"), 1):
        bad = next((ch for ch in line if ord(ch) < 0x20), None)
        if bad is not None:
            crlf = " (a Windows line ending: the note's lines end in LF only)" if bad == "\r" else ""
            raise Invalid(f"line {n} holds the control character U+{ord(bad):04X}{crlf}")
    if not data.endswith("\n"):
        raise Invalid(f"line {data.count(chr(10)) + 1}, the note's last, does not end with a newline")
    cut = data.rfind("\n\n")
    if cut < 0:
        raise Invalid("the note has no blank line before its signature lines")
    first = data.count("\n", 0, cut + 2) + 1  # the line number of the first signature line
    if cut + 2 == len(data):
        raise Invalid(f"line {first - 1} is blank and nothing follows it: the note ends with a blank line "
                      "instead of its signature lines (an extra newline at the end of the file?)")
    lines = data[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Invalid(f"the note has {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    return Note(data[: cut + 1], tuple(_signature_line(line, n) for n, line in enumerate(lines, first)))


def _signature_line(line: str, n: int) -> SignatureLine:
    if not line.startswith("\u2014 "):
        raise Invalid(f"line {n} is not a signature line: it does not start with an em dash (U+2014) "
                      "and a space")
    name, _, blob = line[2:].partition(" ")
    if not valid_key_name(name):
        raise Invalid(f"line {n}: the key name {name!r} is empty or holds a space or '+'")
    if not blob or " " in blob:
        raise Invalid(f"line {n}: a signature line is '\u2014 name signature', one space apart")
    raw = canonical_b64decode(blob, f"line {n}: the signature by {name}")
    if len(raw) < 5:
        raise Invalid(f"line {n}: the signature by {name} is {len(raw)} bytes, too short for a key ID "
                      "and a signature")
    return SignatureLine(name, raw[:4], raw[4:])


@dataclass(frozen=True)
class Head:
    """origin, size and root of a checkpoint body."""

    origin: str
    size: int
    root: bytes


def parse_head(text: str) -> Head:
    """The checkpoint body: lines 1-3 are origin, tree size and root hash; Lotline writes no others."""
    lines = text.split("\n")
    if lines[-1] != "":
        raise Invalid(f"line {len(lines)}, the checkpoint text's last, does not end with a newline")
    lines.pop()
    if len(lines) < 3:
        raise Invalid(f"the checkpoint text has {len(lines)} line(s), not the three origin, tree size, "
                      "root hash")
    if len(lines) > 3:
        raise Invalid(f"line 4: the checkpoint text has {len(lines)} lines; a Lotline checkpoint has exactly "
                      "three (origin, tree size, root hash) and no extension lines")
    origin, size, root_text = lines
    if not origin:
        raise Invalid("line 1 (origin) is empty")
    if not DECIMAL.fullmatch(size):
        raise Invalid(f"line 2 (tree size) {size[:40]!r} is not a decimal number without sign or "
                      "leading zeros")
    if len(size) > 19 or int(size) > MAX_SIZE:
        raise Invalid(f"line 2 (tree size) {size[:40]} is larger than 2^63 - 1")
    root = canonical_b64decode(root_text, "line 3 (root hash)")
    if len(root) != 32:
        raise Invalid(f"line 3 (root hash) is {len(root)} bytes, not the 32 of a SHA-256 hash")
    return Head(origin, int(size), root)


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
