"""The console: pages for the people who use Lotline, served by the same `lotline serve`.

Server-rendered (Jinja2) with a little JavaScript; no asset from elsewhere. A person signs in with
their user name and password and gets a session cookie (HttpOnly, SameSite=Strict, Secure behind TLS;
`api.console.sessions`); every form carries the session's CSRF token; a session unused for
`LOTLINE_CONSOLE_IDLE_MINUTES` ends. The pages call the same `Identity`, ledger rules and read models
as the API: a refusal is the ledger's own, shown as a page (403) or next to the field it names.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from api import permissions
from api.console.sessions import ConsoleSession, ConsoleSessions, csrf_matches
from ledger.domain.account import account_id
from ledger.errors import LedgerError
from ledger.identity import Identity, InvalidCredentials, User
from ledger.values import Role

COOKIE = "lotline_session"
SIGN_IN_COOKIE = "lotline_sign_in"
PATH = "/console"

templates = Environment(loader=PackageLoader("api.console", "templates"), autoescape=select_autoescape())
templates.globals["access_roles"] = {str(r) for r in permissions.ACCESS}  # who is offered the access page
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

    def require_csrf(self, form: FormData) -> None:
        given = form.get("csrf")
        if not csrf_matches(self.session, given if isinstance(given, str) else None):
            raise _BadForm()


class _BadForm(Exception):
    """A form without its session's CSRF token (forged, or from an ended session)."""


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values), status_code=status)


def _sessions(request: Request) -> ConsoleSessions:
    found: ConsoleSessions = request.app.state.console_sessions
    return found


def _identity(request: Request) -> Identity:
    found: Identity = request.app.state.identity
    return found


def person(request: Request) -> Person:
    """The signed-in person, or SignInNeeded (answered with a redirect to the sign-in page)."""
    session = _sessions(request).find(request.cookies.get(COOKIE))
    if session is None:
        raise SignInNeeded()
    try:
        user = _identity(request).user(session.principal)
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
        user = _identity(request).verify_password(principal.strip(), password)
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
    secret, _ = _sessions(request).open(user.principal)
    signed_in = RedirectResponse(PATH, 303)
    _cookie(signed_in, request, COOKIE, secret)
    signed_in.delete_cookie(SIGN_IN_COOKIE, path=PATH)
    return signed_in


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await request.form()
    session = _sessions(request).find(request.cookies.get(COOKIE))
    if session is not None and csrf_matches(session, _text(form, "csrf")):
        _sessions(request).end(request.cookies.get(COOKIE))
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
    names = _place_names(me.request)
    idle = _sessions(me.request).idle / timedelta(minutes=1)
    return me.page(
        "home.html",
        places=[names.get(p, str(p)) for p in sorted(me.user.places, key=str)],
        may_read_access=me.user.role in permissions.ACCESS,
        idle_minutes=idle,
    )


@router.get("/users")
def users(me: PersonDep) -> HTMLResponse:
    if me.user.role not in permissions.ACCESS:
        return me.forbidden(f"A {me.user.role} user may not read users and their access.")
    q = me.request.query_params
    return _users_page(me, done=q.get("done"), failed=q.get("failed"))


@router.post("/users")
async def add_user(me: PersonDep) -> Response:
    form = await me.request.form()
    me.require_csrf(form)
    fields = {name: _text(form, name) or "" for name in ("principal", "name", "role", "password", "reason")}
    try:
        places = [UUID(p) for p in form.getlist("places") if isinstance(p, str)]
        _identity(me.request).add_user(
            fields["principal"].strip(),
            name=fields["name"],
            role=fields["role"],
            places=places,
            password=fields["password"] or None,
            by=me.user.actor,
            reason=fields["reason"],
        )
    except LedgerError as e:
        if e.code in ("not_authorised", "forbidden"):
            return me.forbidden(e.message)
        field = str(e.details.get("field") or "").removeprefix("body.") or "principal"
        return _users_page(me, 422, form=form, errors={field: e.message})
    return RedirectResponse(f"{PATH}/users?done=" + quote(f"Added {fields['principal'].strip()}."), 303)


