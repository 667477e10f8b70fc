"""The recall report as one self-contained HTML page an investigator can hand to an inspector: scope,
the genealogy from the suspect lots to the places holding kits, the per-place table, the outstanding
kits by place, the subjects who received affected kits (unblinded readers only), the timeline (one
entry per step: each report with who made it and when), the signatures, and the signed checkpoint of
the log the report was made against; at its foot, who generated it, when, and from which chain
position. The PDF (`render_pdf`) is the same page, printed by WeasyPrint: one template for both."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from uuid import UUID

from fastapi.responses import HTMLResponse, Response

from api.errors import PdfUnavailable
from api.genealogy_picture import forward_picture
from api.permissions import UNBLINDED
from api.readside import ReadSide
from ledger.application import Ledger
from ledger.domain import Kit, Lot, ManufacturingBatch, PackagingRun
from ledger.domain.recall import Recall
from ledger.errors import BatchNotFound
from ledger.identity import User
from ledger.transparency import Transparency
from ledger.values import iso, now
from projections import recall_campaigns as campaigns

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #bbb;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .5em;
text-align:left}th{background:#f0f0f0}td.n{text-align:right}.meta{color:#555}
ul.tree,ul.tree ul{list-style:none;padding-left:1.4em;border-left:2px solid #8aa}
ul.tree li{margin:.25em 0}.tag{display:inline-block;font-size:.8em;padding:0 .4em;border-radius:3px;
background:#e6eef5;margin-right:.4em}.bad{background:#f8dada}.ok{background:#d9f2dd}
pre{background:#f6f6f6;padding:.6em;font-size:.8em;overflow-x:auto}
.exercise{border:3px solid #b36b00;background:#fff3e0;padding:.6em;font-weight:bold}
td.kits{font-family:monospace;font-size:.85em;word-break:break-word}.foot{margin-top:2em;color:#555;
font-size:.85em;border-top:1px solid #bbb;padding-top:.5em}
@page{size:A4;margin:15mm 12mm}@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}
tr{break-inside:avoid}table{font-size:.78em}th,td{padding:.2em .3em}}
"""


_CLASSES = {"class_i": "Class I", "class_ii": "Class II", "class_iii": "Class III"}


OUTSTANDING_SHOWN = 5000
"""At most this many outstanding kits are listed (the rest: `GET /recalls/{id}/outstanding`)."""


def render_report(
    ledger: Ledger,
    recall: Recall,
    log: Transparency | None,
    *,
    reader: User | None = None,
    show_subjects: bool = False,
    pictures: Sequence[str] = (),
) -> str:
    """The whole report page for `recall`, as of now, generated for `reader`; with the subjects who
    received affected kits when `show_subjects` (unblinded readers); `pictures`: the genealogy
    picture of each suspect lot (`genealogy_pictures`), drawn above the genealogy's lists."""
    view = campaigns.status(recall)
    head, _ = ledger.chain.head()
    destroyed = _destructions(recall)
    kind = "Mock recall" if recall.exercise else "Recall"
    banner = (
        "<p class='exercise'>EXERCISE: a mock recall. Nothing was recalled or blocked; the places "
        "located the affected kits as in a real recall, and this report gives the time they took.</p>"
        if recall.exercise
        else ""
    )
    parts = [
        f"<h1>{kind} {_e(recall.recall_number)}</h1>",
        banner,
        _summary(recall, view),
        "<h2>Genealogy: from the suspect lots to the places holding kits</h2>",
        *(f"<div class='picture'>{p}</div>" for p in pictures),
        _tree(ledger, recall),
        "<h2>Per place</h2>",
        _places(view),
        "<h2>Outstanding kits, by place</h2>",
        _outstanding(recall),
        "<h2>What became of the kits</h2>",
        _dispositions(recall, view, destroyed),
        *(_subjects_part(ledger, recall) if show_subjects else []),
        "<h2>Timeline</h2>",
        _timeline(ledger, recall),
        "<h2>Signatures</h2>",
        _signatures(recall),
        "<h2>Checkpoint</h2>",
        _checkpoint(ledger, recall, log),
        _footer(reader, head, log),
    ]
    title = f"{kind} {_e(recall.recall_number)}"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def report_answer(
    ledger: Ledger, recall: Recall, log: Transparency | None, read: ReadSide, reader: User, format: str
) -> Response:
    """The report as the API and the console answer it: HTML, or printed (`format` "pdf"); with the
    genealogy pictures, and the subjects for readers who may see unblinded data."""
    page = render_report(ledger, recall, log, reader=reader, show_subjects=reader.role in UNBLINDED,
                         pictures=genealogy_pictures(read, recall))
    if format != "pdf":
        return HTMLResponse(page)
    named = f'inline; filename="recall-{recall.recall_number}.pdf"'
    return Response(render_pdf(page), media_type="application/pdf", headers={"Content-Disposition": named})


