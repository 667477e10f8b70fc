"""Who may use Lotline: users with a role (site staff also with their sites) and their API tokens.

Secrets are never stored in clear. An API token is a random secret shown once, when it is issued,
and kept as its SHA-256; a lookup hashes the presented token and finds the row. A password (needed
to sign: 21 CFR 11.200 re-authentication) is kept as a salted scrypt hash whose cost parameters are
stored with it, so they can be raised later without invalidating older hashes. Tables live in the
ledger's own database (SQLite or PostgreSQL), made by `lotline db upgrade`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from base64 import b64decode, b64encode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ledger.db import open_engine
from ledger.errors import AlreadyExists, InvalidInput, LedgerError, NotFound
from ledger.values import PLACE_BOUND, Actor, Role

TOKEN_PREFIX = "lt_"
MIN_PASSWORD_LENGTH = 10
DEFAULT_SCRYPT_N = 2**15  # about 0.17 s per hash on the reference machine
_SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 8, 1, 32
_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

metadata = MetaData()

users = Table(
    "lotline_users",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", String(300)),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", String(40), nullable=False),
)

user_sites = Table(  # every place-bound user's places (named when only site users had any)
    "lotline_user_sites",
    metadata,
    Column("principal", String(64), ForeignKey("lotline_users.principal"), primary_key=True),
    Column("site_id", Uuid, primary_key=True),
)

tokens = Table(
    "lotline_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("principal", String(64), ForeignKey("lotline_users.principal"), nullable=False),
    Column("label", String(100), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40)),
    Column("revoked", Boolean, nullable=False, default=False),
    Index("lotline_tokens_principal", "principal"),
)


MAX_TOKEN_TTL = timedelta(days=3660)
"""The longest lifetime a token may be given (about ten years); longer is a token that never expires."""


class InvalidCredentials(LedgerError):
    """A missing, unknown, revoked or expired token, a disabled user, or a wrong password."""

    code = "invalid_credentials"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)


@dataclass(frozen=True, slots=True)
class User:
    """A person who uses Lotline: principal (login), printed name, role, and the places they work at
    (clinical sites, depots, manufacturing sites) for the place-bound roles (`PLACE_BOUND`)."""

    principal: str
    name: str
    role: Role
    places: frozenset[UUID]
    disabled: bool
    has_password: bool

    @property
    def actor(self) -> Actor:
        """The user as the ledger records them in every event's audit stamp; a place-bound user with
        their places, where alone the ledger lets them act."""
        places = self.places if self.role in PLACE_BOUND else None
        return Actor(self.principal, self.role, self.name, places)


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated request: the user and which of their tokens was presented."""

    user: User
    token_hash: str


