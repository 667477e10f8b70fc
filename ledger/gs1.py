"""GS1 identifiers: GTIN, GLN and SSCC with their check digits, and the EPC URIs they map to."""

from __future__ import annotations

from ledger.errors import InvalidIdentifier


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of the digits in `body` (weights 3,1,3,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def with_check_digit(body: str) -> str:
    return body + str(check_digit(body))


def _validate(value: str, length: int, kind: str, field: str) -> str:
    if not (isinstance(value, str) and value.isdigit() and len(value) == length):
        raise InvalidIdentifier(f"{kind} must be {length} digits, got {value!r}", field=field)
    if check_digit(value[:-1]) != int(value[-1]):
        raise InvalidIdentifier(f"{kind} {value} has a wrong check digit", field=field)
    return value


def gtin(value: str, field: str = "gtin") -> str:
    """A valid GTIN-14 (shorter GTINs are left-padded with zeros, as GS1 specifies)."""
    if isinstance(value, str) and value.isdigit() and len(value) in (8, 12, 13):
        value = value.zfill(14)
    return _validate(value, 14, "GTIN", field)


def gln(value: str, field: str = "gln") -> str:
    return _validate(value, 13, "GLN", field)


def sscc(value: str, field: str = "sscc") -> str:
    return _validate(value, 18, "SSCC", field)


def gs1_text(value: str, kind: str, field: str, max_len: int = 20) -> str:
    """A lot number or serial: 1-20 characters of GS1's AI encodable set 82 (we allow its safe core)."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-./_")
    if not isinstance(value, str) or not (1 <= len(value) <= max_len) or not set(value) <= allowed:
        raise InvalidIdentifier(
            f"{kind} must be 1-{max_len} characters of A-Z a-z 0-9 - . / _, got {value!r}", field=field
        )
    return value


def _company_split(gtin14: str, company_prefix_len: int) -> tuple[str, str]:
    # EPC URIs need the company prefix length; without a GS1 prefix table we assume 7 digits,
    # which the capture side records alongside the identifier.
    indicator, rest = gtin14[0], gtin14[1:13]
    return rest[:company_prefix_len], indicator + rest[company_prefix_len:]


def lgtin_uri(gtin14: str, lot: str, company_prefix_len: int = 7) -> str:
    company, item = _company_split(gtin14, company_prefix_len)
    return f"urn:epc:class:lgtin:{company}.{item}.{lot}"


def sgtin_uri(gtin14: str, serial: str, company_prefix_len: int = 7) -> str:
    company, item = _company_split(gtin14, company_prefix_len)
    return f"urn:epc:id:sgtin:{company}.{item}.{serial}"


def sscc_uri(sscc18: str, company_prefix_len: int = 7) -> str:
    ext, rest = sscc18[0], sscc18[1:17]
    return f"urn:epc:id:sscc:{rest[:company_prefix_len]}.{ext}{rest[company_prefix_len:]}"


def sgln_uri(gln13: str, company_prefix_len: int = 7) -> str:
    body = gln13[:12]
    return f"urn:epc:id:sgln:{body[:company_prefix_len]}.{body[company_prefix_len:]}.0"
