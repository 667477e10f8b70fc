"""Kits go back from a site to a depot at any time, not only in a recall: sent back with a reason,
in transit out of the site's hands, received and held at the depot; a kit of an open recall goes back
through the recall instead, which records it."""

from __future__ import annotations

import pytest

from ledger.application import Ledger
from ledger.commands import (
    Dispense,
    ReceiveRecallReturns,
    ReceiveReturnedKits,
    ReportRecallKits,
    ReturnToDepot,
)
from ledger.domain import Kit, KitStatus
from ledger.errors import InvalidInput, InvalidTransition, KitNotUsable, KitsNotUsable
from tests.builders import Program, actors, writes_nothing


@pytest.fixture
def at_site(program: Program) -> Program:
    """K00001-K00004 received at the DE site; K00005-K00010 at the depot."""
    program.at_site(["K00001", "K00002", "K00003", "K00004"])
    return program


def send_back(program: Program, *numbers: str, reason: str = "site closing its stock of this run") -> None:
    program.ledger.handle(
        ReturnToDepot(
            site_id=program.site, depot_id=program.depot, kit_ids=program.kits(*numbers), reason=reason
        ),
        actors.site,
    )


def receive(program: Program, *numbers: str) -> None:
    received = ReceiveReturnedKits(depot_id=program.depot, kit_ids=program.kits(*numbers))
    program.ledger.handle(received, actors.depot)


def kit(program: Program, number: str) -> Kit:
    return program.ledger.get(Kit, program.kit(number))


def test_a_site_sends_kits_back_and_the_depot_receives_them(at_site: Program) -> None:
    send_back(at_site, "K00002", "K00003")
    sent = kit(at_site, "K00002")
    assert (sent.status, sent.location_id, sent.destination_id) == (KitStatus.IN_TRANSIT, None, at_site.depot)
    assert sent.recall_number is None and sent.returning_from == at_site.site
    # out of the site's hands: it can no longer dispense it
    with writes_nothing(at_site.ledger, KitNotUsable, "is not held at this place"):
        at_site.ledger.handle(
            Dispense(kit_id=at_site.kit("K00002"), site_id=at_site.site, subject="SUBJ-1"), actors.site
        )
    receive(at_site, "K00002", "K00003")
    back = kit(at_site, "K00003")
    assert (back.status, back.location_id, back.destination_id) == (KitStatus.RETURNED, at_site.depot, None)
    events = list(at_site.ledger.events.get(at_site.kit("K00003")))
    assert [type(e).__name__ for e in events[-2:]] == ["ReturnShipped", "ReturnReceived"]
    assert events[-2].audit["reason"] == "site closing its stock of this run"


def test_a_return_names_its_reason_and_goes_to_a_depot(at_site: Program) -> None:
    with writes_nothing(at_site.ledger, InvalidInput, "needs a reason"):
        send_back(at_site, "K00002", reason="   ")
    with writes_nothing(at_site.ledger, InvalidInput, "expected depot"):
        at_site.ledger.handle(
            ReturnToDepot(
                site_id=at_site.site, depot_id=at_site.fr_site, kit_ids=at_site.kits("K00002"), reason="r"
            ),
            actors.site,
        )


def test_only_kits_the_site_holds_go_back(at_site: Program) -> None:
    L = at_site.ledger
    L.handle(Dispense(kit_id=at_site.kit("K00001"), site_id=at_site.site, subject="SUBJ-1"), actors.site)
    with writes_nothing(L, KitsNotUsable) as info:
        send_back(at_site, "K00001", "K00002", "K00007")
    reasons = {p["kit_number"]: p["reason"] for p in info.value.details["problems"]}
    assert reasons == {"K00007": "kit K00007: is not held at this place; cannot send back"}
    with writes_nothing(L, KitsNotUsable, "is dispensed; cannot send back"):
        send_back(at_site, "K00001")


def test_the_depot_receives_only_what_was_sent_back_to_it(at_site: Program) -> None:
    with writes_nothing(at_site.ledger, KitsNotUsable, "K00002"):
        receive(at_site, "K00002")  # still at the site


def test_a_kit_of_an_open_recall_goes_back_through_the_recall(at_site: Program) -> None:
    L = at_site.ledger
    recall = at_site.open_recall("RC-1")
    with writes_nothing(L, KitsNotUsable, f"POST /recalls/{recall}/sites/{at_site.site}/reports"):
        send_back(at_site, "K00002")
    L.handle(
        ReportRecallKits(
            recall_id=recall,
            place_id=at_site.site,
            reports=[{"kit_id": at_site.kit("K00002"), "outcome": "returned"}],
        ),
        actors.site,
    )
    with writes_nothing(L, KitsNotUsable, f"POST /recalls/{recall}/returns"):
        receive(at_site, "K00002")
    L.handle(
        ReceiveRecallReturns(recall_id=recall, depot_id=at_site.depot, kit_ids=at_site.kits("K00002")),
        actors.depot,
    )
    assert kit(at_site, "K00002").status == KitStatus.RETURNED


def test_a_routine_return_is_not_taken_for_a_recall_return(ledger: Ledger, at_site: Program) -> None:
    send_back(at_site, "K00004")
    recall = at_site.open_recall("RC-2")
    # the recall found K00004 in transit to the depot; the depot receives it as the routine return it is
    receive(at_site, "K00004")
    assert kit(at_site, "K00004").status == KitStatus.RETURNED
    with writes_nothing(ledger, InvalidTransition, "K00004 is unreported; cannot receive as a return"):
        ledger.handle(
            ReceiveRecallReturns(recall_id=recall, depot_id=at_site.depot, kit_ids=at_site.kits("K00004")),
            actors.depot,
        )
