"""Schema-driven fuzzing: schemathesis generates requests from the OpenAPI document for every route
(valid and invalid bodies, parameters and headers) and sends them to the ASGI app with a suitable
user's token; no answer may be a 500. Bounded to a few examples per route (SQLite only: the checks it
exercises are the API's and the ledger's, not the store's)."""

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

from tests.api.conftest import Api, populate, start_api

EXAMPLES = 5
"""Per route and generation mode (valid and invalid requests)."""

# Who calls each route: a user whose role the route admits, so that requests get past authority and
# exercise parsing and the ledger's rules.
CALLERS = [
    (r"^/(trials|locations|sites/[^/]+/activation)$", "admin1"),
    (r"^/(lots|batches|packaging-runs)$", "mfg1"),
    (r"^/packaging-runs/[^/]+/certification$", "qp1"),
    (r"^/shipments$|^/locations/", "depot1"),
    (r"^/sites/", "site1"),
    (r"^/inspector/", "insp1"),
]


def caller(path: str) -> str:
    return next((who for pattern, who in CALLERS if re.search(pattern, path)), "qa1")


@pytest.fixture
def fuzz_api(tmp_path: Path, new_store: Callable[[str, str], str]) -> Iterator[Api]:
    """The app with a released program and its users, on SQLite."""
    for api in start_api(new_store("sqlite", "fuzz"), tmp_path):
        populate(api)
        yield api


def test_no_request_makes_the_api_answer_500(fuzz_api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, fuzz_api)


def _fuzz(operation: Any, mode: GenerationMode, api: Api) -> None:
    headers = api.auth(caller(operation.path))

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, (
            mode,
            case.method,
            case.formatted_path,
            response.status_code,
            response.text[:500],
        )

    try:
        call()
    except Unsatisfiable:
        # no invalid request exists for this route (e.g. a GET without parameters): nothing to fuzz
        assert mode == GenerationMode.NEGATIVE, operation.path
