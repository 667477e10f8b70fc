"""The one genealogy walk: from lots down to the packaging runs made from them, and from a run up to
every lot that went into it, through formulation batches and blends, at any depth.

The walk is breadth first and set-at-a-time: `expand(frontier)` answers for a whole layer at once, so
a caller that reads from SQL makes one query per layer, and a caller that loads aggregates one at a
time wraps a per-node function with `each`. Callers give the edges (the write model, a read model,
an export); the walk, its termination on blends and shared inputs, and its order are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from typing import TypeVar
from uuid import UUID

N = TypeVar("N", bound=Hashable)

Expand = Callable[[list[N]], Iterable[N]]


def layers(start: Iterable[N], expand: Expand[N]) -> Iterator[list[N]]:
    """The start, then each layer of nodes first reached from the one before, until none is new.
    Every node is yielded once, in the order first reached."""
    seen: dict[N, None] = {}
    frontier = [n for n in dict.fromkeys(start) if n not in seen]
    while frontier:
        seen.update(dict.fromkeys(frontier))
        yield frontier
        frontier = [n for n in dict.fromkeys(expand(frontier)) if n not in seen]


def closure(start: Iterable[N], expand: Expand[N]) -> list[N]:
    """Every node reachable from `start` (the start included), each once, breadth first."""
    return [n for layer in layers(start, expand) for n in layer]


def each(edges: Callable[[N], Iterable[N]]) -> Expand[N]:
    """A layer-at-a-time expansion from a node-at-a-time one."""
    return lambda frontier: [m for n in frontier for m in edges(n)]


def upstream_lots(
    input_lot_ids: Iterable[UUID], batch_inputs: Callable[[UUID], Iterable[UUID]]
) -> list[UUID]:
    """Every lot upstream of a run or batch: its input lots and, for each lot a batch produced, that
    batch's inputs, recursively. `batch_inputs(lot_id)` is the input lots of the batch that produced
    the lot (nothing for a received lot)."""
    return closure(input_lot_ids, each(batch_inputs))


def downstream_steps(
    lot_ids: Iterable[UUID],
    consumed_by: Callable[[UUID], Iterable[UUID]],
    output_of: Callable[[UUID], UUID | None],
) -> tuple[list[UUID], list[UUID]]:
    """(lots, runs) downstream of `lot_ids`: `consumed_by(lot)` names the steps (batches and runs) that
    consumed a lot, `output_of(step)` the lot a batch produced (None for a packaging run)."""
    runs: dict[UUID, None] = {}

    def next_lots(lot_id: UUID) -> list[UUID]:
        found = []
        for step_id in dict.fromkeys(consumed_by(lot_id)):
            out = output_of(step_id)
            if out is None:
                runs[step_id] = None
            else:
                found.append(out)
        return found

    lots = closure(lot_ids, each(next_lots))
    return lots, list(runs)


def reached(lot_ids: Collection[UUID], expand: Expand[UUID]) -> set[UUID]:
    """The set of everything reachable from `lot_ids` (they included)."""
    return set(closure(lot_ids, expand))
