"""GS1 EPCIS 2.0 over HTTP (base URL `/epcis`): streamed exports of a trace or a time range, capture of
partners' documents, and the REST query subset. Every answer carries the `GS1-EPCIS-Version` headers.

Exports and queries are blinded like genealogy (site users refused; `unblinded=true` for the roles of
`permissions.UNBLINDED`, logged). Capture re-authenticates the capturing user, since the steps it
records may carry that user's electronic signature (docs/api.md, docs/epcis.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from api import permissions
from api.auth import authenticate, require_role
from api.deps import Capturer, EpcisDep, SignerDep, Tracer, UnblindingDep, epcis_version
from api.errors import (
    PROBLEM_JSON,
    CaptureBehaviourNotSupported,
    epcis_problem,
    epcis_status,
    errors,
    status_of,
)
from api.routes.queries import Unblinded
from api.schemas.common import CheckerIn, ErrorBody
from epcis import TOP_LEVEL
from epcis.query import BROWSED, collection, query_document
from ledger.commands.base import one_line
from ledger.errors import InvalidInput, LedgerError, NotFound

router = APIRouter(prefix="/epcis", tags=["epcis"], dependencies=[Depends(epcis_version)])

MEDIA_TYPE = "application/ld+json"
HEADERS = {
    "GS1-EPCIS-Version": "2.0.0",
    "GS1-CBV-Version": "2.0.0",
    "GS1-EPCIS-Min": "2.0.0",
    "GS1-EPCIS-Max": "2.0.0",
}
"""The version headers of every EPCIS response (EPCIS 2.0 REST binding)."""
PROOF_REL = "https://lotline.dev/voc/proof"
"""The link relation of an event's proof bundle (`GET /epcis/events/{eventID}`)."""

DOCUMENT: dict[str, Any] = {"schema": {"type": "object", "description": "An EPCIS 2.0 document (JSON-LD)."}}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: DOCUMENT}, "description": "An EPCISDocument, streamed."}
}
PAGED: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MEDIA_TYPE: DOCUMENT},
        "description": "An EPCISQueryDocument; the next page's URL is in the `Link` header.",
    }
}
After = Annotated[
    int | None,
    Query(
        ge=0,
        description="A ledger position the answer must include (a write's answer carries it): waits, "
        "bounded, for the EPCIS index to reach it (503 with Retry-After if it does not).",
    ),
]
Values = Annotated[list[str] | None, Query(max_length=100, description="Comma-separated or repeated (OR).")]
Time = Annotated[str | None, Query(max_length=40, description="ISO 8601 with a time zone.")]


class EventRefusal(BaseModel):
    """Why one event was refused: its position in `eventList` (null: the document or its header), the
    rule, and where in the document (`pointer`)."""

    index: int | None
    eventID: str | None
    code: str
    reason: str
    pointer: str | None = None
    """The JSON pointer of the value refused, when one value is to blame."""


class CaptureOut(BaseModel):
    """A capture's outcome: events in the document, newly recorded, already captured before (skipped)
    and the ledger events written, with every event's hash ID."""

    accepted: bool
    events: int
    recorded: int
    duplicates: int
    ledgerEvents: int
    errors: list[EventRefusal]
    eventIDs: list[str]


class CaptureJobOut(CaptureOut):
    """A capture job as the binding shows it (finished: capture is done within the request), with the
    capture's outcome."""

    captureID: str
    createdAt: str
    finishedAt: str
    running: bool
    success: bool
    captureErrorBehaviour: Literal["rollback"]
    createdBy: str


class CaptureRefused(CaptureJobOut):
    """A document refused whole, nothing recorded: the error's `code` and sentence, and the job with
    `errors` naming each refused event's index and reason."""

    code: Literal["epcis_refused"]
    message: str


def _streamed(document: Any) -> StreamingResponse:
    return StreamingResponse(document, media_type=MEDIA_TYPE, headers=HEADERS)


