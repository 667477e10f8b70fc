"""Query parameters a store cannot hold are refused before any route sees them.

A NUL in a query value once reached PostgreSQL (which refuses it in text: a 500) or answered 200 for
a key that can never exist. Every route's declared query parameters are checked once, here, with the
same rule as a command's one-line text (`ledger.commands.base.one_line`): no control characters.
The refusal is an ordinary 422 naming the parameter, like any other invalid query value.
"""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

from ledger.commands.base import one_line

_DECLARED: dict[int, tuple[str, ...]] = {}


def _declared(route: APIRoute) -> tuple[str, ...]:
    """The names (aliases) of the query parameters `route` and its dependencies declare."""
    key = id(route)
    if key not in _DECLARED:
        _DECLARED[key] = tuple(dict.fromkeys(_query_names(route.dependant)))
    return _DECLARED[key]


def _query_names(dependant: Dependant) -> list[str]:
    names = [p.alias for p in dependant.query_params]
    for sub in dependant.dependencies:
        names += _query_names(sub)
    return names


async def clean_query(connection: HTTPConnection) -> None:
    """Refuse (422) a declared query parameter whose value holds a control character (a WebSocket
    route checks its own: its refusal is an answer to the handshake, which a dependency cannot give)."""
    route = connection.scope.get("route")
    if not isinstance(route, APIRoute) or not connection.url.query:
        return
    for name in _declared(route):
        for value in connection.query_params.getlist(name):
            try:
                one_line(value)
            except ValueError as e:
                raise RequestValidationError(
                    [{"loc": ("query", name), "msg": str(e), "type": "value_error", "input": value}]
                ) from None
