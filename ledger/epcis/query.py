"""The EPCIS 2.0 REST query subset over an index of the exported (blinded) EPCIS events.

The index lives next to the ledger's tables: `epcis_event` (one row per EPCIS event: its chain
position, time, type, bizStep, disposition, bizLocation and JSON) and `epcis_event_epc` (each
identifier an event names, with its role), plus `epcis_index_position` (the last chain seq indexed).
`EpcisIndex.sync()` maps the chain from there on, a page of rows per transaction, so a query first
catches up with the ledger. It keeps the blinded form only: the treatment allocation is never in it.

It is not a `projections` read model because the EPCIS form needs what the projection runner does
not hand its writers: each event's chain position and hash (for the link back) and the identity of
the aggregates it names (lots and kits by GTIN), read from the ledger.

Supported: MATCH_epc, MATCH_anyEPC, MATCH_epcClass, MATCH_inputEPCClass, MATCH_outputEPCClass,
MATCH_parentID, EQ_bizStep, EQ_disposition, EQ_bizLocation, GE_eventTime, LT_eventTime, perPage and
nextPageToken. Identifiers match in any form (EPC URI or GS1 Digital Link, canonicalised); CBV words
match bare or as URIs. No wildcard (idpat) matching.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    exists,
    select,
    tuple_,
)

from ledger.application import Ledger
from ledger.epcis.dl import canonical_dl
from ledger.epcis.export import decoded
from ledger.epcis.mapping import Mapper, steps
from ledger.epcis.models import cbv_word
from ledger.errors import InvalidInput
from ledger.values import utc

metadata = MetaData()
event_table = Table(
    "epcis_event",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("event_id", String(200), nullable=False),
    Column("event_time", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("biz_step", String(200)),
    Column("disposition", String(200)),
    Column("biz_location", String(200)),
    Column("body", JSON, nullable=False),
    Index("epcis_event_time", "event_time"),
    Index("epcis_event_step", "biz_step"),
)
epc_table = Table(
    "epcis_event_epc",
    metadata,
    Column("epc", String(300), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("idx", Integer, primary_key=True),
)
position_table = Table(
    "epcis_index_position",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

PARAMS = (
    "MATCH_epc",
    "MATCH_anyEPC",
    "MATCH_epcClass",
    "MATCH_inputEPCClass",
    "MATCH_outputEPCClass",
    "MATCH_parentID",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_bizLocation",
)
MAX_PER_PAGE = 1000


def _canonical(uri: str) -> str:
    return canonical_dl(uri) or uri


def _roles(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(role, canonical identifier) of everything an EPCIS event names."""
    for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        for epc in event.get(key, ()):
            yield "epc", _canonical(epc)
    if event.get("parentID"):
        yield "parent", _canonical(event["parentID"])
    for key, role in (
        ("quantityList", "class"),
        ("childQuantityList", "class"),
        ("inputQuantityList", "input_class"),
        ("outputQuantityList", "output_class"),
    ):
        for q in event.get(key, ()):
            yield role, _canonical(q["epcClass"])