@router.get("/trace", response_class=StreamingResponse, responses={**STREAMED, **errors(404)})
def trace(
    epc: Annotated[str, Query(min_length=1, max_length=300, description="A lot (LGTIN) or a kit (SGTIN).")],
    user: Tracer,
    epcis: EpcisDep,
    blinding: UnblindingDep,
    unblinded: Unblinded = False,
) -> StreamingResponse:
    """Everything upstream and downstream of a lot or kit as an EPCISDocument, streamed (blinded unless
    `unblinded=true`: QA, QP, recall investigator, inspector)."""
    shown = blinding(unblinded, f"EPCIS trace of {epc}")
    return _streamed(epcis.trace(epc, blinded=not shown))


@router.get("/events/export", response_class=StreamingResponse, responses={**STREAMED, **errors()})
def export_range(
    user: Tracer,
    epcis: EpcisDep,
    blinding: UnblindingDep,
    from_: Annotated[AwareDatetime | None, Query(alias="from", description="Events at or after.")] = None,
    to: Annotated[AwareDatetime | None, Query(description="Events before.")] = None,
    unblinded: Unblinded = False,
) -> StreamingResponse:
    """Every event that happened in [from, to) as one EPCISDocument, streamed (blinded unless
    `unblinded=true`)."""
    shown = blinding(unblinded, "EPCIS export")
    return _streamed(epcis.events_between(from_, to, blinded=not shown))


async def document_text(request: Request) -> str:
    """The request body as text (the 1 MiB body limit applies)."""
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the document is not UTF-8 text", field="body") from None


Password = Annotated[
    str | None,
    Header(
        alias="Lotline-Signature-Password",
        max_length=200,
        description="The capturing user's password (re-authentication: steps may be signed in their name).",
    ),
]
Token = Annotated[
    str | None,
    Header(
        alias="Lotline-Signature-Token",
        max_length=200,
        description="Instead of the password: a fresh token of the same user, not the bearer token.",
    ),
]


