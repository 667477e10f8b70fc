"""The console: pages for the people who use Lotline, served by the same `lotline serve`.

Server-rendered (Jinja2) with a little JavaScript; no asset from elsewhere. A person signs in with
their user name and password and gets a session cookie (HttpOnly, SameSite=Strict, Secure behind TLS;
`api.console.sessions`); every form carries the session's CSRF token; a session unused for
`LOTLINE_CONSOLE_IDLE_MINUTES` ends. The pages call the same `Identity`, ledger rules and read models
as the API: a refusal is the ledger's own, shown as a page (403) or next to the field it names.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel
from starlette.datastructures import FormData

from api import permissions
from api.console.sessions import ConsoleSession, ConsoleSessions, csrf_matches
from api.errors import SignatureNotVerified
from api.idempotency import Once, request_hash
from api.schemas.common import Recorded
from ledger import commands
from ledger.commands import Command
from ledger.errors import LedgerError
from ledger.identity import Identity, InvalidCredentials, User
from ledger.values import Meaning, Role, Signature, sign
from projections.views import LocationRef

COOKIE = "lotline_session"
SIGN_IN_COOKIE = "lotline_sign_in"
PATH = "/console"

templates = Environment(loader=PackageLoader("api.console", "templates"), autoescape=select_autoescape())
templates.globals["access_roles"] = {str(r) for r in permissions.ACCESS}  # who is offered the access page
templates.globals["trace_roles"] = {str(r) for r in permissions.TRACE}  # and the traces
templates.globals["recall_roles"] = {str(r) for r in permissions.RECALL_STATUS}  # and the recalls
router = APIRouter(prefix=PATH, include_in_schema=False)


class SignInNeeded(Exception):
    """No live session: the person is sent to the sign-in page."""


class Person:
    """The signed-in person of a request: their user, their session, and the page helpers."""

    def __init__(self, request: Request, user: User, session: ConsoleSession) -> None:
        self.request, self.user, self.session = request, user, session

    def page(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return page(name, status, user=self.user, csrf=self.session.csrf, **values)

    def forbidden(self, message: str) -> HTMLResponse:
        return self.page("forbidden.html", 403, message=message)

    def not_found(self, message: str) -> HTMLResponse:
        return self.page("forbidden.html", 404, message=message)

    def refused(self, roles: Collection[Role], what: str) -> HTMLResponse | None:
        """The 403 page when the person's role is not one of `roles` (the API's `permissions`), else
        None: `if (refused := me.refused(...)): return refused`."""
        if self.user.role in roles:
            return None
        return self.forbidden(f"role {self.user.role} may not {what}")

    def require_csrf(self, form: FormData) -> None:
        given = form.get("csrf")
        if not csrf_matches(self.session, given if isinstance(given, str) else None):
            raise _BadForm()

    async def record(
        self,
        form: FormData,
        command: Callable[[], Command],
        answer: Callable[[commands.Recorded], BaseModel] = Recorded.of,
    ) -> dict[str, Any]:
        """Build a form's command and handle it through the API's path (`Once`, the ledger), once per
        form: its `form_key` is the Idempotency-Key, so a second press or a resend gets the first
        answer and records nothing. Returns the answer, as the API gives it, once the read models
        have applied it (the page the person is sent to shows it). A refusal (`LedgerError`, naming
        the field) records nothing."""
        state = self.request.app.state
        fields = sorted((k, v) for k, v in form.multi_items() if k not in ("csrf", "form_key"))
        once = Once(
            state.idempotency,
            self.user.principal,
            text_of(form, "form_key"),
            request_hash("POST", str(self.request.url.path), json.dumps(fields, default=str).encode()),
        )

        def run() -> dict[str, Any]:
            done = once(lambda alongside: state.ledger.handle(command(), self.user.actor, alongside), answer)
            if isinstance(done, BaseModel):
                if isinstance(done, Recorded) and done.events:
                    state.read_side.wait_for(done.events[-1].seq)
                return done.model_dump(mode="json")
            replayed: dict[str, Any] = json.loads(bytes(done.body))  # the first answer, stored
            return replayed

        return await run_in_threadpool(run)

    def sign(self, password: str, meaning: Meaning) -> Signature:
        """The person's signature with `meaning`, once their password checks out again (a signed step
        re-authenticates, 21 CFR 11.200(a)(1)); a wrong password is `SignatureNotVerified`."""
        try:
            identity_of(self.request).verify_password(self.user.principal, password)
        except InvalidCredentials:
            raise SignatureNotVerified(
                "the password is not right: nothing was signed", field="password"
            ) from None
        return sign(self.user.actor, meaning)


class _BadForm(Exception):
    """A form without its session's CSRF token (forged, or from an ended session)."""


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values), status_code=status)


def sessions_of(request: Request) -> ConsoleSessions:
    found: ConsoleSessions = request.app.state.console_sessions
    return found


