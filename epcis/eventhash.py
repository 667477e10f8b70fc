"""GS1 EPCIS event hash IDs (`ni:///sha-256;<hex>?ver=CBV2.0`) of EPCIS 2.0 JSON-LD events.

The hash is SHA-256 of a canonical pre-hash string: `eventType=<type>`, then the event's standard
fields in GS1's fixed order (`eventTime`, `eventTimeZoneOffset`, `certificationInfo`, `parentID`,
`epcList`, ..., `sensorElementList`), each as `name=value` with times in UTC at millisecond
precision, numbers without redundant zeros, CBV words and URNs as their Web URIs and GS1 keys as
canonical GS1 Digital Link URIs (`epcis.dl`); repeated values sorted; then every remaining
(extension) field, namespaces expanded, sorted. `eventID`, `recordTime`, `errorDeclaration` and
`type` are not hashed, so an error declaration keeps the ID of the event it declares wrong.

The reference is GS1's `epcis-event-hash-generator` 1.9.3; this module reproduces its output,
including the corners of its JSON-to-tree conversion, because partners compare IDs it produced.
docs/epcis.md spells the algorithm out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from epcis.dl import canonical_dl

# A node of the event tree: (name, text, children). Source, destination and business transaction
# entries become bare (type node, value node) pairs, as in the reference.
Node = tuple[str, str, list[Any]]

_QUANTITY = [("epcClass", None), ("quantity", None), ("uom", None)]
_PAIR = ("type", None), ("bizTransaction", None)  # never matches a pair: the pairs fall to the tail
PROPERTY_ORDER: list[tuple[Any, Any]] = [
    ("eventTime", None),
    ("eventTimeZoneOffset", None),
    ("certificationInfo", None),
    ("parentID", None),
    ("epcList", [("epc", None)]),
    ("inputEPCList", [("epc", None)]),
    ("childEPCs", [("epc", None)]),
    ("quantityList", [("quantityElement", _QUANTITY)]),
    ("childQuantityList", [("quantityElement", _QUANTITY)]),
    ("inputQuantityList", [("quantityElement", _QUANTITY)]),
    ("outputEPCList", [("epc", None)]),
    ("outputQuantityList", [("quantityElement", _QUANTITY)]),
    ("action", None),
    ("transformationID", None),
    ("bizStep", None),
    ("disposition", None),
    ("persistentDisposition", [("set", None), ("unset", None)]),
    ("readPoint", [("id", None)]),
    ("bizLocation", [("id", None)]),
    ("bizTransactionList", [_PAIR]),
    ("sourceList", [(("type", None), ("source", None))]),
    ("destinationList", [(("type", None), ("destination", None))]),
    (
        "sensorElementList",
        [
            (
                "sensorElement",
                [
                    (
                        "sensorMetadata",
                        [
                            (n, None)
                            for n in (
                                "time",
                                "startTime",
                                "endTime",
                                "deviceID",
                                "deviceMetadata",
                                "rawData",
                                "dataProcessingMethod",
                                "bizRules",
                            )
                        ],
                    ),
                    (
                        "sensorReport",
                        [
                            (n, None)
                            for n in (
                                "type",
                                "exception",
                                "deviceID",
                                "deviceMetadata",
                                "rawData",
                                "dataProcessingMethod",
                                "time",
                                "microorganism",
                                "chemicalSubstance",
                                "value",
                                "component",
                                "stringValue",
                                "booleanValue",
                                "hexBinaryValue",
                                "uriValue",
                                "minValue",
                                "maxValue",
                                "meanValue",
                                "sDev",
                                "percRank",
                                "percValue",
                                "uom",
                                "coordinateReferenceSystem",
                            )
                        ],
                    ),
                ],
            )
        ],
    ),
]
"""GS1's order of the standard fields; a name with a sub-order lists its children's order."""

NOT_HASHED = ("recordTime", "eventID", "type", "errorDeclaration")

# --- CBV words: the JSON-LD context types these fields as vocabulary terms --------------------------

CBV = "https://ref.gs1.org/cbv/"
GS1_VOC = "https://gs1.org/voc/"
BIZ_STEPS = (
    "accepting",
    "arriving",
    "assembling",
    "collecting",
    "commissioning",
    "consigning",
    "creating_class_instance",
    "cycle_counting",
    "decommissioning",
    "departing",
    "destroying",
    "disassembling",
    "dispensing",
    "encoding",
    "entering_exiting",
    "holding",
    "inspecting",
    "installing",
    "killing",
    "loading",
    "other",
    "packing",
    "picking",
    "receiving",
    "removing",
    "repackaging",
    "repairing",
    "replacing",
    "reserving",
    "retail_selling",
    "sampling",
    "sensor_reporting",
    "shipping",
    "staging_outbound",
    "stock_taking",
    "stocking",
    "storing",
    "transporting",
    "unloading",
    "unpacking",
    "void_shipping",
)
DISPOSITIONS = (
    "active",
    "available",
    "completeness_verified",
    "completeness_inferred",
    "conformant",
    "container_closed",
    "container_open",
    "damaged",
    "destroyed",
    "dispensed",
    "disposed",
    "encoded",
    "expired",
    "in_progress",
    "in_transit",
    "inactive",
    "mismatch_instance",
    "mismatch_class",
    "mismatch_quantity",
    "needs_replacement",
    "no_pedigree_match",
    "non_conformant",
    "non_sellable_other",
    "partially_dispensed",
    "recalled",
    "reserved",
    "retail_sold",
    "returned",
    "sellable_accessible",
    "sellable_not_accessible",
    "stolen",
    "unavailable",
    "unknown",
)
BIZ_TRANSACTION_TYPES = (
    "bol",
    "cert",
    "desadv",
    "inv",
    "pedigree",
    "po",
    "poc",
    "prodorder",
    "recadv",
    "rma",
    "testprd",
    "testres",
    "upevt",
)
SOURCE_DEST_TYPES = ("owning_party", "possessing_party", "location")
ERROR_REASONS = ("did_not_occur", "incorrect_data")
SENSOR_ALERTS = ("ALARM_CONDITION", "ERROR_CONDITION")
COMPONENTS = (
    "x",
    "y",
    "z",
    "axial_distance",
    "azimuth",
    "height",
    "spherical_radius",
    "polar_angle",
    "elevation_angle",
    "easting",
    "northing",
    "latitude",
    "longitude",
    "altitude",
)
MEASUREMENT_TYPES = (
    "AbsoluteHumidity",
    "AbsorbedDose",
    "AbsorbedDoseRate",
    "Acceleration",
    "Radioactivity",
    "Altitude",
    "AmountOfSubstance",
    "AmountOfSubstancePerUnitVolume",
    "Angle",
    "AngularAcceleration",
    "AngularMomentum",
    "AngularVelocity",
    "Area",
    "Capacitance",
    "Conductance",
    "Conductivity",
    "Count",
    "Density",
    "Dimensionless",
    "DoseEquivalent",
    "DoseEquivalentRate",
    "DynamicViscosity",
    "ElectricCharge",
    "ElectricCurrent",
    "ElectricCurrentDensity",
    "ElectricFieldStrength",
    "Energy",
    "Exposure",
    "Force",
    "Frequency",
    "Illuminance",
    "Inductance",
    "Irradiance",
    "KinematicViscosity",
    "Length",
    "LinearMomentum",
    "Luminance",
    "LuminousFlux",
    "LuminousIntensity",
    "MagneticFlux",
    "MagneticFluxDensity",
    "MagneticVectorPotential",
    "Mass",
    "MassConcentration",
    "MassFlowRate",
    "MassPerAreaTime",
    "MemoryCapacity",
    "MolalityOfSolute",
    "MolarEnergy",
    "MolarMass",
    "MolarVolume",
    "Power",
    "Pressure",
    "RadiantFlux",
    "RadiantIntensity",
    "RelativeHumidity",
    "Resistance",
    "Resistivity",
    "SolidAngle",
    "SpecificVolume",
    "Speed",
    "SurfaceDensity",
    "SurfaceTension",
    "Temperature",
    "Time",
    "Torque",
    "Voltage",
    "Volume",
    "VolumeFlowRate",
    "VolumeFraction",
    "VolumetricFlux",
    "Wavenumber",
)
_TERMS: dict[str, dict[str, str]] = {
    "bizStep": {w: f"{CBV}BizStep-{w}" for w in BIZ_STEPS},
    "disposition": {w: f"{CBV}Disp-{w}" for w in DISPOSITIONS},
    "bizTransactionType": {w: f"{CBV}BTT-{w}" for w in BIZ_TRANSACTION_TYPES},
    "sourceDestType": {w: f"{CBV}SDT-{w}" for w in SOURCE_DEST_TYPES},
    "reason": {w: f"{CBV}ER-{w}" for w in ERROR_REASONS},
    "measurementType": {w: f"{GS1_VOC}{w}" for w in MEASUREMENT_TYPES},
    "exception": {w: f"{GS1_VOC}{w}" for w in SENSOR_ALERTS},
    "component": {w: f"{CBV}Comp-{w}" for w in COMPONENTS},
}
_CURIES = {"cbv": CBV, "gs1": GS1_VOC}
_OLD_CBV_URNS = (
    ("urn:epcglobal:cbv:bizstep:", f"{CBV}BizStep-"),
    ("urn:epcglobal:cbv:disp:", f"{CBV}Disp-"),
    ("urn:epcglobal:cbv:btt:", f"{CBV}BTT-"),
    ("urn:epcglobal:cbv:sdt:", f"{CBV}SDT-"),
    ("urn:epcglobal:cbv:er:", f"{CBV}ER-"),
)
_IGNORED_KEYS = ("#text", "rdfs:comment", "comment")
_UNSORTED_KEYS = ("bizTransaction", "source", "destination")


def event_hash_id(event: Mapping[str, Any], context: Any = None) -> str:
    """The event hash ID of one EPCIS 2.0 JSON-LD event (its document's `@context` for extensions)."""
    return hash_id(pre_hash(event, context))


def document_hash_ids(document: Mapping[str, Any]) -> list[str]:
    """The hash ID of each event of an EPCIS document, in order."""
    events = _event_list(document)
    return [hash_id(p) for p in pre_hashes(events, document.get("@context"))]


def hash_id(pre_hash_string: str) -> str:
    """`ni:///sha-256;<hex>?ver=CBV2.0` of a pre-hash string."""
    return f"ni:///sha-256;{hashlib.sha256(pre_hash_string.encode('utf-8')).hexdigest()}?ver=CBV2.0"


def pre_hash(event: Mapping[str, Any], context: Any = None) -> str:
    """The canonical pre-hash string of one event."""
    return pre_hashes([event], context)[0]


def pre_hashes(events: Sequence[Mapping[str, Any]], context: Any = None) -> list[str]:
    """Pre-hash strings of the events of one document: CBV words are resolved across all of them."""
    terms = _suffixes(_vocabulary_values(events))
    namespaces = _namespaces(context)
    found = []
    for event in events:
        expanded = _expand_bare_words(event, terms)
        tree = _restructure(_to_tree(expanded, namespaces))
        body = _ordered(tree[2], PROPERTY_ORDER)
        rest = [c for c in tree[2] if c[0] not in NOT_HASHED]
        found.append(f"eventType={tree[0]}{body}{_generic(rest) if rest else ''}")
    return found


def _event_list(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    body = document.get("epcisBody") or {}
    if "eventList" in body:
        return list(body["eventList"])
    if "queryResults" in body:
        return list(body["queryResults"]["resultsBody"]["eventList"])
    return [body["event"]]


# --- bare CBV words ------------------------------------------------------------------------------


def _vocabulary_values(events: Iterable[Mapping[str, Any]]) -> set[str]:
    """The Web URIs of every vocabulary-typed value in the events (what JSON-LD expansion yields)."""
    found: set[str] = set()

    def add(kind: str, value: Any) -> None:
        if not isinstance(value, str):
            return
        uri = _TERMS[kind].get(value)
        if uri is None:
            prefix, _, rest = value.partition(":")
            uri = _CURIES[prefix] + rest if prefix in _CURIES and rest else value
        if uri.startswith((CBV, GS1_VOC)):
            found.add(uri)

    for e in events:
        found.update(v for v in _strings(e) if v.startswith((CBV, GS1_VOC)))
        add("bizStep", e.get("bizStep"))
        add("disposition", e.get("disposition"))
        persistent = e.get("persistentDisposition")
        if isinstance(persistent, Mapping):
            for key in ("set", "unset"):
                for v in _as_list(persistent.get(key)):
                    add("disposition", v)
        for key, kind in (
            ("bizTransactionList", "bizTransactionType"),
            ("sourceList", "sourceDestType"),
            ("destinationList", "sourceDestType"),
        ):
            for item in _as_list(e.get(key)):
                if isinstance(item, Mapping):
                    add(kind, item.get("type"))
        for element in _as_list(e.get("sensorElementList")):
            if isinstance(element, Mapping):
                for report in _as_list(element.get("sensorReport")):
                    if isinstance(report, Mapping):
                        add("measurementType", report.get("type"))
                        add("exception", report.get("exception"))
                        add("component", report.get("component"))
        declaration = e.get("errorDeclaration")
        if isinstance(declaration, Mapping):
            add("reason", declaration.get("reason"))
    return found


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _suffixes(terms: set[str]) -> dict[str, list[str]]:
    """Each text that follows a `-` or `/` in a vocabulary URI, with the URIs it ends."""
    found: dict[str, list[str]] = {}
    for term in terms:
        for at, char in enumerate(term):
            if char in "-/":
                found.setdefault(term[at + 1:], []).append(term)
    return found


def _expand_bare_words(value: Any, suffixes: Mapping[str, list[str]]) -> Any:
    """Every string that is the last segment of exactly one known vocabulary URI becomes that URI."""
    if isinstance(value, str):
        matches = suffixes.get(value, ())
        return matches[0] if len(matches) == 1 else value
    if isinstance(value, list):
        return [_expand_bare_words(v, suffixes) for v in value]
    if isinstance(value, Mapping):
        return {k: _expand_bare_words(v, suffixes) for k, v in value.items()}
    return value


# --- JSON to tree --------------------------------------------------------------------------------


def _namespaces(context: Any) -> dict[str, str]:
    """Prefixes declared in a document's `@context` list (a lone object or string declares none)."""
    found: dict[str, str] = {}
    if isinstance(context, list):
        for item in context:
            if isinstance(item, str):
                found[item] = "{" + item + "}"
            elif isinstance(item, Mapping):
                for key, iri in item.items():
                    found[key] = "{" + str(iri) + "}"
    return found


def _qualified(text: Any, namespaces: Mapping[str, str], value: bool = False) -> Any:
    if not isinstance(text, str):
        return text
    prefix, sep, rest = text.partition(":")
    if sep and prefix in namespaces:
        iri = namespaces[prefix]
        return (iri.replace("{", "").replace("}", "") if value else iri) + rest
    return text


def _to_tree(value: Any, namespaces: Mapping[str, str]) -> Node:
    if isinstance(value, list):
        node: Node = ("", "", [_to_tree(v, namespaces) for v in value])
    elif isinstance(value, Mapping):
        node = (value["type"], "", []) if "type" in value else ("", "", [])
        if "#text" in value:
            node = (node[0], value["#text"], node[2])
        for key, item in value.items():
            if key in _IGNORED_KEYS:
                continue
            child = _to_tree(item, namespaces)
            name = _qualified(key, namespaces)
            if isinstance(item, list):
                node[2].extend((name, c[1], c[2]) for c in child[2])
            else:
                node[2].append((name, child[1], child[2]))
    else:
        return ("", _text(_qualified(value, namespaces, value=True)), [])
    if not any(k in value for k in _UNSORTED_KEYS):
        node[2].sort()
    return node


def _text(value: Any) -> str:
    """A scalar as Python prints it (as the reference does: `True`, `None`, `20.5`)."""
    return str(value)


def _restructure(node: Node) -> Node:
    """Give JSON lists the element names of the XML binding (epcList/epc, quantityList/quantityElement)."""
    children = list(node[2])
    lists: dict[str, list[Node]] = {}
    for child in [c for c in children if not isinstance(c[0], tuple) and c[0].endswith("List")]:
        lists.setdefault(child[0], []).append((child[0][:-4], child[1], child[2]))
        children.remove(child)
    for name, items in lists.items():
        if name in ("sourceList", "destinationList", "bizTransactionList"):
            # each entry as a bare (type, value) pair: the reference hashes them without names, in the
            # order it reads them; type first whatever the order of the JSON object's members
            pairs = [tuple(sorted(i[2], key=lambda c: c[0] != "type")[:2]) for i in items]
            children.append((name, "", pairs))
        else:
            children.append((name, "", items))
    child_epcs: list[Node] = [("epc", c[1], []) for c in children if c[0] == "childEPCs"]
    children = [c for c in children if c[0] != "childEPCs"]
    if child_epcs:
        children.append(("childEPCs", "", child_epcs))
    fixed = [
        c if c[0] in ("sourceList", "destinationList", "bizTransactionList") else _restructure(c)
        for c in children
    ]
    name = node[0]
    if name in ("inputEPC", "outputEPC"):
        name = "epc"
    elif name in ("inputQuantity", "outputQuantity", "childQuantity") or (name == "quantity" and fixed):
        name = "quantityElement"
    return (name, node[1], fixed)


# --- pre-hash string -------------------------------------------------------------------------------


def _ordered(children: list[Any], order: Sequence[tuple[Any, Any]]) -> str:
    """The fields named in `order`, in that order; each is removed from `children` once used."""
    text = ""
    extensions = _take_extensions(children)
    for name, sub_order in order:
        values = []
        for child in [c for c in children if c[0] == name]:
            part = _field(child, sub_order)
            if part:
                values.append(part)
            if not child[2]:
                children.remove(child)
        values.sort()
        if "".join(values):
            text = text + "".join(values)
    if extensions:
        text = text + _generic(extensions)
    return text


def _take_extensions(children: list[Any]) -> list[Any]:
    """Namespaced extension fields inside a standard field (readPoint, sensorReport, ...)."""
    if len(children) <= 1:
        return []
    if any("eventTime" in c[0] or "action" in c[0] for c in children):
        return []
    found = [c for c in children if isinstance(c, tuple) and "{" in c[0] and "/}" in c[0]]
    for c in found:
        children.remove(c)
    return found


def _field(child: Node, sub_order: Any) -> str:
    nested = _ordered(child[2], sub_order) if sub_order else ""
    text = ""
    if child[1]:
        text = child[1].strip()
        lowered = child[0].lower()
        text = _utc_millis(text) if "time" in lowered and "offset" not in lowered else _canonical_value(text)
        if text:
            text = "=" + text
    return child[0] + text + nested if text or nested else ""


def _generic(children: Sequence[Any]) -> str:
    """Fields outside the fixed order (extensions, and what the order left), sorted."""
    values = []
    for child in children:
        if isinstance(child, tuple) and child and isinstance(child[0], tuple):
            values.append(_generic(child))
        else:
            text = child[1].strip()
            if text:
                text = "=" + _canonical_value(text)
            values.append(child[0] + text + _generic(child[2]))
    if len(children) > 1 and not any(c[0] in _UNSORTED_KEYS for c in children):
        values.sort()
    return "".join(values)


def _canonical_value(text: str) -> str:
    """CBV URNs as Web URIs, numbers without redundant zeros, GS1 keys as canonical Digital Links."""
    for urn, web in _OLD_CBV_URNS:
        text = text.replace(urn, web)
    text = _canonical_number(text)
    return canonical_dl(text) or text


def _canonical_number(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isnan(number):
        return text
    if math.isinf(number):
        raise ValueError(f"{text!r} is not a finite number")
    return str(int(number)) if int(number) == number else str(number)


def _utc_millis(text: str) -> str:
    """An ISO 8601 time in UTC with milliseconds and `Z` (microseconds rounded half to even)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.astimezone()  # a time without offset is local time, as the reference reads it
    when = when.astimezone(UTC)
    millis = round(when.microsecond, -3)
    when = when.replace(microsecond=0) + timedelta(microseconds=millis)
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"
