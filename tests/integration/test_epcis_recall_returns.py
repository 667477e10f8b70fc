"""Recall steps in EPCIS: the kits a site quarantines or sends back and the depot receives are exported
(holding, and custody moves); capture refuses them, because recall campaigns are recorded through the
recall routes.

The program: 10 blinded kits of run P-1; K00001-K00004 are received at Site 101. Recall RC-1 of API-1
reaches the whole run. The site reports K00002 and K00003 returned and K00004 quarantined in one
report; the depot receives K00002 and K00003 back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from epcis import Epcis, ids
from epcis.capture import RECALL_STEP_REFUSED, MappingError, captured
from epcis.eventhash import document_hash_ids
from epcis.models import EPCISDocument
from ledger.application import Ledger
from ledger.commands import OpenRecall, ReceiveRecallReturns, ReportRecallKits
from ledger.domain import Kit, KitStatus, Location
from ledger.domain.recall import KitOutcome, KitReport
from ledger.values import Meaning, sign
from tests.builders import DEPOT_GLN, KIT_GTIN, SITE_GLN, Program, actors
from tests.epcis_reference import schema_validator
from tests.integration.epcis_helpers import events, exported, second_url  # noqa: F401

PROGRAM_ROLES = [
    actors.admin, actors.mfg, actors.mfg2, actors.qa, actors.qa2, actors.qp, actors.depot, actors.site
]
"""The people who did the program's steps: capture does each step as the one its `lotline:actor` names."""

RETURNED = ["K00002", "K00003"]
RECALL_NUMBER = "RC-1"


@pytest.fixture
def source(ledger: Ledger, database_url: str) -> Iterator[Epcis]:
    """The program up to the depot's receipt of the kits the site sent back under the recall."""
    program = Program.released(ledger)
    program.at_site(["K00001", "K00002", "K00003", "K00004"])
    written = ledger.handle(
        OpenRecall(
            recall_number=RECALL_NUMBER,
            lot_ids=[program.api],
            reason="API-1 impurity above limit",
            classification="class_ii",
            scope="all_kits",
            signature=sign(actors.qa, Meaning.APPROVED),
        ),
        actors.qa,
    )
    recall_id: UUID = written.id
    # the site reports two kits returned (sent back to the depot) and one quarantined, in one write
    ledger.handle(
        ReportRecallKits(
            recall_id=recall_id,
            place_id=program.site,
            reports=[
                KitReport(program.kit("K00002"), KitOutcome.RETURNED),
                KitReport(program.kit("K00003"), KitOutcome.RETURNED),
                KitReport(program.kit("K00004"), KitOutcome.QUARANTINED),
            ],
        ),
        actors.site,
    )
    # the depot receives both back
    ledger.handle(
        ReceiveRecallReturns(
            recall_id=recall_id,
            depot_id=program.depot,
            kit_ids=program.kits(*RETURNED),
        ),
        actors.depot,
    )
    epcis = Epcis(ledger, database_url)
    yield epcis
    epcis.close()


@pytest.fixture
def target(second_url: str) -> Iterator[tuple[Ledger, Epcis]]:  # noqa: F811
    ledger = Ledger.open(second_url)
    epcis = Epcis(ledger, second_url)
    yield ledger, epcis
    epcis.close()
    ledger.close()


def _recall_returns(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, e) for i, e in enumerate(events(doc)) if "lotline:recall" in e]


def _returned_sgtins() -> list[str]:
    return sorted(ids.sgtin(KIT_GTIN, n) for n in RETURNED)


def test_recall_returns_export_as_a_shipment_back_to_the_depot_and_its_receipt(source: Epcis) -> None:
    for blinded in (True, False):
        doc = exported(source, blinded=blinded)
        assert [e.message for e in schema_validator().iter_errors(doc)] == []
        EPCISDocument.model_validate(doc)
        hashes = document_hash_ids(doc)
        assert hashes == [e["eventID"] for e in events(doc)]
        site, depot = ids.sgln(SITE_GLN), ids.sgln(DEPOT_GLN)
        kit_shipments = [
            e
            for e in events(doc)
            if e.get("bizStep") == "shipping"
            and any(x.startswith("urn:epc:id:sgtin:") for x in e.get("epcList", []))
        ]
        assert len(kit_shipments) == 1
        (sent,) = kit_shipments
        assert (sent["type"], sent["action"], sent["disposition"]) == ("ObjectEvent", "OBSERVE", "in_transit")
        assert sent["epcList"] == _returned_sgtins()  # K00004, quarantined in the same report, stays out
        assert sent["readPoint"] == {"id": site}
        assert sent["sourceList"] == [{"type": "location", "source": site}]
        assert sent["destinationList"] == [{"type": "location", "destination": depot}]
        assert sent["lotline:recall"] == RECALL_NUMBER
        receipts = [
            e for e in events(doc) if e.get("bizStep") == "receiving" and e.get("disposition") == "returned"
        ]
        assert len(receipts) == 1
        (received,) = receipts
        assert received["epcList"] == _returned_sgtins()
        assert received["readPoint"] == received["bizLocation"] == {"id": depot}
        assert received["lotline:recall"] == RECALL_NUMBER
        (held,) = [e for e in events(doc) if e.get("bizStep") == "holding" and "lotline:recall" in e]
        assert held["epcList"] == [ids.sgtin(KIT_GTIN, "K00004")]
        assert held["bizLocation"] == {"id": site} and held["lotline:recall"] == RECALL_NUMBER
        assert [e for _, e in _recall_returns(doc)] == [sent, held, received]
        assert sent["eventID"].startswith("ni:///sha-256;") and sent["eventID"] != received["eventID"]
        # each is found by its ID, with the chain position of the one ledger step it comes from
        (sent_at,) = source.event_page(sent["eventID"]).seqs
        (received_at,) = source.event_page(received["eventID"]).seqs
        assert sent_at < received_at


def test_capture_refuses_recall_returns_and_records_nothing(source: Epcis, target: Any) -> None:
    ledger, into = target
    doc = exported(source, blinded=False)
    returns = _recall_returns(doc)
    assert len(returns) == 3  # sent back, quarantined, received back
    result = into.capture(doc, PROGRAM_ROLES)
    assert not result.accepted
    assert [(e.index, e.event_id, e.code, e.reason) for e in result.errors] == [
        (i, e["eventID"], MappingError.code, RECALL_STEP_REFUSED) for i, e in returns
    ]
    assert "/recalls" in RECALL_STEP_REFUSED
    assert result.recorded == 0 and result.ledger_events == 0
    assert ledger.chain.head()[0] == 0, "a refused document recorded events"
    with into.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(captured)).scalar() == 0


def test_without_its_recall_returns_the_same_export_is_captured(source: Epcis, target: Any) -> None:
    """Only the recall returns are refused: the rest of the program maps as before."""
    ledger, into = target
    doc = exported(source, blinded=False)
    returns = {i for i, _ in _recall_returns(doc)}
    doc["epcisBody"]["eventList"] = [e for i, e in enumerate(events(doc)) if i not in returns]
    result = into.capture(doc, PROGRAM_ROLES)
    assert result.accepted, result.errors[:5]
    assert result.recorded == len(events(doc))
    # the target never heard of the recall campaign: the kits are still at the site, in use
    for number in [*RETURNED, "K00004"]:
        kit = ledger.get(Kit, Kit.create_id(KIT_GTIN, number))
        assert (kit.status, kit.location_id) == (KitStatus.RECEIVED, Location.create_id(SITE_GLN))
