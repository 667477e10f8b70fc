"""Tampering behind the ledger's back, on both stores: the chain names the first event that was touched.

Each test first does what an attacker with database access would: switch off the append-only
triggers, then edit, delete, insert or reorder rows. `verify_chain` must fail at the right
position, and `lotline verify` must exit 1 with that failure printed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger import verify as ledger_verify
from ledger.application import Ledger
from ledger.chain import encode_event, link_hash
from ledger.config import Settings
from ledger.domain import Lot
from ledger.export import write_export
from ledger.store import open_chain
from ledger.transparency import Transparency
from ledger.verify import Helpers, Report, verify_chain
from ledger.writer import UnsignedHead, WriterKey
from lotline_verify import parse_vkey, verify_export
from lotline_verify.__main__ import main as lotline_verify
from scripts import cli
from scripts.db import upgrade_store
from tests.builders import API_GTIN, Program
from tests.integration.rawdb import CHAIN, REFUSED, RawStore


@dataclass(frozen=True, slots=True)
class Expected:
    """Where verification must fail and a phrase its reason must contain."""

    seq: int | None
    stream: str
    version: int | None
    reason: str


Tamper = Callable[[Program, RawStore], Expected]


@pytest.fixture
def program(ledger: Ledger) -> Program:
    return Program.released(ledger)


@pytest.fixture
def verify_cli(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[], int]:
    """`lotline verify --database-url URL`, through the CLI's main(), alone and in three processes
    (each a part a few events long): the same output either way, left for capsys; its exit status."""
    monkeypatch.setattr(ledger_verify, "PART_EVENTS", 1)

    def run() -> int:
        runs = []
        for jobs in ("1", "3"):
            code = cli.main(["verify", "--database-url", database_url, "--jobs", jobs])
            runs.append((code, capsys.readouterr().out))
        assert runs[0] == runs[1], "the parts walked side by side report what one walk reports"
        print(runs[0][1], end="")
        return runs[0][0]

    return run


def in_parts(database_url: str, processes: int) -> Helpers:
    """Parts of a few events each, walked by `processes` processes."""
    return Helpers(processes, functools.partial(open_chain, database_url), min_part=1)


def edit_state(raw: RawStore, stream: Any, version: int, old: bytes, new: bytes) -> None:
    topic, state = raw.event(stream, version)
    assert state.count(old) == 1, f"{old!r} not found once in {state!r}"
    raw.set_event(stream, version, topic, state.replace(old, new))


def mismatch_at(raw: RawStore, stream: Any, version: int) -> Expected:
    return Expected(raw.seq_of(stream, version), str(stream), version, "hash mismatch")


# --- the tampers -----------------------------------------------------------------------------------------


def change_one_payload_byte(p: Program, raw: RawStore) -> Expected:
    # API-1 was received as 2 kg; make it 3 kg.
    edit_state(raw, p.api, 1, b'"amount":"2"', b'"amount":"3"')
    return mismatch_at(raw, p.api, 1)


def break_the_json(p: Program, raw: RawStore) -> Expected:
    edit_state(raw, p.api, 1, b'"lot_number":"API-1"', b'"lot_number":"API-1')
    return Expected(raw.seq_of(p.api, 1), str(p.api), 1, "stored event is corrupt")


def put_a_float_in_the_state(p: Program, raw: RawStore) -> Expected:
    edit_state(raw, p.api, 1, b'"lot_number":"API-1"', b'"lot_number":"API-1","extra":2.5')
    return Expected(raw.seq_of(p.api, 1), str(p.api), 1, "floats are not allowed in events")


def put_nan_in_the_state(p: Program, raw: RawStore) -> Expected:
    edit_state(raw, p.api, 1, b'"lot_number":"API-1"', b'"lot_number":"API-1","extra":NaN')
    return Expected(raw.seq_of(p.api, 1), str(p.api), 1, "floats are not allowed in events")


def change_the_record_time(p: Program, raw: RawStore) -> Expected:
    _topic, state = raw.event(p.api, 2)
    stamp = json.loads(state)["timestamp"]["_data_"].encode()
    earlier = stamp[:-10] + (b"0" if stamp[-10:-9] != b"0" else b"1") + stamp[-9:]
    edit_state(raw, p.api, 2, stamp, earlier)
    return mismatch_at(raw, p.api, 2)


def change_the_event_time(p: Program, raw: RawStore) -> Expected:
    _topic, state = raw.event(p.api, 2)
    when = json.loads(state)["audit"]["occurred_at"].encode()
    backdated = when.replace(when[:4], str(int(when[:4]) - 1).encode(), 1)
    edit_state(raw, p.api, 2, b'"occurred_at":"' + when, b'"occurred_at":"' + backdated)
    return mismatch_at(raw, p.api, 2)


def change_the_actor(p: Program, raw: RawStore) -> Expected:
    # The release of API-1 was signed by qa1; claim qa2 did it.
    edit_state(raw, p.api, 2, b'"principal":"qa1"', b'"principal":"qa2"')
    return mismatch_at(raw, p.api, 2)


def delete_an_event(p: Program, raw: RawStore) -> Expected:
    kit = p.kit("K00003")
    raw.delete_event(kit, 1)
    return Expected(raw.seq_of(kit, 1), str(kit), 1, "no longer holds it")


def delete_an_event_and_its_link(p: Program, raw: RawStore) -> Expected:
    kit = p.kit("K00003")
    seq = raw.seq_of(kit, 1)
    after = raw.chain_row(seq + 1)
    raw.delete_event(kit, 1)
    raw.execute(f"DELETE FROM {CHAIN} WHERE seq = ?", (seq,))
    return Expected(seq, after[0], None, f"chain entry {seq} is missing")


def insert_a_forged_event(p: Program, raw: RawStore) -> Expected:
    # A third consumption of API-1, as if a batch had taken 1 kg: valid-looking, never chained.
    topic, state = raw.event(p.api, 3)
    forged = state.replace(b'"amount":"0.5"', b'"amount":"1"')
    raw.insert_event(p.api, 4, topic, forged)
    return Expected(None, str(p.api), 4, "inserted behind the ledger")


def insert_a_forged_event_before_the_first_row(p: Program, raw: RawStore) -> Expected:
    # The audit reads the events in the store's own order (SQLite's row number, PostgreSQL's
    # notification_id) from the first chain position on: a row numbered below every other must still
    # be seen.
    topic, state = raw.event(p.api, 3)
    number = "notification_id" if raw.postgres else "rowid"
    raw.execute(
        f"INSERT INTO {raw.events} ({number}, originator_id, originator_version, topic, state) "
        "VALUES (-1, ?, 4, ?, ?)",
        (raw.key(p.api), topic, state),
    )
    return Expected(None, str(p.api), 4, "inserted behind the ledger")


def append_a_forged_event_with_a_link(p: Program, raw: RawStore) -> Expected:
    topic, state = raw.event(p.api, 3)
    size, head = p.ledger.chain.head()
    link = f"INSERT INTO {CHAIN} (seq, originator_id, originator_version, chain_hash) VALUES (?, ?, ?, ?)"
    raw.insert_event(p.api, 4, topic, state)
    raw.execute(link, (size + 1, raw.key(p.api), 4, head))
    return Expected(size + 1, str(p.api), 4, "hash mismatch")


def append_a_correctly_chained_event(p: Program, raw: RawStore) -> Expected:
    # A writer with database access but not the writer key: the link is right, the signature missing.
    topic, state = raw.event(p.api, 3)
    size, head = p.ledger.chain.head()
    link = f"INSERT INTO {CHAIN} (seq, originator_id, originator_version, chain_hash) VALUES (?, ?, ?, ?)"
    raw.insert_event(p.api, 4, topic, state)
    chain_hash = link_hash(head, encode_event(size + 1, p.api, 4, topic, state))
    raw.execute(link, (size + 1, raw.key(p.api), 4, chain_hash))
    return Expected(size + 1, str(p.api), 4, "appended without the writer key")


def swap_two_events(p: Program, raw: RawStore) -> Expected:
    # The release of the excipient and of the API swap their content (state and topic).
    first, second = (p.api, 2), (p.excipient, 2)
    a, b = raw.event(*first), raw.event(*second)
    raw.set_event(*first, *b)
    raw.set_event(*second, *a)
    return mismatch_at(raw, *first)


def swap_two_chain_positions(p: Program, raw: RawStore) -> Expected:
    low, high = sorted([raw.seq_of(p.api, 2), raw.seq_of(p.excipient, 2)])
    row_low, row_high = raw.chain_row(low), raw.chain_row(high)
    move = f"UPDATE {CHAIN} SET originator_id = ?, originator_version = ? WHERE seq = ?"
    raw.execute(move, (raw.key(row_low[0]), -1, low))  # out of the way of the unique key
    raw.execute(move, (raw.key(row_low[0]), row_low[1], high))
    raw.execute(move, (raw.key(row_high[0]), row_high[1], low))
    return Expected(low, row_high[0], row_high[1], "hash mismatch")


TAMPERS: dict[str, Tamper] = {
    "one payload byte": change_one_payload_byte,
    "broken JSON": break_the_json,
    "a float": put_a_float_in_the_state,
    "NaN": put_nan_in_the_state,
    "record time": change_the_record_time,
    "event time": change_the_event_time,
    "actor": change_the_actor,
    "deleted event": delete_an_event,
    "deleted event and link": delete_an_event_and_its_link,
    "inserted event": insert_a_forged_event,
    "inserted event, lowest row": insert_a_forged_event_before_the_first_row,
    "appended event and link": append_a_forged_event_with_a_link,
    "appended event, correct link, no signature": append_a_correctly_chained_event,
    "swapped events": swap_two_events,
    "swapped chain positions": swap_two_chain_positions,
}


def assert_fails_at(report: Report, expected: Expected) -> None:
    assert not report.ok
    failure = report.failure
    assert failure is not None
    assert (failure.seq, failure.stream, failure.version) == (expected.seq, expected.stream, expected.version)
    assert expected.reason in failure.reason
    if expected.seq is not None:
        assert report.count == expected.seq - 1, "every event before the tampered one verified"


# --- tests ------------------------------------------------------------------------------------------------


def test_an_untouched_store_verifies(
    program: Program, verify_cli: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    report = verify_chain(program.ledger.chain)
    size, head = program.ledger.chain.head()
    assert report.ok and report.failure is None
    assert (report.count, report.head_hash) == (size, head.hex())
    assert verify_cli() == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"OK: {size} events, head {head.hex()}"
    assert out[1] == "  0 checkpoints and 0 cosignatures verified"


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_tampering_is_found_at_the_event_that_was_touched(
    database_url: str,
    program: Program,
    raw: RawStore,
    open_ledger: Callable[[], Ledger],
    verify_cli: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
) -> None:
    assert verify_chain(program.ledger.chain).ok
    raw.disable_triggers()
    expected = tamper(program, raw)

    # An inspector's fresh ledger on the same database finds it, alone or with helpers ...
    assert_fails_at(verify_chain(open_ledger().chain), expected)
    for processes in (2, 3, 5):
        report = verify_chain(open_ledger().chain, helpers=in_parts(database_url, processes))
        assert_fails_at(report, expected)
    # ... and so does the command line, with exit status 1 and the failure printed.
    assert verify_cli() == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED at ")
    assert f"stream {expected.stream}" in out
    assert expected.reason in out
    if expected.seq is not None:
        assert f"seq {expected.seq} " in out


def test_changing_the_type_of_a_stored_value_is_found(
    program: Program, raw: RawStore, open_ledger: Callable[[], Ledger]
) -> None:
    raw.disable_triggers()
    plant = program.plant.hex.encode()
    edit_state(raw, program.api, 1, b'{"_type_":"uuid_hex","_data_":"' + plant + b'"}', b'"' + plant + b'"')
    # Replay now gives the lot a location that is a str, not the plant's UUID: the record changed.
    assert open_ledger().get(Lot, program.api).location_id != program.plant
    assert not verify_chain(open_ledger().chain).ok


def test_an_edited_or_dropped_late_entry_reason_is_found(
    ledger: Ledger, raw: RawStore, open_ledger: Callable[[], Ledger]
) -> None:
    """Why a step was recorded late is part of its audit trail (21 CFR 11.10(e)): hashed with it."""
    program = Program.released(ledger, start=datetime(2026, 1, 5, tzinfo=UTC))  # every step a late entry
    _topic, state = raw.event(program.api, 2)
    assert json.loads(state)["audit"]["late_entry"] is True
    assert verify_chain(open_ledger().chain).ok
    raw.disable_triggers()
    reason = json.loads(state)["audit"]["late_reason"].encode()
    edit_state(raw, program.api, 2, reason, b"entered on time, see the batch record")
    assert_fails_at(verify_chain(open_ledger().chain), mismatch_at(raw, program.api, 2))
    edit_state(raw, program.api, 2, b"entered on time, see the batch record", reason)  # undone: it holds
    assert verify_chain(open_ledger().chain).ok
    edit_state(raw, program.api, 2, b'"late_entry":true,', b"")
    assert_fails_at(verify_chain(open_ledger().chain), mismatch_at(raw, program.api, 2))


def test_event_rows_out_of_chain_order_are_read_by_their_key(
    program: Program, raw: RawStore, open_ledger: Callable[[], Ledger]
) -> None:
    # SQLite's audit pairs chain position n with event row n; a store whose rows were renumbered (an
    # old VACUUM may do that) is not tampered with, and is read by (stream, version) from there on.
    if raw.postgres:
        pytest.skip("row numbers are SQLite's")
    raw.disable_triggers()
    raw.execute(f"UPDATE {raw.events} SET rowid = 1000000 WHERE rowid = 3")
    report = verify_chain(open_ledger().chain)
    assert report.ok, report.describe()
    assert report.count == program.ledger.chain.head()[0]


# --- the append-only triggers ----------------------------------------------------------------------------


def test_triggers_are_installed_on_both_tables(ledger: Ledger, raw: RawStore) -> None:
    if raw.postgres:
        expected = {f"{t}_{kind}" for t in raw.tables for kind in ("append_only", "no_truncate")}
    else:
        expected = {f"{t}_no_{op}" for t in raw.tables for op in ("update", "delete")}
    assert expected <= raw.trigger_names()


@pytest.mark.parametrize("events_table", [True, False], ids=["events", "chain"])
def test_triggers_refuse_update_and_delete(program: Program, raw: RawStore, events_table: bool) -> None:
    before = program.ledger.chain.head()
    table = raw.events if events_table else CHAIN
    column = "originator_version" if events_table else "seq"
    statements = [
        f"UPDATE {table} SET originator_version = originator_version + 100",
        f"DELETE FROM {table} WHERE {column} = 1",
        f"DELETE FROM {table}",
    ]
    if raw.postgres:
        statements.append(f"TRUNCATE {table}")
    for statement in statements:
        with pytest.raises(REFUSED, match="append-only"):
            raw.execute(statement)
    assert program.ledger.chain.head() == before
    report = verify_chain(program.ledger.chain)
    assert report.ok and report.count == before[0]


# --- the writer key ---------------------------------------------------------------------------------------


def test_every_write_is_signed_and_the_head_carries_the_newest_signature(program: Program) -> None:
    size, head = program.ledger.chain.head()
    signatures = program.ledger.chain.signatures()
    assert signatures[-1].seq == size and signatures[-1].chain_hash == head
    writer = program.ledger.chain.writer
    assert writer is not None
    assert all(s.valid_for(writer.verifier) for s in signatures)


def test_the_ledger_refuses_to_sign_over_an_event_appended_without_the_writer_key(
    program: Program, raw: RawStore, open_ledger: Callable[[], Ledger]
) -> None:
    expected = append_a_correctly_chained_event(program, raw)
    appended = f"events {expected.seq}..{expected.seq} were appended without the key"
    with pytest.raises(UnsignedHead, match=appended):
        program.receive(gtin=API_GTIN, lot_number="API-9", kind="api", quantity="1 kg", release=False)
    # The refused write left nothing behind: the forged event is still the head, still named.
    assert_fails_at(verify_chain(open_ledger().chain), expected)


def test_a_signature_by_another_key_does_not_count(
    program: Program, open_ledger: Callable[[], Ledger], tmp_path: Any
) -> None:
    other = WriterKey.load_or_create(tmp_path / "other-keys")
    report = verify_chain(open_ledger().chain, writer_key=other.verifier)
    assert not report.ok and report.failure is not None
    assert report.failure.seq == 1 and "does not verify with writer key" in report.failure.reason


# --- the writer key, offline: lotline-verify on an audit export -------------------------------------------


def export_of(ledger: Ledger, database_url: str, out: Path) -> Path:
    log = Transparency.for_reader(ledger.chain, Settings(database_url=database_url))
    write_export(log, out)
    return out


def test_an_export_of_an_untouched_store_verifies_with_the_pinned_writer_key(
    program: Program, database_url: str, tmp_path: Path
) -> None:
    export = export_of(program.ledger, database_url, tmp_path / "export")
    writer = program.ledger.chain.writer
    assert writer is not None
    assert lotline_verify([str(export), "--quiet", "--writer-key", writer.verifier.encode()]) == 0
    other = WriterKey.load_or_create(tmp_path / "other-keys").verifier.encode()
    verdict = verify_export(export, writer_key=parse_vkey(other))
    assert not verdict.ok and "is not the one you pinned" in verdict.reason


def test_an_export_names_the_event_appended_without_the_writer_key(
    program: Program, raw: RawStore, open_ledger: Callable[[], Ledger], database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = append_a_correctly_chained_event(program, raw)
    export = export_of(open_ledger(), database_url, tmp_path / "export")
    writer = program.ledger.chain.writer
    assert writer is not None
    verdict = verify_export(export, writer_key=parse_vkey(writer.verifier.encode()))
    assert not verdict.ok
    assert (verdict.seq, verdict.events) == (expected.seq, expected.seq - 1)
    assert "appended without the writer key" in verdict.reason
    assert lotline_verify([str(export), "--quiet", "--writer-key", writer.verifier.encode()]) == 1
    assert f"at event {expected.seq}" in capsys.readouterr().out


def test_deleting_every_writer_signature_is_not_adopted_by_a_later_upgrade(
    program: Program, raw: RawStore, database_url: str, open_ledger: Callable[[], Ledger]
) -> None:
    raw.disable_triggers()
    raw.execute("DELETE FROM ledger_writer_signatures")
    assert upgrade_store(database_url).before == upgrade_store(database_url).after  # nothing to do
    assert raw.execute("SELECT COUNT(*) FROM ledger_writer_signatures")[0][0] == 0
    report = verify_chain(open_ledger().chain)
    assert not report.ok and report.failure is not None and report.failure.seq == 1
    assert "holds no valid writer signature" in report.failure.reason
    # A ledger process that signed the head itself may go on from it (its own signature vouched for it);
    # a fresh one, e.g. after a restart, finds nothing that vouches for the head and refuses.
    program.ledger = open_ledger()
    with pytest.raises(UnsignedHead, match="no writer signature is stored"):
        program.receive(gtin=API_GTIN, lot_number="API-9", kind="api", quantity="1 kg", release=False)
