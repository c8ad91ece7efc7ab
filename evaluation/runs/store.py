"""What the runner persists (generations, and scores as :class:`~evaluation.types.ScoredItem`), and the
storage protocol it persists through.

The runner never commits or opens sessions: the Postgres repository that implements
:class:`ItemStore` decides transactions. Saves are idempotent upserts keyed by fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evaluation.types import ScoredItem, Status

RETRYABLE = frozenset({Status.TIMEOUT, Status.BACKEND_ERROR})
"""Statuses a resumed run tries again; ``empty`` and ``parse_error`` are final answers."""


@dataclass(frozen=True)
class GenerationRecord:
    fingerprint: str
    task: str
    task_version: str
    item_id: str
    messages: tuple[Mapping[str, str], ...]
    status: Status
    text: str | None
    error: str | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    """What the backend reported, if anything: finish_reason, prompt/completion tokens, latency_s."""


class ItemStore(Protocol):
    async def get_generations(self, fingerprints: Sequence[str]) -> Mapping[str, GenerationRecord]: ...

    async def save_generations(self, records: Sequence[GenerationRecord]) -> None: ...

    async def get_scores(self, fingerprints: Sequence[str]) -> Mapping[str, ScoredItem]: ...

    async def save_scores(self, records: Sequence[ScoredItem]) -> None: ...
