"""Packaging into blinded kits and the three-step release: QA disposition, QP certification, sponsor
release per country; and expiry extension by relabelling."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import LedgerDep, LogDep, OnceDep, SignerDep, UserDep
from api.errors import errors
from api.routes import created, record
from api.routes.lots import quantity
from api.schemas.commands import CertifyIn, DispositionIn, ExtendExpiryIn, PackageIn, SponsorReleaseIn
from api.schemas.common import Recorded
from api.schemas.results import Created
from ledger.application import Arm
from ledger.errors import LedgerError
from ledger.transparency import Transparency

logger = logging.getLogger("lotline.api.checkpoints")

router = APIRouter(tags=["packaging and release"])


@router.post("/packaging-runs", status_code=201, response_model=Created, responses=errors(404, 409))
def package(body: PackageIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep) -> Any:
    """Package drug-product units into blinded kits per the kit list (manufacturing; `checked_by`
    re-authenticates the second person)."""
    return record(
        ledger,
        once,
        lambda: ledger.package(
            user.actor,
            batch_number=body.batch_number,
            trial_id=body.trial_id,
            location_id=body.location_id,
            kit_gtin=body.kit_gtin,
            label_version=body.label_version,
            arms=[
                Arm(a.treatment, a.dp_lot_id, a.units_per_kit, a.units_issued, a.samples, a.rejects)
                for a in body.arms
            ],
            kit_list=[(k.kit_number, k.treatment) for k in body.kit_list],
            components=[
                (c.lot_id, quantity(c.quantity, f"components.{n}.quantity"))
                for n, c in enumerate(body.components)
            ],
            checked_by=signer.checker(body.checked_by),
            occurred_at=body.occurred_at,
        ),
        created,
        201,
    )


@router.post("/packaging-runs/{run_id}/disposition", response_model=Recorded, responses=errors(404, 409))
def dispose_packaging(
    run_id: UUID,
    body: DispositionIn,
    user: UserDep,
    signer: SignerDep,
    ledger: LedgerDep,
    once: OnceDep,
    log: LogDep,
) -> Any:
    """QA disposition of a packaged batch: released or rejected, signed with that meaning (QA). A release
    is followed by a signed checkpoint of the log, so the release is covered by a signature at once."""
    answer = record(
        ledger,
        once,
        lambda: ledger.dispose_packaging(
            user.actor,
            run_id,
            signature=signer.sign(body.signature),
            released=body.released,
            reason=body.reason,
            occurred_at=body.occurred_at,
        ),
    )
    if body.released:
        _checkpoint_after_release(log)
    return answer


def _checkpoint_after_release(log: Transparency) -> None:
    """Sign the head now; the release is recorded either way, so a missing key is only logged."""
    try:
        made = log.checkpoint()
    except LedgerError as e:
        logger.warning("no checkpoint after the QA release: %s", e.message)
        return
    logger.info("checkpoint %d signed after a QA release", made.size)


@router.post("/packaging-runs/{run_id}/certification", response_model=Recorded, responses=errors(404, 409))
def certify_packaging(
    run_id: UUID, body: CertifyIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """QP certification of a QA-released batch, signed `certified` (QP)."""
    return record(
        ledger,
        once,
        lambda: ledger.certify_packaging(
            user.actor, run_id, signature=signer.sign(body.signature), occurred_at=body.occurred_at
        ),
    )


@router.post("/packaging-runs/{run_id}/sponsor-releases", response_model=Recorded, responses=errors(404, 409))
def sponsor_release(
    run_id: UUID, body: SponsorReleaseIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Sponsor (regulatory) release of a certified batch for one country, signed `sponsor_released` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.sponsor_release(
            user.actor,
            run_id,
            country=body.country,
            signature=signer.sign(body.signature),
            occurred_at=body.occurred_at,
        ),
    )


@router.post(
    "/packaging-runs/{run_id}/expiry-extensions", response_model=Recorded, responses=errors(404, 409)
)
def extend_expiry(
    run_id: UUID, body: ExtendExpiryIn, user: UserDep, signer: SignerDep, ledger: LedgerDep, once: OnceDep
) -> Any:
    """Extend the expiry of a run's kits in the supply chain by relabelling, signed `relabelled` (QA)."""
    return record(
        ledger,
        once,
        lambda: ledger.extend_expiry(
            user.actor,
            run_id,
            new_expiry=body.new_expiry,
            signature=signer.sign(body.signature),
            reason=body.reason,
            occurred_at=body.occurred_at,
        ),
    )
