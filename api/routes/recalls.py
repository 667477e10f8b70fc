"""Recall campaigns: open (QA), acknowledge and report kits (sites), returns received and destruction
(depot), justifications and closure (QA); the live status, the outstanding kits, each site's own task
list, and the recall report as an HTML page.

Opening a recall reads the affected kits' states from the genealogy read model, caught up first
(`ReadSide.kit_states`, given to the ledger once by the app's lifespan handler)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import LedgerDep, LogDep, OwnSite, ReadDep, RecallReader, UserDep, Write
from api.errors import errors
from api.recall_report import report_answer
from api.routes.queries import Limit, Offset
from api.schemas.bodies import Body, body_of
from api.schemas.common import Recorded, SignatureIn
from api.schemas.recalls import OutstandingPage, RecallStatusView, SiteRecallsOut, SiteTasksOut
from api.schemas.results import Created
from api.views import recalls_at
from ledger.commands import (
    AcknowledgeRecall,
    CloseRecall,
    DestroyRecalledKits,
    JustifyUnaccounted,
    KitReportLine,
    OpenRecall,
    ReceiveRecallReturns,
    ReportRecallKits,
)
from ledger.commands.base import When
from projections import recall_campaigns as campaigns

router = APIRouter(tags=["recall campaigns"])

RECALL = {"recall_id"}
AT_PLACE = {"recall_id", "place_id"}
OpenRecallIn = Annotated[Body, body_of(OpenRecall, signature=SignatureIn)]
AcknowledgementIn = Annotated[Body, body_of(AcknowledgeRecall, path=AT_PLACE)]
KitReportIn = Annotated[
    Body, body_of(KitReportLine, path={"kit_id"}, model_name="KitReport", occurred_at=(When, None))
]
KitReportsIn = Annotated[Body, body_of(ReportRecallKits, path=AT_PLACE, aliases={"reports": "kits"})]
ReturnsIn = Annotated[Body, body_of(ReceiveRecallReturns, path=RECALL)]
DestructionIn = Annotated[Body, body_of(DestroyRecalledKits, path=RECALL)]
JustificationIn = Annotated[
    Body, body_of(JustifyUnaccounted, path={"recall_id", "kit_id"}, signature=SignatureIn)
]
ClosureIn = Annotated[Body, body_of(CloseRecall, path=RECALL, signature=SignatureIn)]


@router.post("/recalls", status_code=201, response_model=Created, responses=errors(404, 409))
def open_recall(body: OpenRecallIn, write: Write) -> Any:
    """Open a recall of the suspect lots: the lots are recalled and every kit downstream is recorded
    with its place and status as of now; affected kits can no longer ship or be dispensed (QA, signed
    `approved`)."""
    return write(body)


@router.post(
    "/recalls/{recall_id}/sites/{site_id}/acknowledgement",
    response_model=Recorded,
    responses=errors(404, 409),
)
def acknowledge(recall_id: UUID, site_id: OwnSite, body: AcknowledgementIn, write: Write) -> Any:
    """The site (or depot) acknowledges the recall notice, once (site: their own sites; depot)."""
    return write(body, recall_id=recall_id, place_id=site_id)


@router.post(
    "/recalls/{recall_id}/sites/{site_id}/kits/{kit_id}/report",
    response_model=Recorded,
    responses=errors(404, 409),
)
def report_kit(recall_id: UUID, site_id: OwnSite, kit_id: UUID, body: KitReportIn, write: Write) -> Any:
    """Report one kit of the recall held at the site: quarantined, returned (sent back to the depot
    that shipped it, in transit until the depot receives it), or dispensed with the subject (site:
    their own sites; depot for its stock)."""
    line = {**body.model_dump(), "kit_id": kit_id}
    when = line.pop("occurred_at")
    return write.run(
        lambda: ReportRecallKits(recall_id=recall_id, place_id=site_id, reports=[line], occurred_at=when)
    )


@router.post(
    "/recalls/{recall_id}/sites/{site_id}/reports", response_model=Recorded, responses=errors(404, 409)
)
def report_kits(recall_id: UUID, site_id: OwnSite, body: KitReportsIn, write: Write) -> Any:
    """Report many kits of the recall held at the site in one write, all or none: a refused request
    names every kit it refused (site: their own sites; depot for its stock)."""
    return write(body, recall_id=recall_id, place_id=site_id)


@router.post("/recalls/{recall_id}/returns", response_model=Recorded, responses=errors(404, 409))
def receive_returns(recall_id: UUID, body: ReturnsIn, write: Write) -> Any:
    """The depot received kits that sites sent back: they are held at the depot, returned, and
    accounted for (depot)."""
    return write(body, recall_id=recall_id)


@router.post(
    "/recalls/{recall_id}/destructions", response_model=Recorded, responses=errors(403, 404, 409)
)
def destroy(recall_id: UUID, body: DestructionIn, write: Write) -> Any:
    """The place holding kits of the recall destroyed them, after QA authorised their destruction
    (signed): the kits are destroyed and the recall records each with the certificate. The depot the
    kits came back to, or the depot or site where they are quarantined (site: their own sites). The
    only way to destroy a kit of an open recall: `/locations/{id}/destructions` refuses it."""
    return write(body, recall_id=recall_id)


@router.post(
    "/recalls/{recall_id}/kits/{kit_id}/justification", response_model=Recorded, responses=errors(404, 409)
)
def justify(recall_id: UUID, kit_id: UUID, body: JustificationIn, write: Write) -> Any:
    """QA's signed justification for a kit that cannot be accounted for (QA, signed `approved`)."""
    return write(body, recall_id=recall_id, kit_id=kit_id)


@router.post("/recalls/{recall_id}/closure", response_model=Recorded, responses=errors(404, 409))
def close(recall_id: UUID, body: ClosureIn, write: Write) -> Any:
    """Close the recall: refused (409) while any kit is neither accounted for nor justified (QA, signed
    `approved`)."""
    return write(body, recall_id=recall_id)


@router.get("/recalls/{recall_id}/status", response_model=RecallStatusView, responses=errors(404))
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


@router.get("/sites/{site_id}/recalls", response_model=SiteRecallsOut, responses=errors(403))
def site_recalls(site_id: OwnSite, user: UserDep, ledger: LedgerDep, read: ReadDep) -> Any:
    """The recalls (and mock recalls) that concern the site or depot, newest first, with what it has
    left to do: its task list is at `/recalls/{id}/sites/{site}/tasks` (a site user: their own sites;
    blinded: counts only)."""
    return recalls_at(ledger, read, site_id)


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
        "exercise": recall.exercise,
    }


@router.get(
    "/recalls/{recall_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}, "application/pdf": {}}}, **errors(404, 503)},
)
def report(
    recall_id: UUID,
    user: RecallReader,
    ledger: LedgerDep,
    log: LogDep,
    read: ReadDep,
    format: Annotated[Literal["html", "pdf"], Query(description="`pdf`: the same report, printed.")] = "html",
) -> Any:
    """The recall report for an inspector: scope, genealogy, per-place table, outstanding kits by place,
    subjects who received affected kits (QA, QP, recall investigators, inspectors), the timeline of
    every step with who and when, signatures, the checkpoint it was made against; as HTML or PDF."""
    return report_answer(ledger, ledger.recall_view(recall_id), log, read, user, format)
