"""A clinical trial: its code, countries, and the expiry windows that gate shipping and dispensing."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id


class Trial(LedgerAggregate):
    """Do-not-ship (DNS) and do-not-dispense (DND): days before expiry after which a kit may not move."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return stable_id("trial", code)

    class Registered(LedgerAggregate.Created):
        """The trial was registered with its countries and its do-not-ship/do-not-dispense windows."""

        code: str
        audit: dict[str, Any]
        title: str
        sponsor: str
        countries: list[str]
        do_not_ship_days: int
        do_not_dispense_days: int

    @event(Registered)
    def __init__(
        self,
        code: str,
        audit: dict[str, Any],
        title: str,
        sponsor: str,
        countries: list[str],
        do_not_ship_days: int,
        do_not_dispense_days: int,
    ) -> None:
        self.code = code
        self.title = title
        self.sponsor = sponsor
        self.countries = list(countries)
        self.do_not_ship_days = do_not_ship_days
        self.do_not_dispense_days = do_not_dispense_days
        self._touch(audit)

    def last_ship_date(self, expiry: date) -> date:
        """The last day a kit with this expiry may ship."""
        return expiry - timedelta(days=self.do_not_ship_days)

    def last_dispense_date(self, expiry: date) -> date:
        return expiry - timedelta(days=self.do_not_dispense_days)

    def change_expiry_windows(self, audit: dict[str, Any], dns_days: int, dnd_days: int) -> None:
        self._require_after_last_step(audit, "expiry window change")
        self._expiry_windows_changed(audit, dns_days, dnd_days)

    class ExpiryWindowsChanged(Aggregate.Event):
        """The do-not-ship and do-not-dispense windows (days before expiry) changed."""

        audit: dict[str, Any]
        dns_days: int
        dnd_days: int

    @event(ExpiryWindowsChanged)
    def _expiry_windows_changed(self, audit: dict[str, Any], dns_days: int, dnd_days: int) -> None:
        self.do_not_ship_days = dns_days
        self.do_not_dispense_days = dnd_days
        self._touch(audit)
