"""The console's users-and-access screens (EU GMP Annex 11, 12.3): who may use Lotline, in which role,
where; every change through `Identity`, so an event of the user's account with its reason."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from api import permissions
from api.console import PATH, Person, PersonDep, identity_of, place_names, text_of
from ledger.domain.account import account_id
from ledger.errors import LedgerError
from ledger.values import Role

router = APIRouter(prefix=PATH, include_in_schema=False)


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
    fields = {name: text_of(form, name) or "" for name in ("principal", "name", "role", "password", "reason")}
    try:
        places = [UUID(p) for p in form.getlist("places") if isinstance(p, str)]
        identity_of(me.request).add_user(
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
        account = identity_of(me.request).user(principal)
    except LedgerError as e:
        return me.not_found(e.message)
    names = place_names(me.request)
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
    back = f"{PATH}/users/{quote(principal)}" if text_of(form, "from") != "list" else f"{PATH}/users"
    identity, by, why = identity_of(me.request), me.user.actor, text_of(form, "reason") or ""
    try:
        places = [UUID(p) for p in form.getlist("places") if isinstance(p, str)]
        if change in ("disable", "enable"):
            identity.set_disabled(principal, change == "disable", by=by, reason=why)
        elif change == "role":
            identity.change_role(principal, text_of(form, "role") or "", places=places, by=by, reason=why)
        elif change == "bind":
            identity.bind(principal, places, by=by, reason=why)
        elif change == "unbind":
            identity.unbind(principal, places, by=by, reason=why)
        elif change == "password":
            identity.set_password(principal, text_of(form, "password") or "", by=by, reason=why)
        else:
            identity.revoke(principal, by=by, reason=why)
    except (LedgerError, ValueError) as e:
        message = e.message if isinstance(e, LedgerError) else "a place is not a place id"
        if isinstance(e, LedgerError) and e.code in ("not_authorised", "forbidden"):
            return me.forbidden(message)
        return RedirectResponse(f"{back}?failed=" + quote(f"{principal}: {message}"), 303)
    return RedirectResponse(f"{back}?done=" + quote(f"{principal} {_DONE[change]}."), 303)


def _users_page(me: Person, status: int = 200, **values: Any) -> HTMLResponse:
    names = place_names(me.request)
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
        users=identity_of(me.request).users(),
        place_names=names,
        is_admin=me.user.role == Role.ADMIN,
        fields=fields,
        form=form,
        errors=values.pop("errors", {}),
        **values,
    )
