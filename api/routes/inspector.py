"""For inspectors: verify the log where it is stored, read its head, and download the audit export
that `lotline-verify` checks offline without access to Lotline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import Exporter, LogDep, UnblindingDep, Verifier
from api.errors import errors
from api.export import events_jsonl, export_range, zip_answer
from api.routes import log as log_routes

router = APIRouter(prefix="/inspector", tags=["inspector"])

UpTo = Annotated[int | None, Query(ge=0, description="Export events 1..to (default: all, up to the head).")]


class VerificationOut(BaseModel):
    """The stored log re-derived from its events: chain, Merkle tree, checkpoints, cosignatures."""

    ok: bool
    events: int
    checkpoints: int
    cosignatures: int
    problem: str | None
    notes: list[str]
    head_hash: str


class HeadOut(BaseModel):
    """The chain's size and head hash (hex), and the newest signed checkpoint, if any (a C2SP note)."""

    size: int
    head_hash: str
    checkpoint: str | None


@router.get("/verification", response_model=VerificationOut, responses=errors())
def verify(user: Verifier, log: LogDep) -> Any:
    """Recompute every chain hash, Merkle leaf and root, and check every signature (inspector, QA, admin)."""
    report = log.verify()
    _, head = log.reader.head()
    return VerificationOut(
        ok=report.ok,
        events=report.events,
        checkpoints=report.checkpoints,
        cosignatures=report.cosignatures,
        problem=report.problem,
        notes=list(report.notes),
        head_hash=head.hex(),
    )


@router.get("/head", response_model=HeadOut, responses=errors())
def head(user: Verifier, log: LogDep) -> Any:
    """The chain's size and head hash, and the newest signed checkpoint (inspector, QA, admin)."""
    size, digest = log.reader.head()
    latest = log.latest()
    return HeadOut(size=size, head_hash=digest.hex(), checkpoint=None if latest is None else latest.note())


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The export directory as a ZIP archive."},
        **errors(),
    },
)
def export(user: Exporter, log: LogDep, blinding: UnblindingDep, to: UpTo = None) -> StreamingResponse:
    """Download the audit export (ZIP of manifest.json, events.jsonl, checkpoints, cosignatures, keys),
    streamed; unpack it and run `lotline-verify DIR` (inspector). It holds the kit list (unblinded): the
    read is recorded first."""
    blinding(True, "audit export (every event, with the kit list)")
    return zip_answer(log, export_range(log, to))


@router.get(
    "/export/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "events.jsonl of the export format."},
        **errors(),
    },
)
def export_events(
    user: Exporter, log: LogDep, blinding: UnblindingDep, to: UpTo = None
) -> StreamingResponse:
    """Stream events 1..to as JSON lines: each raw event in canonical form with seq, stream, version and
    chain hash (events.jsonl of docs/export-format.md) (inspector). It holds the kit list (unblinded):
    the read is recorded first."""
    blinding(True, "audit export events (with the kit list)")
    last = export_range(log, to)
    return StreamingResponse(
        events_jsonl(log, last), media_type="application/x-ndjson", headers={"X-Lotline-Last-Seq": str(last)}
    )


router.include_router(log_routes.router)  # checkpoints, proofs and witnesses: api/routes/log.py
