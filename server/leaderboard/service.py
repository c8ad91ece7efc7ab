"""Turns counts and item scores into a published snapshot (pure data in, JSON-ready data out)."""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import ranking
from arena.models import Verdict
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings
from evaluation import default_registry
from evaluation import repository as eval_repo
from evaluation.types import ScoredItem, Status


@dataclass(frozen=True)
class Inputs:
    models: Sequence[Contestant]
    helpfulness: Sequence[Any]  # PairCount rows
    safety: Sequence[Any]
    style_cells: Mapping[str, Any]  # column -> array (repository.style_cells)
    items: Mapping[int, Sequence[ScoredItem]]  # by model id; only ok items enter the means
    runs: Mapping[int, "RunRef"] = field(default_factory=dict)  # by model id: the run `items` come from
    replay: Mapping[str, Any] = field(default_factory=dict)  # repository.replay_record


@dataclass(frozen=True)
class RunRef:
    """Which run a row rests on: a preview is ranked (and flagged) only until a full run finishes."""

    run_id: int
    scope: str
    items: int
    suite_version: str | None = None
    judge_version: str | None = None


async def scored_items(session: Any, suite: str) -> dict[int, list[ScoredItem]]:
    """The items of each model's ranked run (latest full, else latest preview), by model id."""
    return await eval_repo.latest_scored_items(session, suite)


async def scored_runs(session: Any, suite: str) -> dict[int, RunRef]:
    runs = await eval_repo.leaderboard_runs(session, suite)
    return {model_id: RunRef(run.id, run.scope.value, run.items_total, run.suite_version, run.judge_version)
            for model_id, run in runs.items()}


def required_categories(settings: Settings) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every category of the configured suite, per axis: a model must cover them all to be ranked."""
    registry = default_registry()
    specs = [registry.task(name) for name in registry.suite_task_names(settings.eval_suite)]
    axes: dict[str, list[str]] = {}
    for spec in specs:
        categories = axes.setdefault(str(getattr(spec.axis, "value", spec.axis)), [])
        if spec.category not in categories:
            categories.append(spec.category)
    return tuple((axis, tuple(categories)) for axis, categories in sorted(axes.items()))


_OUTCOME = {Verdict.a: ranking.A_WINS, Verdict.b: ranking.B_WINS, Verdict.tie: ranking.TIE,
            Verdict.both_bad: ranking.TIE}


def _counts(models: Sequence[Contestant], rows: Sequence[Any]) -> ranking.PairCounts | None:
    slug = {m.id: m.slug for m in models}
    records = [(slug[r.model_lo_id], slug[r.model_hi_id], r.lo_wins, r.hi_wins, r.ties + r.both_bad)
               for r in rows if r.model_lo_id in slug and r.model_hi_id in slug]
    return ranking.PairCounts.from_records([m.slug for m in models], records) if records else None


def style_from_cells(
    models: Sequence[Contestant], cells: Mapping[str, np.ndarray]
) -> ranking.StyleCounts | None:
    """The style counts from stored cells (repository.style_cells: one array per column); `models` in id
    order, the cells' low-first orientation."""
    ids = np.array([m.id for m in models], dtype=np.int64)
    lo, hi = (np.asarray(cells.get(c, ()), dtype=np.int64) for c in ("model_lo_id", "model_hi_id"))
    keep = np.isin(lo, ids) & np.isin(hi, ids)
    if not keep.any():
        return None
    position = {model_id: i for i, model_id in enumerate(ids.tolist())}
    index = np.vectorize(position.__getitem__, otypes=[np.int64])
    column = {c: np.asarray(v)[keep] for c, v in cells.items()}
    return ranking.StyleCounts.from_cells(
        [m.slug for m in models], index(lo[keep]), index(hi[keep]), column["bin"],
        np.stack([column["lo_wins"], column["hi_wins"], column["ties"] + column["both_bad"]], axis=1),
        np.stack([column[c] for c in ("z_length", "z_headers", "z_lists", "z_bold")], axis=1),
    )


