"""Recall campaigns: open (QA), acknowledge and report kits (sites), returns received and destruction
(depot), justifications and closure (QA); the live status, the outstanding kits, each site's own task
list, and the recall report as an HTML page."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import LedgerDep, LogDep, OnceDep, OwnSite, ReadDep, RecallReader, SignerDep, UserDep
from api.errors import errors
from api.readside import ReadSide
from api.recall_report import render_report
from api.routes import created, record
from api.routes.queries import Limit, Offset
from api.schemas.common import Recorded
from api.schemas.recalls import (
    OutstandingPage,
    RecallAckIn,
    RecallCloseIn,
    RecallDestructionIn,
    RecallJustificationIn,
    RecallKitReportIn,
    RecallOpenIn,
    RecallReportsIn,
    RecallReturnIn,
    RecallStatusOut,
    SiteTasksOut,
)
from api.schemas.results import Created
from ledger.domain.recall import KitOutcome, KitReport
from projections import recall_campaigns as campaigns
from projections.genealogy import Genealogy

router = APIRouter(tags=["recall campaigns"])

CATCH_UP_PAGES = 100_000
"""Opening a recall first brings the kit read model up to the ledger's head (every page)."""


def _kit_reader(read: ReadSide) -> tuple[campaigns.KitStateReader, dict[str, Any]]:
    """A bulk kit reader on the caught-up genealogy, and the position it answers as of."""
    read.refresh(max_batches=CATCH_UP_PAGES)
    as_of = read.runner.positions()[Genealogy.name]
    return campaigns.KitStateReader(read.engine), {"reader": "genealogy read model", "as_of": as_of}


@router.post("/recalls", status_code=201, response_model=Created, responses=errors(404, 409))
def open_recall(
    body: RecallOpenIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep, read: ReadDep
) -> Any:
    """Open a recall of the suspect lots: the lots are recalled and every kit downstream is recorded
    with its place and status as of now; affected kits can no longer ship or be dispensed (QA, signed
    `approved`)."""

    def step() -> Any:
        reader, source = _kit_reader(read)
        written = ledger.open_recall(
            user.actor,
            recall_number=body.recall_number,
            lot_ids=body.lot_ids,
            reason=body.reason,
            classification=body.classification,
            scope=body.scope,
            signature=signer.sign(body.signature),
            kit_states=reader,
            source=source,
            occurred_at=body.occurred_at,
        )
        return written

    return record(ledger, once, step, lambda w, events: created(w.ids["recall_id"], events), 201)


