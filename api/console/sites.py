"""The console's screens of a place: its inbound shipments and the receipt, kit by kit; its kits with
their flags, and each kit's history; on one kit at a site, dispense it or record its return."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from api.console import (
    PATH,
    Person,
    PersonDep,
    page_asked,
    page_count,
    place_label,
    place_names,
    places_by_id,
    text_of,
)
from api.console.stock import field_error, steps_for
from api.schemas.results import ReceiptConfirmed
from api.views import shipment_to
from ledger.access import sees_place
from ledger.commands import Command, ConfirmReceipt, Dispense, ReturnKit
from ledger.domain import Kit, Shipment
from ledger.domain.location import LocationKind
from ledger.domain.whereabouts import KitStatus
from ledger.errors import LedgerError, NotFound
from ledger.values import Role

router = APIRouter(prefix=PATH, include_in_schema=False)


def _at_place(me: Person, site_id: UUID) -> str | None:
    """Why the person may not see the place's shipments, or None: the API's own rule (a site user sees
    only their sites; `ledger.access.sees_place`); a receipt is the ledger's to allow or refuse."""
    if not sees_place(me.user.role, me.user.places, site_id):
        return f"{me.user.principal} is not bound to this place."
    return None


SHIPMENTS_PER_PAGE = 50
SHIPMENT_STATUSES = ("in_transit", "received")


@router.get("/sites/{site_id}/shipments")
def shipments(me: PersonDep, site_id: UUID) -> HTMLResponse:
    """The shipments addressed to the place, newest first, in transit or received or both, a page at
    a time (`GET /sites/{id}/shipments`)."""
    refused = _at_place(me, site_id)
    if refused:
        return me.forbidden(refused)
    q = me.request.query_params
    status = q.get("status") if q.get("status") in SHIPMENT_STATUSES else None
    number = page_asked(me.request)
    found = me.request.app.state.read_side.runner.genealogy.inbound(
        site_id, status, SHIPMENTS_PER_PAGE, (number - 1) * SHIPMENTS_PER_PAGE
    )
    names = place_names(me.request)
    return me.page(
        "shipments.html", shipments=found.shipments, site_id=site_id, place=names.get(site_id, str(site_id)),
        total=found.total, chosen=status, statuses=SHIPMENT_STATUSES, page_number=number,
        pages=page_count(found.total, SHIPMENTS_PER_PAGE),
    )


@router.get("/sites/{site_id}/outbound")
def outbound(me: PersonDep, site_id: UUID) -> HTMLResponse:
    """The shipments that left the place, newest first (`GET /locations/{id}/shipments`)."""
    refused = _at_place(me, site_id)
    if refused:
        return me.forbidden(refused)
    found = me.request.app.state.read_side.runner.genealogy.outbound(site_id, None, 200, 0)
    names = place_names(me.request)
    return me.page(
        "outbound.html", found=found, site_id=site_id, place=names.get(site_id, str(site_id)),
        may_ship=me.user.role == Role.DEPOT,
    )


KITS_PER_PAGE = 100


@router.get("/places")
def places(me: PersonDep) -> HTMLResponse:
    """Every place the person may see (a site user: their own), each with its kits and shipments."""
    found = me.request.app.state.read_side.runner.genealogy.all_places()
    return me.page("places.html", places=[p for p in found if sees_place(me.user.role, me.user.places, p.id)])


@router.get("/sites/{site_id}/kits")
def kits(me: PersonDep, site_id: UUID) -> HTMLResponse:
    """The kits the place accounts for, by kit number, with expiry, quarantine and recall flags (the
    same read as `GET /locations/{id}/kits`), optionally of one status, a page at a time."""
    refused = _at_place(me, site_id)
    if refused:
        return me.forbidden(refused)
    q = me.request.query_params
    status = q.get("status") or None
    if status is not None and status not in set(KitStatus):
        status = None
    number = page_asked(me.request)
    found = me.request.app.state.read_side.runner.genealogy.kits_at(
        site_id, status=status, limit=KITS_PER_PAGE, offset=(number - 1) * KITS_PER_PAGE
    )
    place = places_by_id(me.request).get(site_id)
    kind = place.kind if place else ""
    return me.page(
        "kits.html", found=found, site_id=site_id, place=place_label(place) if place else str(site_id),
        chosen=status, statuses=list(KitStatus), page_number=number,
        pages=page_count(found.total, KITS_PER_PAGE),
        steps=steps_for(kind, me.user.role), is_site=kind == LocationKind.CLINICAL_SITE,
    )


@router.get("/sites/{site_id}/kits/{kit_id}")
def kit_history(me: PersonDep, site_id: UUID, kit_id: UUID) -> HTMLResponse:
    """Every hand-over of a kit that passed through the place, oldest first (`GET /custody/kits/{id}`),
    and at a site the kit's next step: dispense it, or record it brought back."""
    return kit_page(me, site_id, kit_id, done=me.request.query_params.get("done"))


def kit_page(me: Person, site_id: UUID, kit_id: UUID, status: int = 200, **values: Any) -> HTMLResponse:
    refused = _at_place(me, site_id)
    if refused:
        return me.forbidden(refused)
    try:
        chain = me.request.app.state.read_side.runner.custody.of_kit(kit_id)
    except LedgerError as e:
        return me.not_found(e.message)
    places = {p.id for step in chain.steps for p in (step.from_place, step.to_place) if p is not None}
    if site_id not in places:
        return me.forbidden("This kit never passed through this place.")
    kit = me.request.app.state.ledger.peek(Kit, kit_id)
    names = place_names(me.request)
    here = kit.location_id == site_id and me.user.role == Role.SITE  # the ledger decides; offered to sites
    return me.page(
        "kit.html",
        status,
        chain=chain,
        kit=kit,
        site_id=site_id,
        place=names.get(site_id, str(site_id)),
        may_dispense=here and kit.status == KitStatus.RECEIVED,
        may_return=here and kit.status == KitStatus.DISPENSED,
        form_key=str(uuid4()),
        form=values.pop("form", FormData()),
        errors=values.pop("errors", {}),
        **values,
    )


