"""One leaderboard snapshot: arena boards, Libra scores, optional blending, ranks.

The snapshot job reads counts and item scores, calls `build_snapshot`, and
stores the result together with `config.as_dict()`, so every published table
says how it was computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ranking.bradley_terry import BTResult, TieModel, fit_bradley_terry
from ranking.counts import FloatArray, IntArray, PairCounts
from ranking.intervals import Intervals, bootstrap_intervals, fisher_intervals
from ranking.libra import (
    AxisScores,
    ScoreConfig,
    Status,
    TaskInfo,
    aggregate_scores,
    overall_band,
    percentile_band,
    rating_to_unit,
)
from ranking.ranks import RankIntervals, rank_intervals
from ranking.style import StyleConfig, StyleCounts, StyleResult, fit_style_controlled

METHOD = "libra-ranking/1"


@dataclass(frozen=True)
class ArenaBlend:
    """Weight of each arena signal inside its axis; 0 = shown beside the benchmark, not blended.

    Blending maps a rating to [0, 1] by the fixed win chance against
    `reference_rating`, so it needs a fixed anchor to stay comparable over time.
    """

    capability_weight: float = 0.0  # helpfulness votes -> c
    safety_weight: float = 0.0  # safety votes -> s
    reference_rating: float = 1000.0


@dataclass(frozen=True)
class SnapshotConfig:
    ties: TieModel = "davidson"
    prior_strength: float = 1.0
    anchor: str | None = None
    anchor_rating: float = 1000.0
    bootstrap_rounds: int = 1000
    level: float = 0.95
    seed: int = 0  # the job's Generator is built from it, so a snapshot can be recomputed
    scores: ScoreConfig = field(default_factory=ScoreConfig)
    blend: ArenaBlend = field(default_factory=ArenaBlend)
    style: StyleConfig = field(default_factory=StyleConfig)

    def effective_scores(self) -> ScoreConfig:
        """Item resampling uses the snapshot's rounds and level, so one number governs both."""
        return replace(self.scores, rounds=self.bootstrap_rounds, level=self.level)

    def as_dict(self) -> dict[str, Any]:
        return {"method": METHOD, **asdict(replace(self, scores=self.effective_scores()))}


@dataclass(frozen=True)
class ArenaBoard:
    fit: BTResult
    intervals: Intervals  # bootstrap, used for ranks and blending
    fisher: Intervals
    ranks: RankIntervals


@dataclass(frozen=True)
class Snapshot:
    config: dict[str, Any]
    scores: AxisScores
    ranks: RankIntervals  # by overall Libra score
    helpfulness: ArenaBoard | None
    safety: ArenaBoard | None
    style: StyleResult | None


def arena_board(counts: PairCounts, config: SnapshotConfig, rng: np.random.Generator) -> ArenaBoard:
    fit = fit_bradley_terry(
        counts,
        anchor=config.anchor if config.anchor in counts.models else None,
        anchor_rating=config.anchor_rating,
        prior_strength=config.prior_strength,
        ties=config.ties,
    )
    boot = bootstrap_intervals(counts, fit, rounds=config.bootstrap_rounds, rng=rng, level=config.level)
    ranks = rank_intervals(boot.lower, boot.upper, fit.ratings)
    return ArenaBoard(fit, boot, fisher_intervals(counts, fit, config.level), ranks)


def _aligned_draws(models: Sequence[str], arena: Intervals) -> tuple[FloatArray, FloatArray]:
    """Arena estimate (models,) and draws (models, rounds) in `models` order, NaN if absent."""
    if arena.draws is None:
        raise ValueError("blending needs bootstrap intervals (with draws) for the arena")
    index = {name: i for i, name in enumerate(arena.models)}
    estimate = np.full(len(models), np.nan)
    draws = np.full((len(models), arena.draws.shape[0]), np.nan)
    for m, name in enumerate(models):
        if name in index:
            estimate[m], draws[m] = arena.estimate[index[name]], arena.draws[:, index[name]]
    return estimate, draws


