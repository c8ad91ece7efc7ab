"""Per-cycle item sampling against contamination, and the held-out rules.

Each evaluation cycle draws a subset of every task with a seed derived from the cycle id, so the
public subset rotates from cycle to cycle and the seed can be recorded and replayed. Held-out items
are sampled too, under their own quota (a never-published probe: a gap between a model's public
and held-out scores hints at contamination), and are never served by the API nor exported. Which
items are held out is private (evaluation/tasks/private.py): the tasks arrive here already marked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from evaluation.hashing import content_hash, stable_int
from evaluation.tasks.spec import LoadedTask
from evaluation.types import Item

_SEED_MASK = (1 << 63) - 1


def cycle_seed(cycle_id: str) -> int:
    """A 63-bit seed derived from the cycle id; stable across machines and Python versions."""
    return stable_int(f"libra-cycle:{cycle_id}") & _SEED_MASK


def item_rng(seed: int, task_name: str, item_id: str) -> np.random.Generator:
    """The generator for one item's random choices (attack transforms), independent of order."""
    return np.random.default_rng([seed, stable_int(task_name) & _SEED_MASK, stable_int(item_id) & _SEED_MASK])


@dataclass(frozen=True)
class CycleSample:
    cycle_id: str
    seed: int
    item_ids: Mapping[str, tuple[str, ...]]
    """Task name -> sampled item ids (public sample first, then held-out ids), sorted within each part."""
    held_out_key: str = ""
    """The held-out policy's fingerprint (private.py): another secret or folder is another sample."""

    @property
    def fingerprint(self) -> str:
        content: dict[str, object] = {"seed": self.seed, "items": {k: list(v) for k, v in self.item_ids.items()}}
        if self.held_out_key:  # absent without a policy, so earlier fingerprints stay valid
            content["held_out"] = self.held_out_key
        return content_hash(content)


Quota = int | Mapping[str, int]


def _quota(quota: Quota, task: str) -> int:
    return quota if isinstance(quota, int) else quota.get(task, 0)


def sample_cycle(
    tasks: Sequence[LoadedTask],
    cycle_id: str,
    per_task: Quota,
    held_out_per_task: Quota | None = None,
    held_out_key: str = "",
) -> CycleSample:
    """Draw up to ``per_task`` public and ``held_out_per_task`` held-out items of every task.

    ``held_out_per_task`` defaults to ``per_task``; pass 0 to leave held-out items out.
    ``held_out_key`` is the fingerprint of the policy that marked the held-out items.

    Each task gets its own generator derived from the cycle seed and the task name, so adding a
    task to a suite does not change the items drawn for the others.
    """
    seed = cycle_seed(cycle_id)
    chosen: dict[str, tuple[str, ...]] = {}
    held_quota = per_task if held_out_per_task is None else held_out_per_task
    for task in sorted(tasks, key=lambda t: t.name):
        rng = np.random.default_rng([seed, stable_int(task.name) & _SEED_MASK])
        public = _draw([i.id for i in task.items if not i.held_out], _quota(per_task, task.name), rng)
        held = _draw([i.id for i in task.items if i.held_out], _quota(held_quota, task.name), rng)
        chosen[task.name] = public + held
    return CycleSample(cycle_id=cycle_id, seed=seed, item_ids=chosen, held_out_key=held_out_key)


def category_quota(tasks: Sequence[LoadedTask], per_task: int, min_per_category: int) -> dict[str, int]:
    """``per_task`` for every task, topped up so that each category reaches ``min_per_category``.

    A model is ranked only with enough items in every category; a quick preview of one or two items
    per task would leave a single-task category below that and the model unranked, so such a
    category's tasks share the minimum instead (a category of 7 tasks keeps 1 each, one of 2 gets 3).
    """
    sizes = Counter((task.spec.axis, task.spec.category) for task in tasks)
    return {task.name: max(per_task, -(-min_per_category // sizes[(task.spec.axis, task.spec.category)]))
            for task in tasks}


def _draw(ids: Sequence[str], n: int, rng: np.random.Generator) -> tuple[str, ...]:
    pool = sorted(ids)
    if not pool or n <= 0:
        return ()
    return tuple(sorted(rng.choice(pool, size=min(n, len(pool)), replace=False).tolist()))


class _HasHeldOut(Protocol):
    @property
    def held_out(self) -> bool: ...


T = TypeVar("T", bound=_HasHeldOut)


def exportable(rows: Iterable[T]) -> list[T]:
    """Drop every held-out row (items or result rows: anything with a ``held_out`` attribute)."""
    return [row for row in rows if not row.held_out]


def public_items(items: Iterable[Item]) -> list[Item]:
    return exportable(items)
