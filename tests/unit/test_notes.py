"""Signed notes, checkpoints and cosignatures: the C2SP examples verify; malformed or forged ones do not."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import notes
from lotline_verify import notes as offline
from lotline_verify.export import trusted_note

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


# --- strict parsing, as Go's golang.org/x/mod/sumdb/{note,tlog} and stricter where a note has two texts ----
#
# Go's verdicts below were taken by running x/mod v0.7.0's tlog.ParseTree and note.Open on the same lines:
# "refuses" means Go refuses them too; "accepts" means Lotline is stricter than Go on purpose.

ROOT = base64.b64encode(bytes(range(32))).decode()  # AAECAw...Hh8=
ROOT_31 = base64.b64encode(bytes(31)).decode()
ROOT_SLASHES = base64.b64encode(b"\xff" * 32).decode()  # //////...8=
# the last character before "=" carries 4 data bits and 2 padding bits: "8" (111100) -> "9" (111101)
ROOT_PAD_BITS = ROOT[:-2] + "9="


def body(origin: str = "log.example/a", size: str = "5", root: str = ROOT, extra: str = "") -> str:
    return f"{origin}\n{size}\n{root}\n{extra}"


def test_the_padding_bits_variant_is_the_same_root_written_otherwise() -> None:
    assert base64.b64decode(ROOT_PAD_BITS, validate=True) == base64.b64decode(ROOT)
    assert notes.parse_checkpoint(body()).root == offline.parse_head(body()).root == bytes(range(32))


@pytest.mark.parametrize("text, line, why", [
    # tree size: Go's ParseTree requires strconv.FormatInt(ParseInt(s)) == s and n >= 0 (all refused by Go)
    (body(size="05"), 2, "without sign or leading zeros"),
    (body(size="+5"), 2, "without sign or leading zeros"),
    (body(size="-5"), 2, "without sign or leading zeros"),
    (body(size="-0"), 2, "without sign or leading zeros"),
    (body(size=" 5"), 2, "without sign or leading zeros"),
    (body(size="5 "), 2, "without sign or leading zeros"),
    (body(size=""), 2, "without sign or leading zeros"),
    (body(size="1_000"), 2, "without sign or leading zeros"),
    (body(size="\u0665"), 2, "without sign or leading zeros"),            # ARABIC-INDIC DIGIT FIVE
    (body(size="9223372036854775808"), 2, r"larger than 2\^63 - 1"),    # int64 overflow in Go
    (body(size="9" * 5000), 2, r"larger than 2\^63 - 1"),
    # root hash: standard base64 with padding (refused by Go's StdEncoding)
    (body(root=ROOT[:-1]), 3, "not base64"),                             # padding missing
    (body(root=ROOT + "="), 3, "not base64"),                            # padding extra
    (body(root=ROOT_SLASHES.replace("/", "_")), 3, "not base64"),       # URL-safe alphabet
    (body(root=" " + ROOT), 3, "not base64"),
    (body(root=ROOT[:20] + " " + ROOT[20:]), 3, "not base64"),
    (body(root=ROOT_31), 3, "31"),                                       # not 32 bytes
    (body(root=""), 3, "0"),
    # stricter than Go: non-zero padding bits (Go's StdEncoding is not Strict() and accepts them)
    (body(root=ROOT_PAD_BITS), 3, f"not canonical base64.*{ROOT}"),
    # origin: c2sp.org/tlog-checkpoint says it MUST be non-empty (torchwood does not check)
    (body(origin=""), 1, "empty"),
    # lines: exactly three (Go ignores extension lines; Lotline never writes them)
    (body(extra="extension\n"), 4, "extension lines"),
    (body(extra="\n"), 4, "extension lines"),
    (body()[:-1], 3, "newline"),
])
def test_malformed_checkpoint_lines_are_refused_naming_the_line(text: str, line: int, why: str) -> None:
    with pytest.raises(notes.NoteError, match=f"line {line}.*{why}") as server:
        notes.parse_checkpoint(text)
    assert server.value.details["line"] == line
    with pytest.raises(offline.Invalid, match=f"line {line}.*{why}"):
        offline.parse_head(text)


def test_a_checkpoint_of_fewer_than_three_lines_is_refused() -> None:
    with pytest.raises(notes.NoteError, match="three lines"):
        notes.parse_checkpoint("log.example/a\n5\n")
    with pytest.raises(offline.Invalid, match="three"):
        offline.parse_head("log.example/a\n5\n")


@pytest.mark.parametrize("size", ["0", "5", "9223372036854775807"])
def test_the_sizes_go_accepts_are_accepted(size: str) -> None:
    assert notes.parse_checkpoint(body(size=size)).size == int(size)
    assert offline.parse_head(body(size=size)).size == int(size)


SIG = EXAMPLE_NOTE.split(" ")[-1].rstrip("\n")  # the C2SP example's signature, canonical base64
SIG_PAD_BITS = SIG[:-2] + chr(ord(SIG[-2]) + 1) + "="  # same bytes, one padding bit set
TEXT = "This is an example message.\n"


def signed(*lines: str) -> str:
    return TEXT + "\n" + "".join(line + "\n" for line in lines)


@pytest.mark.parametrize("text, line, why", [
    # refused by Go's note.Open too
    (EXAMPLE_NOTE + "\n", 4, "blank line"),                                  # a saved file's extra newline
    (EXAMPLE_NOTE.replace("message.\n", "message.\r\n"), 1, "control"),      # Windows line endings
    (EXAMPLE_NOTE.replace("example message", "example\tmessage"), 1, "control"),
    (EXAMPLE_NOTE[:-1], 3, "newline"),
    (signed("- example.com/foo " + SIG), 3, "does not start"),
    (signed("\u2014example.com/foo " + SIG), 3, "does not start"),
    (signed("\u2014 example.com/foo " + SIG, "\u2014 other.example/x  " + SIG), 4, "signature|one space"),
    (signed("\u2014 example.com/foo " + SIG + " more"), 3, "name signature|one space"),
    (signed("\u2014  " + SIG), 3, "name"),                                   # empty key name
    (signed("\u2014 exa+mple " + SIG), 3, "name"),
    (signed("\u2014 exa\u00a0mple " + SIG), 3, "name"),                      # a Unicode space (NBSP)
    (signed("\u2014 example.com/foo !!!!"), 3, "not base64"),
    (signed("\u2014 example.com/foo " + SIG[:-1]), 3, "not base64"),         # padding missing
    (signed("\u2014 example.com/foo c2ln"), 3, "too short"),
    # stricter than Go: the same signature bytes with a padding bit set (Go accepts, even for unknown keys)
    (signed("\u2014 example.com/foo " + SIG_PAD_BITS), 3, "not canonical base64"),
    (signed("\u2014 example.com/foo " + SIG, "\u2014 other.example/x " + SIG_PAD_BITS), 4, "not canonical"),
])
def test_malformed_notes_are_refused_naming_the_line(text: str, line: int, why: str) -> None:
    with pytest.raises(notes.NoteError, match=f"line {line}.*({why})"):
        notes.parse_note(text)
    with pytest.raises(offline.Invalid, match=f"line {line}.*({why})"):
        offline.parse_note(text)


def test_a_note_without_a_blank_line_is_refused() -> None:
    with pytest.raises(notes.NoteError, match="blank line"):
        notes.parse_note("log.example/a\n5\n" + ROOT + "\n")
    with pytest.raises(offline.Invalid, match="blank line"):
        offline.parse_note("log.example/a\n5\n" + ROOT + "\n")


def test_too_many_signature_lines_are_refused() -> None:
    other = "\u2014 other.example/x " + SIG
    assert len(offline.parse_note(signed(*[other] * 100)).signatures) == 100   # Go's limit
    with pytest.raises(offline.Invalid, match="101 signature lines"):
        offline.parse_note(signed(*[other] * 101))
    with pytest.raises(notes.NoteError, match="at most 64"):
        notes.parse_note(signed(*[other] * 65))


def test_the_padding_bits_variant_holds_the_same_signature_bytes() -> None:
    assert base64.b64decode(SIG_PAD_BITS, validate=True) == base64.b64decode(SIG)
    note = signed("\u2014 example.com/foo " + SIG, "\u2014 other.example/x " + SIG)
    assert len(notes.parse_note(note).signatures) == len(offline.parse_note(note).signatures) == 2


# --- a trusted checkpoint as saved in a file (lotline-verify --trusted) -------------------------------------


def test_a_trusted_checkpoint_file_may_end_with_one_extra_newline() -> None:
    assert trusted_note(EXAMPLE_NOTE + "\n") == EXAMPLE_NOTE                  # print(note), jq -r .note
    assert trusted_note(EXAMPLE_NOTE) == EXAMPLE_NOTE
    assert offline.parse_note(trusted_note(EXAMPLE_NOTE + "\n")).text == TEXT
    with pytest.raises(offline.Invalid, match="line 5 is blank"):               # two: not a saved note
        offline.parse_note(trusted_note(EXAMPLE_NOTE + "\n\n"))


@pytest.mark.parametrize("answer, field", [
    ({"size": 5, "origin": "example.com/foo", "note": EXAMPLE_NOTE, "cosignatures": []}, "note"),
    ({"size": 5, "head_hash": "00", "checkpoint": EXAMPLE_NOTE}, "checkpoint"),       # GET /inspector/head
    ({"checkpoints": [{"note": EXAMPLE_NOTE}]}, None),
])
def test_the_apis_json_is_refused_saying_what_to_pass(answer: dict[str, object], field: str | None) -> None:
    wanted = f"the text of its `{field}` field" if field else "the checkpoint's signed note itself"
    with pytest.raises(offline.Invalid, match="this is JSON") as refused:
        trusted_note(json.dumps(answer, indent=2) + "\n")
    assert wanted in str(refused.value)
    assert "/inspector/checkpoints/latest/note" in str(refused.value)