def genealogy_pictures(read: ReadSide, recall: Recall) -> list[str]:
    """The genealogy picture of each suspect lot of `recall`, as the read models stand now (blinded)."""
    genealogy = read.runner.genealogy
    found = []
    for lt in recall.lots:
        trace = genealogy.forward_counts(UUID(lt["lot_id"]))
        kits = genealogy.kits_per_run_and_place([r.id for r in trace.runs])
        found.append(forward_picture(trace, kits, {p.place.id: p.place for p in trace.places}))
    return found


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _summary(recall: Recall, view: campaigns.RecallStatusView) -> str:
    lots = ", ".join(f"{_e(lt['lot_number'])} (GTIN {_e(lt['gtin'])})" for lt in recall.lots)
    to_reconcile = _duration(view.seconds_to_reconciliation)
    rows = [
        (
            "Status",
            f"<span class='tag {'ok' if view.status == 'closed' else 'bad'}'>{_e(view.status)}</span>",
        ),
        ("Kind", "mock recall (exercise): nothing recalled or blocked" if recall.exercise else "recall"),
        ("Classification", _CLASSES.get(view.classification, _e(view.classification))),
        ("Scope", _e(view.scope.replace("_", " "))),
        ("Suspect lots", lots or "none"),
        ("Suspect packaging runs", ", ".join(_e(r["batch_number"]) for r in recall.suspect_runs) or "none"),
        ("Reason", _e(recall.reason)),
        ("Opened", f"{_when(recall.opened_at)} by {_e(recall.opened_by.get('printed_name', ''))}"),
        ("Affected kits", f"{view.kits} (recorded at opening from {_e(_source(recall.source))})"),
        (
            "Reconciled",
            f"{view.reconciled} of {view.kits} ({view.reconciled_percent}%), {view.outstanding} outstanding",
        ),
        ("Places", f"{view.places_notified} notified, {view.places_acknowledged} acknowledged"),
        ("Time to locate every kit" if recall.exercise else "Opening to full reconciliation", to_reconcile),
        ("Shipments in transit at opening", _e(len(recall.shipments_in_transit))),

    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not yet"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def _source(source: dict[str, Any]) -> str:
    at = f" at log position {source['as_of']}" if "as_of" in source else ""
    return f"{source.get('reader', 'ledger')}{at}"


def _tree(ledger: Ledger, recall: Recall) -> str:
    """Nested lists: lot > batch > drug-product lot > packaging run > places with kit counts."""
    run_places = _kits_by_run_and_place(ledger, recall)
    items = "".join(_lot_item(ledger, recall, UUID(lt["lot_id"]), run_places, set()) for lt in recall.lots)
    for r in recall.suspect_runs:
        items += _run_item(ledger.get(PackagingRun, UUID(r["run_id"])), recall, run_places)
    return f"<ul class='tree'>{items}</ul>"


def _lot_item(
    ledger: Ledger, recall: Recall, lot_id: UUID, run_places: dict[str, dict[str, int]], seen: set[UUID]
) -> str:
    lot = ledger.get(Lot, lot_id)
    children = []
    if lot_id not in seen:
        seen.add(lot_id)
        for step_id in dict.fromkeys(lot.consumed_by):
            try:
                batch = ledger.get(ManufacturingBatch, step_id)
            except BatchNotFound:
                children.append(_run_item(ledger.get(PackagingRun, step_id), recall, run_places))
                continue
            inner = _lot_item(ledger, recall, batch.output_lot_id, run_places, seen)
            children.append(
                f"<li><span class='tag'>batch</span>{_e(batch.batch_number)} {_e(batch.product)}"
                f"<ul>{inner}</ul></li>"
            )
    kids = f"<ul>{''.join(children)}</ul>" if children else ""
    return (
        f"<li><span class='tag'>{_e(lot.kind)} lot</span><b>{_e(lot.lot_number)}</b> {_e(lot.material)} "
        f"<span class='meta'>({_e(lot.status)})</span>{kids}</li>"
    )


def _run_item(run: PackagingRun, recall: Recall, run_places: dict[str, dict[str, int]]) -> str:
    places = run_places.get(str(run.id), {})
    rows = "".join(
        f"<li><span class='tag'>{_e(recall.places.get(p, {}).get('kind', 'unlocated'))}</span>"
        f"{_e(recall.places.get(p, {}).get('name', 'place unknown'))}: {n} kit(s)</li>"
        for p, n in sorted(places.items(), key=lambda pn: recall.places.get(pn[0], {}).get("name", "~"))
    )
    return (
        f"<li><span class='tag'>packaging run</span>{_e(run.batch_number)} "
        f"<span class='meta'>({len(run.kit_numbers)} kits, every arm)</span><ul>{rows}</ul></li>"
    )


def _kits_by_run_and_place(ledger: Ledger, recall: Recall) -> dict[str, dict[str, int]]:
    """Affected kits counted per (packaging run, place at opening)."""
    counts: dict[str, dict[str, int]] = {}
    by_number = {k.kit_number: k.place for k in recall.kits.values()}
    for r in recall.runs:
        run = ledger.get(PackagingRun, UUID(r["run_id"]))
        per = counts.setdefault(r["run_id"], {})
        for number in run.kit_numbers:
            place = by_number.get(number)
            if place is not None:
                per[place] = per.get(place, 0) + 1
    return counts


def _places(view: campaigns.RecallStatusView) -> str:
    head = (
        "<tr><th>Place</th><th>Kind</th><th>Country</th><th>Acknowledged</th><th>Kits</th>"
        "<th>Reported</th><th>Reconciled</th><th>Outstanding</th><th>%</th>"
        f"<th>{'Time to locate' if view.exercise else 'Time to reconcile'}</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{_e(p.name)}</td><td>{_e(p.kind)}</td><td>{_e(p.country)}</td>"
        f"<td>{_when(p.acknowledged_at) if p.acknowledged_at else '-'}</td>"
        f"<td class='n'>{p.kits}</td><td class='n'>{p.reported}</td>"
        f"<td class='n'>{p.reconciled}</td><td class='n'>{p.outstanding}</td>"
        f"<td class='n'>{p.reconciled_percent}</td><td class='n'>{_duration(p.seconds_to_locate)}</td></tr>"
        for p in view.places
    )
    total = (
        f"<tr><th colspan='4'>All places</th><th class='n'>{view.kits}</th><th class='n'>{view.reported}</th>"
        f"<th class='n'>{view.reconciled}</th><th class='n'>{view.outstanding}</th>"
        f"<th class='n'>{view.reconciled_percent}</th>"
        f"<th class='n'>{_duration(view.seconds_to_reconciliation)}</th></tr>"
    )
    return f"<table>{head}{rows}{total}</table>"


_OUTCOMES = {
    "quarantined": "quarantined where they were held",
    "returned": "sent back by a site, not yet received at the depot",
    "received_at_depot": "returned and received at the depot",
    "destroyed": "destroyed during the recall (certificates below)",
    "dispensed": "already dispensed to a subject",
    "destroyed_before_recall": "destroyed before the recall opened",
    "justified": "not found; QA's signed justification",
    "located": "located where they were held (mock recall)",
}


def _destructions(recall: Recall) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The kits destroyed during the recall, (kit number, outcome) by certificate: one pass over the kits."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for kit_id, o in recall.outcomes.items():
        if o["outcome"] == "destroyed":
            found.setdefault(o["certificate"], []).append((recall.kits[kit_id].kit_number, o))
    return dict(sorted(found.items()))


def _dispositions(
    recall: Recall, view: campaigns.RecallStatusView, destroyed: dict[str, list[tuple[str, dict[str, Any]]]]
) -> str:
    """Kits per outcome, then each destruction certificate with its kits, place and method."""
    unreported = view.kits - sum(view.outcomes.values())
    rows = [(_OUTCOMES.get(k, k), n) for k, n in view.outcomes.items()]
    if unreported:
        rows.append(("not yet reported", unreported))
    table = "".join(f"<tr><td>{_e(what)}</td><td class='n'>{n}</td></tr>" for what, n in rows)
    certificates = "".join(_certificate_row(recall, cert, kits) for cert, kits in destroyed.items())
    cert_table = (
        "<table><tr><th>Destruction certificate</th><th>At</th><th>Method</th><th>Kits</th>"
        f"<th>Kit numbers</th></tr>{certificates}</table>"
        if certificates
        else "<p>No kit of this recall has been destroyed yet.</p>"
    )
    return f"<table><tr><th>Outcome</th><th>Kits</th></tr>{table}</table>{cert_table}"


def _certificate_row(recall: Recall, certificate: str, kits: list[tuple[str, dict[str, Any]]]) -> str:
    """One destruction certificate: where (the place of its first kit), how, and which kits."""
    first = kits[0][1]
    where = recall.place_name(first["place_id"])
    return (
        f"<tr><td>{_e(certificate)}</td><td>{_e(where)}</td><td>{_e(first['method'])}</td>"
        f"<td class='n'>{len(kits)}</td><td>{_e(_numbers(sorted(n for n, _ in kits)))}</td></tr>"
    )


def _numbers(numbers: list[str], shown: int = 20) -> str:
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    return ", ".join(numbers[:shown]) + more


_DONE = {
    "Opened": "opened the recall",
    "Acknowledged": "acknowledged the notice",
    "ReturnReceived": "received kits sent back",
    "KitDestroyed": "destroyed kits",
    "KitJustified": "justified a kit that cannot be found",
    "Closed": "closed the recall",
}


def _timeline(ledger: Ledger, recall: Recall) -> str:
    """One row per step of the recall, oldest first: who did it, when, where, and for a report on kits
    how many kits with which outcomes (consecutive events of one step are one row); a late entry is
    flagged with its reason."""
    rows: list[dict[str, Any]] = []
    for e in ledger.events.get(recall.id):
        kind = type(e).__name__
        audit: dict[str, Any] = getattr(e, "audit")  # noqa: B009 - every ledger event has one
        kit = recall.kits.get(getattr(e, "kit_id", None))  # type: ignore[arg-type]
        place = getattr(e, "place_id", None) or getattr(e, "depot_id", None) or (kit.place if kit else "")
        key = (kind, audit["occurred_at"], audit["principal"], str(place))
        last = rows[-1] if rows else None
        if last is not None and last["key"] == key and kit is not None:
            last["kits"].append(kit.kit_number)
            outcome = getattr(e, "outcome", kind)
            last["outcomes"][outcome] = last["outcomes"].get(outcome, 0) + 1
            continue
        rows.append({
            "key": key, "kind": kind, "at": audit["occurred_at"], "who": f"{audit['name']} ({audit['role']})",
            "place": recall.place_name(str(place)) if place else "", "kits": [kit.kit_number] if kit else [],
            "outcomes": {getattr(e, "outcome", kind): 1} if kit else {},
            "extra": getattr(e, "certificate", ""),
            "late": audit.get("late_reason") if audit.get("late_entry") else None,
        })
    body = "".join(
        f"<tr><td>{_when(r['at'])}</td><td>{_e(r['who'])}</td><td>{_e(r['place'])}</td>"
        f"<td>{_e(_what(r))}{_late(r['late'])}</td></tr>"
        for r in rows
    )
    return f"<table><tr><th>When</th><th>Who</th><th>Where</th><th>What</th></tr>{body}</table>"


def _late(reason: str | None) -> str:
    """A step recorded after the late-entry window, flagged with its reason."""
    return "" if reason is None else f" <span class='tag bad'>late entry</span>{_e(reason)}"


def _what(row: dict[str, Any]) -> str:
    if row["kind"] == "KitReported":
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(row["outcomes"].items()))
        return f"reported {len(row['kits'])} kit(s): {outcomes} ({_numbers(sorted(row['kits']), 10)})"
    done = _DONE.get(row["kind"], row["kind"])
    if row["kits"]:
        certificate = f", certificate {row['extra']}" if row["extra"] else ""
        return f"{done}: {len(row['kits'])} kit(s){certificate} ({_numbers(sorted(row['kits']), 10)})"
    return done


