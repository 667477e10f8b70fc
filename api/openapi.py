"""The OpenAPI document, completed so that it declares every answer a route can give.

FastAPI documents what each route declares. Some answers come from machinery around the routes
rather than from the route itself, and the same for every route that uses it; they are declared
here, once, from what the route depends on, instead of in every decorator:

- 401 and 403 where the route authenticates (`get_session`), 413 where it takes a body (the body
  limit, `api.limits`), 422 where it has any parameter or body, 409 where it runs a command (a
  concurrent write, a reused Idempotency-Key) or records an unblinded read (`get_unblinding`), 503
  where it reads the read models (`get_read_side`: they did not answer, or did not reach the asked
  position, in time), takes a body (POST, PUT, PATCH, DELETE: the route writes, and the store may
  stay busy through every retry) or records an unblinded read (the same), and 406 on the EPCIS routes
  (a `GS1-EPCIS-Version` other than 2.0);
- every error answer is JSON, whatever the route's own media type (a note's `text/plain`, a report's
  `text/html`), with the schema the route declared for it or `ErrorBody` (api/errors.py), never
  FastAPI's `HTTPValidationError`, which no answer of ours has the shape of; on the EPCIS routes it is
  the binding's `application/problem+json` (`api.errors.epcis_problem`), and a refused parameter or
  document is its 400, not 422;
- `Retry-After` on 409 and 503, `WWW-Authenticate` on 401.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.deps import epcis_version, get_once, get_read_side, get_session, get_unblinding, get_writer
from api.errors import DESCRIPTIONS, PROBLEM_JSON, epcis_status
from api.limits import BODY_METHODS
from api.schemas.common import ErrorBody

ERROR_BODY = "#/components/schemas/ErrorBody"
FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"
JSON = "application/json"

HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'Always `Bearer realm="lotline"`.',
            "schema": {"type": "string"},
        }
    },
    409: {
        "Retry-After": {
            "description": "Seconds after which the same request may succeed (`concurrent_write`, "
            "`not_yet_checkpointed`); absent when only another request can help.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds after which to ask again, when waiting can help.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}
"""Headers an error answer may carry, by status."""


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (made once, then cached like FastAPI's)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            complete(document, [r for r in _api_routes(app) if r.include_in_schema])
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], routes: list[Any]) -> None:
    """Declare in `document` the answers each of `routes` can give beyond its own declarations."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}"))
    for route in routes:
        for method in route.methods:
            operation = document["paths"][route.path_format].get(method.lower())
            if operation is not None:
                _complete_operation(operation, method, route)
    _drop_unused(document, ("HTTPValidationError", "ValidationError"))


def statuses(route: Any, method: str, has_body: bool) -> set[int]:
    """The error statuses the machinery around `route` can answer with (see the module's docstring)."""
    calls = set(_calls(route.dependant))
    found: set[int] = set()
    if get_session in calls:
        found |= {401, 403}
    if has_body or method in BODY_METHODS:
        found |= {413, 503}  # the body limit; a write that finds the store busy through every retry
    if has_body or _has_parameters(route.dependant):
        found.add(422)
    if calls & {get_writer, get_once}:
        found.add(409)
    if get_read_side in calls:
        found.add(503)
    if epcis_version in calls:
        found.add(406)
    if get_unblinding in calls:  # an unblinded read is recorded first: a write that may meet a race
        found |= {409, 503}
    return found


def _complete_operation(operation: dict[str, Any], method: str, route: Any) -> None:
    responses = operation.setdefault("responses", {})
    epcis = epcis_version in set(_calls(route.dependant))
    media = PROBLEM_JSON if epcis else JSON
    for status in sorted(statuses(route, method, "requestBody" in operation)):
        responses.setdefault(str(epcis_status(status) if epcis else status), {})
    if epcis and "422" in responses:  # FastAPI's own validation answer: the binding's 400 here
        refused = responses.pop("422")
        responses["400"] = responses.get("400") or refused
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        status = int(code)
        schema = _declared_schema(response)
        response["content"] = {media: {"schema": schema}}
        if not response.get("description") or response["description"] == "Validation Error":
            response["description"] = DESCRIPTIONS.get(status, "An error; the body names it.")
        for name, header in HEADERS.get(status, {}).items():
            response.setdefault("headers", {}).setdefault(name, header)
    operation["responses"] = dict(sorted(responses.items()))


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as the OpenAPI generator sees them: each with its path (prefixes
    included), methods and dependant (the app's and routers' dependencies included). FastAPI 0.16x
    keeps included routers nested and walks them with `iter_route_contexts`; older ones list them flat."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _declared_schema(response: dict[str, Any]) -> dict[str, Any]:
    """The schema the route declared for an error answer, under whichever media type; else ErrorBody."""
    for media in (response.get("content") or {}).values():
        schema = media.get("schema")
        if schema and schema.get("$ref") != FASTAPI_VALIDATION:
            return dict(schema)
    return {"$ref": ERROR_BODY}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _has_parameters(dependant: Dependant) -> bool:
    own = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
    )
    return any(own) or any(_has_parameters(sub) for sub in dependant.dependencies)


def _drop_unused(document: dict[str, Any], names: tuple[str, ...]) -> None:
    """Remove FastAPI's own error schemas once nothing refers to them any more."""
    schemas = document["components"]["schemas"]
    kept = {k: v for k, v in schemas.items() if k not in names}
    text = json.dumps({**document, "components": {**document["components"], "schemas": kept}})
    for name in names:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)
