"""The console's steps on a place's kits, for sites and depots: report a storage excursion, send kits
back to a depot (site), receive kits sent back (depot), ship released kits to a site (depot), destroy
kits whose destruction QA authorised. QA's
signed steps on the kits of any place: release quarantined kits back to use or reject them, and
authorise destruction; each asks for the password again and shows the signature's meaning.

Each step is the API's own command built from the form and handled once per form (`Person.record`:
the form's key is the Idempotency-Key), under the same ledger rules: who may do it, at which place,
which kits qualify. A refusal is shown next to the field it names, and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from api.console import PATH, Person, PersonDep, places_by_id, text_of
from ledger.access import sees_place
from ledger.commands import (
    AuthoriseDestruction,
    Command,
    DecideQuarantine,
    DestroyKits,
    ReceiveReturnedKits,
    ReportExcursion,
    ReturnToDepot,
    Ship,
)
from ledger.domain.location import LocationKind
from ledger.domain.whereabouts import KitStatus
from ledger.errors import LedgerError
from ledger.values import Meaning, Role
from projections.views import LocationRef

router = APIRouter(prefix=PATH, include_in_schema=False)

SITE, DEPOT = LocationKind.CLINICAL_SITE, LocationKind.DEPOT
OFFERED = 500
"""At most this many kits of each offered status are listed on a step's form."""


@dataclass(frozen=True)
class Input:
    """One field of a step's form; `choices` names the places offered by kind (a select)."""

    name: str
    label: str
    kind: str = "text"  # text | number | textarea | select
    optional: bool = False
    choices: LocationKind | None = None


@dataclass(frozen=True)
class Step:
    """A step on several kits of a place: which places it is for, which kits it offers, its fields,
    and the command it builds (from the place, the chosen kits and the form's values)."""

    name: str
    title: str
    summary: str
    button: str
    places: frozenset[LocationKind]
    statuses: tuple[KitStatus, ...]
    inputs: tuple[Input, ...]
    command: Callable[[UUID, tuple[UUID, ...], dict[str, Any]], Command]
    done: str
    roles: frozenset[Role] = field(default=frozenset({Role.SITE, Role.DEPOT}))
    """Whom the console offers the step (the ledger decides who may take it)."""
    meaning: Meaning | None = None
    """A signed step's meaning: the form asks for the password and the command gets `signature`."""
    pledge: str = ""
    """What the signer states by signing, shown beside the meaning."""


