"""Many clients writing at once over HTTP: the store's conflicts and busy moments are retried inside the
ledger and end, at worst, as a 409 or a 503 with Retry-After; never a 500, and mass balance holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from ledger.domain import Lot
from tests.api.bodies import commands
from tests.api.conftest import Api
from tests.builders import API_GTIN, Program

CLIENTS = 40
GRAMS_EACH = 1
LOT_GRAMS = 10


def test_forty_formulations_on_a_ten_gram_lot_land_ten_and_never_answer_500(
    api: Api, program: Program
) -> None:
    lot = program.receive(gtin=API_GTIN, lot_number="API-RUSH", kind="api", quantity=f"{LOT_GRAMS} g")
    _, template, _ = commands(program)["formulate"]

    def formulate(i: int) -> Any:
        body = {
            **template,
            "batch_number": f"B-RUSH-{i}",
            "inputs": [{"lot_id": str(lot), "quantity": {"amount": str(GRAMS_EACH), "unit": "g"}}],
            "output": {**template["output"], "lot_number": f"DP-RUSH-{i}"},
        }
        return api.post("mfg1", "/batches", body, headers={"Idempotency-Key": f"rush-{i}"})

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(formulate, range(CLIENTS)))

    statuses = [a.status_code for a in answers]
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    for a in answers:
        if a.status_code == 503:
            assert a.headers.get("Retry-After"), a.text
    landed = [a for a in answers if a.status_code == 201]
    refused = [a.json()["code"] for a in answers if a.status_code == 409]
    kept = api.ledger.get(Lot, lot)
    assert len(kept.consumed_by) == len(landed)
    assert kept.remaining.amount == Decimal(LOT_GRAMS - GRAMS_EACH * len(landed))
    # Only a busy store (503) may keep a client from its gram; every other answer is a landing or
    # a refusal because the lot ran out.
    if statuses.count(503) == 0:
        assert len(landed) == LOT_GRAMS // GRAMS_EACH, statuses
    assert set(refused) <= {"insufficient_quantity", "lot_not_usable"}, refused
