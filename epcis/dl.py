"""GS1 identifiers in one canonical form, as the EPCIS event hash needs them.

Every URI that carries a GS1 key (an EPC pure identity URI, an EPC class URI, an EPC ID pattern URI
or a GS1 Digital Link URI) becomes a constrained, canonical GS1 Digital Link URI on `id.gs1.org`:
the finest level of identification only (a serial wins over a lot), no CPV, no query string. Any
other text gives None. This reproduces the normaliser of GS1's reference event-hash generator
(`epcis-event-hash-generator` 1.9.3, MIT) rule for rule, including its fixed offsets, so that
hashes agree with it; docs/epcis.md describes the algorithm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

# One character of an EPC URI serial/lot (GS1 AI encodable set 82, %-escaped where needed).
_X = (
    r"(\%2[125-9A-Fa-f]|\%3[0-9A-Fa-f]|\%4[1-9A-Fa-f]|\%5[0-9AaFf]|\%6[1-9A-Fa-f]|\%7[0-9Aa]"
    r"|[!\')(*+,.0-9:;=A-Za-z_-])"
)
# Company prefix + reference of 13 digits (GTIN-based keys) or 12 digits (GLN-based keys).
_P13 = "(" + "|".join(rf"(\d{{{n}}}\.\d{{{13 - n}}})" for n in range(6, 13)) + ")"
_P12 = "(" + "|".join(rf"(\d{{{n}}}\.\d{{{12 - n}}})" for n in range(6, 12)) + r"|(\d{12}\.))"
_P12DOT = "(" + "|".join(rf"(\d{{{n}}}\.\d{{{12 - n}}})" for n in range(6, 12)) + r"|(\d{12}\.\.))"
_CPI = r"(\%2[3dfDF]|\%3[0-9]|\%4[1-9A-Fa-f]|\%5[0-9Aa]|[0-9A-Z-])"
_DL_CHAR = r"[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"


def _cpi_alternatives(tail: str) -> str:
    return "(" + "|".join(rf"(\d{{{n}}}\.{_CPI}{{1,{30 - n}}})" for n in range(6, 13)) + ")" + tail


def _giai_alternatives() -> str:
    return "(" + "|".join(rf"(\d{{{n}}}\.{_X}{{1,{30 - n}}})" for n in range(6, 13)) + ")$"


def _ginc_alternatives() -> str:
    return "(" + "|".join(rf"\d{{{n}}}\.{_X}{{1,{30 - n}}}" for n in range(6, 13)) + ")$"


def _serial_digits(total: int) -> str:
    """Company prefix (6-12 digits) + reference such that both add up to `total` digits."""
    return "(" + "|".join(rf"(\d{{{n}}}\.\d{{{total - n}}}$)" for n in range(6, 13)) + ")"


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit (weights 3, 1, 3, ... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return math.ceil(total / 10) * 10 - total


def _pct(text: str) -> str:
    """Percent-encode what GS1 Digital Link requires and EPC URIs allow (Table 7-1)."""
    for char, code in (
        ("!", "%21"),
        ("(", "%28"),
        (")", "%29"),
        ("*", "%2A"),
        ("+", "%2B"),
        (",", "%2C"),
        (":", "%3A"),
    ):
        text = text.replace(char, code)
    return text


def _gtin(uri: str, start: int, dot: int) -> str:
    prefix = uri[start:dot]
    item = uri[dot + 1 : dot + 1 + 13 - len(prefix)]
    raw = item[0:1] + prefix + item[1:]
    return raw + str(check_digit(raw))


def _key12(uri: str, start: int, dot: int) -> str:
    prefix = uri[start:dot]
    raw = prefix + uri[dot + 1 : dot + 1 + 12 - len(prefix)]
    return raw + str(check_digit(raw))


def _sgln(uri: str, dot: int) -> str:
    gln = _key12(uri, 16, dot)
    extension = uri[30:]
    return f"https://id.gs1.org/414/{gln}" + ("" if extension == "0" else "/254/" + _pct(extension))


def _sscc(uri: str, dot: int) -> str:
    raw = uri[dot + 1 : dot + 2] + uri[16:dot] + uri[dot + 2 :]
    return f"https://id.gs1.org/00/{raw}{check_digit(raw)}"


def _grai(uri: str, dot: int, start: int, serial: bool) -> str:
    prefix = uri[start:dot]
    raw = "0" + prefix + uri[dot + 1 : dot + 1 + 12 - len(prefix)]
    return f"https://id.gs1.org/8003/{raw}{check_digit(raw)}" + (_pct(uri[30:]) if serial else "")


def _gdti(uri: str, dot: int, start: int, serial: bool) -> str:
    return f"https://id.gs1.org/253/{_key12(uri, start, dot)}" + (_pct(uri[30:]) if serial else "")


def _sgcn(uri: str, dot: int, start: int, serial: bool) -> str:
    return f"https://id.gs1.org/255/{_key12(uri, start, dot)}" + (uri[30:] if serial else "")


def _cpi(uri: str, dot: int, start: int, serial: bool) -> str:
    last = uri.rfind(".")
    raw = _pct(uri[start:dot] + uri[dot + 1 : last])
    return f"https://id.gs1.org/8010/{raw}" + (f"/8011/{uri[last + 1 :]}" if serial else "")


def _itip(uri: str, dot: int, start: int, serial: bool) -> str:
    gtin = _gtin(uri, start, dot)
    base = 31 if serial else 34
    piece, total = uri[base : base + 2], uri[base + 3 : base + 5]
    return f"https://id.gs1.org/8006/{gtin}{piece}{total}" + (f"/21/{_pct(uri[37:])}" if serial else "")


_EPC_RULES: list[tuple[re.Pattern[str], Callable[[str, int], str]]] = [
    (
        re.compile(rf"^urn:epc:id:sgtin:{_P13}\.{_X}{{1,20}}$"),
        lambda u, d: f"https://id.gs1.org/01/{_gtin(u, 17, d)}/21/{_pct(u[32:])}",
    ),
    (re.compile(r"^urn:epc:id:sscc:" + _serial_digits(17)), _sscc),
    (re.compile(rf"^urn:epc:id:sgln:{_P12}\.{_X}{{1,20}}$"), _sgln),
    (re.compile(rf"^urn:epc:id:grai:{_P12DOT}\.{_X}{{1,16}}$"), lambda u, d: _grai(u, d, 16, True)),
    (
        re.compile(r"^urn:epc:id:giai:" + _giai_alternatives()),
        lambda u, d: f"https://id.gs1.org/8004/{u[16:d]}{_pct(u[d + 1 :])}",
    ),
    (
        re.compile(r"^urn:epc:id:gsrn:" + _serial_digits(17)),
        lambda u, d: f"https://id.gs1.org/8018/{_raw_check(u[16:d] + u[d + 1 :])}",
    ),
    (
        re.compile(r"^urn:epc:id:gsrnp:" + _serial_digits(17)),
        lambda u, d: f"https://id.gs1.org/8017/{_raw_check(u[17:d] + u[d + 1 :])}",
    ),
    (re.compile(rf"^urn:epc:id:gdti:{_P12DOT}{_X}{{1,20}}$"), lambda u, d: _gdti(u, d, 16, True)),
    (
        re.compile(r"^urn:epc:id:cpi:" + _cpi_alternatives(r"\.[\d]{1,12}$")),
        lambda u, d: _cpi(u, d, 15, True),
    ),
    (re.compile(rf"^urn:epc:id:sgcn:{_P12}\.[\d]{{1,12}}$"), lambda u, d: _sgcn(u, d, 16, True)),
    (
        re.compile(r"^urn:epc:id:ginc:" + _ginc_alternatives()),
        lambda u, d: f"https://id.gs1.org/401/{u[16:d]}{_pct(u[d + 1 :])}",
    ),
    (
        re.compile(r"^urn:epc:id:gsin:" + _serial_digits(16)),
        lambda u, d: f"https://id.gs1.org/402/{_raw_check(u[16:d] + u[d + 1 :])}",
    ),
    (
        re.compile(rf"^urn:epc:id:itip:{_P13}\.[\d]{{2}}\.[\d]{{2}}\.{_X}{{1,20}}$"),
        lambda u, d: _itip(u, d, 16, True),
    ),
    (
        re.compile(rf"^urn:epc:id:upui:{_P13}\.{_X}{{1,28}}$"),
        lambda u, d: f"https://id.gs1.org/01/{_gtin(u, 16, d)}/235/{_pct(u[31:])}",
    ),
    (re.compile(rf"^urn:epc:id:pgln:{_P12}$"), lambda u, d: f"https://id.gs1.org/417/{_key12(u, 16, d)}"),
    (
        re.compile(rf"^urn:epc:class:lgtin:{_P13}\.{_X}{{1,20}}$"),
        lambda u, d: f"https://id.gs1.org/01/{_gtin(u, 20, d)}/10/{_pct(u[35:])}",
    ),
    (
        re.compile(rf"^urn:epc:idpat:sgtin:{_P13}\.\*$"),
        lambda u, d: f"https://id.gs1.org/01/{_gtin(u, 20, d)}",
    ),
    (re.compile(rf"^urn:epc:idpat:grai:{_P12DOT}\.\*$"), lambda u, d: _grai(u, d, 19, False)),
    (re.compile(rf"^urn:epc:idpat:gdti:{_P12DOT}\.\*$"), lambda u, d: _gdti(u, d, 19, False)),
    (re.compile(rf"^urn:epc:idpat:sgcn:{_P12DOT}\.\*$"), lambda u, d: _sgcn(u, d, 19, False)),
    (re.compile(r"^urn:epc:idpat:cpi:" + _cpi_alternatives(r"\.\*$")), lambda u, d: _cpi(u, d, 18, False)),
    (
        re.compile(rf"^urn:epc:idpat:itip:{_P13}\.[\d]{{2}}\.[\d]{{2}}\.\*$"),
        lambda u, d: _itip(u, d, 19, False),
    ),
    (
        re.compile(rf"^urn:epc:idpat:upui:{_P13}\.\*$"),
        lambda u, d: f"https://id.gs1.org/01/{_gtin(u, 19, d)}",
    ),
]


_EPC_BY_SCHEME: dict[str, list[tuple[re.Pattern[str], Callable[[str, int], str]]]] = {}
for _pattern, _convert in _EPC_RULES:
    _scheme = re.match(r"\^(urn:epc:[a-z]+:[a-z]+:)", _pattern.pattern)
    assert _scheme is not None
    _EPC_BY_SCHEME.setdefault(_scheme.group(1), []).append((_pattern, _convert))


def _raw_check(raw: str) -> str:
    return raw + str(check_digit(raw))


_DL_SHAPE = re.compile(
    r"^https?:(\/\/((([^\/?#]*)@)?([^\/?#:]*)(:([^\/?#]*))?))?((([^?#]*)(\/(01|gtin|8006|itip|8010|cpid|"
    r"414|gln|417|party|8017|gsrnp|8018|gsrn|255|gcn|00|sscc|253|gdti|401|ginc|402|gsin|8003|grai|8004|"
    r"giai)\/)(\d{4}[^\/]+)(\/[^/]+\/[^/]+)?[/]?(\?([^?\n]*))?(#([^\n]*))?)|(\/[A-Za-z_-]{10}$))"
)
_DL_CANONICAL_HOST = re.compile(
    r"^https:\/\/id.gs1.org\/(01|8006|8010|414|417|8017|8018|255|00|253|401|402|8003|8004)\/(\d{4}[^\/]+)"
    r"(\/[^\/]+\/[^\/]+)?[\/]?(\?([^?\n]*))?(#([^\n]*))?|(\/[A-Za-z_-]{10}$)"
)
_SHORT_NAMES = (
    ("/gtin/", "/01/"),
    ("/itip/", "/8006/"),
    ("/cpid/", "/8010/"),
    ("/gln/", "/414/"),
    ("/party/", "/417/"),
    ("/gsrnp/", "/8017/"),
    ("/gsrn/", "/8018/"),
    ("/gcn/", "/255/"),
    ("/sscc/", "/00/"),
    ("/gdti/", "/253/"),
    ("/ginc/", "/401/"),
    ("/gsin/", "/402/"),
    ("/grai/", "/8003/"),
    ("/giai/", "/8004/"),
    ("/cpv/", "/22/"),
    ("/lot/", "/10/"),
    ("/ser/", "/21/"),
)
_PRIMARY_KEYS = (
    "/00/",
    "/01/",
    "/253/",
    "/255/",
    "/401/",
    "/402/",
    "/414/",
    "/417/",
    "/8003/",
    "/8004/",
    "/8006/",
    "/8010/",
    "/8017/",
    "/8018/",
)
_CPV_END = re.compile(rf"https:\/\/id.gs1.org\/(8006\/\d{{18}}|01\/\d{{14}})\/22\/({_DL_CHAR}{{0,20}})$")
_CPV_MORE = re.compile(
    r"https:\/\/id.gs1.org\/(8006\/\d{18}|01\/\d{14})\/22\/"
    r"([\x2F\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]{0,20})$"
)
_LOT_AND_SERIAL = re.compile(
    rf"https:\/\/id.gs1.org\/(8006\/\d{{18}}|01\/(\d{{14}}))\/10\/({_DL_CHAR}{{0,20}})\/21\/({_DL_CHAR}{{0,20}})$"
)
_DL_VALID = [
    re.compile(p)
    for p in (
        r"https:\/\/id.gs1.org\/00\/(\d{18})$",
        rf"https:\/\/id.gs1.org\/01\/(\d{{14}})\/21\/({_DL_CHAR}{{0,20}})$",
        rf"https:\/\/id.gs1.org\/01\/(\d{{14}})\/10\/({_DL_CHAR}{{0,20}})$",
        r"https:\/\/id.gs1.org\/01\/(\d{14})$",
        rf"https:\/\/id.gs1.org\/01\/(\d{{14}})\/235\/({_DL_CHAR}{{0,28}})$",
        rf"https:\/\/id.gs1.org\/253\/(\d{{13}})({_DL_CHAR}{{0,17}})$",
        r"https:\/\/id.gs1.org\/255\/(\d{13})(\d{0,12})$",
        rf"https:\/\/id.gs1.org\/401\/({_DL_CHAR}{{0,30}})$",
        r"https:\/\/id.gs1.org\/402\/(\d{17})$",
        r"https:\/\/id.gs1.org\/414\/(\d{13})$",
        rf"https:\/\/id.gs1.org\/414\/(\d{{13}})\/254\/({_DL_CHAR}{{0,20}})$",
        r"https:\/\/id.gs1.org\/417\/(\d{13})$",
        rf"https:\/\/id.gs1.org\/8003\/(\d{{14}})({_DL_CHAR}{{0,16}})$",
        rf"https:\/\/id.gs1.org\/8004\/({_DL_CHAR}{{0,30}})$",
        rf"https:\/\/id.gs1.org\/8006\/(\d{{18}})\/21\/({_DL_CHAR}{{0,20}})$",
        rf"https:\/\/id.gs1.org\/8006\/(\d{{18}})\/10\/({_DL_CHAR}{{0,20}})$",
        r"https:\/\/id.gs1.org\/8006\/(\d{18})$",
        r"https:\/\/id.gs1.org\/8010\/([\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30})\/8011/(\d{0,12})$",
        r"https:\/\/id.gs1.org\/8010\/([\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30})$",
        r"https:\/\/id.gs1.org\/8017\/(\d{18})$",
        r"https:\/\/id.gs1.org\/8018\/(\d{18})$",
    )
]


def canonical_dl(uri: object) -> str | None:
    """The canonical GS1 Digital Link URI of any URI carrying a GS1 key, or None."""
    if not isinstance(uri, str) or "." not in uri:
        return None
    if uri.startswith("urn:epc:"):  # every EPC rule is anchored at a urn:epc: scheme
        dot = uri.index(".")
        parts = uri.split(":", 4)
        scheme = ":".join(parts[:4]) + ":" if len(parts) == 5 else uri
        for pattern, convert in _EPC_BY_SCHEME.get(scheme, ()):
            if pattern.match(uri):
                return convert(uri, dot)
        return None
    if not uri.startswith("http") or not _DL_SHAPE.match(uri):
        return None
    return _canonical_digital_link(uri)


def _canonical_digital_link(uri: str) -> str | None:
    if "?" in uri:
        uri = uri[: uri.index("?")]
    for short, ai in _SHORT_NAMES:
        uri = uri.replace(short, ai)
    if not _DL_CANONICAL_HOST.match(uri):
        for key in _PRIMARY_KEYS:
            if key in uri:
                uri = "https://id.gs1.org" + uri[uri.find(key) :]
                break
    if not re.match(r"^https:\/\/id.gs1.org\/01\/\d{14}", uri):
        for digits, pad in ((13, "0"), (12, "00"), (8, "000000")):
            if re.match(rf"^https:\/\/id.gs1.org\/01\/\d{{{digits}}}", uri):
                uri = uri.replace("/01/", "/01/" + pad)
                break
    after_cpv = uri[uri.find("/22/") + 4 :]
    if _CPV_END.match(uri):
        uri = uri[: uri.find("/22/")] + after_cpv[after_cpv.find("/") : -1]
    if _CPV_MORE.match(uri):
        uri = uri[: uri.find("/22/")] + after_cpv[after_cpv.find("/") :]
    if _LOT_AND_SERIAL.match(uri):
        after_lot = uri[uri.find("/10/") + 4 :]
        uri = uri[: uri.find("/10/")] + after_lot[after_lot.find("/") :]
    if any(p.match(uri) for p in _DL_VALID):
        return uri
    return None
