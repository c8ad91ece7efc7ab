"""Active pairing: which pair of models a vote should go to, from the current Bradley-Terry fit.

A pair's score is the expected drop in the ranking's uncertainty from one more vote on it. The
uncertainty is a weighted sum of the rating variances, weighted by (var / max var) ** power: the
widest interval decides when the board is precise enough, and a high power leans to min-max. One
Davidson vote on (a, b) carries Fisher information `info` about r_a - r_b, so it updates the rating
covariance C by a rank one term (Sherman-Morrison), and the weighted variance drops by
info * w @ u**2 / (1 + info * q), u = C (e_a - e_b), q = (e_a - e_b)' C (e_a - e_b).

Draws take an explicit Generator; the inputs of a draw (scores, weights) fully decide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranking.bradley_terry import SCALE, BTResult
from ranking.counts import FloatArray, IntArray, PairCounts
from ranking.intervals import rating_covariance
from ranking.likelihood import moments

# Picked by simulation (benchmarks.arena_pairing): powers 0, 1, 4, 8, 16 of the greedy prototype gave
# 0.90, 0.88, 0.84, 0.82, 0.81 of the uniform votes at 12 models.
VARIANCE_POWER = 8.0


@dataclass(frozen=True)
class PairScores:
    """Scores of every unordered pair (a < b) of the fit's rated models, indices into `models`."""

    models: tuple[str, ...]
    a: IntArray
    b: IntArray
    score: FloatArray  # expected drop of the weighted variance sum, rating points squared


def vote_information(ratings: FloatArray, tie_parameter: float, a: IntArray, b: IntArray) -> FloatArray:
    """Fisher information one Davidson vote carries about r_a - r_b, in rating points^-2 (ties count)."""
    eta = np.log(tie_parameter) if tie_parameter > 0 else -np.inf
    pa, pb, _, _ = moments((ratings[a] - ratings[b]) / SCALE, eta)
    return 0.25 * (pa + pb - (pa - pb) ** 2) / SCALE**2


def variance_weights(covariance: FloatArray, power: float) -> FloatArray:
    variances = np.clip(np.diag(covariance), 0.0, None)
    top = float(np.max(variances)) if len(variances) else 0.0
    return (variances / top) ** power if top > 0 else np.ones(len(variances))


def expected_gains(covariance: FloatArray, info: FloatArray, a: IntArray, b: IntArray,
                   power: float = VARIANCE_POWER) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(gain per pair, u = C (e_a - e_b) as columns, q per pair) at the given covariance."""
    u = covariance[:, a] - covariance[:, b]
    columns = np.arange(len(a))
    q = u[a, columns] - u[b, columns]
    gain = info * (variance_weights(covariance, power) @ u**2) / (1.0 + info * q)
    return gain, u, q


def pair_scores(counts: PairCounts, fit: BTResult, power: float = VARIANCE_POWER) -> PairScores:
    """Scores of the pairs of rated models; models outside the fit get none (callers fall back)."""
    rated = np.flatnonzero(fit.rated)
    lo, hi = np.triu_indices(len(rated), k=1)
    if len(rated) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return PairScores(fit.models, empty, empty, np.zeros(0))
    covariance = rating_covariance(counts, fit)
    info = vote_information(fit.ratings[rated], fit.tie_parameter, lo, hi)
    gain, _, _ = expected_gains(covariance, info, lo, hi, power)
    return PairScores(fit.models, rated[lo].astype(np.int64), rated[hi].astype(np.int64), gain)


def greedy_plan(covariance: FloatArray, info: FloatArray, a: IntArray, b: IntArray, votes: int,
                power: float = VARIANCE_POWER) -> IntArray:
    """Pair indices of `votes` votes chosen one at a time by the highest gain, the covariance updated
    after each (a deterministic design, used as a reference in the benchmark)."""
    cov = covariance.copy()
    chosen = np.empty(votes, dtype=np.int64)
    for step in range(votes):
        gain, u, q = expected_gains(cov, info, a, b, power)
        best = int(np.argmax(gain))
        chosen[step] = best
        cov -= info[best] * np.outer(u[:, best], u[:, best]) / (1.0 + info[best] * q[best])
    return chosen


def fill_missing(score: FloatArray) -> FloatArray:
    """Scores with every missing one (NaN, or not positive: a pair with a new model) set to the highest
    known score, so that such a pair is drawn as readily as the most useful known one; all 1 if none."""
    score = np.asarray(score, dtype=np.float64)
    known = np.isfinite(score) & (score > 0)
    fallback = float(np.max(score[known])) if known.any() else 1.0
    return np.where(known, score, fallback)


def scores_for_all(scores: PairScores, n_models: int) -> FloatArray:
    """The scores in np.triu_indices(n_models, 1) order, missing pairs (unrated models) filled."""
    table = np.full((n_models, n_models), np.nan)
    table[scores.a, scores.b] = scores.score
    lo, hi = np.triu_indices(n_models, k=1)
    return fill_missing(table[lo, hi])


def draw_probabilities(score: FloatArray, weight_a: FloatArray, weight_b: FloatArray) -> FloatArray:
    """P(pair) proportional to score x weight_a x weight_b; all zeros when nothing can be drawn."""
    mass = np.clip(score, 0.0, None) * np.clip(weight_a, 0.0, None) * np.clip(weight_b, 0.0, None)
    total = float(mass.sum())
    return mass / total if total > 0 and np.isfinite(total) else np.zeros_like(mass)


def choose_pair(probabilities: FloatArray, rng: np.random.Generator) -> tuple[int, bool]:
    """(pair index, whether the pair's first model takes side A): one uniform for each, in that order."""
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    index = min(index, len(probabilities) - 1)
    return index, bool(rng.random() < 0.5)
