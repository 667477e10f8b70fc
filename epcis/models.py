"""Lotline's own pydantic models of EPCIS 2.0 JSON/JSON-LD documents and events, strict where it counts.

- times are timezone-aware, and every event carries `eventTimeZoneOffset`;
- `bizStep`, `disposition`, business transaction, source/destination and error-reason types are CBV
  2.0 words (bare, `https://ref.gs1.org/cbv/...` or `urn:epcglobal:cbv:...`), or absolute URIs outside
  the CBV namespaces (extensions); an unknown bare word such as `transforming` is refused;
- identifiers that claim to be GS1 keys (EPC URIs, GS1 Digital Link URIs) must be well formed with
  valid check digits; other absolute URIs are allowed, as EPCIS allows;
- extension fields are kept, but their names must be compact or absolute URIs (`lotline:subject`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.functional_validators import AfterValidator

from epcis import eventhash as voc
from epcis import ids
from ledger.errors import InvalidIdentifier

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_OFFSET = re.compile(r"^[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)$")
_UOM = re.compile(r"^[A-Z0-9]{2,3}$")
_CBV_NAMESPACES = ("urn:epcglobal:cbv:", "https://ref.gs1.org/cbv/", "http://ref.gs1.org/cbv/")


def _uri(value: str) -> str:
    if not isinstance(value, str) or not _URI.match(value):
        raise ValueError(f"{value!r} is not an absolute URI")
    return value


def _epc(value: str) -> str:
    _uri(value)
    try:
        ids.parse(value)
    except InvalidIdentifier as e:
        raise ValueError(e.message) from None
    return value


def _vocabulary(words: tuple[str, ...], web_prefix: str, urn_prefix: str, what: str) -> Any:
    """A validator: a CBV word (bare, Web URI or URN) or an absolute URI outside the CBV namespaces."""

    def check(value: str) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{what} must be a string")
        if value in words:
            return value
        for prefix in (web_prefix, web_prefix.replace("https:", "http:"), urn_prefix):
            if value.startswith(prefix):
                if value[len(prefix) :] in words:
                    return value
                raise ValueError(f"{value!r} is not a CBV 2.0 {what}")
        if value.startswith(_CBV_NAMESPACES) or not _URI.match(value):
            raise ValueError(f"{value!r} is neither a CBV 2.0 {what} nor an extension URI")
        return value

    return AfterValidator(check)


URI = Annotated[str, AfterValidator(_uri)]
EPC = Annotated[str, AfterValidator(_epc)]
BizStep = Annotated[
    str, _vocabulary(voc.BIZ_STEPS, f"{voc.CBV}BizStep-", "urn:epcglobal:cbv:bizstep:", "bizStep")
]
Disposition = Annotated[
    str, _vocabulary(voc.DISPOSITIONS, f"{voc.CBV}Disp-", "urn:epcglobal:cbv:disp:", "disposition")
]
BizTransactionType = Annotated[
    str,
    _vocabulary(
        voc.BIZ_TRANSACTION_TYPES, f"{voc.CBV}BTT-", "urn:epcglobal:cbv:btt:", "business transaction type"
    ),
]
SourceDestType = Annotated[
    str,
    _vocabulary(voc.SOURCE_DEST_TYPES, f"{voc.CBV}SDT-", "urn:epcglobal:cbv:sdt:", "source/destination type"),
]
ErrorReason = Annotated[
    str, _vocabulary(voc.ERROR_REASONS, f"{voc.CBV}ER-", "urn:epcglobal:cbv:er:", "error reason")
]


def cbv_word(value: str | None) -> str | None:
    """The bare CBV word of a bizStep/disposition/type given in any of its forms; URIs stay as they are."""
    if value is None:
        return None
    for prefix in ("BizStep-", "Disp-", "BTT-", "SDT-", "ER-"):
        for base in ("https://ref.gs1.org/cbv/", "http://ref.gs1.org/cbv/"):
            if value.startswith(base + prefix):
                return value[len(base + prefix) :]
    m = re.match(r"^urn:epcglobal:cbv:(bizstep|disp|btt|sdt|er):(.+)$", value)
    return m.group(2) if m else value


class _Extensible(BaseModel):
    """Standard fields typed; any other field must be named by a compact or absolute URI."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    @model_validator(mode="after")
    def _extension_names(self) -> _Extensible:
        for name in self.model_extra or {}:
            if not _URI.match(name):
                raise ValueError(f"unknown field {name!r} (extension fields are named by a URI or CURIE)")
        return self

    def extension(self, name: str, default: Any = None) -> Any:
        """The extension field `name` (e.g. `lotline:subject`), or `default`."""
        return (self.model_extra or {}).get(name, default)


