"""Who may use Lotline: users with a role (site staff also with their sites) and their API tokens.

Who a user is, their role, their places and whether they are enabled is the state of their account
in the chain (`ledger.domain.account.UserAccount`): every creation, change and cancellation of access
is an event, recorded through the ledger by `Identity`, with who did it and why.

Secrets are never stored in clear and never enter an event. An API token is a random secret shown
once, when it is issued, and kept as its SHA-256; a lookup hashes the presented token and finds the
row; the chain names the token by a public id (`token_id`). A password (needed to sign: 21 CFR
11.200 re-authentication) is kept as a salted scrypt hash whose cost parameters are stored with it,
so they can be raised later without invalidating older hashes. Both are rows beside the chain,
written in the transaction of the event that records them. Tables live in the ledger's own database
(SQLite or PostgreSQL), made by `lotline db upgrade`.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
import socket
import threading
from base64 import b64decode, b64encode
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    delete,
    func,
    select,
)

from ledger.application import Ledger
from ledger.commands import Command, Recorded
from ledger.commands.access import (
    AddUser,
    AdoptUser,
    BindUser,
    ChangeRole,
    DisableUser,
    EnableUser,
    IssueToken,
    RevokeTokens,
    SetPassword,
    UnbindUser,
)
from ledger.db import open_engine
from ledger.domain.account import UserAccount, account_id
from ledger.errors import AlreadyExists, InvalidInput, LedgerError, NotFound
from ledger.recorders import Row, RowExists
from ledger.values import PLACE_BOUND, Actor, Role

TOKEN_PREFIX = "lt_"
MIN_PASSWORD_LENGTH = 10
DEFAULT_SCRYPT_N = 2**15  # about 0.17 s per hash on the reference machine
_SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 8, 1, 32

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

passwords = Table(  # a principal's password: their newest row (`seq`: the chain position of its event)
    "lotline_passwords",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("password_hash", String(300), nullable=False),
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
class IssuedToken:
    """A new API token: its secret (shown once, kept nowhere), its public id, when it expires (None:
    when revoked) and what its issue recorded."""

    secret: str
    token_id: str
    expires_at: datetime | None
    recorded: Recorded


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated request: the user and which of their tokens was presented."""

    user: User
    token_hash: str


