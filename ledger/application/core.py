"""The ledger's application service: the only place that loads and saves aggregates.

`Ledger.handle(command, actor)` runs the one handler of a command (registered by the context modules
beside this one) and returns `Recorded`: each new event's chain position and hash. Every handler checks
authority and the rules across the aggregates the step touches, then saves them in one atomic write.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    OperationalError,
    PersistenceError,
    Recording,
    Transcoding,
)

from ledger import genealogy
from ledger.application.rules import require_own
from ledger.commands.base import Command, Recorded, RecordedEvent
from ledger.config import Settings
from ledger.db import redacted
from ledger.domain import (
    Kit,
    Location,
    LocationKind,
    Lot,
    LotStatus,
    ManufacturingBatch,
    PackagingRun,
    Shipment,
    Trial,
)
from ledger.domain.account import UserAccount
from ledger.domain.base import LateEntries, LedgerAggregate, captured_from, late_entries, require_role
from ledger.domain.lot import MAX_SHELF_LIFE
from ledger.domain.recall import KitState, Recall, RecallStatus
from ledger.errors import (
    AlreadyExists,
    BatchNotFound,
    ConcurrentWriteConflict,
    InvalidInput,
    KitNotFound,
    LocationNotFound,
    LotNotFound,
    LotNotUsable,
    NotFound,
    PackagingRunNotFound,
    ReadSideRequired,
    RecallNotFound,
    ShipmentNotFound,
    StoreBusy,
    TimeOrderViolation,
    TrialNotFound,
)
from ledger.recorders import ChainReader, Expectations, Link, Row, RowExists, RowsFor, StaleRead
from ledger.schema import StoreNotReady
from ledger.store import APPLICATION_NAME, store_env
from ledger.transcoder import StateTranscoder
from ledger.values import Actor, Meaning, Role, Signature, require_signature
from ledger.writer import WriterKey

A = TypeVar("A", bound=LedgerAggregate)
C = TypeVar("C", bound=Command)

Handler = Callable[["Ledger", Actor, Any], Recorded]

Alongside = Callable[[Recorded], Sequence[Row]]
"""Rows to write in a command's own transaction, made from what it records (e.g. the command's HTTP
answer for its idempotency key); called inside that transaction, once per attempt."""

_HANDLERS: dict[type[Command], Handler] = {}

KitStateReader = Callable[[Sequence[UUID]], dict[UUID, KitState]]
"""Reads the current status and place of many kits at once (e.g. from a read model, fast)."""

KitStateProvider = Callable[[], tuple[KitStateReader, dict[str, Any]]]
"""Gives a kit-state reader, caught up, and where its answers come from (recorded in the recall)."""

SiteKits = tuple[list[tuple[UUID, str, str]], dict[str, Any]]
SiteKitsProvider = Callable[[UUID], SiteKits]
"""Every kit delivered to a site as (kit id, kit number, what became of it: an outcome of
`projections.views.ACCOUNTABILITY_OUTCOMES`), from a read model caught up to the head, and where the
answer comes from (`as_of`: the chain position it is as of)."""


def handles(command: type[C]) -> Callable[[Callable[[Ledger, Actor, C], Recorded]], Handler]:
    """Register the decorated function as the one handler of `command`."""

    def register(fn: Callable[[Ledger, Actor, C], Recorded]) -> Handler:
        if command in _HANDLERS:
            raise RuntimeError(f"{command.__name__} already has a handler")
        _HANDLERS[command] = fn
        return fn

    return register


class DateAsISO(Transcoding):
    """Calendar dates (expiry, retest) as `YYYY-MM-DD`."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


_NOT_KEPT = (Kit, Recall)
"""Aggregates `get` loads from the store each time and `record` does not keep (see `Ledger.get`)."""
_PEEK_CACHE_SIZE = 4096
_WRITE_CACHE_SIZE = 8
_WRITE_ATTEMPTS = 5
_WRITE_BACKOFF = 0.01
"""Seconds: a step that lost a race waits up to this times 2 ** its attempt number (jittered) before
trying again: about 0.3 s in all before the conflict is answered (409 `concurrent_write`, Retry-After)."""

