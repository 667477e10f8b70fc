"""The genealogy picture of a forward trace: the lot, the batches and lots made from it, the packaging
runs, and the places that now account for the runs' kits, with counts on the edges; as inline SVG, so
a page, a printed report and its PDF show it with nothing fetched from elsewhere.

Columns left to right: the traced lot, then each step of manufacture (a batch, the lot it made; a
blend shows as a batch with two inputs), the packaging runs, the places. A lot that reaches many
places shows the `MAX_PLACES` with the most kits and one node for the rest, so the picture stays
readable; the page's table lists every place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from uuid import UUID

from projections.genealogy import ForwardCounts
from projections.views import LocationRef

MAX_PLACES = 20
BOX_W, PLACE_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 250, 40, 64, 14, 12
_FILL = {"lot": "#e6eef5", "batch": "#f3ecdf", "run": "#e8f1e4", "place": "#ffffff", "more": "#f5f5f5"}


@dataclass
class _Node:
    key: str
    kind: str
    title: str
    detail: str
    column: int
    order: tuple[object, ...] = ()
    x: float = 0
    y: float = 0

    @property
    def width(self) -> int:
        return PLACE_W if self.kind in ("place", "more") else BOX_W


@dataclass
class _Picture:
    nodes: dict[str, _Node] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def node(
        self, key: str, kind: str, title: str, detail: str, column: int, order: tuple[object, ...] = ()
    ) -> None:
        found = self.nodes.get(key)
        if found is None:
            self.nodes[key] = _Node(key, kind, title, detail, column, order or (title,))
        else:
            found.column = max(found.column, column)

    def edge(self, a: str, b: str, label: str = "") -> None:
        self.edges.append((a, b, label))


def forward_picture(
    trace: ForwardCounts, kits: Mapping[UUID, Mapping[UUID, int]], places: Mapping[UUID, LocationRef]
) -> str:
    """The SVG of `trace`: `kits[run][place]` is how many of the run's kits a place accounts for."""
    p = _Picture()
    start = trace.lot
    p.node(f"lot:{start.id}", "lot", start.lot_number, f"{start.kind.replace('_', ' ')} · {start.status}", 0)
    column_of = {start.id: 0}
    pending = list(trace.batches)
    while pending:  # batches in the order they can be placed: after the lot they consumed
        later = []
        for b in pending:
            source = b.input_lot_id or start.id
            if source not in column_of:
                later.append(b)
                continue
            col = column_of[source] + 1
            p.node(f"batch:{b.id}", "batch", b.batch_number, b.product, col)
            p.edge(f"lot:{source}", f"batch:{b.id}", f"{_amount(b.amount)} {b.unit}")
            out = b.output_lot
            made = f"{out.kind.replace('_', ' ')} · {out.status}"
            p.node(f"lot:{out.id}", "lot", out.lot_number, made, col + 1)
            if (f"batch:{b.id}", f"lot:{out.id}", "") not in p.edges:
                p.edge(f"batch:{b.id}", f"lot:{out.id}")
            column_of[out.id] = max(column_of.get(out.id, 0), col + 1)
        if len(later) == len(pending):  # inputs outside the trace: hang them on the start
            for b in later:
                column_of.setdefault(b.input_lot_id or start.id, 0)
        pending = later
    run_column = max(column_of.values()) + 1
    for r in trace.runs:
        p.node(f"run:{r.id}", "run", r.batch_number, f"packaging · {r.kit_count:,} kits", run_column)
        for via in r.via_lot_ids:
            came_from = f"lot:{via}" if f"lot:{via}" in p.nodes else f"lot:{start.id}"
            p.edge(came_from, f"run:{r.id}")
    totals: dict[UUID, int] = defaultdict(int)
    for per_place in kits.values():
        for place_id, n in per_place.items():
            totals[place_id] += n
    ranked = sorted(totals, key=lambda i: (-totals[i], places[i].name if i in places else str(i)))
    shown, rest = set(ranked[:MAX_PLACES]), ranked[MAX_PLACES:]
    for place_id in ranked[:MAX_PLACES]:
        where = places.get(place_id)
        name = where.name if where else str(place_id)
        kind = where.kind.replace("_", " ") if where else "place"
        p.node(f"place:{place_id}", "place", name, f"{kind} · {totals[place_id]:,} kits", run_column + 1,
               (0, -totals[place_id], name))
    if rest:
        p.node("more", "more", f"{len(rest)} more places", f"{sum(totals[i] for i in rest):,} kits",
               run_column + 1, (1,))
    # A place fed by one run has the count on its edge; fed by several, the edges would crowd their
    # labels together: its box says how many kits it holds in all.
    feeds: dict[str, int] = defaultdict(int)
    for per_place in kits.values():
        for place_id in per_place:
            feeds[f"place:{place_id}" if place_id in shown else "more"] += 1
    for run_id, per_place in kits.items():
        to_rest = 0
        for place_id, n in sorted(per_place.items(), key=lambda kv: -kv[1]):
            if place_id in shown:
                target = f"place:{place_id}"
                p.edge(f"run:{run_id}", target, f"{n:,}" if feeds[target] == 1 else "")
            else:
                to_rest += n
        if to_rest:
            p.edge(f"run:{run_id}", "more", f"{to_rest:,}" if feeds["more"] == 1 else "")
    return _svg(p, trace.lot.lot_number)


