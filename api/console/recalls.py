"""The console's recall dashboard for QA, QP, recall investigators, inspectors and admins: every recall,
and one recall's status per place, which the page brings up to date by itself every few seconds
(`status.json`, the same answer as `GET /recalls/{id}/status`); the report as HTML or PDF."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api import permissions
from api.console import PATH, PersonDep
from api.recall_report import report_answer
from ledger.errors import LedgerError
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
