"""Shared steps of the EPCIS integration tests: a small demo program, exports, a second store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from epcis import Epcis
from epcis.eventhash import event_hash_id
from epcis.ids import sgln
from ledger.application import Ledger
from scripts.demo import DEMO_ACTORS, generate
from tests.builders import SITE_GLN

SCALE = 0.05
"""A demo program of ~500 events: 2 batches, 2 packaging runs, 75 kits, 4 shipments, a correction."""

ALL_ROLES = list(DEMO_ACTORS.values())


def demo(ledger: Ledger) -> None:
    """The demo program without the recall of its last day: EPCIS does not carry recall campaigns, so
    capture refuses their kits' steps (tests/integration/test_epcis_recall_returns.py)."""
    generate(ledger, scale=SCALE, progress=False, recall=False)


def exported(epcis: Epcis, *, blinded: bool) -> dict[str, Any]:
    """The whole program as one EPCISDocument (parsed)."""
    return json.loads("".join(epcis.events_between(None, None, blinded=blinded)))


def events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["epcisBody"]["eventList"])


def site_event(step: str, disposition: str, kits: list[str], **extra: Any) -> dict[str, Any]:
    """An ObjectEvent of the builders' DE site (tests.builders.SITE_GLN) about `kits` (SGTINs), now, as a
    site's own system would send it."""
    site = {"id": sgln(SITE_GLN)}
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "type": "ObjectEvent", "eventTime": at, "eventTimeZoneOffset": "+00:00", "epcList": kits,
        "action": "OBSERVE", "bizStep": step, "disposition": disposition, "readPoint": site,
        "bizLocation": site, **extra,
    }


def site_document(context: Any, *events: dict[str, Any]) -> dict[str, Any]:
    """An EPCISDocument of `events` under `@context` `context`."""
    return {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "epcisBody": {"eventList": list(events)}}


def rehashed(doc: dict[str, Any], *indices: int) -> dict[str, Any]:
    """The document with the events at `indices`, edited after export, given their new hash as eventID, as
    a partner changing an event does: the old hash ID would claim an event it no longer hashes (refused)."""
    for i in indices:
        event = doc["epcisBody"]["eventList"][i]
        event["eventID"] = event_hash_id(event, doc.get("@context"))
    return doc


@pytest.fixture
def second_url(database_url: str, new_store: Callable[[str, str], str]) -> str:
    """Another new store of the same kind as `database_url`."""
    return new_store("sqlite" if database_url.startswith("sqlite") else "postgres", "target")


def plain(value: Any) -> Any:
    """A read-model answer as plain data, without `as_of` (positions differ between stores)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "as_of"}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
