"""The private held-out set: items nobody can list from the public repository.

A held-out item is a probe never published: a gap between a model's public and held-out scores
hints that the public items leaked into its training data. A seed written in a public task file
would let anyone list them, so held-out items come from one of two places, both outside the
repository, and a deployment with neither has no held-out set (and says so):

- a maintainer's **private folder** (``LIBRA_EVAL_PRIVATE_DIR``): ``<folder>/<task name>.jsonl``
  (or ``.yaml`` with ``items:``, or ``.json``), one record per item written in the field names of
  the task's source *after* any builder (``{"prompt": ...}`` for a refusal task, ``{"system",
  "user", "guard"}`` for an instruction-hierarchy task, ``{"question", "options", "answer"}`` for
  MMLU). They are added to that task, held out, with ids ``private:<id>@<content hash>``, so they
  never collide with public ids and an edited item is a new item (never a stale generation);
- a **secret seed** (``LIBRA_EVAL_HELDOUT_SECRET``): each cycle, HMAC-SHA256 of (secret, cycle,
  item cluster) ranks a task's public items and the lowest ``held_out_fraction`` of them are that
  cycle's held-out probe. Without the secret nobody can tell which; the set changes every cycle, and
  tasks that share items (a request and its attack wrappings) hold out the same ones.

Both may be set at once. The policy's fingerprint (no secret, no item, only hashes) is part of the
cycle sample's fingerprint, so a run planned under another secret or folder never resumes into
this one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import LibraError
from core.settings import Settings
from evaluation.hashing import content_hash, tree_hash
from evaluation.tasks.registry import Suite
from evaluation.tasks.sources import read_records, to_items
from evaluation.tasks.spec import LoadedTask
from evaluation.types import Item

log = logging.getLogger(__name__)

PRIVATE_PREFIX = "private:"
SUFFIXES = (".jsonl", ".yaml", ".yml", ".json")
NO_HELDOUT_NOTE = "no private held-out set"


@dataclass(frozen=True)
class HeldOutPolicy:
    private_dir: Path | None = None
    secret: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> HeldOutPolicy:
        secret = settings.eval_heldout_secret.get_secret_value() if settings.eval_heldout_secret else ""
        return cls(private_dir=settings.eval_private_dir, secret=secret.encode("utf-8") or None)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("private folder", self.private_dir is not None),
                                           ("secret seed", self.secret is not None)) if on)

    def fingerprint(self) -> str:
        """Changes with the secret or the folder's content; reveals neither. Empty without a policy."""
        if not self.modes:
            return ""
        parts = {"secret": _mac(self.secret, "libra-heldout-fingerprint")[:16] if self.secret else None,
                 "folder": tree_hash(self._folder()) if self.private_dir is not None else None}
        return content_hash(parts)

    def _folder(self) -> Path:
        folder = self.private_dir
        if folder is None or not folder.is_dir():
            raise LibraError(f"LIBRA_EVAL_PRIVATE_DIR {folder} is not a folder", status=500,
                             code="private_dir_missing")
        return folder


def cycle_suite(suite: Suite, cycle_id: str, policy: HeldOutPolicy) -> Suite:
    """The suite with this cycle's held-out items; its version stays the public one (the policy's
    fingerprint enters the run's through the cycle sample)."""
    return replace(suite, tasks=apply(suite.tasks, cycle_id, policy))


def apply(tasks: Sequence[LoadedTask], cycle_id: str, policy: HeldOutPolicy) -> tuple[LoadedTask, ...]:
    """The tasks with this cycle's held-out items: private ones added, secret-chosen ones marked."""
    out = []
    for task in tasks:
        items = list(task.items)
        if policy.secret is not None:
            items = _mark_secret(task, items, cycle_id, policy.secret)
        if policy.private_dir is not None:
            items += private_items(task, policy._folder())
        out.append(replace(task, items=tuple(items)))
    return tuple(out)


def private_items(task: LoadedTask, folder: Path) -> list[Item]:
    path = _task_file(folder, task.name)
    if path is None:
        return []
    items, dropped = to_items(read_records(path), task.spec.source)
    if dropped:
        log.warning("evaluation.private.dropped", extra={"task": task.name, "n_dropped": dropped})
    return [_private(item) for item in items]


def _task_file(folder: Path, task_name: str) -> Path | None:
    return next((folder / f"{task_name}{s}" for s in SUFFIXES if (folder / f"{task_name}{s}").is_file()), None)


def _private(item: Item) -> Item:
    digest = content_hash({"fields": item.fields, "target": item.target, "meta": item.meta}, 8)
    return replace(item, id=f"{PRIVATE_PREFIX}{item.id}@{digest}", held_out=True)


def _mark_secret(task: LoadedTask, items: list[Item], cycle_id: str, secret: bytes) -> list[Item]:
    fraction = task.spec.source.held_out_fraction
    if fraction <= 0.0 or not items:
        return items
    n_held = max(1, round(fraction * len(items)))
    # Keyed by the item's cluster, not its task: a risky prompt held out in the direct task is held out
    # in every attack wrapping of it too, so no public wrapping gives the held-out request away.
    ranked = sorted(items, key=lambda item: (_mac(secret, f"{cycle_id}\x1f{task.cluster(item)}"), item.id))
    chosen = {item.id for item in ranked[:n_held]}
    return [replace(item, held_out=True) if item.id in chosen else item for item in items]


def _mac(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def describe(settings: Settings) -> dict[str, Any]:
    """What the methodology page says about the held-out set: modes and counts, never an item."""
    policy = HeldOutPolicy.from_settings(settings)
    if not policy.modes:
        return {"private_heldout": False, "mode": None, "note": NO_HELDOUT_NOTE}
    out: dict[str, Any] = {"private_heldout": True, "mode": " + ".join(policy.modes)}
    if policy.secret is not None:
        out["note"] = "each cycle a secret seed holds out a share of every task's items"
    if policy.private_dir is not None:
        files = _private_files(policy.private_dir)
        out["private_dir_found"] = policy.private_dir.is_dir()
        out.update(private_tasks=len(files), private_items=sum(len(read_records(p)) for p in files))
        out["note"] = "; ".join(filter(None, [out.get("note"), "a maintainer's private folder adds items"]))
    return out


def _private_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)