@router.post(
    "/capture",
    status_code=202,
    response_model=CaptureJobOut,
    responses={
        202: {
            "model": CaptureJobOut,
            "description": "Captured (`recorded` new events; 0 when every one was captured before), as a "
            "finished capture job whose URL is in `Location`.",
        },
        **errors(403, 413),
        400: {
            "model": CaptureRefused | ErrorBody,
            "description": "Refused whole, nothing recorded (ValidationException): `errors` names each "
            "event's index and reason; the job is at `Location` (or a malformed header or body).",
        },
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": DOCUMENT}}},
)
def capture(
    user: Capturer,
    signer: SignerDep,
    epcis: EpcisDep,
    document: Annotated[str, Depends(document_text)],
    request: Request,
    password: Password = None,
    token: Token = None,
    behaviour: Annotated[
        str | None,
        Header(
            alias="GS1-Capture-Error-Behaviour",
            max_length=20,
            description="rollback (the default and the only one): the document is recorded whole or not "
            "at all; others are 406.",
        ),
    ] = None,
) -> Any:
    """Capture an EPCISDocument (or an EPCISQueryDocument's events) into ledger steps, all or nothing,
    each event once (manufacturing, QA, QP, depot, admin; re-authenticated with
    `Lotline-Signature-Password` or `-Token`); at most `GS1-EPCIS-Capture-Limit` events. Done within
    the request and kept as a capture job (`Location`: `/epcis/capture/{captureID}`)."""
    if behaviour is not None and behaviour.strip() != "rollback":
        raise CaptureBehaviourNotSupported(behaviour)
    actor = signer.checker(CheckerIn(principal=user.principal, password=password, token=token))
    limit = request.app.state.settings.epcis_capture_limit
    result, job = epcis.capture_job(document, actor, user.principal, limit)
    body = job.as_dict()
    headers = {
        **HEADERS,
        "GS1-Capture-Error-Behaviour": "rollback",
        "GS1-EPCIS-Capture-Limit": str(limit),
        "Location": f"/epcis/capture/{job.capture_id}",
    }
    if not result.accepted:
        refused = {"code": "epcis_refused", "message": _refusal(result.errors), **body}
        problem = epcis_problem(request.url.path, 400, refused)
        return JSONResponse(problem, status_code=400, headers=headers, media_type=PROBLEM_JSON)
    return JSONResponse(body, status_code=202, headers=headers)


@router.get("/capture", response_model=list[CaptureJobOut], responses={**errors()})
def capture_jobs(
    request: Request,
    user: Capturer,
    epcis: EpcisDep,
    per_page: Page = 100,
    next_page_token: PageToken = None,
) -> JSONResponse:
    """The user's own capture jobs, newest first, a page at a time (the next page's URL in `Link`)."""
    page, token = epcis.capture_jobs(user.principal, per_page, next_page_token)
    return JSONResponse([j.as_dict() for j in page], headers=_link_headers(request, token))


@router.get("/capture/{capture_id}", response_model=CaptureJobOut, responses={**errors(404)})
def capture_job(
    capture_id: Annotated[str, Path(max_length=60, description="From the capture's `Location`.")],
    user: Capturer,
    epcis: EpcisDep,
) -> JSONResponse:
    """One of the user's capture jobs: finished (`running` false), `success` and the capture's outcome;
    404 for another person's."""
    return JSONResponse(epcis.jobs.get(capture_id, user.principal).as_dict(), headers=HEADERS)


def _refusal(refused: Any) -> str:
    first = refused[0]
    where = "the document" if first.index is None else f"event {first.index}"
    return f"refused whole ({len(refused)} problem(s)); {where}: {first.reason}"


@router.get(
    "/events",
    response_class=JSONResponse,
    responses={**PAGED, **errors(413)},
)
def query_events(
    request: Request,
    user: Tracer,
    epcis: EpcisDep,
    match_epc: Annotated[Values, Query(alias="MATCH_epc")] = None,
    match_any_epc: Annotated[Values, Query(alias="MATCH_anyEPC")] = None,
    match_epc_class: Annotated[Values, Query(alias="MATCH_epcClass")] = None,
    match_input_epc_class: Annotated[Values, Query(alias="MATCH_inputEPCClass")] = None,
    match_output_epc_class: Annotated[Values, Query(alias="MATCH_outputEPCClass")] = None,
    match_parent_id: Annotated[Values, Query(alias="MATCH_parentID")] = None,
    eq_biz_step: Annotated[Values, Query(alias="EQ_bizStep")] = None,
    eq_disposition: Annotated[Values, Query(alias="EQ_disposition")] = None,
    eq_biz_location: Annotated[Values, Query(alias="EQ_bizLocation")] = None,
    eq_event_id: Annotated[Values, Query(alias="EQ_eventID")] = None,
    event_type: Annotated[Values, Query(alias="eventType", description="ObjectEvent, ...")] = None,
    eq_action: Annotated[Values, Query(alias="EQ_action", description="ADD, OBSERVE or DELETE.")] = None,
    exists_error_declaration: Annotated[
        str | None,
        Query(alias="EXISTS_errorDeclaration", max_length=10, description="Present: error declarations."),
    ] = None,
    eq_error_reason: Annotated[Values, Query(alias="EQ_errorReason")] = None,
    ge_event_time: Annotated[Time, Query(alias="GE_eventTime")] = None,
    lt_event_time: Annotated[Time, Query(alias="LT_eventTime")] = None,
    order_by: Annotated[
        Literal["eventTime", "recordTime"] | None,
        Query(alias="orderBy", description="recordTime: the order the ledger recorded the events in."),
    ] = None,
    order_direction: Annotated[
        Literal["ASC", "DESC"] | None,
        Query(alias="orderDirection", description="With orderBy (default DESC)."),
    ] = None,
    event_count_limit: Annotated[
        int | None, Query(alias="eventCountLimit", ge=1, description="Only the first N matching events.")
    ] = None,
    max_event_count: Annotated[
        int | None,
        Query(alias="maxEventCount", ge=1, description="413 `query_too_large` if more events match."),
    ] = None,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=1000, description="Events per page.")] = 100,
    next_page_token: Annotated[
        str | None, Query(alias="nextPageToken", max_length=500, description="From the `Link` header.")
    ] = None,
    after: After = None,
) -> JSONResponse:
    """The EPCIS 2.0 query subset (blinded events, every role but site): MATCH_*, EQ_*, eventType,
    EXISTS_errorDeclaration, GE_/LT_eventTime, orderBy, orderDirection, eventCountLimit, maxEventCount,
    paged by `perPage` and `nextPageToken`."""
    query = request.query_params
    document, token = epcis.query({k: query.getlist(k) for k in query if k != "after"}, after)
    return _linked(request, document, token)


