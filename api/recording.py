"""The ledger as the API runs it: each command's new events are noted so the answer can name them.

Some commands return only the id they created (a shipment also changes every kit it carries), so the
events a command recorded are taken from the library's `_notify` hook, which receives every
recording of a save in the thread that saved, and looked up in the chain for their seq and hash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from api.schemas.common import RecordedEvent
from ledger.application import Ledger

R = TypeVar("R")


class RecordingLedger(Ledger):
    """`Ledger`, plus `recording(step)`: run a command and return what it recorded."""

    name = "Lotline"  # the same application (and tables) as Ledger's

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._local = threading.local()

    @contextmanager
    def _capture(self) -> Iterator[list[tuple[UUID, int]]]:
        captured: list[tuple[UUID, int]] = []
        self._local.captured = captured
        try:
            yield captured
        finally:
            self._local.captured = None

    def _notify(self, recordings: list[Any]) -> None:
        super()._notify(recordings)
        captured = getattr(self._local, "captured", None)
        if captured is not None:
            captured.extend(
                (r.domain_event.originator_id, r.domain_event.originator_version) for r in recordings
            )

    def recording(self, step: Callable[[], R]) -> tuple[R, list[RecordedEvent]]:
        """Run `step` (one ledger command) and return its result and the events it recorded."""
        with self._capture() as captured:
            result = step()
        links = self.chain.links_for(captured)
        events = [
            RecordedEvent(seq=k.seq, stream=UUID(k.stream), version=k.version, chain_hash=k.chain_hash.hex())
            for k in links
        ]
        return result, events
