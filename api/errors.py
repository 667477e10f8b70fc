"""The one error table: each ledger error class answers with one HTTP status and its `as_dict()` body.

An error class not in the table (looked up along its MRO) is a bug and surfaces as a 500. Request
validation errors (malformed JSON, wrong types, unknown fields) get the same body shape, naming the
field; so do the HTTP errors Starlette raises itself (404 for an unknown path, 405, 413). A body FastAPI
cannot parse at all (JSON that is not UTF-8: its 400) is malformed input like any other: 422.
The OpenAPI document declares these answers for every route they can reach (api/openapi.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from epcis import CaptureTooLarge, NotYourQuery
from epcis.query import QueryTooLarge
from ledger.errors import (
    AlreadyExists,
    ConcurrentWriteConflict,
    InsufficientQuantity,
    InvalidInput,
    InvalidTransition,
    KitNotInRecall,
    KitNotUsable,
    KitsNotUsable,
    KitUnderRecall,
    LedgerError,
    LotNotUsable,
    NotAuthorised,
    NotBoundHere,
    NotFound,
    NotYourSite,
    ReadSideRequired,
    RecallOutstanding,
    RecallWrongPlace,
    ReceiptMismatch,
    ReleaseIncomplete,
    RunRecalled,
    ShipmentNotOpen,
    SignatureRequired,
    SiteNotActive,
    SiteNotReconciled,
    SiteSignatureRefused,
    StoreBusy,
    TimeOrderViolation,
    WrongSite,
)
from ledger.identity import InvalidCredentials
from ledger.keys import SigningKeyError
from ledger.notes import NoteError
from ledger.transparency import CosignatureRefused, NotYetCheckpointed
from ledger.writer import UnsignedHead
from projections.base import ProjectionConflict, ProjectionTimeout


class Forbidden(LedgerError):
    """The authenticated user may not do or see this (role, site binding or blinding)."""

    code = "forbidden"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


class SignatureNotVerified(LedgerError):
    """The re-authentication inside an electronic signature (or a second-person check) failed."""

    code = "signature_not_verified"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


class AmbiguousKitNumber(LedgerError):
    """A kit number that kits of several trials carry: the lookup needs the GTIN too."""

    code = "ambiguous_kit_number"

    def __init__(self, number: str, candidates: list[dict[str, str]]) -> None:
        gtins = ", ".join(c["gtin"] for c in candidates)
        super().__init__(
            f"{len(candidates)} kits carry the number {number} (GTINs {gtins}); give `gtin` too",
            number=number,
            candidates=candidates,
        )


class EpcisVersionNotSupported(LedgerError):
    """The client asked for a version of EPCIS or CBV other than 2.0 (`GS1-EPCIS-Version`, `-Min`,
    `-Max`, `GS1-CBV-Min`, `-Max`), or an EPC format this server does not answer in (`GS1-EPC-Format`)."""

    code = "epcis_version_not_supported"

    def __init__(
        self,
        asked: str,
        header: str = "GS1-EPCIS-Version",
        supported: tuple[str, ...] = ("2.0.0",),
        speaks: str = "EPCIS 2.0.0 only",
    ) -> None:
        super().__init__(
            f"{header} {asked!r} is not supported: this server speaks {speaks}",
            header=header,
            asked=asked,
            supported=list(supported),
        )


class CaptureBehaviourNotSupported(LedgerError):
    """The client asked for a capture error behaviour other than all or nothing (`rollback`)."""

    code = "capture_error_behaviour_not_supported"

    def __init__(self, asked: str) -> None:
        super().__init__(
            f"GS1-Capture-Error-Behaviour {asked!r} is not supported: a capture is recorded whole or not "
            "at all (rollback)",
            header="GS1-Capture-Error-Behaviour",
            asked=asked,
            supported=["rollback"],
        )


class PdfUnavailable(LedgerError):
    """The server cannot print a PDF: WeasyPrint or the Pango library it loads is missing."""

    code = "pdf_unavailable"


class IdempotencyConflict(LedgerError):
    """An Idempotency-Key reused with another request, or whose first request is still running."""

    code = "idempotency_conflict"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


STATUS: dict[type[LedgerError], int] = {
    InvalidCredentials: 401,
    NotAuthorised: 403,
    Forbidden: 403,
    NotBoundHere: 403,
    NotYourSite: 403,
    SignatureNotVerified: 403,
    SiteSignatureRefused: 403,
    NotFound: 404,
    AlreadyExists: 409,
    InsufficientQuantity: 409,
    LotNotUsable: 409,
    KitNotUsable: 409,
    KitsNotUsable: 409,
    InvalidTransition: 409,
    ReleaseIncomplete: 409,
    SiteNotActive: 409,
    ShipmentNotOpen: 409,
    ReceiptMismatch: 409,
    KitNotInRecall: 409,
    KitUnderRecall: 409,
    RunRecalled: 409,
    RecallWrongPlace: 409,
    RecallOutstanding: 409,
    SiteNotReconciled: 409,
    ReadSideRequired: 503,
    WrongSite: 409,
    TimeOrderViolation: 409,
    ConcurrentWriteConflict: 409,
    IdempotencyConflict: 409,
    ProjectionConflict: 409,
    CosignatureRefused: 409,
    NotYetCheckpointed: 409,
    InvalidInput: 422,
    SignatureRequired: 422,
    NoteError: 422,
    ProjectionTimeout: 503,
    SigningKeyError: 503,
    StoreBusy: 503,
    UnsignedHead: 503,
    PdfUnavailable: 503,
    AmbiguousKitNumber: 409,
    EpcisVersionNotSupported: 406,
    QueryTooLarge: 413,
    CaptureTooLarge: 413,
    NotYourQuery: 403,
    CaptureBehaviourNotSupported: 406,
}
"""HTTP status per ledger error class; subclasses inherit their base's entry."""

