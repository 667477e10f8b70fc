"""The EPCIS 2.0 REST query subset, answered from the EPCIS index read model (`projections.epcis_index`).

`Indexer.sync()` maps the chain from the index's position on into blinded EPCIS events (the
treatment allocation is never in the index) and hands them to the read model with the identifiers
each names, a page of rows per transaction; `Epcis.query` syncs first, so a query sees the ledger's
latest events. What is EPCIS here: the mapping of steps to events, which fields name what (roles),
canonical identifiers and CBV words, the query parameters and the page tokens.

Supported: MATCH_epc, MATCH_anyEPC, MATCH_epcClass, MATCH_inputEPCClass, MATCH_outputEPCClass,
MATCH_parentID, EQ_bizStep, EQ_disposition, EQ_bizLocation, GE_eventTime, LT_eventTime, perPage and
nextPageToken. Identifiers match in any form (EPC URI or GS1 Digital Link, canonicalised); CBV words
match bare or as URIs. No wildcard (idpat) matching.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

from epcis.dl import canonical_dl
from epcis.export import decoded
from epcis.mapping import Mapper, steps
from epcis.models import cbv_word
from ledger.application import Ledger
from ledger.errors import InvalidInput
from ledger.values import utc
from projections.epcis_index import Entry, EpcisIndex, EventQuery, Names

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
MATCHES = (
    ("MATCH_epc", ("epc",)),
    ("MATCH_anyEPC", ("epc", "parent")),
    ("MATCH_epcClass", ("class", "input_class", "output_class")),
    ("MATCH_inputEPCClass", ("input_class",)),
    ("MATCH_outputEPCClass", ("output_class",)),
    ("MATCH_parentID", ("parent",)),
)
"""Each MATCH_ parameter and the roles (`_roles`) in which an event names what it matches."""


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


def _entry(seq: int, idx: int, event: Mapping[str, Any]) -> Entry:
    place = (event.get("bizLocation") or {}).get("id")
    return Entry(
        seq=seq,
        idx=idx,
        event_id=event["eventID"],
        event_time=datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")),
        type=event["type"],
        biz_step=cbv_word(event.get("bizStep")),
        disposition=cbv_word(event.get("disposition")),
        biz_location=_canonical(place) if place else None,
        body=dict(event),
        names=tuple(dict.fromkeys(_roles(event))),
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
    """The events matching `params`, a page at a time, as far as the index has got (`Indexer.sync`)."""
    after = _decode_token(params.next_page_token, params.fingerprint()) if params.next_page_token else (0, -1)
    values = params.values
    query = EventQuery(
        after=after,
        from_time=params.ge_event_time,
        before_time=params.lt_event_time,
        biz_steps=_given(values, "EQ_bizStep", cbv_word),
        dispositions=_given(values, "EQ_disposition", cbv_word),
        biz_locations=_given(values, "EQ_bizLocation", _canonical),
        names=tuple(
            Names(tuple(_canonical(v) for v in values[name]), roles)
            for name, roles in MATCHES
            if name in values
        ),
        limit=params.per_page + 1,
    )
    rows = index.events(query)
    more = len(rows) > params.per_page
    rows = rows[: params.per_page]
    token = _encode_token(rows[-1].seq, rows[-1].idx, params.fingerprint()) if more else None
    return QueryPage(tuple(r.body for r in rows), token)


def _given(
    values: Mapping[str, tuple[str, ...]], name: str, norm: Callable[[str], str | None]
) -> tuple[str, ...] | None:
    """The values of parameter `name` in canonical form; None when the query does not name it."""
    if name not in values:
        return None
    return tuple(word for word in map(norm, values[name]) if word is not None)


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
    from epcis.mapping import CONTEXT

    return {
        "@context": CONTEXT,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": list(page.events)}}
        },
    }
