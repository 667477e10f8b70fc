"""Site-signed receipt confirmations: a site registers its Ed25519 key, signs its receipts, and the ledger
verifies the signature before it records anything; forged, foreign-key and replayed signatures are refused."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.application import Ledger
from ledger.commands import ConfirmReceipt, RegisterSiteKey
from ledger.domain import Location, Shipment
from ledger.errors import (
    AlreadyExists,
    InvalidInput,
    NotAuthorised,
    ShipmentNotOpen,
    SiteSignatureRefused,
)
from ledger.notes import public_bytes
from ledger.site_keys import SiteSignature, decimal_text, receipt_message, site_key_id
from ledger.values import now
from tests.builders import SITE_GLN, Program, actors, writes_nothing


class SiteSigner:
    """A site's own key, held at the site: signs receipt messages as docs/api.md defines them."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public = public_bytes(self.private)
        self.key_id = site_key_id(self.public)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public).decode()

    def sign(
        self,
        shipment: UUID,
        site: UUID,
        outcomes: dict[str, str],
        occurred_at: datetime,
        logger_min: Decimal | None = Decimal("3"),
        logger_max: Decimal | None = Decimal("7"),
        nonce: str | None = None,
    ) -> SiteSignature:
        nonce = nonce or base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        message = receipt_message(
            shipment_id=shipment,
            site_id=site,
            outcomes=outcomes,
            logger_min=logger_min,
            logger_max=logger_max,
            occurred_at=occurred_at.isoformat(timespec="microseconds"),
            nonce=nonce,
        )
        signature = base64.b64encode(self.private.sign(message)).decode()
        return SiteSignature(self.key_id, nonce, signature)


def receive(
    ledger: Ledger,
    program: Program,
    shipment: UUID,
    outcomes: dict[str, str],
    signature: SiteSignature,
    occurred_at: datetime,
) -> object:
    return ledger.handle(
        ConfirmReceipt(
            shipment_id=shipment,
            site_id=program.site,
            outcomes=outcomes,
            logger_min=Decimal("3"),
            logger_max=Decimal("7"),
            occurred_at=occurred_at,
            site_signature=signature,
        ),
        actors.site,
    )


@pytest.fixture
def signer(ledger: Ledger, program: Program) -> SiteSigner:
    site_signer = SiteSigner()
    ledger.handle(RegisterSiteKey(site_id=program.site, public_key=site_signer.public_b64), actors.admin)
    return site_signer


def _when() -> datetime:
    return now()


def test_a_registered_key_is_recorded_on_the_site(
    ledger: Ledger, program: Program, signer: SiteSigner
) -> None:
    site = ledger.get(Location, program.site)
    assert site.site_key_id == signer.key_id and site.site_keys[signer.key_id] == signer.public_b64
    events = list(ledger.events.get(program.site))
    assert type(events[-1]).__name__ == "SiteKeyRegistered"


def test_only_an_admin_registers_a_site_key(ledger: Ledger, program: Program) -> None:
    with writes_nothing(ledger, NotAuthorised):
        ledger.handle(RegisterSiteKey(site_id=program.site, public_key=SiteSigner().public_b64), actors.site)


def test_a_malformed_key_or_a_key_registered_twice_is_refused(
    ledger: Ledger, program: Program, signer: SiteSigner
) -> None:
    with writes_nothing(ledger, InvalidInput, match="32 bytes"):
        ledger.handle(
            RegisterSiteKey(site_id=program.site, public_key=base64.b64encode(b"short").decode()),
            actors.admin,
        )
    with writes_nothing(ledger, InvalidInput, match="not base64"):
        ledger.handle(RegisterSiteKey(site_id=program.site, public_key="%%%"), actors.admin)
    with writes_nothing(ledger, AlreadyExists):
        ledger.handle(RegisterSiteKey(site_id=program.site, public_key=signer.public_b64), actors.admin)


