"""Value objects of the domain: quantities with units, actors and roles, electronic signatures, time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from uuid import UUID

from ledger.errors import InvalidInput, SignatureRequired, UnitMismatch

# Mass units convert to milligrams; count units stand alone and never convert to mass.
_MASS_IN_MG = {"mg": Decimal(1), "g": Decimal(1000), "kg": Decimal(1_000_000)}
_COUNT_UNITS = {"unit"}
UNITS = tuple(_MASS_IN_MG) + tuple(sorted(_COUNT_UNITS))

# An upper bound that catches typos (a 10-tonne API lot is not a clinical supply).
_MAX_MG = Decimal(10_000_000_000)
_MAX_UNITS = Decimal(100_000_000)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A non-negative Decimal amount with an explicit unit; mass units convert, counts do not."""

    amount: Decimal
    unit: str

    @classmethod
    def of(cls, amount: Any, unit: str, field: str = "quantity") -> Quantity:
        if unit not in UNITS:
            raise InvalidInput(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}", field=field)
        if isinstance(amount, float):
            amount = repr(amount)
        try:
            value = Decimal(amount)
        except (InvalidOperation, TypeError, ValueError):
            raise InvalidInput(f"{amount!r} is not a number", field=field) from None
        if not value.is_finite() or value < 0:
            raise InvalidInput(f"{field} must be a finite, non-negative number", field=field)
        q = cls(value, unit)
        limit = _MAX_UNITS if unit in _COUNT_UNITS else _MAX_MG
        if q.base > limit:
            raise InvalidInput(f"{field} {q} is implausibly large", field=field)
        if unit in _COUNT_UNITS and value != value.to_integral_value():
            raise InvalidInput(f"{field} in units must be a whole number", field=field)
        return q

    @property
    def is_mass(self) -> bool:
        return self.unit in _MASS_IN_MG

    @property
    def base(self) -> Decimal:
        """The amount in milligrams for mass, in units for counts."""
        return self.amount * _MASS_IN_MG[self.unit] if self.is_mass else self.amount

    def to(self, unit: str) -> Quantity:
        if unit == self.unit:
            return self
        if not (self.is_mass and unit in _MASS_IN_MG):
            raise UnitMismatch(f"cannot convert {self.unit} to {unit}", from_unit=self.unit, to_unit=unit)
        return Quantity(_plain_decimal(self.base / _MASS_IN_MG[unit]), unit)

    def same_kind(self, other: Quantity) -> bool:
        return self.is_mass == other.is_mass and (self.is_mass or self.unit == other.unit)

    def as_dict(self) -> dict[str, str]:
        return {"amount": str(self.amount), "unit": self.unit}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> Quantity:
        return cls(Decimal(d["amount"]), d["unit"])

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """In a command: a Quantity, or `{"amount": ..., "unit": ...}` checked by `Quantity.of`."""
        from pydantic_core import core_schema

        fields = core_schema.typed_dict_schema(
            {
                "amount": core_schema.typed_dict_field(
                    core_schema.decimal_schema(allow_inf_nan=False, gt=Decimal(0), max_digits=30)
                ),
                "unit": core_schema.typed_dict_field(core_schema.literal_schema(list(UNITS))),
            },
            extra_behavior="forbid",
        )
        from_dict = core_schema.no_info_after_validator_function(
            lambda d: cls.of(d["amount"], d["unit"]), fields
        )

        def kept_or_parsed(value: Any, parse: Any) -> Any:
            return value if isinstance(value, cls) else parse(value)

        return core_schema.no_info_wrap_validator_function(
            kept_or_parsed,
            from_dict,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda q: q.as_dict()),
        )


def _plain_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (2000, not 2E+3)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


class Role(StrEnum):
    MANUFACTURING = "manufacturing"
    QA = "qa"
    QP = "qp"
    DEPOT = "depot"
    SITE = "site"
    RECALL_INVESTIGATOR = "recall_investigator"
    INSPECTOR = "inspector"
    ADMIN = "admin"


PLACE_BOUND = frozenset({Role.MANUFACTURING, Role.DEPOT, Role.SITE})
"""Roles whose people work at places (manufacturing sites, depots, clinical sites) and act only there;
the others (QA, QP, recall investigator, inspector, admin) are global by nature."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does a step: the authenticated principal, their role and printed name; and, for a person
    of a place-bound role (`PLACE_BOUND`), the places they are bound to: the ledger refuses their acts
    anywhere else. `places` is None for global roles, and for trusted in-process callers (the demo);
    it is never recorded (the audit stamp is `as_dict`)."""

    principal: str
    role: Role
    name: str
    places: frozenset[UUID] | None = None

    def as_dict(self) -> dict[str, str]:
        return {"principal": self.principal, "role": str(self.role), "name": self.name}


class Meaning(StrEnum):
    """Meanings of an electronic signature (21 CFR 11.50(a)(3))."""

    RELEASED = "released"
    REJECTED = "rejected"
    CERTIFIED = "certified"
    SPONSOR_RELEASED = "sponsor_released"
    APPROVED = "approved"
    REVIEWED = "reviewed"
    AUTHORISED_DESTRUCTION = "authorised_destruction"
    RELABELLED = "relabelled"
    PERFORMED = "performed"
    VERIFIED = "verified"


@dataclass(frozen=True, slots=True)
class Signature:
    """An electronic signature: printed name, time and meaning, bound to the record it is stored in."""

    signer: str
    printed_name: str
    role: Role
    meaning: Meaning
    signed_at: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "signer": self.signer,
            "printed_name": self.printed_name,
            "role": str(self.role),
            "meaning": str(self.meaning),
            "signed_at": iso(self.signed_at),
        }


def sign(actor: Actor, meaning: Meaning, at: datetime | None = None) -> Signature:
    """The actor's signature with the given meaning; re-authentication happens before this call."""
    return Signature(actor.principal, actor.name, actor.role, meaning, at or now())


def require_signature(sig: Signature | None, meaning: Meaning, action: str) -> Signature:
    if sig is None or sig.meaning != meaning:
        raise SignatureRequired(action, str(meaning))
    return sig


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime, field: str = "time") -> datetime:
    """A timezone-aware UTC datetime; naive times are refused rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field} must carry a timezone", field=field)
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def iso_date(value: date) -> str:
    return value.isoformat()