def _outstanding(recall: Recall) -> str:
    """Every kit not yet accounted for, by place and kit number (at most `OUTSTANDING_SHOWN`)."""
    missing = recall.outstanding()
    if not missing:
        return "<p>None: every affected kit is accounted for.</p>"
    by_place: dict[str, list[str]] = {}
    for k in missing[:OUTSTANDING_SHOWN]:
        by_place.setdefault(k.place, []).append(k.kit_number)
    rows = "".join(
        f"<tr><td>{_e(recall.place_name(p))}</td><td class='n'>{len(numbers)}</td>"
        f"<td class='kits'>{_e(', '.join(numbers))}</td></tr>"
        for p, numbers in sorted(by_place.items(), key=lambda pn: recall.place_name(pn[0]))
    )
    more = (
        f"<p>{len(missing) - OUTSTANDING_SHOWN} more not listed here: <code>GET /recalls/{recall.id}"
        "/outstanding</code> pages through all of them.</p>"
        if len(missing) > OUTSTANDING_SHOWN
        else ""
    )
    return (
        f"<p>{len(missing)} kit(s) outstanding.</p><table><tr><th>Place (at opening)</th><th>Kits</th>"
        f"<th>Kit numbers</th></tr>{rows}</table>{more}"
    )


def _subjects_part(ledger: Ledger, recall: Recall) -> list[str]:
    return ["<h2>Subjects who received affected kits</h2>", _subjects(ledger, recall)]


