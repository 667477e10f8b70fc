"""`lotline users`: add, list, disable users and issue their API tokens (secrets are shown once).

Every change is an event of the user's account in the chain, recorded with its `--reason` and as
done by the operator who runs the command (their login on this host: `ledger.identity.operator`).
Passwords (needed to sign and for second-person checks) are read from a prompt or, with
`--password-stdin`, from the first line of standard input; never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from ledger.domain import Location
from ledger.errors import InvalidInput, LedgerError
from ledger.identity import MAX_TOKEN_TTL, Identity, User, operator
from ledger.values import Role
from scripts.db import existing_store

BY = operator("lotline users")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "users",
        help="manage API users and tokens",
        description="Users of the API, their roles, the places they work at and their tokens. "
        "Site, depot and manufacturing users are bound to their places and act only there; QA, QP, "
        "recall investigators, inspectors and admins act everywhere. Tokens and passwords are stored "
        "hashed; a new token is printed once.",
    )
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    cmds = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    add = cmds.add_parser("add", help="add a user (and print a first token with --token)")
    add.add_argument("principal", help="login name: lowercase letters, digits, . _ -")
    add.add_argument("--name", required=True, help="printed name (appears in signatures)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument(
        "--place",
        "--site",
        dest="places",
        action="append",
        default=[],
        metavar="PLACE",
        help="a place the user works at (site users: clinical sites; depot and manufacturing users: "
        "depots and manufacturing sites): its id or its 13-digit GLN; repeat for more",
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--no-password", action="store_true", help="token-only user (cannot sign or check)")
    add.add_argument("--token", action="store_true", help="also issue and print an API token")
    _reason(add)
    add.set_defaults(func=_with_identity(_add_user))

    role = cmds.add_parser("role", help="grant a user another role in place of theirs")
    role.add_argument("principal")
    role.add_argument("--role", required=True, choices=[r.value for r in Role])
    role.add_argument(
        "--place", dest="places", action="append", default=[], metavar="PLACE",
        help="a place the new role works at (its id or 13-digit GLN); repeat for more",
    )
    _reason(role)
    role.set_defaults(func=_with_identity(_change_role))

    ls = cmds.add_parser("list", help="list users (never their secrets)")
    ls.set_defaults(func=_with_identity(_list_users))

    token = cmds.add_parser("token", help="issue a new API token for a user and print it once")
    token.add_argument("principal")
    token.add_argument("--label", default="", help="what the token is for")
    token.add_argument(
        "--expires-in",
        type=_minutes,
        metavar="MINUTES",
        help="the token expires after MINUTES (a positive number); without it, it does not expire "
        "until revoked (`lotline users revoke`)",
    )
    _reason(token)
    token.set_defaults(func=_with_identity(_issue_token))

    password = cmds.add_parser("password", help="set a user's password")
    password.add_argument("principal")
    password.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    _reason(password)
    password.set_defaults(func=_with_identity(_set_password))

    disable = cmds.add_parser("disable", help="disable a user: their tokens and password stop working")
    disable.add_argument("principal")
    _reason(disable)
    disable.set_defaults(func=_with_identity(_disable_user))

    enable = cmds.add_parser("enable", help="re-enable a disabled user")
    enable.add_argument("principal")
    _reason(enable)
    enable.set_defaults(func=_with_identity(_enable_user))

    revoke = cmds.add_parser("revoke", help="revoke every token of a user")
    revoke.add_argument("principal")
    _reason(revoke)
    revoke.set_defaults(func=_with_identity(_revoke_tokens))

    for name, what, action in (
        ("bind", "bind a site, depot or manufacturing user to more places", _bind),
        ("unbind", "unbind a user from places (never from the last one)", _unbind),
    ):
        cmd = cmds.add_parser(name, help=what)
        cmd.add_argument("principal")
        cmd.add_argument(
            "--place", dest="places", action="append", required=True, metavar="PLACE",
            help="the place's id or 13-digit GLN; repeat for more",
        )
        _reason(cmd)
        cmd.set_defaults(func=_with_identity(action))


def _reason(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reason", required=True, help="why (recorded in the chain with the change, e.g. a ticket number)"
    )


def _url(args: argparse.Namespace) -> str:
    return existing_store(args.database_url)


def _with_identity(
    action: Callable[[argparse.Namespace, Identity], int],
) -> Callable[[argparse.Namespace], int]:
    """The subcommand: `action` on the users of the store; a refused action prints why and exits 1."""

    def run(args: argparse.Namespace) -> int:
        identity = Identity.open(_url(args))
        try:
            return action(args, identity)
        except LedgerError as e:
            print(f"lotline users: {e.message}", file=sys.stderr)
            return 1
        finally:
            identity.close()

    return run


def _add_user(args: argparse.Namespace, identity: Identity) -> int:
    places = [_place_id(text) for text in args.places]
    password = None if args.no_password else _read_password(args.password_stdin)
    identity.add_user(
        args.principal, name=args.name, role=args.role, places=places, password=password,
        by=BY, reason=args.reason,
    )
    user = identity.user(args.principal)
    print(f"added {_describe(user)}")
    if args.token:
        token = identity.issue_token(user.principal, label="first token", by=BY, reason=args.reason)
        print(f"token: {token}")
    return 0


def _change_role(args: argparse.Namespace, identity: Identity) -> int:
    places = [_place_id(text) for text in args.places]
    identity.change_role(args.principal, args.role, places=places, by=BY, reason=args.reason)
    print(f"changed {_describe(identity.user(args.principal))}")
    return 0


def _list_users(args: argparse.Namespace, identity: Identity) -> int:
    for user in identity.users():
        print(_describe(user))
    return 0


def _minutes(text: str) -> int:
    """--expires-in: a whole number of minutes, positive and at most MAX_TOKEN_TTL (argparse exits 2)."""
    try:
        minutes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minutes") from None
    if not 0 < minutes <= MAX_TOKEN_TTL / timedelta(minutes=1):
        raise argparse.ArgumentTypeError(
            f"{minutes} minutes: a token's lifetime is positive and at most {MAX_TOKEN_TTL.days} days "
            "(leave --expires-in out for a token that does not expire)"
        )
    return minutes


def _issue_token(args: argparse.Namespace, identity: Identity) -> int:
    ttl = None if args.expires_in is None else timedelta(minutes=args.expires_in)
    print(identity.issue_token(args.principal, label=args.label, ttl=ttl, by=BY, reason=args.reason))
    return 0


def _set_password(args: argparse.Namespace, identity: Identity) -> int:
    identity.set_password(args.principal, _read_password(args.password_stdin), by=BY, reason=args.reason)
    print(f"password of {args.principal} changed")
    return 0


def _disable_user(args: argparse.Namespace, identity: Identity) -> int:
    identity.set_disabled(args.principal, True, by=BY, reason=args.reason)
    print(f"{args.principal} disabled")
    return 0


def _enable_user(args: argparse.Namespace, identity: Identity) -> int:
    identity.set_disabled(args.principal, False, by=BY, reason=args.reason)
    print(f"{args.principal} enabled")
    return 0


def _revoke_tokens(args: argparse.Namespace, identity: Identity) -> int:
    revoked = identity.revoke_tokens(args.principal, by=BY, reason=args.reason)
    print(f"revoked {revoked} token(s) of {args.principal}")
    return 0


def _bind(args: argparse.Namespace, identity: Identity) -> int:
    places = [_place_id(text) for text in args.places]
    identity.bind(args.principal, places, by=BY, reason=args.reason)
    print(f"bound {_describe(identity.user(args.principal))}")
    return 0


def _unbind(args: argparse.Namespace, identity: Identity) -> int:
    places = [_place_id(text) for text in args.places]
    identity.unbind(args.principal, places, by=BY, reason=args.reason)
    print(f"unbound {_describe(identity.user(args.principal))}")
    return 0


def _place_id(text: str) -> UUID:
    try:
        return Location.create_id(text) if text.isdigit() else UUID(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is neither a place id nor a 13-digit GLN", field="places") from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("lotline users: the passwords differ")
    return first


def _describe(user: User) -> str:
    sites = f" places={','.join(sorted(str(s) for s in user.places))}" if user.places else ""
    state = " DISABLED" if user.disabled else ""
    signs = "" if user.has_password else " (no password: cannot sign)"
    return f"{user.principal} [{user.role}] {user.name}{sites}{signs}{state}"