class EpcisIndex:
    """The EPCIS index of one ledger store."""

    def __init__(self, ledger: Ledger, engine: Engine, prefix_length: int = 7) -> None:
        self.ledger = ledger
        self.engine = engine
        self.prefix_length = prefix_length

    def position(self) -> int:
        with self.engine.connect() as conn:
            seq = conn.execute(select(position_table.c.seq).where(position_table.c.name == "epcis")).scalar()
        return int(seq or 0)

    def sync(self, batch: int = 2000) -> int:
        """Index every chain event after the last indexed one; returns the new position."""
        start = self.position()
        head, _ = self.ledger.chain.head()
        if head <= start:
            return start
        mapper = Mapper(self.ledger, blinded=True, prefix_length=self.prefix_length)
        rows: list[dict[str, Any]] = []
        epcs: list[dict[str, Any]] = []
        last = start
        found = steps(decoded(self.ledger, self.ledger.chain.iter_chain(after_seq=start)))
        for step in found:
            for idx, event in enumerate(mapper.map(step)):
                rows.append(_row(step.source.seq, idx, event))
                epcs.extend(
                    {"epc": epc, "role": role, "seq": step.source.seq, "idx": idx}
                    for role, epc in dict.fromkeys(_roles(event))
                )
            last = step.source.last_seq
            if len(rows) >= batch:
                if not self._write(rows, epcs, start, last):
                    return self.position()
                start, rows, epcs = last, [], []
        if not self._write(rows, epcs, start, head):
            return self.position()
        return head

    def _write(self, rows: list[dict[str, Any]], epcs: list[dict[str, Any]], old: int, new: int) -> bool:
        """Move the position from `old` to `new` with the rows; False if another process moved it first."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                position_table.update()
                .where(position_table.c.name == "epcis", position_table.c.seq == old)
                .values(seq=new)
            ).rowcount
            if not moved:
                if old != 0 or conn.execute(select(position_table.c.seq)).first() is not None:
                    return False  # indexed meanwhile by another process: its rows stand
                conn.execute(position_table.insert().values(name="epcis", seq=new))
            if rows:
                conn.execute(event_table.insert(), rows)
            if epcs:
                conn.execute(epc_table.insert(), epcs)
        return True


def _row(seq: int, idx: int, event: Mapping[str, Any]) -> dict[str, Any]:
    place = (event.get("bizLocation") or {}).get("id")
    return {
        "seq": seq,
        "idx": idx,
        "event_id": event["eventID"],
        "event_time": _utc(event["eventTime"]),
        "type": event["type"],
        "biz_step": cbv_word(event.get("bizStep")),
        "disposition": cbv_word(event.get("disposition")),
        "biz_location": _canonical(place) if place else None,
        "body": dict(event),
    }


def _utc(text: str) -> str:
    return (
        datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).isoformat(timespec="microseconds")
    )


@dataclass(frozen=True, slots=True)
class QueryParams:
    """An EPCIS 2.0 REST query: lists of values per parameter (OR within, AND across)."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    per_page: int = 100
    next_page_token: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, Any]) -> QueryParams:
        """From URL query parameters (comma-separated or repeated values); unknown names are refused."""
        values: dict[str, tuple[str, ...]] = {}
        known = {*PARAMS, "GE_eventTime", "LT_eventTime", "perPage", "nextPageToken"}
        for name in query:
            if name not in known:
                raise InvalidInput(f"query parameter {name} is not supported", field=name)
        for name in PARAMS:
            raw = query.get(name)
            if raw:
                items = [raw] if isinstance(raw, str) else list(raw)
                values[name] = tuple(v for item in items for v in str(item).split(",") if v)
        per_page = int(query.get("perPage") or 100)
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"perPage is 1-{MAX_PER_PAGE}", field="perPage")
        return cls(
            values,
            _time(query.get("GE_eventTime"), "GE_eventTime"),
            _time(query.get("LT_eventTime"), "LT_eventTime"),
            per_page,
            query.get("nextPageToken") or None,
        )

    def fingerprint(self) -> str:
        basis = json.dumps([sorted(self.values.items()), str(self.ge_event_time), str(self.lt_event_time)])
        return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")), name)
    except ValueError:
        raise InvalidInput(f"{name} is not an ISO 8601 time with a zone", field=name) from None


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of matching events, in ledger order, and the token of the next page (None: last)."""

    events: tuple[dict[str, Any], ...]
    next_page_token: str | None


def query_events(index: EpcisIndex, params: QueryParams) -> QueryPage:
    """The events matching `params`, a page at a time (the index is brought up to date first)."""
    index.sync()
    after = _decode_token(params.next_page_token, params.fingerprint()) if params.next_page_token else (0, -1)
    t = event_table
    where = [tuple_(t.c.seq, t.c.idx) > tuple_(*after)]
    if params.ge_event_time:
        where.append(t.c.event_time >= params.ge_event_time.isoformat(timespec="microseconds"))
    if params.lt_event_time:
        where.append(t.c.event_time < params.lt_event_time.isoformat(timespec="microseconds"))
    for name, column, norm in (
        ("EQ_bizStep", t.c.biz_step, cbv_word),
        ("EQ_disposition", t.c.disposition, cbv_word),
        ("EQ_bizLocation", t.c.biz_location, _canonical),
    ):
        if name in params.values:
            where.append(column.in_([norm(v) for v in params.values[name]]))
    for name, roles in (
        ("MATCH_epc", ("epc",)),
        ("MATCH_anyEPC", ("epc", "parent")),
        ("MATCH_epcClass", ("class", "input_class", "output_class")),
        ("MATCH_inputEPCClass", ("input_class",)),
        ("MATCH_outputEPCClass", ("output_class",)),
        ("MATCH_parentID", ("parent",)),
    ):
        if name in params.values:
            where.append(_names(params.values[name], roles))
    with index.engine.connect() as conn:
        rows = conn.execute(
            select(t.c.seq, t.c.idx, t.c.body)
            .where(and_(*where))
            .order_by(t.c.seq, t.c.idx)
            .limit(params.per_page + 1)
        ).all()
    more = len(rows) > params.per_page
    rows = rows[: params.per_page]
    token = _encode_token(rows[-1].seq, rows[-1].idx, params.fingerprint()) if more else None
    return QueryPage(tuple(r.body for r in rows), token)


def _names(values: Sequence[str], roles: Sequence[str]) -> Any:
    e = epc_table
    return exists().where(
        e.c.seq == event_table.c.seq,
        e.c.idx == event_table.c.idx,
        e.c.epc.in_([_canonical(v) for v in values]),
        e.c.role.in_(list(roles)),
    )


def _encode_token(seq: int, idx: int, fingerprint: str) -> str:
    raw = json.dumps({"s": seq, "i": idx, "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str) -> tuple[int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        seq, idx, q = int(data["s"]), int(data["i"]), data["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("nextPageToken is not one this server issued", field="nextPageToken") from None
    if q != fingerprint:
        raise InvalidInput("nextPageToken belongs to a query with other parameters", field="nextPageToken")
    return seq, idx


def query_document(page: QueryPage) -> dict[str, Any]:
    """An EPCISQueryDocument around one page of events."""
    from ledger.epcis.mapping import CONTEXT

    return {
        "@context": CONTEXT,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": list(page.events)}}
        },
    }