STEPS = {
    s.name: s
    for s in (
        Step(
            "ship",
            "Ship kits to a site",
            "Released kits held here, packed into one shipment to a site: the ledger refuses a kit not "
            "released for the site's country, expired, quarantined or under recall, naming it.",
            "Ship the kits",
            frozenset({DEPOT}),
            (KitStatus.AVAILABLE,),
            (
                Input("to_id", "To", "select", choices=SITE),
                Input("shipment_number", "Shipment number"),
                Input("sscc", "SSCC (18 digits, with its check digit)"),
                Input("min_celsius", "Lowest allowed temperature (°C)", "number"),
                Input("max_celsius", "Highest allowed temperature (°C)", "number"),
                Input("logger_id", "Temperature logger", optional=True),
                Input("carrier", "Carrier", optional=True),
            ),
            lambda place, kits, v: Ship(from_id=place, kit_ids=kits, **v),
            "Shipped {n} kit(s).",
        ),
        Step(
            "excursion",
            "Report a storage excursion",
            "Kits stored here that left their temperature range: they go to quarantine until QA decides.",
            "Report the excursion",
            frozenset({SITE, DEPOT}),
            (KitStatus.RECEIVED, KitStatus.AVAILABLE),
            (
                Input("min_celsius", "Lowest temperature measured (°C)", "number"),
                Input("max_celsius", "Highest temperature measured (°C)", "number"),
                Input("duration_minutes", "Duration (minutes)", "number"),
            ),
            lambda place, kits, v: ReportExcursion(location_id=place, kit_ids=kits, **v),
            "Reported the excursion of {n} kit(s): they are quarantined.",
        ),
        Step(
            "send-back",
            "Send kits back to a depot",
            "Kits the site holds and no longer needs (or brought back, or damaged), outside any recall: "
            "they are in transit until the depot receives them.",
            "Send the kits back",
            frozenset({SITE}),
            (KitStatus.RECEIVED, KitStatus.RETURNED, KitStatus.DAMAGED),
            (
                Input("depot_id", "To the depot", "select", choices=DEPOT),
                Input("reason", "Reason", "textarea"),
            ),
            lambda place, kits, v: ReturnToDepot(site_id=place, kit_ids=kits, **v),
            "Sent {n} kit(s) back.",
        ),
        Step(
            "returns",
            "Receive kits sent back",
            "Kits a site sent back to this depot: held here, returned, for QA's decision.",
            "Record them received",
            frozenset({DEPOT}),
            (KitStatus.IN_TRANSIT,),
            (),
            lambda place, kits, v: ReceiveReturnedKits(depot_id=place, kit_ids=kits),
            "Received {n} returned kit(s).",
        ),
        Step(
            "destruction",
            "Destroy kits",
            "Kits held here whose destruction QA authorised, with the destruction certificate.",
            "Record the destruction",
            frozenset({SITE, DEPOT}),
            (KitStatus.PENDING_DESTRUCTION,),
            (Input("certificate", "Certificate number"), Input("method", "Method (e.g. incineration)")),
            lambda place, kits, v: DestroyKits(location_id=place, kit_ids=kits, **v),
            "Destroyed {n} kit(s).",
        ),
        Step(
            "quarantine-release",
            "Release quarantined kits",
            "Kits quarantined here (an excursion, a receipt out of range) that QA finds fit for use: back "
            "to stock, with the reason.",
            "Sign and release",
            frozenset({SITE, DEPOT}),
            (KitStatus.QUARANTINED,),
            (Input("reason", "Reason (e.g. the stability data that covers the excursion)", "textarea"),),
            lambda place, kits, v: DecideQuarantine(kit_ids=kits, release=True, **v),
            "Released {n} kit(s) from quarantine.",
            frozenset({Role.QA}),
            Meaning.RELEASED,
            "I release these kits for use.",
        ),
        Step(
            "quarantine-reject",
            "Reject quarantined kits",
            "Kits quarantined here that QA finds unfit: rejected (damaged), to be destroyed.",
            "Sign and reject",
            frozenset({SITE, DEPOT}),
            (KitStatus.QUARANTINED,),
            (Input("reason", "Reason", "textarea"),),
            lambda place, kits, v: DecideQuarantine(kit_ids=kits, release=False, **v),
            "Rejected {n} kit(s).",
            frozenset({Role.QA}),
            Meaning.REJECTED,
            "I reject these kits: they are not to be used.",
        ),
        Step(
            "destruction-authorisation",
            "Authorise destruction",
            "Written, signed authorisation before any kit is destroyed (EU GMP Annex 13): the place then "
            "destroys them with the certificate.",
            "Sign and authorise",
            frozenset({SITE, DEPOT}),
            (
                KitStatus.RETURNED,
                KitStatus.DAMAGED,
                KitStatus.QUARANTINED,
                KitStatus.RECEIVED,
                KitStatus.AVAILABLE,
            ),
            (Input("reason", "Reason", "textarea"),),
            lambda place, kits, v: AuthoriseDestruction(kit_ids=kits, **v),
            "Authorised the destruction of {n} kit(s).",
            frozenset({Role.QA}),
            Meaning.AUTHORISED_DESTRUCTION,
            "I authorise the destruction of these kits.",
        ),
    )
}


def steps_for(kind: str, role: Role) -> list[Step]:
    """The steps a place of this kind offers the role, in the order the console lists them."""
    return [s for s in STEPS.values() if kind in s.places and role in s.roles]


