"""The EPCIS benchmark's schema check (scripts/bench_epcis.py --schema) runs end to end on a small demo
store: every event of the streamed export is validated against GS1's JSON schema, and a document the
schema refuses is counted and fails the run. Nothing here is timed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.application import Ledger
from scripts import bench_epcis
from tests.epcis_reference import reference
from tests.integration.epcis_helpers import demo


def _figures(out: str) -> dict[str, object]:
    return dict(json.loads(out[out.index("{") :])["big_export"])


def test_the_streamed_export_of_a_demo_store_is_valid_against_gs1s_schema(
    new_store: Callable[[str, str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_store("sqlite", "demo")
    ledger = Ledger.open(url)
    demo(ledger)
    ledger.close()
    schema = reference() / "schema" / "EPCISDocument.schema.json"
    assert bench_epcis.main(["--skip-program", "--export-store", url, "--schema", str(schema)]) == 0
    figures = _figures(capsys.readouterr().out)
    assert figures["schema_validated"] is True and figures["invalid"] == 0
    assert isinstance(figures["epcis_events"], int) and figures["epcis_events"] > 100
    # a schema the events do not meet: each is counted, and the run fails
    stricter = json.loads(schema.read_text(encoding="utf-8"))
    stricter["required"] = [*stricter["required"], "lotline:nothing"]
    strict = tmp_path / "stricter.json"
    strict.write_text(json.dumps(stricter), encoding="utf-8")
    assert bench_epcis.main(["--skip-program", "--export-store", url, "--schema", str(strict)]) == 1
    refused = _figures(capsys.readouterr().out)
    assert refused["invalid"] == figures["epcis_events"] + 1  # every event, and the document
    assert "lotline:nothing" in str(refused["first_errors"])
