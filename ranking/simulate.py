"""Simulated arenas with known strengths, for tests, benchmarks and coverage checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ranking.bradley_terry import SCALE
from ranking.counts import A_WINS, B_WINS, TIE, FloatArray, IntArray, PairCounts
from ranking.likelihood import moments


@dataclass(frozen=True)
class SimulatedArena:
    """Vote rows drawn from a Davidson model with the given true ratings."""

    models: tuple[str, ...]
    true_ratings: FloatArray
    tie_parameter: float
    model_a: IntArray
    model_b: IntArray
    outcome: IntArray

    def counts(self) -> PairCounts:
        return PairCounts.from_votes(self.models, self.model_a, self.model_b, self.outcome)


def outcome_probabilities(rating_a: FloatArray, rating_b: FloatArray, nu: float) -> FloatArray:
    """(..., 3) probabilities of a wins, b wins, tie under the Davidson model."""
    d = (np.asarray(rating_a) - np.asarray(rating_b)) / SCALE
    pa, pb, pt, _ = moments(d, np.log(nu) if nu > 0 else -np.inf)
    return np.stack([pa, pb, pt], axis=-1)


def tie_parameter_for_share(ratings: FloatArray, share: float) -> float:
    """nu giving `share` ties on average over uniformly drawn pairs."""
    a, b = np.triu_indices(len(ratings), k=1)

    def gap(log_nu: float) -> float:
        return float(outcome_probabilities(ratings[a], ratings[b], np.exp(log_nu))[:, 2].mean() - share)

    return float(np.exp(brentq(gap, -20.0, 20.0)))


def random_pairs(n_models: int, n_votes: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Uniform ordered pairs of distinct models."""
    a = rng.integers(0, n_models, n_votes)
    b = rng.integers(0, n_models - 1, n_votes)
    return a, b + (b >= a)


def draw_outcomes(probabilities: FloatArray, rng: np.random.Generator) -> IntArray:
    u = rng.random(probabilities.shape[0])
    outcome = np.full(len(u), TIE, dtype=np.int64)
    outcome[u < probabilities[:, 0] + probabilities[:, 1]] = B_WINS
    outcome[u < probabilities[:, 0]] = A_WINS
    return outcome


def simulate_arena(
    n_models: int,
    n_votes: int,
    *,
    rng: np.random.Generator,
    rating_sd: float = 120.0,
    tie_share: float = 0.28,
    true_ratings: FloatArray | None = None,
) -> SimulatedArena:
    """Votes between uniformly drawn pairs; ratings centred on 1000."""
    if true_ratings is None:
        true_ratings = rng.normal(0.0, rating_sd, n_models)
        true_ratings = 1000.0 + true_ratings - true_ratings.mean()
    nu = tie_parameter_for_share(true_ratings, tie_share)
    a, b = random_pairs(n_models, n_votes, rng)
    outcome = draw_outcomes(outcome_probabilities(true_ratings[a], true_ratings[b], nu), rng)
    models = tuple(f"model-{i:03d}" for i in range(n_models))
    return SimulatedArena(models, np.asarray(true_ratings, dtype=np.float64), nu, a, b, outcome)


def simulate_counts(
    true_ratings: FloatArray,
    nu: float,
    pair_share: FloatArray,
    n_votes: int,
    rounds: int,
    rng: np.random.Generator,
) -> FloatArray:
    """`rounds` whole leaderboards as counts (rounds, pairs, 3) without vote rows.

    pair_share[k] is the chance a vote goes to the k-th pair of
    np.triu_indices(n, 1); one multinomial draw equals drawing and counting rows.
    """
    a, b = np.triu_indices(len(true_ratings), k=1)
    cell = pair_share[:, None] * outcome_probabilities(true_ratings[a], true_ratings[b], nu)
    draws = rng.multinomial(n_votes, cell.ravel() / cell.sum(), size=rounds)
    return draws.reshape(rounds, len(a), 3).astype(np.float64)


@dataclass(frozen=True)
class StyledArena:
    """Votes whose outcome also depends on the answers' style differences."""

    arena: SimulatedArena
    style_a: FloatArray  # (votes, 4): tokens, headers, list items, bold spans
    style_b: FloatArray
    coefficients: FloatArray


def _answer_styles(
    verbosity: FloatArray, markdown: FloatArray, model: IntArray, rng: np.random.Generator
) -> FloatArray:
    length = np.exp(rng.normal(verbosity[model], 0.3))
    counts = rng.poisson(markdown[model][:, None] * np.array([1.0, 2.0, 1.5]))
    return np.column_stack([length, counts]).astype(np.float64)


def simulate_styled_arena(
    n_models: int,
    n_votes: int,
    *,
    rng: np.random.Generator,
    coefficients: tuple[float, ...] = (1.0, 0.3, 0.2, 0.2),
    tie_share: float = 0.28,
    rating_sd: float = 120.0,
) -> StyledArena:
    """Models differ in verbosity and markdown use; voters reward both a little."""
    plain = simulate_arena(n_models, 2, rng=rng, rating_sd=rating_sd, tie_share=tie_share)
    verbosity = rng.normal(6.0, 0.5, n_models)
    markdown = rng.uniform(0.0, 3.0, n_models)
    a, b = random_pairs(n_models, n_votes, rng)
    style_a = _answer_styles(verbosity, markdown, a, rng)
    style_b = _answer_styles(verbosity, markdown, b, rng)
    total = style_a + style_b
    z = np.divide(style_a - style_b, total, out=np.zeros_like(total), where=total > 0)
    d = (plain.true_ratings[a] - plain.true_ratings[b]) / SCALE + z @ np.asarray(coefficients)
    pa, pb, pt, _ = moments(d, np.log(plain.tie_parameter))
    outcome = draw_outcomes(np.stack([pa, pb, pt], axis=1), rng)
    arena = SimulatedArena(plain.models, plain.true_ratings, plain.tie_parameter, a, b, outcome)
    return StyledArena(arena, style_a, style_b, np.asarray(coefficients, dtype=np.float64))


def counts_from_pairs(models: tuple[str, ...], table: FloatArray) -> PairCounts:
    """PairCounts from a (pairs, 3) table in np.triu_indices order, as simulate_counts returns."""
    a, b = np.triu_indices(len(models), k=1)
    wins, ties = np.zeros((len(models), len(models))), np.zeros((len(models), len(models)))
    wins[a, b], wins[b, a], ties[a, b] = table[:, 0], table[:, 1], table[:, 2]
    return PairCounts(models, wins, ties + ties.T)