@router.get(
    "/events/{event_id:path}",
    response_class=JSONResponse,
    responses={
        200: {
            "content": {MEDIA_TYPE: DOCUMENT},
            "description": "An EPCISQueryDocument of the event and of the error declarations about it.",
        },
        **errors(404),
    },
)
def event_by_id(
    event_id: Annotated[str, Path(max_length=300, description="The eventID, percent-encoded (`ni:///...`).")],
    user: Tracer,
    epcis: EpcisDep,
    after: After = None,
) -> JSONResponse:
    """One EPCIS event by its eventID, in its blinded form (every role but site), with the error
    declarations that name it (they keep its eventID); 404 `not_found` when no event has it. A `Link`
    header per ledger step they come from points to its proof bundle (`rel` `https://lotline.dev/voc/proof`):
    the events themselves carry nothing of the store that holds them."""
    page = epcis.event_page(event_id, after)
    proofs = ", ".join(f'</inspector/proofs/{seq}>; rel="{PROOF_REL}"' for seq in dict.fromkeys(page.seqs))
    return JSONResponse(query_document(page), headers={**HEADERS, "Link": proofs}, media_type=MEDIA_TYPE)


# --- named queries --------------------------------------------------------------------------------------


class NamedQueryIn(BaseModel):
    """A query to keep under a name: its parameters as `GET /epcis/events` takes them (a value or a list
    of values each), without `perPage` and `nextPageToken`."""

    name: str = Field(max_length=100, description="Letters, digits, '_', '.', '-'.")
    query: dict[str, Any] = Field(description='e.g. {"eventType": ["ObjectEvent"], "EQ_bizStep": "shipping"}')


class NamedQueryOut(BaseModel):
    name: str
    query: dict[str, list[str]]
    createdBy: str
    createdAt: str


QueryName = Annotated[str, Path(max_length=100, description="The query's name.")]


@router.post(
    "/queries",
    status_code=201,
    response_model=NamedQueryOut,
    responses={201: {"description": "Kept; its URL is in `Location`."}, **errors(409)},
)
def create_query(body: NamedQueryIn, user: Tracer, epcis: EpcisDep) -> JSONResponse:
    """Keep an event query under a name (every role but site); 409 `already_exists` if the name is taken,
    400 naming a parameter no query takes."""
    made = epcis.named.create(body.name, body.query, user.principal)
    headers = {**HEADERS, "Location": f"/epcis/queries/{made.name}"}
    return JSONResponse(made.as_dict(), status_code=201, headers=headers)


@router.get("/queries", response_model=list[NamedQueryOut], responses={**errors()})
def list_queries(
    request: Request,
    user: Tracer,
    epcis: EpcisDep,
    per_page: Page = 100,
    next_page_token: PageToken = None,
) -> JSONResponse:
    """The named queries, in name order, a page at a time (the next page's URL in `Link`)."""
    page, token = epcis.named_queries(per_page, next_page_token)
    return JSONResponse([q.as_dict() for q in page], headers=_link_headers(request, token))


@router.get("/queries/{name}", response_model=NamedQueryOut, responses={**errors(404)})
def get_query(name: QueryName, user: Tracer, epcis: EpcisDep) -> JSONResponse:
    """One named query."""
    return JSONResponse(epcis.named.get(name).as_dict(), headers=HEADERS)


@router.delete("/queries/{name}", status_code=204, response_class=Response, responses={**errors(403, 404)})
def delete_query(name: QueryName, user: Tracer, epcis: EpcisDep) -> Response:
    """Forget a named query (only the person who made it)."""
    epcis.named.delete(name, user.principal)
    return Response(status_code=204, headers=HEADERS)


@router.get(
    "/queries/{name}/events",
    response_class=JSONResponse,
    responses={**PAGED, **errors(404, 413)},
)
def named_query_events(
    name: QueryName,
    request: Request,
    user: Tracer,
    epcis: EpcisDep,
    per_page: Page = 100,
    next_page_token: PageToken = None,
    after: After = None,
) -> JSONResponse:
    """The events of a named query, as `GET /epcis/events` answers its parameters (`queryName` its name)."""
    paging = {"perPage": [str(per_page)], **({"nextPageToken": [next_page_token]} if next_page_token else {})}
    document, token = epcis.named_events(name, paging, after)
    return _linked(request, document, token)


