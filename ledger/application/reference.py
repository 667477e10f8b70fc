"""Reference data: trials, locations, site activation and site keys (admin)."""

from __future__ import annotations

import base64

from ledger import gs1, site_keys
from ledger.application.core import Ledger, handles
from ledger.application.rules import country, reason
from ledger.commands import (
    ActivateSite,
    CloseOutSite,
    DeactivateSite,
    Recorded,
    RegisterLocation,
    RegisterSiteKey,
    RegisterTrial,
)
from ledger.domain import Location, LocationKind, Trial
from ledger.domain.base import require_role, stamp
from ledger.errors import InvalidInput, SiteNotReconciled
from ledger.values import Actor, Meaning, Role


@handles(RegisterTrial)
def register_trial(ledger: Ledger, actor: Actor, cmd: RegisterTrial) -> Recorded:
    require_role(actor, "register a trial", Role.ADMIN)
    code = gs1.gs1_text(cmd.code, "trial code", "code")
    for c in cmd.countries:
        country(c, "countries")
    if len(set(cmd.countries)) != len(cmd.countries):
        raise InvalidInput("a trial names each of its countries once", field="countries")
    if not (0 <= cmd.do_not_dispense_days <= cmd.do_not_ship_days <= 730):
        raise InvalidInput(
            "expiry windows need 0 <= do_not_dispense_days <= do_not_ship_days <= 730",
            field="do_not_ship_days",
        )
    trial = Trial(
        code=code,
        audit=stamp(actor, cmd.occurred_at),
        title=cmd.title,
        sponsor=cmd.sponsor,
        countries=list(cmd.countries),
        do_not_ship_days=cmd.do_not_ship_days,
        do_not_dispense_days=cmd.do_not_dispense_days,
    )
    return ledger.record(trial, created=(trial.id,))


@handles(RegisterLocation)
def register_location(ledger: Ledger, actor: Actor, cmd: RegisterLocation) -> Recorded:
    require_role(actor, "register a location", Role.ADMIN)
    gln = gs1.gln(cmd.gln)
    country(cmd.country)
    if cmd.kind == LocationKind.CLINICAL_SITE:
        if cmd.trial_id is None or not cmd.site_number:
            raise InvalidInput("a clinical site needs a trial and a site number", field="trial_id")
        trial = ledger.get(Trial, cmd.trial_id)
        if cmd.country not in trial.countries:
            raise InvalidInput(f"trial {trial.code} does not run in {cmd.country}", field="country")
    loc = Location(
        gln=gln,
        audit=stamp(actor, cmd.occurred_at),
        kind=str(cmd.kind),
        name=cmd.name,
        country=cmd.country,
        trial_id=cmd.trial_id,
        site_number=cmd.site_number,
        address=cmd.address,
    )
    return ledger.record(loc, created=(loc.id,))


@handles(ActivateSite)
def activate_site(ledger: Ledger, actor: Actor, cmd: ActivateSite) -> Recorded:
    require_role(actor, "activate a site", Role.ADMIN)
    site = ledger.get(Location, cmd.site_id)
    site.activate(stamp(actor, cmd.occurred_at))
    return ledger.record(site)


@handles(RegisterSiteKey)
def register_site_key(ledger: Ledger, actor: Actor, cmd: RegisterSiteKey) -> Recorded:
    """Register a clinical site's Ed25519 public key (base64); from now on the site signs with it."""
    require_role(actor, "register a site key", Role.ADMIN)
    raw = site_keys.parse_public_key(cmd.public_key)
    site = ledger.get(Location, cmd.site_id)
    key_id = site_keys.site_key_id(raw)
    site.register_key(stamp(actor, cmd.occurred_at), base64.b64encode(raw).decode(), key_id)
    return ledger.record(site, key_id=key_id)


OPEN_OUTCOMES = ("in_transit", "on_hand", "damaged", "returned_by_subject")
"""What a kit delivered to a site may not still be when the site closes out: on its way, held there
(received, quarantined, awaiting destruction), damaged, or brought back by its subject. Dispensed,
destroyed, sent back to a depot, or missing on receipt (recorded then) are ends."""


@handles(DeactivateSite)
def deactivate_site(ledger: Ledger, actor: Actor, cmd: DeactivateSite) -> Recorded:
    """The site receives no more kits (first step of its close-out)."""
    require_role(actor, "deactivate a site", Role.ADMIN)
    site = ledger.get(Location, cmd.site_id)
    site.deactivate(stamp(actor, cmd.occurred_at, reason(cmd.reason)))
    return ledger.record(site)


@handles(CloseOutSite)
def close_out_site(ledger: Ledger, actor: Actor, cmd: CloseOutSite) -> Recorded:
    """QA closes a deactivated site out, signed, once every kit delivered to it is accounted for; a
    refusal names the kits still open, by what they are. The kits are read from the read side, caught
    up past the deactivation (no kit can be shipped to the site since); a kit that moved after that
    read makes the write fail and the close-out run again on newer states."""
    sig = ledger.qa_signature(actor, cmd.signature, Meaning.APPROVED, "close a site out")
    site = ledger.get(Location, cmd.site_id)
    site.require_closable()
    audit = stamp(actor, cmd.occurred_at)
    kits, source = ledger.site_kits(site.id)
    open_kits: dict[str, list[str]] = {}
    for _, number, outcome in kits:
        if outcome in OPEN_OUTCOMES:
            open_kits.setdefault(outcome, []).append(number)
    if open_kits:
        raise SiteNotReconciled(site.name, open_kits)
    if isinstance(source.get("as_of"), int):
        ledger.expect_quiet_since(source["as_of"], [k for k, _, _ in kits])
    site.close_out(audit, sig.as_dict(), len(kits))
    return ledger.record(site)
