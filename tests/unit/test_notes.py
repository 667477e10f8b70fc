"""Signed notes, checkpoints and cosignatures: the C2SP examples verify; malformed or forged ones do not."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import notes
from lotline_verify import notes as offline

# The example of c2sp.org/signed-note: a vkey and a note it verifies.
EXAMPLE_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
EXAMPLE_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRK"
    "uwHjG1Yu72IneyaQM=\n"
)


def test_the_c2sp_example_note_verifies_with_both_implementations() -> None:
    key = notes.parse_vkey(EXAMPLE_VKEY)
    assert notes.verify_log_signature(notes.parse_note(EXAMPLE_NOTE), [key]) == key
    other = offline.parse_vkey(EXAMPLE_VKEY)
    assert offline.verify_signed(offline.parse_note(EXAMPLE_NOTE), [other]) == other


def test_the_c2sp_example_fails_once_its_text_changes() -> None:
    forged = EXAMPLE_NOTE.replace("an example", "a forged")
    with pytest.raises(notes.NoteError, match="does not verify"):
        notes.verify_log_signature(notes.parse_note(forged), [notes.parse_vkey(EXAMPLE_VKEY)])
    with pytest.raises(offline.Invalid, match="does not verify"):
        offline.verify_signed(offline.parse_note(forged), [offline.parse_vkey(EXAMPLE_VKEY)])


def test_key_ids_follow_the_spec() -> None:
    private = Ed25519PrivateKey.generate()
    pub = notes.public_bytes(private)
    expected = hashlib.sha256(b"log.example/a\n\x01" + pub).digest()[:4]
    assert notes.key_id("log.example/a", notes.ED25519, pub) == expected
    assert notes.key_id("log.example/a", notes.COSIGNATURE_V1, pub) == hashlib.sha256(
        b"log.example/a\n\x04" + pub).digest()[:4]


def test_a_signed_checkpoint_round_trips() -> None:
    private = Ed25519PrivateKey.generate()
    head = notes.Checkpoint("log.example/a", 42, bytes(range(32)))
    text = notes.sign_checkpoint(head, "log.example/a", private).render()
    lines = text.split("\n")
    assert lines[:4] == ["log.example/a", "42", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", ""]
    assert lines[4].startswith("\u2014 log.example/a ") and lines[5] == ""
    note = notes.parse_note(text)
    assert notes.parse_checkpoint(note.text) == head
    key = notes.VerifierKey("log.example/a", notes.ED25519, notes.public_bytes(private))
    assert notes.verify_log_signature(note, [key]) == key
    assert notes.parse_vkey(key.encode()) == key


def test_signatures_by_unknown_keys_are_ignored_but_one_known_is_required() -> None:
    log, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    head = notes.Checkpoint("log.example/a", 1, bytes(32))
    note = notes.sign_checkpoint(head, "log.example/a", log)
    extra = notes.sign_checkpoint(head, "other.example/b", stranger).signatures
    both = note.with_signatures(extra)
    known = notes.VerifierKey("log.example/a", notes.ED25519, notes.public_bytes(log))
    assert notes.verify_log_signature(both, [known]) == known
    unknown = notes.VerifierKey("log.example/a", notes.ED25519, notes.public_bytes(stranger))
    with pytest.raises(notes.NoteError, match="no signature by a known log key"):
        notes.verify_log_signature(note, [unknown])


def test_cosignatures_sign_the_time_and_the_body() -> None:
    witness = Ed25519PrivateKey.generate()
    body = notes.Checkpoint("log.example/a", 7, bytes(32)).body()
    sig = notes.cosign(body, "w.example/1", witness, 1_700_000_000)
    key = notes.VerifierKey("w.example/1", notes.COSIGNATURE_V1, notes.public_bytes(witness))
    assert notes.verify_cosignature(body, sig, key) == 1_700_000_000
    assert sig.blob[:8] == (1_700_000_000).to_bytes(8, "big")
    witness.public_key().verify(sig.blob[8:], b"cosignature/v1\ntime 1700000000\n" + body.encode())
    other_body = notes.Checkpoint("log.example/a", 8, bytes(32)).body()
    with pytest.raises(notes.NoteError):
        notes.verify_cosignature(other_body, sig, key)
    later = notes.Signature(sig.name, sig.key_id, (1_700_000_001).to_bytes(8, "big") + sig.blob[8:])
    with pytest.raises(notes.NoteError):
        notes.verify_cosignature(body, later, key)


@pytest.mark.parametrize("text, reason", [
    ("log\n1\nAAAA\n", "blank line"),
    ("log\n1\nroot\n\n", "at least one signature"),
    ("log\n1\nroot\n\n- name c2ln\n", "does not start"),
    ("log\n1\nroot\n\n\u2014 na me c2lnbmF0dXJl\n", "name signature"),
    ("log\n1\nroot\n\n\u2014 name !!!\n", "base64"),
    ("log\n1\nroot\n\n\u2014 name c2ln\n", "too short"),
    ("log\r\n1\nroot\n\n\u2014 name c2lnbmF0dXJl\n", "control"),
    ("log\n1\nroot\n\n\u2014 name c2lnbmF0dXJl", "ends with a newline"),
])
def test_malformed_notes_are_refused(text: str, reason: str) -> None:
    with pytest.raises(notes.NoteError, match=reason):
        notes.parse_note(text)
    with pytest.raises(offline.Invalid):
        offline.parse_note(text)


@pytest.mark.parametrize("body", [
    "log\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    "log\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    "log\n1\nAAAA\n",
    "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension\n",
])
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(notes.NoteError):
        notes.parse_checkpoint(body)
    with pytest.raises(offline.Invalid):
        offline.parse_head(body)


def test_private_key_files_round_trip_and_check_their_id() -> None:
    private = Ed25519PrivateKey.generate()
    text = notes.signer_text("log.example/a", notes.ED25519, private)
    vkey, again = notes.parse_signer(text)
    assert notes.public_bytes(again) == notes.public_bytes(private) == vkey.public_key
    parts = text.split("+")
    parts[3] = "00000000"
    with pytest.raises(notes.NoteError, match="does not match"):
        notes.parse_signer("+".join(parts))
