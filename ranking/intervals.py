"""Confidence intervals for ratings: count-level bootstrap and observed Fisher information."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from ranking.bradley_terry import (
    BTResult,
    anchor_position,
    fit_bradley_terry,
    pair_problem,
    rating_transform,
    ratings_from_params,
)
from ranking.counts import FloatArray, PairCounts
from ranking.likelihood import BATCH_ELEMENTS, Problem, derivatives, empirical_meat, solve_batch


@dataclass(frozen=True)
class Intervals:
    """Two-sided intervals per model; NaN for unrated models.

    `draws` (rounds, models) holds the bootstrap ratings, kept so that callers
    can propagate them (blending, rank statistics); None for closed-form ones.
    """

    models: tuple[str, ...]
    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    level: float
    method: str
    draws: FloatArray | None = None
    converged_share: float = 1.0

    @property
    def width(self) -> FloatArray:
        return self.upper - self.lower


def normal_intervals(
    models: tuple[str, ...], estimate: FloatArray, covariance: FloatArray, level: float = 0.95,
    method: str = "fisher",
) -> Intervals:
    """Normal intervals estimate +- z * standard error, the errors read off a covariance's diagonal.

    NaN estimates (unrated models) give NaN bounds; a tiny negative variance from rounding counts as 0.
    """
    se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    half = norm.ppf(0.5 + 0.5 * level) * se
    return Intervals(models, estimate, estimate - half, estimate + half, level, method)


def _full(fit: BTResult, values: FloatArray) -> FloatArray:
    """Scatter per-rated-model columns into all models, NaN elsewhere."""
    out = np.full(values.shape[:-1] + (len(fit.models),), np.nan)
    out[..., fit.rated] = values
    return out


def resample_counts(problem: Problem, rounds: int, rng: np.random.Generator) -> FloatArray:
    """Multinomial resampling of the votes, done on the (pair, outcome) cells.

    Drawing N votes with replacement and recounting them has exactly this
    distribution, at a cost that depends on the number of cells only.
    """
    outcomes = problem.cells.outcomes
    total = round(float(outcomes.sum()))
    draws = rng.multinomial(total, outcomes.ravel() / outcomes.sum(), size=rounds)
    return draws.reshape((rounds,) + outcomes.shape).astype(np.float64)


def bootstrap_params(
    problem: Problem, phi: FloatArray, rounds: int, rng: np.random.Generator
) -> tuple[FloatArray, float]:
    """Refit `rounds` resamples in chunks so memory does not grow with rounds."""
    chunk = max(1, BATCH_ELEMENTS // max(3 * len(problem.cells.a), 1))
    phis, converged = [], []
    for lo in range(0, rounds, chunk):
        samples = resample_counts(problem, min(chunk, rounds - lo), rng)
        part, ok = solve_batch(problem, samples, phi)
        phis.append(part)
        converged.append(ok)
    return np.concatenate(phis), float(np.concatenate(converged).mean())


def bootstrap_intervals(
    counts: PairCounts,
    fit: BTResult | None = None,
    *,
    rounds: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> Intervals:
    """Percentile intervals from refitting `rounds` multinomial resamples of the counts.

    The refits keep the fit's settings (ties, prior, anchor, rated component);
    without a fit, the default fit of `counts` is used.
    """
    fit = fit_bradley_terry(counts) if fit is None else fit
    problem = pair_problem(counts, fit.rated, fit.ties, fit.prior_strength)
    if not fit.rated.any():
        nothing = np.full(len(fit.models), np.nan)
        return Intervals(fit.models, fit.ratings, nothing, nothing, level, "bootstrap", None, 1.0)
    phis, converged = bootstrap_params(problem, fit.params, rounds, rng)
    draws = _full(fit, ratings_from_params(fit, phis))
    tail = 50.0 * (1.0 - level)
    lower, upper = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    return Intervals(fit.models, fit.ratings, lower, upper, level, "bootstrap", draws, converged)


def params_covariance(problem: Problem, phi: FloatArray) -> FloatArray:
    """Inverse observed information; a sandwich for the half-win model.

    For the Davidson model the likelihood is a proper one and the inverse
    information is the asymptotic covariance. The half-win rule is a
    quasi-likelihood: it treats a tie as a coin flip, overstating its variance,
    so the observed spread of outcomes is put back in (the "meat").
    """
    _, info = derivatives(problem, phi)
    cov = np.linalg.inv(info)
    if not problem.davidson:
        cov = cov @ empirical_meat(problem) @ cov
    return cov


def rating_covariance(counts: PairCounts, fit: BTResult) -> FloatArray:
    """Covariance of the rated models' ratings (Elo-like points squared)."""
    problem = pair_problem(counts, fit.rated, fit.ties, fit.prior_strength)
    n_rated = problem.n_models
    transform = rating_transform(n_rated, anchor_position(fit))
    cov = params_covariance(problem, fit.params)[:n_rated, :n_rated]
    return transform @ cov @ transform.T


def fisher_intervals(counts: PairCounts, fit: BTResult, level: float = 0.95) -> Intervals:
    """Normal intervals rating +- z * standard error from the observed information."""
    covariance = np.full((len(fit.models), len(fit.models)), np.nan)
    covariance[np.ix_(fit.rated, fit.rated)] = rating_covariance(counts, fit)
    return normal_intervals(fit.models, fit.ratings, covariance, level)
