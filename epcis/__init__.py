"""GS1 EPCIS 2.0 for Lotline: export (trace, time range), capture of partner documents, the REST query subset.

An adapter beside `api/`: it maps ledger events to EPCIS events and EPCIS events to ledger commands;
the ledger imports nothing of it. `Epcis` is what the API and the `lotline epcis` command call; each
method is one route's work. The format, the mapping of every
Lotline event and the extension vocabulary are in docs/epcis.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from epcis.capture import CaptureResult, CaptureTooLarge, EventError, capture, check
from epcis.export import export_range, export_trace
from epcis.ids import DEFAULT_PREFIX_LENGTH
from epcis.jobs import CaptureJob, CaptureJobs
from epcis.named import PAGING, NamedQueries, NamedQuery, NotYourQuery
from epcis.query import (
    BROWSED,
    EVENT_TYPES,
    MAX_PER_PAGE,
    TOP_LEVEL,
    Indexer,
    QueryPage,
    QueryParams,
    QueryTooLarge,
    browse,
    collection,
    decode_value_token,
    encode_value_token,
    query_document,
    query_events,
)
from epcis.subscriptions import Subscription
from ledger.application import Ledger
from ledger.commands.base import one_line
from ledger.db import open_engine
from ledger.errors import InvalidInput, NotFound
from ledger.values import Actor
from projections.base import ERROR_TEXT_MAX, Failure, ProjectionTimeout
from projections.epcis_index import FAILURE_NAME, EpcisIndex

log = logging.getLogger("lotline.epcis")


class Following:
    """A thread keeping one `Epcis`'s index up to date; `close()` stops it."""

    def __init__(self, epcis: Epcis, poll_seconds: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=epcis.follow, args=(self._stop, poll_seconds), name="lotline-epcis-index", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

_POLL_SECONDS = 0.02
"""How often a query waiting for the index looks at its position (one small indexed SELECT)."""


class Epcis:
    """EPCIS over one ledger store: streamed exports, all-or-nothing capture, paged queries.

    Queries read the EPCIS index (`projections.epcis_index`). By default each query first brings it up
    to date itself (a script, a test); with `followed=True` (the API) a projection worker keeps it up to
    date (`follow`, which `lotline project --follow` runs) and a query only waits, at most
    `wait_seconds`, for it to reach the position the client asks for: a request never indexes events.
    """

    def __init__(
        self,
        ledger: Ledger,
        database_url: str,
        prefix_length: int = DEFAULT_PREFIX_LENGTH,
        *,
        followed: bool = False,
        wait_seconds: float = 5.0,
    ) -> None:
        self.ledger = ledger
        self.engine = open_engine(database_url)
        self.prefix_length = prefix_length
        self.index = EpcisIndex(self.engine)
        self.indexer = Indexer(ledger, self.index, prefix_length)
        self.followed = followed
        self.wait_seconds = wait_seconds
        self.named = NamedQueries(self.engine)
        self.jobs = CaptureJobs(self.engine)

    def position(self) -> int:
        """The last chain position the EPCIS index holds."""
        return self.index.position()

    def _current(self, after: int | None = None) -> None:
        """Bring the index up to date (not followed), or wait for it to reach `after` (followed)."""
        if not self.followed:
            self.sync()
            return
        if after is None:
            return
        deadline = time.monotonic() + self.wait_seconds
        while (reached := self.index.position()) < after:
            stuck = [f for f in self.failures() if f.position <= after]
            if stuck or time.monotonic() >= deadline:  # stopped before `after`: no wait reaches it
                raise ProjectionTimeout(after, reached, self.wait_seconds, stuck)
            time.sleep(_POLL_SECONDS)

    def follow(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Index new chain events until `stop` is set (a projection worker's thread). A failure is
        logged, recorded for `/ready` and `lotline project` (`failure`), and tried again a poll later;
        it never stops the worker's read models."""
        failed: str | None = None
        while not stop.is_set():
            before: int | None = None
            try:
                before = self.index.position()
                moved = self.sync() > before
                failed = None
            except Exception as e:  # isolated: the index alone stops moving; the worker goes on
                if repr(e) != failed:
                    log.exception("the EPCIS index stopped at position %s", before)
                failed, moved = repr(e), False
            if not moved:
                stop.wait(poll_seconds)

    def sync(self) -> int:
        """Index every chain event not yet indexed; the position reached. A failure is recorded
        (`failure`: the first position not indexed and the error) before it is raised, once per
        distinct failure; a sync that reaches the head clears it."""
        before = self.index.position()
        try:
            reached = self.indexer.sync()
        except Exception as e:
            first_line = (str(e).splitlines() or [""])[0]  # a store error goes on with its SQL
            stopped = Failure(FAILURE_NAME, before + 1, f"{type(e).__name__}: {first_line}"[:ERROR_TEXT_MAX])
            try:
                if self.index.failure() != stopped:
                    self.index.record_failure(stopped.position, stopped.error)
            except Exception:  # a store that does not answer at all: the error raised says it
                log.exception("could not record where the EPCIS index stopped (position %d)", before)
            raise
        if self.index.failure() is not None:
            self.index.clear_failure()
        return reached

    def failures(self) -> list[Failure]:
        """Where and why the index stopped, if it did (in any process), as read models' failures are
        listed (`ProjectionRunner.failures`): none or one."""
        return [f for f in [self.index.failure()] if f is not None]

    def close(self) -> None:
        self.engine.dispose()

    def start_following(self, poll_seconds: float = 0.5) -> Following:
        """`follow` in a thread of this process until the answer is closed (an app's worker thread)."""
        return Following(self, poll_seconds)

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
        self,
        document: str | bytes | Mapping[str, Any],
        actor: Actor | Sequence[Actor],
        limit: int | None = None,
    ) -> CaptureResult:
        """Capture a partner's EPCISDocument (or EPCISQueryDocument): all of it or none of it, each event
        once; at most `limit` events (CaptureTooLarge)."""
        return capture(self.ledger, self.engine, document, actor, limit)

    def capture_job(
        self,
        document: str | bytes | Mapping[str, Any],
        actor: Actor | Sequence[Actor],
        principal: str,
        limit: int | None = None,
    ) -> tuple[CaptureResult, CaptureJob]:
        """`capture`, kept as a capture job of `principal` (`GET /epcis/capture/{captureID}`), whether
        the document was recorded or refused."""
        started = datetime.now(UTC)
        result = capture(self.ledger, self.engine, document, actor, limit)
        job = self.jobs.record(principal, started, datetime.now(UTC), result.accepted, result.as_dict())
        return result, job

    def capture_jobs(
        self, principal: str, per_page: int = 100, token: str | None = None
    ) -> tuple[list[CaptureJob], str | None]:
        """One page of `principal`'s capture jobs, newest first, and the next page's token (None: last)."""
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"perPage is 1-{MAX_PER_PAGE}", field="perPage")
        found = self.jobs.newest(principal, token, per_page + 1)
        page = found[:per_page]
        return page, page[-1].capture_id if len(found) > per_page else None

    def query(
        self, params: Mapping[str, Any], after: int | None = None, name: str = "SimpleEventQuery"
    ) -> tuple[dict[str, Any], str | None]:
        """An EPCISQueryDocument of one page of matching events, and the next page's token; `after`: a
        chain position the answer must include (followed: waited for, bounded)."""
        parsed = QueryParams.parse(params)
        self._current(after)
        page = query_events(self.index, parsed)
        return query_document(page, name), page.next_page_token

    def named_queries(
        self, per_page: int = 100, token: str | None = None
    ) -> tuple[list[NamedQuery], str | None]:
        """One page of the named queries, in name order, and the next page's token (None: last)."""
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"perPage is 1-{MAX_PER_PAGE}", field="perPage")
        after = decode_value_token(token, "queries") if token else None
        found = self.named.names(after, per_page + 1)
        page = found[:per_page]
        return page, encode_value_token(page[-1].name, "queries") if len(found) > per_page else None

    def named_events(
        self, name: str, params: Mapping[str, Any], after: int | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """A page of the events of the named query `name` (`params`: perPage, nextPageToken)."""
        stored = self.named.get(name).query
        extra = [k for k in params if k not in PAGING]
        if extra:
            raise InvalidInput(f"{extra[0]} belongs to the query {name}, not to a request for its events",
                               field=extra[0])
        return self.query({**stored, **params}, after, name)

    def subscribe(self, name: str, resume_token: str | None = None) -> Subscription:
        """A subscription to the named query `name` (NotFound if there is none): from `resume_token`
        (where an earlier one stood), or from now: the events the ledger records from now on."""
        return Subscription(self.index, self.named, name, resume_token, self.ledger.chain.head()[0])

    def deliver(self, subscription: Subscription, limit: int = 100) -> dict[str, Any] | None:
        """The subscription's next EPCISQueryDocument of new events, or None when there are none yet."""
        self._current()
        return subscription.next(limit)

    def browse(
        self, kind: str, per_page: int = 100, token: str | None = None, after: int | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """A `Collection` of one page of the values of a top-level resource (`eventTypes`, `epcs`,
        `bizSteps`, `bizLocations`, `readPoints`, `dispositions`) the events hold, and the next page's
        token; NotFound for another resource."""
        if kind != "eventTypes":
            self._current(after)
        members, following = browse(self.index, kind, per_page, token)
        return collection(members), following

    def value(self, kind: str, value: str, after: int | None = None) -> dict[str, Any]:
        """The sub-resources of one value of a top-level resource (`events`), NotFound when no event
        holds it (or, for event types, when it is not one)."""
        if kind == "eventTypes":
            if value not in EVENT_TYPES:
                raise NotFound("EPCIS event type", value)
        else:
            self.value_events(kind, value, {"perPage": "1"}, after, must_exist=True)
        return collection(["events"])

    def value_events(
        self,
        kind: str,
        value: str,
        params: Mapping[str, Any],
        after: int | None = None,
        *,
        must_exist: bool = False,
    ) -> tuple[dict[str, Any], str | None]:
        """`query(params)` restricted to the events holding `value` of resource `kind`."""
        if kind not in BROWSED:
            raise NotFound("EPCIS resource", kind)
        document, token = self.query({**params, BROWSED[kind]: [value]}, after)
        if must_exist and not document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
            raise NotFound(f"EPCIS {kind[:-1]}", value)
        return document, token

    def event(self, event_id: str, after: int | None = None) -> dict[str, Any]:
        """An EPCISQueryDocument of the event `event_id` and of the error declarations about it (they
        keep its eventID); NotFound when no event has that ID."""
        return query_document(self.event_page(event_id, after))

    def event_page(self, event_id: str, after: int | None = None) -> QueryPage:
        """The events with that eventID (the event and the error declarations about it) and the chain
        positions of the steps they come from (`seqs`: where their proofs are); NotFound when none."""
        try:
            one_line(event_id)
        except ValueError as e:
            raise InvalidInput(f"eventID: {e}", field="eventID") from None
        self._current(after)
        # Not parsed from text: an eventID is one value, commas and all.
        page = query_events(self.index, QueryParams({"EQ_eventID": (event_id,)}, per_page=MAX_PER_PAGE))
        if not page.events:
            raise NotFound("EPCIS event", event_id)
        return page


__all__ = [
    "TOP_LEVEL",
    "CaptureJob",
    "CaptureResult",
    "CaptureTooLarge",
    "Epcis",
    "EventError",
    "Following",
    "NamedQuery",
    "NotYourQuery",
    "QueryPage",
    "QueryParams",
    "QueryTooLarge",
    "Subscription",
    "check",
    "export_range",
    "export_trace",
]
