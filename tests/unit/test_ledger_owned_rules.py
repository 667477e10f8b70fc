"""Rules that used to live in the HTTP routes and now live in the ledger, for every entry point:
destruction only where the kit is held, the checkpoint after a QA release, custody visibility."""

from __future__ import annotations

from uuid import uuid4

import pytest

from ledger.access import require_passed_through
from ledger.commands import AuthoriseDestruction, DestroyKits, DisposePackaging, Recorded
from ledger.domain import Kit, KitStatus
from ledger.errors import KitsNotUsable, NotYourSite
from ledger.values import Meaning, Role, sign
from tests.builders import Program, actors, writes_nothing


def authorise(program: Program, *numbers: str) -> None:
    program.ledger.handle(
        AuthoriseDestruction(
            kit_ids=program.kits(*numbers),
            signature=sign(actors.qa, Meaning.AUTHORISED_DESTRUCTION),
            reason="damaged stock",
        ),
        actors.qa,
    )


def test_a_site_cannot_destroy_a_kit_held_at_the_depot(program: Program) -> None:
    # K00001 sits at the depot, its destruction authorised by QA: the site claims to destroy it.
    authorise(program, "K00001")
    with writes_nothing(program.ledger, KitsNotUsable) as info:
        program.ledger.handle(
            DestroyKits(
                location_id=program.site,
                kit_ids=program.kits("K00001"),
                certificate="DC-1",
                method="incineration",
            ),
            actors.site,
        )
    (refused,) = info.value.details["problems"]
    assert refused["kit_number"] == "K00001"
    assert "is not held at this place; cannot destroy" in refused["reason"]
    assert program.ledger.get(Kit, program.kit("K00001")).status == KitStatus.PENDING_DESTRUCTION


def test_the_depot_destroys_what_it_holds_and_the_event_names_the_place(program: Program) -> None:
    authorise(program, "K00001", "K00002")
    program.ledger.handle(
        DestroyKits(
            location_id=program.depot,
            kit_ids=program.kits("K00001", "K00002"),
            certificate="DC-2",
            method="incineration",
        ),
        actors.depot,
    )
    kit = program.ledger.get(Kit, program.kit("K00001"))
    assert kit.status == KitStatus.DESTROYED
    assert kit.destroyed_at_id == program.depot
    (destroyed,) = [e for e in program.ledger.events.get(kit.id) if type(e).__name__ == "Destroyed"]
    assert destroyed.location_id == program.depot  # type: ignore[attr-defined]
    assert type(destroyed).class_version == 2  # type: ignore[attr-defined]


def test_a_qa_release_tells_the_release_listeners(ledger: object) -> None:
    program = Program(ledger).reference().materials().formulate().placebo().package()  # type: ignore[arg-type]
    heard: list[Recorded] = []
    program.ledger.on_release(heard.append)
    recorded = program.ledger.handle(
        DisposePackaging(run_id=program.run, released=True, signature=sign(actors.qa, Meaning.RELEASED)),
        actors.qa,
    )
    assert heard == [recorded]
    assert recorded.events and recorded.events[0].stream == program.run


def test_a_rejection_does_not_sign_a_checkpoint(ledger: object) -> None:
    program = Program(ledger).reference().materials().formulate().placebo().package()  # type: ignore[arg-type]
    heard: list[Recorded] = []
    program.ledger.on_release(heard.append)
    program.ledger.handle(
        DisposePackaging(
            run_id=program.run,
            released=False,
            reason="label misprint",
            signature=sign(actors.qa, Meaning.REJECTED),
        ),
        actors.qa,
    )
    assert heard == []


def test_a_site_user_sees_custody_only_through_their_own_sites() -> None:
    mine, other = uuid4(), uuid4()
    require_passed_through(Role.SITE, {mine}, {mine, other}, "kit K1")
    require_passed_through(Role.QA, set(), {other}, "kit K1")
    with pytest.raises(NotYourSite, match="kit K1 never passed through your sites"):
        require_passed_through(Role.SITE, {mine}, {other}, "kit K1")
