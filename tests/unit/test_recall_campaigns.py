"""Recall campaigns on the ledger: opening records the affected set, stops the kits, and closure needs
every kit accounted for.

The program: 10 blinded kits of run P-1 (6 active from DP-1, made from API-1; 4 placebo). K00001-K00004
are received at Site 101 and K00001 is dispensed to SUBJ-1; K00005-K00006 are in transit to Site 101
(S-2); K00007-K00010 stay at the depot. Recalling API-1 reaches the whole run (blinded: every arm).
"""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest

from ledger.application import recalls as recall_handlers
from ledger.commands import (
    AcknowledgeRecall,
    AuthoriseDestruction,
    CloseRecall,
    ConfirmReceipt,
    DestroyKits,
    DestroyRecalledKits,
    Dispense,
    HoldLot,
    JustifyUnaccounted,
    KitReportLine,
    OpenRecall,
    RecallLot,
    ReceiveRecallReturns,
    ReportRecallKits,
    ReturnKit,
)
from ledger.domain import Kit, KitStatus, Lot, LotStatus, PackagingRun
from ledger.domain.recall import (
    KitOutcome,
    KitReport,
    KitState,
    Recall,
    RecallScope,
    RecallStatus,
    in_scope,
)
from ledger.errors import (
    InvalidInput,
    InvalidTransition,
    KitNotInRecall,
    KitNotUsable,
    KitsNotUsable,
    LotNotUsable,
    NotAuthorised,
    RecallOutstanding,
    RecallWrongPlace,
    RunRecalled,
    SignatureRequired,
)
from ledger.values import Meaning, sign
from tests.builders import KIT_GTIN, Program, actors, writes_nothing

ALL = [f"K{i:05d}" for i in range(1, 11)]


@pytest.fixture
def spread(program: Program) -> Program:
    """Kits at the site (one dispensed), in transit, and at the depot."""
    program.at_site(ALL[:4])
    program.ledger.handle(
        Dispense(kit_id=program.kit("K00001"), site_id=program.site, subject="SUBJ-1"), actors.site
    )
    program.ship(ALL[4:6], shipment_number="S-2", serial=2)
    return program


def open_recall(program: Program, scope: str = "all_kits", number: str = "RC-1") -> UUID:
    written = program.ledger.handle(
        OpenRecall(
            recall_number=number,
            lot_ids=[program.api],
            reason="API-1 impurity above limit",
            classification="class_ii",
            scope=scope,
            signature=sign(actors.qa, Meaning.APPROVED),
        ),
        actors.qa,
    )
    recall_id: UUID = written.id
    return recall_id


def recall_of(program: Program, recall_id: UUID) -> Recall:
    return program.ledger.get(Recall, recall_id)


def report(program: Program, recall_id: UUID, number: str, outcome: str, subject: str | None = None) -> None:
    program.ledger.handle(
        ReportRecallKits(
            recall_id=recall_id,
            place_id=program.site,
            reports=[KitReportLine(kit_id=program.kit(number), outcome=outcome, subject=subject)],
        ),
        actors.site,
    )


def test_opening_records_every_kit_of_the_reached_run_by_place_and_recalls_the_lot(spread: Program) -> None:
    recall = recall_of(spread, open_recall(spread))
    # the whole run, every arm: 10 kits; 6 known at Site 101 (4 received, 2 in transit to it), 4 at the depot
    assert sorted(k.kit_number for k in recall.kits.values()) == ALL
    assert [k.kit_number for k in recall.kits_at(str(spread.site))] == ALL[:6]
    assert [k.kit_number for k in recall.kits_at(str(spread.depot))] == ALL[6:]
    assert recall.kits[spread.kit("K00005")].status_at_open == "in_transit"
    assert recall.places[str(spread.site)]["name"] == "Site 101"
    # the shipment in transit is flagged in the record
    assert recall.shipments_in_transit == [
        {"shipment_id": str(spread.shipments["S-2"]), "to_id": str(spread.site), "kits": 2}
    ]
    assert [r["batch_number"] for r in recall.runs] == ["P-1"]
    assert spread.ledger.get(Lot, spread.api).status == LotStatus.RECALLED
    assert recall.status == RecallStatus.OPEN and recall.outstanding() == sorted(
        recall.kits.values(), key=lambda k: k.kit_number
    )


