"""Shapes shared by many routes: errors, recorded events, pages, freshness, quantities, signatures."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from ledger.values import Meaning

T = TypeVar("T")


class Strict(BaseModel):
    """A request body: unknown fields are refused (a typo must not silently drop a value)."""

    model_config = ConfigDict(extra="forbid")


Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=40)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Gtin = Annotated[str, StringConstraints(pattern=r"^[0-9]{14}$")]
Gln = Annotated[str, StringConstraints(pattern=r"^[0-9]{13}$")]
Sscc = Annotated[str, StringConstraints(pattern=r"^[0-9]{18}$")]
Celsius = Annotated[Decimal, Field(ge=-273, le=200, allow_inf_nan=False, max_digits=12)]
When = Annotated[
    AwareDatetime | None,
    Field(description="When the step happened (ISO 8601 with a timezone); default: now. Not in the future."),
]


class ErrorBody(BaseModel):
    """Every error: a stable `code`, a sentence, and details naming the field, the kits or the rule."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class QuantityIn(Strict):
    """An amount with its unit: mass in mg, g or kg, or a count in `unit`."""

    amount: Annotated[Decimal, Field(gt=0, allow_inf_nan=False, max_digits=30)]
    unit: Literal["mg", "g", "kg", "unit"]


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


class RecordedEvent(BaseModel):
    """One event a command recorded: its chain position `seq`, stream, version and chain hash (hex)."""

    seq: int
    stream: UUID
    version: int
    chain_hash: str


class Recorded(BaseModel):
    """What a command recorded, in chain order."""

    events: list[RecordedEvent]


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
