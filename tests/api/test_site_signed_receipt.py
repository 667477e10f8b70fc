"""Site-signed receipts over HTTP: an admin registers the site's key, the site signs its confirmation, the
ledger verifies it before recording; forged and replayed confirmations are refused and record nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from api.schemas.common import RecordedEvent
from ledger.domain import Shipment
from tests.api.conftest import Api
from tests.builders import Program
from tests.unit.test_site_signatures import SiteSigner

OUTCOMES = {"K00001": "received", "K00002": "damaged"}


def body(signer: SiteSigner, shipment: UUID, site: UUID, when: datetime, **overrides: Any) -> dict[str, Any]:
    signed = signer.sign(shipment, site, OUTCOMES, when)
    return {
        "outcomes": OUTCOMES,
        "logger_min": "3.0",
        "logger_max": "7",
        "occurred_at": when.isoformat(),
        "site_signature": signed.as_dict(),
        **overrides,
    }


def test_a_site_signed_receipt_is_verified_recorded_and_replays_are_refused(
    api: Api, program: Program
) -> None:
    signer = SiteSigner()
    key = {"public_key": signer.public_b64}
    # only an admin registers a site's key
    assert api.post("site1", f"/sites/{program.site}/keys", key).status_code == 403
    registered = api.post("admin1", f"/sites/{program.site}/keys", key)
    assert registered.status_code == 201 and registered.json()["key_id"] == signer.key_id
    first = program.ship(["K00001", "K00002"], shipment_number="S-1", serial=1)
    second = program.ship(["K00003"], shipment_number="S-2", serial=2)
    when = datetime.now(UTC)
    path = f"/sites/{program.site}/shipments/{first}/receipt"
    good = body(signer, first, program.site, when)

    # the server (or a stolen token) changes what the site signed: refused, nothing recorded
    head = api.head()
    forged = api.post("site1", path, {**good, "outcomes": {"K00001": "received", "K00002": "received"}})
    assert forged.status_code == 403 and forged.json()["code"] == "site_signature_refused"
    assert forged.json()["key_id"] == signer.key_id and api.head() == head
    # a key the site never registered
    stranger = body(SiteSigner(), first, program.site, when)
    refused = api.post("site1", path, stranger)
    assert refused.status_code == 403 and "not registered for this site" in refused.json()["message"]
    # a malformed signature is a 422 naming the field
    bad = api.post("site1", path, {**good, "site_signature": {**good["site_signature"], "signature": "x"}})
    assert bad.status_code == 422 and bad.json()["field"] == "body.site_signature.signature"
    assert api.head() == head

    accepted = api.post("site1", path, good)
    assert accepted.status_code == 200, accepted.json()
    event = RecordedEvent(**accepted.json()["events"][0])
    stored = list(api.ledger.events.get(first))[-1]
    assert event.stream == first and isinstance(stored, Shipment.ReceiptConfirmed)
    assert stored.site_signature == good["site_signature"]

    # the same signed confirmation again, and for another shipment
    head = api.head()
    again = api.post("site1", path, good)
    assert again.status_code == 409 and again.json()["code"] == "shipment_not_open"
    elsewhere = api.post("site1", f"/sites/{program.site}/shipments/{second}/receipt",
                         {**good, "outcomes": {"K00003": "received"}})
    assert elsewhere.status_code == 403 and elsewhere.json()["code"] == "site_signature_refused"
    assert api.head() == head


def test_an_unsigned_receipt_is_still_accepted(api: Api, program: Program) -> None:
    shipment = program.ship(["K00001"])
    answer = api.post("site1", f"/sites/{program.site}/shipments/{shipment}/receipt",
                      {"outcomes": {"K00001": "received"}})
    assert answer.status_code == 200
    stored = list(api.ledger.events.get(shipment))[-1]
    assert isinstance(stored, Shipment.ReceiptConfirmed) and stored.site_signature is None