@router.post(
    "/recalls/{recall_id}/sites/{site_id}/acknowledgement",
    response_model=Recorded,
    responses=errors(404, 409),
)
def acknowledge(
    recall_id: UUID, site_id: OwnSite, body: RecallAckIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """The site (or depot) acknowledges the recall notice, once (site: their own sites; depot)."""
    return record(
        ledger,
        once,
        lambda: ledger.acknowledge_recall(
            user.actor, recall_id, place_id=site_id, occurred_at=body.occurred_at
        ),
    )


@router.post(
    "/recalls/{recall_id}/sites/{site_id}/kits/{kit_id}/report",
    response_model=Recorded,
    responses=errors(404, 409),
)
def report_kit(
    recall_id: UUID,
    site_id: OwnSite,
    kit_id: UUID,
    body: RecallKitReportIn,
    user: UserDep,
    ledger: LedgerDep,
    once: OnceDep,
) -> Any:
    """Report one kit of the recall held at the site: quarantined, returned (sent back to the depot
    that shipped it, in transit until the depot receives it), or dispensed with the subject (site:
    their own sites; depot for its stock)."""
    return record(
        ledger,
        once,
        lambda: ledger.report_recall_kit(
            user.actor,
            recall_id,
            place_id=site_id,
            kit_id=kit_id,
            outcome=body.outcome,
            subject=body.subject,
            occurred_at=body.occurred_at,
        ),
    )


@router.post(
    "/recalls/{recall_id}/sites/{site_id}/reports", response_model=Recorded, responses=errors(404, 409)
)
def report_kits(
    recall_id: UUID, site_id: OwnSite, body: RecallReportsIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Report many kits of the recall held at the site in one write, all or none: a refused request
    names every kit it refused (site: their own sites; depot for its stock)."""
    reports = [KitReport(k.kit_id, KitOutcome(k.outcome), k.subject) for k in body.kits]
    return record(
        ledger,
        once,
        lambda: ledger.report_recall_kits(
            user.actor, recall_id, place_id=site_id, reports=reports, occurred_at=body.occurred_at
        ),
    )


@router.post("/recalls/{recall_id}/returns", response_model=Recorded, responses=errors(404, 409))
def receive_returns(
    recall_id: UUID, body: RecallReturnIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """The depot received kits that sites sent back: they are held at the depot, returned, and
    accounted for (depot)."""
    return record(
        ledger,
        once,
        lambda: ledger.receive_recall_returns(
            user.actor, recall_id, depot_id=body.depot_id, kit_ids=body.kit_ids, occurred_at=body.occurred_at
        ),
    )


@router.post("/recalls/{recall_id}/destructions", response_model=Recorded, responses=errors(404, 409))
def destroy(
    recall_id: UUID, body: RecallDestructionIn, user: UserDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """The depot destroyed kits of the recall it holds, after QA authorised their destruction
    (signed): the kits are destroyed and the recall records each with the certificate (depot)."""
    return record(
        ledger,
        once,
        lambda: ledger.destroy_recalled_kits(
            user.actor,
            recall_id,
            depot_id=body.depot_id,
            kit_ids=body.kit_ids,
            certificate=body.certificate,
            method=body.method,
            occurred_at=body.occurred_at,
        ),
    )


@router.post(
    "/recalls/{recall_id}/kits/{kit_id}/justification", response_model=Recorded, responses=errors(404, 409)
)
def justify(
    recall_id: UUID,
    kit_id: UUID,
    body: RecallJustificationIn,
    user: UserDep,
    signer: SignerDep,
    ledger: LedgerDep,
    once: OnceDep,
) -> Any:
    """QA's signed justification for a kit that cannot be accounted for (QA, signed `approved`)."""
    return record(
        ledger,
        once,
        lambda: ledger.justify_unaccounted(
            user.actor,
            recall_id,
            kit_id=kit_id,
            justification=body.justification,
            signature=signer.sign(body.signature),
            occurred_at=body.occurred_at,
        ),
    )


@router.post("/recalls/{recall_id}/closure", response_model=Recorded, responses=errors(404, 409))
def close(
    recall_id: UUID, body: RecallCloseIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Close the recall: refused (409) while any kit is neither accounted for nor justified (QA, signed
    `approved`)."""
    return record(
        ledger,
        once,
        lambda: ledger.close_recall(
            user.actor, recall_id, signature=signer.sign(body.signature), occurred_at=body.occurred_at
        ),
    )


@router.get("/recalls/{recall_id}/status", response_model=RecallStatusOut, responses=errors(404))
def recall_status(recall_id: UUID, user: RecallReader, ledger: LedgerDep) -> Any:
    """Counts and percentages per place and overall, and the time from opening to full reconciliation."""
    return campaigns.status(ledger.recall_view(recall_id))


@router.get("/recalls/{recall_id}/outstanding", response_model=OutstandingPage, responses=errors(404))
def outstanding(
    recall_id: UUID,
    user: RecallReader,
    ledger: LedgerDep,
    site_id: Annotated[UUID | None, Query(description="Only this place's kits.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """The kits not yet accounted for, by kit number, a page at a time."""
    total, items = campaigns.outstanding_page(ledger.recall_view(recall_id), site_id, limit, offset)
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.get("/recalls/{recall_id}/sites/{site_id}/tasks", response_model=SiteTasksOut, responses=errors(404))
def site_tasks(recall_id: UUID, site_id: OwnSite, user: UserDep, ledger: LedgerDep) -> Any:
    """The site's own kits of the recall (blinded) with what it has reported (site: their own sites)."""
    recall = ledger.recall_view(recall_id)
    ack = recall.acknowledged.get(str(site_id))
    return {
        "recall_id": recall.id,
        "recall_number": recall.recall_number,
        "site_id": site_id,
        "acknowledged_at": ack["at"] if ack else None,
        "kits": campaigns.task_list(recall, site_id),
    }


@router.get(
    "/recalls/{recall_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **errors(404)},
)
def report(recall_id: UUID, user: RecallReader, ledger: LedgerDep, log: LogDep) -> Any:
    """The recall report for an inspector: scope, genealogy, timeline, per-site table, signatures, and
    the checkpoint it was made against."""
    return HTMLResponse(render_report(ledger, ledger.recall_view(recall_id), log))
