"""The console's recall dashboard for QA, QP, recall investigators, inspectors and admins: every recall,
and one recall's status per place, which the page brings up to date by itself every few seconds
(`status.json`, the same answer as `GET /recalls/{id}/status`); the report as HTML or PDF."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from api import permissions
from api.console import PATH, Person, PersonDep, page_asked, page_count, place_names, text_of
from api.console.stock import field_error
from api.recall_report import report_answer
from api.schemas.results import Created
from api.views import recalls_at
from ledger.access import sees_place
from ledger.commands import AcknowledgeRecall, Command, KitReportLine, OpenRecall, ReportRecallKits
from ledger.domain import Lot
from ledger.domain.recall import EXERCISE_OUTCOMES, SITE_OUTCOMES, RecallClass, RecallScope
from ledger.errors import LedgerError, NotFound
from ledger.values import Meaning
from projections import recall_campaigns as campaigns
from projections.audit import AuditQuery

router = APIRouter(prefix=PATH, include_in_schema=False)

REFRESH_SECONDS = 3
"""How often an open dashboard asks for the recall's status."""


@router.get("/recalls")
def recalls(me: PersonDep) -> HTMLResponse:
    """Every recall and mock recall, newest first, with how far each has got."""
    if refused := me.refused(permissions.RECALL_STATUS, "read recall status"):
        return refused
    audit = me.request.app.state.read_side.runner.audit
    opened = audit.search(AuditQuery(event="Recall.Opened"), limit=10_000)
    ledger = me.request.app.state.ledger
    views = [campaigns.status(ledger.recall_view(e.entity_id)) for e in reversed(opened.entries)]
    return me.page("recalls.html", recalls=views)


@router.get("/recalls/{recall_id}")
def dashboard(me: PersonDep, recall_id: UUID) -> HTMLResponse:
    if refused := me.refused(permissions.RECALL_STATUS, "read recall status"):
        return refused
    try:
        view = campaigns.status(me.request.app.state.ledger.recall_view(recall_id))
    except LedgerError as e:
        return me.not_found(e.message)
    return me.page("recall.html", recall=view, refresh_seconds=REFRESH_SECONDS)


@router.get("/recalls/{recall_id}/status.json")
def status(me: PersonDep, recall_id: UUID) -> Response:
    """The dashboard's live data: the recall's status as the API answers it."""
    if me.user.role not in permissions.RECALL_STATUS:
        return JSONResponse({"code": "forbidden", "message": "may not read recall status"}, 403)
    try:
        view = campaigns.status(me.request.app.state.ledger.recall_view(recall_id))
    except LedgerError as e:
        return JSONResponse({"code": e.code, "message": e.message}, 404)
    return JSONResponse(jsonable_encoder(_plain(view)), headers={"Cache-Control": "no-store"})


@router.get("/recalls/{recall_id}/report")
def report(me: PersonDep, recall_id: UUID, format: str = "html") -> Response:
    """The recall report (`GET /recalls/{id}/report`), for a person signed in to the console."""
    if refused := me.refused(permissions.RECALL_STATUS, "read recall status"):
        return refused
    state = me.request.app.state
    try:
        recall = state.ledger.recall_view(recall_id)
    except LedgerError as e:
        return me.not_found(e.message)
    return report_answer(state.ledger, recall, state.transparency, state.read_side, me.user, format)


def _plain(view: Any) -> Any:
    return dataclasses.asdict(view)


# --- a place's recalls and its task list -----------------------------------------------------------


TASKS_PER_PAGE = 100
"""Kits of a task list shown at once (a depot may hold thousands of a recall's kits)."""


@router.get("/sites/{site_id}/recalls")
def site_recalls(me: PersonDep, site_id: UUID) -> HTMLResponse:
    """The recalls that concern the place (`GET /sites/{id}/recalls`), newest first, with what is left."""
    if not sees_place(me.user.role, me.user.places, site_id):
        return me.forbidden(f"{me.user.principal} is not bound to this place.")
    state = me.request.app.state
    found = recalls_at(state.ledger, state.read_side, site_id)
    return me.page(
        "site_recalls.html", found=found, site_id=site_id, place=place_names(me.request).get(site_id)
    )


@router.get("/sites/{site_id}/recalls/{recall_id}")
def site_tasks(me: PersonDep, site_id: UUID, recall_id: UUID) -> HTMLResponse:
    return _tasks_page(me, site_id, recall_id, done=me.request.query_params.get("done"))


