"""The read models as the API reads them: a request only reads. Events are applied by projection
workers (`lotline project --follow`, which `lotline serve` starts on its own), never in a request.

A request that must see a write waits, bounded, for the read models to reach that write's position
(`?after=N`, see `api.deps.get_read_side`); opening a recall waits for the genealogy to reach the
ledger's head before it reads kit states from it. Either answers 503 with Retry-After when the
workers do not get there in time. `Settings.projection_thread` runs a worker thread inside the app
instead (tests, and embedding the app in one process).
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import UUID

from sqlalchemy import Engine

from api.schemas.common import Freshness
from ledger.application import Ledger
from ledger.db import WalCheckpointer, start_wal_checkpoints
from ledger.errors import InvalidInput
from projections.db import open_engine
from projections.genealogy import Genealogy
from projections.recall_campaigns import KitStateReader
from projections.runner import ProjectionRunner

log = logging.getLogger("lotline.api.readside")

POLL_SECONDS = 0.02
"""How often a waiting request looks at the read models' positions (one small indexed SELECT)."""


class ReadSide:
    """The read models of one API process: queries, positions and bounded waits; no applying."""

    def __init__(self, ledger: Ledger, database_url: str, *, wait_seconds: float):
        self.engine: Engine = open_engine(database_url)
        try:
            self.runner = ProjectionRunner(ledger, self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.wait_seconds = wait_seconds
        self.database_url = database_url
        self._worker: ProjectionRunner | None = None
        self._checkpoints: WalCheckpointer | None = None
        self._thread: threading.Thread | None = None

    def freshness(self, as_of: int) -> Freshness:
        """The freshness of an answer read at position `as_of`."""
        head = self.runner.head()
        return Freshness(as_of=as_of, head=head, lag=max(0, head - as_of))

    def wait_for(self, position: int) -> int:
        """Wait (at most `wait_seconds`) until every read model has applied `position`; the position
        reached, or `ProjectionTimeout` (503 with Retry-After) naming the position reached and any read
        model that stopped before `position`. A position past the ledger's head was never written: no
        wait can reach it, so it is refused at once (`InvalidInput`, 422)."""
        head = self.runner.head()
        if position > head:
            raise InvalidInput(
                f"position {position} is past the ledger's head {head}: pass a position a write answered",
                field="query.after",
            )
        return self.runner.wait_for(position, timeout=self.wait_seconds, poll=POLL_SECONDS)

    def kit_states(self) -> tuple[KitStateReader, dict[str, Any]]:
        """A bulk reader of kits' current states on the genealogy, once a worker has brought it to the
        ledger's head, and where its answers come from (the position they are as of); the ledger opens
        recalls with it (`use_kit_states`)."""
        head = self.runner.head()
        self.runner.wait_for(head, timeout=self.wait_seconds, poll=POLL_SECONDS, names=(Genealogy.name,))
        as_of = self.runner.positions()[Genealogy.name]
        return KitStateReader(self.engine), {"reader": "genealogy read model", "as_of": as_of}

    def site_kits(self, site_id: UUID) -> tuple[list[tuple[UUID, str, str]], dict[str, Any]]:
        """Every kit delivered to the site and what became of it, from the genealogy once a worker has
        brought it to the ledger's head; the ledger closes sites out with it (`use_site_kits`)."""
        head = self.runner.head()
        self.runner.wait_for(head, timeout=self.wait_seconds, poll=POLL_SECONDS, names=(Genealogy.name,))
        answer = self.runner.inventory.accountability(site_id)
        kits = [(k.kit_id, k.kit_number, k.outcome) for k in answer.kits]
        return kits, {"reader": "genealogy read model", "as_of": answer.as_of}

    def start_worker(self, poll_seconds: float) -> None:
        """Apply events in a thread of this process (`Settings.projection_thread`), and checkpoint the
        store's write-ahead log in another, as a projection worker does."""
        self._worker = ProjectionRunner(self.runner.ledger, self.engine)
        self._checkpoints = start_wal_checkpoints(self.database_url)
        self._thread = threading.Thread(
            target=self._worker.run_forever, kwargs={"poll_interval": poll_seconds},
            name="lotline-projections", daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._checkpoints is not None:
            self._checkpoints.close()
        self.engine.dispose()
