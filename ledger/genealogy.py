"""The one genealogy walk: from lots down to the packaging runs made from them, and from a run up to
every lot that went into it, through formulation batches and blends. Callers give the loaders (the
write model, a read model, an export), the walk is the same."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar
from uuid import UUID

N = TypeVar("N", bound=Hashable)


def closure(start: Iterable[N], edges: Callable[[N], Iterable[N]]) -> list[N]:
    """Every node reachable from `start` along `edges` (the start included), each once, in the order
    first reached (depth first); cycles are harmless."""
    seen: dict[N, None] = {}
    stack = list(start)[::-1]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen[node] = None
        stack.extend(reversed(list(edges(node))))
    return list(seen)


def upstream_lots(
    input_lot_ids: Iterable[UUID], batch_inputs: Callable[[UUID], Iterable[UUID]]
) -> list[UUID]:
    """Every lot upstream of a run or batch: its input lots and, for each lot a batch produced, that
    batch's inputs, recursively. `batch_inputs(lot_id)` is the input lots of the batch that produced
    the lot (nothing for a received lot)."""
    return closure(input_lot_ids, batch_inputs)


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

    lots = closure(lot_ids, next_lots)
    return lots, list(runs)
