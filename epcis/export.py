"""EPCIS 2.0 documents out of the ledger, streamed as JSON text chunks in constant memory.

`export_range` walks the chain in pages; `export_trace` walks the aggregates upstream and downstream
of one lot or kit, then reads their events in chain order. Both yield the document's text a piece
at a time: the event list first, then the header with the master data of every location and trial
the events named (JSON objects are unordered; the header is small and known only at the end).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from epcis import ids
from epcis.mapping import CONTEXT, Mapper, Step, master_data, steps
from ledger import genealogy
from ledger.application import Ledger
from ledger.domain import Kit, LotKind, ManufacturingBatch, PackagingRun
from ledger.domain.lot import Lot
from ledger.errors import InvalidInput, NotFound
from ledger.recorders import ChainRow
from ledger.values import utc


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def document(mapper: Mapper, found: Iterable[Step]) -> Iterator[str]:
    """The EPCISDocument of the given steps, as text chunks (one per event, roughly)."""
    created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    yield (
        f'{{"@context":{_dumps(CONTEXT)},"type":"EPCISDocument","schemaVersion":"2.0",'
        f'"creationDate":"{created}","epcisBody":{{"eventList":['
    )
    first = True
    for step in found:
        for event in mapper.map(step):
            yield ("" if first else ",") + _dumps(event)
            first = False
    header = {"epcisMasterData": {"vocabularyList": master_data(mapper)}}
    yield f']}},"epcisHeader":{_dumps(header)}}}'


def decoded(ledger: Ledger, rows: Iterable[ChainRow]) -> Iterator[tuple[ChainRow, Any]]:
    """Chain rows with their decoded domain events."""
    for row in rows:
        if row.state is None or row.topic is None:
            raise InvalidInput(f"event {row.seq} is missing from the store; verify the chain", field="seq")
        stored = StoredEvent(UUID(row.originator_id), row.originator_version, row.topic, row.state)
        yield row, ledger.mapper.to_domain_event(stored)


def export_range(
    ledger: Ledger,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
    *,
    blinded: bool = True,
    prefix_length: int = ids.DEFAULT_PREFIX_LENGTH,
) -> Iterator[str]:
    """Every event that happened in [from_time, to_time) as one EPCISDocument, streamed."""
    low = None if from_time is None else utc(from_time, "from_time").isoformat(timespec="microseconds")
    high = None if to_time is None else utc(to_time, "to_time").isoformat(timespec="microseconds")
    mapper = Mapper(ledger, blinded=blinded, prefix_length=prefix_length)

    def in_range() -> Iterator[tuple[ChainRow, Any]]:
        for row, event in decoded(ledger, ledger.chain.iter_chain()):
            at = event.audit["occurred_at"]
            if (low is None or at >= low) and (high is None or at < high):
                yield row, event

    return document(mapper, steps(in_range()))


def export_trace(
    ledger: Ledger,
    *,
    lot_id: UUID | None = None,
    kit_id: UUID | None = None,
    epc: str | None = None,
    blinded: bool = True,
    prefix_length: int = ids.DEFAULT_PREFIX_LENGTH,
) -> Iterator[str]:
    """Everything upstream and downstream of a lot, kit or packaging run (by id, LGTIN or SGTIN) as an
    EPCISDocument.

    Blinded (the default), a drug-product lot reaches every kit of the runs it went into, not only
    the kits of its own arm, and a kit traces back to every input of its run.
    """
    run_id = None
    if epc is not None:
        lot_id, kit_id, run_id = _resolve(ledger, epc)
    if run_id is not None:
        streams = Trace(ledger, blinded).of_run(run_id)
    elif (lot_id is None) == (kit_id is None):
        raise InvalidInput("name exactly one lot or one kit to trace", field="epc")
    else:
        trace = Trace(ledger, blinded)
        streams = trace.of_lot(lot_id) if lot_id is not None else trace.of_kit(kit_id)  # type: ignore[arg-type]
    mapper = Mapper(ledger, blinded=blinded, prefix_length=prefix_length)
    return document(mapper, steps(decoded(ledger, _rows_of(ledger, streams))))


def _resolve(ledger: Ledger, epc: str) -> tuple[UUID | None, UUID | None, UUID | None]:
    """(lot, kit, packaging run) the EPC names: an SGTIN a kit; an LGTIN a lot, or else a packaging
    run (exported with the kits' GTIN and its batch number as its LGTIN)."""
    key = ids.require(epc, "sgtin", "lgtin")
    if key.kind == "sgtin":
        return None, Kit.create_id(key.gtin, key.serial), None
    lot_id = Lot.create_id(key.gtin, key.serial)
    if not ledger.exists(Lot, lot_id):
        run_id = PackagingRun.create_id(key.serial)
        if ledger.exists(PackagingRun, run_id) and ledger.peek(PackagingRun, run_id).kit_gtin == key.gtin:
            return None, None, run_id
    return lot_id, None, None


def _rows_of(ledger: Ledger, streams: dict[UUID, int]) -> Iterator[ChainRow]:
    """The chain rows of every event of the streams (id -> version), in chain order."""
    links = ledger.chain.links_for((s, v) for s, last in streams.items() for v in range(1, last + 1))
    seqs = [link.seq for link in links]
    start = 0
    while start < len(seqs):
        end = start
        while end + 1 < len(seqs) and seqs[end + 1] == seqs[end] + 1 and end - start < 1999:
            end += 1
        for row in ledger.chain.iter_chain(after_seq=seqs[start] - 1, page=end - start + 1):
            if row.seq > seqs[end]:
                break
            yield row
        start = end + 1


class Trace:
    """Walks aggregates from a lot or kit; collects each stream with its current version."""

    def __init__(self, ledger: Ledger, blinded: bool) -> None:
        self.ledger = ledger
        self.blinded = blinded
        self.streams: dict[UUID, int] = {}

    def _take(self, cls: type, ident: UUID) -> Any:
        agg: Any = self.ledger.get(cls, ident)
        self.streams[agg.id] = agg.version
        return agg

    def of_lot(self, lot_id: UUID) -> dict[UUID, int]:
        """The lot, everything it was made from, and everything made from it."""
        self._upstream(lot_id)
        self._downstream(lot_id)
        return self.streams

    def of_kit(self, kit_id: UUID) -> dict[UUID, int]:
        """The kit, its shipments, its run and its input lots upstream (unblinded: only its own arm's)."""
        kit = self._kit(kit_id)
        run = self._take(PackagingRun, kit.packaging_run_id)
        lots = run.input_lot_ids
        if not self.blinded:
            mine = {a["dp_lot_id"] for a in run.arms if a["treatment"] == run.allocation[kit.kit_number]}
            lots = [
                i
                for i in lots
                if i in {UUID(str(x)) for x in mine} or self.ledger.get(Lot, i).kind != LotKind.DRUG_PRODUCT
            ]
        for lot_id in lots:
            self._upstream(lot_id)
        return self.streams

    def of_run(self, run_id: UUID) -> dict[UUID, int]:
        """The packaging run, every lot upstream of its inputs and every kit it made (all arms)."""
        run = self._take(PackagingRun, run_id)
        for lot_id in run.input_lot_ids:
            self._upstream(lot_id)
        for number in run.kit_numbers:
            self._kit(Kit.create_id(run.kit_gtin, number))
        return self.streams

    def _kit(self, kit_id: UUID) -> Any:
        try:
            kit = self._take(Kit, kit_id)
        except NotFound:
            raise
        for e in self.ledger.events.get(kit_id):
            shipment_id = getattr(e, "shipment_id", None)
            if shipment_id is not None and type(e).__name__ == "Shipped":
                self.streams.setdefault(shipment_id, 0)
                self.streams[shipment_id] = self.ledger.repository.get(shipment_id).version
        return kit

    def _upstream(self, lot_id: UUID) -> None:
        def batch_inputs(lot: UUID) -> list[UUID]:
            batch_id = self._take(Lot, lot).produced_by_batch_id
            return [] if batch_id is None else self._take(ManufacturingBatch, batch_id).input_lot_ids

        genealogy.upstream_lots([lot_id], batch_inputs)

    def _downstream(self, lot_id: UUID) -> None:
        steps: dict[UUID, Any] = {}

        def output_of(step_id: UUID) -> UUID | None:
            agg: Any = steps.get(step_id) or self.ledger.repository.get(step_id)
            steps[step_id] = agg
            self.streams[agg.id] = agg.version
            return agg.output_lot_id if isinstance(agg, ManufacturingBatch) else None

        lots, runs = genealogy.downstream_steps(
            [lot_id], lambda lot: self._take(Lot, lot).consumed_by, output_of
        )
        reached = set(lots)
        for run_id in runs:
            self._run_kits(steps[run_id], reached)

    def _run_kits(self, run: PackagingRun, reached: set[UUID]) -> None:
        numbers = run.kit_numbers
        if not self.blinded:
            arms = {a["treatment"] for a in run.arms if UUID(str(a["dp_lot_id"])) in reached}
            whole = any(
                UUID(str(i["lot_id"])) in reached and i["kind"] != LotKind.DRUG_PRODUCT for i in run.inputs
            )
            if not whole:
                numbers = [n for n in numbers if run.allocation[n] in arms]
        for number in numbers:
            self._kit(Kit.create_id(run.kit_gtin, number))