RETRYABLE = (ConcurrentWriteConflict, ProjectionConflict, ProjectionTimeout, StoreBusy)
"""Errors after which the same request may simply be sent again (answered with Retry-After: 1)."""

DESCRIPTIONS = {
    400: "The EPCIS binding's answer to a refused parameter, header value or document (what other routes "
    "answer with 422): the problem details name it.",
    401: "No bearer token, or an unknown, revoked or expired one, or a disabled user.",
    403: "The user's role, site binding or blinding forbids this, or a signature did not verify; "
    "nothing was recorded.",
    404: "An id in the path or body does not exist.",
    406: "The EPCIS or CBV version asked for (`GS1-EPCIS-Version`, `-Min`, `-Max`, `GS1-CBV-Min`, `-Max`) "
    "excludes 2.0, or the `GS1-EPC-Format` asked for is not served (the body names what is supported).",
    409: "A business rule refused the step (the body names the rule, the kits and why); "
    "nothing was recorded. `concurrent_write` may be retried; `not_yet_checkpointed` after Retry-After.",
    413: "The request body is larger than the limit (or an EPCIS query matches more events than its "
    "`maxEventCount`: `query_too_large`; or an EPCIS document holds more events than one capture takes: "
    "`capture_too_large`).",
    422: "A field is malformed, missing, of the wrong type or out of range (the body names it).",
    503: "The store or the read models do not answer in time, the log has no usable signing key, or "
    "the chain's head is not signed by the writer key (`unsigned_head`: run `lotline verify`).",
}

log = logging.getLogger("lotline.api")


def status_of(error: LedgerError) -> int | None:
    """The status for `error` from the table, along its class hierarchy; None if unmapped."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the given statuses plus 401/403/422, each an ErrorBody."""
    from api.schemas.common import ErrorBody

    wanted = sorted({401, 403, 422, *codes})
    return {c: {"model": ErrorBody, "description": DESCRIPTIONS[c]} for c in wanted}


