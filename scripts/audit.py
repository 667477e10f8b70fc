"""`lotline audit search`: the audit trail searched at the server, as a table, CSV or JSON.

The same search as `GET /audit` (projections.audit.AuditTrail.search): by actor, role, event type,
signature meaning, place, entity, late entries and time range; each row names its chain position and
hash. The read models are brought up to date first (as `lotline project` would), so the answer is as
of the chain's head when the command ran; the first line on standard error says which position.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from uuid import UUID

from ledger.errors import InvalidInput
from ledger.values import Meaning, Role, utc
from projections.audit import AuditQuery, as_csv, export_row
from projections.runner import ProjectionRunner
from scripts.db import existing_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "audit", help="search the audit trail",
        description="Search the audit trail: who did what, when and why, each event with its chain "
        "position and hash.",
    )
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    cmds = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    s = cmds.add_parser("search", help="events matching every criterion given, oldest first")
    s.add_argument("--principal", help="who did it (login name)")
    s.add_argument("--role", choices=[r.value for r in Role], help="in which role")
    s.add_argument("--event", help="Aggregate.Event (e.g. Lot.Released) or the event's name alone")
    s.add_argument("--meaning", choices=[m.value for m in Meaning], help="the meaning of its signature")
    s.add_argument("--place", type=UUID, metavar="ID", help="a place it concerns")
    s.add_argument("--entity", type=UUID, metavar="ID", help="the entity it belongs to")
    s.add_argument("--late", action="store_true", help="only late entries")
    for name, what in (("occurred", "happened"), ("recorded", "was recorded")):
        s.add_argument(f"--{name}-from", type=_time, metavar="TIME", help=f"it {what} at or after TIME")
        s.add_argument(f"--{name}-to", type=_time, metavar="TIME", help=f"it {what} before TIME")
    s.add_argument("--limit", type=int, default=1000, help="at most this many rows (default 1000)")
    s.add_argument("--offset", type=int, default=0, help="skip this many rows first")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.set_defaults(func=run)


def _time(text: str) -> datetime:
    """An ISO 8601 time with its timezone (argparse exits 2 otherwise)."""
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time with a timezone") from None
    except InvalidInput:
        raise argparse.ArgumentTypeError(f"{text!r} has no timezone (add Z or +01:00)") from None


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 100_000 or args.offset < 0:
        print("lotline audit: --limit is 1-100000 and --offset is not negative", file=sys.stderr)
        return 2
    query = AuditQuery(
        principal=args.principal, role=args.role, event=args.event, meaning=args.meaning,
        place_id=args.place, entity_id=args.entity, late_entry=True if args.late else None,
        occurred_from=args.occurred_from, occurred_to=args.occurred_to,
        recorded_from=args.recorded_from, recorded_to=args.recorded_to,
    )
    runner = ProjectionRunner.open(existing_store(args.database_url))
    try:
        runner.catch_up()
        found = runner.audit.search(query, args.limit, args.offset)
    finally:
        runner.close()
    shown = f"{args.offset + 1}-{args.offset + len(found.entries)}" if found.entries else "none"
    print(f"{found.total} events match; rows {shown}; as of chain position {found.as_of}", file=sys.stderr)
    if args.format == "csv":
        sys.stdout.write(as_csv(found.entries))
    elif args.format == "json":
        print(json.dumps([export_row(e) for e in found.entries], indent=1, default=str))
    else:
        for e in found.entries:
            late = " LATE" if e.late_entry else ""
            signed = f" signed {e.meaning}" if e.meaning else ""
            print(
                f"{e.seq:>8} {e.recorded_at:%Y-%m-%d %H:%M:%S} {e.principal} ({e.role}) "
                f"{e.aggregate}.{e.event} {e.entity_id}{signed}{late}"
                + (f" reason: {e.reason}" if e.reason else "")
            )
    return 0


