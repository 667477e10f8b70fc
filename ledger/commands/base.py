"""What every command shares: the frozen base class, the field types that check a value's shape, and
the one result every handler returns.

A command is a small frozen object named in the imperative (`ReleaseLot`); its fields are written
once, here in `ledger.commands`. Shape (types, lengths, characters a store cannot hold) is checked
when the command is built; state (released? enough? held here?) by the aggregates when it is handled.
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic._internal._model_construction import ModelMetaclass

from ledger.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def one_line(value: str) -> str:
    """A value on one line: no control characters, no lone surrogates (a store cannot hold them)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


def lines(value: str) -> str:
    """Text that may span lines: tab and newline allowed, no other control character or surrogate."""
    if _CONTROL_MULTILINE.search(value):
        raise ValueError(
            "must not contain control characters (other than tab and newline) or lone surrogates"
        )
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(one_line)]
"""A name or reference on one line."""
LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(lines)]
"""A reason, description or justification; may span lines."""
Code = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(one_line)]
"""A business number (lot, batch, kit, shipment, recall, certificate); GS1 rules are the ledger's."""
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(one_line)]
"""A GS1 key (GTIN, GLN, SSCC) or country code, checked (check digit, ISO code) by the ledger."""
Celsius = Annotated[Decimal, Field(ge=-273, le=200, allow_inf_nan=False, max_digits=12)]
When = Annotated[
    AwareDatetime | None,
    Field(description="When the step happened (ISO 8601 with a timezone); default: now. Not in the future."),
]
LateReason = Annotated[
    str | None,
    StringConstraints(min_length=1, max_length=2000),
    AfterValidator(lambda v: v if v is None else lines(v)),
    Field(
        description="Why the step is recorded only now: needed when occurred_at is older than the "
        "late-entry window (LOTLINE_LATE_ENTRY_HOURS, 24 h by default); the step is then flagged as a "
        "late entry."
    ),
]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(one_line)]
"""A pseudonymous subject number."""
KitIds = Annotated[tuple[UUID, ...], Field(min_length=1, max_length=20_000)]
"""The kits one step names: at least one, each once (the ledger checks), at most 20,000."""


class _Built(ModelMetaclass):
    """Building a command from Python raises the ledger's `InvalidInput` naming the bad field; a part
    may also be given its leading fields in order. Validating a command from data (an HTTP body) stays
    pydantic's own validation, so a web framework reports it as a request error."""

    def __call__(cls, *args: Any, **data: Any) -> Any:
        if args:
            names = list(cls.model_fields)  # type: ignore[attr-defined]
            if len(args) > len(names):
                raise InvalidInput(f"{cls.__name__} takes at most {len(names)} values", field=None)
            data = {**dict(zip(names, args, strict=False)), **data}
        try:
            return super().__call__(**data)
        except ValidationError as e:
            raise _invalid(e) from None


class Command(BaseModel, metaclass=_Built):
    """A write to the ledger. Built from keyword arguments; a malformed field raises `InvalidInput`
    naming it (the HTTP layer validates the same model and answers 422)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


def _invalid(e: ValidationError) -> InvalidInput:
    """The first problem of a malformed command, as the ledger's own error naming the field."""
    first = e.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or None
    expected = (first.get("ctx") or {}).get("expected")
    if first.get("type") in ("enum", "literal_error") and expected:
        return InvalidInput(f"{field} is one of {expected}, not {first.get('input')!r}", field=field)
    return InvalidInput(f"{field}: {first.get('msg', 'invalid')}", field=field)


class Part(Command):
    """A value inside a command (an arm, an input lot, a kit report): frozen, validated like one.
    A part with `_pair` field names may also be given as that pair, e.g. `(lot_id, quantity)`."""

    _pair: ClassVar[tuple[str, str] | None] = None

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        if cls._pair is not None and isinstance(data, tuple | list) and len(data) == 2:
            return dict(zip(cls._pair, data, strict=True))
        if is_dataclass(data) and not isinstance(data, type):
            return {f.name: getattr(data, f.name) for f in fields(data)}
        return data


class RecordedEvent(BaseModel):
    """One event a command recorded: its chain position `seq`, stream, version and chain hash (hex)."""

    model_config = ConfigDict(frozen=True)

    seq: int
    stream: UUID
    version: int
    chain_hash: str


class Recorded(BaseModel):
    """What one command recorded, in chain order; the ids of the aggregates it created (`created`,
    main one first) and facts it found on the way (`facts`: e.g. `excursion` of a receipt). `position`
    is the chain position of its last event: pass it to a read to wait until the read models have it."""

    model_config = ConfigDict(frozen=True)

    events: tuple[RecordedEvent, ...]
    created: tuple[UUID, ...] = ()
    facts: dict[str, Any] = {}

    @property
    def position(self) -> int:
        return self.events[-1].seq if self.events else 0

    @property
    def id(self) -> UUID:
        """The id of the aggregate the command created."""
        if not self.created:
            raise AttributeError("this command created no aggregate")
        return self.created[0]