def test_opening_saves_the_recall_and_the_lot_recall_atomically(spread: Program) -> None:
    spread.ledger.handle(HoldLot(lot_id=spread.api, reason="investigation"), actors.qa)
    spread.ledger.handle(
        RecallLot(lot_id=spread.api, signature=sign(actors.qa, Meaning.APPROVED), reason="x"), actors.qa
    )
    # the lot is already recalled: the recall is refused and nothing is written
    with writes_nothing(spread.ledger, InvalidTransition, "is recalled; cannot recall"):
        open_recall(spread)
    assert Recall.create_id("RC-1") not in spread.ledger.repository


def test_cannot_ship_kit_from_a_lot_under_recall(spread: Program) -> None:
    open_recall(spread)
    with writes_nothing(spread.ledger, KitsNotUsable) as info:
        spread.ship(["K00007"], shipment_number="S-3", serial=3)
    assert info.value.details["problems"][0]["code"] == "lot_not_usable"
    assert "API-1" in info.value.details["problems"][0]["reason"]


def test_cannot_dispense_kit_from_a_lot_under_recall(spread: Program) -> None:
    open_recall(spread)
    with writes_nothing(spread.ledger, LotNotUsable, "lot API-1 cannot be used: an upstream lot is recalled"):
        spread.ledger.handle(
            Dispense(kit_id=spread.kit("K00002"), site_id=spread.site, subject="SUBJ-2"), actors.site
        )


def test_undispensed_scope_leaves_out_dispensed_kits(spread: Program) -> None:
    recall = recall_of(spread, open_recall(spread, scope="undispensed"))
    assert sorted(k.kit_number for k in recall.kits.values()) == ALL[1:]


def test_unexpired_scope_keeps_kits_expiring_today_or_later() -> None:
    def kit(expires: date) -> KitState:
        return KitState(Kit.create_id(KIT_GTIN, "K1"), KIT_GTIN, "K1", "received", None, None, expires)

    today = date(2026, 1, 10)
    assert in_scope(kit(today), RecallScope.UNEXPIRED, today)
    assert not in_scope(kit(today - timedelta(days=1)), RecallScope.UNEXPIRED, today)
    assert in_scope(kit(today - timedelta(days=1)), RecallScope.ALL_KITS, today)


def test_only_qa_with_an_approval_signature_opens_a_recall(spread: Program) -> None:
    with writes_nothing(spread.ledger, NotAuthorised):
        spread.ledger.handle(
            OpenRecall(
                recall_number="RC-1",
                lot_ids=[spread.api],
                reason="r",
                classification="class_i",
                scope="all_kits",
                signature=sign(actors.site, Meaning.APPROVED),
            ),
            actors.site,
        )
    with writes_nothing(spread.ledger, SignatureRequired):
        spread.ledger.handle(
            OpenRecall(
                recall_number="RC-1",
                lot_ids=[spread.api],
                reason="r",
                classification="class_i",
                scope="all_kits",
                signature=sign(actors.qa, Meaning.RELEASED),
            ),
            actors.qa,
        )
    with writes_nothing(spread.ledger, InvalidInput, "classification is one of"):
        spread.ledger.handle(
            OpenRecall(
                recall_number="RC-1",
                lot_ids=[spread.api],
                reason="r",
                classification="class_iv",
                scope="all_kits",
                signature=sign(actors.qa, Meaning.APPROVED),
            ),
            actors.qa,
        )


def test_a_site_acknowledges_once_and_only_a_place_of_the_recall(spread: Program) -> None:
    recall_id = open_recall(spread)
    spread.ledger.handle(AcknowledgeRecall(recall_id=recall_id, place_id=spread.site), actors.site)
    assert str(spread.site) in recall_of(spread, recall_id).acknowledged
    with writes_nothing(spread.ledger, InvalidTransition, "already acknowledged"):
        spread.ledger.handle(AcknowledgeRecall(recall_id=recall_id, place_id=spread.site), actors.site)
    with writes_nothing(spread.ledger, RecallWrongPlace, "holds no kit of this recall"):
        spread.ledger.handle(AcknowledgeRecall(recall_id=recall_id, place_id=spread.fr_site), actors.site)


