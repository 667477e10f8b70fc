"""A site's drug accountability as one self-contained HTML page a monitor or inspector can print: what
was delivered, what became of each kit, and the counts that add up to what was delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from ledger.values import now
from projections.views import Accountability

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #bbb;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .5em;
text-align:left}th{background:#f0f0f0}td.n{text-align:right}.meta{color:#555}
"""

OUTCOME_WORDS = {
    "in_transit": "on its way to the site",
    "missing": "missing on receipt",
    "on_hand": "on hand (received, quarantined or awaiting destruction)",
    "damaged": "damaged",
    "returned_by_subject": "brought back by the subject",
    "dispensed": "dispensed",
    "destroyed": "destroyed at the site",
    "sent_back": "sent back to a depot",
}


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(iso: str | None) -> str:
    """An ISO 8601 time as a person reads it: `2025-08-13 10:29 UTC` (all times are UTC)."""
    return "" if not iso else datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_accountability(report: Accountability) -> str:
    """The page for one site's accountability, as of the read models' position."""
    site = report.site
    counts = "".join(
        f"<tr><td>{_e(OUTCOME_WORDS[o])}</td><td class='n'>{n}</td></tr>" for o, n in report.counts.items()
    )
    rows = "".join(
        f"<tr><td>{_e(k.kit_number)}</td><td>{_e(k.shipment_number)}</td><td>{_e(_when(k.received_at))}</td>"
        f"<td>{_e(k.status)}</td><td>{_e(OUTCOME_WORDS[k.outcome])}</td><td>{_e(k.subject or '')}</td>"
        f"<td>{_e(k.now_at.name if k.now_at else '')}</td></tr>"
        for k in report.kits
    )
    body = (
        f"<h1>Drug accountability: {_e(site.name)}</h1>"
        f"<p class='meta'>Site {_e(site.site_number or '')}, GLN {_e(site.gln)}, {_e(site.country)}; "
        f"from the ledger at position {report.as_of}; made {_e(_when(now().isoformat()))}</p>"
        "<h2>Reconciliation</h2>"
        f"<table><tr><th>Delivered</th><td class='n'>{report.delivered}</td></tr>"
        f"<tr><th>Received</th><td class='n'>{report.received}</td></tr></table>"
        f"<p>What became of the {report.delivered} kits delivered (the rows add up):</p>"
        f"<table><tr><th>Outcome</th><th>Kits</th></tr>{counts}"
        f"<tr><th>Total</th><td class='n'>{sum(report.counts.values())}</td></tr></table>"
        "<h2>Every kit</h2>"
        "<table><tr><th>Kit</th><th>Shipment</th><th>Received</th><th>Status</th><th>Outcome</th>"
        f"<th>Subject</th><th>Accountable place now</th></tr>{rows}</table>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Drug accountability: {_e(site.name)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
