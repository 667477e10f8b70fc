"""Writes to a recall from several processes (two ledgers on one store): each keeps its own copy of
the recall for writing, brought up to date before every step; a step that loses a race to another
writer is checked again on the newer recall and lands, or is refused if the other writer made it
wrong. Nothing is recorded twice and the chain stays whole. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from ledger.application import Ledger
from ledger.commands import KitReportLine, OpenRecall, ReportRecallKits
from ledger.domain.recall import KitOutcome, Recall
from ledger.errors import InvalidTransition
from ledger.values import Meaning, sign
from ledger.verify import verify_chain
from tests.builders import Program, actors

KITS = [f"K{i:05d}" for i in range(1, 11)]


@pytest.fixture
def opened(open_ledger: Callable[[], Ledger]) -> tuple[Program, UUID]:
    """Six kits received at Site 101, four at the depot; a recall of API-1 reaching all ten."""
    program = Program.released(open_ledger())
    program.at_site(KITS[:6])
    written = program.ledger.handle(
        OpenRecall(
            recall_number="RC-9",
            lot_ids=[program.api],
            reason="impurity",
            classification="class_ii",
            scope="all_kits",
            signature=sign(actors.qa, Meaning.APPROVED),
        ),
        actors.qa,
    )
    return program, written.id


def quarantine(ledger: Ledger, program: Program, recall_id: UUID, number: str) -> Any:
    return ledger.handle(
        ReportRecallKits(
            recall_id=recall_id,
            place_id=program.site,
            reports=[KitReportLine(kit_id=program.kit(number), outcome="quarantined")],
        ),
        actors.site,
    )


def interleave_once(ledger: Ledger, other_write: Callable[[], Any]) -> list[int]:
    """Make `ledger`'s next recall step lose a race: `other_write` lands just after `ledger` has
    brought its copy up to date and before it saves. Returns the number of tries per step."""
    tries: list[int] = []
    bring_up_to_date = ledger._writable_recall

    def racing(recall_id: UUID) -> Recall:
        recall = bring_up_to_date(recall_id)
        tries.append(recall.version)
        if len(tries) == 1:
            other_write()
        return recall

    ledger._writable_recall = racing  # type: ignore[method-assign]
    return tries


def test_steps_from_two_ledgers_see_each_others_writes(
    opened: tuple[Program, UUID], open_ledger: Callable[[], Ledger]
) -> None:
    program, recall_id = opened
    first, second = program.ledger, open_ledger()
    quarantine(first, program, recall_id, "K00001")
    quarantine(second, program, recall_id, "K00002")
    # the first ledger's kept copy is brought up to date: the second's report counts, and a second
    # report of the same kit is refused there
    quarantine(first, program, recall_id, "K00003")
    with pytest.raises(InvalidTransition, match="K00002"):
        quarantine(first, program, recall_id, "K00002")
    recall = first.get(Recall, recall_id)
    assert recall.per_place[str(program.site)]["reported"] == 3  # held at the site: not yet accounted
    assert first.recall_view(recall_id).version == second.recall_view(recall_id).version == recall.version


def test_a_step_that_loses_a_race_is_checked_again_and_lands(
    opened: tuple[Program, UUID], open_ledger: Callable[[], Ledger]
) -> None:
    program, recall_id = opened
    first, second = program.ledger, open_ledger()
    quarantine(first, program, recall_id, "K00001")  # the first ledger now keeps a copy
    tries = interleave_once(first, lambda: quarantine(second, program, recall_id, "K00002"))
    quarantine(first, program, recall_id, "K00003")
    assert len(tries) == 2 and tries[1] == tries[0] + 1  # retried once, on the newer recall
    recall = open_ledger().get(Recall, recall_id)
    assert {recall.kits[k].kit_number for k in recall.outcomes} == {"K00001", "K00002", "K00003"}
    assert recall.by_outcome == {KitOutcome.QUARANTINED: 3}
    report = verify_chain(first.chain)
    assert report.ok, report.describe()


def test_a_step_the_race_made_wrong_is_refused_on_the_newer_recall(
    opened: tuple[Program, UUID], open_ledger: Callable[[], Ledger]
) -> None:
    program, recall_id = opened
    first, second = program.ledger, open_ledger()
    quarantine(first, program, recall_id, "K00001")
    interleave_once(first, lambda: quarantine(second, program, recall_id, "K00004"))
    events = first.chain.count_events()
    with pytest.raises(InvalidTransition, match="K00004"):
        quarantine(first, program, recall_id, "K00004")
    assert first.chain.count_events() == events + 2  # only the other writer's report and quarantine
    recall = first.get(Recall, recall_id)
    assert recall.outcomes[program.kit("K00004")]["outcome"] == KitOutcome.QUARANTINED
    assert recall.per_place[str(program.site)]["reported"] == 2


def test_sites_reporting_at_once_from_threads_all_land(
    opened: tuple[Program, UUID], open_ledger: Callable[[], Ledger]
) -> None:
    program, recall_id = opened
    ledgers = [program.ledger, open_ledger(), open_ledger()]
    errors: list[BaseException] = []

    def report(ledger: Ledger, numbers: list[str]) -> None:
        try:
            for n in numbers:
                quarantine(ledger, program, recall_id, n)
        except BaseException as e:  # collected: the assertion below names it
            errors.append(e)

    threads = [threading.Thread(target=report, args=(ledgers[i], KITS[i * 2 : i * 2 + 2])) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    recall = ledgers[1].get(Recall, recall_id)
    assert recall.per_place[str(program.site)]["reported"] == 6