def _amount(value: object) -> str:
    text = f"{value}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _svg(p: _Picture, name: str) -> str:
    columns: dict[int, list[_Node]] = defaultdict(list)
    for n in p.nodes.values():
        columns[n.column].append(n)
    tallest = max(len(c) for c in columns.values())
    height = PAD * 2 + tallest * (BOX_H + GAP_Y)
    widths = {col: max(n.width for n in nodes) for col, nodes in columns.items()}
    lefts, x = {}, PAD
    for col in range(max(columns) + 1):
        lefts[col] = x
        x += widths.get(col, BOX_W) + GAP_X
    width = x - GAP_X + PAD
    for col, nodes in columns.items():
        nodes.sort(key=lambda n: n.order)
        top = (height - len(nodes) * (BOX_H + GAP_Y)) / 2
        for i, n in enumerate(nodes):
            n.x, n.y = lefts[col], top + i * (BOX_H + GAP_Y)
    out = [
        # As wide as the page or the print allows, never wider than drawn; the height follows.
        f'<svg xmlns="http://www.w3.org/2000/svg" class="genealogy" role="img" width="100%" '
        f'style="max-width:{width}px" viewBox="0 0 {width} {height:.0f}" '
        f'font-family="system-ui, sans-serif" font-size="12"><title>Where lot {escape(name)} went</title>'
    ]
    for a, b, label in p.edges:
        s, t = p.nodes[a], p.nodes[b]
        x1, y1, x2, y2 = s.x + s.width, s.y + BOX_H / 2, t.x, t.y + BOX_H / 2
        mid = (x1 + x2) / 2
        out.append(f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
                   'fill="none" stroke="#8a98a8" stroke-width="1.2"/>')
        if label:  # at the middle of its curve, on a white halo
            out.append(f'<text x="{mid:.0f}" y="{(y1 + y2) / 2 + 4:.0f}" text-anchor="middle" '
                       'fill="#3d4a5a" font-size="11" stroke="#fff" stroke-width="3" paint-order="stroke">'
                       f'{escape(label)}</text>')
    for n in p.nodes.values():
        out.append(
            f'<g class="node {n.kind}" id="{escape(n.key.replace(":", "-"))}"><title>{escape(n.title)}: '
            f'{escape(n.detail)}</title><rect x="{n.x:.0f}" y="{n.y:.0f}" width="{n.width}" height="{BOX_H}" '
            f'rx="5" fill="{_FILL[n.kind]}" stroke="#5b6573"/>'
            f'<text x="{n.x + 8:.0f}" y="{n.y + 16:.0f}" font-weight="600">'
            f'{escape(_cut(n.title, n.width // 7 - 2))}</text>'
            f'<text x="{n.x + 8:.0f}" y="{n.y + 31:.0f}" fill="#5b6573" font-size="11">'
            f'{escape(_cut(n.detail, n.width // 6 - 2))}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
