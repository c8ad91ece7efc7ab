"""Shared value types of the evaluation domain.

Everything here is a frozen dataclass, an enum or a Protocol: the runner, the scorers and the
storage adapters exchange these and nothing else, so the Postgres repository the lead writes only
has to map them to rows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = Mapping[str, str]
"""One chat turn: ``{"role": "system" | "user" | "assistant", "content": str}``."""

Conversation = Sequence[Message]


class Axis(str, enum.Enum):
    CAPABILITY = "capability"
    SAFETY = "safety"


class Status(str, enum.Enum):
    """Outcome of one item row. Only ``OK`` rows carry a score and enter the means."""

    OK = "ok"
    EMPTY = "empty"
    TIMEOUT = "timeout"
    PARSE_ERROR = "parse_error"
    BACKEND_ERROR = "backend_error"


@runtime_checkable
class ResultLike(Protocol):
    """What a backend returns per conversation; only ``text`` is required.

    Backends may also expose ``error: str | None`` and ``status: str | None`` (one of
    :class:`Status`); the runner reads them with ``getattr`` so inference types need not
    import ours.
    """

    text: str | None


class Generate(Protocol):
    """A batched chat-completion call bound to one model and one set of sampling parameters."""

    async def __call__(self, conversations: list[list[dict[str, str]]]) -> list[ResultLike]: ...


@dataclass(frozen=True)
class Item:
    """One dataset row after the source's field mapping.

    ``fields`` feed the prompt template; ``target`` is the reference answer (None for
    safety items); ``meta`` carries per-item labels such as harm category and severity.
    """

    id: str
    fields: Mapping[str, Any]
    target: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    held_out: bool = False


@dataclass(frozen=True)
class ScoredItem:
    """One evaluation item and how it scored: the one record that scorers return, the store keeps,
    a run's summary counts and the leaderboard reads.

    A scorer fills the outcome; the runner adds where the item counts and its storage keys.
    ``score`` lies in [0, 1] and exists only when ``status`` is ok: a status is never a score.
    """

    task: str
    item_id: str
    status: Status
    score: float | None = None
    # Where it counts: set by the runner from the task's labels.
    axis: str = ""
    category: str = ""
    held_out: bool = False
    labels: Mapping[str, Any] = field(default_factory=dict)
    # How it was scored.
    extracted: str | None = None
    scored_by: str = ""
    outcome: str | None = None
    """``pass`` / ``fail`` / ``inconclusive`` from the rules, where rules apply."""
    details: Mapping[str, Any] = field(default_factory=dict)
    # Its keys in storage.
    fingerprint: str = ""
    generation_fingerprint: str = ""
    scorer_version: str = ""

    def __post_init__(self) -> None:
        if self.score is not None and (self.status is not Status.OK or not 0.0 <= self.score <= 1.0):
            raise ValueError(f"item {self.task}/{self.item_id}: a {self.status.value} item carries no score "
                             f"outside [0, 1] ({self.score})")


@dataclass(frozen=True)
class Provenance:
    """Where a task's data came from; shown on the methodology page."""

    kind: str
    location: str
    version: str
    licence: str
    n_items: int
    n_dropped: int = 0
    note: str = ""


@dataclass(frozen=True)
class TextResult:
    """A minimal :class:`ResultLike` for tests and adapters."""

    text: str | None
    error: str | None = None
    status: str | None = None
