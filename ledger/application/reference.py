"""Reference data: trials, locations, site activation and site keys (admin)."""

from __future__ import annotations

import base64

from ledger import gs1, site_keys
from ledger.application.core import Ledger, handles
from ledger.application.rules import country
from ledger.commands import ActivateSite, Recorded, RegisterLocation, RegisterSiteKey, RegisterTrial
from ledger.domain import Location, LocationKind, Trial
from ledger.domain.base import require_role, stamp
from ledger.errors import InvalidInput
from ledger.values import Actor, Role


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
