"""The API's routers are matched in the order they were added (api/app.py puts the busiest first):
that order may decide speed, never which route answers. No route's path, with its parameters filled
in, is also a path of another router's route (within a router, its own order decides, as written)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

from api.app import create_app

SAMPLES = ("0355f050-3950-5fb3-b157-f10f1701533a", "latest", "1")


def leaves(routes: Iterable[BaseRoute], owner: object) -> Iterator[tuple[object, APIRoute]]:
    for r in routes:
        included = getattr(r, "original_router", None)
        if included is not None:
            yield from leaves(included.routes, included)
        elif isinstance(r, APIRoute):
            yield owner, r


def test_no_router_answers_a_path_of_another() -> None:
    app = create_app()
    routes = list(leaves(app.router.routes, app.router))
    assert len({id(owner) for owner, _ in routes}) > 10
    shared = []
    for owner, route in routes:
        for sample in SAMPLES:
            path = re.sub(r"\{[^}]+\}", sample, route.path)
            for method in sorted(route.methods):
                scope = {"type": "http", "path": path, "method": method, "root_path": ""}
                others = [r.path for o, r in routes if o is not owner and r.matches(scope)[0] == Match.FULL]
                if others:
                    shared.append((method, path, route.path, others))
    assert shared == []
