"""Request dependencies, as `Annotated` aliases routes declare in their signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger.application import Ledger


def get_ledger(request: Request) -> Ledger:
    """The application's ledger, opened once by the app's lifespan handler."""
    ledger: Ledger = request.app.state.ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]
