"""Implausible data never enters the permanent chain: dates, countries, temperatures, yields and
deviation numbers a QA reviewer would send back, each refused by the ledger naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.commands import (
    ConfirmReceipt,
    DeviationLine,
    Formulate,
    OutputLot,
    RecordDeviation,
    RegisterLocation,
    RegisterTrial,
    ReleaseLot,
    ReportExcursion,
    YieldLimits,
)
from ledger.domain import Lot, ManufacturingBatch, Shipment
from ledger.errors import AlreadyExists, InvalidInput, LotNotUsable
from ledger.gs1 import with_check_digit
from ledger.values import Meaning, Quantity, now, sign
from tests.builders import API_GTIN, DP_GTIN, Program, actors, q, today, writes_nothing


@pytest.fixture
def prepared(ledger: Ledger) -> Program:
    """Released API, excipient, DP-1 and placebo; nothing packaged yet."""
    return Program(ledger).reference().materials().formulate().placebo()


def receive_api(program: Program, **dates: date) -> None:
    program.receive(gtin=API_GTIN, lot_number="API-9", kind="api", quantity="1 kg", release=False, **dates)


# --- lots ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "field", "words"),
    [
        ({"manufactured_on": today() + timedelta(days=3)}, "manufactured_on", "after the day it is received"),
        (
            {"manufactured_on": date(1900, 1, 1), "expires_on": date(1905, 1, 1)},
            "manufactured_on",
            "not plausible",
        ),
        ({"expires_on": date(9999, 12, 31)}, "expires_on", "shelf-life ceiling"),
        (
            {"manufactured_on": today() - timedelta(days=900), "expires_on": today() - timedelta(days=1)},
            "expires_on",
            "before the day it is received",
        ),
    ],
    ids=["made in the future", "made in 1900", "expiring 9999-12-31", "expired at receipt"],
)
def test_a_lot_with_implausible_dates_is_refused_naming_the_field(
    prepared: Program, dates: dict[str, date], field: str, words: str
) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match=words) as info:
        receive_api(prepared, **dates)
    assert info.value.details["field"] == field


def test_a_lot_may_be_made_today_and_good_for_ten_years(prepared: Program) -> None:
    ten_years = today() + timedelta(days=3653)
    receive_api(prepared, manufactured_on=today(), expires_on=ten_years)
    assert prepared.ledger.get(Lot, Lot.create_id(API_GTIN, "API-9")).expires_on == ten_years


def test_the_shelf_life_ceiling_is_a_setting(prepared: Program) -> None:
    prepared.ledger.max_shelf_life = timedelta(days=365)
    with writes_nothing(prepared.ledger, InvalidInput, match="more than 365 days after"):
        receive_api(prepared, manufactured_on=today(), expires_on=today() + timedelta(days=366))


def test_a_lot_that_expired_in_quarantine_cannot_be_released(ledger: Ledger) -> None:
    program = Program(ledger, start=now() - timedelta(days=20)).reference()
    lot = program.receive(
        gtin=API_GTIN,
        lot_number="API-OLD",
        kind="api",
        quantity="1 kg",
        release=False,
        expires_on=program.today + timedelta(days=10),
    )
    release = ReleaseLot(lot_id=lot, signature=sign(actors.qa, Meaning.RELEASED), results_ref="COA-1")
    with writes_nothing(ledger, LotNotUsable, match="expired or due for retest"):
        ledger.handle(release, actors.qa)


# --- times, places, countries ------------------------------------------------------------------------


def test_a_step_dated_before_2000_is_refused(ledger: Ledger) -> None:
    depot = RegisterLocation(
        gln=with_check_digit("400000000099"),
        kind="depot",
        name="Depot 2",
        country="DE",
        occurred_at=datetime(1792, 3, 1, tzinfo=UTC),
    )
    with writes_nothing(ledger, InvalidInput, match="not a plausible time") as info:
        ledger.handle(depot, actors.admin)
    assert info.value.details["field"] == "occurred_at"


def new_trial(countries: list[str]) -> RegisterTrial:
    return RegisterTrial(
        code="LTL-9", title="t", sponsor="s", countries=countries, do_not_ship_days=30, do_not_dispense_days=7
    )


@pytest.mark.parametrize("code", ["AA", "XX", "ZZ", "QM", "UK", "de"])
def test_a_country_that_iso_3166_does_not_assign_is_refused(ledger: Ledger, code: str) -> None:
    trial = new_trial(["DE", code])
    with writes_nothing(ledger, InvalidInput, match="ISO 3166-1") as info:
        ledger.handle(trial, actors.admin)
    assert info.value.details["field"] == "countries"
    depot = RegisterLocation(gln=with_check_digit("400000000099"), kind="depot", name="D", country=code)
    with writes_nothing(ledger, InvalidInput, match="ISO 3166-1"):
        ledger.handle(depot, actors.admin)


def test_a_trial_names_each_country_once(ledger: Ledger) -> None:
    trial = new_trial(["DE", "DE"])
    with writes_nothing(ledger, InvalidInput, match="each of its countries once"):
        ledger.handle(trial, actors.admin)


# --- temperatures ------------------------------------------------------------------------------------


def test_an_excursion_whose_maximum_is_below_its_minimum_is_refused(program: Program) -> None:
    excursion = ReportExcursion(
        location_id=program.depot,
        kit_ids=program.kits("K00001"),
        min_celsius=Decimal(30),
        max_celsius=Decimal(10),
        duration_minutes=60,
    )
    with writes_nothing(program.ledger, InvalidInput, match="below the minimum") as info:
        program.ledger.handle(excursion, actors.depot)
    assert info.value.details["field"] == "max_celsius"


def test_a_receipt_whose_logger_maximum_is_below_its_minimum_is_refused(program: Program) -> None:
    program.ship(["K00001"])
    receipt = ConfirmReceipt(
        shipment_id=Shipment.create_id("S-1"),
        site_id=program.site,
        outcomes={"K00001": "received"},
        logger_min=Decimal(7),
        logger_max=Decimal(3),
    )
    with writes_nothing(program.ledger, InvalidInput, match="below its minimum") as info:
        program.ledger.handle(receipt, actors.site)
    assert info.value.details["field"] == "logger_max"


# --- yields and deviations ---------------------------------------------------------------------------


def formulate(program: Program, actual: int, **extra: Any) -> Any:
    return program.ledger.handle(
        Formulate(
            batch_number="B-9",
            product="Lotlinib 10 mg",
            location_id=program.plant,
            inputs=[(program.api, q("10 g"))],
            output=OutputLot(DP_GTIN, "DP-9", "tablets", program.dp_expires_on),
            theoretical_yield=Quantity.of(100, "unit"),
            actual_yield=Quantity.of(actual, "unit"),
            checked_by=actors.mfg2,
            **extra,
        ),
        actors.mfg,
    )


DEVIATION = DeviationLine(number="DEV-9", description="tablet press over-count", classification="minor")


def test_a_yield_above_theoretical_needs_a_deviation(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="130.00% of the theoretical") as info:
        formulate(prepared, 130)
    assert info.value.details["field"] == "deviation"
    formulate(prepared, 130, deviation=DEVIATION)
    batch = prepared.ledger.get(ManufacturingBatch, ManufacturingBatch.create_id("B-9"))
    assert batch.yield_percent == Decimal("130.00")
    assert batch.deviations == [
        {"number": "DEV-9", "description": "tablet press over-count", "classification": "minor"}
    ]


def test_a_yield_outside_the_stated_limits_needs_a_deviation(prepared: Program) -> None:
    limits = YieldLimits(low_percent=Decimal(95), high_percent=Decimal(100))
    with writes_nothing(prepared.ledger, InvalidInput, match="outside the stated limits 95-100%"):
        formulate(prepared, 90, yield_limits=limits)
    formulate(prepared, 90, yield_limits=limits, deviation=DEVIATION)
    batch = prepared.ledger.get(ManufacturingBatch, ManufacturingBatch.create_id("B-9"))
    assert batch.yield_limits == {"low_percent": "95", "high_percent": "100"}
    assert [d["number"] for d in batch.deviations] == ["DEV-9"]


def test_a_yield_inside_the_limits_needs_no_deviation(prepared: Program) -> None:
    formulate(prepared, 97, yield_limits=YieldLimits(low_percent=Decimal(95), high_percent=Decimal(100)))
    batch = prepared.ledger.get(ManufacturingBatch, ManufacturingBatch.create_id("B-9"))
    assert batch.deviations == [] and batch.yield_percent == Decimal("97.00")


def test_yield_limits_run_from_low_to_high(prepared: Program) -> None:
    with writes_nothing(prepared.ledger, InvalidInput, match="from low to high"):
        formulate(prepared, 97, yield_limits=YieldLimits(low_percent=Decimal(100), high_percent=Decimal(95)))


def test_a_deviation_number_is_recorded_once_per_batch(prepared: Program) -> None:
    record = RecordDeviation(
        batch_id=prepared.batch, number="DEV-2025-001", description="mixer stopped", classification="minor"
    )
    prepared.ledger.handle(record, actors.qa)
    with writes_nothing(prepared.ledger, AlreadyExists, match="DEV-2025-001 on batch B-1"):
        prepared.ledger.handle(record, actors.qa)


def test_the_deviation_recorded_with_a_batch_counts_for_its_number(prepared: Program) -> None:
    formulate(prepared, 130, deviation=DEVIATION)
    again = RecordDeviation(
        batch_id=ManufacturingBatch.create_id("B-9"), number="DEV-9", description="x", classification="minor"
    )
    with writes_nothing(prepared.ledger, AlreadyExists):
        prepared.ledger.handle(again, actors.qa)