def test_a_signed_receipt_is_verified_and_kept_in_the_event(
    ledger: Ledger, program: Program, signer: SiteSigner
) -> None:
    shipment = program.ship(["K00001", "K00002"])
    outcomes = {"K00002": "damaged", "K00001": "received"}
    when = _when()
    signature = signer.sign(shipment, program.site, outcomes, when)
    receive(ledger, program, shipment, outcomes, signature, when)
    event = list(ledger.events.get(shipment))[-1]
    assert isinstance(event, Shipment.ReceiptConfirmed)
    assert event.site_signature == signature.as_dict()
    # An inspector re-derives the signed message from the recorded event alone and checks it.
    site = ledger.get(Location, program.site)
    message = receipt_message(
        shipment_id=event.originator_id,
        site_id=ledger.get(Shipment, shipment).to_id,
        outcomes=event.outcomes,
        logger_min=event.logger_min,
        logger_max=event.logger_max,
        occurred_at=event.audit["occurred_at"],
        nonce=event.site_signature["nonce"],
    )
    key = Ed25519PrivateKey.from_private_bytes(signer.private.private_bytes_raw()).public_key()
    key.verify(base64.b64decode(event.site_signature["signature"]), message)
    assert base64.b64decode(site.site_keys[event.site_signature["key_id"]]) == signer.public


def test_the_signed_message_is_canonical_json_of_the_confirmation() -> None:
    message = receipt_message(
        shipment_id=UUID(int=1),
        site_id=UUID(int=2),
        outcomes={"K2": "missing", "K1": "received"},
        logger_min=Decimal("3.50"),
        logger_max=None,
        occurred_at="2026-03-01T09:30:00.000000+00:00",
        nonce="AAAAAAAAAAAAAAAAAAAAAA",
    )
    assert message == (
        b'{"context":"lotline-receipt/v1","logger_max":null,"logger_min":"3.5",'
        b'"nonce":"AAAAAAAAAAAAAAAAAAAAAA","occurred_at":"2026-03-01T09:30:00.000000+00:00",'
        b'"outcomes":{"K1":"received","K2":"missing"},'
        b'"shipment_id":"00000000-0000-0000-0000-000000000001",'
        b'"site_id":"00000000-0000-0000-0000-000000000002"}'
    )
    assert json.loads(message)["outcomes"] == {"K1": "received", "K2": "missing"}
    assert [decimal_text(Decimal(x)) for x in ("3.0", "1E+2", "-0.0", "-0.50", "12")] == [
        "3",
        "100",
        "0",
        "-0.5",
        "12",
    ]


def test_a_forged_signature_records_nothing(ledger: Ledger, program: Program, signer: SiteSigner) -> None:
    shipment = program.ship(["K00001"])
    when = _when()
    good = signer.sign(shipment, program.site, {"K00001": "received"}, when)
    # the server (or anyone holding a site user's token) claims "damaged" instead of what the site signed
    with writes_nothing(ledger, SiteSignatureRefused, match="does not verify"):
        receive(ledger, program, shipment, {"K00001": "damaged"}, good, when)
    # random bytes in place of a signature
    forged = SiteSignature(signer.key_id, good.nonce, base64.b64encode(secrets.token_bytes(64)).decode())
    with writes_nothing(ledger, SiteSignatureRefused, match="does not verify"):
        receive(ledger, program, shipment, {"K00001": "received"}, forged, when)
    with writes_nothing(ledger, SiteSignatureRefused):
        not_base64 = SiteSignature(signer.key_id, good.nonce, "x")
        receive(ledger, program, shipment, {"K00001": "received"}, not_base64, when)
    assert ledger.get(Shipment, shipment).status == "in_transit"


def test_a_signature_by_an_unregistered_or_replaced_key_is_refused(
    ledger: Ledger, program: Program, signer: SiteSigner
) -> None:
    shipment = program.ship(["K00001"])
    when = _when()
    stranger = SiteSigner()
    with writes_nothing(ledger, SiteSignatureRefused, match="not registered for this site"):
        receive(
            ledger,
            program,
            shipment,
            {"K00001": "received"},
            stranger.sign(shipment, program.site, {"K00001": "received"}, when),
            when,
        )
    # the stranger's key claiming the registered key's id: the signature does not verify
    claimed = stranger.sign(shipment, program.site, {"K00001": "received"}, when)
    with writes_nothing(ledger, SiteSignatureRefused, match="does not verify"):
        receive(
            ledger,
            program,
            shipment,
            {"K00001": "received"},
            SiteSignature(signer.key_id, claimed.nonce, claimed.signature),
            when,
        )
    # after the site registers a new key, the old one no longer signs
    successor = SiteSigner()
    ledger.handle(RegisterSiteKey(site_id=program.site, public_key=successor.public_b64), actors.admin)
    with writes_nothing(ledger, SiteSignatureRefused, match="replaced by a newer key"):
        receive(
            ledger,
            program,
            shipment,
            {"K00001": "received"},
            signer.sign(shipment, program.site, {"K00001": "received"}, when),
            when,
        )
    receive(
        ledger,
        program,
        shipment,
        {"K00001": "received"},
        successor.sign(shipment, program.site, {"K00001": "received"}, when),
        when,
    )


