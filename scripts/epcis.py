"""`lotline epcis export|capture|query`: GS1 EPCIS 2.0 documents out of and into the ledger.

    lotline epcis export [--trace EPC] [--from TIME] [--to TIME] [--unblinded] [-o FILE]
    lotline epcis capture FILE --as PRINCIPAL:ROLE:NAME [--as ...]
    lotline epcis query MATCH_epc=urn:epc:id:sgtin:... [EQ_bizStep=shipping ...]

Export streams the document (blinded unless --unblinded). Capture is all or nothing and records
each event once (a resent file records nothing); it prints the result and exits 1 when refused.
Formats: docs/epcis.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from epcis import Epcis
from ledger.application import Ledger
from ledger.errors import LedgerError
from ledger.values import Actor, Role
from scripts.db import existing_store


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("epcis", help="export, capture or query GS1 EPCIS 2.0 documents",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", help="override LOTLINE_DATABASE_URL")
    p.add_argument("--prefix-length", type=int, default=7, help="GS1 company prefix length in EPC URIs (7)")
    actions = p.add_subparsers(dest="epcis_command", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write an EPCISDocument of a trace or a time range")
    export.add_argument("--trace", metavar="EPC", help="a lot (LGTIN) or kit (SGTIN) to trace")
    export.add_argument("--from", dest="start", type=_time, help="first event time (ISO 8601 with zone)")
    export.add_argument("--to", dest="end", type=_time, help="events before this time")
    export.add_argument("--unblinded", action="store_true", help="include the kit list (unblinded users)")
    export.add_argument("-o", "--out", type=Path, help="write to this file (default: standard output)")
    capture = actions.add_parser("capture", help="capture a partner's EPCISDocument (all or nothing)")
    capture.add_argument("file", type=Path)
    capture.add_argument("--as", dest="actors", action="append", required=True, type=_actor,
                         metavar="PRINCIPAL:ROLE:NAME", help="an identity that may do the document's steps")
    query = actions.add_parser("query", help="EPCIS REST query parameters as NAME=VALUE")
    query.add_argument("params", nargs="*", metavar="NAME=VALUE")
    p.set_defaults(func=run)


def _time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text} has no time zone")
    return when


def _actor(text: str) -> Actor:
    try:
        principal, role, name = text.split(":", 2)
        return Actor(principal, Role(role), name)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PRINCIPAL:ROLE:NAME with a Lotline role") from None


def run(args: argparse.Namespace) -> int:
    url = existing_store(args.database_url)
    ledger = Ledger.open(url)
    epcis = Epcis(ledger, url, args.prefix_length)
    try:
        return _ACTIONS[args.epcis_command](epcis, args)
    except LedgerError as e:
        print(f"lotline epcis: {e.message}", file=sys.stderr)
        return 1
    finally:
        epcis.close()
        ledger.close()


def _export(epcis: Epcis, args: argparse.Namespace) -> int:
    blinded = not args.unblinded
    chunks = epcis.trace(args.trace, blinded=blinded) if args.trace else epcis.events_between(
        args.start, args.end, blinded=blinded)
    out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    try:
        for chunk in chunks:
            out.write(chunk)
        out.write("\n")
    finally:
        if args.out:
            out.close()
    return 0


def _capture(epcis: Epcis, args: argparse.Namespace) -> int:
    result = epcis.capture(args.file.read_bytes(), args.actors)
    print(json.dumps({k: v for k, v in result.as_dict().items() if k != "eventIDs"}, indent=2))
    return 0 if result.accepted else 1


def _query(epcis: Epcis, args: argparse.Namespace) -> int:
    params = dict(p.split("=", 1) for p in args.params)
    doc, token = epcis.query(params)
    print(json.dumps({"document": doc, "nextPageToken": token}, indent=2))
    return 0


_ACTIONS = {"export": _export, "capture": _capture, "query": _query}