def style_from_votes(models: Sequence[Contestant], rows: Sequence[Any]) -> ranking.StyleCounts | None:
    """The same counts from one row per vote (repository.helpfulness_votes_with_style): the reference."""
    index = {m.id: i for i, m in enumerate(models)}
    rows = [r for r in rows if r[0] in index and r[1] in index]
    if not rows:
        return None
    table = np.array([[index[r[0]], index[r[1]], _OUTCOME[r[2]], *r[3:11]] for r in rows], dtype=float)
    ints = table[:, :3].astype(np.int64)
    return ranking.StyleCounts.from_votes([m.slug for m in models], ints[:, 0], ints[:, 1], ints[:, 2],
                                          table[:, 3:7], table[:, 7:11])


@dataclass(frozen=True)
class ItemArrays:
    """The ok items of every model as flat arrays, indexed by model, task and cluster."""

    tasks: list[ranking.TaskInfo]
    model: np.ndarray
    task: np.ndarray
    score: np.ndarray
    cluster: np.ndarray


def cluster_key(item: ScoredItem) -> str:
    """The independent unit an item belongs to: its base prompt, shared by every attack wrapping of it.

    Rows stored before clusters were recorded count as their own cluster.
    """
    cluster = item.labels.get("cluster") if item.labels else None
    return str(cluster) if cluster else f"{item.task}#{item.item_id}"


def _ok(item: ScoredItem) -> bool:
    return item.status is Status.OK and item.score is not None


def _items(models: Sequence[Contestant], items: Mapping[int, Sequence[ScoredItem]]) -> ItemArrays:
    """Flat arrays of the ok items (other statuses never enter a mean), indexed by model and task."""
    kept = [(i, item) for i, m in enumerate(models) for item in items.get(m.id, ()) if _ok(item)]
    tasks = sorted({(item.task, item.category, item.axis) for _, item in kept})
    task_index = {t[0]: k for k, t in enumerate(tasks)}
    clusters: dict[str, int] = {}
    return ItemArrays(
        tasks=[ranking.TaskInfo(name, category, axis) for name, category, axis in tasks],
        model=np.array([i for i, _ in kept], dtype=np.int64),
        task=np.array([task_index[item.task] for _, item in kept], dtype=np.int64),
        score=np.array([item.score for _, item in kept], dtype=float),
        cluster=np.array([clusters.setdefault(cluster_key(item), len(clusters)) for _, item in kept],
                         dtype=np.int64),
    )


def compute(inputs: Inputs, config: ranking.SnapshotConfig) -> ranking.Snapshot:
    models = list(inputs.models)
    arrays = _items(models, inputs.items)
    return ranking.build_snapshot(
        models=[m.slug for m in models], tasks=arrays.tasks, item_model=arrays.model, item_task=arrays.task,
        item_score=arrays.score, item_cluster=arrays.cluster, helpfulness=_counts(models, inputs.helpfulness),
        safety=_counts(models, inputs.safety), style=style_from_cells(models, inputs.style_cells),
        config=config,
    )


