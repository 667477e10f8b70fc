"""Shapes shared by many routes: errors, signatures, what a command recorded, pages, freshness."""

from __future__ import annotations

from typing import Annotated, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ledger import commands
from ledger.commands import RecordedEvent
from ledger.values import Meaning

T = TypeVar("T")


class Strict(BaseModel):
    """A request body: unknown fields are refused (a typo must not silently drop a value)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error: a stable `code`, a sentence, and details naming the field, the kits or the rule."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class SignatureIn(Strict):
    """An electronic signature: its meaning, and the signer's password (or a fresh API token of
    theirs, not the one authenticating the request) to re-authenticate (21 CFR 11.200)."""

    meaning: Meaning
    password: Annotated[str | None, StringConstraints(max_length=200)] = None
    token: Annotated[str | None, StringConstraints(max_length=200)] = None


class CheckerIn(Strict):
    """The second person who checked a step, re-authenticating with their own password or token."""

    principal: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str | None, StringConstraints(max_length=200)] = None
    token: Annotated[str | None, StringConstraints(max_length=200)] = None


class SiteSignatureIn(Strict):
    """The site's own Ed25519 signature over the confirmation (docs/api.md, "Site-signed receipts");
    the ledger verifies it as a `SiteSignature`."""

    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    nonce: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,128}$")]
    signature: Annotated[
        str, StringConstraints(min_length=86, max_length=88), Field(description="base64 of 64 bytes")
    ]


class Recorded(BaseModel):
    """What a command recorded, in chain order: each event's chain position `seq`, stream, version and
    chain hash (hex)."""

    events: tuple[RecordedEvent, ...]

    created: ClassVar[tuple[str, ...]] = ()
    """The answer's names of the ids the command created (`ledger.commands.Recorded.created`), in order."""

    @classmethod
    def of(cls, recorded: commands.Recorded) -> Self:
        """The answer to a command: its events, the ids it created named by `created`, and the facts
        it found (`ledger.commands.Recorded.facts`) that this answer has fields for."""
        ids = dict(zip(cls.created, recorded.created, strict=False))
        return cls.model_validate({**recorded.facts, **ids, "events": recorded.events})


class Freshness(BaseModel):
    """How fresh a query's answer is: the log position its read models had applied (`as_of`), the
    newest position in the ledger when it answered (`head`), and the difference (`lag`)."""

    as_of: int
    head: int
    lag: int


class Page(BaseModel, Generic[T]):
    """A slice of a long list: `items` from `offset`, at most `limit`, of `total`."""

    total: int
    limit: int
    offset: int
    items: list[T]
