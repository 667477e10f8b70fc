"""Answers of recall campaigns: the campaign view's own answers (`projections.recall_campaigns`); their
requests are the commands' bodies (api/routes/recalls.py)."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from api.schemas.common import Page
from ledger.commands.recalls import MAX_KITS
from projections.recall_campaigns import RecallStatusView, TaskKit

__all__ = ["MAX_KITS", "OutstandingPage", "RecallStatusView", "SiteTasksOut"]


class SiteTasksOut(BaseModel):
    """A place's recall task list: only its own kits."""

    recall_id: UUID
    recall_number: str
    site_id: UUID
    acknowledged_at: str | None
    kits: list[TaskKit]
    exercise: bool = False
    """A mock recall: report each kit `located` (or `dispensed`); nothing is quarantined or returned."""


class SiteRecall(BaseModel):
    """A recall that concerns a place: it held affected kits when the recall opened."""

    recall_id: UUID
    recall_number: str
    status: str
    exercise: bool
    classification: str
    reason: str
    opened_at: str
    acknowledged_at: str | None
    kits: int
    outstanding: int


class SiteRecallsOut(BaseModel):
    """The recalls that concern a place, newest first: open ones to act on, closed ones for the record."""

    site_id: UUID
    recalls: list[SiteRecall]


class OutstandingPage(Page[TaskKit]):
    """Kits not yet accounted for, by kit number."""
