"""The FastAPI application: `create_app(settings)` builds it; the ledger lives on `app.state`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import LedgerDep
from ledger.application import Ledger
from ledger.config import Settings

log = logging.getLogger("lotline.api")


class Health(BaseModel):
    """The service runs and its store answers: the hash chain's size and head hash (hex)."""

    status: Literal["ok"] = "ok"
    chain_size: int
    head_hash: str


class Unavailable(BaseModel):
    """The service runs but its store does not answer."""

    status: Literal["unavailable"] = "unavailable"
    detail: str


def create_app(settings: Settings | None = None) -> FastAPI:
    """The Lotline API on the store `settings.database_url` (from the environment by default)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger = Ledger.open(settings.database_url)
        app.state.ledger = ledger
        try:
            yield
        finally:
            ledger.close()

    app = FastAPI(title="Lotline", summary="Hash-chained traceability ledger for clinical-trial supply",
                  version="0.1.0", lifespan=lifespan)
    app.state.settings = settings

    @app.get("/health", response_model=Health, responses={503: {"model": Unavailable}}, tags=["service"])
    def health(ledger: LedgerDep) -> Health | JSONResponse:
        """Whether the service runs and its store answers, with the hash chain's size and head."""
        try:
            size, head = ledger.chain.head()
        except PersistenceError:
            log.exception("health check: the event store does not answer")
            body = Unavailable(detail="the event store does not answer")
            return JSONResponse(status_code=503, content=body.model_dump())
        return Health(chain_size=size, head_hash=head.hex())

    return app
