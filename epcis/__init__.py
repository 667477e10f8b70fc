"""GS1 EPCIS 2.0 for Lotline: export (trace, time range), capture of partner documents, the REST query subset.

An adapter beside `api/`: it maps ledger events to EPCIS events and EPCIS events to ledger commands;
the ledger imports nothing of it. `Epcis` is what the API and the `lotline epcis` command call; each
method is one route's work. The format, the mapping of every
Lotline event and the extension vocabulary are in docs/epcis.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from epcis.capture import CaptureResult, EventError, capture, check
from epcis.export import export_range, export_trace
from epcis.ids import DEFAULT_PREFIX_LENGTH
from epcis.query import (
    BROWSED,
    EVENT_TYPES,
    MAX_PER_PAGE,
    TOP_LEVEL,
    Indexer,
    QueryParams,
    QueryTooLarge,
    browse,
    collection,
    query_document,
    query_events,
)
from ledger.application import Ledger
from ledger.db import open_engine
from ledger.errors import NotFound
from ledger.values import Actor
from projections.epcis_index import EpcisIndex


class Epcis:
    """EPCIS over one ledger store: streamed exports, all-or-nothing capture, paged queries."""

    def __init__(self, ledger: Ledger, database_url: str, prefix_length: int = DEFAULT_PREFIX_LENGTH) -> None:
        self.ledger = ledger
        self.engine = open_engine(database_url)
        self.prefix_length = prefix_length
        self.index = EpcisIndex(self.engine)
        self.indexer = Indexer(ledger, self.index, prefix_length)

    def close(self) -> None:
        self.engine.dispose()

    def trace(self, epc: str, *, blinded: bool = True) -> Iterator[str]:
        """The EPCISDocument of everything upstream and downstream of a lot (LGTIN) or kit (SGTIN)."""
        return export_trace(self.ledger, epc=epc, blinded=blinded, prefix_length=self.prefix_length)

    def events_between(
        self, from_time: datetime | None, to_time: datetime | None, *, blinded: bool = True
    ) -> Iterator[str]:
        """The EPCISDocument of every event in [from_time, to_time), streamed."""
        return export_range(
            self.ledger, from_time, to_time, blinded=blinded, prefix_length=self.prefix_length
        )

    def capture(
        self, document: str | bytes | Mapping[str, Any], actor: Actor | Sequence[Actor]
    ) -> CaptureResult:
        """Capture a partner's EPCISDocument: all of it or none of it, each event once."""
        return capture(self.ledger, self.engine, document, actor)

    def query(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """An EPCISQueryDocument of one page of matching events, and the next page's token."""
        parsed = QueryParams.parse(params)
        self.indexer.sync()
        page = query_events(self.index, parsed)
        return query_document(page), page.next_page_token

    def browse(
        self, kind: str, per_page: int = 100, token: str | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """A `Collection` of one page of the values of a top-level resource (`eventTypes`, `epcs`,
        `bizSteps`, `bizLocations`, `readPoints`, `dispositions`) the events hold, and the next page's
        token; NotFound for another resource."""
        if kind != "eventTypes":
            self.indexer.sync()
        members, following = browse(self.index, kind, per_page, token)
        return collection(members), following

    def value(self, kind: str, value: str) -> dict[str, Any]:
        """The sub-resources of one value of a top-level resource (`events`), NotFound when no event
        holds it (or, for event types, when it is not one)."""
        if kind == "eventTypes":
            if value not in EVENT_TYPES:
                raise NotFound("EPCIS event type", value)
        else:
            self.value_events(kind, value, {"perPage": "1"}, must_exist=True)
        return collection(["events"])

    def value_events(
        self, kind: str, value: str, params: Mapping[str, Any], *, must_exist: bool = False
    ) -> tuple[dict[str, Any], str | None]:
        """`query(params)` restricted to the events holding `value` of resource `kind`."""
        if kind not in BROWSED:
            raise NotFound("EPCIS resource", kind)
        document, token = self.query({**params, BROWSED[kind]: [value]})
        if must_exist and not document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
            raise NotFound(f"EPCIS {kind[:-1]}", value)
        return document, token

    def event(self, event_id: str) -> dict[str, Any]:
        """An EPCISQueryDocument of the event `event_id` and of the error declarations about it (they
        keep its eventID); NotFound when no event has that ID."""
        self.indexer.sync()
        page = query_events(self.index, QueryParams({"EQ_eventID": (event_id,)}, per_page=MAX_PER_PAGE))
        if not page.events:
            raise NotFound("EPCIS event", event_id)
        return query_document(page)


__all__ = [
    "TOP_LEVEL",
    "CaptureResult",
    "Epcis",
    "EventError",
    "QueryParams",
    "QueryTooLarge",
    "check",
    "export_range",
    "export_trace",
]