def test_a_site_reports_only_its_own_kits_of_the_recall(spread: Program) -> None:
    recall_id = open_recall(spread)
    with writes_nothing(spread.ledger, RecallWrongPlace, "K00007 was not recorded there"):
        report(spread, recall_id, "K00007", "quarantined")
    with writes_nothing(spread.ledger, KitNotInRecall):
        spread.ledger.handle(
            ReportRecallKits(
                recall_id=recall_id,
                place_id=spread.site,
                reports=[KitReportLine(kit_id=Kit.create_id(KIT_GTIN, "K99999"), outcome="quarantined")],
            ),
            actors.site,
        )
    report(spread, recall_id, "K00002", "quarantined")
    with writes_nothing(spread.ledger, InvalidTransition, "K00002 is quarantined; cannot report quarantined"):
        report(spread, recall_id, "K00002", "quarantined")
    report(spread, recall_id, "K00002", "returned")  # held first, then sent back
    with writes_nothing(spread.ledger, InvalidTransition, "K00002 is returned; cannot report quarantined"):
        report(spread, recall_id, "K00002", "quarantined")
    with writes_nothing(spread.ledger, InvalidInput, "a site reports"):
        report(spread, recall_id, "K00003", "justified")


def test_a_dispensed_report_must_match_the_ledgers_subject(spread: Program) -> None:
    recall_id = open_recall(spread)
    with writes_nothing(spread.ledger, InvalidInput, "dispensed to SUBJ-1, not dispensed to SUBJ-9"):
        report(spread, recall_id, "K00001", "dispensed", "SUBJ-9")
    with writes_nothing(spread.ledger, InvalidInput, "as received, not dispensed to SUBJ-1"):
        report(spread, recall_id, "K00002", "dispensed", "SUBJ-1")
    with writes_nothing(spread.ledger, InvalidInput, "with its subject"):
        report(spread, recall_id, "K00001", "dispensed")
    report(spread, recall_id, "K00001", "dispensed", "SUBJ-1")
    recall = recall_of(spread, recall_id)
    assert recall.outcomes[spread.kit("K00001")]["subject"] == "SUBJ-1"
    assert recall.is_accounted(spread.kit("K00001"))


def test_a_returned_kit_counts_once_the_depot_receives_it(spread: Program) -> None:
    recall_id = open_recall(spread)
    kit = spread.kit("K00003")
    with writes_nothing(spread.ledger, InvalidTransition, "unreported; cannot receive as a return"):
        spread.ledger.handle(
            ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.depot, kit_ids=[kit]), actors.depot
        )
    report(spread, recall_id, "K00003", "returned")
    assert not recall_of(spread, recall_id).is_accounted(kit)
    with writes_nothing(spread.ledger, NotAuthorised):
        spread.ledger.handle(
            ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.depot, kit_ids=[kit]), actors.site
        )
    spread.ledger.handle(
        ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.depot, kit_ids=[kit]), actors.depot
    )
    recall = recall_of(spread, recall_id)
    assert recall.outcomes[kit]["outcome"] == KitOutcome.RECEIVED_AT_DEPOT and recall.is_accounted(kit)
    assert recall.per_place[str(spread.site)] == {"kits": 6, "reported": 1, "accounted": 1}


def test_justification_needs_qa_signature_and_an_unaccounted_kit(spread: Program) -> None:
    recall_id = open_recall(spread)
    kit = spread.kit("K00004")
    with writes_nothing(spread.ledger, SignatureRequired):
        spread.ledger.handle(
            JustifyUnaccounted(
                recall_id=recall_id,
                kit_id=kit,
                justification="lost",
                signature=None,
            ),
            actors.qa,
        )
    with writes_nothing(spread.ledger, InvalidInput, "states why"):
        spread.ledger.handle(
            JustifyUnaccounted(
                recall_id=recall_id,
                kit_id=kit,
                justification="  ",
                signature=sign(actors.qa, Meaning.APPROVED),
            ),
            actors.qa,
        )
    report(spread, recall_id, "K00001", "dispensed", "SUBJ-1")
    with writes_nothing(spread.ledger, InvalidTransition, "accounted for; cannot justify"):
        spread.ledger.handle(
            JustifyUnaccounted(
                recall_id=recall_id,
                kit_id=spread.kit("K00001"),
                justification="lost",
                signature=sign(actors.qa, Meaning.APPROVED),
            ),
            actors.qa,
        )