@router.post("/sites/{site_id}/recalls/{recall_id}/{step}")
async def site_task(me: PersonDep, site_id: UUID, recall_id: UUID, step: str) -> Response:
    """Acknowledge the recall, or report what became of the kits chosen on the task list (each kit's
    outcome, and the subject a dispensed kit went to), as `AcknowledgeRecall` / `ReportRecallKits`."""
    form = await me.request.form()
    me.require_csrf(form)
    if not sees_place(me.user.role, me.user.places, site_id):
        return me.forbidden(f"{me.user.principal} is not bound to this place.")
    if step not in ("acknowledgement", "report"):
        return me.not_found(f"No such step on a recall: {step}")
    lines = [
        {
            "kit_id": k.removeprefix("outcome-"),
            "outcome": v,
            "subject": (text_of(form, f"subject-{k[8:]}") or "").strip() or None,
        }
        for k, v in form.multi_items()
        if k.startswith("outcome-") and isinstance(v, str) and v
    ]
    if step == "report" and not lines:
        return _tasks_page(
            me, site_id, recall_id, 422, form=form, errors={"kits": "Choose an outcome for a kit at least."}
        )

    def command() -> Command:
        if step == "acknowledgement":
            return AcknowledgeRecall(recall_id=recall_id, place_id=site_id)
        return ReportRecallKits(
            recall_id=recall_id, place_id=site_id, reports=tuple(KitReportLine(**line) for line in lines)
        )

    try:
        await me.record(form, command)
    except NotFound as e:
        return me.not_found(e.message)
    except LedgerError as e:
        if e.code in ("not_authorised", "forbidden", "not_bound_here"):
            return me.forbidden(e.message)
        return _tasks_page(me, site_id, recall_id, 422, form=form, errors={"kits": e.message})
    said = "The recall is acknowledged." if step == "acknowledgement" else f"Reported {len(lines)} kit(s)."
    return RedirectResponse(f"{PATH}/sites/{site_id}/recalls/{recall_id}?done=" + quote(said), 303)


def _tasks_page(me: Person, site_id: UUID, recall_id: UUID, status: int = 200, **values: Any) -> HTMLResponse:
    if not sees_place(me.user.role, me.user.places, site_id):
        return me.forbidden(f"{me.user.principal} is not bound to this place.")
    try:
        recall = me.request.app.state.ledger.recall_view(recall_id)
    except LedgerError as e:
        return me.not_found(e.message)
    if str(site_id) not in recall.per_place:
        return me.not_found("This recall does not concern this place.")
    tasks = campaigns.task_list(recall, site_id)
    pages = page_count(len(tasks), TASKS_PER_PAGE)
    number = min(page_asked(me.request), pages)
    ack = recall.acknowledged.get(str(site_id))
    outcomes = EXERCISE_OUTCOMES if recall.exercise else SITE_OUTCOMES
    return me.page(
        "site_tasks.html",
        status,
        recall=recall,
        tasks=tasks[(number - 1) * TASKS_PER_PAGE : number * TASKS_PER_PAGE],
        total=len(tasks),
        unreported=sum(1 for t in tasks if not t.outcome),
        page_number=number,
        pages=pages,
        acknowledged=ack,
        outcomes=[str(o) for o in outcomes],
        site_id=site_id,
        place=place_names(me.request).get(site_id, str(site_id)),
        form_key=str(uuid4()),
        form=values.pop("form", FormData()),
        errors=values.pop("errors", {}),
        **values,
    )


# --- open a recall: a signed step -------------------------------------------------------------------


OPENING = Meaning.APPROVED
"""The meaning of the signature that opens a recall (the ledger requires it)."""


@router.get("/recalls/new/{lot_id}")
def new_recall(me: PersonDep, lot_id: UUID) -> HTMLResponse:
    """The form that opens a recall of a lot, signed: the person's password again and the meaning."""
    if refused := me.refused(permissions.RECALL_STATUS, "read recall status"):
        return refused
    return _new_recall_page(me, lot_id)


@router.post("/recalls/new/{lot_id}")
async def open_recall(me: PersonDep, lot_id: UUID) -> Response:
    """`OpenRecall` of the lot, signed `approved` by the signed-in person once their password checks
    out (21 CFR 11.200(a)(1)); the ledger decides who may (QA) and records the signature with it."""
    form = await me.request.form()
    me.require_csrf(form)
    if refused := me.refused(permissions.RECALL_STATUS, "read recall status"):
        return refused
    values = {
        k: (text_of(form, k) or "").strip() for k in ("recall_number", "reason", "classification", "scope")
    }
    missing = {k: "Required." for k, v in values.items() if not v}
    if not text_of(form, "password"):
        missing["password"] = "Sign with your password."
    if missing:
        return _new_recall_page(me, lot_id, 422, form=form, errors=missing)
    try:
        signature = me.sign(text_of(form, "password") or "", OPENING)
        answer = await me.record(
            form,
            lambda: OpenRecall(
                lot_ids=(lot_id,), signature=signature, exercise=form.get("exercise") == "yes", **values
            ),
            Created.of,
        )
    except LedgerError as e:
        if e.code in ("not_authorised", "forbidden"):
            return me.forbidden(e.message)
        names = (*values, "password")
        return _new_recall_page(me, lot_id, 422, form=form, errors=field_error(e, names, "recall_number"))
    return RedirectResponse(f"{PATH}/recalls/{answer['id']}", 303)


def _new_recall_page(me: Person, lot_id: UUID, status: int = 200, **values: Any) -> HTMLResponse:
    try:
        lot = me.request.app.state.ledger.get(Lot, lot_id)
    except LedgerError as e:
        return me.not_found(e.message)
    return me.page(
        "new_recall.html",
        status,
        lot=lot,
        meaning=str(OPENING),
        classes=[str(c) for c in RecallClass],
        scopes=[str(s) for s in RecallScope],
        form_key=str(uuid4()),
        form=values.pop("form", FormData()),
        errors=values.pop("errors", {}),
        **values,
    )
