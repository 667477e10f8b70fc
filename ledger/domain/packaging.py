"""Packaging and labelling: drug-product units become numbered, blinded patient kits; then release.

The kit list (kit number -> treatment) is recorded here and nowhere else; only unblinded roles may
read it. Release for clinical use is three signatures: QA disposition, QP certification, and sponsor
release per country (EU Annex 13). Kits ship only when all three are done for the destination country.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.errors import InvalidInput, InvalidTransition, ReleaseIncomplete, RunRecalled, TimeOrderViolation


class PackagingRun(LedgerAggregate):
    @staticmethod
    def create_id(batch_number: str, **_: Any) -> UUID:
        return stable_id("packaging", batch_number)

    class Packaged(LedgerAggregate.Created):
        """The run filled numbered, blinded kits: inputs, arms, reconciliation and the kit list."""

        batch_number: str
        audit: dict[str, Any]
        trial_id: UUID
        location_id: UUID
        kit_gtin: str
        label_version: str
        expires_on: date
        inputs: list[dict[str, Any]]
        arms: list[dict[str, Any]]
        samples: int
        rejects: int
        kit_numbers: list[str]
        allocation: dict[str, str]
        performed_by: dict[str, str]
        checked_by: dict[str, str]

    @event(Packaged)
    def __init__(
        self,
        batch_number: str,
        audit: dict[str, Any],
        trial_id: UUID,
        location_id: UUID,
        kit_gtin: str,
        label_version: str,
        expires_on: date,
        inputs: list[dict[str, Any]],
        arms: list[dict[str, Any]],
        samples: int,
        rejects: int,
        kit_numbers: list[str],
        allocation: dict[str, str],
        performed_by: dict[str, str],
        checked_by: dict[str, str],
    ) -> None:
        self.batch_number = batch_number
        self.trial_id = trial_id
        self.location_id = location_id
        self.kit_gtin = kit_gtin
        self.label_version = label_version
        self.expires_on = expires_on
        self.inputs = inputs
        self.arms = arms
        self.kit_numbers = kit_numbers
        self.allocation = allocation
        self.qa_status = "pending"
        self.qp_certified = False
        self.sponsor_countries: list[str] = []
        self.released_at: dict[str, str] = {}
        self.recalled_by: str | None = None
        self._touch(audit)

    @property
    def input_lot_ids(self) -> list[UUID]:
        return [UUID(str(i["lot_id"])) for i in self.inputs]

    @staticmethod
    def reconcile_arm(
        treatment: str, kits: int, units_per_kit: int, units_issued: int, samples: int, rejects: int
    ) -> None:
        """Reconciliation of one arm of a run (EU GMP Annex 13): kits + samples + rejects = units issued."""
        if min(units_per_kit, units_issued, samples, rejects) < 0 or units_per_kit == 0:
            raise InvalidInput("unit counts must be positive", field="arms")
        accounted = kits * units_per_kit + samples + rejects
        if accounted != units_issued:
            raise InvalidInput(
                f"arm {treatment}: {kits} kits x {units_per_kit} + {samples} samples + "
                f"{rejects} rejects = {accounted} units, but {units_issued} were issued",
                field="arms",
                treatment=treatment,
            )

    # --- release ---------------------------------------------------------------------------------

    def dispose(self, audit: dict[str, Any], signature: dict[str, str], released: bool) -> None:
        """QA disposition of the packaged batch: released or rejected."""
        if self.qa_status != "pending":
            raise InvalidTransition("packaging batch", self.batch_number, f"QA {self.qa_status}", "dispose")
        self._require_after_last_step(audit, "QA disposition")
        self._disposed(audit, signature, "released" if released else "rejected")

    def certify(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        """QP certification (EU): only after QA released, only once."""
        if self.qa_status != "released" or self.qp_certified:
            state = "already certified" if self.qp_certified else f"QA {self.qa_status}"
            raise InvalidTransition("packaging batch", self.batch_number, state, "certify")
        self._require_after_last_step(audit, "QP certification")
        self._certified(audit, signature)

    def release_for_country(self, audit: dict[str, Any], signature: dict[str, str], country: str) -> None:
        """Sponsor (regulatory) release for one country of the trial, after QP certification."""
        if not self.qp_certified:
            raise InvalidTransition(
                "packaging batch", self.batch_number, "not QP certified", "sponsor-release"
            )
        if country in self.sponsor_countries:
            raise InvalidTransition(
                "packaging batch", self.batch_number, f"already released for {country}", "sponsor-release"
            )
        self._require_after_last_step(audit, "sponsor release")
        self._sponsor_released(audit, signature, country)

    def recall(self, audit: dict[str, Any], signature: dict[str, str], recall_number: str) -> None:
        """QA recalls the run itself (a labelling or packaging error), under recall `recall_number`:
        none of its kits ships or is dispensed from now on; the drug-product lots stay usable."""
        if self.recalled_by is not None:
            raise InvalidTransition(
                "packaging batch", self.batch_number, f"recalled under {self.recalled_by}", "recall"
            )
        self._require_after_last_step(audit, "recall")
        self._recalled(audit, signature, recall_number)

    def require_not_recalled(self) -> None:
        if self.recalled_by is not None:
            raise RunRecalled(self.id, self.batch_number, self.recalled_by)

    def require_released_for(self, country: str, at: str | None = None) -> None:
        """QA, QP and sponsor release for `country` all done (before `at`, when given)."""
        if self.qa_status != "released":
            raise ReleaseIncomplete(self.id, self.batch_number, f"QA disposition is {self.qa_status}")
        if not self.qp_certified:
            raise ReleaseIncomplete(self.id, self.batch_number, "no QP certification")
        if country not in self.sponsor_countries:
            raise ReleaseIncomplete(self.id, self.batch_number, f"no sponsor release for {country}")
        if at is not None and at < self.released_at.get(country, ""):
            raise TimeOrderViolation(
                f"batch {self.batch_number} was released for {country} at {self.released_at[country]}, "
                f"after {at}",
                occurred_at=at,
                released_at=self.released_at[country],
            )

    def extend_expiry(
        self, audit: dict[str, Any], signature: dict[str, str], new_expiry: date, supported_until: date
    ) -> None:
        """Relabel with a later expiry, supported by stability data up to `supported_until`."""
        if new_expiry <= self.expires_on:
            raise InvalidInput(
                f"new expiry {new_expiry} must be after the current {self.expires_on}", field="new_expiry"
            )
        if new_expiry > supported_until:
            raise InvalidInput(
                f"new expiry {new_expiry} is past what the input lots support ({supported_until})",
                field="new_expiry",
            )
        self._require_after_last_step(audit, "relabel")
        self._expiry_extended(audit, signature, self.batch_number, new_expiry)

    class Disposed(Aggregate.Event):
        """QA's signed disposition of the packaged batch: `released` or `rejected`."""

        audit: dict[str, Any]
        signature: dict[str, str]
        disposition: str

    @event(Disposed)
    def _disposed(self, audit: dict[str, Any], signature: dict[str, str], disposition: str) -> None:
        self.qa_status = disposition
        self._touch(audit)

    class Certified(Aggregate.Event):
        """The QP certified the packaged batch, signed."""

        audit: dict[str, Any]
        signature: dict[str, str]

    @event(Certified)
    def _certified(self, audit: dict[str, Any], signature: dict[str, str]) -> None:
        self.qp_certified = True
        self._touch(audit)

    class SponsorReleased(Aggregate.Event):
        """The sponsor released the packaged batch for one country of the trial, signed."""

        audit: dict[str, Any]
        signature: dict[str, str]
        country: str

    @event(SponsorReleased)
    def _sponsor_released(self, audit: dict[str, Any], signature: dict[str, str], country: str) -> None:
        self.sponsor_countries.append(country)
        self.released_at[country] = audit["occurred_at"]
        self._touch(audit)

    class Recalled(Aggregate.Event):
        """QA recalled the packaged batch itself, signed, under a recall campaign."""

        audit: dict[str, Any]
        signature: dict[str, str]
        recall_number: str

    @event(Recalled)
    def _recalled(self, audit: dict[str, Any], signature: dict[str, str], recall_number: str) -> None:
        self.recalled_by = recall_number
        self._touch(audit)

    class ExpiryExtended(Aggregate.Event):
        """The run's kits were relabelled with a later expiry, signed."""

        audit: dict[str, Any]
        signature: dict[str, str]
        batch_number: str
        new_expiry: date

    @event(ExpiryExtended)
    def _expiry_extended(
        self, audit: dict[str, Any], signature: dict[str, str], batch_number: str, new_expiry: date
    ) -> None:
        self.expires_on = new_expiry
        self._touch(audit)