def test_closure_is_refused_until_every_kit_is_accounted_for_then_signed(spread: Program) -> None:
    L = spread.ledger
    recall_id = open_recall(spread)
    with writes_nothing(L, RecallOutstanding, "10 kit\\(s\\) not accounted for"):
        L.handle(CloseRecall(recall_id=recall_id, signature=sign(actors.qa, Meaning.APPROVED)), actors.qa)
    # Site 101: one dispensed, three quarantined; the two kits in transit arrive and are quarantined
    report(spread, recall_id, "K00001", "dispensed", "SUBJ-1")
    for n in ("K00002", "K00003", "K00004"):
        report(spread, recall_id, n, "quarantined")
    spread.receive_all(spread.shipments["S-2"], ALL[4:6])
    report(spread, recall_id, "K00005", "quarantined")
    report(spread, recall_id, "K00006", "returned")
    # depot: three quarantined in place, one cannot be found and QA justifies it
    for n in ("K00007", "K00008", "K00009"):
        L.handle(
            ReportRecallKits(
                recall_id=recall_id,
                place_id=spread.depot,
                reports=[KitReportLine(kit_id=spread.kit(n), outcome="quarantined")],
            ),
            actors.depot,
        )
    sig = sign(actors.qa, Meaning.APPROVED)
    L.handle(
        JustifyUnaccounted(
            recall_id=recall_id,
            kit_id=spread.kit("K00010"),
            justification="not found",
            signature=sig,
        ),
        actors.qa,
    )
    # quarantined at the site is held, not recovered: the depot's quarantined kits are in its hands
    with writes_nothing(L, RecallOutstanding, "5 kit\\(s\\) not accounted for: K00002, K00003, K00004, "
                        "K00005, K00006 \\(5 at Site 101\\)") as info:
        L.handle(CloseRecall(recall_id=recall_id, signature=sig), actors.qa)
    assert info.value.details["places"] == {"Site 101": 5}
    assert recall_of(spread, recall_id).reconciled_at is None
    # two quarantined kits go back to the depot; two are destroyed at the site under QA's authorisation
    for n in ("K00002", "K00003"):
        report(spread, recall_id, n, "returned")
    back = [spread.kit(n) for n in ("K00002", "K00003", "K00006")]
    L.handle(ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.depot, kit_ids=back), actors.depot)
    on_site = [spread.kit(n) for n in ("K00004", "K00005")]
    L.handle(
        AuthoriseDestruction(
            kit_ids=on_site, signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION), reason="recall RC-1"
        ),
        actors.qa,
    )
    L.handle(
        DestroyRecalledKits(
            recall_id=recall_id,
            place_id=spread.site,
            kit_ids=on_site,
            certificate="DC-S-1",
            method="incineration",
        ),
        actors.site,
    )
    recall = recall_of(spread, recall_id)
    assert recall.reconciled_at is not None and recall.outstanding() == []
    L.handle(CloseRecall(recall_id=recall_id, signature=sig), actors.qa)
    recall = recall_of(spread, recall_id)
    assert recall.status == RecallStatus.CLOSED and recall.closed is not None
    assert recall.closed["signature"]["meaning"] == "approved"
    with writes_nothing(L, InvalidTransition, "is closed; cannot acknowledge"):
        L.handle(AcknowledgeRecall(recall_id=recall_id, place_id=spread.depot), actors.depot)


def test_kits_destroyed_before_the_recall_are_accounted_from_the_start(spread: Program) -> None:
    L = spread.ledger
    kit = spread.kit("K00010")
    L.handle(
        AuthoriseDestruction(
            kit_ids=[kit],
            signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
            reason="damaged carton",
        ),
        actors.qa,
    )
    L.handle(
        DestroyKits(location_id=spread.depot, kit_ids=[kit], certificate="DC-1", method="incineration"),
        actors.depot,
    )
    recall = recall_of(spread, open_recall(spread))
    assert recall.outcomes[kit]["outcome"] == KitOutcome.DESTROYED_BEFORE
    assert recall.accounted_count == 1
    assert recall.kits[kit].place == str(spread.depot)  # where it was destroyed, not "place unknown"


