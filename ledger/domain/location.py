"""Locations: manufacturing sites, depots and clinical sites (a site receives kits once activated)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.errors import AlreadyExists, InvalidTransition, SiteNotActive, TimeOrderViolation


class LocationKind(StrEnum):
    MANUFACTURING_SITE = "manufacturing_site"
    DEPOT = "depot"
    CLINICAL_SITE = "clinical_site"


class SiteStatus(StrEnum):
    REGISTERED = "registered"
    ACTIVATED = "activated"
    DEACTIVATED = "deactivated"
    CLOSED_OUT = "closed_out"


class Location(LedgerAggregate):
    """A place identified by its GLN; clinical sites belong to one trial and one country."""

    @staticmethod
    def create_id(gln: str, **_: Any) -> UUID:
        return stable_id("location", gln)

    class Registered(LedgerAggregate.Created):
        """The place was registered; a clinical site starts registered, any other place active."""

        gln: str
        audit: dict[str, Any]
        kind: str
        name: str
        country: str
        trial_id: UUID | None
        site_number: str | None
        address: str

    @event(Registered)
    def __init__(
        self,
        gln: str,
        audit: dict[str, Any],
        kind: str,
        name: str,
        country: str,
        trial_id: UUID | None,
        site_number: str | None,
        address: str,
    ) -> None:
        self.gln = gln
        self.kind = LocationKind(kind)
        self.name = name
        self.country = country
        self.trial_id = trial_id
        self.site_number = site_number
        self.address = address
        self.activated_at = ""
        self.site_keys: dict[str, str] = {}
        self.site_key_id: str | None = None
        self.status = (
            SiteStatus.REGISTERED if self.kind == LocationKind.CLINICAL_SITE else SiteStatus.ACTIVATED
        )
        self._touch(audit)

    @property
    def is_clinical_site(self) -> bool:
        return self.kind == LocationKind.CLINICAL_SITE

    def activate(self, audit: dict[str, Any]) -> None:
        if not self.is_clinical_site or self.status == SiteStatus.ACTIVATED:
            raise InvalidTransition("location", self.name, str(self.status), "activate")
        self._require_after_last_step(audit, "activation")
        self._activated(audit)

    def deactivate(self, audit: dict[str, Any]) -> None:
        if self.status != SiteStatus.ACTIVATED or not self.is_clinical_site:
            raise InvalidTransition("location", self.name, str(self.status), "deactivate")
        self._require_after_last_step(audit, "deactivation")
        self._deactivated(audit)

    def close_out(self, audit: dict[str, Any], signature: dict[str, str], delivered: int) -> None:
        """QA closes the deactivated site out, signed, once every kit delivered to it is accounted for
        (the caller checked them: `delivered` is how many there were)."""
        self.require_closable()
        self._require_after_last_step(audit, "close-out")
        self._closed_out(audit, signature, delivered)

    def require_closable(self) -> None:
        """Only a deactivated clinical site closes out (it receives no kits any more)."""
        if self.status != SiteStatus.DEACTIVATED or not self.is_clinical_site:
            raise InvalidTransition("location", self.name, str(self.status), "close out")

    def require_active_at(self, occurred_at: str) -> None:
        """Kits may arrive only at a site activated before the step happened."""
        if self.status != SiteStatus.ACTIVATED:
            raise SiteNotActive(self.id, self.name, str(self.status))
        if self.activated_at and occurred_at < self.activated_at:
            raise TimeOrderViolation(
                f"site {self.name} was activated at {self.activated_at}, after {occurred_at}",
                occurred_at=occurred_at,
                activated_at=self.activated_at,
            )

    def register_key(self, audit: dict[str, Any], public_key: str, key_id: str) -> None:
        """A clinical site's Ed25519 public key (base64); it becomes the key its signatures must use."""
        if not self.is_clinical_site:
            raise InvalidTransition("location", self.name, str(self.kind), "register a site key")
        if key_id in self.site_keys:
            raise AlreadyExists("site key", key_id)
        self._require_after_last_step(audit, "key registration")
        self._site_key_registered(audit, public_key, key_id)

    def current_site_key(self, key_id: str) -> str | None:
        """The base64 public key `key_id` names if it is this site's current key; None otherwise."""
        return self.site_keys[key_id] if key_id == self.site_key_id else None

    class SiteKeyRegistered(Aggregate.Event):
        """A clinical site's Ed25519 public key (base64) was registered and became its current key."""

        audit: dict[str, Any]
        public_key: str
        key_id: str

    @event(SiteKeyRegistered)
    def _site_key_registered(self, audit: dict[str, Any], public_key: str, key_id: str) -> None:
        self.site_keys[key_id] = public_key
        self.site_key_id = key_id
        self._touch(audit)

    class Activated(Aggregate.Event):
        """The clinical site was activated: from now on it may receive kits."""

        audit: dict[str, Any]

    @event(Activated)
    def _activated(self, audit: dict[str, Any]) -> None:
        self.activated_at = audit["occurred_at"]
        self.status = SiteStatus.ACTIVATED
        self._touch(audit)

    class Deactivated(Aggregate.Event):
        """The clinical site was deactivated: it receives no more kits."""

        audit: dict[str, Any]

    @event(Deactivated)
    def _deactivated(self, audit: dict[str, Any]) -> None:
        self.status = SiteStatus.DEACTIVATED
        self._touch(audit)

    class ClosedOut(Aggregate.Event):
        """QA closed the site out, signed: every one of the `delivered` kits was accounted for."""

        audit: dict[str, Any]
        signature: dict[str, str]
        delivered: int

    @event(ClosedOut)
    def _closed_out(self, audit: dict[str, Any], signature: dict[str, str], delivered: int) -> None:
        self.status = SiteStatus.CLOSED_OUT
        self._touch(audit)