class Identity:
    """Users, passwords and API tokens: who a user is and what they may do is their account in the
    chain (`UserAccount`), changed only through the ledger; the secrets (password and token hashes)
    are rows beside it, written in the transaction of the event that records them."""

    def __init__(self, engine: Engine, ledger: Ledger, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.engine = engine
        self.ledger = ledger
        self.scrypt_n = scrypt_n
        self._owned: Ledger | None = None
        self._owns_engine = False
        self._tokens: OrderedDict[str, _TokenRow] = OrderedDict()
        self._users: dict[str, tuple[int, User]] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        database_url: str,
        *,
        keys_dir: Path | None = None,
        ledger: Ledger | None = None,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> Identity:
        """Users of the store `database_url`, on an engine of their own, recording through `ledger`
        (the caller's, which it keeps open) or else a ledger of their own whose writes are signed with
        the writer key in `keys_dir`; `close()` disposes of what it opened."""
        own = ledger is None
        ledger = ledger or Ledger.open(database_url, keys_dir)
        identity = cls(open_engine(database_url), ledger, scrypt_n=scrypt_n)
        identity._owned = ledger if own else None
        identity._owns_engine = True
        return identity

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
            self._owns_engine = False
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    # --- users ---------------------------------------------------------------------------------

    def add_user(
        self,
        principal: str,
        *,
        name: str,
        role: Role | str,
        by: Actor,
        reason: str,
        places: Iterable[UUID] = (),
        password: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Recorded:
        """A new user: one of a place-bound role (site, depot, manufacturing) is bound to at least one
        place of a kind they work at; one of a global role (QA, QP, recall investigator, inspector,
        admin) to none. Recorded as the account's creation, by `by`, for `reason`."""
        digest = None if password is None else self._hash_password(password)
        command = AddUser(
            principal=principal,
            name=name,
            role=_role(role),
            places=tuple(UUID(str(p)) for p in places),
            password_set=digest is not None,
            reason=reason,
            occurred_at=occurred_at,
        )

        def rows(recorded: Recorded) -> list[Row]:
            registered = Row("lotline_users", {
                "principal": principal, "name": command.name.strip(), "role": str(command.role),
                "password_hash": None, "disabled": False, "created_at": _now(),
            })
            return [registered, *_password_rows(principal, digest, recorded)]

        return self._handle(command, by, rows)

    def user(self, principal: str) -> User:
        """The user `principal` as their account now stands, or NotFound."""
        try:
            account = self.ledger.peek(UserAccount, account_id(principal))
        except NotFound:
            raise NotFound("user", principal) from None
        return _user_of(account)

    def users(self) -> list[User]:
        """Every user, by principal."""
        with self.engine.connect() as conn:
            principals = conn.execute(select(users.c.principal).order_by(users.c.principal)).scalars().all()
        found = self.ledger.load_many(UserAccount, [account_id(p) for p in principals])
        return [_user_of(found[account_id(p)]) for p in principals if account_id(p) in found]

    def change_role(
        self, principal: str, role: Role | str, *, by: Actor, reason: str, places: Iterable[UUID] = ()
    ) -> Recorded:
        """Grant the user another role in place of theirs, with the places it binds them to."""
        places = tuple(UUID(str(p)) for p in places)
        command = ChangeRole(principal=principal, role=_role(role), places=places, reason=reason)
        return self._handle(command, by)

    def bind(self, principal: str, places: Iterable[UUID], *, by: Actor, reason: str) -> Recorded:
        """Bind a place-bound user to more places."""
        places = tuple(UUID(str(p)) for p in places)
        return self._handle(BindUser(principal=principal, places=places, reason=reason), by)

    def unbind(self, principal: str, places: Iterable[UUID], *, by: Actor, reason: str) -> Recorded:
        """Unbind a user from places; never from the last one (a place-bound user acts somewhere)."""
        places = tuple(UUID(str(p)) for p in places)
        return self._handle(UnbindUser(principal=principal, places=places, reason=reason), by)

    def set_password(self, principal: str, password: str, *, by: Actor, reason: str) -> Recorded:
        """Replace the user's password: the event says it was set, the new hash is kept beside the
        chain (older hashes are deleted once it is)."""
        digest = self._hash_password(password)
        recorded = self._handle(
            SetPassword(principal=principal, reason=reason), by, _password_rows_of(principal, digest)
        )
        with self.engine.begin() as conn:
            newest = select(func.max(passwords.c.seq)).where(passwords.c.principal == principal)
            older = passwords.c.seq < newest.scalar_subquery()
            conn.execute(delete(passwords).where(passwords.c.principal == principal, older))
        return recorded

    def set_disabled(self, principal: str, disabled: bool = True, *, by: Actor, reason: str) -> Recorded:
        """Disable (or re-enable) a user: their tokens and password stop (or start again) working at once."""
        command = DisableUser if disabled else EnableUser
        return self._handle(command(principal=principal, reason=reason), by)

    def _handle(
        self, command: Command, by: Actor, rows: Callable[[Recorded], Sequence[Row]] | None = None
    ) -> Recorded:
        try:
            return self.ledger.handle(command, by, rows)
        except RowExists:
            raise AlreadyExists("user", getattr(command, "principal", "")) from None

    # --- tokens --------------------------------------------------------------------------------

    def issue_token(
        self, principal: str, *, by: Actor, reason: str, label: str = "", ttl: timedelta | None = None
    ) -> str:
        """The secret of a new API token (see `issue`)."""
        return self.issue(principal, by=by, reason=reason, label=label, ttl=ttl).secret

    def issue(
        self, principal: str, *, by: Actor, reason: str, label: str = "", ttl: timedelta | None = None
    ) -> IssuedToken:
        """A new API token for the user, valid for `ttl` (positive, at most `MAX_TOKEN_TTL`); without
        `ttl` it does not expire until revoked (an operator's choice: `lotline users token` without
        `--expires-in`). The secret is returned once; the chain records the token's public id
        (`token_id`) and only its hash is kept, in the transaction of that event."""
        if ttl is not None and not timedelta(0) < ttl <= MAX_TOKEN_TTL:
            raise InvalidInput(
                f"a token's lifetime is positive and at most {MAX_TOKEN_TTL.days} days, not {ttl}",
                field="ttl",
            )
        self.user(principal)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = token_hash(secret)
        created = datetime.now(UTC)
        expires = None if ttl is None else created + ttl
        row = Row("lotline_tokens", {
            "token_hash": digest, "principal": principal, "label": label[:100],
            "created_at": created.isoformat(), "revoked": False,
            "expires_at": None if expires is None else expires.isoformat(),
        })
        command = IssueToken(
            principal=principal, token_id=token_id(digest), label=label[:100], expires_at=expires,
            reason=reason,
        )
        recorded = self._handle(command, by, lambda _: [row])
        return IssuedToken(secret, command.token_id, expires, recorded)

    def revoke_tokens(self, principal: str, *, by: Actor, reason: str) -> int:
        """Revoke every active token of the user; how many there were (see `revoke`)."""
        return len(self.revoke(principal, by=by, reason=reason).facts.get("token_ids", ()))

    def revoke(self, principal: str, *, by: Actor, reason: str) -> Recorded:
        """Revoke every active token of the user, recorded with their public ids (`facts["token_ids"]`);
        nothing is recorded when none is active."""
        user = self.user(principal)
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tokens.c.token_hash, tokens.c.expires_at)
                .where(tokens.c.principal == principal, tokens.c.revoked.is_(False))
            ).all()
        account = self.ledger.peek(UserAccount, account_id(user.principal))
        active = [
            token_id(h)
            for h, expires in rows
            if token_id(h) not in account.revoked
            and (expires is None or datetime.fromisoformat(expires) > now)
        ]
        if not active:
            return Recorded(events=(), facts={"token_ids": []})
        recorded = self._handle(RevokeTokens(principal=principal, token_ids=tuple(active), reason=reason), by)
        return recorded.model_copy(update={"facts": {"token_ids": active}})

    def authenticate(self, token: str) -> Session:
        """The session a bearer token opens, or InvalidCredentials saying why not.

        A token's row never changes once written (revocation is an event of the account), so the rows
        of tokens seen are kept per process; the account is read afresh (`Ledger.peek`: only its events
        after the kept version), so a revocation, a role change or a disabling takes effect on the next
        request, whichever process recorded it."""
        digest = token_hash(token)
        row = self._token_row(digest)
        if row is None:
            raise InvalidCredentials("unknown API token")
        account = self._account(row.principal)
        if account is None:
            raise InvalidCredentials("unknown API token")
        if row.revoked or token_id(digest) in account.revoked:
            raise InvalidCredentials("this API token was revoked")
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            raise InvalidCredentials("this API token has expired")
        if account.disabled:
            raise InvalidCredentials(f"user {account.principal} is disabled")
        return Session(self._user_of(account), digest)

    def _token_row(self, digest: str) -> _TokenRow | None:
        with self._lock:
            row = self._tokens.get(digest)
            if row is not None:
                self._tokens.move_to_end(digest)
                return row
        with self.engine.connect() as conn:
            found = conn.execute(
                select(tokens.c.principal, tokens.c.expires_at, tokens.c.revoked)
                .where(tokens.c.token_hash == digest)
            ).first()
        if found is None:
            return None
        principal, expires_at, revoked = found
        expires = None if expires_at is None else datetime.fromisoformat(expires_at)
        row = _TokenRow(principal, expires, bool(revoked))
        with self._lock:
            self._tokens[digest] = row
            if len(self._tokens) > _KEPT_TOKENS:
                self._tokens.popitem(last=False)
        return row

    def _user_of(self, account: UserAccount) -> User:
        """The user an account stands for, made once per version of the account."""
        kept = self._users.get(account.principal)
        if kept is not None and kept[0] == account.version:
            return kept[1]
        user = _user_of(account)
        self._users[account.principal] = (account.version, user)
        return user

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
        account = self._account(principal)
        with self.engine.connect() as conn:
            stored = conn.execute(
                select(passwords.c.password_hash)
                .where(passwords.c.principal == principal)
                .order_by(passwords.c.seq.desc())
                .limit(1)
            ).scalar_one_or_none()
        if account is None or stored is None or not _password_matches(password, stored):
            raise InvalidCredentials(f"wrong password for {principal}, or no such user", principal=principal)
        if account.disabled:
            raise InvalidCredentials(f"user {principal} is disabled", principal=principal)
        return _user_of(account)

    def _account(self, principal: str) -> UserAccount | None:
        try:
            return self.ledger.peek(UserAccount, account_id(principal))
        except NotFound:
            return None

    def _hash_password(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"a password has at least {MIN_PASSWORD_LENGTH} characters", field="password")
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, self.scrypt_n, _SCRYPT_R, _SCRYPT_P)
        return f"scrypt${self.scrypt_n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"

    # --- users from before access changes were events -------------------------------------------

    def adopt_table_users(self, by: Actor) -> list[str]:
        """Record an account for every user of `lotline_users` that has none (a store made before access
        changes were in the chain), as they stand there: role, places, password (its hash moves beside
        the chain), disabled. Safe to run again; the principals adopted."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.principal)).mappings().all()
            bound: dict[str, list[UUID]] = {}
            for principal, place in conn.execute(select(user_sites)).all():
                bound.setdefault(principal, []).append(place)
        adopted = []
        for r in rows:
            principal = r["principal"]
            if self._account(principal) is not None:
                continue
            why = (
                f"adopted at upgrade: user created {r['created_at']}, before access changes were "
                "recorded in the chain"
            )
            command = AdoptUser(
                principal=principal, name=r["name"], role=Role(r["role"]),
                places=tuple(sorted(bound.get(principal, []), key=str)),
                password_set=r["password_hash"] is not None, reason=why,
            )
            self._handle(command, by, _password_rows_of(principal, r["password_hash"]))
            if r["disabled"]:
                self._handle(DisableUser(principal=principal, reason=why), by)
            adopted.append(principal)
        return adopted


def operator(tool: str) -> Actor:
    """The person at the server's console who runs a `lotline` command that changes access: named by
    their operating-system login and host (they hold the store's credentials, so no Lotline user
    stands above them; the chain records who they were)."""
    login = getpass.getuser()
    return Actor(f"os:{login}@{socket.gethostname()}"[:64], Role.ADMIN, f"{login} ({tool})")


_KEPT_TOKENS = 4096
"""How many tokens' rows an `Identity` keeps in memory (least recently used dropped first)."""


@dataclass(frozen=True, slots=True)
class _TokenRow:
    principal: str
    expires_at: datetime | None
    revoked: bool


def token_id(digest: str) -> str:
    """A token's public id, as the chain names it: the first 16 hex digits of its stored hash (the
    secret cannot be found from it)."""
    return digest[:16]


def _password_rows(principal: str, digest: str | None, recorded: Recorded) -> list[Row]:
    if digest is None:
        return []
    values = {"principal": principal, "seq": recorded.position, "password_hash": digest}
    return [Row("lotline_passwords", values)]


def _password_rows_of(principal: str, digest: str | None) -> Callable[[Recorded], Sequence[Row]]:
    return lambda recorded: _password_rows(principal, digest, recorded)


def _user_of(account: UserAccount) -> User:
    return User(
        account.principal, account.name, account.role, account.places, account.disabled, account.password_set
    )


def token_hash(token: str) -> str:
    """The stored form of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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


__all__: Sequence[str] = ["Identity", "InvalidCredentials", "Session", "User", "token_hash", "token_id"]
