"""The API's routers, one module per area; `ROUTERS` is what `create_app` includes, in /docs order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.idempotency import Once
from api.recording import RecordingLedger
from api.schemas.common import Recorded, RecordedEvent
from api.schemas.results import Created


def record(
    ledger: RecordingLedger,
    once: Once,
    command: Callable[[], Any],
    shape: Callable[[Any, list[RecordedEvent]], BaseModel] | None = None,
    status: int = 200,
) -> BaseModel | JSONResponse:
    """Run one ledger command (once per Idempotency-Key) and answer with the events it recorded."""

    def step() -> BaseModel:
        result, events = ledger.recording(command)
        return shape(result, events) if shape is not None else Recorded(events=events)

    return once(step, status)


def created(ident: Any, events: list[RecordedEvent]) -> Created:
    return Created(id=ident, events=events)
