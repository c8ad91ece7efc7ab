"""A local summary by task and category, for a CLI table.

The leaderboard's item -> task -> category -> axis aggregation with confidence intervals is
``ranking.aggregate_scores``; this is only a quick look. Means use ``ok`` rows only and every
other status is counted and shown, never folded into the mean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from evaluation.types import ScoredItem, Status


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
    rows: Sequence[ScoredItem], key: Callable[[ScoredItem], tuple[str, str]]
) -> list[GroupSummary]:
    groups: dict[tuple[str, str], list[ScoredItem]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [_group(axis, name, members) for (axis, name), members in sorted(groups.items())]


def _group(axis: str, name: str, rows: Sequence[ScoredItem]) -> GroupSummary:
    scores = [row.score for row in rows if row.status is Status.OK and row.score is not None]
    counts = Counter(row.status.value for row in rows)
    mean = sum(scores) / len(scores) if scores else None
    return GroupSummary(axis, name, len(rows), len(scores), mean, dict(sorted(counts.items())))


def summarize_by_category(rows: Iterable[ScoredItem]) -> list[GroupSummary]:
    return _summarise(list(rows), lambda row: (row.axis, row.category))


def summarize_by_task(rows: Iterable[ScoredItem]) -> list[GroupSummary]:
    return _summarise(list(rows), lambda row: (row.axis, row.task))


def format_table(summaries: Sequence[GroupSummary]) -> str:
    """A plain-text table: axis, group, mean over ok rows, and the counts of every status."""
    lines = [f"{'axis':<11} {'group':<52} {'mean':>6} {'ok':>5}  other statuses"]
    for s in summaries:
        mean = f"{s.mean:.3f}" if s.mean is not None else "  -  "
        others = ", ".join(f"{k}={v}" for k, v in s.status_counts.items() if k != Status.OK.value) or "-"
        lines.append(f"{s.axis:<11} {s.group:<52} {mean:>6} {s.n_ok:>5}  {others}")
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _macro_categories(rows: Sequence[ScoredItem]) -> list[dict[str, object]]:
    """Per category: the mean of its task means (as the leaderboard aggregates), and its counts."""
    tasks = {s.group: s for s in summarize_by_task(rows)}
    category_of = {row.task: (row.axis, row.category) for row in rows}
    out = []
    for s in summarize_by_category(rows):
        members = [t for name, t in tasks.items() if category_of[name] == (s.axis, s.group)]
        means = [t.mean for t in members if t.mean is not None]
        out.append({"axis": s.axis, "category": s.group, "mean": _mean(means), "tasks": len(members),
                    "n_items": s.n_items, "n_ok": s.n_ok, "statuses": s.status_counts})
    return out


def _axes(
    categories: Sequence[dict[str, object]], expected: dict[str, tuple[str, ...]]
) -> list[dict[str, object]]:
    out = []
    for axis, names in expected.items():
        scored = {c["category"]: c["mean"] for c in categories if c["axis"] == axis and c["mean"] is not None}
        missing = [name for name in names if name not in scored]
        score = _mean([float(v) for v in scored.values()])  # type: ignore[arg-type]
        out.append({"axis": axis, "score": score, "categories": len(scored), "missing": missing})
    return out


def run_summary(rows: Iterable[ScoredItem], expected: dict[str, tuple[str, ...]]) -> dict[str, object]:
    """A run's summary as stored with it: public items by category and axis, held-out items by axis.

    Category = mean of task means, axis = mean of category means, over ``ok`` rows only; an axis
    lists the expected categories it has no score for (``missing``), never hiding the gap. Held-out
    figures are aggregates only (a contamination probe); their items are never shown.
    """
    rows = list(rows)
    public, held = [r for r in rows if not r.held_out], [r for r in rows if r.held_out]
    categories = _macro_categories(public)
    held_categories = _macro_categories(held)
    statuses = Counter(row.status.value for row in public)
    return {"categories": categories, "axes": _axes(categories, expected),
            "statuses": dict(sorted(statuses.items())), "n_items": len(public),
            "held_out": {"n_items": len(held), "axes": _axes(held_categories, expected)}}
