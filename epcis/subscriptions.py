"""Query subscriptions (the REST binding's streaming ones): the new events of a named query, each once.

A subscription is a named query read forward in ledger order from a position: each `Subscription.next`
answers the matching events the EPCIS index holds after it, as one EPCISQueryDocument, and moves on.
Where it stands travels with every document (`queryResults` member `lotline:resumeToken`); a subscriber
that comes back with the last token it got, after a dropped connection or a restart of the server
(which keeps nothing of its subscribers), gets every matching event after that one, none twice.
Without a token it starts at the ledger's head: events recorded from then on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import uuid4

from epcis.named import NamedQueries
from epcis.query import (
    QueryPage,
    QueryParams,
    decode_position_token,
    encode_position_token,
    event_query,
    query_document,
)
from ledger.errors import InvalidInput
from projections.epcis_index import EpcisIndex

RESUME = "lotline:resumeToken"
"""The `queryResults` member that says where the subscription stands after this document."""
UNORDERED = ("orderBy", "orderDirection", "eventCountLimit", "maxEventCount")
"""Query parameters a subscription cannot honour: it delivers every new event, in ledger order."""
_END = 2**31 - 1
"""An index within a step after every real one: (position, _END) is after every event of `position`."""


class Subscription:
    """One subscriber's reading of a named query; not shared between connections."""

    def __init__(
        self, index: EpcisIndex, named: NamedQueries, name: str, resume: str | None, head: int
    ) -> None:
        """The subscription to query `name` from `resume`, or from chain position `head` (the ledger's
        last event now: what the index has not yet reached of it is not new)."""
        query = named.get(name).query
        unordered = [k for k in UNORDERED if k in query]
        if unordered:
            raise InvalidInput(
                f"query {name} has {unordered[0]}: a subscription delivers each new event, in the order the "
                "ledger records them", field=unordered[0],
            )
        self.name = name
        self.id = f"urn:uuid:{uuid4()}"
        self._index = index
        self._params = QueryParams.parse(query)
        self._fingerprint = self._params.fingerprint()
        if resume:
            at, _ = decode_position_token(resume, self._fingerprint, "resumeToken")
            if len(at) != 2:
                raise InvalidInput("resumeToken is not a subscription's", field="resumeToken")
            self.after: tuple[Any, ...] = at
        else:
            self.after = (head, _END)

    @property
    def token(self) -> str:
        """Where the subscription stands: after the last event delivered (or its start)."""
        return encode_position_token(self.after, 0, self._fingerprint)

    def next(self, limit: int = 100) -> dict[str, Any] | None:
        """The EPCISQueryDocument of the next matching events (at most `limit`) the index holds, or None
        when it holds none yet; the subscription moves past them."""
        rows = self._index.events(replace(event_query(self._params), after=self.after, limit=limit))
        if not rows:
            return None
        self.after = (rows[-1].seq, rows[-1].idx)
        document = query_document(QueryPage(tuple(r.body for r in rows), None), self.name)
        results = document["epcisBody"]["queryResults"]
        results["subscriptionID"] = self.id
        results[RESUME] = self.token
        return document


__all__ = ["RESUME", "Subscription"]
