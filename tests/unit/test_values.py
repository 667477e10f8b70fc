"""Value objects: quantities with units, GS1 check digits, signatures, time stamps."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from ledger import commands, gs1
from ledger.domain.base import stamp
from ledger.errors import InvalidIdentifier, InvalidInput, SignatureRequired, TimeOrderViolation, UnitMismatch
from ledger.values import Meaning, Quantity, now, require_signature, sign
from tests.builders import actors

# --- quantities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "unit", "expected"),
    [
        (("500", "g"), "kg", Decimal("0.5")),
        (("1500", "g"), "kg", Decimal("1.5")),
        (("2", "kg"), "mg", Decimal("2000000")),
        (("0.25", "g"), "mg", Decimal("250")),
        (("750", "mg"), "g", Decimal("0.75")),
        (("1", "mg"), "kg", Decimal("0.000001")),
    ],
)
def test_mass_converts_exactly_between_mg_g_and_kg(
    given: tuple[str, str], unit: str, expected: Decimal
) -> None:
    converted = Quantity.of(*given).to(unit)
    assert converted.unit == unit
    assert converted.amount == expected
    assert isinstance(converted.amount, Decimal)


def test_same_mass_in_different_units_has_the_same_base() -> None:
    assert Quantity.of("2", "kg").base == Quantity.of("2000", "g").base == Decimal(2_000_000)


def test_counts_never_convert_to_mass() -> None:
    with pytest.raises(UnitMismatch):
        Quantity.of(10, "unit").to("g")
    with pytest.raises(UnitMismatch):
        Quantity.of("10", "g").to("unit")
    assert not Quantity.of(10, "unit").same_kind(Quantity.of(10, "g"))
    assert Quantity.of(10, "mg").same_kind(Quantity.of(1, "kg"))


@pytest.mark.parametrize("unit", ["lb", "tablets", "KG", "", "ml"])
def test_unknown_unit_is_refused(unit: str) -> None:
    with pytest.raises(InvalidInput, match="unknown unit"):
        Quantity.of("1", unit)


@pytest.mark.parametrize("amount", ["-1", "-0.001", "NaN", "Infinity", "abc", None])
def test_negative_or_non_numeric_quantity_is_refused(amount: object) -> None:
    with pytest.raises(InvalidInput):
        Quantity.of(amount, "g")


def test_fractional_count_is_refused() -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        Quantity.of("2.5", "unit")


def test_implausibly_large_lot_is_refused() -> None:
    with pytest.raises(InvalidInput, match="implausibly large"):
        Quantity.of("10001", "kg")


def test_float_is_read_through_its_shortest_repr_not_its_binary_value() -> None:
    assert Quantity.of(0.1, "g").amount == Decimal("0.1")


def test_quantity_round_trips_through_its_stored_form() -> None:
    original = Quantity.of("1.250", "kg")
    assert original.as_dict() == {"amount": "1.250", "unit": "kg"}
    assert Quantity.from_dict(original.as_dict()) == original


def test_converted_quantity_is_written_in_plain_digits() -> None:
    assert Quantity.of("2", "kg").to("g").as_dict() == {"amount": "2000", "unit": "g"}
    assert Quantity.of("0.1", "g").to("mg").as_dict() == {"amount": "100", "unit": "mg"}


# --- GS1 identifiers -------------------------------------------------------------------------------


def test_check_digit_matches_published_examples() -> None:
    # GS1's own calculator example, an ISBN-13 (EAN-13) and a UPC-A from their standards.
    assert gs1.with_check_digit("629104150021") == "6291041500213"
    assert gs1.with_check_digit("978030640615") == "9780306406157"
    assert gs1.with_check_digit("03600029145") == "036000291452"
    assert gs1.gtin("6291041500213") == "06291041500213"  # GTIN-13 padded to GTIN-14


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (gs1.gtin, "06291041500214"),
        (gs1.gln, "4000000000014"),
        (gs1.sscc, "340000000000000002"),
    ],
)
def test_wrong_check_digit_is_refused(check: object, value: str) -> None:
    with pytest.raises(InvalidIdentifier, match="wrong check digit"):
        check(value)  # type: ignore[operator]


@pytest.mark.parametrize("value", ["123", "040000000001A", "", "04000000000105 "])
def test_malformed_gtin_is_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        gs1.gtin(value)


@pytest.mark.parametrize("value", ["LOT 1", "", "A" * 21, "LÖT-1", "lot;drop"])
def test_lot_numbers_outside_gs1_characters_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        gs1.gs1_text(value, "lot number", "lot_number")


# --- signatures and time -----------------------------------------------------------------------------


def test_signature_with_another_meaning_is_not_a_signature_for_this_step() -> None:
    with pytest.raises(SignatureRequired) as info:
        require_signature(sign(actors.qa, Meaning.REJECTED), Meaning.RELEASED, "release a lot")
    assert info.value.details == {"action": "release a lot", "meaning": "released"}
    with pytest.raises(SignatureRequired):
        require_signature(None, Meaning.RELEASED, "release a lot")


def test_stamp_records_who_and_when_in_utc() -> None:
    at = datetime.fromisoformat("2026-01-02T03:04:05.000006+02:00")
    audit = stamp(actors.qa, at, "because")
    assert audit == {
        "principal": "qa1",
        "role": "qa",
        "name": "Quinn QA",
        "occurred_at": "2026-01-02T01:04:05.000006+00:00",
        "canonical": 2,
        "reason": "because",
    }


def test_stamp_refuses_a_time_in_the_future() -> None:
    with pytest.raises(TimeOrderViolation, match="in the future"):
        stamp(actors.qa, now() + timedelta(hours=1))


def test_stamp_refuses_a_time_without_timezone() -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        stamp(actors.qa, datetime(2026, 1, 1, 12, 0))


# --- text a store cannot hold ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: commands.HoldLot(lot_id=uuid4(), reason="bad\x00reason"), "reason"),
        (
            lambda: commands.RegisterTrial(
                code="T-1",
                title="Lotlinib\x00",
                sponsor="Acme",
                countries=["DE"],
                do_not_ship_days=1,
                do_not_dispense_days=1,
            ),
            "title",
        ),
        (
            lambda: commands.RegisterLocation(
                gln="4000000000017", kind="depot", name="D", country="DE", address="Main St\x07"
            ),
            "address",
        ),
        (lambda: commands.Dispense(kit_id=uuid4(), site_id=uuid4(), subject="S-\ud800"), "subject"),
        (
            lambda: commands.ReceiveLot(
                gtin="04000000000106",
                lot_number="L\n1",
                kind="api",
                material="API",
                quantity={"amount": "1", "unit": "kg"},
                location_id=uuid4(),
                manufactured_on="2026-01-01",
                expires_on="2027-01-01",
            ),
            "lot_number",
        ),
    ],
)
def test_a_command_refuses_text_a_store_cannot_hold_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        build()
    assert info.value.details["field"] == field


def test_a_reason_may_span_lines() -> None:
    assert commands.HoldLot(lot_id=uuid4(), reason="line one\n\tline two").reason == "line one\n\tline two"