class Identity:
    """Users, passwords and API tokens in the ledger's database."""

    def __init__(self, engine: Engine, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.engine = engine
        self.scrypt_n = scrypt_n
        self._owns_engine = False

    @classmethod
    def open(cls, database_url: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> Identity:
        """Users of the store `database_url`, on an engine of their own; `close()` disposes of it."""
        identity = cls(open_engine(database_url), scrypt_n=scrypt_n)
        identity._owns_engine = True
        return identity

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    # --- users ---------------------------------------------------------------------------------

    def add_user(
        self,
        principal: str,
        *,
        name: str,
        role: Role | str,
        places: Iterable[UUID] = (),
        password: str | None = None,
    ) -> User:
        """A new user: one of a place-bound role (site, depot, manufacturing) is bound to at least one
        place; one of a global role (QA, QP, recall investigator, inspector, admin) to none."""
        role = _role(role)
        site_ids = frozenset(UUID(str(s)) for s in places)
        _require_principal(principal)
        if not name.strip():
            raise InvalidInput("a user needs a printed name (it appears in signatures)", field="name")
        if role in PLACE_BOUND and not site_ids:
            raise InvalidInput(f"a {role} user is bound to at least one place", field="places")
        if role not in PLACE_BOUND and site_ids:
            raise InvalidInput(f"a {role} user acts everywhere: bound to no place", field="places")
        row = {
            "principal": principal,
            "name": name.strip(),
            "role": str(role),
            "password_hash": None if password is None else self._hash_password(password),
            "disabled": False,
            "created_at": _now(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(users).values(row))
                if site_ids:
                    conn.execute(
                        insert(user_sites), [{"principal": principal, "site_id": s} for s in site_ids]
                    )
        except IntegrityError:
            raise AlreadyExists("user", principal) from None
        return self.user(principal)

    def user(self, principal: str) -> User:
        """The user `principal`, or NotFound."""
        with self.engine.connect() as conn:
            found = _users(conn, users.c.principal == principal)
        if not found:
            raise NotFound("user", principal)
        return found[0]

    def users(self) -> list[User]:
        """Every user, by principal."""
        with self.engine.connect() as conn:
            return _users(conn, None)

    def bind(self, principal: str, places: Iterable[UUID]) -> User:
        """Bind a place-bound user to more places (a place they are bound to already is kept)."""
        user = self.user(principal)
        if user.role not in PLACE_BOUND:
            raise InvalidInput(f"a {user.role} user acts everywhere: bound to no place", field="places")
        new = frozenset(UUID(str(p)) for p in places) - user.places
        if new:
            with self.engine.begin() as conn:
                conn.execute(insert(user_sites), [{"principal": principal, "site_id": p} for p in new])
        return self.user(principal)

    def unbind(self, principal: str, places: Iterable[UUID]) -> User:
        """Unbind a user from places; never from the last one (a place-bound user acts somewhere)."""
        user = self.user(principal)
        gone = frozenset(UUID(str(p)) for p in places)
        if gone - user.places:
            unknown = ", ".join(sorted(map(str, gone - user.places)))
            raise InvalidInput(f"{principal} is not bound to {unknown}", field="places")
        if not user.places - gone:
            raise InvalidInput(f"{principal} would be bound to no place: bind another first", field="places")
        with self.engine.begin() as conn:
            conn.execute(
                user_sites.delete().where(user_sites.c.principal == principal, user_sites.c.site_id.in_(gone))
            )
        return self.user(principal)

    def set_password(self, principal: str, password: str) -> None:
        """Replace the user's password (the old hash is overwritten, never kept)."""
        self._update(principal, password_hash=self._hash_password(password))

    def set_disabled(self, principal: str, disabled: bool = True) -> None:
        """Disable (or re-enable) a user: their tokens and password stop working at once."""
        self._update(principal, disabled=disabled)

    def _update(self, principal: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(users).where(users.c.principal == principal).values(**values))
        if done.rowcount != 1:
            raise NotFound("user", principal)

    # --- tokens --------------------------------------------------------------------------------

    def issue_token(self, principal: str, *, label: str = "", ttl: timedelta | None = None) -> str:
        """A new API token for the user, valid for `ttl` (positive, at most `MAX_TOKEN_TTL`); without
        `ttl` it does not expire until revoked (an operator's choice: `lotline users token` without
        `--expires-in`). The secret is returned once and only its hash is kept."""
        if ttl is not None and not timedelta(0) < ttl <= MAX_TOKEN_TTL:
            raise InvalidInput(
                f"a token's lifetime is positive and at most {MAX_TOKEN_TTL.days} days, not {ttl}",
                field="ttl",
            )
        self.user(principal)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert(tokens).values(
                    token_hash=token_hash(secret),
                    principal=principal,
                    label=label[:100],
                    created_at=created.isoformat(),
                    revoked=False,
                    expires_at=None if ttl is None else (created + ttl).isoformat(),
                )
            )
        return secret

    def revoke_tokens(self, principal: str) -> int:
        """Revoke every token of the user; how many were active."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(tokens)
                .where(tokens.c.principal == principal, tokens.c.revoked.is_(False))
                .values(revoked=True)
            )
        return int(done.rowcount)

    def authenticate(self, token: str) -> Session:
        """The session a bearer token opens, or InvalidCredentials saying why not."""
        digest = token_hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).mappings().first()
            found = _users(conn, users.c.principal == row["principal"]) if row else []
        if row is None or not found:
            raise InvalidCredentials("unknown API token")
        if row["revoked"]:
            raise InvalidCredentials("this API token was revoked")
        if row["expires_at"] is not None and datetime.fromisoformat(row["expires_at"]) <= datetime.now(UTC):
            raise InvalidCredentials("this API token has expired")
        user = found[0]
        if user.disabled:
            raise InvalidCredentials(f"user {user.principal} is disabled")
        return Session(user, digest)

    def token_issued_at(self, token: str, principal: str) -> datetime:
        """When a valid token of `principal` was issued (InvalidCredentials if it is not one)."""
        session = self.authenticate(token)
        if session.user.principal != principal:
            raise InvalidCredentials("the token belongs to another user")
        with self.engine.connect() as conn:
            created = conn.execute(
                select(tokens.c.created_at).where(tokens.c.token_hash == session.token_hash)
            ).scalar_one()
        return datetime.fromisoformat(created)

    # --- passwords -----------------------------------------------------------------------------

    def verify_password(self, principal: str, password: str) -> User:
        """The user, once `password` matches their stored hash; InvalidCredentials otherwise."""
        with self.engine.connect() as conn:
            found = _users(conn, users.c.principal == principal)
            stored = conn.execute(
                select(users.c.password_hash).where(users.c.principal == principal)
            ).scalar_one_or_none()
        if not found or stored is None or not _password_matches(password, stored):
            raise InvalidCredentials(f"wrong password for {principal}, or no such user", principal=principal)
        if found[0].disabled:
            raise InvalidCredentials(f"user {principal} is disabled", principal=principal)
        return found[0]

    def _hash_password(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters", field="password")
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, self.scrypt_n, _SCRYPT_R, _SCRYPT_P)
        return f"scrypt${self.scrypt_n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def token_hash(token: str) -> str:
    """The stored form of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _users(conn: Connection, where: Any) -> list[User]:
    query = select(users).order_by(users.c.principal)
    if where is not None:
        query = query.where(where)
    rows = conn.execute(query).mappings().all()
    if not rows:
        return []
    sites: dict[str, set[UUID]] = {}
    site_rows = conn.execute(
        select(user_sites).where(user_sites.c.principal.in_([r["principal"] for r in rows]))
    ).all()
    for principal, site_id in site_rows:
        sites.setdefault(principal, set()).add(site_id)
    return [
        User(
            r["principal"],
            r["name"],
            Role(r["role"]),
            frozenset(sites.get(r["principal"], ())),
            bool(r["disabled"]),
            r["password_hash"] is not None,
        )
        for r in rows
    ]


def _password_matches(password: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    candidate = _scrypt(password, b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(candidate, b64decode(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_SCRYPT_LEN, maxmem=256 * 1024 * 1024
    )


def _require_principal(principal: str) -> None:
    if not _PRINCIPAL.fullmatch(principal):
        raise InvalidInput(
            "a principal is 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="principal",
        )


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def _now() -> str:
    return datetime.now(UTC).isoformat()


__all__: Sequence[str] = ["Identity", "InvalidCredentials", "Session", "User", "token_hash"]
