"""Pairing efficiency by simulation (issue 11, item 5), for `benchmarks.arena`.

Votes needed until every model's 95% Fisher interval is at most TARGET_WIDTH points wide: uniform
pairs against a prototype active scheme that lives here only (no service code uses it yet). Each run's
seeds are recorded, so a run replays exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ranking import fisher_intervals, fit_bradley_terry, rating_covariance
from ranking.bradley_terry import SCALE
from ranking.counts import A_WINS, B_WINS, TIE, PairCounts
from ranking.likelihood import moments
from ranking.simulate import draw_outcomes, outcome_probabilities, random_pairs, tie_parameter_for_share

TARGET_WIDTH = 50.0
VARIANCE_POWER = 8
TRUE_RATING_SD = 120.0
TIE_SHARE = 0.28


@dataclass(frozen=True)
class SimPlan:
    models: int
    repeats: int
    refresh: int  # votes between refits, as snapshots would refresh the fit
    max_votes: int


def vote_information(ratings: np.ndarray, tie_parameter: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fisher information one Davidson vote carries about r_a - r_b, in rating points^-2."""
    eta = np.log(tie_parameter) if tie_parameter > 0 else -np.inf
    pa, pb, _, _ = moments((ratings[a] - ratings[b]) / SCALE, eta)
    return 0.25 * (pa + pb - (pa - pb) ** 2) / SCALE**2


def active_pairs(covariance: np.ndarray, ratings: np.ndarray, tie_parameter: float, k: int) -> tuple[np.ndarray, ...]:
    """k pairs chosen greedily, one vote at a time, by the expected drop of a weighted sum of rating
    variances; the covariance gets each chosen vote's rank-one update before the next. Weights are
    (var / max var) ** VARIANCE_POWER: the widest interval decides when the board is done, and a high
    power leans to min-max (powers 0, 1, 4, 8, 16 gave 0.90, 0.88, 0.84, 0.82, 0.81 of the uniform
    votes at 12 models, 4 seeds)."""
    n = len(ratings)
    a, b = np.triu_indices(n, k=1)
    info = vote_information(ratings, tie_parameter, a, b)
    cov = covariance.copy()
    chosen = np.empty(k, dtype=np.int64)
    for step in range(k):
        u = cov[:, a] - cov[:, b]  # cov @ (e_a - e_b) for every pair, (n, pairs)
        q = u[a, np.arange(len(a))] - u[b, np.arange(len(a))]
        weight = (np.diag(cov) / np.max(np.diag(cov))) ** VARIANCE_POWER
        gain = info * (weight @ u**2) / (1 + info * q)
        best = int(np.argmax(gain))
        chosen[step] = best
        cov -= info[best] * np.outer(u[:, best], u[:, best]) / (1 + info[best] * q[best])
    return a[chosen], b[chosen]


def votes_to_width(true_ratings: np.ndarray, nu: float, active: bool, p: SimPlan,
                   rng: np.random.Generator) -> int | None:
    """Votes until every model's 95% Fisher interval is <= TARGET_WIDTH, refitting every refresh
    votes (as a snapshot would refresh the fit); None if max_votes is not enough."""
    n = len(true_ratings)
    models = tuple(f"model-{i:02d}" for i in range(n))
    wins, ties = np.zeros((n, n)), np.zeros((n, n))
    fit, counts, total = None, None, 0
    while total < p.max_votes:
        if active and fit is not None and fit.rated.all():
            a, b = active_pairs(rating_covariance(counts, fit), fit.ratings, fit.tie_parameter, p.refresh)
        else:  # the first batch (no fit yet) is uniform for both schemes
            a, b = random_pairs(n, p.refresh, rng)
        outcome = draw_outcomes(outcome_probabilities(true_ratings[a], true_ratings[b], nu), rng)
        won, lost, tied = outcome == A_WINS, outcome == B_WINS, outcome == TIE
        np.add.at(wins, (a[won], b[won]), 1)
        np.add.at(wins, (b[lost], a[lost]), 1)
        np.add.at(ties, (a[tied], b[tied]), 1)
        np.add.at(ties, (b[tied], a[tied]), 1)  # PairCounts keeps ties symmetric
        total += p.refresh
        counts = PairCounts(models, wins.copy(), ties.copy())
        fit = fit_bradley_terry(counts)
        width = fisher_intervals(counts, fit)
        if fit.rated.all() and np.max(width.upper - width.lower) <= TARGET_WIDTH:
            return total
    return None


def pairing_efficiency(p: SimPlan, seed: int) -> dict[str, Any]:
    runs = []
    for repeat in range(p.repeats):
        draw = np.random.default_rng([seed, 5, repeat])
        truth = draw.normal(0.0, TRUE_RATING_SD, p.models)
        truth = 1000.0 + truth - truth.mean()
        nu = tie_parameter_for_share(truth, TIE_SHARE)
        uniform = votes_to_width(truth, nu, False, p, np.random.default_rng([seed, 5, repeat, 0]))
        active = votes_to_width(truth, nu, True, p, np.random.default_rng([seed, 5, repeat, 1]))
        runs.append({"seed": [seed, 5, repeat], "uniform_votes": uniform, "active_votes": active})
    done = [r for r in runs if r["uniform_votes"] and r["active_votes"]]
    ratio = (sum(r["active_votes"] for r in done) / sum(r["uniform_votes"] for r in done)) if done else None
    return {
        "scheme": "prototype in this benchmark only: greedy rank-one covariance updates on the current "
                  "Bradley-Terry fit (variance-weighted A-optimal), refit every refresh_votes; first batch uniform",
        "models": p.models, "true_rating_sd": TRUE_RATING_SD, "tie_share": TIE_SHARE, "goal_width": TARGET_WIDTH,
        "variance_power": VARIANCE_POWER, "refresh_votes": p.refresh, "max_votes": p.max_votes, "runs": runs,
        "completed_runs": len(done), "active_over_uniform_total_votes": ratio,
    }