class QuantityElement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epcClass: EPC
    quantity: Decimal | None = None
    uom: str | None = None

    @field_validator("uom")
    @classmethod
    def _uom(cls, v: str | None) -> str | None:
        if v is not None and not _UOM.match(v):
            raise ValueError(f"uom {v!r} is not a UN/CEFACT Rec 20 code")
        return v


class BizTransaction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: BizTransactionType | None = None
    bizTransaction: URI


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SourceDestType
    source: URI


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SourceDestType
    destination: URI


class Place(_Extensible):
    """A readPoint or bizLocation."""

    id: EPC


class SensorMetadata(_Extensible):
    time: AwareDatetime | None = None
    startTime: AwareDatetime | None = None
    endTime: AwareDatetime | None = None
    deviceID: URI | None = None
    deviceMetadata: URI | None = None
    rawData: URI | None = None
    dataProcessingMethod: URI | None = None
    bizRules: URI | None = None


class SensorReport(_Extensible):
    type: str
    exception: str | None = None
    deviceID: URI | None = None
    deviceMetadata: URI | None = None
    rawData: URI | None = None
    dataProcessingMethod: URI | None = None
    time: AwareDatetime | None = None
    microorganism: URI | None = None
    chemicalSubstance: URI | None = None
    coordinateReferenceSystem: URI | None = None
    value: Decimal | None = None
    component: str | None = None
    stringValue: str | None = None
    booleanValue: bool | None = None
    hexBinaryValue: str | None = None
    uriValue: URI | None = None
    minValue: Decimal | None = None
    maxValue: Decimal | None = None
    meanValue: Decimal | None = None
    sDev: Decimal | None = None
    percRank: Decimal | None = None
    percValue: Decimal | None = None
    uom: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in voc.MEASUREMENT_TYPES and not _URI.match(v):
            raise ValueError(f"sensor report type {v!r} is neither a GS1 measurement type nor a URI")
        return v


class SensorElement(_Extensible):
    sensorMetadata: SensorMetadata | None = None
    sensorReport: list[SensorReport] = Field(min_length=1)


class ErrorDeclaration(_Extensible):
    declarationTime: AwareDatetime
    reason: ErrorReason | None = None
    correctiveEventIDs: list[URI] = Field(default_factory=list)


class PersistentDisposition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    set: list[Disposition] | None = None
    unset: list[Disposition] | None = None