@router.get("/users/{principal}")
def user_page(me: PersonDep, principal: str) -> HTMLResponse:
    if me.user.role not in permissions.ACCESS:
        return me.forbidden(f"A {me.user.role} user may not read users and their access.")
    try:
        account = _identity(me.request).user(principal)
    except LedgerError as e:
        return me.page("forbidden.html", 404, message=e.message)
    names = _place_names(me.request)
    bound = [(str(p), names.get(p, str(p))) for p in sorted(account.places, key=str)]
    unbound = [
        (str(i), n) for i, n in sorted(names.items(), key=lambda item: item[1]) if i not in account.places
    ]
    forms = [
        {
            "change": "role",
            "title": "Grant another role",
            "button": "Change the role",
            "role": True,
            "places": [(str(i), n) for i, n in sorted(names.items(), key=lambda item: item[1])],
        },
        {"change": "bind", "title": "Bind to more places", "button": "Bind", "places": unbound},
        {"change": "unbind", "title": "Unbind from places", "button": "Unbind", "places": bound},
        {"change": "password", "title": "Set a new password", "button": "Set the password", "password": True},
        {"change": "revoke", "title": "Revoke every API token", "button": "Revoke the tokens"},
        {
            "change": "enable" if account.disabled else "disable",
            "title": "Enable the user" if account.disabled else "Disable the user",
            "button": "Enable" if account.disabled else "Disable",
        },
    ]
    q = me.request.query_params
    return me.page(
        "user.html",
        account=account,
        account_id=account_id(principal),
        place_names=names,
        is_admin=me.user.role == Role.ADMIN,
        forms=forms,
        done=q.get("done"),
        failed=q.get("failed"),
        roles=[(r.value, r.value.replace("_", " ")) for r in Role],
    )


_CHANGES = ("disable", "enable", "role", "bind", "unbind", "password", "revoke")
_DONE = {
    "disable": "disabled",
    "enable": "enabled",
    "role": "has a new role",
    "bind": "is bound",
    "unbind": "is unbound",
    "password": "has a new password",
    "revoke": "has no active token left",
}


@router.post("/users/{principal}/{change}")
async def change_user(me: PersonDep, principal: str, change: str) -> Response:
    """One access change from a form, through `Identity` (the ledger's rules); back to where the form
    was, saying what was done or why not."""
    form = await me.request.form()
    me.require_csrf(form)
    if change not in _CHANGES:
        return me.forbidden(f"No such change: {change}")
    back = f"{PATH}/users/{quote(principal)}" if _text(form, "from") != "list" else f"{PATH}/users"
    identity, by, why = _identity(me.request), me.user.actor, _text(form, "reason") or ""
    try:
        places = [UUID(p) for p in form.getlist("places") if isinstance(p, str)]
        if change in ("disable", "enable"):
            identity.set_disabled(principal, change == "disable", by=by, reason=why)
        elif change == "role":
            identity.change_role(principal, _text(form, "role") or "", places=places, by=by, reason=why)
        elif change == "bind":
            identity.bind(principal, places, by=by, reason=why)
        elif change == "unbind":
            identity.unbind(principal, places, by=by, reason=why)
        elif change == "password":
            identity.set_password(principal, _text(form, "password") or "", by=by, reason=why)
        else:
            identity.revoke(principal, by=by, reason=why)
    except (LedgerError, ValueError) as e:
        message = e.message if isinstance(e, LedgerError) else "a place is not a place id"
        if isinstance(e, LedgerError) and e.code in ("not_authorised", "forbidden"):
            return me.forbidden(message)
        return RedirectResponse(f"{back}?failed=" + quote(f"{principal}: {message}"), 303)
    return RedirectResponse(f"{back}?done=" + quote(f"{principal} {_DONE[change]}."), 303)


def _users_page(me: Person, status: int = 200, **values: Any) -> HTMLResponse:
    names = _place_names(me.request)
    form = values.pop("form", FormData())
    roles = [(r.value, r.value.replace("_", " ")) for r in Role]
    places = [(str(i), n) for i, n in sorted(names.items(), key=lambda item: item[1])]
    fields = [
        {
            "name": "principal",
            "label": "User name",
            "kind": "text",
            "hint": "lowercase letters, digits, . _ -",
        },
        {"name": "name", "label": "Printed name (appears in signatures)", "kind": "text"},
        {"name": "role", "label": "Role", "kind": "select", "options": roles},
        {
            "name": "places",
            "label": "Places (site, depot and manufacturing users)",
            "kind": "multi",
            "options": places,
            "hint": "a site, depot or manufacturing user works at one place at least",
        },
        {
            "name": "password",
            "label": "Password (at least 10 characters; needed to sign)",
            "kind": "password",
        },
        {"name": "reason", "label": "Reason (recorded with the change)", "kind": "text"},
    ]
    return me.page(
        "users.html",
        status,
        users=_identity(me.request).users(),
        place_names=names,
        is_admin=me.user.role == Role.ADMIN,
        fields=fields,
        form=form,
        errors=values.pop("errors", {}),
        **values,
    )


def _place_names(request: Request) -> dict[UUID, str]:
    found = request.app.state.read_side.runner.genealogy.all_places()
    return {p.id: f"{p.name} ({p.kind.replace('_', ' ')})" for p in found}


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def install(app: FastAPI, idle: timedelta) -> None:
    """Serve the console under /console (and send / there); `idle`: a session's idle timeout."""
    app.state.console_idle = idle
    app.include_router(router)

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
