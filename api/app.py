"""The FastAPI application: `create_app(settings)` builds it; ledger, users, read models, idempotency
keys and the verifiable log live on `app.state`, opened and closed by the lifespan handler.

The app makes no tables: it starts only on a store whose schema is current (`lotline db upgrade`,
which `lotline serve` runs once before it starts its workers), and refuses to start otherwise."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Literal

from eventsourcing.persistence import PersistenceError
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from api import console, docs, errors, openapi
from api.checkpointer import Checkpointer
from api.console.sessions import ConsoleSessions
from api.deps import LedgerDep, UserDep
from api.idempotency import IdempotencyStore
from api.limits import BodyLimit
from api.query_text import clean_query
from api.readside import ReadSide
from api.routes import (
    access,
    admin,
    distribution,
    inspector,
    lots,
    manufacturing,
    queries,
    recalls,
    release,
    site,
)
from api.routes import epcis as epcis_routes
from epcis import Epcis
from ledger.application import Ledger
from ledger.config import Settings
from ledger.identity import Identity
from ledger.schema import require_current
from ledger.transparency import Transparency

log = logging.getLogger("lotline.api")

DESCRIPTION = """Lotline's HTTP API: commands for every step of a clinical supply chain, each answered
with the new events' chain positions and hashes; traces, recall impact, inventory, custody and audit
trails from the read models; verification and the audit export for inspectors.

