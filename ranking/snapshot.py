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
from scipy.stats import norm

from ranking.bradley_terry import BTResult, TieModel, fit_bradley_terry
from ranking.counts import BoolArray, FloatArray, IntArray, PairCounts
from ranking.intervals import Intervals, bootstrap_intervals, fisher_intervals
from ranking.libra import (
    AxisScores,
    ScoreConfig,
    Status,
    TaskInfo,
    aggregate_scores,
    named_stream,
    overall_band,
    percentile_band,
    rating_to_unit,
)
from ranking.ranks import RankIntervals, rank_intervals
from ranking.style import StyleConfig, StyleCounts, StyleResult, fit_style_controlled

METHOD = "libra-ranking/2"  # 2: cluster Bayesian bootstrap, Jeffreys tasks, provisional, anchored blend


@dataclass(frozen=True)
class ArenaBlend:
    """Weight of each arena signal inside its axis; 0 = shown beside the benchmark, not blended.

    Blending maps a rating to [0, 1] by the fixed win chance against the
    anchor model (rating minus the anchor's rating, through the fixed
    logistic), so it needs `SnapshotConfig.anchor`: ratings centred on the
    pool's mean would move every model whenever one is added.
    """

    capability_weight: float = 0.0  # helpfulness votes -> c
    safety_weight: float = 0.0  # safety votes -> s

    @property
    def active(self) -> bool:
        return self.capability_weight != 0.0 or self.safety_weight != 0.0


@dataclass(frozen=True)
class SnapshotConfig:
    ties: TieModel = "davidson"
    prior_strength: float = 1.0
    anchor: str | None = None
    anchor_rating: float = 1000.0
    bootstrap_rounds: int = 1000
    level: float = 0.95
    seed: int = 0  # every random component's generator is derived from it, so a snapshot can be recomputed
    min_votes: int = 30  # below: the arena rating is provisional, with a small-count interval
    scores: ScoreConfig = field(default_factory=ScoreConfig)
    blend: ArenaBlend = field(default_factory=ArenaBlend)
    style: StyleConfig = field(default_factory=StyleConfig)

    def __post_init__(self) -> None:
        if self.blend.active and self.anchor is None:
            raise ValueError("blending arena ratings into c or s needs an anchor model (SnapshotConfig.anchor): "
                             "without one the reference moves whenever a model is added")

    def effective_scores(self) -> ScoreConfig:
        """Item resampling uses the snapshot's rounds and level, so one number governs both."""
        return replace(self.scores, rounds=self.bootstrap_rounds, level=self.level)

    def stream(self, component: str) -> np.random.Generator:
        """The generator of one random component ("arena/helpfulness", "arena/safety", "evaluation").

        Each depends on the seed and its name only, so what one component
        draws never shifts what another draws.
        """
        return named_stream(self.seed, component)

    def as_dict(self) -> dict[str, Any]:
        return {"method": METHOD, **asdict(replace(self, scores=self.effective_scores()))}

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> SnapshotConfig:
        """The config a snapshot recorded with `as_dict` (JSON turns tuples into lists; other keys ignored)."""
        if recorded.get("method") != METHOD:
            raise ValueError(f"recorded by {recorded.get('method')!r}; this code computes {METHOD!r}")
        scores = dict(recorded["scores"])
        scores["required"] = tuple((axis, tuple(c)) for axis, c in scores["required"])
        scores["weights"] = tuple(scores["weights"])
        style = recorded["style"]
        names = {f for f in cls.__dataclass_fields__} - {"scores", "blend", "style"}
        return cls(**{k: v for k, v in recorded.items() if k in names},
                   scores=ScoreConfig(**scores), blend=ArenaBlend(**recorded["blend"]),
                   style=StyleConfig(tuple(style["features"]), tuple(tuple(e) for e in style["edges"])))


@dataclass(frozen=True)
class ArenaBoard:
    fit: BTResult
    intervals: Intervals  # shown, ranked and blended: bootstrap, Fisher for provisional models
    fisher: Intervals
    ranks: RankIntervals
    games: FloatArray  # games per model on this board
    provisional: BoolArray  # fewer games than `min_votes`


@dataclass(frozen=True)
class Snapshot:
    config: dict[str, Any]
    scores: AxisScores
    ranks: RankIntervals  # by overall Libra score
    helpfulness: ArenaBoard | None
    safety: ArenaBoard | None
    style: StyleResult | None


def arena_board(counts: PairCounts, config: SnapshotConfig, rng: np.random.Generator) -> ArenaBoard:
    """Fit, intervals and ranks of one vote dimension.

    A configured anchor must be on the board and rated (a clear error
    otherwise, never a silent switch to mean-centring).
    """
    fit = fit_bradley_terry(
        counts,
        anchor=config.anchor,
        anchor_rating=config.anchor_rating,
        prior_strength=config.prior_strength,
        ties=config.ties,
    )
    boot = bootstrap_intervals(counts, fit, rounds=config.bootstrap_rounds, rng=rng, level=config.level)
    fisher = fisher_intervals(counts, fit, config.level)
    games = counts.games.sum(axis=1)
    provisional = fit.rated & (games < config.min_votes)
    shown = provisional_intervals(boot, fisher, provisional, rng)
    ranks = rank_intervals(shown.lower, shown.upper, fit.ratings)
    return ArenaBoard(fit, shown, fisher, ranks, games, provisional)