_NOT_FOUND: dict[type, Callable[[Any], NotFound]] = {
    Lot: LotNotFound,
    Kit: KitNotFound,
    Location: LocationNotFound,
    Trial: TrialNotFound,
    Shipment: ShipmentNotFound,
    ManufacturingBatch: BatchNotFound,
    PackagingRun: PackagingRunNotFound,
    Recall: RecallNotFound,
    UserAccount: lambda ident: NotFound("user account", ident),
}


class Staged:
    """What an `atomically()` block decided: the aggregates as they now stand, and their new events;
    once the block has saved them, what was recorded."""

    def __init__(self) -> None:
        self.overlay: dict[UUID, LedgerAggregate] = {}
        self.events: list[Any] = []
        self.reads: dict[UUID, int] = {}
        self.releases = 0
        self.recorded = Recorded(events=())


class Ledger(Application[UUID]):
    """Lotline's write side: every material movement of a clinical supply chain, hash-chained."""

    name = APPLICATION_NAME

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._upstream: dict[UUID, tuple[UUID, ...]] = {}
        self._peeked: OrderedDict[UUID, LedgerAggregate] = OrderedDict()
        self._peek_lock = threading.Lock()
        self._writing: OrderedDict[UUID, LedgerAggregate] = OrderedDict()
        self._write_lock = threading.Lock()
        self._kit_states: KitStateProvider | None = None
        self._site_kits: SiteKitsProvider | None = None
        self._local = threading.local()
        self._after_release: list[Callable[[Recorded], None]] = []
        self.max_shelf_life = MAX_SHELF_LIFE
        self.late_entry_window: timedelta | None = None
        """Steps older than this when recorded are late entries (`ledger.domain.base.stamp`); None: the
        ledger made without settings (unit tests) takes any time; `Ledger.open` sets the settings' window."""
        self.late_reason: str | None = None
        """The reason of every late entry a command does not give one for (e.g. a tool that replays a
        history entered after the fact); `late_entries_because` sets one for a block instead."""

    @classmethod
    def open(cls, database_url: str, keys_dir: Path | None = None) -> Ledger:
        """The ledger on `sqlite:///file` or `postgresql://...`, signing each write with the writer key
        in `keys_dir` (default: the keys directory of the settings), made there on first use."""
        settings = Settings()
        ledger = cls(env=store_env(database_url))
        _require_schema(ledger, database_url)
        ledger.chain.writer = WriterKey.load_or_create(keys_dir or settings.keys_dir)
        ledger.max_shelf_life = timedelta(days=settings.max_shelf_life_days)
        ledger.late_entry_window = timedelta(hours=settings.late_entry_hours)
        return ledger

    def construct_transcoder(self) -> StateTranscoder:
        transcoder = StateTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    @property
    def chain(self) -> ChainReader:
        recorder = self.recorder
        assert isinstance(recorder, ChainReader), "the ledger needs a chained recorder"
        return recorder

    # --- the one entry for writes --------------------------------------------------------------------

    def handle(self, command: Command, actor: Actor, alongside: Alongside | None = None) -> Recorded:
        """Run `command` for `actor`: check, decide and save atomically, or raise a `LedgerError` and
        record nothing.

        `alongside` makes rows that are inserted in the command's own write transaction, from the
        `Recorded` it answers with; a row whose key is already stored refuses the write (`RowExists`,
        not retried). A command that records no event writes no transaction, and so no rows.

        Everything the handler read and relied on (aggregates loaded or peeked but not written) must be
        unchanged when the write commits: the store checks it under its write lock, in the write's
        own transaction. A command that lost such a race, or met a busy store, is run again from the
        start on the newer state (up to 5 times, with a jittered pause), so it is checked again; so is a
        step stamped with the server's clock that found a later step, stamped by a concurrent request."""
        handler = _HANDLERS.get(type(command))
        if handler is None:
            raise TypeError(f"no handler for {type(command).__name__}")
        why_late = (
            getattr(command, "late_reason", None) or getattr(self._local, "late", None) or self.late_reason
        )
        late = LateEntries(self.late_entry_window, why_late)
        staged = self._staged()
        if staged is not None:
            if alongside is not None:
                raise RuntimeError("inside atomically(), the block's one write carries no rows")
            self._local.reads = staged.reads
            with late_entries(late):
                return handler(self, actor, command)
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            self._local.reads = {}
            self._local.alongside = alongside
            try:
                with late_entries(late):
                    return handler(self, actor, command)
            except (ConcurrentWriteConflict, StoreBusy):
                if attempt == _WRITE_ATTEMPTS:
                    raise
            except TimeOrderViolation:
                # A step stamped with the server's clock can meet a step another request stamped a
                # moment later but committed first: that is a race, not a claim about time; stamp again.
                if attempt == _WRITE_ATTEMPTS or getattr(command, "occurred_at", True) is not None:
                    raise
            finally:
                self._local.reads = None
                self._local.alongside = None
            time.sleep(random.uniform(0, _WRITE_BACKOFF * 2**attempt))
        raise AssertionError("unreachable")

    @contextmanager
    def late_entries_because(self, reason: str) -> Iterator[None]:
        """Inside the block, a command without its own `late_reason` is recorded with `reason` (e.g. the
        demo's history, entered at set-up; a document captured from a partner's system)."""
        before = getattr(self._local, "late", None)
        self._local.late = reason
        try:
            yield
        finally:
            self._local.late = before

    @contextmanager
    def captured(self, origin: Sequence[Mapping[str, str]]) -> Iterator[None]:
        """Inside the block, steps are stamped as captured from a partner's EPCIS events (`origin`: what
        the EPCIS adapter keeps of each, text only): the audit's `captured_from`, hashed with the event."""
        with captured_from(tuple(dict(o) for o in origin)):
            yield

    def expect_quiet_since(self, position: int, streams: Sequence[UUID]) -> None:
        """The command's write must also find no event of `streams` after chain `position` (e.g. the
        kits whose states it read from a read model as of that position)."""
        self._local.quiet = (position, frozenset(streams))

    def use_kit_states(self, provider: KitStateProvider) -> None:
        """Opening a recall reads the affected kits' states in bulk from `provider`'s reader, instead of
        loading each kit from the store."""
        self._kit_states = provider

    def use_site_kits(self, provider: SiteKitsProvider) -> None:
        """A site's close-out reads the kits delivered to it from `provider` (the read side)."""
        self._site_kits = provider

    def site_kits(self, site_id: UUID) -> SiteKits:
        """The kits delivered to the site and what became of each; only where a read side was given."""
        if self._site_kits is None:
            raise ReadSideRequired("close a site out")
        return self._site_kits(site_id)

    def kit_states(self) -> tuple[KitStateReader | None, dict[str, Any]]:
        """The bulk kit-state reader, if one was given, and where its answers come from."""
        if self._kit_states is None:
            return None, {"reader": "ledger"}
        return self._kit_states()

    def on_release(self, listener: Callable[[Recorded], None]) -> None:
        """Call `listener` after every QA release of a packaged batch is recorded (e.g. to sign a
        checkpoint at once, so the release is covered by a signature)."""
        self._after_release.append(listener)

    def released(self, recorded: Recorded) -> None:
        """A QA release was recorded: tell the listeners (inside `atomically()`, once the block's
        events are saved, with what the block recorded; not at all if it saved nothing)."""
        staged = self._staged()
        if staged is not None:
            staged.releases += 1
            return
        for listener in self._after_release:
            listener(recorded)

    def exists(self, cls: type[LedgerAggregate], ident: UUID) -> bool:
        """Whether an aggregate `ident` of type `cls` exists (staged ones included)."""
        try:
            self.peek(cls, ident)
        except NotFound:
            return False
        return True

    # --- loading and saving ------------------------------------------------------------------------

    def get(self, cls: type[A], ident: UUID) -> A:
        """The aggregate `ident` of type `cls`, current, for a step to change; or that type's not-found
        error.

        Made from the copy kept per process (the one `peek` keeps), brought up to date with only the
        events after its version, and copied for the caller: a lot consumed by hundreds of runs, or a
        run with its kit list, is not replayed from its first event for every step. Kits (many, with
        short histories, loaded in bulk by `load_many`) and recalls (kept for writing by `on_recall`)
        are loaded from the store as they are."""
        staged = self._staged()
        if staged is not None and ident in staged.overlay:
            agg: Any = copy.deepcopy(staged.overlay[ident])  # a failed command must not change the overlay
        elif cls in _NOT_KEPT:
            agg = self._load(cls, ident)
        else:
            with self._peek_lock:
                agg = copy.deepcopy(self._kept(self._peeked, _PEEK_CACHE_SIZE, cls, ident))
        if not isinstance(agg, cls):
            raise _NOT_FOUND[cls](ident)
        self._note_read(agg)
        return agg

    def _load(self, cls: type[A], ident: UUID) -> A:
        """The aggregate replayed from its events in the store, or `cls`'s not-found error."""
        try:
            return self.repository.get(ident)  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise _NOT_FOUND[cls](ident) from None

    def _keep_written(self, aggregates: Sequence[LedgerAggregate]) -> None:
        """After their events are stored: keep the aggregates a step saved as `get` and `peek` find them
        next (the step is done with them: handlers return what `record` answers). Not kits nor recalls,
        which those do not keep."""
        with self._peek_lock:
            for a in aggregates:
                if type(a) in _NOT_KEPT:
                    continue
                self._peeked[a.id] = a
                self._peeked.move_to_end(a.id)
            while len(self._peeked) > _PEEK_CACHE_SIZE:
                self._peeked.popitem(last=False)

    def get_many(self, cls: type[A], idents: Sequence[UUID]) -> list[A]:
        """The aggregates `idents`, in that order, loaded in one or a few reads; the first one missing
        raises its type's not-found error."""
        found = self.load_many(cls, idents)
        for ident in idents:
            if ident not in found:
                raise _NOT_FOUND[cls](ident)
        return [found[i] for i in idents]

    def load_many(self, cls: type[A], idents: Sequence[UUID]) -> dict[UUID, A]:
        """Those of the aggregates `idents` of type `cls` that exist, loaded in one or a few reads."""
        staged = self._staged()
        overlay = staged.overlay if staged is not None else {}
        stored = self.chain.select_streams([i for i in idents if i not in overlay])
        found: dict[UUID, A] = {}
        for ident in dict.fromkeys(idents):
            agg: Any = None
            if ident in overlay:
                agg = copy.deepcopy(overlay[ident])
            for e in stored.get(ident, ()):
                agg = self.mapper.to_domain_event(e).mutate(agg)  # type: ignore[attr-defined]
            if isinstance(agg, cls):
                self._note_read(agg)
                found[ident] = agg
        return found

    def peek(self, cls: type[A], ident: UUID) -> A:
        """A read-only, current view of an aggregate that a step checks but does not change.

        Kept per process and brought up to date from the store on every call (only the events
        after the kept version are read), so it is never stale; never change or save it.
        """
        staged = self._staged()
        if staged is not None and ident in staged.overlay:
            return self.get(cls, ident)
        with self._peek_lock:
            agg = self._kept(self._peeked, _PEEK_CACHE_SIZE, cls, ident)
        if not isinstance(agg, cls):
            raise _NOT_FOUND[cls](ident)
        self._note_read(agg)
        return agg

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's `save`, for the ledger's own aggregates and events only: it sorted them with
        `isinstance` against its runtime-checkable protocols, two per aggregate and about 0.1 ms each
        (a receipt of 20 kits: 6 % of its time)."""
        processing = ProcessingEvent[UUID]()
        for obj in objs:
            if isinstance(obj, DomainEvent):
                processing.events.append(obj)
            else:
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)  # type: ignore[no-untyped-call]
        return recordings

    def _note_read(self, agg: LedgerAggregate) -> None:
        reads: dict[UUID, int] | None = getattr(self._local, "reads", None)
        if reads is not None:
            reads.setdefault(agg.id, agg.version)

    def record(self, *aggregates: LedgerAggregate, created: tuple[UUID, ...] = (), **facts: Any) -> Recorded:
        """Save every aggregate of one step atomically; translate store conflicts; answer with the
        chain positions and hashes the recorder wrote. Inside `atomically()`, keep them instead."""
        new = [a for a in aggregates if a.pending_events and a.pending_events[0].originator_version == 1]
        staged = self._staged()
        if staged is not None:
            for a in new:
                if a.id in staged.overlay or a.id in self.repository:
                    raise AlreadyExists(_kind(a), _business_key(a))
            for a in aggregates:
                staged.events.extend(a.collect_events())
                staged.overlay[a.id] = a
            return Recorded(events=(), created=created, facts=facts)
        chain = self.chain
        chain.take_written()
        chain.expect(self._expectations({a.id for a in aggregates}))
        alongside: Alongside | None = getattr(self._local, "alongside", None)
        if alongside is not None and any(a.pending_events for a in aggregates):

            def rows(links: Sequence[Link]) -> Sequence[Row]:
                return alongside(Recorded(events=_recorded(links), created=created, facts=facts))

            chain.alongside(rows)
        try:
            self.save(*aggregates)
        except RowExists:
            raise
        except StaleRead:
            raise ConcurrentWriteConflict() from None
        except IntegrityError:
            for a in new:
                if a.id in self.repository:
                    raise AlreadyExists(_kind(a), _business_key(a)) from None
            raise ConcurrentWriteConflict() from None
        except OperationalError as e:
            raise StoreBusy(str(e)) from None
        finally:
            chain.expect(None)
            chain.alongside(None)
        self._local.alongside = None  # carried by this write; a failed one leaves them for a retry
        self._keep_written(aggregates)
        return Recorded(events=self._written(), created=created, facts=facts)

    def _expectations(self, written: set[UUID]) -> Expectations | None:
        """What the write must still find true: the versions of what was read and not written."""
        reads: dict[UUID, int] = getattr(self._local, "reads", None) or {}
        quiet = getattr(self._local, "quiet", None)
        self._local.quiet = None
        versions = {k: v for k, v in reads.items() if k not in written}
        if not versions and quiet is None:
            return None
        return Expectations(versions, *(quiet or (None, frozenset())))

    @contextmanager
    def atomically(self, alongside: RowsFor | None = None) -> Iterator[Staged]:
        """Run several commands as one write: inside the block each command sees what the earlier ones
        decided (quantities consumed add up) but nothing reaches the store; when the block ends, every
        event is saved in one transaction, in order (`Staged.recorded`); if it raises, nothing is.

        `alongside` makes rows from the written links that are inserted in that same transaction (e.g.
        what the write answers to, so that a retry finds it); a row whose key is stored already refuses
        the whole write with `RowExists`."""
        if self._staged() is not None:
            raise RuntimeError("atomically() blocks do not nest")
        staged = Staged()
        self._local.staged = staged
        try:
            yield staged
        finally:
            self._local.staged = None
        if not staged.events:
            return
        chain = self.chain
        chain.take_written()
        chain.expect(self._expectations_of(staged))
        chain.alongside(alongside)
        try:
            self.save(*staged.events)
        except RowExists:
            raise
        except IntegrityError:
            raise ConcurrentWriteConflict() from None
        except OperationalError as e:
            raise StoreBusy(str(e)) from None
        finally:
            chain.expect(None)
            chain.alongside(None)
        staged.recorded = Recorded(events=self._written())
        if staged.releases:
            for listener in self._after_release:
                listener(staged.recorded)

    def _expectations_of(self, staged: Staged) -> Expectations | None:
        versions = {k: v for k, v in staged.reads.items() if k not in staged.overlay}
        return Expectations(versions) if versions else None

    def _staged(self) -> Staged | None:
        return getattr(self._local, "staged", None)

    def _written(self) -> tuple[RecordedEvent, ...]:
        return _recorded(self.chain.take_written())

    def on_recall(self, recall_id: UUID, step: Callable[[Recall], Recorded]) -> Recorded:
        """Run one step that changes a recall, on a copy of it kept for writing in this process.

        A recall of 50,000 kits takes ~0.4 s to load from its events; sites report on it one after
        another, so each step brings the kept copy up to date (only the newer events) instead of
        loading it. A copy a failed step may have changed is dropped. A step that lost a race with
        another writer (nothing written) is run again on the newer state, which re-checks it: so a
        step stamps its time inside `step`, after the copy is up to date.
        """
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            with self._write_lock:
                recall = self._writable_recall(recall_id)
                version = recall.version
                try:
                    return step(recall)
                except ConcurrentWriteConflict:
                    self._writing.pop(recall_id, None)
                    if attempt == _WRITE_ATTEMPTS:
                        raise
                except BaseException:
                    if recall.version != version:
                        self._writing.pop(recall_id, None)
                    raise
            time.sleep(random.uniform(0, _WRITE_BACKOFF * attempt))  # let the other writers pass
        raise AssertionError("unreachable")

    def _writable_recall(self, recall_id: UUID) -> Recall:
        """The kept copy of a recall for writing, brought up to date (caller holds the write lock)."""
        return self._kept(self._writing, _WRITE_CACHE_SIZE, Recall, recall_id)

    def recall_view(self, recall_id: UUID) -> Recall:
        """A read-only, current view of a recall: kept per process, brought up to date on each call."""
        return self.peek(Recall, recall_id)

    def _kept(self, kept: OrderedDict[UUID, Any], size: int, cls: type[A], ident: UUID) -> A:
        """The aggregate kept in `kept` (at most `size`, least recently used dropped first), brought up
        to date with only the events after its version; loaded when not kept. Caller holds the lock."""
        agg = kept.get(ident)
        if agg is None:
            agg = self._load(cls, ident)
        else:
            for e in self.events.get(ident, gt=agg.version):
                agg = e.mutate(agg)  # type: ignore[attr-defined]
            kept.move_to_end(ident)
        kept[ident] = agg
        if len(kept) > size:
            kept.popitem(last=False)
        return agg  # type: ignore[no-any-return]

    # --- genealogy on the write model --------------------------------------------------------------

    def runs_downstream(self, lot_ids: Sequence[UUID]) -> list[PackagingRun]:
        """Every packaging run made from the lots: lot -> batches -> drug-product lots -> runs."""

        def output_of(step_id: UUID) -> UUID | None:
            try:
                return self.peek(ManufacturingBatch, step_id).output_lot_id
            except BatchNotFound:
                return None

        _, run_ids = genealogy.downstream_steps(
            lot_ids, lambda lot_id: self.peek(Lot, lot_id).consumed_by, output_of
        )
        return sorted((self.peek(PackagingRun, r) for r in run_ids), key=lambda r: r.batch_number)

    def upstream_lot_ids(self, run_id: UUID, run: PackagingRun | None = None) -> tuple[UUID, ...]:
        """Every lot upstream of a run. Fixed once the run is packaged, so remembered per process."""
        if run_id not in self._upstream:
            run = run or self.peek(PackagingRun, run_id)

            def batch_inputs(lot_id: UUID) -> list[UUID]:
                batch_id = self.peek(Lot, lot_id).produced_by_batch_id
                return [] if batch_id is None else self.peek(ManufacturingBatch, batch_id).input_lot_ids

            found = tuple(genealogy.upstream_lots(run.input_lot_ids, batch_inputs))
            if self._staged() is not None:
                return found  # a staged run may never be saved: remember only what is in the store
            self._upstream[run_id] = found
        return self._upstream[run_id]

    def require_upstream_clean(self, run_id: UUID, run: PackagingRun | None = None) -> None:
        """A recall of the run itself, or a recall or rejection of any lot upstream of it, stops its kits."""
        (run or self.peek(PackagingRun, run_id)).require_not_recalled()
        for lot_id in self.upstream_lot_ids(run_id, run):
            lot = self.peek(Lot, lot_id)
            if lot.status in (LotStatus.RECALLED, LotStatus.REJECTED):
                raise LotNotUsable(lot.id, lot.lot_number, f"an upstream lot is {lot.status}")

    def open_recall_of(self, kit: Kit) -> Recall | None:
        """The open recall campaign whose affected set holds `kit`, if any: found through the recall
        that last moved the kit, or the campaigns that recalled a lot upstream of it."""
        numbers = {kit.recall_number} if kit.recall_number else set()
        for lot_id in self.upstream_lot_ids(kit.packaging_run_id):
            lot = self.peek(Lot, lot_id)
            if lot.status == LotStatus.RECALLED and lot.recall_number:
                numbers.add(lot.recall_number)
        for number in sorted(numbers):
            recall = self.peek(Recall, Recall.create_id(number))
            if recall.status == RecallStatus.OPEN and kit.id in recall.kits:
                return recall
        return None

    def run_checked(self, run_id: UUID, cache: dict[UUID, PackagingRun]) -> PackagingRun:
        """The kit's packaging run, after checking nothing upstream was recalled or rejected."""
        if run_id not in cache:
            run = self.peek(PackagingRun, run_id)
            self.require_upstream_clean(run_id, run)
            cache[run_id] = run
        return cache[run_id]

    # --- shared checks ---------------------------------------------------------------------------------

    def qa_signature(
        self, actor: Actor, signature: Signature | None, meaning: Meaning, action: str
    ) -> Signature:
        """QA's own signature with `meaning` for `action`."""
        require_role(actor, action, Role.QA)
        sig = require_signature(signature, meaning, action)
        require_own(actor, sig)
        return sig

    def require_place(self, location_id: UUID, *kinds: LocationKind, field: str = "location_id") -> Location:
        """The location, if it is of one of `kinds` (else refused naming the command's `field`)."""
        loc = self.peek(Location, location_id)
        if loc.kind not in kinds:
            raise InvalidInput(
                f"{loc.name} is a {loc.kind}; expected {' or '.join(str(k) for k in kinds)}",
                field=field,
            )
        return loc