SUBSCRIPTION_POLL_SECONDS = 0.25
"""How often a subscription looks for new events in the EPCIS index (one indexed SELECT)."""
SUBSCRIPTION_RECHECK_SECONDS = 5.0
"""How often an idle subscription checks that its user may still read (and before every delivery)."""


@router.websocket("/queries/{name}/events")
async def subscribe(
    websocket: WebSocket,
    name: Annotated[str, Path(max_length=100)],
    stream: bool = False,
    resume_token: Annotated[str | None, Query(alias="resumeToken", max_length=500)] = None,
) -> None:
    """A subscription to a named query (the binding's WebSocket form, `stream=true`; every role but
    site): each new matching event once, as EPCISQueryDocuments whose `queryResults` carry
    `lotline:resumeToken`; come back with `resumeToken` to go on after the last event received (after a
    dropped connection, or a restart of the server). A refused handshake is answered like any request
    (401, 403, 404, 400 with `code` and `message`; a server without WebSocket denial responses closes
    with 4000 + that status instead)."""
    app = websocket.app
    epcis = app.state.epcis
    try:
        for field, value in (("name", name), ("resumeToken", resume_token or "")):
            try:
                one_line(value)
            except ValueError as e:
                raise InvalidInput(f"{field}: {e}", field=field) from None
        scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
        user = authenticate(app.state.identity, token if scheme.lower() == "bearer" else None).user
        require_role(user, "subscribe to EPCIS queries", permissions.TRACE)
        if not stream:
            raise InvalidInput(
                "only streaming subscriptions (stream=true) are offered: each new event as it is recorded",
                field="stream",
            )
        subscription = await run_in_threadpool(epcis.subscribe, name, resume_token)
    except LedgerError as e:
        await _refuse(websocket, e)
        return
    await websocket.accept(headers=[(k.lower().encode(), v.encode()) for k, v in HEADERS.items()])
    checked = time.monotonic()
    while True:
        document = await run_in_threadpool(epcis.deliver, subscription)
        if document is not None or time.monotonic() - checked > SUBSCRIPTION_RECHECK_SECONDS:
            # the token may have been revoked or expired, the user disabled or given a site role since
            try:
                again = await run_in_threadpool(app.state.identity.authenticate, token)
                require_role(again.user, "subscribe to EPCIS queries", permissions.TRACE)
            except LedgerError as e:
                await websocket.close(code=1008, reason=e.message[:120])  # policy violation
                return
            checked = time.monotonic()
        if document is not None:
            await websocket.send_json(document)
            continue
        try:
            message = await asyncio.wait_for(websocket.receive(), SUBSCRIPTION_POLL_SECONDS)
        except TimeoutError:
            continue
        if message["type"] == "websocket.disconnect":
            return


async def _refuse(websocket: WebSocket, error: LedgerError) -> None:
    """Answer a WebSocket handshake with the error's HTTP status and body, as any request is answered."""
    status = epcis_status(status_of(error) or 500)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        problem = epcis_problem(websocket.url.path, status, error.as_dict())
        answer = JSONResponse(problem, status_code=status, headers=HEADERS, media_type=PROBLEM_JSON)
        await websocket.send_denial_response(answer)
    else:
        await websocket.close(code=4000 + status, reason=error.message[:120])


def _link_headers(request: Request, token: str | None) -> dict[str, str]:
    headers = dict(HEADERS)
    if token is not None:
        headers["Link"] = f'<{request.url.include_query_params(nextPageToken=token)}>; rel="next"'
    return headers


# --- the binding's top-level resources ------------------------------------------------------------------

Page = Annotated[int, Query(alias="perPage", ge=1, le=1000, description="Values per page.")]
PageToken = Annotated[str | None, Query(alias="nextPageToken", max_length=500, description="From `Link`.")]
COLLECTION: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {MEDIA_TYPE: {"schema": {"type": "object", "description": "A JSON-LD Collection."}}},
        "description": "A `Collection` whose `member`s are the resources (the next page's URL in `Link`).",
    }
}


def _linked(request: Request, body: dict[str, Any], token: str | None) -> JSONResponse:
    return JSONResponse(body, headers=_link_headers(request, token), media_type=MEDIA_TYPE)


