"""The recall report as one self-contained HTML page an investigator can hand to an inspector: scope,
the genealogy from the suspect lots to the places holding kits, the timeline, the per-place table, the
signatures, and the signed checkpoint of the log the report was made against."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from html import escape
from typing import Any
from uuid import UUID

from ledger.application import Ledger
from ledger.domain import Lot, ManufacturingBatch, PackagingRun
from ledger.domain.recall import Recall
from ledger.errors import BatchNotFound
from ledger.transparency import Transparency
from ledger.values import now
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
"""


_CLASSES = {"class_i": "Class I", "class_ii": "Class II", "class_iii": "Class III"}


def render_report(ledger: Ledger, recall: Recall, log: Transparency | None) -> str:
    """The whole report page for `recall`, as of now."""
    view = campaigns.status(recall)
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
        _tree(ledger, recall),
        "<h2>Per place</h2>",
        _places(view),
        "<h2>What became of the kits</h2>",
        _dispositions(recall, view, destroyed),
        "<h2>Timeline</h2>",
        _timeline(recall, destroyed),
        "<h2>Signatures</h2>",
        _signatures(recall),
        "<h2>Checkpoint</h2>",
        _checkpoint(ledger, recall, log),
    ]
    title = f"{kind} {_e(recall.recall_number)}"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


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
        ("Opened", f"{_e(recall.opened_at)} by {_e(recall.opened_by.get('printed_name', ''))}"),
        ("Affected kits", f"{view.kits} (recorded at opening from {_e(_source(recall.source))})"),
        (
            "Reconciled",
            f"{view.reconciled} of {view.kits} ({view.reconciled_percent}%), {view.outstanding} outstanding",
        ),
        ("Places", f"{view.places_notified} notified, {view.places_acknowledged} acknowledged"),
        ("Time to locate every kit" if recall.exercise else "Opening to full reconciliation", to_reconcile),
        ("Shipments in transit at opening", _e(len(recall.shipments_in_transit))),
        ("Report made", _e(now().isoformat(timespec="seconds"))),
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
        f"<td>{_e(p.acknowledged_at or '-')}</td><td class='n'>{p.kits}</td><td class='n'>{p.reported}</td>"
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


def _timeline(recall: Recall, destroyed: dict[str, list[tuple[str, dict[str, Any]]]]) -> str:
    names = {p: info["name"] for p, info in recall.places.items()}
    reports: dict[str, list[str]] = {}
    for kit_id, o in recall.outcomes.items():
        reports.setdefault(recall.kits[kit_id].place, []).append(o["at"])
    moments = list(recall.timeline)
    for place, times in reports.items():
        moments.append(
            {
                "what": f"{len(times)} kit(s) reported or accounted, the last at",
                "at": max(times),
                "place_id": place,
                "by": "",
                "role": "",
            }
        )
    for certificate, done in destroyed.items():
        last = max((o for _, o in done), key=lambda o: o["at"])
        moments.append(
            {
                "what": f"{len(done)} kit(s) destroyed, certificate {certificate}, the last at",
                "at": last["at"],
                "place_id": last["place_id"],
                "by": last["destroyed_by"],
                "role": "",
            }
        )
    moments.sort(key=lambda m: m["at"])
    rows = "".join(
        f"<tr><td>{_e(m['at'])}</td><td>{_e(m['what'])}</td>"
        f"<td>{_e(names.get(m.get('place_id', ''), m.get('kit_number', '')))}</td>"
        f"<td>{_e(m['by'])} {_e(m['role'])}</td></tr>"
        for m in moments
    )
    return f"<table><tr><th>When (UTC)</th><th>What</th><th>Where / kit</th><th>Who</th></tr>{rows}</table>"


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
        f"<td>{_e(s['meaning'])}</td><td>{_e(s['signed_at'])}</td></tr>"
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
        f"key {_e(cp.key_id)}, made {_e(cp.created_at)}, {len(latest.cosignatures)} cosignature(s). It "
        f"<b>{verdict}</b> the recall's latest event (chain position {_e(seq)}).</p>"
        f"<pre>{_e(latest.note())}</pre>"
    )