_MISSING_TABLE = ("no such table", "does not exist")
"""How SQLite and PostgreSQL say a table is not there."""


def _require_schema(ledger: Ledger, database_url: str) -> None:
    """Refuse a store that was never made by `lotline db upgrade` when it is opened, naming what to do,
    instead of failing its first write as "the store is busy" (the missing table is an operational
    error, which a write retries and then answers as busy)."""
    try:
        ledger.chain.head()
    except PersistenceError as e:
        ledger.close()
        if not any(words in str(e) for words in _MISSING_TABLE):
            raise
        raise StoreNotReady(
            "the store has no Lotline tables: run `lotline db upgrade` on it first",
            database_url=redacted(database_url), cause=str(e).splitlines()[0],
        ) from None


def _recorded(links: Sequence[Link]) -> tuple[RecordedEvent, ...]:
    return tuple(
        RecordedEvent(seq=k.seq, stream=k.stream, version=k.version, chain_hash=k.chain_hash.hex())
        for k in links
    )


def _kind(a: LedgerAggregate) -> str:
    return "user" if isinstance(a, UserAccount) else type(a).__name__.lower()


def _business_key(a: LedgerAggregate) -> str:
    for attr in ("kit_number", "lot_number", "batch_number", "shipment_number", "gln", "code", "principal"):
        if hasattr(a, attr):
            return str(getattr(a, attr))
    return str(a.id)
