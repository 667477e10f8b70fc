"""`lotline-verify` reads an export's writer signatures: lines as the export writes them through a fast
path, any other JSON form through the JSON parser, to the same signatures; a malformed line is named."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from lotline_verify.notes import Invalid
from lotline_verify.writer import WriterSignature, read_signatures

SIGNATURE = bytes(range(64))
CHAIN_HASH = bytes(range(100, 132))


def _line(seq: int, changes: dict[str, object] | None = None) -> dict[str, object]:
    row: dict[str, object] = {"seq": seq, "chain_hash": CHAIN_HASH.hex(), "kind": "commit",
                              "key_id": "c2415e32", "signature": base64.b64encode(SIGNATURE).decode()}
    row.update(changes or {})
    return row


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_lines_as_exported_and_in_any_other_json_form_read_alike(tmp_path: Path) -> None:
    exported = json.dumps(_line(1), separators=(",", ":"))  # the export's own form
    spaced = json.dumps(_line(2))
    reordered = json.dumps(dict(reversed(list(_line(3).items()))), separators=(",", ":"))
    escaped = json.dumps(_line(4, {"kind": "adopted"}), separators=(",", ":"))
    escaped = escaped.replace("adopted", "\\u0061dopted")
    lines = [exported, spaced, reordered, escaped]
    found = read_signatures(_write(tmp_path / "writer_signatures.jsonl", lines))

    assert found == {
        1: WriterSignature(1, CHAIN_HASH, "commit", "c2415e32", SIGNATURE),
        2: WriterSignature(2, CHAIN_HASH, "commit", "c2415e32", SIGNATURE),
        3: WriterSignature(3, CHAIN_HASH, "commit", "c2415e32", SIGNATURE),
        4: WriterSignature(4, CHAIN_HASH, "adopted", "c2415e32", SIGNATURE),
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"signature": "!" + base64.b64encode(SIGNATURE).decode()[1:]}, "not valid base64"),
        ({"signature": base64.b64encode(SIGNATURE).decode().rstrip("=")}, "not valid base64"),
        ({"chain_hash": "zz" + CHAIN_HASH.hex()[2:]}, "non-hexadecimal"),
        ({"seq": "one"}, "invalid literal"),
    ],
)
def test_a_malformed_line_is_refused_by_its_number(
    tmp_path: Path, change: dict[str, object], why: str
) -> None:
    good = json.dumps(_line(1), separators=(",", ":"))
    bad = json.dumps(_line(2, change), separators=(",", ":"))
    path = _write(tmp_path / "writer_signatures.jsonl", [good, bad])

    with pytest.raises(Invalid, match=rf"writer_signatures.jsonl line 2 is not a writer signature: .*{why}"):
        read_signatures(path)


def test_an_export_without_the_file_has_no_signatures(tmp_path: Path) -> None:
    assert read_signatures(tmp_path / "writer_signatures.jsonl") == {}