def test_a_kit_state_reader_replaces_loading_each_kit(spread: Program) -> None:
    calls: list[int] = []

    def reader(kit_ids: list[UUID]) -> dict[UUID, KitState]:
        calls.append(len(kit_ids))
        return recall_handlers._kit_states(spread.ledger, kit_ids)

    as_of = spread.ledger.chain.head()[0]  # the reader answers as of the chain's head
    spread.ledger.use_kit_states(lambda: (reader, {"reader": "test", "as_of": as_of}))
    written = spread.ledger.handle(
        OpenRecall(
            recall_number="RC-2",
            lot_ids=[spread.api],
            reason="r",
            classification="class_iii",
            scope="all_kits",
            signature=sign(actors.qa, Meaning.APPROVED),
        ),
        actors.qa,
    )
    assert calls == [10]
    assert recall_of(spread, written.id).source == {"reader": "test", "as_of": as_of}


def kit_of(program: Program, number: str) -> Kit:
    return program.ledger.get(Kit, program.kit(number))


def test_a_returned_kit_travels_back_to_the_depot_that_shipped_it(spread: Program) -> None:
    L = spread.ledger
    recall_id = open_recall(spread)
    report(spread, recall_id, "K00003", "returned")
    kit = kit_of(spread, "K00003")
    # out of the site's hands, on its way to the depot: the site can no longer act on it
    assert (kit.status, kit.location_id, kit.destination_id) == (KitStatus.IN_TRANSIT, None, spread.depot)
    with writes_nothing(L, KitNotUsable, "is not held at this place; cannot return"):
        L.handle(ReturnKit(kit_id=kit.id, site_id=spread.site, condition="unused"), actors.site)
    # only a depot receives it, and only the depot it was sent to
    with writes_nothing(L, InvalidInput, "expected depot"):
        L.handle(
            ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.site, kit_ids=[kit.id]), actors.depot
        )
    L.handle(ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.depot, kit_ids=[kit.id]), actors.depot)
    kit = kit_of(spread, "K00003")
    assert (kit.status, kit.location_id, kit.destination_id) == (KitStatus.RETURNED, spread.depot, None)
    assert recall_of(spread, recall_id).outcomes[kit.id]["outcome"] == KitOutcome.RECEIVED_AT_DEPOT


def test_a_kit_the_depot_never_shipped_is_quarantined_there_not_returned(spread: Program) -> None:
    recall_id = open_recall(spread)
    with writes_nothing(spread.ledger, InvalidInput, "never shipped"):
        spread.ledger.handle(
            ReportRecallKits(
                recall_id=recall_id,
                place_id=spread.depot,
                reports=[KitReportLine(kit_id=spread.kit("K00007"), outcome="returned")],
            ),
            actors.depot,
        )


def test_a_kit_in_transit_to_the_site_cannot_be_sent_back_before_it_arrives(spread: Program) -> None:
    recall_id = open_recall(spread)
    with writes_nothing(spread.ledger, KitNotUsable, "is not held at this place; cannot send back"):
        report(spread, recall_id, "K00005", "returned")


def test_a_batch_report_is_all_or_nothing_and_names_every_refused_kit(spread: Program) -> None:
    L = spread.ledger
    recall_id = open_recall(spread)
    good = [
        KitReport(spread.kit("K00002"), KitOutcome.RETURNED),
        KitReport(spread.kit("K00003"), KitOutcome.QUARANTINED),
    ]
    bad = [
        KitReport(spread.kit("K00007"), KitOutcome.QUARANTINED),  # held at the depot, not the site
        KitReport(spread.kit("K00001"), KitOutcome.DISPENSED, "SUBJ-9"),  # the ledger says SUBJ-1
    ]
    with writes_nothing(L, KitsNotUsable) as info:
        L.handle(ReportRecallKits(recall_id=recall_id, place_id=spread.site, reports=good + bad), actors.site)
    problems = {p["kit_number"]: p["code"] for p in info.value.details["problems"]}
    assert problems == {"K00007": "recall_wrong_place", "K00001": "invalid_input"}
    # the refused batch left nothing behind, in the store or in the ledger's kept copy
    assert kit_of(spread, "K00002").status == KitStatus.RECEIVED
    with writes_nothing(L, InvalidInput, "each kit is listed once"):
        L.handle(
            ReportRecallKits(recall_id=recall_id, place_id=spread.site, reports=good + good[:1]), actors.site
        )
    written = L.handle(ReportRecallKits(recall_id=recall_id, place_id=spread.site, reports=good), actors.site)
    assert len(written.events) == 4  # two recall reports, one kit sent back, one quarantined
    assert kit_of(spread, "K00003").status == KitStatus.QUARANTINED
    recall = recall_of(spread, recall_id)
    # neither counts yet: one is on its way back, the other held at the site
    assert recall.per_place[str(spread.site)] == {"kits": 6, "reported": 2, "accounted": 0}
    assert recall.by_outcome == {"returned": 1, "quarantined": 1}