def _subjects(ledger: Ledger, recall: Recall) -> str:
    """Subjects who received affected kits: reported dispensed during the recall, or dispensed before it
    opened (from the kit's own record)."""
    found: list[tuple[str, str, str, str]] = []
    for k in recall.by_number:
        outcome = recall.outcomes.get(k.kit_id, {})
        subject = outcome.get("subject")
        how = "reported dispensed"
        if subject is None and k.status_at_open == "dispensed":
            subject, how = ledger.peek(Kit, k.kit_id).subject, "dispensed before the recall"
        if subject:
            found.append((str(subject), k.kit_number, recall.place_name(k.place), how))
    if not found:
        return "<p>No affected kit is known to have been dispensed.</p>"
    rows = "".join(f"<tr>{''.join(f'<td>{_e(v)}</td>' for v in row)}</tr>" for row in sorted(found))
    return (
        "<p>Pseudonymous subject numbers, for the sites' follow-up of the subjects concerned.</p>"
        f"<table><tr><th>Subject</th><th>Kit</th><th>Site</th><th>Known from</th></tr>{rows}</table>"
    )


def _footer(reader: User | None, head: int, log: Transparency | None) -> str:
    latest = log.latest() if log is not None else None
    checkpoint = (
        f"the newest signed checkpoint covers positions 1-{latest.checkpoint.size} "
        f"(key {_e(latest.checkpoint.key_id)})"
        if latest is not None
        else "no signed checkpoint exists yet"
    )
    who = f"{_e(reader.name)} ({_e(reader.principal)}, {_e(reader.role)})" if reader else "Lotline"
    return (
        f"<p class='foot'>Generated by {who} on {_when(iso(now()))} from the chain as of position {head}; "
        f"{checkpoint}. Every statement above can be checked against the chain: <code>lotline-verify</code> "
        "on the audit export.</p>"
    )