Every route but `/health` and `/inspector/log/vkey` (the log's public key) needs `Authorization: Bearer
<token>` (`lotline users token NAME`). Who may do what, signatures, idempotency keys, paging and
freshness: see docs/api.md."""


class Health(BaseModel):
    """The service runs and its store answers: the hash chain's size and head hash (hex)."""

    status: Literal["ok"] = "ok"
    chain_size: int
    head_hash: str


class Unavailable(BaseModel):
    """The service runs but its store does not answer."""

    status: Literal["unavailable"] = "unavailable"
    detail: str


class FailedReadModel(BaseModel):
    """A read model that stopped on an event (the others go on): the event's position and the error."""

    read_model: str
    position: int
    error: str


class ReadModels(BaseModel):
    """The read models: reachable, the position each applied, how far behind the ledger they are, and
    those that stopped on an event."""

    reachable: bool
    position: int | None = None
    head: int | None = None
    lag: int | None = None
    positions: dict[str, int] = {}
    failed: list[FailedReadModel] = []
    epcis_index: int | None = None
    """The chain position the EPCIS index has reached (kept by the projection worker beside the read
    models; EPCIS queries wait for it, and its lag alone does not make the API unready; stopped on an
    error, it is listed in `failed` as `epcis_index`)."""


class Readiness(BaseModel):
    """Whether the store and the read models answer, and how far behind the read models are."""

    ready: bool
    store_reachable: bool
    chain_size: int | None = None
    read_models: ReadModels


def create_app(settings: Settings | None = None, *, long_lived: bool = False) -> FastAPI:
    """The Lotline API on the store `settings.database_url` (from the environment by default);
    `long_lived`: the process serves nothing else until it exits (`settle_heap` once started)."""
    app_settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened: list[Any] = []
        url = app_settings.database_url
        require_current(url)
        try:
            app.state.ledger = _opened(opened, Ledger.open(url, keys_dir=app_settings.keys_dir))
            app.state.identity = _opened(opened, Identity.open(url, ledger=app.state.ledger))
            app.state.idempotency = IdempotencyStore(app.state.identity.engine)
            app.state.console_sessions = ConsoleSessions(
                app.state.identity.engine, timedelta(minutes=app_settings.console_idle_minutes)
            )
            app.state.transparency = _opened(
                opened, Transparency.for_reader(app.state.ledger.chain, app_settings)
            )
            app.state.read_side = _opened(
                opened,
                ReadSide(app.state.ledger, url, wait_seconds=app_settings.read_wait_seconds),
            )
            wait = app_settings.read_wait_seconds
            app.state.epcis = _opened(opened, Epcis(app.state.ledger, url, followed=True, wait_seconds=wait))
            app.state.ledger.use_kit_states(app.state.read_side.kit_states)
            app.state.ledger.use_site_kits(app.state.read_side.site_kits)
            app.state.ledger.on_release(app.state.transparency.checkpoint_after_release)
            if app_settings.projection_thread:
                app.state.read_side.start_worker(app_settings.projection_poll_seconds)
                _opened(opened, app.state.epcis.start_following(app_settings.projection_poll_seconds))
            if app_settings.checkpoint_in_background:
                poll = app_settings.checkpoint_poll_seconds
                _opened(opened, Checkpointer(app.state.transparency, poll).start())
            if long_lived:
                settle_heap()
            yield
        finally:
            for thing in reversed(opened):
                thing.close()

    app = FastAPI(
        title="Lotline",
        summary="Hash-chained traceability ledger for clinical-trial supply",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(clean_query)],
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = app_settings
    app.add_middleware(BodyLimit, max_bytes=app_settings.max_body_bytes)
    errors.install(app)
    # Routes are matched in the order they are added, one by one: the busiest (traces, a site's
    # receipts) first, the console and the docs last. No path of one router is the path of another's
    # (tests/api/test_routes.py), so the order decides speed only.
    for module in (queries, site, distribution, recalls, admin, access, lots, manufacturing, release,
                   inspector, epcis_routes):
        app.include_router(module.router)
    openapi.install(app)
    docs.install(app)
    console.install(app, timedelta(minutes=app_settings.console_idle_minutes))

    @app.get("/health", response_model=Health, responses={503: {"model": Unavailable}}, tags=["service"])
    def health(ledger: LedgerDep) -> Health | JSONResponse:
        """Whether the service runs and its store answers, with the hash chain's size and head (no token)."""
        try:
            size, head = ledger.chain.head()
        except PersistenceError:
            log.exception("health check: the event store does not answer")
            body = Unavailable(detail="the event store does not answer")
            return JSONResponse(status_code=503, content=body.model_dump())
        return Health(chain_size=size, head_hash=head.hex())

    @app.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": Readiness}, **errors.errors()},
        tags=["service"],
    )
    def ready(request: Request, user: UserDep, ledger: LedgerDep) -> Readiness | JSONResponse:
        """Whether the store and the read models answer, how many events the read models lag behind, and
        which read model stopped on which event (then 503)."""
        # `request.app`, not the enclosing `app`: FastAPI caches every endpoint in module-level LRU
        # caches, and a closure over the app would keep each app made in a process alive with it.
        state = request.app.state
        answer = _readiness(ledger, state.read_side, state.epcis)
        if answer.ready:
            return answer
        return JSONResponse(status_code=503, content=answer.model_dump())

    return app


def _opened(opened: list[Any], thing: Any) -> Any:
    opened.append(thing)
    return thing


def _readiness(ledger: Ledger, read_side: ReadSide, epcis: Epcis) -> Readiness:
    try:
        size, _ = ledger.chain.head()
    except PersistenceError:
        log.exception("readiness: the event store does not answer")
        return Readiness(ready=False, store_reachable=False, read_models=ReadModels(reachable=False))
    try:
        positions = read_side.runner.positions()
        failed = [FailedReadModel(**f.as_dict()) for f in [*read_side.runner.failures(), *epcis.failures()]]
        indexed = epcis.position()
    except SQLAlchemyError:
        log.exception("readiness: the read models do not answer")
        return Readiness(
            ready=False, store_reachable=True, chain_size=size, read_models=ReadModels(reachable=False)
        )
    position = min(positions.values())
    head = read_side.runner.head()
    models = ReadModels(
        reachable=True, position=position, head=head, lag=max(0, head - position), positions=positions,
        failed=failed, epcis_index=indexed,
    )
    return Readiness(ready=not failed, store_reachable=True, chain_size=size, read_models=models)


def served_app() -> FastAPI:
    """The app as `lotline serve` runs it in each uvicorn worker: a long-lived process."""
    return create_app(long_lived=True)


def settle_heap() -> None:
    """Once a server has started, the objects it made (modules, statements, the read side and its
    caches) live as long as it does: freeze them so the collector's full passes no longer walk them,
    and let the young generation grow larger before it is collected. Measured on the 1M-event store
    (`scripts/bench_console.py`): full passes over ~190,000 objects paused the server 82-90 ms every
    few hundred requests, the p99 of every page (a trace page's 94-97 ms); frozen, none ran during the
    benchmark and the trace page's p99 fell to 24 ms. Not for a process that makes many apps (tests):
    a frozen object is never freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
