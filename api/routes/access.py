"""Access administration (admin): users, roles, places, passwords and API tokens.

Each change is an event of the user's account in the chain, with who made it and why (`reason`);
the secrets (a password, a new token) go to `ledger.identity`, which keeps only their hashes, never
in an event. These routes do not store answers for an `Idempotency-Key`: the answer to a token's
issue holds its secret, which is shown once and kept nowhere. A repeated change is refused (409:
the user exists, is disabled already, ...), so a retry records nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import AccessReader, Administrator, IdentityDep
from api.errors import errors
from api.schemas.bodies import Body, body_of
from api.schemas.common import Recorded
from ledger.commands import Recorded as LedgerRecorded
from ledger.commands.access import (
    AddUser,
    BindUser,
    ChangeRole,
    DisableUser,
    EnableUser,
    IssueToken,
    RevokeTokens,
    SetPassword,
    UnbindUser,
)
from ledger.identity import MAX_TOKEN_TTL, MIN_PASSWORD_LENGTH, Identity, User

router = APIRouter(prefix="/users", tags=["access"])

Password = Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)]
Minutes = Annotated[int, Field(gt=0, le=int(MAX_TOKEN_TTL / timedelta(minutes=1)))]

# `password_set` is the ledger's: it follows from whether a password is given.
UserIn = Annotated[
    Body, body_of(AddUser, path={"password_set"}, model_name="UserIn", password=(Password | None, None))
]
RoleIn = Annotated[Body, body_of(ChangeRole, path={"principal"})]
PlacesIn = Annotated[Body, body_of(BindUser, path={"principal"}, model_name="PlacesIn")]
UnbindIn = Annotated[Body, body_of(UnbindUser, path={"principal"}, model_name="UnbindIn")]
DisableIn = Annotated[Body, body_of(DisableUser, path={"principal"})]
EnableIn = Annotated[Body, body_of(EnableUser, path={"principal"})]
PasswordIn = Annotated[Body, body_of(SetPassword, path={"principal"}, password=(Password, ...))]
TokenIn = Annotated[
    Body,
    body_of(
        IssueToken,
        path={"principal", "token_id", "expires_at", "occurred_at"},
        model_name="TokenIn",
        expires_in_minutes=(Minutes | None, None),
    ),
]
RevokeIn = Annotated[
    Body, body_of(RevokeTokens, path={"principal", "token_ids", "occurred_at"}, model_name="RevokeIn")
]
PrincipalPath = Annotated[str, Path(min_length=1, max_length=64)]


class UserOut(BaseModel):
    """A user as their account in the chain now stands (never a secret)."""

    principal: str
    name: str
    role: str
    places: list[UUID]
    disabled: bool
    can_sign: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            principal=user.principal,
            name=user.name,
            role=str(user.role),
            places=sorted(user.places, key=str),
            disabled=user.disabled,
            can_sign=user.has_password,
        )


class UserChanged(Recorded):
    """An access change: what it recorded and the user as it leaves them."""

    user: UserOut


class TokenIssued(Recorded):
    """A new API token: the secret, shown this once and kept nowhere (only its hash is stored), and
    its public id, as the chain names it."""

    token: str
    token_id: str
    expires_at: datetime | None


class TokensRevoked(Recorded):
    """The public ids of the tokens revoked (none: nothing was active, and nothing was recorded)."""

    token_ids: list[str]


def _changed(identity: Identity, principal: str, recorded: LedgerRecorded) -> UserChanged:
    return UserChanged(events=recorded.events, user=UserOut.of(identity.user(principal)))


@router.get("", response_model=list[UserOut], responses=errors())
def list_users(identity: IdentityDep, _: AccessReader) -> Any:
    """Every user with their role, places and whether they are enabled (admin, QA, inspector)."""
    return [UserOut.of(u) for u in identity.users()]


@router.get("/{principal}", response_model=UserOut, responses=errors(404))
def get_user(principal: PrincipalPath, identity: IdentityDep, _: AccessReader) -> Any:
    """One user (admin, QA, inspector); their history is the audit trail of their account."""
    return UserOut.of(identity.user(principal))


@router.post("", status_code=201, response_model=UserChanged, responses=errors(404, 409))
def add_user(body: UserIn, identity: IdentityDep, user: Administrator) -> Any:
    """Create a user with a role and, for site, depot and manufacturing users, the places they work at;
    with a `password` they can sign (admin)."""
    f = body.model_dump()
    recorded = identity.add_user(
        f["principal"],
        name=f["name"],
        role=f["role"],
        places=f["places"],
        password=f["password"],
        by=user.actor,
        reason=f["reason"],
        occurred_at=f["occurred_at"],
    )
    return _changed(identity, f["principal"], recorded)


@router.post("/{principal}/role", response_model=UserChanged, responses=errors(404, 409))
def change_role(principal: PrincipalPath, body: RoleIn, identity: IdentityDep, user: Administrator) -> Any:
    """Grant the user another role in place of theirs, with the places it needs (admin)."""
    f = body.model_dump()
    recorded = identity.change_role(
        principal, f["role"], places=f["places"], by=user.actor, reason=f["reason"]
    )
    return _changed(identity, principal, recorded)


@router.post("/{principal}/places", response_model=UserChanged, responses=errors(404, 409))
def bind(principal: PrincipalPath, body: PlacesIn, identity: IdentityDep, user: Administrator) -> Any:
    """Bind a site, depot or manufacturing user to more places (admin)."""
    f = body.model_dump()
    recorded = identity.bind(principal, f["places"], by=user.actor, reason=f["reason"])
    return _changed(identity, principal, recorded)


@router.post("/{principal}/places/removal", response_model=UserChanged, responses=errors(404, 409))
def unbind(principal: PrincipalPath, body: UnbindIn, identity: IdentityDep, user: Administrator) -> Any:
    """Unbind a user from places, never from the last one (admin)."""
    f = body.model_dump()
    recorded = identity.unbind(principal, f["places"], by=user.actor, reason=f["reason"])
    return _changed(identity, principal, recorded)


@router.post("/{principal}/disable", response_model=UserChanged, responses=errors(404, 409))
def disable(principal: PrincipalPath, body: DisableIn, identity: IdentityDep, user: Administrator) -> Any:
    """Disable a user: their tokens and password stop working at once (admin)."""
    recorded = identity.set_disabled(principal, True, by=user.actor, reason=body.model_dump()["reason"])
    return _changed(identity, principal, recorded)


@router.post("/{principal}/enable", response_model=UserChanged, responses=errors(404, 409))
def enable(principal: PrincipalPath, body: EnableIn, identity: IdentityDep, user: Administrator) -> Any:
    """Enable a disabled user again (admin)."""
    recorded = identity.set_disabled(principal, False, by=user.actor, reason=body.model_dump()["reason"])
    return _changed(identity, principal, recorded)


@router.post("/{principal}/password", response_model=UserChanged, responses=errors(404))
def set_password(
    principal: PrincipalPath, body: PasswordIn, identity: IdentityDep, user: Administrator
) -> Any:
    """Set or reset a user's password; the chain records that it was set, never the password (admin)."""
    f = body.model_dump()
    recorded = identity.set_password(principal, f["password"], by=user.actor, reason=f["reason"])
    return _changed(identity, principal, recorded)


@router.post("/{principal}/tokens", status_code=201, response_model=TokenIssued, responses=errors(404))
def issue_token(principal: PrincipalPath, body: TokenIn, identity: IdentityDep, user: Administrator) -> Any:
    """Issue an API token to a user, valid `expires_in_minutes` (without it: until revoked); its secret
    is in this answer only (admin)."""
    f = body.model_dump()
    ttl = None if f["expires_in_minutes"] is None else timedelta(minutes=f["expires_in_minutes"])
    issued = identity.issue(principal, by=user.actor, reason=f["reason"], label=f["label"], ttl=ttl)
    return TokenIssued(
        events=issued.recorded.events,
        token=issued.secret,
        token_id=issued.token_id,
        expires_at=issued.expires_at,
    )


@router.post("/{principal}/tokens/revocation", response_model=TokensRevoked, responses=errors(404))
def revoke_tokens(
    principal: PrincipalPath, body: RevokeIn, identity: IdentityDep, user: Administrator
) -> Any:
    """Revoke every active API token of a user (admin)."""
    recorded = identity.revoke(principal, by=user.actor, reason=body.model_dump()["reason"])
    return TokensRevoked(events=recorded.events, token_ids=recorded.facts["token_ids"])
