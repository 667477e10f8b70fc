"""C2SP signed notes, tlog checkpoints and Ed25519 cosignatures: what the ledger signs, witnesses cosign.

Formats (c2sp.org/signed-note, c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature), summarised in
docs/merkle-and-checkpoints.md:

    <origin>\\n<tree size>\\n<base64 root>\\n          the checkpoint body (the note text)
    \\n                                                 a blank line
    — <key name> base64(key ID[4] || signature)\\n      one line per signature

A log signature is Ed25519 over the body, key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4].
A cosignature is Ed25519 over `cosignature/v1\\ntime <t>\\n` || body, its signature field is the 8-byte
big-endian time || the 64-byte signature, key ID = SHA-256(name || 0x0A || 0x04 || public key)[:4].

Reading is as strict as Go's golang.org/x/mod/sumdb/note.Open and sumdb/tlog.ParseTree, and stricter where
the same note could be written two ways (base64 must be canonical; no checkpoint extension lines). Each
refusal names the line of the note and why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import LedgerError

ED25519 = 0x01
"""Signature type of an Ed25519 note signature (the log's checkpoint signature)."""
COSIGNATURE_V1 = 0x04
"""Signature type of a timestamped Ed25519 checkpoint cosignature (a witness)."""

DASH = "\u2014"  # the em dash that opens a signature line
MAX_SIGNATURES = 64
MAX_TREE_SIZE = 2**63 - 1
"""The largest tree size a checkpoint may state (Go's tlog parses it as an int64; so do the stores)."""


class NoteError(LedgerError):
    """A signed note, checkpoint, key or cosignature is malformed or does not verify."""

    code = "invalid_note"


# --- keys ---------------------------------------------------------------------------------------------


def public_bytes(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The 32-byte RFC 8032 encoding of an Ed25519 public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def require_key_name(name: str) -> str:
    """Key names are non-empty and hold no whitespace and no `+`."""
    if not name or "+" in name or any(ch.isspace() for ch in name) or not name.isprintable():
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'", field="name")
    return name


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A public key as a note verifier knows it: name, type, 32-byte Ed25519 key; `key_id` derived."""

    name: str
    sig_type: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def encode(self) -> str:
        """The vkey text `name+hex(key ID)+base64(type || public key)`."""
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def ed25519(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)


def parse_vkey(text: str) -> VerifierKey:
    """Read `name+hex(key ID)+base64(type || key)`; the ID must match the key."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key reads name+keyid+base64key", field="vkey")
    name, hex_id, blob = parts
    raw = _b64(blob, "verifier key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("a verifier key holds a type byte 0x01 or 0x04 and 32 key bytes", field="vkey")
    key = VerifierKey(require_key_name(name), raw[0], raw[1:])
    if key.key_id.hex() != hex_id.lower():
        raise NoteError(f"verifier key {name}: key ID {hex_id} does not match the key", field="vkey")
    return key


def signer_text(name: str, sig_type: int, private_key: Ed25519PrivateKey) -> str:
    """The private key file text `PRIVATE+KEY+name+hex(key ID)+base64(type || 32-byte seed)`."""
    seed = private_key.private_bytes_raw()
    kid = key_id(name, sig_type, public_bytes(private_key)).hex()
    return f"PRIVATE+KEY+{name}+{kid}+{base64.b64encode(bytes([sig_type]) + seed).decode()}"


def parse_signer(text: str) -> tuple[VerifierKey, Ed25519PrivateKey]:
    """Read a private key file written by `signer_text`; check its key ID."""
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("a private key reads PRIVATE+KEY+name+keyid+base64key", field="key")
    _, _, name, hex_id, blob = parts
    raw = _b64(blob, "private key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("a private key holds a type byte and a 32-byte Ed25519 seed", field="key")
    private = Ed25519PrivateKey.from_private_bytes(raw[1:])
    vkey = VerifierKey(require_key_name(name), raw[0], public_bytes(private))
    if vkey.key_id.hex() != hex_id.lower():
        raise NoteError(f"private key {name}: key ID {hex_id} does not match the key", field="key")
    return vkey, private


# --- notes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: key name, 4-byte key ID and the signature bytes that follow the ID."""

    name: str
    key_id: bytes
    blob: bytes

    def line(self) -> str:
        return f"{DASH} {self.name} {base64.b64encode(self.key_id + self.blob).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: its text (ending in a newline) and its signature lines."""

    text: str
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        """The note as transmitted: text, blank line, one line per signature."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def signed_by(self, key: VerifierKey) -> list[Signature]:
        """The signature lines whose name and key ID are this key's."""
        kid = key.key_id
        return [s for s in self.signatures if s.name == key.name and s.key_id == kid]

    def with_signatures(self, extra: Iterable[Signature]) -> Note:
        seen = set(self.signatures)
        return Note(self.text, self.signatures + tuple(s for s in extra if s not in seen))


def parse_note(data: str | bytes) -> Note:
    """Split a signed note into text and signatures; refuse anything the spec does not allow."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a signed note is UTF-8") from None
    all_lines = data.split("\n")
    for number, line in enumerate(all_lines, start=1):
        for ch in line:
            if ord(ch) < 0x20:
                why = " (a CR: the note's lines end in LF only)" if ch == "\r" else ""
                raise NoteError(f"line {number} holds control character U+{ord(ch):04X}{why}", line=number)
    if all_lines[-1] != "":
        raise NoteError(f"line {len(all_lines)}: a signed note ends with a newline", line=len(all_lines))
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("a signed note has a blank line before its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    blank = text.count("\n") + 1  # the number of the blank line
    if not block:
        raise NoteError(
            f"line {blank}: a signed note has at least one signature after its last blank line "
            "(this one ends with a blank line)",
            line=blank,
        )
    sig_lines = block[:-1].split("\n")
    if len(sig_lines) > MAX_SIGNATURES:
        raise NoteError(f"a signed note has at most {MAX_SIGNATURES} signatures here")
    return Note(text, tuple(_parse_signature_line(line, blank + i) for i, line in enumerate(sig_lines, 1)))


def _parse_signature_line(line: str, number: int) -> Signature:
    if not line.startswith(DASH + " "):
        raise NoteError(
            f"line {number}: signature line {line[:40]!r} does not start with '{DASH} '", line=number
        )
    fields = line[2:].split(" ")
    if len(fields) != 2:
        raise NoteError(
            f"line {number}: signature line {line[:40]!r} is not '{DASH} name signature'", line=number
        )
    name, text = fields
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"line {number}: key name {name!r} is empty or holds a space or '+'", line=number)
    blob = _canonical_b64(text, f"signature by {name}", number)
    if len(blob) < 5:
        raise NoteError(f"line {number}: signature by {name} is too short", line=number)
    return Signature(name, blob[:4], blob[4:])


# --- checkpoints ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The tree head a checkpoint states: origin, size and root hash."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """`origin\\nsize\\nbase64(root)\\n` -- the text that is signed."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint body (no extension lines: Lotline never writes them)."""
    lines = text.split("\n")
    if lines[-1] != "":
        raise NoteError(f"line {len(lines)}: a checkpoint body ends with a newline", line=len(lines))
    if len(lines) < 4:
        raise NoteError(f"a checkpoint body is three lines, origin, size and root, not {len(lines) - 1}")
    if len(lines) > 4:
        raise NoteError("line 4: a checkpoint body is exactly three lines (no extension lines)", line=4)
    origin, size_text, root_text = lines[:3]
    if not origin:
        raise NoteError("line 1: the origin is empty; a checkpoint's first line names its log", line=1)
    # Go's tlog: strconv.ParseInt(s, 10, 64), then n >= 0 and s == strconv.FormatInt(n, 10)
    if not (size_text.isascii() and size_text.isdigit()) or (size_text[0] == "0" and size_text != "0"):
        raise NoteError(
            f"line 2: checkpoint size {size_text[:40]!r} is not a decimal without sign or leading zeros",
            line=2,
        )
    if len(size_text) > 19 or int(size_text) > MAX_TREE_SIZE:
        raise NoteError(f"line 2: checkpoint size {size_text[:40]} is larger than 2^63 - 1", line=2)
    size = int(size_text)
    root = _canonical_b64(root_text, "root hash", 3)
    if len(root) != 32:
        raise NoteError(f"line 3: a checkpoint's root hash is 32 bytes, not {len(root)}", line=3)
    return Checkpoint(origin, size, root)


def sign_checkpoint(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> Note:
    """The checkpoint as a note signed by the log key `name`."""
    body = checkpoint.body()
    kid = key_id(name, ED25519, public_bytes(private_key))
    return Note(body, (Signature(name, kid, private_key.sign(body.encode())),))


def verify_log_signature(note: Note, keys: Iterable[VerifierKey]) -> VerifierKey:
    """The known log key whose signature on the note verifies (signed-note rules); NoteError otherwise.

    Signatures from unknown keys are ignored; a known key's signature that fails rejects the note;
    a note with no verifying signature from a known key is rejected.
    """
    good: VerifierKey | None = None
    for key in keys:
        if key.sig_type != ED25519:
            continue
        for sig in note.signed_by(key):
            try:
                key.ed25519().verify(sig.blob, note.text.encode())
            except InvalidSignature:
                raise NoteError(f"the signature by {key.name} ({key.key_id.hex()}) does not verify") from None
            good = good or key
    if good is None:
        names = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in note.signatures)
        raise NoteError(f"no signature by a known log key; signed by {names}")
    return good


# --- cosignatures ---------------------------------------------------------------------------------------


def cosignature_message(body: str, timestamp: int) -> bytes:
    """`cosignature/v1\\ntime <t>\\n` || checkpoint body: what a witness signs."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> Signature:
    """A witness's timestamped cosignature of a checkpoint body."""
    if not 0 < timestamp < 2**63:
        raise NoteError("a cosignature time is a positive POSIX timestamp")
    sig = private_key.sign(cosignature_message(body, timestamp))
    kid = key_id(name, COSIGNATURE_V1, public_bytes(private_key))
    return Signature(name, kid, timestamp.to_bytes(8, "big") + sig)


def verify_cosignature(body: str, sig: Signature, key: VerifierKey) -> int:
    """The time of a valid cosignature by `key` over `body`; NoteError otherwise."""
    if key.sig_type != COSIGNATURE_V1 or sig.name != key.name or sig.key_id != key.key_id:
        raise NoteError(f"cosignature by {sig.name} is not from witness key {key.name} ({key.key_id.hex()})")
    if len(sig.blob) != 72:
        raise NoteError(f"cosignature by {sig.name} is not 8 time bytes and a 64-byte signature")
    timestamp = int.from_bytes(sig.blob[:8], "big")
    try:
        key.ed25519().verify(sig.blob[8:], cosignature_message(body, timestamp))
    except InvalidSignature:
        raise NoteError(f"the cosignature by {sig.name} does not verify") from None
    return timestamp


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"the {what} is not valid base64") from None


def _canonical_b64(text: str, what: str, line: int) -> bytes:
    """Base64 exactly as `base64.b64encode` writes the bytes it decodes to (RFC 4648 3.5, zero pad bits):
    Go's StdEncoding takes non-zero pad bits too, which would let one note be written several ways."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"line {line}: the {what} is not base64 (standard, padded)", line=line) from None
    if base64.b64encode(raw).decode() != text:
        raise NoteError(
            f"line {line}: the {what} is not canonical base64 (it reads {base64.b64encode(raw).decode()})",
            line=line,
        )
    return raw
