"""Many clients writing at once over HTTP: the store's conflicts and busy moments are retried inside the
ledger and end, at worst, as a 409 `concurrent_write` or a 503, each with Retry-After; never a 500. A
client that retries after them lands exactly what the lot holds, and mass balance holds."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledger.domain import Lot
from tests.api.bodies import commands
from tests.api.conftest import Api
from tests.builders import API_GTIN, Program

CLIENTS = 40
GRAMS_EACH = 1
LOT_GRAMS = 10
RETRIES = 10


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
        # A client as docs/api.md asks: a 503, or a 409 `concurrent_write`, carries Retry-After and
        # the same request (same Idempotency-Key) is sent again after it.
        for _ in range(RETRIES):
            answer = api.post("mfg1", "/batches", body, headers={"Idempotency-Key": f"rush-{i}"})
            retry = answer.status_code == 503 or (
                answer.status_code == 409 and answer.json()["code"] == "concurrent_write"
            )
            if not retry:
                return answer
            assert answer.headers.get("Retry-After"), answer.text
            time.sleep(float(answer.headers["Retry-After"]))
        return answer

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(formulate, range(CLIENTS)))

    statuses = [a.status_code for a in answers]
    assert not [s for s in statuses if s >= 500], statuses
    landed = [a for a in answers if a.status_code == 201]
    refused = [a.json()["code"] for a in answers if a.status_code == 409]
    kept = api.ledger.get(Lot, lot)
    assert len(kept.consumed_by) == len(landed) == LOT_GRAMS // GRAMS_EACH, statuses
    assert kept.remaining.amount == 0
    assert set(refused) <= {"insufficient_quantity", "lot_not_usable"}, refused
