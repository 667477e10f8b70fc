"""The EPCIS 2.0 REST query subset, answered from the EPCIS index read model (`projections.epcis_index`).

`Indexer.sync()` maps the chain from the index's position on into blinded EPCIS events (the
treatment allocation is never in the index) and hands them to the read model with the identifiers
each names, a page of rows per transaction; a projection worker runs it (`Epcis.follow`), or a query
first (`Epcis` used as a library). What is EPCIS here: the mapping of steps to events, which fields
name what (roles), canonical identifiers and CBV words, the query parameters and the page tokens.

Supported: MATCH_epc, MATCH_inputEPC, MATCH_outputEPC, MATCH_anyEPC, MATCH_epcClass,
MATCH_inputEPCClass, MATCH_outputEPCClass, MATCH_anyEPCClass, MATCH_parentID, EQ_bizStep,
EQ_disposition, EQ_bizLocation, EQ_readPoint, EQ_eventID, EQ_action, EQ_errorReason, eventType,
EXISTS_errorDeclaration, GE_eventTime, LT_eventTime, orderBy (eventTime, recordTime),
orderDirection, eventCountLimit, maxEventCount, perPage and nextPageToken. Identifiers match in any
form (EPC URI or GS1 Digital Link, canonicalised); CBV words match bare or as URIs. No wildcard
(idpat) matching.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

from epcis.dl import canonical_dl
from epcis.export import decoded
from epcis.mapping import Mapper, instant, steps
from epcis.models import cbv_word
from ledger.application import Ledger
from ledger.commands.base import one_line
from ledger.errors import InvalidInput, LedgerError, NotFound
from ledger.values import utc
from projections.epcis_index import Entry, EpcisIndex, EventQuery, Names

PARAMS = (
    "MATCH_epc",
    "MATCH_inputEPC",
    "MATCH_outputEPC",
    "MATCH_anyEPC",
    "MATCH_epcClass",
    "MATCH_anyEPCClass",
    "MATCH_inputEPCClass",
    "MATCH_outputEPCClass",
    "MATCH_parentID",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_bizLocation",
    "EQ_readPoint",
    "EQ_eventID",
    "EQ_action",
    "EQ_errorReason",
    "eventType",
)
"""The parameters that take a list of values (comma separated or repeated: any of them)."""
EVENT_TYPES = (
    "ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"
)
ACTIONS = ("ADD", "OBSERVE", "DELETE")
MAX_PER_PAGE = 1000
MATCHES = (
    ("MATCH_epc", ("epc",)),
    ("MATCH_inputEPC", ("input_epc",)),
    ("MATCH_outputEPC", ("output_epc",)),
    ("MATCH_anyEPC", ("epc", "input_epc", "output_epc", "parent")),
    ("MATCH_parentID", ("parent",)),
    ("MATCH_epcClass", ("class",)),
    ("MATCH_inputEPCClass", ("input_class",)),
    ("MATCH_outputEPCClass", ("output_class",)),
    ("MATCH_anyEPCClass", ("class", "input_class", "output_class")),
    ("EQ_readPoint", ("read_point",)),
)
"""Each MATCH_ parameter and the roles (`_roles`) in which an event names what it matches, as the
standard's SimpleEventQuery defines them: MATCH_epc the epcList and childEPCs, MATCH_inputEPC and
MATCH_outputEPC a transformation's lists, MATCH_anyEPC all of those and the parentID; MATCH_epcClass
the quantityList and childQuantityList, MATCH_anyEPCClass also the input and output quantity lists."""


def _canonical(uri: str) -> str:
    return canonical_dl(uri) or uri


def _roles(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(role, canonical identifier) of everything an EPCIS event names."""
    for key, role in (
        ("epcList", "epc"),
        ("childEPCs", "epc"),
        ("inputEPCList", "input_epc"),
        ("outputEPCList", "output_epc"),
    ):
        for epc in event.get(key, ()):
            yield role, _canonical(epc)
    if event.get("parentID"):
        yield "parent", _canonical(event["parentID"])
    if (event.get("readPoint") or {}).get("id"):
        yield "read_point", _canonical(event["readPoint"]["id"])
    for key, role in (
        ("quantityList", "class"),
        ("childQuantityList", "class"),
        ("inputQuantityList", "input_class"),
        ("outputQuantityList", "output_class"),
    ):
        for q in event.get(key, ()):
            yield role, _canonical(q["epcClass"])