def test_recalled_kits_destroyed_at_the_depot_are_recorded_in_the_recall(spread: Program) -> None:
    L = spread.ledger
    recall_id = open_recall(spread)
    report(spread, recall_id, "K00002", "returned")
    L.handle(
        ReceiveRecallReturns(recall_id=recall_id, depot_id=spread.depot, kit_ids=[spread.kit("K00002")]),
        actors.depot,
    )
    doomed = [spread.kit(n) for n in ("K00002", "K00007")]

    def destroy(kit_ids: list[UUID]) -> None:
        L.handle(
            DestroyRecalledKits(
                recall_id=recall_id,
                place_id=spread.depot,
                kit_ids=kit_ids,
                certificate="DC-RC-1",
                method="incineration",
            ),
            actors.depot,
        )

    # not without QA's signed authorisation
    with writes_nothing(L, KitsNotUsable) as info:
        destroy(doomed)
    assert {p["code"] for p in info.value.details["problems"]} == {"kit_not_usable"}
    L.handle(
        AuthoriseDestruction(
            kit_ids=[*doomed, spread.kit("K00003")],
            signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
            reason="recall RC-1",
        ),
        actors.qa,
    )
    # not a kit the depot does not hold (K00003 is at the site), nor one outside the recall's record
    with writes_nothing(L, KitNotUsable, "is not held at this place; cannot destroy"):
        destroy([spread.kit("K00003")])
    with writes_nothing(L, NotAuthorised):
        L.handle(
            DestroyRecalledKits(
                recall_id=recall_id,
                place_id=spread.depot,
                kit_ids=doomed,
                certificate="C",
                method="m",
            ),
            actors.mfg,
        )
    destroy(doomed)
    recall = recall_of(spread, recall_id)
    for kit_id in doomed:
        assert L.get(Kit, kit_id).status == KitStatus.DESTROYED
        assert recall.outcomes[kit_id]["outcome"] == KitOutcome.DESTROYED
        assert recall.outcomes[kit_id]["certificate"] == "DC-RC-1"
    assert recall.by_outcome == {"destroyed": 2}
    assert recall.per_place[str(spread.depot)]["accounted"] == 1
    with writes_nothing(L, KitsNotUsable):
        destroy(doomed)


def test_destruction_through_a_recall_names_only_kits_of_its_record(spread: Program) -> None:
    recall_id = open_recall(spread)
    stranger = UUID(int=7)
    with writes_nothing(spread.ledger, KitNotInRecall, str(stranger)):
        spread.ledger.handle(
            DestroyRecalledKits(
                recall_id=recall_id,
                place_id=spread.depot,
                kit_ids=[stranger],
                certificate="C",
                method="m",
            ),
            actors.depot,
        )


def test_a_kit_is_reported_quarantined_only_where_it_is_held(spread: Program) -> None:
    L = spread.ledger
    recall_id = open_recall(spread)
    # in transit to the site, or dispensed to a subject: not in the site's hands to quarantine
    with writes_nothing(L, KitNotUsable, "is not held at this place; cannot quarantine"):
        report(spread, recall_id, "K00005", "quarantined")
    with writes_nothing(L, KitNotUsable, "is dispensed to SUBJ-1"):
        report(spread, recall_id, "K00001", "quarantined")
    # missing on receipt: it never arrived, so it is left for QA's justification
    L.handle(
        ConfirmReceipt(
            shipment_id=spread.shipments["S-2"],
            site_id=spread.site,
            outcomes={"K00005": "received", "K00006": "missing"},
        ),
        actors.site,
    )
    with writes_nothing(L, KitNotUsable, "is not held at this place; cannot quarantine"):
        report(spread, recall_id, "K00006", "quarantined")
    report(spread, recall_id, "K00005", "quarantined")
    assert not recall_of(spread, recall_id).is_accounted(spread.kit("K00005"))  # held there, not back
    # the kit itself is quarantined where it is: stock answers stop counting it usable
    kit = kit_of(spread, "K00005")
    assert (kit.status, kit.location_id) == (KitStatus.QUARANTINED, spread.site)


