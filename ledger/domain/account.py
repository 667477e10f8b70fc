"""User accounts: who may use Lotline, in which role and at which places (EU GMP Annex 11, 12.3).

Creating a user, changing their role, binding them to places or unbinding them, disabling and
enabling them, setting their password and issuing or revoking their API tokens are each an event of
the account, with who did it and why. Secrets never enter an event: the password hash and the token
hashes are kept beside the chain (`ledger.identity`), written in the same transaction as the event
that records them; the event says only that a password was set or which token (by its public id)
was issued. Authorisation reads the account as these events leave it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.base import LedgerAggregate, stable_id
from ledger.errors import InvalidInput, InvalidTransition
from ledger.values import PLACE_BOUND, Role


def account_id(principal: str) -> UUID:
    """The account of a login name: the same principal always names the same account."""
    return stable_id("user", principal)


def require_places_fit(role: Role, places: Iterable[UUID]) -> None:
    """A person of a place-bound role works at one place at least; one of a global role at none."""
    has_places = bool(set(places))
    if role in PLACE_BOUND and not has_places:
        raise InvalidInput(f"a {role} user is bound to at least one place", field="places")
    if role not in PLACE_BOUND and has_places:
        raise InvalidInput(f"a {role} user acts everywhere: bound to no place", field="places")


class UserAccount(LedgerAggregate):
    """One person's access to Lotline: principal (login), printed name, role, places, whether it is
    enabled, whether a password is set (needed to sign) and which API tokens were revoked."""

    @staticmethod
    def create_id(principal: str, **_: Any) -> UUID:
        return account_id(principal)

    class Registered(LedgerAggregate.Created):
        """The user was registered with a role and, for a place-bound role, the places they work at."""

        principal: str
        audit: dict[str, Any]
        name: str
        role: str
        places: list[str]
        password_set: bool

    @event(Registered)
    def __init__(
        self,
        principal: str,
        audit: dict[str, Any],
        name: str,
        role: str,
        places: list[str],
        password_set: bool,
    ) -> None:
        self.principal = principal
        self.name = name
        self.role = Role(role)
        self.places = frozenset(UUID(p) for p in places)
        self.disabled = False
        self.password_set = password_set
        self.tokens: dict[str, str] = {}  # public token id -> label, every token ever issued
        self.revoked: set[str] = set()
        self._touch(audit)

    # --- decisions -------------------------------------------------------------------------------

    def change_role(self, audit: dict[str, Any], role: Role, places: Iterable[UUID]) -> None:
        """Grant another role (revoking the one held), with the places it needs (none for a global role)."""
        places = frozenset(places)
        if role == self.role and places == self.places:
            raise InvalidTransition("user", self.principal, str(self.role), f"change role to {role}")
        require_places_fit(role, places)
        self._require_after_last_step(audit, "role change")
        self._role_changed(audit, str(self.role), str(role), sorted(map(str, places)))

    def bind(self, audit: dict[str, Any], places: Iterable[UUID]) -> None:
        """Bind a place-bound user to more places."""
        new = frozenset(places) - self.places
        if self.role not in PLACE_BOUND:
            raise InvalidInput(f"a {self.role} user acts everywhere: bound to no place", field="places")
        if not new:
            raise InvalidInput(f"{self.principal} is already bound to every place named", field="places")
        self._require_after_last_step(audit, "binding")
        self._bound(audit, sorted(map(str, new)))

    def unbind(self, audit: dict[str, Any], places: Iterable[UUID]) -> None:
        """Unbind a user from places; never from the last one (a place-bound user acts somewhere)."""
        gone = frozenset(places)
        if gone - self.places:
            unknown = ", ".join(sorted(map(str, gone - self.places)))
            raise InvalidInput(f"{self.principal} is not bound to {unknown}", field="places")
        if not self.places - gone:
            raise InvalidInput(
                f"{self.principal} would be bound to no place: bind another first", field="places"
            )
        self._require_after_last_step(audit, "unbinding")
        self._unbound(audit, sorted(map(str, gone)))

    def disable(self, audit: dict[str, Any]) -> None:
        """Disable the user: their tokens and password stop working at once."""
        if self.disabled:
            raise InvalidTransition("user", self.principal, "disabled", "disable")
        self._require_after_last_step(audit, "disabling")
        self._disabled(audit)

    def enable(self, audit: dict[str, Any]) -> None:
        """Enable a disabled user again."""
        if not self.disabled:
            raise InvalidTransition("user", self.principal, "enabled", "enable")
        self._require_after_last_step(audit, "enabling")
        self._enabled(audit)

    def set_password(self, audit: dict[str, Any]) -> None:
        """A new password was set (its hash is kept beside the chain, never in it)."""
        self._require_after_last_step(audit, "password change")
        self._password_set(audit)

    def issue_token(self, audit: dict[str, Any], token_id: str, label: str, expires_at: str | None) -> None:
        """An API token was issued; the event names it by its public id, never by its secret."""
        if token_id in self.tokens:
            raise InvalidInput(f"token {token_id} was issued already", field="token_id")
        self._require_after_last_step(audit, "token issue")
        self._token_issued(audit, token_id, label, expires_at)

    def revoke_tokens(self, audit: dict[str, Any], token_ids: Iterable[str]) -> None:
        """Revoke the named tokens of the user (each must be theirs and not revoked yet)."""
        ids = sorted(set(token_ids))
        unknown = [t for t in ids if t not in self.tokens]
        if unknown:
            raise InvalidInput(f"{self.principal} has no token {unknown[0]}", field="token_ids")
        if not ids or set(ids) <= self.revoked:
            raise InvalidInput(f"no token of {self.principal} left to revoke", field="token_ids")
        self._require_after_last_step(audit, "token revocation")
        self._tokens_revoked(audit, [t for t in ids if t not in self.revoked])

    def read_unblinded(self, audit: dict[str, Any], what: str, request: str) -> None:
        """The user read unblinded data: `what`, asked by `request` (recorded before they see it)."""
        self._read_unblinded(audit, what, request)

    @property
    def active_tokens(self) -> list[str]:
        """The public ids of the tokens issued and not revoked (expiry is checked at use)."""
        return sorted(t for t in self.tokens if t not in self.revoked)

    # --- events ----------------------------------------------------------------------------------

    class RoleChanged(Aggregate.Event):
        """The user's role was changed from `previous` to `role` (granted the new one, the old one
        revoked), with the places the new role binds them to."""

        audit: dict[str, Any]
        previous: str
        role: str
        places: list[str]

    @event(RoleChanged)
    def _role_changed(self, audit: dict[str, Any], previous: str, role: str, places: list[str]) -> None:
        self.role = Role(role)
        self.places = frozenset(UUID(p) for p in places)
        self._touch(audit)

    class Bound(Aggregate.Event):
        """The user was bound to more places."""

        audit: dict[str, Any]
        places: list[str]

    @event(Bound)
    def _bound(self, audit: dict[str, Any], places: list[str]) -> None:
        self.places = self.places | {UUID(p) for p in places}
        self._touch(audit)

    class Unbound(Aggregate.Event):
        """The user was unbound from places."""

        audit: dict[str, Any]
        places: list[str]

    @event(Unbound)
    def _unbound(self, audit: dict[str, Any], places: list[str]) -> None:
        self.places = self.places - {UUID(p) for p in places}
        self._touch(audit)

    class Disabled(Aggregate.Event):
        """The user was disabled."""

        audit: dict[str, Any]

    @event(Disabled)
    def _disabled(self, audit: dict[str, Any]) -> None:
        self.disabled = True
        self._touch(audit)

    class Enabled(Aggregate.Event):
        """The user was enabled again."""

        audit: dict[str, Any]

    @event(Enabled)
    def _enabled(self, audit: dict[str, Any]) -> None:
        self.disabled = False
        self._touch(audit)

    class PasswordSet(Aggregate.Event):
        """A new password was set or reset (the event holds no secret)."""

        audit: dict[str, Any]

    @event(PasswordSet)
    def _password_set(self, audit: dict[str, Any]) -> None:
        self.password_set = True
        self._touch(audit)

    class TokenIssued(Aggregate.Event):
        """An API token was issued, named by its public id (not its secret), valid until `expires_at`
        (None: until revoked)."""

        audit: dict[str, Any]
        token_id: str
        label: str
        expires_at: str | None

    @event(TokenIssued)
    def _token_issued(self, audit: dict[str, Any], token_id: str, label: str, expires_at: str | None) -> None:
        self.tokens[token_id] = label
        self._touch(audit)

    class TokensRevoked(Aggregate.Event):
        """API tokens of the user were revoked."""

        audit: dict[str, Any]
        token_ids: list[str]

    @event(TokensRevoked)
    def _tokens_revoked(self, audit: dict[str, Any], token_ids: list[str]) -> None:
        self.revoked.update(token_ids)
        self._touch(audit)

    class UnblindedRead(Aggregate.Event):
        """The user read unblinded data (treatment or drug-product lot per kit): `what`, by `request`."""

        audit: dict[str, Any]
        what: str
        request: str

    @event(UnblindedRead)
    def _read_unblinded(self, audit: dict[str, Any], what: str, request: str) -> None:
        self._touch(audit)