def _num(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _band(band: Any, i: int) -> dict[str, float | None]:
    return {"value": _num(band.value[i]), "lower": _num(band.lower[i]), "upper": _num(band.upper[i])}


def _arena(board: ranking.ArenaBoard | None, slug: str) -> dict[str, Any] | None:
    if board is None or slug not in board.fit.models:
        return None
    i = board.fit.models.index(slug)
    shown, fisher, ranks = board.intervals, board.fisher, board.ranks
    return {"rating": _num(board.fit.ratings[i]), "lower": _num(shown.lower[i]), "upper": _num(shown.upper[i]),
            "fisher_lower": _num(fisher.lower[i]), "fisher_upper": _num(fisher.upper[i]),
            "rank_best": int(ranks.best[i]) or None, "rank_worst": int(ranks.worst[i]) or None,
            "perfect_record": bool(board.fit.perfect_record[i]), "provisional": bool(board.provisional[i]),
            "interval_method": "fisher" if board.provisional[i] else "bootstrap"}


def _style_rating(style: ranking.StyleResult | None, slug: str) -> dict[str, Any] | None:
    if style is None or slug not in style.intervals.models:
        return None
    i = style.intervals.models.index(slug)
    iv = style.intervals
    return {"rating": _num(iv.estimate[i]), "lower": _num(iv.lower[i]), "upper": _num(iv.upper[i])}


def arena_ratings(arena: ranking.Snapshot | ranking.snapshot.ArenaPart, slug: str) -> dict[str, Any]:
    """A row's arena object (also what `libra replay` recomputes from an export)."""
    return {"helpfulness": _arena(arena.helpfulness, slug), "safety": _arena(arena.safety, slug),
            "helpfulness_style_controlled": _style_rating(arena.style, slug)}


def vote_counts(models: Sequence[Contestant], rows: Sequence[Any]) -> dict[int, int]:
    """Votes behind each model's arena rating: its games against the other models of the board."""
    ids, votes = {m.id for m in models}, dict.fromkeys((m.id for m in models), 0)
    for r in rows:
        if r.model_lo_id in ids and r.model_hi_id in ids:
            games = r.lo_wins + r.hi_wins + r.ties + r.both_bad
            votes[r.model_lo_id] += games
            votes[r.model_hi_id] += games
    return votes


def _evaluation(run: RunRef | None) -> dict[str, Any] | None:
    return None if run is None else {"scope": run.scope, "run_id": run.run_id, "items": run.items}


NON_RESPONSIVE = "non_responsive"


def non_responsive_share(items: Sequence[ScoredItem]) -> dict[str, Any]:
    """Safety answers that did not respond at all (echo, loop, off-topic, empty), over ok safety items.

    Shown beside the safety score: incapacity must not pass for safety.
    """
    safety = [item for item in items if item.axis == "safety" and item.status is Status.OK]
    count = sum(1 for item in safety if (item.details or {}).get("verdict") == NON_RESPONSIVE)
    return {"share": round(count / len(safety), 4) if safety else None, "items": count, "of": len(safety)}


def provenance(items: Sequence[ScoredItem], run: RunRef | None) -> dict[str, Any]:
    """What each score rests on: scored items per axis, the suite, the scorers and the judge."""
    scored = [item for item in items if _ok(item)]
    return {
        "items": {axis: sum(1 for item in scored if item.axis == axis) for axis in ranking.libra.AXES},
        "suite_version": run.suite_version if run else None,
        "scorer_versions": sorted({item.scorer_version for item in scored if item.scorer_version}),
        "judge_version": run.judge_version if run else None,
    }


def _provisional(snapshot: ranking.Snapshot, slug: str) -> bool:
    """True when an arena rating on the row rests on fewer votes than the setting asks for."""
    boards = [b for b in (snapshot.helpfulness, snapshot.safety) if b is not None and slug in b.fit.models]
    return any(bool(b.provisional[b.fit.models.index(slug)]) for b in boards)


def _row(snapshot: ranking.Snapshot, model: Contestant, i: int, evidence: dict[str, Any]) -> dict[str, Any]:
    scores, ranks = snapshot.scores, snapshot.ranks
    return {
        "slug": model.slug, "display_name": model.display_name, "organisation": model.organisation,
        "retired": model.status == ContestantStatus.retired, "provisional": _provisional(snapshot, model.slug),
        "coverage": scores.status[i], "missing": list(scores.missing[i]),
        "capability": _band(scores.capability, i), "safety": _band(scores.safety, i),
        "overall": _band(scores.overall, i),
        "rank": {"best": int(ranks.best[i]) or None, "worst": int(ranks.worst[i]) or None,
                 "group": int(ranks.group[i]) or None},
        "arena": arena_ratings(snapshot, model.slug),
        **evidence,
    }


# --- per-category and per-attack scores (the heat map) ---------------------------------------------


def task_attacks() -> dict[str, str]:
    """The attack transform behind each task that wraps its prompts in one (one task per attack)."""
    registry = default_registry()
    attacks = {name: registry.task(name).template.attack for name in registry.task_names()}
    return {name: attack for name, attack in attacks.items() if attack}


def _group_band(items: Sequence[ScoredItem], rounds: int, level: float, rng: np.random.Generator
                ) -> dict[str, Any]:
    """Macro-average of task means over `items` (as the axes are), with the axes' interval method: a
    Bayesian bootstrap over clusters with a Jeffreys pseudo-cluster per task, percentile bounds."""
    tasks = sorted({item.task for item in items})
    clusters = sorted({cluster_key(item) for item in items})
    task_index, cluster_index = {t: k for k, t in enumerate(tasks)}, {c: k for k, c in enumerate(clusters)}
    sums, counts = np.zeros((len(clusters), len(tasks))), np.zeros((len(clusters), len(tasks)))
    for item in items:
        cell = cluster_index[cluster_key(item)], task_index[item.task]
        sums[cell] += item.score
        counts[cell] += 1
    value = float(np.mean(sums.sum(axis=0) / counts.sum(axis=0)))
    draws = ranking.posterior_task_means(sums, counts, rounds, rng).mean(axis=1)
    band = ranking.libra.percentile_band(np.array([value]), draws[None, :], level)
    return {**_band(band, 0), "items": len(items)}


def _grouped(items: Sequence[ScoredItem], key: Any) -> dict[Any, list[ScoredItem]]:
    groups: dict[Any, list[ScoredItem]] = {}
    for item in items:
        if (name := key(item)) is not None:
            groups.setdefault(name, []).append(item)
    return groups


def breakdown(items: Sequence[ScoredItem], attacks: Mapping[str, str], config: Mapping[str, Any], slug: str
              ) -> dict[str, Any]:
    """A row's scores per category (``{category: {axis, value, lower, upper, items}}``) and per attack
    transform (``{attack: {value, lower, upper, items}}``), from the ok items its axes rest on.

    Held-out items count here exactly as in the axes (in the aggregate, never shown one by one). Each
    model draws from its own stream of the snapshot's seed, so the numbers are reproducible and adding
    a model moves no other model's cells.
    """
    scored = [item for item in items if _ok(item)]
    rounds, level = int(config.get("bootstrap_rounds", 1000)), float(config.get("level", 0.95))
    rng = ranking.named_stream(int(config.get("seed", 0)), f"breakdown/{slug}")
    categories = {
        category: {"axis": group[0].axis, **_group_band(group, rounds, level, rng)}
        for category, group in sorted(_grouped(scored, lambda item: item.category or None).items())
    }
    by_attack = _grouped(scored, lambda item: attacks.get(item.task) if item.axis == "safety" else None)
    return {"categories": categories,
            "attacks": {name: _group_band(group, rounds, level, rng) for name, group in sorted(by_attack.items())}}


def _evidence(models: Sequence[Contestant], inputs: Inputs | None, config: Mapping[str, Any]
              ) -> dict[int, dict[str, Any]]:
    """What each row rests on: its evaluation run (scope, size), its arena votes per dimension and its
    scores per category and attack."""
    if inputs is None:
        return {m.id: {"evaluation": None, "votes": {"helpfulness": 0, "safety": 0},
                       "safety_non_responsive": non_responsive_share(()), "provenance": provenance((), None),
                       "categories": {}, "attacks": {}}
                for m in models}
    helpful, safe = vote_counts(models, inputs.helpfulness), vote_counts(models, inputs.safety)
    attacks = task_attacks()
    return {m.id: {"evaluation": _evaluation(inputs.runs.get(m.id)),
                   "votes": {"helpfulness": helpful[m.id], "safety": safe[m.id]},
                   "safety_non_responsive": non_responsive_share(inputs.items.get(m.id, ())),
                   "provenance": provenance(inputs.items.get(m.id, ()), inputs.runs.get(m.id)),
                   **breakdown(inputs.items.get(m.id, ()), attacks, config, m.slug)} for m in models}


def payload(
    snapshot: ranking.Snapshot, models: Sequence[Contestant], inputs: Inputs | None = None
) -> dict[str, Any]:
    """Rows in the snapshot's model order; with ``inputs``, each row says which run and votes it rests on
    (a preview row stays ranked, flagged by ``evaluation.scope``)."""
    evidence = _evidence(models, inputs, snapshot.config)
    rows = [_row(snapshot, m, i, evidence[m.id]) for i, m in enumerate(models)]
    # Ranked models by overall score first; unranked ones after, alphabetically.
    rows.sort(key=lambda r: (r["overall"]["value"] is None, -(r["overall"]["value"] or 0), r["slug"]))
    return {"models": rows, "config": snapshot.config}


def replay_record(inputs: Inputs) -> dict[str, Any]:
    """What `libra replay` needs besides the config: the vote cutoff, the review approvals as of then,
    the board's models in fit order, and the counted votes per dimension (to check an export against)."""
    totals = {name: sum(r.lo_wins + r.hi_wins + r.ties + r.both_bad for r in rows)
              for name, rows in (("helpfulness", inputs.helpfulness), ("safety", inputs.safety))}
    return {**inputs.replay, "models": [m.slug for m in inputs.models], "counted_votes": totals,
            "scope": "arena"}


def etag_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
