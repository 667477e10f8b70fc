"""Named queries (the EPCIS 2.0 REST binding's `/queries`): an event query kept under a name, so that a
partner asks for its events again by that name. Stored in `epcis_named_query`: the name, the query's
parameters as the URL query of `GET /epcis/events` takes them (each a list of values), who made it and
when; nothing of it is a GMP record, so it is a plain table, not events of the chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine, MetaData, String, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from epcis.query import QueryParams
from ledger.errors import AlreadyExists, InvalidInput, LedgerError, NotFound

metadata = MetaData()
named_query = Table(
    "epcis_named_query",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("query", JSON, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", String(40), nullable=False),
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PAGING = ("perPage", "nextPageToken")
"""Parameters of one request, not of the query: given when its events are asked for."""


class NotYourQuery(LedgerError):
    """Only the person who made a named query deletes it."""

    code = "forbidden"

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(f"the query {name} was made by {owner}; only they may delete it", name=name)


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    query: dict[str, list[str]]
    created_by: str
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        """As the binding shows a named query: its name and its query."""
        return {
            "name": self.name, "query": self.query, "createdBy": self.created_by, "createdAt": self.created_at
        }


class NamedQueries:
    """The named queries of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, query: Mapping[str, Any], principal: str) -> NamedQuery:
        """Keep `query` under `name` (refused if the name is taken, malformed, or the query is not one
        `GET /epcis/events` takes)."""
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidInput(
                "a query's name is 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit",
                field="name",
            )
        kept = _parameters(query)
        QueryParams.parse(kept)  # refuses what a query cannot hold, naming the parameter
        made = NamedQuery(name, kept, principal, datetime.now(UTC).isoformat())
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(named_query).values(
                    name=made.name, query=made.query, created_by=made.created_by, created_at=made.created_at
                ))
        except IntegrityError:
            raise AlreadyExists("EPCIS query", name) from None
        return made

    def get(self, name: str) -> NamedQuery:
        if not NAME.match(name):
            raise NotFound("EPCIS query", name)  # no query is kept under a name it could not be given
        with self.engine.connect() as conn:
            row = conn.execute(select(named_query).where(named_query.c.name == name)).first()
        if row is None:
            raise NotFound("EPCIS query", name)
        return NamedQuery(row.name, dict(row.query), row.created_by, row.created_at)

    def names(self, after: str | None, limit: int) -> list[NamedQuery]:
        """The named queries in name order after `after`, at most `limit`."""
        q = select(named_query).order_by(named_query.c.name).limit(limit)
        if after is not None:
            q = q.where(named_query.c.name > after)
        with self.engine.connect() as conn:
            return [NamedQuery(r.name, dict(r.query), r.created_by, r.created_at) for r in conn.execute(q)]

    def delete(self, name: str, principal: str) -> None:
        found = self.get(name)
        if found.created_by != principal:
            raise NotYourQuery(name, found.created_by)
        with self.engine.begin() as conn:
            conn.execute(delete(named_query).where(named_query.c.name == name))


def _parameters(query: Any) -> dict[str, list[str]]:
    """A query as parameters with lists of text values (`{"MATCH_epc": [...], "eventType": [...]}`)."""
    if not isinstance(query, Mapping):
        raise InvalidInput("a query is an object of query parameters and their values", field="query")
    kept: dict[str, list[str]] = {}
    for key, value in query.items():
        if key in PAGING:
            raise InvalidInput(
                f"{key} belongs to a request for the query's events, not to the query", field=key
            )
        values: Sequence[Any] = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int | bool) for v in values):
            raise InvalidInput(f"{key} takes text values", field=key)
        kept[str(key)] = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
    return kept


__all__ = ["NamedQueries", "NamedQuery", "NotYourQuery", "metadata", "named_query"]
