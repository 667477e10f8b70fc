"""The ledger's msgspec transcoder reads and writes the library's format exactly as the library does."""

from __future__ import annotations

import enum
import math
from collections import OrderedDict, namedtuple
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError

from ledger.application import Ledger
from ledger.transcoder import StateTranscoder


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


Point = namedtuple("Point", "x y")


@pytest.fixture(scope="module")
def both() -> tuple[JSONTranscoder, StateTranscoder]:
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ours = ledger.mapper.transcoder
    assert isinstance(ours, StateTranscoder)
    library = JSONTranscoder()
    ledger.register_transcodings(library)
    return library, ours


STATES = [
    {"timestamp": datetime(2026, 12, 6, 7, 30, 3, 123456, tzinfo=UTC), "site_id": uuid4(),
     "audit": {"principal": "site", "late_entry": True, "late_reason": None, "n": 0},
     "amount": Decimal("10.250"), "expires_on": date(2027, 1, 31), "condition": "used"},
    {"nested": [[{"id": uuid4()}, Decimal("-0")], (1, 2.5, "x")], "empty": {}, "none": [], "big": 10**30},
    {"offset": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
     "text": "Zürich \u2028 \" \\ \n \x01"},
    {"_type_": "uuid_hex", "_data_": "0" * 32},  # a state that looks like a typed value reads as one
]


@pytest.mark.parametrize("state", STATES)
def test_what_either_writes_the_other_reads_the_same(both, state) -> None:
    library, ours = both
    assert library.decode(ours.encode(state)) == library.decode(library.encode(state))
    assert ours.decode(library.encode(state)) == library.decode(library.encode(state))
    assert repr(ours.decode(ours.encode(state))) == repr(library.decode(library.encode(state)))


def test_typed_values_come_back_typed(both) -> None:
    _, ours = both
    ident = uuid4()
    back = ours.decode(ours.encode({"id": ident, "on": date(2027, 1, 1), "q": Decimal("1.5"), "l": [ident]}))
    assert back == {"id": ident, "on": date(2027, 1, 1), "q": Decimal("1.5"), "l": [ident]}
    assert type(back["id"]) is UUID and type(back["q"]) is Decimal and type(back["l"][0]) is UUID


def test_subclasses_are_written_as_json_writes_them(both) -> None:
    library, ours = both
    state = {"c": Colour.RED, "l": Level.HIGH, "o": OrderedDict(a=1), "p": Point(1, uuid4())}
    assert ours.decode(ours.encode(state)) == library.decode(library.encode(state))
    assert ours.decode(ours.encode(state))["c"] == "red" and type(ours.decode(ours.encode(state))["l"]) is int


def test_what_msgspec_does_not_take_goes_through_the_library(both) -> None:
    library, ours = both
    for state in ({"f": math.nan}, {"f": math.inf}, {1: "a", None: "b"}):
        assert ours.encode(state) == library.encode(state)
    assert math.isnan(ours.decode(b'{"f":NaN}')["f"])
    assert ours.decode(b'{"f":1e400}')["f"] == math.inf
    assert ours.decode(b'{"s":"\\udc80"}') == library.decode(b'{"s":"\\udc80"}')


def test_refusals_are_the_librarys(both) -> None:
    _, ours = both
    with pytest.raises(TranscodingNotRegisteredError):
        ours.encode({"x": object()})
    with pytest.raises(TranscodingNotRegisteredError):
        ours.decode(b'{"x":{"_type_":"no_such_type","_data_":"1"}}')


def test_ids_read_from_any_hex_form_are_the_librarys_and_shared_when_equal(both) -> None:
    library, ours = both
    ident = uuid4()
    for text in (ident.hex, ident.hex.upper(), str(ident)):
        typed = f'{{"_type_":"uuid_hex","_data_":"{text}"}}'
        state = f'{{"a":{typed},"b":{typed}}}'.encode()
        back = ours.decode(state)
        assert back == library.decode(state) == {"a": ident, "b": ident}
        assert type(back["a"]) is UUID
    with pytest.raises(ValueError):
        ours.decode(b'{"a":{"_type_":"uuid_hex","_data_":"not-a-uuid"}}')
