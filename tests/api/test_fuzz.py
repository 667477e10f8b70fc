"""Schema-driven fuzzing: schemathesis generates requests from the OpenAPI document for every route
(valid and invalid bodies, parameters and headers) and sends them to the ASGI app with a suitable
user's token, on both stores. Every answer must be one the document declares: no 5xx, a declared
status code, a declared content type, and a body that matches the declared schema (errors included).
A few requests per route also go without a token, with a token of a role the route refuses, with
malformed JSON and with a body over the limit, since random data rarely hits those answers.

Bounded to a few examples per route and generation mode, so that it stays well under two minutes
per store on two cores; every failure is collected and reported, one line per route and problem."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Api, populate, start_api
from tests.conftest import BACKENDS

EXAMPLES = 5
"""Per route and generation mode (valid and invalid requests)."""

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
"""What every answer is checked for: no 5xx, and status, content type and body as the OpenAPI says."""

# Who calls each route: a user whose role the route admits, so that requests get past authority and
# exercise parsing and the ledger's rules.
CALLERS = [
    (r"^/(trials|locations|sites/[^/]+/(activation|keys))$", "admin1"),
    (r"^/(lots|batches|packaging-runs)$", "mfg1"),
    (r"^/packaging-runs/[^/]+/certification$", "qp1"),
    (r"^/shipments$|^/locations/", "depot1"),
    (r"^/sites/", "site1"),
    (r"^/inspector/", "insp1"),
]
REFUSED = "site2"
"""A site user bound to another site: most routes refuse them (403), the rest answer as for anyone."""


def caller(path: str) -> str:
    return next((who for pattern, who in CALLERS if re.search(pattern, path)), "qa1")


@pytest.fixture(params=BACKENDS)
def fuzz_api(
    request: pytest.FixtureRequest, tmp_path: Path, new_store: Callable[[str, str], str]
) -> Iterator[Api]:
    """The app with a released program and its users, once per store."""
    for api in start_api(new_store(request.param, "fuzz"), tmp_path):
        populate(api)
        yield api


def test_every_answer_is_declared_in_the_openapi(fuzz_api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    failures: dict[str, str] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, fuzz_api, failures)
    assert not failures, f"{len(failures)} answer(s) outside the OpenAPI:\n" + "\n".join(
        sorted(failures.values())
    )


def _fuzz(operation: Any, mode: GenerationMode, api: Api, failures: dict[str, str]) -> None:
    headers = api.auth(caller(operation.path))
    edges = [mode == GenerationMode.POSITIVE]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        _check(case, case.call(headers=headers), headers, mode.value, failures)
        if edges.pop() if edges else False:
            _edges(case, api, failures)

    try:
        call()
    except Unsatisfiable:
        # no invalid request exists for this route (e.g. a GET without parameters): nothing to fuzz
        assert mode == GenerationMode.NEGATIVE, operation.path


def _edges(case: Any, api: Api, failures: dict[str, str]) -> None:
    """The answers random data seldom reaches: no token, a role or site the route refuses, and for a
    route with a body, malformed JSON and a body over the limit."""
    _check(case, case.call(), {}, "no token", failures)
    refused = api.auth(REFUSED)
    _check(case, case.call(headers=refused), refused, "refused role", failures)
    if not case.operation.body:
        return
    own = {**api.auth(caller(case.operation.path)), "Content-Type": "application/json"}
    for what, content in (("malformed JSON", b"{not json"), ("body over the limit", b" " * (2**20 + 1))):
        response = api.client.request(
            case.method, case.formatted_path, params=case.query, headers=own, content=content
        )
        _check(case, response, own, what, failures)


def _strings(headers: dict[str, Any] | None) -> dict[str, str]:
    return {k: str(v) for k, v in (headers or {}).items() if k.lower() != "authorization"}


def _check(case: Any, response: Any, headers: dict[str, str], how: str, failures: dict[str, str]) -> None:
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        for failure in group.exceptions:
            key = f"{case.method} {case.operation.path} {response.status_code} {type(failure).__name__}"
            first_line = (failure.title or "") + ": " + " ".join(str(failure.message).split())[:300]
            failures.setdefault(key, f"{key} ({how}, {case.formatted_path}): {first_line}")
