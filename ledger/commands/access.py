"""Access administration (admin): users, their roles and places, their passwords and API tokens.

Secrets are not fields of these commands: a password or a token is turned into its hash by
`ledger.identity`, which stores the hash in the same transaction as the event these record.
"""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from ledger.commands.base import Command, LateReason, LongText, Text, When, one_line
from ledger.values import Role

_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def principal(value: str) -> str:
    """A login name: 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not _PRINCIPAL.fullmatch(value):
        raise ValueError(
            "a principal is 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


Principal = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(principal)]
Places = Annotated[tuple[UUID, ...], Field(max_length=500)]
TokenId = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(one_line)]


class AddUser(Command):
    """Create a user with a role; a site, depot or manufacturing user with the places they work at
    (at least one), a QA, QP, recall investigator, inspector or admin with none."""

    principal: Principal
    name: Text
    role: Role
    places: Places = ()
    password_set: bool = False
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class AdoptUser(Command):
    """Record the account of a user who existed before access changes were events, as the user
    table held them (`lotline db upgrade`): their role and places are taken as they were, even where
    today's rules would refuse them (a depot user of an older release bound to no place acts nowhere)."""

    principal: Principal
    name: Text
    role: Role
    places: Places = ()
    password_set: bool = False
    reason: LongText


class ChangeRole(Command):
    """Grant a user another role in place of the one they hold, with the places it needs."""

    principal: Principal
    role: Role
    places: Places = ()
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class BindUser(Command):
    """Bind a site, depot or manufacturing user to more places."""

    principal: Principal
    places: Annotated[tuple[UUID, ...], Field(min_length=1, max_length=500)]
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class UnbindUser(Command):
    """Unbind a user from places (never from the last one)."""

    principal: Principal
    places: Annotated[tuple[UUID, ...], Field(min_length=1, max_length=500)]
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class DisableUser(Command):
    """Disable a user: their tokens and password stop working at once."""

    principal: Principal
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class EnableUser(Command):
    """Enable a disabled user again."""

    principal: Principal
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class SetPassword(Command):
    """Record that a user's password was set or reset (the hash is kept beside the chain)."""

    principal: Principal
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class IssueToken(Command):
    """Record that an API token was issued to a user, by its public id (the secret is never recorded)."""

    principal: Principal
    token_id: TokenId
    label: Annotated[str, StringConstraints(max_length=100), AfterValidator(one_line)] = ""
    expires_at: AwareDatetime | None = None
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class RevokeTokens(Command):
    """Revoke API tokens of a user, by their public ids."""

    principal: Principal
    token_ids: Annotated[tuple[TokenId, ...], Field(min_length=1, max_length=1000)]
    reason: LongText
    occurred_at: When = None
    late_reason: LateReason = None


class RecordUnblindedRead(Command):
    """Record that the acting user read unblinded data (treatment or drug-product lot per kit), before
    they see it: `what` they read and the `request` that asked for it."""

    what: Text
    request: LongText