class Indexer:
    """Brings the EPCIS index of one ledger store up to date with its chain."""

    def __init__(self, ledger: Ledger, index: EpcisIndex, prefix_length: int = 7) -> None:
        self.ledger = ledger
        self.index = index
        self.prefix_length = prefix_length

    def sync(self, batch: int = 2000) -> int:
        """Index every chain event after the last indexed one; returns the new position."""
        index = self.index
        start = index.position()
        head, _ = self.ledger.chain.head()
        if head <= start:
            return start
        mapper = Mapper(self.ledger, blinded=True, prefix_length=self.prefix_length)
        entries: list[Entry] = []
        last = start
        # Up to the head read above only: the position moves to `head`, so an event recorded since
        # (the chain is read page by page) must wait for the next sync, or it would be indexed twice.
        rows = takewhile(lambda row: row.seq <= head, self.ledger.chain.iter_chain(after_seq=start))
        found = steps(decoded(self.ledger, rows))
        for step in found:
            for idx, event in enumerate(mapper.map(step)):
                entries.append(_entry(step.source.seq, idx, event))
            last = step.source.last_seq
            if len(entries) >= batch:
                if not index.add(entries, start, last):
                    return index.position()
                start, entries = last, []
        if not index.add(entries, start, head):
            return index.position()
        return head


def _instant(event_time: str) -> datetime:
    found = instant(event_time)
    if found is None:  # capture refuses such a time, and Lotline writes none: a bug if it happens
        raise ValueError(f"eventTime {event_time!r} is not a time Lotline can read")
    return found


def _entry(seq: int, idx: int, event: Mapping[str, Any]) -> Entry:
    place = (event.get("bizLocation") or {}).get("id")
    return Entry(
        seq=seq,
        idx=idx,
        event_id=event["eventID"],
        event_time=_instant(event["eventTime"]),
        type=event["type"],
        biz_step=cbv_word(event.get("bizStep")),
        disposition=cbv_word(event.get("disposition")),
        biz_location=_canonical(place) if place else None,
        body=dict(event),
        names=tuple(dict.fromkeys(_roles(event))),
        action=event.get("action"),
        error_reason=_declared(event),
    )


def _declared(event: Mapping[str, Any]) -> str | None:
    """The bare reason of the event's error declaration ('' without one); None when it declares none."""
    declaration = event.get("errorDeclaration")
    if not isinstance(declaration, Mapping):
        return None
    return cbv_word(declaration.get("reason")) or ""


