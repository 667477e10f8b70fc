"""API-tier fixtures: the app on a fresh store (both backends), its users and their tokens, and a
small released program written through the ledger so that each test starts where its rule bites."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.application import Ledger
from ledger.config import Settings
from ledger.domain import Location
from ledger.identity import Identity
from ledger.values import Role
from tests.builders import BY_ADMIN, DEPOT_GLN, FR_SITE_GLN, PLANT_GLN, SITE_GLN, Program

PASSWORD = "correct horse battery staple"
FAST_SCRYPT = 2**10  # tests only: the cost is stored with each hash, so the app verifies it as made

# principal -> (role, printed name); the principals of tests.builders.Actors, plus a few more.
USERS: dict[str, tuple[Role, str]] = {
    "admin1": (Role.ADMIN, "Ada Admin"),
    "mfg1": (Role.MANUFACTURING, "Max Maker"),
    "mfg2": (Role.MANUFACTURING, "Mia Checker"),
    "qa1": (Role.QA, "Quinn QA"),
    "qa2": (Role.QA, "Quentin Second"),
    "qp1": (Role.QP, "Pat QP"),
    "depot1": (Role.DEPOT, "Dee Depot"),
    "site1": (Role.SITE, "Sam Site"),
    "site2": (Role.SITE, "Sue Elsewhere"),
    "recall1": (Role.RECALL_INVESTIGATOR, "Rita Recall"),
    "insp1": (Role.INSPECTOR, "Ines Inspector"),
}

PLANT, DEPOT, SITE, FR_SITE = (Location.create_id(g) for g in (PLANT_GLN, DEPOT_GLN, SITE_GLN, FR_SITE_GLN))
PLACES: dict[str, tuple[Any, ...]] = {
    "mfg1": (PLANT, DEPOT),  # formulation at the plant, packaging at the depot
    "mfg2": (PLANT, DEPOT),
    "depot1": (DEPOT,),
    "site1": (SITE,),
    "site2": (FR_SITE,),
}
"""Where each place-bound user of `USERS` works: the builders' places (ids follow from their GLNs)."""


@dataclass
class Api:
    """The running app, a ledger on the same store for setup and checks, and each user's token."""

    client: TestClient
    ledger: Ledger
    identity: Identity
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, principal: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[principal]}"}

    def post(self, principal: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {**self.auth(principal), **kwargs.pop("headers", {})}
        return self.client.post(path, json=body if body is not None else {}, headers=headers, **kwargs)

    def get(self, principal: str, path: str, **kwargs: Any) -> Any:
        """GET as `principal`; a read waits (`after=`) for every write made so far, through HTTP or
        the ledger, as a client passes its last write's position (the app's worker thread applies it)."""
        params = kwargs.get("params")
        if params is not None:  # a query in the path would be dropped for `params`: add it there
            if "after" not in params and "after=" not in path:
                kwargs["params"] = {**params, "after": self.position()}
        elif "after=" not in path:
            path = f"{path}{'&' if '?' in path else '?'}after={self.position()}"
        return self.client.get(path, headers=self.auth(principal), **kwargs)

    def settle(self) -> None:
        """Wait until the app's read models have applied every write made so far (the console's pages,
        like a person's browser, pass no `after`)."""
        self.client.app.state.read_side.wait_for(self.position())  # type: ignore[attr-defined]

    def position(self) -> int:
        """The ledger's last position: what the last write's answer carried."""
        return int(self.ledger.recorder.max_notification_id() or 0)

    def head(self) -> tuple[int, bytes]:
        return self.ledger.chain.head()

    def add_user(self, principal: str, role: Role, name: str, places: tuple[Any, ...] = ()) -> str:
        self.identity.add_user(principal, name=name, role=role, places=places, password=PASSWORD, **BY_ADMIN)
        self.tokens[principal] = self.identity.issue_token(principal, **BY_ADMIN)
        return self.tokens[principal]


WORKER_THREAD: dict[str, Any] = {"projection_thread": True, "projection_poll_seconds": 0.02}
"""Settings for an app that applies events itself, in a thread, as a projection worker would."""


def signature(meaning: str, password: str = PASSWORD) -> dict[str, str]:
    return {"meaning": meaning, "password": password}


def start_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app on `database_url` with an empty user table; closed when the generator ends."""
    settings = Settings(database_url=database_url, keys_dir=tmp_path / "keys", **WORKER_THREAD)
    ledger = Ledger.open(database_url, keys_dir=settings.keys_dir)  # the app's writer key: one writer
    identity = Identity.open(database_url, ledger=ledger, scrypt_n=FAST_SCRYPT)
    try:
        with TestClient(create_app(settings)) as client:
            yield Api(client, ledger, identity)
    finally:
        identity.close()
        ledger.close()


@pytest.fixture
def empty_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The app on an empty store, without users."""
    yield from start_api(database_url, tmp_path)


def populate(api: Api) -> Program:
    """LTL-101 released for DE (kits K00001-K00010 at the depot), and every user of `USERS`, bound to
    their `PLACES`: site1 to the DE site, site2 to the FR site, depot1 to the depot."""
    program = Program.released(api.ledger)
    for principal, (role, name) in USERS.items():
        api.add_user(principal, role, name, PLACES.get(principal, ()))
    return program


@pytest.fixture
def program(empty_api: Api) -> Program:
    """See `populate`."""
    return populate(empty_api)


@pytest.fixture
def api(empty_api: Api, program: Program) -> Api:
    """The app with `program` and its users."""
    return empty_api
