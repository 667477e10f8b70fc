"""Request dependencies, as `Annotated` aliases routes declare in their signatures.

A dependency that neither blocks nor does I/O is an `async def`: FastAPI runs a plain `def` in the
thread pool, and each hop there cost a read 0.2-1 ms on a busy machine, five hops per trace (a thread
has to be woken, which on a loaded machine waits for the scheduler). `get_session` is `async` too,
though it reads the store: a token's row is kept per process and the account is one indexed read of
its newest events (`Identity.authenticate`), shorter than the hop, and the pools hold a connection for
every request thread (`ledger.db`), so it never waits for one. What may wait (`get_read_side` with
`after`, a write) runs in the thread pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import permissions
from api.auth import Signer, authenticate, require_role, require_site
from api.commands import Writer
from api.errors import EpcisVersionNotSupported
from api.idempotency import IdempotencyStore, Once, request_hash
from api.readside import ReadSide
from epcis import Epcis
from ledger.application import Ledger
from ledger.commands import RecordUnblindedRead
from ledger.config import Settings
from ledger.errors import InvalidInput
from ledger.identity import Identity, Session, User
from ledger.transparency import Transparency
from ledger.values import Role

bearer = HTTPBearer(auto_error=False, description="An API token from `lotline users token NAME`.")


async def get_ledger(request: Request) -> Ledger:
    """The application's ledger, opened once by the app's lifespan handler."""
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def get_session(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Session:
    """The session the request's bearer token opens (401 otherwise)."""
    return authenticate(request.app.state.identity, credentials.credentials if credentials else None)


SessionDep = Annotated[Session, Depends(get_session)]


async def get_user(session: SessionDep) -> User:
    return session.user


UserDep = Annotated[User, Depends(get_user)]


async def get_signer(identity: IdentityDep, session: SessionDep, settings: SettingsDep) -> Signer:
    return Signer(identity, session, timedelta(seconds=settings.signature_token_max_age_seconds))


SignerDep = Annotated[Signer, Depends(get_signer)]


async def get_read_side(
    request: Request,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            description="Answer only once the read models have applied this position (a command's "
            "`position`, its last event's `seq`): waits up to `LOTLINE_READ_WAIT_SECONDS`, then 503 "
            "with Retry-After naming the position reached.",
        ),
    ] = None,
) -> ReadSide:
    """The read models; with `after`, once they have applied that position (the request applies nothing)."""
    read_side: ReadSide = request.app.state.read_side
    if after is not None:
        await run_in_threadpool(read_side.wait_for, after)
    return read_side


ReadDep = Annotated[ReadSide, Depends(get_read_side)]


async def get_transparency(request: Request) -> Transparency:
    log: Transparency = request.app.state.transparency
    return log


LogDep = Annotated[Transparency, Depends(get_transparency)]


async def get_epcis(request: Request) -> Epcis:
    """The application's EPCIS service (export, capture, query), opened by the lifespan handler."""
    epcis: Epcis = request.app.state.epcis
    return epcis


EpcisDep = Annotated[Epcis, Depends(get_epcis)]


def _allowed(roles: Iterable[Role], what: str) -> Callable[[User], Awaitable[User]]:
    chosen = frozenset(roles)

    async def check(user: UserDep) -> User:
        require_role(user, what, chosen)
        return user

    return check


Tracer = Annotated[
    User, Depends(_allowed(permissions.TRACE, "read traces, recalls, custody or audit trails"))
]
StockReader = Annotated[User, Depends(_allowed(permissions.STOCK, "read stock"))]
Verifier = Annotated[User, Depends(_allowed(permissions.VERIFY, "run verification"))]
Exporter = Annotated[User, Depends(_allowed(permissions.EXPORT, "download the audit export"))]
WitnessOperator = Annotated[User, Depends(_allowed(permissions.WITNESS, "act as a witness"))]
CheckpointMaker = Annotated[User, Depends(_allowed(permissions.CHECKPOINT, "sign a checkpoint"))]
AccessReader = Annotated[User, Depends(_allowed(permissions.ACCESS, "read users and their access"))]
Administrator = Annotated[User, Depends(_allowed(permissions.ADMINISTER, "change users' access"))]
Capturer = Annotated[User, Depends(_allowed(permissions.CAPTURE, "capture EPCIS documents"))]
RecallReader = Annotated[
    User, Depends(_allowed(permissions.RECALL_STATUS, "read recall status, outstanding kits or reports"))
]


EPC_FORMATS = ("No_Preference", "Always_EPC_URN")
"""The `GS1-EPC-Format`s this server honours: its events name things by EPC URIs (queries take both forms)."""