def _refusal(
    me: Person, place_id: UUID, step: str
) -> HTMLResponse | tuple[dict[UUID, LocationRef], LocationRef, Step]:
    """The 403 or 404 page, or every place (the form offers some), the place and the step."""
    if not sees_place(me.user.role, me.user.places, place_id):
        return me.forbidden(f"{me.user.principal} is not bound to this place.")
    places = places_by_id(me.request)
    place, chosen = places.get(place_id), STEPS.get(step)
    if place is None or chosen is None or place.kind not in chosen.places:
        return me.not_found(f"No such step at this place: {step}")
    return places, place, chosen


@router.get("/sites/{place_id}/steps/{step}")
def step_page(me: PersonDep, place_id: UUID, step: str) -> HTMLResponse:
    found = _refusal(me, place_id, step)
    if isinstance(found, HTMLResponse):
        return found
    return _page(me, *found, done=me.request.query_params.get("done"))


@router.post("/sites/{place_id}/steps/{step}")
async def do_step(me: PersonDep, place_id: UUID, step: str) -> Response:
    form = await me.request.form()
    me.require_csrf(form)
    found = _refusal(me, place_id, step)
    if isinstance(found, HTMLResponse):
        return found
    places, place, chosen = found
    errors: dict[str, str] = {}
    try:
        kits = tuple(UUID(k) for k in form.getlist("kit") if isinstance(k, str))
    except ValueError:
        kits, errors["kits"] = (), "a chosen kit is not a kit id"
    if not kits and not errors:
        errors["kits"] = "Choose at least one kit."
    values: dict[str, Any] = {i.name: (text_of(form, i.name) or "").strip() or None for i in chosen.inputs}
    for i in chosen.inputs:
        if values[i.name] is None and not i.optional:
            errors[i.name] = f"{i.label}: required."
    if chosen.meaning is not None and not text_of(form, "password"):
        errors["password"] = "Sign with your password."
    if errors:
        return _page(me, places, place, chosen, 422, form=form, errors=errors)
    try:
        if chosen.meaning is not None:
            values["signature"] = me.sign(text_of(form, "password") or "", chosen.meaning)
        await me.record(form, lambda: chosen.command(place_id, kits, values))
    except LedgerError as e:
        if e.code in ("not_authorised", "forbidden", "not_bound_here"):
            return me.forbidden(e.message)
        names = [*(i.name for i in chosen.inputs), "password"]
        return _page(me, places, place, chosen, 422, form=form, errors=field_error(e, names))
    done = chosen.done.format(n=len(kits))
    return RedirectResponse(f"{PATH}/sites/{place_id}/steps/{chosen.name}?done=" + quote(done), 303)


def field_error(e: LedgerError, names: Sequence[str], default: str = "kits") -> dict[str, str]:
    """The ledger's refusal next to the field it names (else next to the kits), with the kits it names."""
    named = str(e.details.get("field") or "").removeprefix("body.").split(".")[0]
    problems = e.details.get("problems") or []
    detail = "; ".join(f"{p.get('kit_number')}: {p.get('reason')}" for p in problems if isinstance(p, dict))
    return {named if named in names else default: e.message + (f": {detail}" if detail else "")}


def _page(
    me: Person,
    places: dict[UUID, LocationRef],
    place: LocationRef,
    step: Step,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    read = me.request.app.state.read_side.runner.genealogy
    lists = [read.kits_at(place.id, status=str(s), limit=OFFERED, offset=0) for s in step.statuses]
    offered = [k for found in lists for k in found.kits]
    choices = {
        kind: [(str(p.id), p.name) for p in places.values() if p.kind == kind and p.id != place.id]
        for kind in (SITE, DEPOT)
    }
    return me.page(
        "step.html",
        status,
        place=place,
        step=step,
        steps=steps_for(place.kind, me.user.role),
        kits=offered,
        qualifying=sum(found.total for found in lists),
        choices=choices,
        form_key=str(uuid4()),
        form=values.pop("form", FormData()),
        errors=values.pop("errors", {}),
        **values,
    )