def _when(value: str) -> str:
    """An ISO 8601 time as a person reads it: `2026-12-05 14:03:07 UTC`."""
    return _e(datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def render_pdf(html: str) -> bytes:
    """The report page printed to PDF (A4, the same HTML and style)."""
    try:
        from weasyprint import HTML  # imported here: the HTML report needs none of it
    except (ImportError, OSError) as e:  # OSError: the Pango library is missing
        raise PdfUnavailable(
            f"this server cannot print PDF ({e}); install libpango-1.0-0 and libpangoft2-1.0-0, or use the "
            "HTML report"
        ) from None
    pdf = HTML(string=html).write_pdf()
    assert pdf is not None
    return bytes(pdf)


def _signatures(recall: Recall) -> str:
    sigs: list[tuple[str, dict[str, str]]] = [("opened", recall.opened_by)]
    for kit_id, j in recall.justifications.items():
        sigs.append((f"justified kit {recall.kits[kit_id].kit_number}: {j['justification']}", j["signature"]))
    if recall.closed:
        sigs.append(("closed", recall.closed["signature"]))
    return _sig_table(sigs)


def _sig_table(sigs: Iterable[tuple[str, dict[str, str]]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(what)}</td><td>{_e(s['printed_name'])} ({_e(s['signer'])}, {_e(s['role'])})</td>"
        f"<td>{_e(s['meaning'])}</td><td>{_when(s['signed_at'])}</td></tr>"
        for what, s in sigs
    )
    return f"<table><tr><th>Step</th><th>Signed by</th><th>Meaning</th><th>Signed at</th></tr>{rows}</table>"


def _checkpoint(ledger: Ledger, recall: Recall, log: Transparency | None) -> str:
    links = ledger.chain.links_for([(recall.id, recall.version)])
    seq = links[0].seq if links else None
    latest = log.latest() if log is not None else None
    if latest is None:
        return (
            f"<p>No signed checkpoint of the log exists yet. The recall's latest event is at chain position "
            f"{_e(seq)}.</p>"
        )
    cp = latest.checkpoint
    covered = seq is not None and cp.size >= seq
    verdict = "covers" if covered else "does not yet cover"
    return (
        f"<p>Latest signed checkpoint: tree size {cp.size}, root {_e(base64.b64encode(cp.root).decode())}, "
        f"key {_e(cp.key_id)}, made {_when(cp.created_at)}, {len(latest.cosignatures)} cosignature(s). It "
        f"<b>{verdict}</b> the recall's latest event (chain position {_e(seq)}).</p>"
        f"<pre>{_e(latest.note())}</pre>"
    )
