"""The API's background checkpointer: a thread that keeps the Merkle tree in step with the chain and signs a
checkpoint when the policy (`LOTLINE_CHECKPOINT_EVERY_EVENTS` / `_EVERY_SECONDS`) says one is due.

A missing signing key or a chain the tree cannot be extended over does not stop the API: the problem is
logged (once per distinct message) and tried again at the next poll."""

from __future__ import annotations

import logging
import threading

from eventsourcing.persistence import PersistenceError
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import LedgerError
from ledger.transparency import Transparency

log = logging.getLogger("lotline.api.checkpoints")


class Checkpointer:
    """Runs `Transparency.maybe_checkpoint()` every `poll_seconds` until closed."""

    def __init__(self, transparency: Transparency, poll_seconds: float) -> None:
        self.transparency = transparency
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lotline-checkpointer", daemon=True)
        self._last_problem: str | None = None

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.round()
            self._stop.wait(self.poll_seconds)

    def round(self) -> None:
        """One poll: sync the tree and sign a checkpoint if one is due; log why not if it cannot."""
        try:
            made = self.transparency.maybe_checkpoint()
        except (LedgerError, SQLAlchemyError, PersistenceError) as e:
            problem = e.message if isinstance(e, LedgerError) else f"the store: {e}"
            if problem != self._last_problem:
                log.error("cannot sign checkpoints: %s", problem)
                self._last_problem = problem
            return
        self._last_problem = None
        if made is not None:
            log.info("checkpoint %d signed", made.size)
