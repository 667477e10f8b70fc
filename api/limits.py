"""A limit on request bodies: larger ones are refused with 413 before the app reads them.

Only the methods whose bodies a route reads are limited (`BODY_METHODS`); a GET's body is never read,
so it is not refused either, and the OpenAPI declares 413 exactly where it can occur (api/openapi.py)."""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_JSON, epcis_problem

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""The methods whose request bodies are limited."""


class BodyLimit:
    """ASGI middleware: 413 for a Content-Length over `max_bytes`, or a streamed body that grows past it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope["path"], send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    async def _refuse(self, path: str, send: Send) -> None:
        answer = {"code": "payload_too_large", "message": self._message()}
        media = b"application/json"
        if path == "/epcis" or path.startswith("/epcis/"):  # as every EPCIS error: problem details
            answer, media = epcis_problem(path, 413, answer), PROBLEM_JSON.encode()
        body = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", media),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
