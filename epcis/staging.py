"""A ledger that runs commands against the real store's state but keeps what they record in memory.

Capture runs every command of a partner document here first: the ledger's own rules apply (with the
state left by the document's earlier events, so quantities consumed add up across the document),
and nothing reaches the store. When every event passed, `commit()` writes all the recorded events,
in the order the commands produced them, in one transaction of the real store: all or nothing.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Recording

from ledger.application import Ledger
from ledger.domain.base import LedgerAggregate
from ledger.errors import AlreadyExists, ConcurrentWriteConflict

A = TypeVar("A", bound=LedgerAggregate)


# TODO(issue 11, command handlers): replace StagedLedger with a unit of work the ledger offers, and
# delete this module. Copying `base.__dict__` skips `Ledger.__init__`, so whatever state the ledger
# gains is shared by reference without anyone deciding it (already so for the recall write cache,
# `_writing`: harmless only because capture refuses recall steps). The plan, for the ledger to provide:
#     Ledger.unit_of_work() -> UnitOfWork       # nothing written until commit(); leaving unused discards
#     UnitOfWork.handle(command) -> Result      # one step: loads through the unit (its staged aggregates
#                                               # first, then the store), decides, stages its events; a
#                                               # refused step raises its LedgerError and stages nothing
#     UnitOfWork.get(cls, ident) / .exists(ident)  # reads that see the steps staged so far
#     UnitOfWork.pending -> int                 # events staged so far
#     UnitOfWork.commit() -> tuple[Result, ...]  # every staged event, in order, in one transaction of the
#                                               # store; each step's Result with its events' chain seq
#                                               # and hash; ConcurrentWriteConflict/AlreadyExists if
#                                               # another writer got in first, and then nothing written
# Capture then runs each planned command through `handle` and takes chain positions from `commit()`
# (no `_seqs` lookup, no reaching into `_staged`). Until the command objects land, the same unit of
# work exposing the Ledger's step methods would do.
class StagedLedger(Ledger):
    """The real ledger's commands over an overlay of staged aggregates; `commit()` writes them at once."""

    def __init__(self, base: Ledger) -> None:
        # Shares the base ledger's store and connections; only the caches and the overlay are its own.
        self.__dict__.update(base.__dict__)
        self._base = base
        self._peeked = OrderedDict()
        self._peek_lock = threading.Lock()
        self._upstream = {}
        self._overlay: dict[UUID, LedgerAggregate] = {}
        self._staged: list[Any] = []

    def close(self) -> None:
        """Nothing to close: the store and its connections belong to the base ledger."""

    # --- reading: staged state first -------------------------------------------------------------------

    def get(self, cls: type[A], ident: UUID) -> A:
        staged = self._overlay.get(ident)
        if staged is None:
            return super().get(cls, ident)
        if not isinstance(staged, cls):
            super().get(cls, ident)  # raises the not-found error of `cls`
        # A copy: a command that fails half-way must not leave its changes in the overlay.
        return copy.deepcopy(staged)  # type: ignore[return-value]

    def _peek(self, cls: type[A], ident: UUID) -> A:
        if ident in self._overlay:
            return self.get(cls, ident)
        return super()._peek(cls, ident)

    def exists(self, ident: UUID) -> bool:
        """Whether an aggregate exists in the store or among the staged ones."""
        return ident in self._overlay or ident in self.repository

    # --- writing: keep, in order -------------------------------------------------------------------------

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        aggregates = [o for o in objs if isinstance(o, LedgerAggregate)]
        for a in aggregates:
            if a.pending_events and a.pending_events[0].originator_version == 1 and self.exists(a.id):
                raise AlreadyExists(type(a).__name__.lower(), _key(a))
        for a in aggregates:
            self._staged.extend(a.collect_events())
            self._overlay[a.id] = a
        return []

    @property
    def staged(self) -> int:
        """How many events the commands so far would record."""
        return len(self._staged)

    def commit(self) -> list[Recording[UUID]]:
        """Write every staged event in one transaction of the real store."""
        if not self._staged:
            return []
        try:
            return Ledger.save(self._base, *self._staged)
        except IntegrityError:
            raise ConcurrentWriteConflict() from None


def _key(a: LedgerAggregate) -> str:
    for attr in ("kit_number", "lot_number", "batch_number", "shipment_number", "gln", "code"):
        if hasattr(a, attr):
            return str(getattr(a, attr))
    return str(a.id)