@router.get("/sites/{site_id}/shipments/{shipment_id}")
def receipt_page(me: PersonDep, site_id: UUID, shipment_id: UUID) -> HTMLResponse:
    refused = _at_place(me, site_id)
    if refused:
        return me.forbidden(refused)
    q = me.request.query_params
    return _receipt_page(me, site_id, shipment_id, done=q.get("done"), failed=q.get("failed"))


@router.post("/sites/{site_id}/shipments/{shipment_id}")
async def confirm_receipt(me: PersonDep, site_id: UUID, shipment_id: UUID) -> Response:
    """The receipt form, as ConfirmReceipt through the same Writer path as the API: once per form
    (its `form_key` is the Idempotency-Key: a second press or a resend gets the first answer)."""
    form = await me.request.form()
    me.require_csrf(form)
    refused = _at_place(me, site_id)
    if refused:
        return me.forbidden(refused)
    ledger = me.request.app.state.ledger
    try:
        numbers = ledger.get(Shipment, shipment_id).kit_numbers
        logger = {k: (text_of(form, k) or "").strip() or None for k in ("logger_min", "logger_max")}
        await me.record(
            form,
            lambda: ConfirmReceipt(
                shipment_id=shipment_id,
                site_id=site_id,
                outcomes={n: text_of(form, f"outcome-{n}") or "received" for n in numbers},
                remarks={n: r.strip() for n in numbers if (r := text_of(form, f"remark-{n}") or "").strip()},
                **logger,
            ),
            ReceiptConfirmed.of,
        )
    except LedgerError as e:
        if e.code in ("not_authorised", "forbidden", "not_bound_here"):
            return me.forbidden(e.message)
        field = "logger" if str(e.details.get("field") or "").startswith("logger") else "kits"
        problems = e.details.get("problems") or []
        detail = "; ".join(
            f"{p.get('kit_number')}: {p.get('reason')}" for p in problems if isinstance(p, dict)
        )
        return _receipt_page(
            me,
            site_id,
            shipment_id,
            422,
            form=form,
            errors={field: f"{e.message}{': ' + detail if detail else ''}"},
        )
    back = f"{PATH}/sites/{site_id}/shipments/{shipment_id}"
    return RedirectResponse(f"{back}?done=" + quote("The receipt is recorded."), 303)


def _receipt_page(
    me: Person, site_id: UUID, shipment_id: UUID, status: int = 200, **values: Any
) -> HTMLResponse:
    try:
        shipment = shipment_to(me.request.app.state.ledger, shipment_id, site_id)
    except LedgerError as e:
        return me.not_found(e.message)
    names = place_names(me.request)
    return me.page(
        "receipt.html",
        status,
        shipment=shipment,
        site_id=site_id,
        place=names.get(site_id, str(site_id)),
        receipt=shipment.receipt.model_dump() if shipment.receipt else None,
        form_key=str(uuid4()),
        form=values.pop("form", FormData()),
        errors=values.pop("errors", {}),
        **values,
    )


# --- one kit at a site: dispense it, record its return ----------------------------------------------


KIT_STEPS: dict[str, tuple[str, Callable[[UUID, UUID, FormData], Command]]] = {
    "dispense": (
        "Dispensed to subject {value}.",
        lambda site, kit, form: Dispense(
            site_id=site, kit_id=kit, subject=(text_of(form, "subject") or "").strip()
        ),
    ),
    "return": (
        "Recorded the kit's return ({value}).",
        lambda site, kit, form: ReturnKit(
            site_id=site, kit_id=kit, condition=text_of(form, "condition") or ""
        ),
    ),
}


@router.post("/sites/{site_id}/kits/{kit_id}/{step}")
async def kit_step(me: PersonDep, site_id: UUID, kit_id: UUID, step: str) -> Response:
    """Dispense the kit to a subject, or record it brought back (used, unused, partially used); a
    refusal shows the kit's page again with the reason beside the step."""
    form = await me.request.form()
    me.require_csrf(form)
    if not sees_place(me.user.role, me.user.places, site_id):
        return me.forbidden(f"{me.user.principal} is not bound to this place.")
    if step not in KIT_STEPS:
        return me.not_found(f"No such step on a kit: {step}")
    done, command = KIT_STEPS[step]
    try:
        await me.record(form, lambda: command(site_id, kit_id, form))
    except NotFound as e:
        return me.not_found(e.message)
    except LedgerError as e:
        if e.code in ("not_authorised", "forbidden", "not_bound_here"):
            return me.forbidden(e.message)
        names = ("subject",) if step == "dispense" else ("condition",)
        return kit_page(
            me,
            site_id,
            kit_id,
            422,
            form=form,
            errors={step: next(iter(field_error(e, names, step).values()))},
        )
    value = text_of(form, "subject" if step == "dispense" else "condition") or ""
    back = f"{PATH}/sites/{site_id}/kits/{kit_id}?done=" + quote(done.format(value=value.strip()))
    return RedirectResponse(back, 303)