class _Event(_Extensible):
    context: Any = Field(default=None, alias="@context")
    eventTime: AwareDatetime
    eventTimeZoneOffset: str
    recordTime: AwareDatetime | None = None
    eventID: URI | None = None
    certificationInfo: URI | list[URI] | None = None
    errorDeclaration: ErrorDeclaration | None = None
    bizStep: BizStep | None = None
    disposition: Disposition | None = None
    readPoint: Place | None = None
    bizLocation: Place | None = None
    bizTransactionList: list[BizTransaction] | None = None
    sourceList: list[Source] | None = None
    destinationList: list[Destination] | None = None
    sensorElementList: list[SensorElement] | None = None

    @field_validator("eventTimeZoneOffset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if not _OFFSET.match(v):
            raise ValueError(f"eventTimeZoneOffset {v!r} is not +hh:mm or -hh:mm")
        return v

    @property
    def biz_step(self) -> str | None:
        """The bizStep as a bare CBV word, or its extension URI."""
        return cbv_word(self.bizStep)

    @property
    def disposition_word(self) -> str | None:
        return cbv_word(self.disposition)


Action = Literal["ADD", "OBSERVE", "DELETE"]


class ObjectEvent(_Event):
    type: Literal["ObjectEvent"]
    action: Action
    epcList: list[EPC] = Field(default_factory=list)
    quantityList: list[QuantityElement] = Field(default_factory=list)
    persistentDisposition: PersistentDisposition | None = None
    ilmd: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _ilmd_only_when_added(self) -> ObjectEvent:
        if self.ilmd is not None and self.action != "ADD":
            raise ValueError("ilmd is only allowed with action ADD")
        return self


class AggregationEvent(_Event):
    type: Literal["AggregationEvent"]
    action: Action
    parentID: EPC | None = None
    childEPCs: list[EPC] = Field(default_factory=list)
    childQuantityList: list[QuantityElement] = Field(default_factory=list)

    @model_validator(mode="after")
    def _parent(self) -> AggregationEvent:
        if self.action in ("ADD", "DELETE") and self.parentID is None:
            raise ValueError(f"an AggregationEvent with action {self.action} needs a parentID")
        return self


class AssociationEvent(_Event):
    type: Literal["AssociationEvent"]
    action: Action
    parentID: EPC
    childEPCs: list[EPC] = Field(default_factory=list)
    childQuantityList: list[QuantityElement] = Field(default_factory=list)


class TransactionEvent(_Event):
    type: Literal["TransactionEvent"]
    action: Action
    parentID: EPC | None = None
    epcList: list[EPC] = Field(default_factory=list)
    quantityList: list[QuantityElement] = Field(default_factory=list)


class TransformationEvent(_Event):
    type: Literal["TransformationEvent"]
    inputEPCList: list[EPC] = Field(default_factory=list)
    inputQuantityList: list[QuantityElement] = Field(default_factory=list)
    outputEPCList: list[EPC] = Field(default_factory=list)
    outputQuantityList: list[QuantityElement] = Field(default_factory=list)
    transformationID: URI | None = None
    persistentDisposition: PersistentDisposition | None = None
    ilmd: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _inputs_and_outputs(self) -> TransformationEvent:
        has_in = bool(self.inputEPCList or self.inputQuantityList)
        has_out = bool(self.outputEPCList or self.outputQuantityList)
        if not (has_in and has_out) and not ((has_in or has_out) and self.transformationID):
            raise ValueError("a TransformationEvent needs inputs and outputs (or a transformationID)")
        return self


Event = Annotated[
    ObjectEvent | AggregationEvent | AssociationEvent | TransactionEvent | TransformationEvent,
    Field(discriminator="type"),
]


class VocabularyElement(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: URI
    attributes: list[dict[str, Any]] = Field(default_factory=list)
    children: list[URI] = Field(default_factory=list)

    def attribute(self, name: str, default: Any = None) -> Any:
        """The value of the attribute with id `name`."""
        for a in self.attributes:
            if a.get("id") == name:
                return a.get("attribute")
        return default


class Vocabulary(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    type: URI
    vocabularyElementList: list[VocabularyElement] = Field(default_factory=list)


class MasterData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    vocabularyList: list[Vocabulary] = Field(default_factory=list)


class Header(_Extensible):
    epcisMasterData: MasterData | None = None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    eventList: list[Event]


class EPCISDocument(_Extensible):
    context: Any = Field(alias="@context")
    type: Literal["EPCISDocument"]
    schemaVersion: str
    creationDate: AwareDatetime
    id: URI | None = None
    instanceIdentifier: str | None = None
    sender: str | None = None
    receiver: str | None = None
    epcisHeader: Header | None = None
    epcisBody: Body

    @field_validator("schemaVersion")
    @classmethod
    def _version(cls, v: str) -> str:
        if not re.match(r"^2(\.\d+)*$", v):
            raise ValueError(f"schemaVersion {v!r}: Lotline reads EPCIS 2.x documents")
        return v


def validation_problems(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as {event index (or None), path, JSON pointer, reason}, for per-event reports."""
    found = []
    for e in error.errors():
        loc = list(e["loc"])
        index = None
        at: list[Any] = []
        if loc[:2] == ["epcisBody", "eventList"] and len(loc) > 2 and isinstance(loc[2], int):
            index = loc[2]
            at, loc = loc[:3], loc[3:]
            if loc and loc[0] in (
                "ObjectEvent",
                "AggregationEvent",
                "AssociationEvent",
                "TransactionEvent",
                "TransformationEvent",
            ):
                loc = loc[1:]
        # A pydantic location ends in the validator's name for a model-level check: not a JSON member.
        members = [p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "[")))]
        pointer = "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in [*at, *members])
        found.append({"index": index, "path": ".".join(str(p) for p in loc), "pointer": pointer or "/",
                      "reason": e["msg"]})
    return found