@dataclass(frozen=True, slots=True)
class QueryParams:
    """An EPCIS 2.0 REST query: lists of values per parameter (OR within, AND across)."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    per_page: int = 100
    next_page_token: str | None = None
    error_declared: bool | None = None
    order_by: str | None = None
    """`eventTime`, or `recordTime` (the order the ledger recorded the events: its chain order)."""
    descending: bool = False
    event_count_limit: int | None = None
    max_event_count: int | None = None

    @classmethod
    def parse(cls, query: Mapping[str, Any]) -> QueryParams:
        """From URL query parameters (comma-separated or repeated values); unknown names are refused."""
        known = {*PARAMS, *_SINGLE, "EXISTS_errorDeclaration"}
        for name in query:
            if name not in known:
                raise InvalidInput(f"query parameter {name} is not supported", field=name)
            raw = query[name]
            for value in [raw] if isinstance(raw, str) else list(raw or ()):
                try:
                    one_line(str(value))
                except ValueError as e:
                    raise InvalidInput(f"{name}: {e}", field=name) from None
        values: dict[str, tuple[str, ...]] = {}
        for name in PARAMS:
            raw = query.get(name)
            if raw:
                items = [raw] if isinstance(raw, str) else list(raw)
                values[name] = tuple(v for item in items for v in str(item).split(",") if v)
        _only(values, "eventType", EVENT_TYPES)
        _only(values, "EQ_action", ACTIONS)
        order_by = _single(query, "orderBy")
        if order_by not in (None, "eventTime", "recordTime"):
            raise InvalidInput("orderBy is eventTime or recordTime", field="orderBy")
        direction = _single(query, "orderDirection") or "DESC"
        if direction not in ("ASC", "DESC"):
            raise InvalidInput("orderDirection is ASC or DESC", field="orderDirection")
        limit, most = _count(query, "eventCountLimit"), _count(query, "maxEventCount")
        if limit is not None and most is not None:
            raise InvalidInput(
                "eventCountLimit and maxEventCount cannot be given together", field="maxEventCount"
            )
        per_page = _count(query, "perPage") or 100
        if per_page > MAX_PER_PAGE:
            raise InvalidInput(f"perPage is 1-{MAX_PER_PAGE}", field="perPage")
        return cls(
            values,
            _time(_single(query, "GE_eventTime"), "GE_eventTime"),
            _time(_single(query, "LT_eventTime"), "LT_eventTime"),
            per_page,
            _single(query, "nextPageToken") or None,
            True if "EXISTS_errorDeclaration" in query else None,
            order_by,
            # Ascending without orderBy (the ledger's order); the binding's default with it is DESC.
            order_by is not None and direction == "DESC",
            limit,
            most,
        )

    def fingerprint(self) -> str:
        basis = json.dumps([
            sorted(self.values.items()), str(self.ge_event_time), str(self.lt_event_time),
            self.error_declared, self.order_by, self.descending, self.event_count_limit, self.max_event_count,
        ])
        return hashlib.sha256(basis.encode()).hexdigest()[:16]


_SINGLE = ("GE_eventTime", "LT_eventTime", "perPage", "nextPageToken", "orderBy", "orderDirection",
           "eventCountLimit", "maxEventCount")
"""The parameters that take one value."""


def _single(query: Mapping[str, Any], name: str) -> str | None:
    raw = query.get(name)
    if raw is None or isinstance(raw, str):
        return raw
    items = list(raw)
    if len(items) > 1:
        raise InvalidInput(f"{name} takes one value", field=name)
    return str(items[0]) if items else None


def _count(query: Mapping[str, Any], name: str) -> int | None:
    text = _single(query, name)
    if text in (None, ""):
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"{name} is a whole number from 1", field=name)
    return int(text)


def _only(values: dict[str, tuple[str, ...]], name: str, allowed: tuple[str, ...]) -> None:
    wrong = [v for v in values.get(name, ()) if v not in allowed]
    if wrong:
        raise InvalidInput(f"{name} {wrong[0]!r} is not one of {', '.join(allowed)}", field=name)


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
    seqs: tuple[int, ...] = ()
    """The chain position of the ledger step each event comes from (its first event)."""


class QueryTooLarge(LedgerError):
    """The query would answer more events than its `maxEventCount` (the binding's QueryTooLargeException)."""

    code = "query_too_large"


def event_query(params: QueryParams) -> EventQuery:
    """What `params` ask of an event, in the order they ask for, from the start (no `after`)."""
    values = params.values
    return EventQuery(
        from_time=params.ge_event_time,
        before_time=params.lt_event_time,
        biz_steps=_given(values, "EQ_bizStep", cbv_word),
        dispositions=_given(values, "EQ_disposition", cbv_word),
        biz_locations=_given(values, "EQ_bizLocation", _canonical),
        event_ids=_given(values, "EQ_eventID", str),
        types=_given(values, "eventType", str),
        actions=_given(values, "EQ_action", str),
        error_declared=params.error_declared,
        error_reasons=_given(values, "EQ_errorReason", cbv_word),
        names=tuple(
            Names(tuple(_canonical(v) for v in values[name]), roles)
            for name, roles in MATCHES
            if name in values
        ),
        by_time=params.order_by == "eventTime",
        descending=params.descending,
    )


def query_events(index: EpcisIndex, params: QueryParams) -> QueryPage:
    """The events matching `params`, a page at a time, as far as the index has got (`Indexer.sync`)."""
    fingerprint = params.fingerprint()
    token = params.next_page_token
    after, delivered = decode_position_token(token, fingerprint) if token else (None, 0)
    query = replace(event_query(params), after=after)
    if params.max_event_count is not None and after is None:
        found = index.count(query, params.max_event_count + 1)
        if found > params.max_event_count:
            raise QueryTooLarge(
                f"the query matches more than maxEventCount={params.max_event_count} events; narrow it, or "
                "use eventCountLimit for the first ones",
                maxEventCount=params.max_event_count,
            )
    room = params.per_page
    if params.event_count_limit is not None:
        room = min(room, params.event_count_limit - delivered)
    rows = index.events(replace(query, limit=room + 1)) if room > 0 else []
    rows, more = rows[:room], len(rows) > room
    if params.event_count_limit is not None and delivered + len(rows) >= params.event_count_limit:
        more = False  # the first eventCountLimit events are out: the answer ends here
    token = None
    if more:
        last = rows[-1]
        at = (last.event_time, last.seq, last.idx) if query.by_time else (last.seq, last.idx)
        token = encode_position_token(at, delivered + len(rows), fingerprint)
    return QueryPage(tuple(r.body for r in rows), token, tuple(r.seq for r in rows))


def _given(
    values: Mapping[str, tuple[str, ...]], name: str, norm: Callable[[str], str | None]
) -> tuple[str, ...] | None:
    """The values of parameter `name` in canonical form; None when the query does not name it."""
    if name not in values:
        return None
    return tuple(word for word in map(norm, values[name]) if word is not None)


def encode_position_token(after: tuple[Any, ...], delivered: int, fingerprint: str) -> str:
    """An opaque token of where an answer stopped (`after`, the events `delivered` so far) for the
    query whose parameters have `fingerprint`: a page token, a subscription's resume token."""
    raw = json.dumps({"a": list(after), "n": delivered, "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position_token(
    token: str, fingerprint: str, name: str = "nextPageToken"
) -> tuple[tuple[Any, ...], int]:
    """Where an answer stopped (`encode_position_token`); refused (naming parameter `name`) if this
    server did not issue it for a query of these parameters."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, delivered, q = tuple(data["a"]), data["n"], data["q"]
        # (seq, idx) or (event time, seq, idx), as `encode_position_token` writes them: anything else
        # would reach the store's comparison of its columns
        shape = (int, int) if len(after) == 2 else (str, int, int)
        if len(after) not in (2, 3) or not all(
            isinstance(v, kind) and not isinstance(v, bool) for v, kind in zip(after, shape, strict=True)
        ):
            raise ValueError(after)
        if not isinstance(delivered, int) or isinstance(delivered, bool) or delivered < 0:
            raise ValueError(delivered)
        if any(isinstance(v, int) and not 0 <= v < 2**63 for v in after):
            raise ValueError(after)
    except (ValueError, KeyError, TypeError, OverflowError):
        raise InvalidInput(f"{name} is not one this server issued", field=name) from None
    if q != fingerprint:
        raise InvalidInput(f"{name} belongs to a query with other parameters", field=name)
    return after, delivered


def query_document(page: QueryPage, name: str = "SimpleEventQuery") -> dict[str, Any]:
    """An EPCISQueryDocument around one page of events of the query `name`."""
    from epcis.mapping import CONTEXT

    return {
        "@context": CONTEXT,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {"queryName": name, "resultsBody": {"eventList": list(page.events)}}
        },
    }


TOP_LEVEL = (
    "queries", "capture", "events", "eventTypes", "epcs", "bizSteps", "bizLocations", "readPoints",
    "dispositions",
)
"""The REST binding's top-level resources this server has (`GET /epcis`)."""
BROWSED = {
    "eventTypes": "eventType",
    "epcs": "MATCH_anyEPC",
    "bizSteps": "EQ_bizStep",
    "bizLocations": "EQ_bizLocation",
    "readPoints": "EQ_readPoint",
    "dispositions": "EQ_disposition",
}
"""Each browsable resource and the query parameter that selects the events of one of its values."""


def collection(members: Iterable[str]) -> dict[str, Any]:
    """The binding's answer listing resources: a JSON-LD `Collection` of `member`s."""
    from epcis.mapping import CONTEXT

    return {"@context": CONTEXT, "type": "Collection", "member": list(members)}


def browse(index: EpcisIndex, kind: str, per_page: int, token: str | None) -> tuple[list[str], str | None]:
    """One page of the values of resource `kind` and the next page's token (None: last)."""
    if kind not in BROWSED:
        raise NotFound("EPCIS resource", kind)
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput(f"perPage is 1-{MAX_PER_PAGE}", field="perPage")
    if kind == "eventTypes":
        return list(EVENT_TYPES), None
    after = decode_value_token(token, kind) if token else None
    found = index.values(kind, after, per_page + 1)
    page = found[:per_page]
    more = len(found) > per_page
    return page, encode_value_token(page[-1], kind) if more else None


def encode_value_token(after: str, kind: str) -> str:
    """The opaque token of the next page of list `kind`, which starts after value `after`."""
    raw = json.dumps({"v": after, "k": kind}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_value_token(token: str, kind: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, of = str(data["v"]), data["k"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("nextPageToken is not one this server issued", field="nextPageToken") from None
    if of != kind:
        raise InvalidInput(f"nextPageToken belongs to another list than {kind}", field="nextPageToken")
    return after