def test_a_signature_of_another_site_key_is_refused(
    ledger: Ledger, program: Program, signer: SiteSigner
) -> None:
    other_site = SiteSigner()
    ledger.handle(RegisterSiteKey(site_id=program.fr_site, public_key=other_site.public_b64), actors.admin)
    shipment = program.ship(["K00001"])
    when = _when()
    with writes_nothing(ledger, SiteSignatureRefused, match="not registered for this site"):
        receive(
            ledger,
            program,
            shipment,
            {"K00001": "received"},
            other_site.sign(shipment, program.site, {"K00001": "received"}, when),
            when,
        )


def test_a_replayed_confirmation_is_refused(ledger: Ledger, program: Program, signer: SiteSigner) -> None:
    first = program.ship(["K00001"], shipment_number="S-1", serial=1)
    second = program.ship(["K00002"], shipment_number="S-2", serial=2)
    when = _when()
    signed = signer.sign(first, program.site, {"K00001": "received"}, when)
    receive(ledger, program, first, {"K00001": "received"}, signed, when)
    # the same signed message again for the same shipment: it was received already
    with writes_nothing(ledger, ShipmentNotOpen):
        receive(ledger, program, first, {"K00001": "received"}, signed, when)
    # ...and for another shipment (same kit outcome, same time, same nonce): bound to the first shipment
    with writes_nothing(ledger, SiteSignatureRefused, match="does not verify"):
        receive(ledger, program, second, {"K00002": "received"}, signed, when)


def test_a_signed_receipt_must_state_its_time_and_a_proper_nonce(
    ledger: Ledger, program: Program, signer: SiteSigner
) -> None:
    shipment = program.ship(["K00001"])
    when = _when()
    signed = signer.sign(shipment, program.site, {"K00001": "received"}, when)
    with writes_nothing(ledger, InvalidInput, match="occurred_at"):
        ledger.handle(
            ConfirmReceipt(
                shipment_id=shipment,
                site_id=program.site,
                outcomes={"K00001": "received"},
                logger_min=Decimal("3"),
                logger_max=Decimal("7"),
                site_signature=signed,
            ),
            actors.site,
        )
    short = signer.sign(shipment, program.site, {"K00001": "received"}, when, nonce="abc")
    with writes_nothing(ledger, InvalidInput, match="nonce"):
        receive(ledger, program, shipment, {"K00001": "received"}, short, when)


def test_an_unsigned_receipt_still_works_and_carries_no_signature(ledger: Ledger, program: Program) -> None:
    shipment = program.at_site(["K00001"])
    event = list(ledger.events.get(shipment))[-1]
    assert isinstance(event, Shipment.ReceiptConfirmed) and event.site_signature is None


def test_remarks_are_part_of_the_signed_receipt_message_only_when_there_are_some() -> None:
    base: dict[str, Any] = {
        "shipment_id": Shipment.create_id("S-1"), "site_id": Location.create_id(SITE_GLN),
        "outcomes": {"K00001": "damaged"}, "logger_min": None, "logger_max": None,
        "occurred_at": "2026-12-05T10:00:00.000000+00:00", "nonce": "n" * 16,
    }
    plain = receipt_message(**base)
    assert receipt_message(**base, remarks={}) == plain and b"remarks" not in plain  # as before remarks
    remarked = receipt_message(**base, remarks={"K00001": "box crushed"})
    assert remarked != plain and b'"remarks":{"K00001":"box crushed"}' in remarked
