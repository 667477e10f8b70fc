"""The read models inside the API process: kept up to date by a background loop, and brought up to
date again (a bounded number of pages) before each query, so an answer reflects the writes made
before it was asked. Several API processes may run this at once: the runner applies each event
exactly once, and a process that loses a race simply reads what the winner applied.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine

from api.schemas.common import Freshness
from ledger.application import Ledger
from projections.base import ProjectionConflict
from projections.db import open_engine
from projections.genealogy import Genealogy
from projections.recall_campaigns import KitStateReader
from projections.runner import ProjectionRunner

log = logging.getLogger("lotline.api.readside")

CATCH_UP_PAGES = 100_000
"""Reading kit states for a recall first brings the genealogy read model up to the ledger's head."""


class ReadSide:
    """One runner per process, one lock so that this process never races itself."""

    def __init__(self, ledger: Ledger, database_url: str, *, catch_up_batches: int, poll_seconds: float):
        self.engine: Engine = open_engine(database_url)
        try:
            self.runner = ProjectionRunner(ledger, self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self.catch_up_batches = catch_up_batches
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self, max_batches: int | None = None) -> None:
        """Apply new events, at most `max_batches` pages (default: the configured bound)."""
        with self._lock:
            try:
                self.runner.catch_up(max_batches=max_batches or self.catch_up_batches)
            except ProjectionConflict as e:
                log.debug("another process applied the batch first: %s", e.message)

    def freshness(self, as_of: int) -> Freshness:
        """The freshness of an answer read at position `as_of`."""
        head = self.runner.head()
        return Freshness(as_of=as_of, head=head, lag=max(0, head - as_of))

    def kit_states(self) -> tuple[KitStateReader, dict[str, Any]]:
        """A bulk reader of kits' current states on the caught-up genealogy, and where its answers
        come from (the position they are as of); the ledger opens recalls with it (`use_kit_states`)."""
        self.refresh(max_batches=CATCH_UP_PAGES)
        as_of = self.runner.positions()[Genealogy.name]
        return KitStateReader(self.engine), {"reader": "genealogy read model", "as_of": as_of}

    def start(self) -> None:
        """Start the background loop (a daemon thread) that keeps the read models up to date."""
        self._thread = threading.Thread(target=self._loop, name="lotline-projections", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh(max_batches=10)
            except Exception:  # keep the loop alive; queries catch up themselves and report lag
                log.exception("applying events to the read models failed; retrying")
            self._stop.wait(self.poll_seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.engine.dispose()
