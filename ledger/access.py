"""Who may see what: the visibility rules of site users, in one place for every entry point."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from uuid import UUID

from ledger.errors import NotYourSite
from ledger.values import Role


def require_passed_through(role: Role, own_sites: Iterable[UUID], places: Iterable[UUID], what: str) -> None:
    """A site user sees the custody of a kit or shipment only if it passed through one of their sites;
    other roles see every custody record."""
    if role == Role.SITE and not set(places) & set(own_sites):
        raise NotYourSite(what)


def sees_place(role: Role, own_sites: Collection[UUID], place_id: UUID) -> bool:
    """A site user sees stock and kits only at their own sites; other roles see every place."""
    return role != Role.SITE or place_id in own_sites