EPCIS_PROBLEMS = {
    400: "QueryParameterException",
    401: "SecurityException",
    403: "SecurityException",
    404: "NoSuchResourceException",
    406: "NotAcceptableException",
    409: "ResourceAlreadyExistsException",
    413: "QueryTooLargeException",
    415: "UnsupportedMediaTypeException",
}
"""The EPCIS 2.0 REST binding's exception type of each status an EPCIS route answers (by default; see
`epcis_problem`); any other status is an ImplementationException."""
PROBLEM_JSON = "application/problem+json"


def epcis_status(status: int) -> int:
    """The status an EPCIS route answers for Lotline's `status`: the binding's 400 for a refused
    parameter or document (422 elsewhere in Lotline), any other as it is."""
    return 400 if status == 422 else status


def epcis_problem(path: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An error answer of an EPCIS route (`status` as the binding has it, `epcis_status`) as the
    binding's problem details (RFC 7807 `type`, `title`, `status`, `detail`, `instance`), Lotline's own
    members (`code`, `message`, `field`, ...) kept."""
    kind = EPCIS_PROBLEMS.get(status, "ImplementationException")
    if status == 409 and body.get("code") != "already_exists":
        kind = "ImplementationException"  # a concurrent write: the same request may succeed again
    if path.startswith("/epcis/capture"):
        kind = {413: "CaptureLimitExceededException", 400: "ValidationException"}.get(status, kind)
    elif path.startswith("/epcis/queries/") and status == 404:
        kind = "NoSuchNameException"
    title = " ".join(_WORD.findall(kind))
    # a detail of Lotline's named like a problem member (a kit's `status`, a busy store's `detail`)
    # keeps its value under `lotline:<name>`
    own = {(f"lotline:{k}" if k in _PROBLEM_MEMBERS else k): v for k, v in body.items()}
    return {**own, "type": f"epcisException:{kind}", "title": title, "status": status,
            "detail": body.get("message"), "instance": path}


_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


_WORD = re.compile(r"[A-Z][a-z]+")


def _answer(
    request: Request, body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer: on an EPCIS route as the binding's problem+json, with its version headers."""
    path = request.url.path
    if path != "/epcis" and not path.startswith("/epcis/"):
        return JSONResponse(body, status_code=status, headers=headers)
    versions = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
    status = epcis_status(status)
    return JSONResponse(epcis_problem(path, status, body), status_code=status,
                        headers={**versions, **(headers or {})}, media_type=PROBLEM_JSON)


async def ledger_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerError)
    status = status_of(exc)
    if status is None:
        raise exc  # not in the table: a bug, and it shows as one
    headers = {"Retry-After": "1"} if isinstance(exc, RETRYABLE) else {}
    if isinstance(exc, NotYetCheckpointed) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)  # when the next checkpoint is due
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="lotline"'
    if status == 403 and isinstance(exc, NotAuthorised | Forbidden | NotYourSite | NotBoundHere):
        log.info("denied %s %s: %s", request.method, request.url.path, exc.message)
    return _answer(request, exc.as_dict(), status, headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(e) for e in exc.errors()]
    first = problems[0] if problems else {"field": None, "message": "invalid request"}
    body = {
        "code": "invalid_input",
        "message": f"{first['field']}: {first['message']}" if first["field"] else first["message"],
        "field": first["field"],
        "problems": problems,
    }
    return _answer(request, body, 422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "There was an error parsing the body"
        message = f"body: {exc.detail} (not UTF-8 JSON)"
        problem = {"field": "body", "message": str(exc.detail), "type": "body_unparsable"}
        body = {"code": "invalid_input", "message": message, "field": "body", "problems": [problem]}
        return _answer(request, body, 422)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return _answer(request, {"code": code, "message": str(exc.detail)}, exc.status_code, exc.headers)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(LedgerError, ledger_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _problem(error: Any) -> dict[str, Any]:
    """One pydantic error as {field, message, type}: `field` is the dotted location, e.g. body.quantity."""
    loc = [str(part) for part in error.get("loc", ())]
    return {"field": ".".join(loc) or None, "message": str(error.get("msg", "")), "type": error.get("type")}
