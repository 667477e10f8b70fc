"""GS1 keys as EPCIS identifiers: EPC URIs out, EPC URIs or GS1 Digital Link URIs in, check digits checked.

Lotline writes EPC pure identity URIs (`urn:epc:id:sgtin:...`, `urn:epc:class:lgtin:...`,
`urn:epc:id:sscc:...`, `urn:epc:id:sgln:...`). EPC URIs need the length of the GS1 company prefix,
which Lotline does not record; it is a parameter (default 7, the demo program's). Reading accepts
both EPC URIs and Digital Link URIs, through the canonical form of `epcis.dl`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from epcis.dl import canonical_dl
from ledger import gs1
from ledger.errors import InvalidIdentifier

DEFAULT_PREFIX_LENGTH = 7


@dataclass(frozen=True, slots=True)
class Key:
    """A GS1 key read from a URI: `kind` is sgtin, lgtin, gtin, sscc, sgln or another GS1 key."""

    kind: str
    uri: str
    key: str
    extension: str | None = None

    @property
    def gtin(self) -> str:
        return self.key

    @property
    def serial(self) -> str:
        assert self.extension is not None
        return self.extension


def _escape(text: str) -> str:
    """EPC URI escaping (TDS 2.0 table I.3.1): `"%&/<>?` become %-escapes."""
    return quote(text, safe="!'()*+,-.:;=_ ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _split_gtin(gtin14: str, prefix_length: int) -> tuple[str, str]:
    if not 6 <= prefix_length <= 12:
        raise InvalidIdentifier(f"a GS1 company prefix has 6-12 digits, not {prefix_length}", field="prefix")
    return gtin14[1 : 1 + prefix_length], gtin14[0] + gtin14[1 + prefix_length : 13]


def sgtin(gtin14: str, serial: str, prefix_length: int = DEFAULT_PREFIX_LENGTH) -> str:
    """`urn:epc:id:sgtin:` of a GTIN-14 and a serial (a kit number)."""
    company, item = _split_gtin(gs1.gtin(gtin14), prefix_length)
    return f"urn:epc:id:sgtin:{company}.{item}.{_escape(serial)}"


def lgtin(gtin14: str, lot: str, prefix_length: int = DEFAULT_PREFIX_LENGTH) -> str:
    """`urn:epc:class:lgtin:` of a GTIN-14 and a lot or batch number."""
    company, item = _split_gtin(gs1.gtin(gtin14), prefix_length)
    return f"urn:epc:class:lgtin:{company}.{item}.{_escape(lot)}"


def sscc(sscc18: str, prefix_length: int = DEFAULT_PREFIX_LENGTH) -> str:
    """`urn:epc:id:sscc:` of an SSCC-18."""
    value = gs1.sscc(sscc18)
    return f"urn:epc:id:sscc:{value[1 : 1 + prefix_length]}.{value[0]}{value[1 + prefix_length : 17]}"


def sgln(gln13: str, extension: str = "0", prefix_length: int = DEFAULT_PREFIX_LENGTH) -> str:
    """`urn:epc:id:sgln:` of a GLN (extension 0: the location itself)."""
    value = gs1.gln(gln13)
    return f"urn:epc:id:sgln:{value[:prefix_length]}.{value[prefix_length:12]}.{_escape(extension)}"


_DL_KEY = re.compile(r"^https://id\.gs1\.org/(\d+)/([^/]+)(?:/(\d+)/([^/]+))?$")


def is_gs1(uri: str) -> bool:
    """Whether `uri` claims to carry a GS1 key (an EPC URI or a GS1 Digital Link URI)."""
    return uri.startswith("urn:epc:") or bool(
        re.match(
            r"^https?://[^/]+/(?:.*/)?(01|00|414|417|8003|8004|"
            r"253|255|401|402|8006|8010|8017|8018)/\d",
            uri,
        )
    )


def parse(uri: str) -> Key | None:
    """The GS1 key in `uri`, with its check digit verified; None for a URI that is not a GS1 key.

    Raises `InvalidIdentifier` for a URI that looks like a GS1 key but is malformed or has a wrong
    check digit.
    """
    if not is_gs1(uri):
        return None
    canonical = canonical_dl(uri)
    if canonical is None:
        raise InvalidIdentifier(f"{uri} is not a well-formed GS1 identifier", field="epc")
    m = _DL_KEY.match(canonical)
    if m is None:
        return Key("other", uri, canonical)
    ai, value, qualifier_ai, qualifier = m.groups()
    extension = unquote(qualifier) if qualifier else None
    if ai == "01":
        _checked(gs1.gtin, value, uri)
        kind = {"21": "sgtin", "10": "lgtin", "235": "other", None: "gtin"}.get(qualifier_ai, "other")
        return Key(kind, uri, value, extension)
    if ai == "00":
        return Key("sscc", uri, _checked(gs1.sscc, value, uri))
    if ai in ("414", "417"):
        return Key("sgln" if ai == "414" else "pgln", uri, _checked(gs1.gln, value, uri), extension or "0")
    return Key("other", uri, canonical)


def _checked(check: object, value: str, uri: str) -> str:
    try:
        return check(value)  # type: ignore[operator, no-any-return]
    except InvalidIdentifier as e:
        raise InvalidIdentifier(f"{uri}: {e.message}", field="epc") from None


def require(uri: str, *kinds: str) -> Key:
    """The key in `uri`, which must be one of `kinds` (e.g. 'sgtin')."""
    key = parse(uri)
    if key is None or key.kind not in kinds:
        raise InvalidIdentifier(f"{uri} is not a GS1 {' or '.join(k.upper() for k in kinds)}", field="epc")
    return key
