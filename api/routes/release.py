"""Packaging into blinded kits and the three-step release: QA disposition, QP certification, sponsor
release per country; and expiry extension by relabelling. A QA release is followed by a signed
checkpoint of the log (`Transparency.checkpoint_after_release`, given to `Ledger.on_release` by the app's
lifespan handler)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter

from api.deps import Write
from api.errors import errors
from api.schemas.bodies import Body, body_of
from api.schemas.common import CheckerIn, Recorded, SignatureIn
from api.schemas.results import Created
from ledger.commands import CertifyPackaging, DisposePackaging, ExtendExpiry, Package, SponsorRelease

router = APIRouter(tags=["packaging and release"])

RUN = {"run_id"}
PackageIn = Annotated[Body, body_of(Package, checked_by=CheckerIn)]
DispositionIn = Annotated[Body, body_of(DisposePackaging, path=RUN, signature=SignatureIn)]
CertifyIn = Annotated[Body, body_of(CertifyPackaging, path=RUN, signature=SignatureIn)]
SponsorReleaseIn = Annotated[Body, body_of(SponsorRelease, path=RUN, signature=SignatureIn)]
ExtendExpiryIn = Annotated[Body, body_of(ExtendExpiry, path=RUN, signature=SignatureIn)]


@router.post("/packaging-runs", status_code=201, response_model=Created, responses=errors(404, 409))
def package(body: PackageIn, write: Write) -> Any:
    """Package drug-product units into blinded kits per the kit list (manufacturing; `checked_by`
    re-authenticates the second person)."""
    return write(body)


@router.post("/packaging-runs/{run_id}/disposition", response_model=Recorded, responses=errors(404, 409))
def dispose_packaging(run_id: UUID, body: DispositionIn, write: Write) -> Any:
    """QA disposition of a packaged batch: released or rejected, signed with that meaning (QA). A release
    is followed by a signed checkpoint of the log, so the release is covered by a signature at once."""
    return write(body, run_id=run_id)


@router.post("/packaging-runs/{run_id}/certification", response_model=Recorded, responses=errors(404, 409))
def certify_packaging(run_id: UUID, body: CertifyIn, write: Write) -> Any:
    """QP certification of a QA-released batch, signed `certified` (QP)."""
    return write(body, run_id=run_id)


@router.post("/packaging-runs/{run_id}/sponsor-releases", response_model=Recorded, responses=errors(404, 409))
def sponsor_release(run_id: UUID, body: SponsorReleaseIn, write: Write) -> Any:
    """Sponsor (regulatory) release of a certified batch for one country, signed `sponsor_released` (QA)."""
    return write(body, run_id=run_id)


@router.post(
    "/packaging-runs/{run_id}/expiry-extensions", response_model=Recorded, responses=errors(404, 409)
)
def extend_expiry(run_id: UUID, body: ExtendExpiryIn, write: Write) -> Any:
    """Extend the expiry of a run's kits in the supply chain by relabelling, signed `relabelled` (QA)."""
    return write(body, run_id=run_id)