async def epcis_version(
    gs1_epcis_version: Annotated[
        str | None,
        Header(
            alias="GS1-EPCIS-Version",
            max_length=40,
            description="The EPCIS version the client speaks: 2.0 (2.0.0) or none; any other is 406.",
        ),
    ] = None,
    epcis_min: Annotated[str | None, Header(alias="GS1-EPCIS-Min", max_length=40)] = None,
    epcis_max: Annotated[str | None, Header(alias="GS1-EPCIS-Max", max_length=40)] = None,
    cbv_min: Annotated[str | None, Header(alias="GS1-CBV-Min", max_length=40)] = None,
    cbv_max: Annotated[str | None, Header(alias="GS1-CBV-Max", max_length=40)] = None,
    epc_format: Annotated[
        str | None,
        Header(
            alias="GS1-EPC-Format",
            max_length=40,
            description="No_Preference or Always_EPC_URN (events name things by EPC URIs); others are 406.",
        ),
    ] = None,
) -> None:
    """Refuse (406) a client whose versions exclude EPCIS and CBV 2.0, or that asks for an EPC format
    this server does not answer in (the REST binding's negotiation headers)."""
    if gs1_epcis_version is not None and gs1_epcis_version.strip() not in ("2.0", "2.0.0"):
        raise EpcisVersionNotSupported(gs1_epcis_version)
    for header, asked, standard, low in (
        ("GS1-EPCIS-Min", epcis_min, "EPCIS", True),
        ("GS1-EPCIS-Max", epcis_max, "EPCIS", False),
        ("GS1-CBV-Min", cbv_min, "CBV", True),
        ("GS1-CBV-Max", cbv_max, "CBV", False),
    ):
        if asked is None:
            continue
        version = _version(asked, header)
        if (version > (2, 0, 0)) if low else (version < (2, 0, 0)):
            raise EpcisVersionNotSupported(asked, header, speaks=f"{standard} 2.0.0 only")
    if epc_format is not None and epc_format.strip() not in EPC_FORMATS:
        raise EpcisVersionNotSupported(
            epc_format, "GS1-EPC-Format", EPC_FORMATS, "EPC URIs (No_Preference, Always_EPC_URN)"
        )


def _version(text: str, header: str) -> tuple[int, ...]:
    parts = text.strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise InvalidInput(f"{header} is a version like 2.0.0, not {text!r}", field=header)
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


class Unblinding:
    """Grants a request's unblinded answer: refused (403) but to the roles that may read unblinded data,
    and recorded in the chain (an event of the reader's account, naming what and the request) before
    the answer is made."""

    def __init__(self, user: User, ledger: Ledger, request: Request) -> None:
        self.user, self.ledger, self.request = user, ledger, request

    def __call__(self, unblinded: bool, what: str) -> bool:
        if unblinded:
            require_role(self.user, "see unblinded answers", permissions.UNBLINDED)
            self.ledger.handle(self._read(what), self.user.actor)
        return unblinded

    async def granted(self, unblinded: bool, what: str) -> bool:
        """The same, for a route on the event loop: the recording write runs in the thread pool."""
        if unblinded:
            require_role(self.user, "see unblinded answers", permissions.UNBLINDED)
            await run_in_threadpool(self.ledger.handle, self._read(what), self.user.actor)
        return unblinded

    def _read(self, what: str) -> RecordUnblindedRead:
        url = self.request.url
        asked = f"{self.request.method} {url.path}" + (f"?{url.query}" if url.query else "")
        return RecordUnblindedRead(what=what[:200], request=asked[:2000])


async def get_unblinding(user: UserDep, request: Request) -> Unblinding:
    return Unblinding(user, request.app.state.ledger, request)


UnblindingDep = Annotated[Unblinding, Depends(get_unblinding)]


async def own_site(site_id: UUID, user: UserDep) -> UUID:
    """The path's site, if the user may act there (a site user: one of their sites)."""
    require_site(user, site_id)
    return site_id


OwnSite = Annotated[UUID, Depends(own_site)]


async def own_location(location_id: UUID, user: UserDep) -> UUID:
    """The path's location, if the user may act there (a site user: one of their sites)."""
    require_site(user, location_id)
    return location_id


OwnLocation = Annotated[UUID, Depends(own_location)]


async def get_once(
    request: Request,
    session: SessionDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="Send the same key with a retry: the first answer is returned, nothing is "
            "recorded twice. Reusing a key for another request is refused (409).",
        ),
    ] = None,
) -> Once:
    store: IdempotencyStore = request.app.state.idempotency
    digest = request_hash(request.method, request.url.path, await request.body())
    return Once(store, session.user.principal, idempotency_key, digest)


OnceDep = Annotated[Once, Depends(get_once)]


async def get_writer(
    request: Request, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Writer:
    """Runs the route's command for the request's user (api/commands.py)."""
    return Writer(ledger, user.actor, signer, once, request.scope["route"])


Write = Annotated[Writer, Depends(get_writer)]
