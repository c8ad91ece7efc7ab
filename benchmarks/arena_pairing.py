"""Pairing efficiency by simulation (issue 11, item 5), for `benchmarks.arena`.

Votes needed until every model's 95% Fisher interval is at most TARGET_WIDTH points wide, for:
- uniform pairs (the baseline);
- active: the service's own policy (`ranking.active`, as `arena.pairing` uses it): at each refresh the
  pair scores are computed from the current fit and the next votes are drawn with probability
  proportional to the score;
- greedy: a deterministic reference design, the highest-gain vote one at a time with rank-one updates.
A lower bound is reported too: the best any pair allocation could do if the true ratings were known
(minimise the largest rating variance over allocations; no estimation noise).
Each run's seeds are recorded, so a run replays exactly.

Run: `python -m benchmarks.arena_pairing [--quick]`; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from arena.pairing import boost_of
from ranking import fisher_intervals, fit_bradley_terry, rating_covariance
from ranking.active import (
    PairScores,
    choose_pair,
    draw_probabilities,
    greedy_plan,
    pair_scores,
    scores_for_all,
    vote_information,
)
from ranking.counts import A_WINS, B_WINS, TIE, IntArray, PairCounts
from ranking.simulate import draw_outcomes, outcome_probabilities, random_pairs, tie_parameter_for_share

TARGET_WIDTH = 50.0
TRUE_RATING_SD = 120.0
TIE_SHARE = 0.28
SCHEMES = ("uniform", "active", "greedy")
__all__ = ["SimPlan", "active_pairs", "measure", "pairing_efficiency", "vote_information"]


@dataclass(frozen=True)
class SimPlan:
    models: int
    repeats: int
    refresh: int  # votes between refits, as snapshots would refresh the fit
    max_votes: int


def active_pairs(covariance: np.ndarray, ratings: np.ndarray, tie_parameter: float, k: int) -> tuple[IntArray, ...]:
    """The greedy reference design: k pairs, highest gain first, rank-one updates in between."""
    a, b = np.triu_indices(len(ratings), k=1)
    chosen = greedy_plan(covariance, vote_information(ratings, tie_parameter, a, b), a, b, k)
    return a[chosen], b[chosen]


def service_pairs(counts: PairCounts | None, fit: Any, n: int, k: int,
                  rng: np.random.Generator) -> tuple[IntArray, ...]:
    """k votes drawn as the service draws them (arena.pairing): P(pair) proportional to its score (pairs
    with an unrated model get the top score) times both models' new-model boosts; side order random."""
    rated = fit is not None and int(fit.rated.sum()) >= 2
    empty = np.zeros(0, dtype=np.int64)
    scores = pair_scores(counts, fit) if rated else PairScores(tuple(range(n)), empty, empty, np.zeros(0))
    votes = counts.games.sum(axis=1) if counts is not None else np.zeros(n)
    boost = np.array([boost_of(int(v), None) for v in votes])
    lo, hi = np.triu_indices(n, k=1)
    p = draw_probabilities(scores_for_all(scores, n), boost[lo], boost[hi])
    a, b = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64)
    for i in range(k):
        pair, first_is_a = choose_pair(p, rng)
        a[i], b[i] = (lo[pair], hi[pair]) if first_is_a else (hi[pair], lo[pair])
    return a, b


def next_pairs(scheme: str, counts: PairCounts | None, fit: Any, n: int, k: int,
               rng: np.random.Generator) -> tuple[IntArray, ...]:
    if scheme == "active":
        return service_pairs(counts, fit, n, k, rng)
    if scheme == "uniform" or fit is None or not fit.rated.all():  # greedy starts with a uniform batch
        return random_pairs(n, k, rng)
    return active_pairs(rating_covariance(counts, fit), fit.ratings, fit.tie_parameter, k)


def votes_to_width(true_ratings: np.ndarray, nu: float, scheme: str, p: SimPlan, rng: np.random.Generator,
                   start: tuple[np.ndarray, np.ndarray] | None = None) -> int | None:
    """Votes until every model's 95% Fisher interval is <= TARGET_WIDTH, refitting every refresh
    votes (as a snapshot would refresh the fit); None if max_votes is not enough. `start` holds
    (wins, ties) already counted (a board that a new model joins)."""
    found = run_to_width(true_ratings, nu, scheme, p, rng, start)
    return found[0] if found else None


