"""Audit trail on the hand-built scenario: who, when, why, and the event's place in the hash chain."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from ledger.errors import NotFound
from tests.projection_builders import World, scenario_world


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with scenario_world(database_url) as w:
        yield w


def test_a_lots_trail_in_order_with_actor_reason_and_chain_hash(world: World):
    lot_id = world.s.lots["API-A"]
    trail = world.runner.audit.trail(lot_id)

    assert trail.aggregate == "Lot"
    assert [(e.version, e.event, e.principal, e.role) for e in trail.entries] == [
        (1, "Received", "mfg1", "manufacturing"),
        (2, "Released", "qa1", "qa"),
        (3, "Consumed", "mfg1", "manufacturing"),
        (4, "QuantityCorrected", "qa1", "qa"),
    ]
    correction = trail.entries[-1]
    assert correction.reason == "the certificate of analysis states 2.5 kg"
    assert correction.changes["corrects_version"] == 1
    assert correction.changes["quantity"] == {"amount": "2.5", "unit": "kg"}
    assert trail.entries[1].changes["signature"]["meaning"] == "released"
    assert all(e.recorded_at >= e.occurred_at for e in trail.entries)
    # Seq and hash are the chain's own, as a verifier recomputes them.
    chain = {
        (UUID(r.originator_id), r.originator_version): (r.seq, r.chain_hash.hex())
        for r in world.ledger.chain.iter_chain()
    }
    assert [(e.seq, e.chain_hash) for e in trail.entries] == [
        chain[(lot_id, e.version)] for e in trail.entries
    ]
    assert trail.as_of == world.runner.head()


def test_the_packaging_trail_keeps_the_kit_list_out(world: World):
    (packaged, *releases) = world.runner.audit.trail(world.s.runs["P-1"]).entries

    assert packaged.event == "Packaged"
    assert "allocation" not in packaged.changes
    assert packaged.changes["kit_numbers"][:2] == ["K1001", "K1002"]
    assert [e.event for e in releases] == ["Disposed", "Certified", "SponsorReleased", "SponsorReleased"]


def test_trail_of_an_unknown_entity_is_not_found(world: World):
    with pytest.raises(NotFound):
        world.runner.audit.trail(uuid4())
