"""The console's screens for QA and recall investigators: find anything by its number, trace a lot
forward with its genealogy picture, trace a kit back to its lots. Blinded, as the API answers without
`unblinded=true`; the same roles may read them (everyone but site users, who get a 403 page)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import permissions
from api.console import PATH, PersonDep
from api.genealogy_picture import forward_picture
from ledger.errors import LedgerError
from ledger.values import Role

router = APIRouter(prefix=PATH, include_in_schema=False)


@router.get("/find")
def find(me: PersonDep, q: str = "") -> Response:
    """Lots, batches, packaging runs and kits by their number; one lot or kit found: its trace."""
    if refused := me.refused(permissions.TRACE, "read traces"):
        return refused
    number = q.strip()
    found = me.request.app.state.read_side.runner.genealogy.numbered(number) if number else []
    traceable = [f for f in found if f.kind in ("lot", "kit")]
    if len(found) == 1 and traceable:
        one = traceable[0]
        return RedirectResponse(f"{PATH}/trace/{one.kind}s/{one.id}", 303)
    return me.page("find.html", q=number, found=found)


@router.get("/trace/lots/{lot_id}")
def lot_forward(me: PersonDep, lot_id: UUID) -> HTMLResponse:
    """Where a lot went: its batches, the lots made from it, the runs, the places, with the picture."""
    if refused := me.refused(permissions.TRACE, "read traces"):
        return refused
    genealogy = me.request.app.state.read_side.runner.genealogy
    try:
        trace = genealogy.forward_counts(lot_id)
    except LedgerError as e:
        return me.not_found(e.message)
    kits = genealogy.kits_per_run_and_place([r.id for r in trace.runs])
    places = {p.place.id: p.place for p in trace.places}
    return me.page(
        "trace_lot.html",
        trace=trace,
        picture=forward_picture(trace, kits, places),
        may_open_recall=me.user.role == Role.QA,  # offered to QA; the ledger decides who may
    )


@router.get("/trace/kits/{kit_id}")
def kit_backward(me: PersonDep, kit_id: UUID) -> HTMLResponse:
    """A kit back to every lot its run was made from (every arm: blinded)."""
    if refused := me.refused(permissions.TRACE, "read traces"):
        return refused
    try:
        trace = me.request.app.state.read_side.runner.genealogy.backward_from_kit(kit_id)
    except LedgerError as e:
        return me.not_found(e.message)
    return me.page("trace_kit.html", trace=trace)