def run_to_width(true_ratings: np.ndarray, nu: float, scheme: str, p: SimPlan, rng: np.random.Generator,
                 start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[int, PairCounts] | None:
    n = len(true_ratings)
    models = tuple(f"model-{i:02d}" for i in range(n))
    wins, ties = (start[0].copy(), start[1].copy()) if start else (np.zeros((n, n)), np.zeros((n, n)))
    counts = PairCounts(models, wins.copy(), ties.copy()) if start else None
    fit, total = (fit_bradley_terry(counts) if counts is not None else None), 0
    while total < p.max_votes:
        a, b = next_pairs(scheme, counts, fit, n, p.refresh, rng)
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
            return total, counts
    return None


def join_run(truth: np.ndarray, nu: float, p: SimPlan, seed: list[int]) -> dict[str, Any]:
    """A new model joins a board whose other models already have 50-point intervals (reached with
    uniform pairs): the votes until every interval, the new model's too, is back within 50 points."""
    n = len(truth)
    settled = run_to_width(truth[:-1], nu, "uniform", p, np.random.default_rng([*seed, 9]))
    if settled is None:
        return {"seed": seed, "uniform_votes": None, "active_votes": None}
    wins, ties = np.zeros((n, n)), np.zeros((n, n))
    wins[:-1, :-1], ties[:-1, :-1] = settled[1].wins, settled[1].ties
    found: dict[str, Any] = {"seed": seed, "board_votes": settled[0]}
    for stream, scheme in enumerate(("uniform", "active")):
        found[f"{scheme}_votes"] = votes_to_width(truth, nu, scheme, p, np.random.default_rng([*seed, 10 + stream]),
                                                  (wins, ties))
    return found


def _centred_covariance(share: np.ndarray, info: np.ndarray, a: IntArray, b: IntArray, n: int) -> np.ndarray:
    laplacian = np.zeros((n, n))
    w = share * info
    np.add.at(laplacian, (a, a), w)
    np.add.at(laplacian, (b, b), w)
    np.add.at(laplacian, (a, b), -w)
    np.add.at(laplacian, (b, a), -w)
    return np.linalg.pinv(laplacian)  # the pseudo-inverse is the covariance of mean-centred ratings


def best_allocation_ratio(true_ratings: np.ndarray, nu: float) -> float:
    """Largest variance under the best allocation over that under uniform (= the votes ratio any
    policy could at best reach, knowing the true ratings); a smoothed max, tightened in three steps."""
    n = len(true_ratings)
    a, b = np.triu_indices(n, k=1)
    info = vote_information(true_ratings, nu, a, b)
    uniform = np.max(np.diag(_centred_covariance(np.full(len(a), 1.0 / len(a)), info, a, b, n)))

    def share(z: np.ndarray) -> np.ndarray:
        x = np.exp(z - z.max())
        return x / x.sum()

    def smooth_max(z: np.ndarray, k: float) -> float:
        v = np.diag(_centred_covariance(share(z), info, a, b, n)) / uniform
        return float(np.log(np.sum(np.exp(k * v))) / k)

    z = np.zeros(len(a))
    for k in (20.0, 100.0, 400.0):
        z = minimize(smooth_max, z, args=(k,), method="L-BFGS-B").x
    return float(np.max(np.diag(_centred_covariance(share(z), info, a, b, n))) / uniform)


def _ratio(runs: list[dict[str, Any]], scheme: str) -> float | None:
    done = [r for r in runs if r["uniform_votes"] and r[f"{scheme}_votes"]]
    return sum(r[f"{scheme}_votes"] for r in done) / sum(r["uniform_votes"] for r in done) if done else None


def one_run(p: SimPlan, seed: int, repeat: int, bound: bool, join: bool) -> dict[str, Any]:
    draw = np.random.default_rng([seed, 5, repeat])
    truth = draw.normal(0.0, TRUE_RATING_SD, p.models)
    truth = 1000.0 + truth - truth.mean()
    nu = tie_parameter_for_share(truth, TIE_SHARE)
    run: dict[str, Any] = {"seed": [seed, 5, repeat]}
    for stream, scheme in enumerate(SCHEMES):
        run[f"{scheme}_votes"] = votes_to_width(truth, nu, scheme, p,
                                                np.random.default_rng([seed, 5, repeat, stream]))
    run["best_allocation_ratio"] = round(best_allocation_ratio(truth, nu), 4) if bound else None
    run["new_model_joins"] = join_run(truth, nu, p, [seed, 6, repeat]) if join else None
    return run


def pairing_efficiency(p: SimPlan, seed: int, bound: bool = False, join: bool = False) -> dict[str, Any]:
    runs = [one_run(p, seed, repeat, bound, join) for repeat in range(p.repeats)]
    joins = [r["new_model_joins"] for r in runs if r["new_model_joins"]]
    bounds = [r["best_allocation_ratio"] for r in runs if r["best_allocation_ratio"] is not None]
    return {
        "scheme": "active = the service's policy (ranking.active): pair scores from the current Bradley-Terry "
                  "fit, votes drawn with probability proportional to the score, refit every refresh_votes; "
                  "greedy = deterministic highest-gain design with rank-one updates; first batch uniform",
        "models": p.models, "true_rating_sd": TRUE_RATING_SD, "tie_share": TIE_SHARE, "goal_width": TARGET_WIDTH,
        "refresh_votes": p.refresh, "max_votes": p.max_votes, "runs": runs,
        "completed_runs": sum(1 for r in runs if r["uniform_votes"] and r["active_votes"]),
        "active_over_uniform_total_votes": _ratio(runs, "active"),
        "greedy_over_uniform_total_votes": _ratio(runs, "greedy"),
        "best_allocation_ratio_mean": float(np.mean(bounds)) if bounds else None,
        "new_model_joins_active_over_uniform_votes": _ratio(joins, "active") if joins else None,
    }


def plan(quick: bool) -> SimPlan:
    return SimPlan(8, 3, 200, 60_000) if quick else SimPlan(12, 10, 100, 200_000)


def measure(quick: bool, seed: int = 20261202) -> dict[str, Any]:
    started = time.perf_counter()
    found = pairing_efficiency(plan(quick), seed, bound=True, join=True)
    ratio = found["active_over_uniform_total_votes"]
    return {
        "figures": {**found, "seconds": round(time.perf_counter() - started, 2)},
        "baseline": {"uniform_votes": [r["uniform_votes"] for r in found["runs"]]},
        "targets": {"pairing_active_over_uniform_votes": {
            "value": ratio, "goal": "<= 0.6", "met": ratio is not None and ratio <= 0.6}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 models, 3 seeds (under a minute)")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    print(json.dumps(measure(args.quick, args.seed)))


if __name__ == "__main__":
    main()
