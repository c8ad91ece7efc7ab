"""A local summary by task and category, for a CLI table.

The leaderboard's item -> task -> category -> axis aggregation with confidence intervals is
``ranking.aggregate_scores``; this is only a quick look. Means use ``ok`` rows only and every
other status is counted and shown, never folded into the mean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from evaluation.runner import ItemResult
from evaluation.types import Status


@dataclass(frozen=True)
class GroupSummary:
    axis: str
    group: str
    """A category or a task name, depending on the summary."""
    n_items: int
    n_ok: int
    mean: float | None
    status_counts: dict[str, int]


def _summarise(
    rows: Sequence[ItemResult], key: Callable[[ItemResult], tuple[str, str]]
) -> list[GroupSummary]:
    groups: dict[tuple[str, str], list[ItemResult]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [_group(axis, name, members) for (axis, name), members in sorted(groups.items())]


def _group(axis: str, name: str, rows: Sequence[ItemResult]) -> GroupSummary:
    scores = [row.score for row in rows if row.status is Status.OK and row.score is not None]
    counts = Counter(row.status.value for row in rows)
    mean = sum(scores) / len(scores) if scores else None
    return GroupSummary(axis, name, len(rows), len(scores), mean, dict(sorted(counts.items())))


def summarize_by_category(rows: Iterable[ItemResult]) -> list[GroupSummary]:
    return _summarise(list(rows), lambda row: (row.axis, row.category))


def summarize_by_task(rows: Iterable[ItemResult]) -> list[GroupSummary]:
    return _summarise(list(rows), lambda row: (row.axis, row.task))


def format_table(summaries: Sequence[GroupSummary]) -> str:
    """A plain-text table: axis, group, mean over ok rows, and the counts of every status."""
    lines = [f"{'axis':<11} {'group':<52} {'mean':>6} {'ok':>5}  other statuses"]
    for s in summaries:
        mean = f"{s.mean:.3f}" if s.mean is not None else "  -  "
        others = ", ".join(f"{k}={v}" for k, v in s.status_counts.items() if k != Status.OK.value) or "-"
        lines.append(f"{s.axis:<11} {s.group:<52} {mean:>6} {s.n_ok:>5}  {others}")
    return "\n".join(lines)
