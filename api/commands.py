"""Running a command over HTTP: `Writer` builds the command from the path and the body, the body's
signatures and second-person checks re-authenticated, hands it to `Ledger.handle` once per
Idempotency-Key, and answers with the route's response model made from what the ledger recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.auth import Signer
from api.idempotency import Once
from api.schemas.bodies import Body
from api.schemas.common import CheckerIn, Recorded, SignatureIn
from ledger.application import Ledger
from ledger.commands import Command
from ledger.values import Actor


class Writer:
    """One request's way to the ledger (`Write` in api/deps.py)."""

    def __init__(self, ledger: Ledger, actor: Actor, signer: Signer, once: Once, route: APIRoute) -> None:
        self.ledger, self.actor, self.signer, self.once, self.route = ledger, actor, signer, once, route

    def __call__(self, body: Body, **given: Any) -> BaseModel | JSONResponse:
        """Run `body`'s command, its other fields `given` (from the path)."""
        return self.run(lambda: body.command(**self.fields(body), **given))

    def fields(self, body: Body) -> dict[str, Any]:
        """The body's fields as the command takes them: a signature or a second person's check is
        the ledger's `Signature` or `Actor` once their credentials verify."""
        fields = body.model_dump()
        for name, value in body:
            if isinstance(value, SignatureIn):
                fields[name] = self.signer.sign(value)
            elif isinstance(value, CheckerIn):
                fields[name] = self.signer.checker(value)
        return fields

    def run(self, command: Callable[[], Command]) -> BaseModel | JSONResponse:
        """Build the command and handle it, once per Idempotency-Key (a replay re-authenticates no one
        and records nothing); the answer is the route's response model, with the route's status,
        stored in the command's own write transaction."""
        answer: Any = self.route.response_model
        assert isinstance(answer, type) and issubclass(answer, Recorded), "a command route answers Recorded"
        status = self.route.status_code or 200
        return self.once(
            lambda alongside: self.ledger.handle(command(), self.actor, alongside), answer.of, status
        )
