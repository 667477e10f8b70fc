"""Authentication and authority at the API's edge.

Every request but /health (and the docs) carries `Authorization: Bearer <token>`; the token opens a
session of one user. Commands are checked by the ledger's own role rules (NotAuthorised, 403); the
API adds what the ledger cannot know: which sites a site user is bound to, who may read what
(`permissions`), and the re-authentication inside an electronic signature or second-person check.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from api.errors import Forbidden, SignatureNotVerified
from api.schemas.common import CheckerIn, SignatureIn
from ledger.identity import Identity, InvalidCredentials, Session, User, token_hash
from ledger.values import Actor, Role, Signature, sign


def authenticate(identity: Identity, token: str | None) -> Session:
    """The session of a bearer token, or InvalidCredentials (401)."""
    if not token:
        raise InvalidCredentials("authentication required: send `Authorization: Bearer <token>`")
    return identity.authenticate(token)


def require_role(user: User, what: str, roles: Iterable[Role]) -> None:
    """Forbidden (403) unless the user's role is one of `roles`."""
    allowed = sorted(str(r) for r in roles)
    if user.role not in set(roles):
        raise Forbidden(
            f"role {str(user.role)!r} may not {what}; allowed: {', '.join(allowed)}",
            role=str(user.role),
            allowed=allowed,
        )


def require_site(user: User, location_id: UUID) -> None:
    """A site user acts and reads only at the sites they are bound to."""
    if user.role == Role.SITE and location_id not in user.places:
        raise Forbidden(
            f"{user.principal} is not bound to site {location_id}",
            site_id=str(location_id),
            reason="not_your_site",
        )


class Signer:
    """Re-authenticates the people who sign a step or check it (21 CFR 11.200(a)(1))."""

    def __init__(self, identity: Identity, session: Session, token_max_age: timedelta) -> None:
        self.identity = identity
        self.session = session
        self.token_max_age = token_max_age

    def sign(self, signature: SignatureIn) -> Signature:
        """The acting user's signature with its meaning, once their password (or token) checks out."""
        user = self.session.user
        self._reauthenticate(user.principal, signature.password, signature.token)
        return sign(user.actor, signature.meaning)

    def checker(self, checked_by: CheckerIn) -> Actor:
        """The second person of a four-eyes check, re-authenticated with their own credentials."""
        user = self._reauthenticate(checked_by.principal, checked_by.password, checked_by.token)
        return user.actor

    def _reauthenticate(self, principal: str, password: str | None, token: str | None) -> User:
        if (password is None) == (token is None):
            raise SignatureNotVerified(
                f"re-authenticate {principal} with exactly one of password or token",
                principal=principal,
                field="signature",
            )
        try:
            if password is not None:
                return self.identity.verify_password(principal, password)
            assert token is not None
            return self._fresh_token(principal, token)
        except InvalidCredentials as e:
            raise SignatureNotVerified(
                f"re-authentication failed: {e.message}", principal=principal
            ) from None

    def _fresh_token(self, principal: str, token: str) -> User:
        if token_hash(token) == self.session.token_hash:
            raise SignatureNotVerified(
                "re-authenticate with a token other than the one the request carries", principal=principal
            )
        issued = self.identity.token_issued_at(token, principal)
        if datetime.now(UTC) - issued > self.token_max_age:
            raise SignatureNotVerified(
                f"the token is older than {int(self.token_max_age.total_seconds())} s; issue a fresh one",
                principal=principal,
            )
        return self.identity.user(principal)