@router.get("", response_class=JSONResponse, responses={**COLLECTION, **errors()})
def top_level(user: Tracer) -> JSONResponse:
    """The top-level resources of this EPCIS 2.0 REST interface, as a `Collection`."""
    return JSONResponse(collection(TOP_LEVEL), headers=HEADERS, media_type=MEDIA_TYPE)


@router.get("/{kind}", response_class=JSONResponse, responses={**COLLECTION, **errors(404)})
def browse(
    kind: Annotated[str, Path(max_length=40, description="eventTypes, epcs, bizSteps, bizLocations, ...")],
    request: Request,
    user: Tracer,
    epcis: EpcisDep,
    per_page: Page = 100,
    next_page_token: PageToken = None,
    after: After = None,
) -> JSONResponse:
    """The values the events hold of one top-level resource (`eventTypes`, `epcs`, `bizSteps`,
    `bizLocations`, `readPoints`, `dispositions`), a page at a time, in order."""
    body, token = epcis.browse(kind, per_page, next_page_token, after)
    return _linked(request, body, token)


@router.get(
    "/{kind}/{value:path}/events",
    response_class=JSONResponse,
    responses={**PAGED, **errors(404, 413)},
)
def value_events(
    kind: Annotated[str, Path(max_length=40)],
    value: Annotated[str, Path(max_length=300, description="The value, percent-encoded.")],
    request: Request,
    user: Tracer,
    epcis: EpcisDep,
    after: After = None,
) -> JSONResponse:
    """The events that hold one value of a top-level resource (an EPC in any EPC field, a bizStep, ...),
    with the query parameters of `GET /epcis/events` besides."""
    query = {k: request.query_params.getlist(k) for k in request.query_params if k != "after"}
    document, token = epcis.value_events(kind, value, query, after)
    return _linked(request, document, token)


@router.get("/{kind}/{value:path}", response_class=JSONResponse, responses={**COLLECTION, **errors(404)})
def value_resources(
    kind: Annotated[str, Path(max_length=40)],
    value: Annotated[str, Path(max_length=300, description="The value, percent-encoded.")],
    user: Tracer,
    epcis: EpcisDep,
    after: After = None,
) -> JSONResponse:
    """What can be asked of one value of a top-level resource: its `events` (404 when no event holds it)."""
    return JSONResponse(epcis.value(kind, value, after), headers=HEADERS, media_type=MEDIA_TYPE)


DISCOVERED = {
    "GS1-CBV-Min": "2.0.0",
    "GS1-CBV-Max": "2.0.0",
    "GS1-EPC-Format": "Always_EPC_URN",
    "GS1-Vendor-Version": "lotline",
}
"""What `OPTIONS` tells a client besides `Allow` and the version headers."""


@router.options("", status_code=204, response_class=Response, responses={204: {"description": "Settings."}})
def discover_top(request: Request, user: Tracer) -> Response:
    """The binding's discovery of the interface itself (see `OPTIONS /epcis/{path}`)."""
    return discover(request, user, "")


@router.options(
    "/{path:path}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "The methods allowed and the server's settings."}, **errors(404)},
)
def discover(request: Request, user: Tracer, path: str) -> Response:
    """The binding's discovery: the methods a resource allows (`Allow`), the EPCIS and CBV versions,
    the EPC format of the answers and, for `capture`, the largest document it takes (bytes)."""
    head = path.split("/", 1)[0]
    headers = {**HEADERS, **DISCOVERED}
    if head == "capture":
        headers["Allow"] = "GET, OPTIONS" if "/" in path.strip("/") else "GET, OPTIONS, POST"
        headers["GS1-EPCIS-Capture-File-Size-Limit"] = str(request.app.state.settings.max_body_bytes)
        headers["GS1-EPCIS-Capture-Limit"] = str(request.app.state.settings.epcis_capture_limit)
        headers["GS1-Capture-Error-Behaviour"] = "rollback"
    elif head == "queries":
        headers["Allow"] = "DELETE, GET, OPTIONS, POST" if "/" in path.strip("/") else "GET, OPTIONS, POST"
    elif head in ("", "events", "trace", *BROWSED):
        headers["Allow"] = "GET, OPTIONS"
    else:
        raise NotFound("EPCIS resource", head)
    return Response(status_code=204, headers=headers)