def identity_of(request: Request) -> Identity:
    found: Identity = request.app.state.identity
    return found


def person(request: Request) -> Person:
    """The signed-in person, or SignInNeeded (answered with a redirect to the sign-in page)."""
    session = sessions_of(request).find(request.cookies.get(COOKIE))
    if session is None:
        raise SignInNeeded()
    try:
        user = identity_of(request).user(session.principal)
    except LedgerError:
        raise SignInNeeded() from None
    if user.disabled:
        raise SignInNeeded()
    return Person(request, user, session)


PersonDep = Annotated[Person, Depends(person)]


# --- sign-in --------------------------------------------------------------------------------------


@router.get("/sign-in")
def sign_in_page(request: Request) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    answer = page("sign_in.html", csrf=token, user=None, message=request.query_params.get("message"))
    _cookie(answer, request, SIGN_IN_COOKIE, token)
    return answer


@router.post("/sign-in")
def sign_in(
    request: Request,
    principal: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or not secrets.compare_digest(expected, csrf):
        return RedirectResponse(f"{PATH}/sign-in?message=" + quote("The form expired; sign in again."), 303)
    try:
        user = identity_of(request).verify_password(principal.strip(), password)
    except InvalidCredentials:
        token = secrets.token_urlsafe(24)
        answer = page(
            "sign_in.html",
            401,
            csrf=token,
            user=None,
            principal=principal,
            message="Wrong user name or password, or the user is disabled.",
        )
        _cookie(answer, request, SIGN_IN_COOKIE, token)
        return answer
    secret, _ = sessions_of(request).open(user.principal)
    signed_in = RedirectResponse(PATH, 303)
    _cookie(signed_in, request, COOKIE, secret)
    signed_in.delete_cookie(SIGN_IN_COOKIE, path=PATH)
    return signed_in


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await request.form()
    session = sessions_of(request).find(request.cookies.get(COOKIE))
    if session is not None and csrf_matches(session, text_of(form, "csrf")):
        sessions_of(request).end(request.cookies.get(COOKIE))
    answer = RedirectResponse(f"{PATH}/sign-in?message=" + quote("You are signed out."), 303)
    answer.delete_cookie(COOKIE, path=PATH)
    return answer


def _cookie(answer: Response, request: Request, name: str, value: str) -> None:
    answer.set_cookie(
        name, value, httponly=True, samesite="strict", secure=request.url.scheme == "https", path=PATH
    )


# --- pages ----------------------------------------------------------------------------------------


@router.get("")
def home(me: PersonDep) -> HTMLResponse:
    found = places_by_id(me.request)
    idle = sessions_of(me.request).idle / timedelta(minutes=1)
    mine = [(p, found.get(p)) for p in sorted(me.user.places, key=str)]
    return me.page(
        "home.html",
        places=[(p, place_label(ref) if ref else str(p), ref.kind if ref else "") for p, ref in mine],
        may_read_access=me.user.role in permissions.ACCESS,
        may_trace=me.user.role in permissions.TRACE,
        may_read_recalls=me.user.role in permissions.RECALL_STATUS,
        may_verify=me.user.role in permissions.VERIFY,
        idle_minutes=idle,
    )


def places_by_id(request: Request) -> dict[UUID, LocationRef]:
    """Every registered place (one read of the genealogy's place table)."""
    return {p.id: p for p in request.app.state.read_side.runner.genealogy.all_places()}


def place_label(place: LocationRef) -> str:
    return f"{place.name} ({place.kind.replace('_', ' ')})"


def place_names(request: Request) -> dict[UUID, str]:
    return {i: place_label(p) for i, p in places_by_id(request).items()}


def page_asked(request: Request) -> int:
    """The page a list's `?page=` asks for, from 1 (anything else: the first)."""
    try:
        return max(1, int(request.query_params.get("page") or "1"))
    except ValueError:
        return 1


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` rows make (at least one, an empty one)."""
    return max(1, -(-total // per_page))


def text_of(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def install(app: FastAPI, idle: timedelta) -> None:
    """Serve the console under /console (and send / there); `idle`: a session's idle timeout."""
    # The screens, each on its own router.
    from api.console import access, inspect, recalls, sites, stock, trace

    app.state.console_idle = idle
    app.include_router(router)
    app.include_router(access.router)
    app.include_router(sites.router)
    app.include_router(stock.router)
    app.include_router(trace.router)
    app.include_router(recalls.router)
    app.include_router(inspect.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(PATH, 303)

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        answer = RedirectResponse(f"{PATH}/sign-in", 303)
        answer.delete_cookie(COOKIE, path=PATH)
        return answer

    @app.exception_handler(_BadForm)
    async def bad_form(request: Request, exc: _BadForm) -> Response:
        return page(
            "forbidden.html",
            403,
            user=None,
            csrf="",
            message="This form did not come from your session (or the session ended): nothing was done.",
        )