def test_a_kit_of_an_open_recall_is_destroyed_only_through_the_recall(spread: Program) -> None:
    L = spread.ledger
    recall_id = open_recall(spread)
    report(spread, recall_id, "K00002", "quarantined")
    held, unreported = spread.kit("K00002"), spread.kit("K00003")
    L.handle(
        AuthoriseDestruction(
            kit_ids=[held, unreported],
            signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
            reason="recall RC-1",
        ),
        actors.qa,
    )
    for kit_id in (held, unreported):
        plain = DestroyKits(location_id=spread.site, kit_ids=[kit_id], certificate="DC-9", method="burnt")
        route = f"POST /recalls/{recall_id}/destructions"
        with writes_nothing(L, KitsNotUsable, f"is in open recall RC-1.*{route}"):
            L.handle(plain, actors.site)
    L.handle(
        DestroyRecalledKits(
            recall_id=recall_id,
            place_id=spread.site,
            kit_ids=[held, unreported],
            certificate="DC-9",
            method="incineration",
        ),
        actors.site,
    )
    recall = recall_of(spread, recall_id)
    for kit_id in (held, unreported):
        assert recall.outcomes[kit_id]["outcome"] == KitOutcome.DESTROYED
        assert recall.outcomes[kit_id]["place_id"] == str(spread.site)
        assert L.get(Kit, kit_id).destroyed_at_id == spread.site
    assert recall.per_place[str(spread.site)]["accounted"] == 2


def test_a_kit_of_a_lot_recalled_without_a_campaign_is_destroyed_as_usual(spread: Program) -> None:
    L = spread.ledger
    L.handle(
        RecallLot(lot_id=spread.api, signature=sign(actors.qa, Meaning.APPROVED), reason="impurity"),
        actors.qa,
    )
    kit = spread.kit("K00007")
    L.handle(
        AuthoriseDestruction(
            kit_ids=[kit], signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION), reason="lot recalled"
        ),
        actors.qa,
    )
    L.handle(
        DestroyKits(location_id=spread.depot, kit_ids=[kit], certificate="DC-8", method="incineration"),
        actors.depot,
    )
    assert L.get(Kit, kit).status == KitStatus.DESTROYED


# --- a packaging run recalled on its own (a labelling error) -------------------------------------------


def open_run_recall(program: Program, *run_ids: UUID, number: str = "RC-L1") -> UUID:
    written = program.ledger.handle(
        OpenRecall(
            recall_number=number,
            run_ids=list(run_ids),
            reason="wrong expiry printed on the kit labels",
            classification="class_iii",
            scope="all_kits",
            signature=sign(actors.qa, Meaning.APPROVED),
        ),
        actors.qa,
    )
    recall_id: UUID = written.id
    return recall_id


def test_a_packaging_run_is_recalled_alone_and_its_lot_stays_usable(spread: Program) -> None:
    L = spread.ledger
    first = spread.run
    spread.package(active_kits=2, placebo_kits=0, batch_number="P-2", kit_prefix="L")
    spread.release_run()
    recall = recall_of(spread, open_run_recall(spread, first))
    assert recall.lots == [] and recall.suspect_runs == [{"run_id": str(first), "batch_number": "P-1"}]
    assert {k.kit_number for k in recall.kits.values()} == set(ALL)  # every kit of P-1, none of P-2
    assert L.get(PackagingRun, first).recalled_by == "RC-L1"
    assert L.get(Lot, spread.dp).status == LotStatus.RELEASED
    # P-1's kits are stopped wherever they are; P-2, from the same drug-product lot, ships
    with writes_nothing(L, KitsNotUsable) as info:
        spread.ship(["K00008"], shipment_number="S-9", serial=9)
    assert info.value.details["problems"][0]["code"] == "run_recalled"
    with writes_nothing(L, RunRecalled, "packaging batch P-1 is recalled under RC-L1"):
        L.handle(Dispense(kit_id=spread.kit("K00002"), site_id=spread.site, subject="SUBJ-2"), actors.site)
    spread.ship(["L00001"], shipment_number="S-10", serial=10)
    with writes_nothing(L, InvalidTransition, "recalled under RC-L1; cannot recall"):
        open_run_recall(spread, first, number="RC-L2")


def test_a_recall_names_lots_or_runs(spread: Program) -> None:
    with writes_nothing(spread.ledger, InvalidInput, "names its suspect lots or packaging runs"):
        open_run_recall(spread)