def blend_arena(
    scores: AxisScores, helpfulness: Intervals | None, safety: Intervals | None, blend: ArenaBlend
) -> AxisScores:
    """c' = (1 - w) c + w * rating_to_unit(rating), per axis, draw by draw.

    Bootstrap draws of the two sources are independent, so pairing them by
    index gives draws of the blend. A model without an arena rating on a
    blended axis is treated like a missing category.
    """
    if blend.capability_weight == 0.0 and blend.safety_weight == 0.0:
        return scores
    values = np.stack([scores.capability.value, scores.safety.value], axis=1)
    draws = scores.draws.copy()
    missing = [list(m) for m in scores.missing]
    for k, (weight, arena, label) in enumerate(
        [(blend.capability_weight, helpfulness, "helpfulness"), (blend.safety_weight, safety, "safety")]
    ):
        if weight == 0.0:
            continue
        if arena is None:
            raise ValueError(f"a {label} weight is set but no {label} ratings were given")
        estimate, arena_draws = _aligned_draws(scores.models, arena)
        rounds = min(draws.shape[2], arena_draws.shape[1])
        draws = draws[:, :, :rounds]
        unit, unit_draws = (rating_to_unit(x, blend.reference_rating) for x in (estimate, arena_draws[:, :rounds]))
        has = np.isfinite(estimate)
        values[has, k] = (1 - weight) * values[has, k] + weight * unit[has]
        draws[has, k] = (1 - weight) * draws[has, k] + weight * unit_draws[has]
        for m in np.flatnonzero(~has):
            missing[m].append(f"arena/{label}")
    return _rescored(scores, values, draws, missing)


def _rescored(scores: AxisScores, values: FloatArray, draws: FloatArray, missing: list[list[str]]) -> AxisScores:
    config = scores.config
    status: list[Status] = []
    for m, old in enumerate(scores.status):
        new: Status = old if not missing[m] or old == "unranked" else config.missing
        if new == "unranked":
            values[m], draws[m] = np.nan, np.nan
        status.append(new)
    return replace(
        scores,
        capability=percentile_band(values[:, 0], draws[:, 0], config.level),
        safety=percentile_band(values[:, 1], draws[:, 1], config.level),
        overall=overall_band(draws, values, config),
        status=tuple(status),
        missing=tuple(tuple(m) for m in missing),
        draws=draws,
    )


def _style_fit(style: StyleCounts, config: SnapshotConfig) -> StyleResult:
    return fit_style_controlled(
        style,
        anchor=config.anchor if config.anchor in style.models else None,
        anchor_rating=config.anchor_rating,
        prior_strength=config.prior_strength,
        ties=config.ties,
        level=config.level,
    )


def build_snapshot(
    *,
    models: Sequence[str],
    tasks: Sequence[TaskInfo],
    item_model: IntArray,
    item_task: IntArray,
    item_score: FloatArray,
    helpfulness: PairCounts | None,
    safety: PairCounts | None,
    style: StyleCounts | None,
    config: SnapshotConfig,
    rng: np.random.Generator,
) -> Snapshot:
    """Everything a leaderboard shows, from counts and item scores."""
    help_board = arena_board(helpfulness, config, rng) if helpfulness is not None else None
    safe_board = arena_board(safety, config, rng) if safety is not None else None
    style_fit = _style_fit(style, config) if style is not None else None
    scores = aggregate_scores(
        models, tasks, item_model, item_task, item_score, config=config.effective_scores(), rng=rng
    )
    scores = blend_arena(
        scores,
        help_board.intervals if help_board else None,
        safe_board.intervals if safe_board else None,
        config.blend,
    )
    ranks = rank_intervals(scores.overall.lower, scores.overall.upper, scores.overall.value)
    return Snapshot(config.as_dict(), scores, ranks, help_board, safe_board, style_fit)