def provisional_intervals(
    boot: Intervals, fisher: Intervals, provisional: BoolArray, rng: np.random.Generator
) -> Intervals:
    """Bootstrap intervals, with Wald intervals on the penalised fit for provisional models.

    With a handful of votes a resample often leaves a model without games;
    its refit then returns the prior mean, and the percentile bound sits
    exactly there (after six votes: 757 [708, 1000]). The Wald interval of
    the posterior mode has no such atom. Their draws (for blending) are
    normal draws with the Fisher standard error.
    """
    if not provisional.any() or boot.draws is None:
        return boot
    lower, upper, draws = boot.lower.copy(), boot.upper.copy(), boot.draws.copy()
    lower[provisional], upper[provisional] = fisher.lower[provisional], fisher.upper[provisional]
    se = (fisher.upper - fisher.lower)[provisional] / (2.0 * norm.ppf(0.5 + 0.5 * fisher.level))
    noise = rng.standard_normal((draws.shape[0], int(provisional.sum())))
    draws[:, provisional] = fisher.estimate[provisional] + noise * se
    return replace(boot, lower=lower, upper=upper, draws=draws, method="bootstrap; fisher if provisional")


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


def _anchored(board: ArenaBoard | None, label: str) -> ArenaBoard:
    if board is None:
        raise ValueError(f"a {label} weight is set but no {label} ratings were given")
    if board.fit.anchor is None:
        raise ValueError(f"blending {label} ratings needs an anchored fit: set SnapshotConfig.anchor")
    return board


def blend_arena(
    scores: AxisScores, helpfulness: ArenaBoard | None, safety: ArenaBoard | None, blend: ArenaBlend
) -> AxisScores:
    """c' = (1 - w) c + w * rating_to_unit(rating, anchor's rating), per axis, draw by draw.

    The reference is the anchor model's fixed rating, so a model's blended
    score moves with its own rating relative to the anchor only. Bootstrap
    draws of the two sources are independent, so pairing them by index gives
    draws of the blend. A model without an arena rating on a blended axis is
    treated like a missing category.
    """
    if not blend.active:
        return scores
    values = np.stack([scores.capability.value, scores.safety.value], axis=1)
    draws = scores.draws.copy()
    missing = [list(m) for m in scores.missing]
    for k, (weight, board, label) in enumerate(
        [(blend.capability_weight, helpfulness, "helpfulness"), (blend.safety_weight, safety, "safety")]
    ):
        if weight == 0.0:
            continue
        board = _anchored(board, label)
        estimate, arena_draws = _aligned_draws(scores.models, board.intervals)
        rounds = min(draws.shape[2], arena_draws.shape[1])
        draws = draws[:, :, :rounds]
        reference = board.fit.anchor_rating
        unit, unit_draws = (rating_to_unit(x, reference) for x in (estimate, arena_draws[:, :rounds]))
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


def _board(counts: PairCounts | None, config: SnapshotConfig, component: str) -> ArenaBoard | None:
    return None if counts is None else arena_board(counts, config, config.stream(component))


@dataclass(frozen=True)
class ArenaPart:
    helpfulness: ArenaBoard | None
    safety: ArenaBoard | None
    style: StyleResult | None


def arena_part(
    helpfulness: PairCounts | None, safety: PairCounts | None, style: StyleCounts | None, config: SnapshotConfig
) -> ArenaPart:
    """The snapshot's arena boards: they depend on the votes and the config only (each its own stream),
    so a replay from exported votes recomputes them without the evaluation's inputs."""
    return ArenaPart(
        _board(helpfulness, config, "arena/helpfulness"),
        _board(safety, config, "arena/safety"),
        _style_fit(style, config) if style is not None else None,
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
    item_cluster: IntArray | None = None,
) -> Snapshot:
    """Everything a leaderboard shows, from counts and item scores.

    Each random component draws from its own generator derived from
    `config.seed`, so votes never shift the evaluation's intervals and a model
    added with items only changes no other model's numbers (docs/ranking.md).
    """
    arena = arena_part(helpfulness, safety, style, config)
    help_board, safe_board, style_fit = arena.helpfulness, arena.safety, arena.style
    scores = aggregate_scores(
        models, tasks, item_model, item_task, item_score,
        config=config.effective_scores(), rng=config.stream("evaluation"), item_cluster=item_cluster,
    )
    scores = blend_arena(scores, help_board, safe_board, config.blend)
    ranks = rank_intervals(scores.overall.lower, scores.overall.upper, scores.overall.value)
    return Snapshot(config.as_dict(), scores, ranks, help_board, safe_board, style_fit)
