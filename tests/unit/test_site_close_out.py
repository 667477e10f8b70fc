"""A site's close-out on the ledger alone: deactivated first, and closed out only where the read side
can say what became of every kit delivered to it (over HTTP: tests/api/test_site_close_out.py)."""

from __future__ import annotations

from ledger.commands import CloseOutSite, DeactivateSite
from ledger.errors import InvalidTransition, ReadSideRequired
from ledger.values import Meaning, sign
from tests.builders import Program, actors, writes_nothing


def test_a_site_closes_out_only_where_the_read_side_can_tell_its_kits(program: Program) -> None:
    """The close-out reads the site's kits from the read models; the ledger alone refuses it."""
    L = program.ledger
    L.handle(DeactivateSite(site_id=program.site, reason="site closing"), actors.admin)
    with writes_nothing(L, ReadSideRequired, "run it through the API"):
        L.handle(CloseOutSite(site_id=program.site, signature=sign(actors.qa, Meaning.APPROVED)), actors.qa)
    with writes_nothing(L, InvalidTransition, "is deactivated; cannot deactivate"):
        L.handle(DeactivateSite(site_id=program.site, reason="again"), actors.admin)
