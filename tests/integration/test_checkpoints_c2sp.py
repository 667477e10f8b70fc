"""A checkpoint made by Lotline, read by a verifier written here from the C2SP texts alone.

Nothing from `ledger.notes` or `lotline_verify` is used to parse or check: only the rules of
c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, `base64`, `hashlib`
and Ed25519 from `cryptography`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from scripts.witness import DatabaseFeed, Witness
from tests.merkle_builders import ORIGIN, supply_log


def c2sp_open(note: str, keys: dict[tuple[str, bytes], tuple[int, bytes]]) -> tuple[str, list[str]]:
    """signed-note: text up to the last blank line, then `— name base64(keyID||sig)` lines.

    `keys` maps (name, 4-byte key ID) to (signature type, public key). Returns the text and the
    names whose signatures verified; unknown signatures are skipped, a bad known one raises.
    """
    assert note.endswith("\n") and all(c == "\n" or ord(c) >= 0x20 for c in note)
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    verified = []
    for line in sigs.rstrip("\n").split("\n"):
        dash, name, blob = line.split(" ")
        assert dash == "\u2014"
        raw = base64.b64decode(blob, validate=True)
        key = keys.get((name, raw[:4]))
        if key is None:
            continue
        sig_type, public = key
        if sig_type == 0x01:
            Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], text.encode())
        else:  # 0x04: u64 timestamp || Ed25519 over "cosignature/v1\ntime <t>\n" || text
            (timestamp,) = struct.unpack(">Q", raw[4:12])
            message = b"cosignature/v1\ntime %d\n" % timestamp + text.encode()
            Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], message)
        verified.append(name)
    return text, verified


def c2sp_key(name: str, sig_type: int, public: bytes) -> tuple[tuple[str, bytes], tuple[int, bytes]]:
    key_id = hashlib.sha256(name.encode() + b"\x0a" + bytes([sig_type]) + public).digest()[:4]
    return (name, key_id), (sig_type, public)


def test_an_independent_c2sp_verifier_accepts_lotlines_cosigned_checkpoint(
    database_url: str, tmp_path: Path
) -> None:
    with supply_log(database_url, tmp_path / "keys", events=23) as (_, log):
        log_key = log.keys.generate()
        log.checkpoint()
        witness = Witness.init(tmp_path / "w.json", "inspector.test/w1", ORIGIN, [log_key.vkey])
        feed = DatabaseFeed(database_url)
        try:
            feed.submit(witness.add_checkpoint(feed.request(0)).cosigned_note, witness.key)
        finally:
            feed.close()
        note = log.latest().note()
        expected_root = log.tree.root(23)

    # The log's vkey: name+hex(keyID)+base64(0x01||key), as `lotline keys list` prints it.
    name, hex_id, blob = log_key.vkey.split("+", 2)
    raw = base64.b64decode(blob)
    assert raw[0] == 0x01 and len(raw) == 33 and name == ORIGIN
    keys = dict([c2sp_key(name, 0x01, raw[1:]), c2sp_key(witness.name, 0x04, witness.key.public_key)])
    assert next(iter(keys))[1].hex() == hex_id

    text, verified = c2sp_open(note, keys)
    assert verified == [ORIGIN, "inspector.test/w1"]
    # tlog-checkpoint: origin, decimal size without leading zeros, base64 root; no extension lines.
    origin, size, root = text.rstrip("\n").split("\n")
    assert (origin, size) == (ORIGIN, "23")
    assert base64.b64decode(root, validate=True) == expected_root
    # ...written canonically (RFC 4648 3.5: zero padding bits), as strict verifiers require
    assert base64.b64encode(expected_root).decode() == root

    # A signature from a key we do not know is ignored, not an error (signed-note rule).
    _, only_log = c2sp_open(note, dict([c2sp_key(name, 0x01, raw[1:])]))
    assert only_log == [ORIGIN]
