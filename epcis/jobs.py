"""Capture jobs (the EPCIS 2.0 REST binding's `/capture/{captureID}`): what became of each document
captured, asked for again by its ID.

Capture is all or nothing and done within the request (`epcis.capture`), so a job is finished when
its ID is handed out: `running` is always false, `success` says whether the document was recorded
(or had been before), and the job keeps the capture's answer (events recorded, duplicates, eventIDs,
and each refused event's index, code, reason and pointer). Stored in `epcis_capture_job` (revision
0009), plain rows like named queries: the GMP record of a capture is the ledger steps it made. Each
person sees their own jobs: their errors may say what only the capturer was shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import JSON, Boolean, Column, Engine, Index, MetaData, String, Table, insert, select

from ledger.errors import InvalidInput, NotFound

metadata = MetaData()
capture_job = Table(
    "epcis_capture_job",
    metadata,
    Column("capture_id", String(60), primary_key=True),
    Column("created_by", String(100), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("finished_at", String(40), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("result", JSON, nullable=False),
    Index("epcis_capture_job_newest", "created_at", "capture_id"),
)


@dataclass(frozen=True, slots=True)
class CaptureJob:
    capture_id: str
    created_by: str
    created_at: str
    finished_at: str
    success: bool
    result: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """As the binding shows a capture job, with what the capture answered besides."""
        return {
            "captureID": self.capture_id,
            "createdAt": self.created_at,
            "finishedAt": self.finished_at,
            "running": False,
            "success": self.success,
            "captureErrorBehaviour": "rollback",
            "createdBy": self.created_by,
            **self.result,
        }


_ID = re.compile(r"^[0-9a-f]{32}$")
"""A capture ID as `record` makes them (anything else names no job, and never reaches the store)."""


def _time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CaptureJobs:
    """The capture jobs of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, principal: str, started: datetime, finished: datetime, success: bool, result: dict[str, Any]
    ) -> CaptureJob:
        """Keep a finished capture under a new ID."""
        job = CaptureJob(uuid4().hex, principal, _time(started), _time(finished), success, result)
        with self.engine.begin() as conn:
            conn.execute(
                insert(capture_job).values(
                    capture_id=job.capture_id, created_by=job.created_by, created_at=job.created_at,
                    finished_at=job.finished_at, success=job.success, result=job.result,
                )
            )
        return job

    def get(self, capture_id: str, principal: str) -> CaptureJob:
        """The job `capture_id` of `principal`, or NotFound (another person's job too: its errors may
        say what only its capturer was shown, e.g. a packaging run's arms)."""
        if not _ID.match(capture_id):
            raise NotFound("capture job", capture_id.encode("unicode_escape").decode()[:80])
        with self.engine.connect() as conn:
            row = conn.execute(
                select(capture_job).where(
                    capture_job.c.capture_id == capture_id, capture_job.c.created_by == principal
                )
            ).first()
        if row is None:
            raise NotFound("capture job", capture_id)
        return _job(row)

    def newest(self, principal: str, before: str | None, limit: int) -> list[CaptureJob]:
        """Up to `limit` of `principal`'s jobs, newest first, older than the job `before` (a page token)."""
        query = (
            select(capture_job)
            .where(capture_job.c.created_by == principal)
            .order_by(capture_job.c.created_at.desc(), capture_job.c.capture_id.desc())
        )
        if before is not None:
            if not _ID.match(before):
                raise InvalidInput("nextPageToken is not one this server issued", field="nextPageToken")
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(capture_job.c.created_at).where(capture_job.c.capture_id == before)
                ).first()
            if row is None:
                raise InvalidInput("nextPageToken is not one this server issued", field="nextPageToken")
            at = row.created_at
            query = query.where(
                (capture_job.c.created_at < at)
                | ((capture_job.c.created_at == at) & (capture_job.c.capture_id < before))
            )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query.limit(limit))]


def _job(row: Any) -> CaptureJob:
    return CaptureJob(
        row.capture_id, row.created_by, row.created_at, row.finished_at, bool(row.success), dict(row.result)
    )


__all__ = ["CaptureJob", "CaptureJobs", "capture_job"]
