"""The stored events' JSON, written and read by msgspec: the library's format, at less than half its cost.

The library's `JSONTranscoder` writes an event's state with the standard `json` module, calling back into
Python for every UUID, date, datetime and Decimal (`{"_type_": name, "_data_": text}`), and reads it
with an object hook called for every JSON object. Encoding and decoding were a fifth of a shipment's
or a receipt's time (issue 12: ~11 us of ~25 us per event written and read back). `StateTranscoder`
writes and reads the very same format: the typed values are turned into their `_type_` objects by one
walk over the state and the whole is written by msgspec; a stored state is parsed by msgspec and one
walk turns the `_type_` objects back, innermost first, as the object hook did. The bytes may differ
from the library's in escaping, never in meaning: anything stored by either reads back the same (the
chain hashes canonical bytes made from the decoded state, not the stored text). What msgspec does not
take as the standard `json` module does (non-finite floats, integers beyond 64 bits, text that is not
UTF-8) goes through the library's own code, unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import JSONTranscoder, Transcoding, TranscodingNotRegisteredError, UUIDAsHex


class _Fallback(Exception):
    """A value the library's own encoder must write (it alone writes it as the library always has)."""


_INFINITY = float("inf")


class StateTranscoder(JSONTranscoder):
    """The library's JSON transcoder, encoding and decoding through msgspec (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        self._encoders: dict[type, tuple[str, Callable[[Any], Any]]] = {}
        self._decoders: dict[str, Callable[[Any], Any]] = {}

    def register(self, transcoding: Transcoding) -> None:
        """The library's `register`, plus the tables the walks below look values up in: a registered
        type is met by its exact type (as the library's `_encode_obj` does), unless it is also one of
        JSON's own kinds, which `json` writes as that kind (those keep the slow path's order)."""
        super().register(transcoding)
        if not issubclass(transcoding.type, _JSON_KINDS):
            self._encoders[transcoding.type] = (transcoding.name, transcoding.encode)
        exact_uuid = type(transcoding) is UUIDAsHex
        self._decoders[transcoding.name] = _uuid_of_hex if exact_uuid else transcoding.decode

    def encode(self, obj: Any) -> bytes:
        try:
            return self._encoder.encode(self._plain(obj))
        except _Fallback:
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        try:
            parsed = self._decoder.decode(data)
        except msgspec.DecodeError:
            return super().decode(data)  # e.g. NaN or 1e400, which `json` reads and msgspec does not
        return self._revive(parsed)

    def _plain(self, o: Any) -> Any:
        """`o` as JSON values, taken as `json` takes them: text, numbers, lists (tuples too) and objects
        as they are (their subclasses, e.g. a StrEnum, as their plain value), anything else through its
        registered transcoding as a `_type_` object."""
        t = type(o)
        if t is str or t is int or t is bool or o is None:
            return o
        if t is dict:
            return self._plain_dict(o)
        typed = self._encoders.get(t)
        if typed is not None:
            data = typed[1](o)
            return {"_type_": typed[0], "_data_": data if type(data) is str else self._plain(data)}
        if t is list or t is tuple:
            plain = self._plain
            return [plain(v) for v in o]
        if t is float or isinstance(o, float):
            value = float.__float__(o)
            if value != value or value in (_INFINITY, -_INFINITY):
                raise _Fallback  # `json` writes NaN and Infinity, which are not JSON
            return value
        if isinstance(o, str):
            return str.__str__(o)
        if isinstance(o, int):
            return int.__int__(o)
        if isinstance(o, (list, tuple)):
            return [self._plain(v) for v in o]
        if isinstance(o, dict):
            return self._plain_dict(o)
        encoded = self._encode_obj(o)  # the library's: its transcoding, or its error when none
        encoded["_data_"] = self._plain(encoded["_data_"])
        return encoded

    def _plain_dict(self, o: dict[Any, Any]) -> dict[str, Any]:
        plain = self._plain
        out = {}
        for k, v in o.items():
            if type(k) is not str:
                raise _Fallback  # `json` turns numbers and None into text keys: let it
            t = type(v)
            # text and numbers, most of an event's values, kept here without a call to `_plain`
            out[k] = v if t is str or t is int or t is bool or v is None else plain(v)
        return out

    def _revive(self, o: Any) -> Any:
        """`o` with every `_type_` object turned back into its value, innermost first."""
        t = type(o)
        if t is dict:
            return self._revive_dict(o)
        if t is list:
            return self._revive_list(o)
        return o

    def _revive_dict(self, o: dict[str, Any]) -> Any:
        for k, v in o.items():
            tv = type(v)
            if tv is dict:
                # a typed value with text data (all of an event's) is read here, without a call to
                # walk it: most of an event's objects are typed values
                if len(v) == 2 and "_type_" in v and "_data_" in v and type(v["_data_"]) is str:
                    o[k] = self._typed(v)
                else:
                    o[k] = self._revive_dict(v)
            elif tv is list:
                o[k] = self._revive_list(v)
        if len(o) == 2 and "_type_" in o and "_data_" in o:
            return self._typed(o)
        return o

    def _revive_list(self, o: list[Any]) -> list[Any]:
        for i, v in enumerate(o):
            tv = type(v)
            if tv is dict:
                o[i] = self._revive_dict(v)
            elif tv is list:
                o[i] = self._revive_list(v)
        return o

    def _typed(self, o: dict[str, Any]) -> Any:
        """The value of a `{"_type_": name, "_data_": data}` object (its data revived already)."""
        try:
            decode = self._decoders[o["_type_"]]
        except KeyError:
            raise TranscodingNotRegisteredError(
                f"Data serialized with name '{o['_type_']}' is not deserializable. Please register "
                "a custom transcoding for this type."
            ) from None
        return decode(o["_data_"])


@functools.lru_cache(maxsize=16_384)
def _uuid_of_hex(data: str) -> UUID:
    """The library's `uuid_hex` reading (`UUID(data)`), remembered: the ids an event names recur
    (a receipt's 100 kit events name the same shipment, site, trial and run), and a UUID parsed
    costs ~1.3 us where a hit costs a tenth of it. UUIDs are immutable, so one may be shared."""
    assert isinstance(data, str)
    return UUID(data)


_JSON_KINDS = (str, int, float, list, tuple, dict)
"""What `json` writes as JSON's own values, subclasses included, before any registered transcoding."""
