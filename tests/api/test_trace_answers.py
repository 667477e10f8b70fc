"""The trace routes answer what the kit-by-kit trace answered before they counted and paged in SQL:
the same totals, places, shipments and pages, blinded and unblinded, for one lot and several."""

from __future__ import annotations

import dataclasses
from typing import Any

from api.schemas.queries import ForwardOut, KitPage
from tests.api.conftest import Api
from tests.builders import Program


def _todays_forward(trace: Any, freshness: Any) -> dict[str, Any]:
    """The forward answer as the route shaped it from the full trace (every kit loaded)."""
    data = {f.name: getattr(trace, f.name) for f in dataclasses.fields(trace)}
    data.update(total_kits=len(trace.kits), subjects=len(trace.subjects), freshness=freshness)
    return ForwardOut.model_validate(data, from_attributes=True).model_dump(mode="json")


def _todays_page(kits: Any, blinded: bool, limit: int, offset: int, freshness: Any) -> dict[str, Any]:
    """A kit page as the routes shaped it from the full kit list."""
    data = {"total": len(kits), "limit": limit, "offset": offset, "blinded": blinded,
            "items": list(kits[offset : offset + limit]), "freshness": freshness}
    return KitPage.model_validate(data, from_attributes=True).model_dump(mode="json")


def test_forward_and_kit_routes_answer_as_the_full_trace_did(api: Api, program: Program) -> None:
    # kits K00001-K00004 go to the site and are received there, so places and shipments differ
    program.at_site(["K00001", "K00002", "K00003", "K00004"])
    genealogy = api.client.app.state.read_side.runner.genealogy  # type: ignore[attr-defined]
    lots = [program.api, program.placebo_lot]
    for lot in lots:
        for unblinded in (False, True):
            flag = "&unblinded=true" if unblinded else ""
            got = api.get("recall1", f"/trace/lots/{lot}/forward?x=1{flag}")
            assert got.status_code == 200
            trace = genealogy.forward_from_lot(lot, unblinded=unblinded)
            assert got.json() == _todays_forward(trace, got.json()["freshness"])
            assert got.json()["total_kits"] > 0
            for limit, offset in ((1000, 0), (3, 2), (4, 8)):
                page = api.get(
                    "recall1", f"/trace/lots/{lot}/forward/kits?limit={limit}&offset={offset}{flag}"
                ).json()
                assert page == _todays_page(trace.kits, not unblinded, limit, offset, page["freshness"])
    both = "&".join(f"lot_id={lot}" for lot in lots)
    union = {k.id: k for lot in lots for k in genealogy.forward_from_lot(lot).kits}
    expected = sorted(union.values(), key=lambda k: k.kit_number)
    page = api.get("recall1", f"/recalls/impact/kits?{both}&limit=1000").json()
    assert page == _todays_page(expected, True, 1000, 0, page["freshness"]) and page["total"] > 0


def test_an_unknown_lot_is_still_not_found_on_every_trace_route(api: Api, program: Program) -> None:
    unknown = "00000000-0000-0000-0000-000000000001"
    for path in (f"/trace/lots/{unknown}/forward", f"/trace/lots/{unknown}/forward/kits",
                 f"/recalls/impact/kits?lot_id={program.api}&lot_id={unknown}"):
        assert api.get("recall1", path).status_code == 404, path


def test_the_forward_trace_says_what_unblinded_counts(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    params = spec["paths"]["/trace/lots/{lot_id}/forward"]["get"]["parameters"]
    [unblinded] = [p for p in params if p["name"] == "unblinded"]
    assert "physically contain" in unblinded["description"]
    assert "placebo" in unblinded["description"]
