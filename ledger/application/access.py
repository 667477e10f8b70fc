"""Access administration (admin): each creation, change and cancellation of a user's access is an
event of their account (EU GMP Annex 11, 12.3), with who did it and why."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from ledger.application.core import Ledger, handles
from ledger.application.rules import reason
from ledger.commands import Recorded
from ledger.commands.access import (
    AddUser,
    AdoptUser,
    BindUser,
    ChangeRole,
    DisableUser,
    EnableUser,
    IssueToken,
    RecordUnblindedRead,
    RevokeTokens,
    SetPassword,
    UnbindUser,
)
from ledger.domain.account import UserAccount, require_places_fit
from ledger.domain.base import require_role, stamp
from ledger.domain.location import Location, LocationKind
from ledger.errors import InvalidInput, NotFound
from ledger.values import Actor, Role, iso

WORKS_AT = {
    Role.SITE: (LocationKind.CLINICAL_SITE,),
    Role.DEPOT: (LocationKind.DEPOT, LocationKind.MANUFACTURING_SITE),
    Role.MANUFACTURING: (LocationKind.MANUFACTURING_SITE, LocationKind.DEPOT),
}
"""The kinds of place each place-bound role works at (depots package and ship, plants do too)."""


def _places_for(ledger: Ledger, role: Role, places: Iterable[UUID]) -> list[UUID]:
    """The places, each a registered place of a kind the role works at."""
    found = list(dict.fromkeys(places))
    kinds = WORKS_AT.get(role, ())
    for place_id in found:
        place = ledger.peek(Location, place_id)
        if place.kind not in kinds:
            where = " or ".join(str(k) for k in kinds) if kinds else "no place"
            why = f"{place.name} is a {place.kind}; a {role} user works at {where}"
            raise InvalidInput(why, field="places")
    return found


def _account(ledger: Ledger, actor: Actor, principal: str, action: str) -> UserAccount:
    require_role(actor, action, Role.ADMIN)
    try:
        return ledger.get(UserAccount, UserAccount.create_id(principal))
    except NotFound:
        raise NotFound("user", principal) from None


@handles(AddUser)
def add_user(ledger: Ledger, actor: Actor, cmd: AddUser) -> Recorded:
    require_role(actor, "add a user", Role.ADMIN)
    name = cmd.name.strip()
    if not name:
        raise InvalidInput("a user needs a printed name (it appears in signatures)", field="name")
    require_places_fit(cmd.role, cmd.places)
    places = _places_for(ledger, cmd.role, cmd.places)
    account = UserAccount(
        principal=cmd.principal,
        audit=stamp(actor, cmd.occurred_at, reason(cmd.reason)),
        name=name,
        role=str(cmd.role),
        places=sorted(map(str, places)),
        password_set=cmd.password_set,
    )
    return ledger.record(account, created=(account.id,))


@handles(AdoptUser)
def adopt_user(ledger: Ledger, actor: Actor, cmd: AdoptUser) -> Recorded:
    require_role(actor, "adopt a user", Role.ADMIN)
    account = UserAccount(
        principal=cmd.principal,
        audit=stamp(actor, None, reason(cmd.reason)),
        name=cmd.name.strip(),
        role=str(cmd.role),
        places=sorted(map(str, cmd.places)),
        password_set=cmd.password_set,
    )
    return ledger.record(account, created=(account.id,))


@handles(ChangeRole)
def change_role(ledger: Ledger, actor: Actor, cmd: ChangeRole) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "change a user's role")
    require_places_fit(cmd.role, cmd.places)
    places = _places_for(ledger, cmd.role, cmd.places)
    account.change_role(stamp(actor, cmd.occurred_at, reason(cmd.reason)), cmd.role, places)
    return ledger.record(account)


@handles(BindUser)
def bind_user(ledger: Ledger, actor: Actor, cmd: BindUser) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "bind a user to places")
    places = _places_for(ledger, account.role, cmd.places) if account.role in WORKS_AT else cmd.places
    account.bind(stamp(actor, cmd.occurred_at, reason(cmd.reason)), places)
    return ledger.record(account)


@handles(UnbindUser)
def unbind_user(ledger: Ledger, actor: Actor, cmd: UnbindUser) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "unbind a user from places")
    account.unbind(stamp(actor, cmd.occurred_at, reason(cmd.reason)), cmd.places)
    return ledger.record(account)


@handles(DisableUser)
def disable_user(ledger: Ledger, actor: Actor, cmd: DisableUser) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "disable a user")
    account.disable(stamp(actor, cmd.occurred_at, reason(cmd.reason)))
    return ledger.record(account)


@handles(EnableUser)
def enable_user(ledger: Ledger, actor: Actor, cmd: EnableUser) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "enable a user")
    account.enable(stamp(actor, cmd.occurred_at, reason(cmd.reason)))
    return ledger.record(account)


@handles(SetPassword)
def set_password(ledger: Ledger, actor: Actor, cmd: SetPassword) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "set a user's password")
    account.set_password(stamp(actor, cmd.occurred_at, reason(cmd.reason)))
    return ledger.record(account)


@handles(IssueToken)
def issue_token(ledger: Ledger, actor: Actor, cmd: IssueToken) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "issue an API token")
    expires = None if cmd.expires_at is None else iso(cmd.expires_at)
    account.issue_token(stamp(actor, cmd.occurred_at, reason(cmd.reason)), cmd.token_id, cmd.label, expires)
    return ledger.record(account)


@handles(RevokeTokens)
def revoke_tokens(ledger: Ledger, actor: Actor, cmd: RevokeTokens) -> Recorded:
    account = _account(ledger, actor, cmd.principal, "revoke API tokens")
    account.revoke_tokens(stamp(actor, cmd.occurred_at, reason(cmd.reason)), cmd.token_ids)
    return ledger.record(account)


UNBLINDED_READERS = (Role.QA, Role.QP, Role.RECALL_INVESTIGATOR, Role.INSPECTOR)
"""Who may read unblinded answers (treatment and drug-product lot of each kit)."""


@handles(RecordUnblindedRead)
def record_unblinded_read(ledger: Ledger, actor: Actor, cmd: RecordUnblindedRead) -> Recorded:
    """An unblinded read is an event of the reader's account (a tamper-evident access log), recorded
    before the answer is given."""
    require_role(actor, "read unblinded data", *UNBLINDED_READERS)
    try:
        account = ledger.get(UserAccount, UserAccount.create_id(actor.principal))
    except NotFound:
        raise NotFound("user", actor.principal) from None
    account.read_unblinded(stamp(actor), cmd.what, cmd.request)
    return ledger.record(account)
