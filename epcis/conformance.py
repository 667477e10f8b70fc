"""What GS1's EPCIS 2.0 JSON schema and JSON-LD context forbid beyond what the models check, checked on a
captured document once the models accept it and before any of it is mapped, so that nothing a partner
sends is dropped silently: each breach is refused with the event's index, the JSON pointer of the
offending value and the rule.

- the document's `@context` must name the EPCIS 2.0 context (without it no term has a meaning);
- an extension name (an event field, an `ilmd` key, an error declaration field) is an absolute URI or a
  compact one whose prefix a `@context` declares (or the EPCIS context itself); `ilmd` keys are
  always named so (the schema's `propertyNames` is a URI);
- CBV values are bare words or `https://ref.gs1.org/cbv/...` URIs: the `urn:epcglobal:cbv:` form is
  EPCIS 1.x XML's, which the schema forbids in JSON;
- an `eventTime` written with an offset other than UTC must agree with `eventTimeZoneOffset`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EPCIS_CONTEXT = re.compile(r"^https://ref\.gs1\.org/standards/epcis/2\.\d+\.\d+/epcis-context\.jsonld$")
CONTEXT_PREFIXES = frozenset({"epcis", "cbv", "cbvmda", "gs1", "rdfs", "owl", "xsd", "dcterms"})
"""The prefixes the EPCIS 2.0 JSON-LD context declares itself."""

_ABSOLUTE = re.compile(r"^(https?|urn):", re.IGNORECASE)
_COMPACT = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*):(?!//)\S+$")
_FORBIDDEN_CBV = re.compile(r"^(urn:epcglobal:cbv:|https?://ns\.gs1\.org/cbv/)")
STANDARD_FIELDS = frozenset({
    "@context", "type", "eventID", "eventTime", "eventTimeZoneOffset", "recordTime", "certificationInfo",
    "errorDeclaration", "action", "bizStep", "disposition", "persistentDisposition", "readPoint",
    "bizLocation", "bizTransactionList", "sourceList", "destinationList", "sensorElementList", "epcList",
    "quantityList", "parentID", "childEPCs", "childQuantityList", "inputEPCList", "inputQuantityList",
    "outputEPCList", "outputQuantityList", "transformationID", "ilmd",
})
"""The fields EPCIS 2.0 defines for events; every other field of an event is an extension."""
_DECLARATION_FIELDS = frozenset({"declarationTime", "reason", "correctiveEventIDs"})


@dataclass(frozen=True, slots=True)
class Breach:
    """One thing the standard forbids: where (event index, None for the document; JSON pointer) and why."""

    index: int | None
    pointer: str
    rule: str


def breaches(raw: Any) -> list[Breach]:
    """Every breach of the rules above in the parsed document `raw` (none when it is not a document:
    the models say what is wrong with it then)."""
    if not isinstance(raw, Mapping):
        return []
    found: list[Breach] = []
    context = raw.get("@context")
    if not any(isinstance(c, str) and EPCIS_CONTEXT.match(c) for c in _listed(context)):
        found.append(Breach(None, "/@context", "the @context does not name the EPCIS 2.0 context "
                            "(https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld)"))
    declared = CONTEXT_PREFIXES | _prefixes(context)
    body = raw.get("epcisBody")
    events = body.get("eventList") if isinstance(body, Mapping) else None
    for i, event in enumerate(events if isinstance(events, list) else []):
        if isinstance(event, Mapping):
            found.extend(_event(i, event, declared | _prefixes(event.get("@context"))))
    return found


def _event(i: int, event: Mapping[str, Any], declared: frozenset[str]) -> Iterator[Breach]:
    at = f"/epcisBody/eventList/{i}"
    for name in event:
        if name not in STANDARD_FIELDS:
            yield from _named(i, f"{at}/{pointer_token(name)}", name, declared, "an extension field")
    ilmd = event.get("ilmd")
    if isinstance(ilmd, Mapping):
        for name in ilmd:
            yield from _named(i, f"{at}/ilmd/{pointer_token(name)}", name, declared, "an ilmd key")
    declaration = event.get("errorDeclaration")
    if isinstance(declaration, Mapping):
        for name in declaration:
            if name not in _DECLARATION_FIELDS:
                where = f"{at}/errorDeclaration/{pointer_token(name)}"
                yield from _named(i, where, name, declared, "an extension field")
    for pointer, value in _cbv_values(at, event):
        if isinstance(value, str) and _FORBIDDEN_CBV.match(value):
            yield Breach(i, pointer, f"{value!r}: CBV values in EPCIS 2.0 JSON are bare words or "
                         "https://ref.gs1.org/cbv/ URIs, not the urn:epcglobal:cbv: form of EPCIS 1.x XML")
    yield from _offset(i, at, event)


def _named(i: int, pointer: str, name: str, declared: frozenset[str], what: str) -> Iterator[Breach]:
    if _ABSOLUTE.match(name):
        return
    compact = _COMPACT.match(name)
    if compact is None:
        yield Breach(i, pointer, f"{what} {name!r} is not named by a URI or a prefixed name (prefix:name), "
                     "so it has no meaning outside this document")
    elif compact.group(1) not in declared:
        yield Breach(i, pointer, f"{what} {name!r} uses the prefix {compact.group(1)!r}, which no @context "
                     "declares")


def _cbv_values(at: str, event: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for name in ("bizStep", "disposition"):
        if name in event:
            yield f"{at}/{name}", event[name]
    persistent = event.get("persistentDisposition")
    if isinstance(persistent, Mapping):
        for part in ("set", "unset"):
            for n, value in enumerate(_listed(persistent.get(part))):
                yield f"{at}/persistentDisposition/{part}/{n}", value
    for name in ("bizTransactionList", "sourceList", "destinationList"):
        for n, item in enumerate(_listed(event.get(name))):
            if isinstance(item, Mapping) and "type" in item:
                yield f"{at}/{name}/{n}/type", item["type"]
    declaration = event.get("errorDeclaration")
    if isinstance(declaration, Mapping) and "reason" in declaration:
        yield f"{at}/errorDeclaration/reason", declaration["reason"]


def _offset(i: int, at: str, event: Mapping[str, Any]) -> Iterator[Breach]:
    written, offset = event.get("eventTime"), event.get("eventTimeZoneOffset")
    if not isinstance(written, str) or not isinstance(offset, str):
        return
    try:
        when = datetime.fromisoformat(written.replace("Z", "+00:00"))
    except ValueError:
        return  # the models name a malformed time
    own = when.utcoffset()
    if own is None or not own:
        return  # UTC (or no offset, which the models refuse): the offset says where it happened
    sign = "-" if own.total_seconds() < 0 else "+"
    minutes = abs(int(own.total_seconds())) // 60
    stated = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    if stated != offset:
        yield Breach(i, f"{at}/eventTimeZoneOffset", f"eventTimeZoneOffset {offset} contradicts the "
                     f"offset {stated} the eventTime {written} is written with")


def _prefixes(context: Any) -> frozenset[str]:
    """The prefixes `context` declares: the keys of its objects that map to an IRI."""
    return frozenset(
        key
        for part in _listed(context)
        if isinstance(part, Mapping)
        for key, value in part.items()
        if not key.startswith("@") and _an_iri(value)
    )


def _an_iri(value: Any) -> bool:
    """Whether a context entry maps its key to an IRI (a string, or an object with `@id`)."""
    return isinstance(value, str) or (isinstance(value, Mapping) and "@id" in value)


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def pointer_token(name: str) -> str:
    """A JSON pointer reference token (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


__all__ = ["Breach", "breaches"]
