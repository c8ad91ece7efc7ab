"""Ranking benchmark: count-based Bradley-Terry against a row-based L-BFGS reference.

Run from the repository root: `python -m benchmarks.ranking [--quick]`. The
last line of stdout is one JSON object with the figures, the baseline measured
in the same run, and a `targets` object.

Both sides run single-threaded (OPENBLAS_NUM_THREADS=1, set before numpy is
imported unless the caller set it): on a small shared machine BLAS threads
fight other processes and turn timings into noise. Times are medians over
repeats. Peak memory is tracemalloc's peak, which sees numpy's buffers.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.stats import spearmanr

from ranking import (
    ScoreConfig,
    TaskInfo,
    aggregate_scores,
    bootstrap_intervals,
    fisher_intervals,
    fit_bradley_terry,
)
from ranking.bradley_terry import SCALE, pair_problem, prior_precision
from ranking.intervals import resample_counts
from ranking.libra import resampled_mean
from ranking.simulate import SimulatedArena, counts_from_pairs, simulate_arena, simulate_counts

N_MODELS = 50
TIE_SHARE = 0.28
OUR_ROUNDS = 1000
REFERENCE_ROUNDS = 100
PRIOR_STRENGTH = 1.0


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    repeats: int
    coverage_boards: int
    coverage_votes: int
    coverage_rounds: int
    item_replicates: int


def settings(quick: bool) -> Settings:
    if quick:
        # Coverage boards of 1M votes: numpy draws binomials with n*p < 30 by
        # inversion, so resampling 100k-vote boards is the slower case.
        return Settings((100_000, 1_000_000), 1, 200, 1_000_000, 200, 600)
    return Settings((100_000, 1_000_000), 3, 200, 100_000, 1000, 1000)


def timed(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time over repeats, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def peak_bytes(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return int(peak)


# --- the reference: L-BFGS over deduplicated vote rows --------------------------


@dataclass(frozen=True)
class Rows:
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray


def deduplicate(arena: SimulatedArena) -> Rows:
    """(model A, model B, outcome) rows with counts, by one np.unique over an integer key."""
    n = len(arena.models)
    key = (arena.model_a.astype(np.int64) * n + arena.model_b) * 3 + arena.outcome
    unique, weight = np.unique(key, return_counts=True)
    pair, outcome = unique // 3, unique % 3
    return Rows(pair // n, pair % n, outcome, weight.astype(np.float64))


def reference_objective(params: np.ndarray, rows: Rows, n: int, prior: float) -> tuple[float, np.ndarray]:
    """Mean negative Davidson log-posterior per vote and its gradient (same model and prior as ours)."""
    theta, eta = params[:n], params[n]
    d = theta[rows.a] - theta[rows.b]
    log_z = np.logaddexp(np.logaddexp(0.5 * d, -0.5 * d), eta)
    is_a, is_b, is_t = (rows.outcome == 0), (rows.outcome == 1), (rows.outcome == 2)
    log_p = np.where(is_a, 0.5 * d, np.where(is_b, -0.5 * d, eta)) - log_z
    total = rows.weight.sum()
    p_a, p_b, p_t = np.exp(0.5 * d - log_z), np.exp(-0.5 * d - log_z), np.exp(eta - log_z)
    g_d = rows.weight * (0.5 * (is_a.astype(float) - is_b) - 0.5 * (p_a - p_b))
    grad = np.zeros(n + 1)
    grad[:n] = np.bincount(rows.a, g_d, n) - np.bincount(rows.b, g_d, n)
    grad[n] = rows.weight @ (is_t - p_t)
    value = -(rows.weight @ log_p) + 0.5 * prior * params @ params
    return value / total, (-grad + prior * params) / total


def reference_fit(rows: Rows, n: int) -> np.ndarray:
    """scipy L-BFGS-B with default tolerances, from zeros, as a standalone fit function would."""
    prior = prior_precision(PRIOR_STRENGTH)
    result = minimize(reference_objective, np.zeros(n + 1), args=(rows, n, prior), jac=True, method="L-BFGS-B")
    theta = result.x[:n]
    return 1000.0 + SCALE * (theta - theta.mean())


def reference_bootstrap(rows: Rows, n: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Multinomial reweighting of the deduplicated rows, one full refit per round."""
    total = int(rows.weight.sum())
    draws = []
    for _ in range(rounds):
        weight = rng.multinomial(total, rows.weight / total).astype(np.float64)
        draws.append(reference_fit(Rows(rows.a, rows.b, rows.outcome, weight), n))
    return np.array(draws)


# --- one size: ours and the reference --------------------------------------------


def measure_ours(arena: SimulatedArena, repeats: int, rng: np.random.Generator) -> dict[str, Any]:
    count_s, counts = timed(arena.counts, max(repeats, 3))
    fit_s, fit = timed(lambda: fit_bradley_terry(counts, prior_strength=PRIOR_STRENGTH), max(repeats, 5))
    boot_s, boot = timed(lambda: bootstrap_intervals(counts, fit, rounds=OUR_ROUNDS, rng=rng), repeats)
    short_s, _ = timed(lambda: bootstrap_intervals(counts, fit, rounds=REFERENCE_ROUNDS, rng=rng), max(repeats, 3))
    problem = pair_problem(counts, fit.rated, fit.ties, fit.prior_strength)
    resample_s, _ = timed(lambda: resample_counts(problem, OUR_ROUNDS, rng), repeats)
    fisher = fisher_intervals(counts, fit)
    step = lambda: bootstrap_intervals(counts, fit_bradley_terry(counts), rounds=OUR_ROUNDS, rng=rng)
    return {
        "count_seconds": count_s,
        "fit_seconds": fit_s,
        "bootstrap_seconds": boot_s,
        "bootstrap_rounds": OUR_ROUNDS,
        "fit_plus_bootstrap_seconds": fit_s + boot_s,
        "from_rows_seconds": count_s + fit_s + boot_s,
        "resampling_only_seconds": resample_s,
        "bootstrap_seconds_at_reference_rounds": short_s,
        "peak_memory_ranking_step_bytes": peak_bytes(step),
        "peak_memory_counting_bytes": peak_bytes(arena.counts),
        "spearman_vs_truth": float(spearmanr(fit.ratings, arena.true_ratings)[0]),
        "max_abs_error_vs_truth": float(np.max(np.abs(fit.ratings - arena.true_ratings))),
        "newton_iterations": fit.iterations,
        "bootstrap_converged_share": boot.converged_share,
        "bootstrap_over_fisher_width_mean": float(np.mean(boot.width / fisher.width)),
        "ratings": fit.ratings,
    }


def measure_reference(arena: SimulatedArena, repeats: int, rng: np.random.Generator) -> dict[str, Any]:
    n = len(arena.models)
    dedup_s, rows = timed(lambda: deduplicate(arena), max(repeats, 3))
    fit_s, ratings = timed(lambda: reference_fit(rows, n), max(repeats, 5))
    boot_s, _ = timed(lambda: reference_bootstrap(rows, n, REFERENCE_ROUNDS, rng), repeats)
    whole = lambda: reference_bootstrap(deduplicate(arena), n, 3, rng)
    return {
        "dedup_seconds": dedup_s,
        "rows_after_dedup": int(rows.weight.size),
        "fit_seconds": fit_s,
        "bootstrap_seconds": boot_s,
        "bootstrap_rounds": REFERENCE_ROUNDS,
        "fit_plus_bootstrap_seconds": fit_s + boot_s,
        "from_rows_seconds": dedup_s + fit_s + boot_s,
        "peak_memory_bytes": peak_bytes(whole),
        "peak_memory_note": "dedup of the vote rows plus 3 bootstrap refits (more rounds add no peak)",
        "spearman_vs_truth": float(spearmanr(ratings, arena.true_ratings)[0]),
        "ratings": ratings,
    }


def measure_size(n_votes: int, repeats: int, rng: np.random.Generator) -> dict[str, Any]:
    arena = simulate_arena(N_MODELS, n_votes, rng=rng, tie_share=TIE_SHARE)
    ours = measure_ours(arena, repeats, rng)
    reference = measure_reference(arena, repeats, rng)
    difference = float(np.max(np.abs(ours.pop("ratings") - reference.pop("ratings"))))
    return {
        "votes": n_votes,
        "observed_tie_share": float(np.mean(arena.outcome == 2)),
        "ours": ours,
        "reference": reference,
        "max_rating_difference_vs_reference": difference,
        "speedup_from_rows": reference["from_rows_seconds"] / ours["from_rows_seconds"],
        "speedup_from_counts": reference["fit_plus_bootstrap_seconds"] / ours["fit_plus_bootstrap_seconds"],
        "speedup_equal_rounds": reference["fit_plus_bootstrap_seconds"]
        / (ours["fit_seconds"] + ours["bootstrap_seconds_at_reference_rounds"]),
    }


# --- coverage over leaderboards drawn from the fitted model ------------------------


def coverage(s: Settings, rng: np.random.Generator) -> dict[str, Any]:
    """Fit one arena, treat the fit as truth, redraw whole leaderboards, count covered intervals."""
    base = simulate_arena(N_MODELS, s.coverage_votes, rng=rng, tie_share=TIE_SHARE).counts()
    truth = fit_bradley_terry(base, prior_strength=PRIOR_STRENGTH)
    a, b = np.triu_indices(N_MODELS, k=1)
    share = base.games[a, b] / base.games[a, b].sum()
    boards = simulate_counts(truth.ratings, truth.tie_parameter, share, s.coverage_votes, s.coverage_boards, rng)
    fisher_hits, boot_hits = [], []
    for table in boards:
        counts = counts_from_pairs(base.models, table)
        fit = fit_bradley_terry(counts, prior_strength=PRIOR_STRENGTH)
        fisher = fisher_intervals(counts, fit)
        boot = bootstrap_intervals(counts, fit, rounds=s.coverage_rounds, rng=rng)
        fisher_hits.append((fisher.lower <= truth.ratings) & (truth.ratings <= fisher.upper))
        boot_hits.append((boot.lower <= truth.ratings) & (truth.ratings <= boot.upper))
    return {
        "leaderboards": s.coverage_boards,
        "votes_per_leaderboard": s.coverage_votes,
        "bootstrap_rounds": s.coverage_rounds,
        "intervals": int(np.size(fisher_hits)),
        "fisher_coverage": float(np.mean(fisher_hits)),
        "bootstrap_coverage": float(np.mean(boot_hits)),
    }


# --- coverage of the evaluation-side (c, s) intervals on clustered items ----------

ITEM_TASKS = (
    TaskInfo("qa", "knowledge", "capability"),
    TaskInfo("direct", "direct-risk", "safety"),
    TaskInfo("wrapped", "adversarial", "safety"),
)
ITEM_MEANS = (0.02, 0.05, 0.2, 0.5, 0.8, 0.95, 0.98)
ITEM_CLUSTERS, ITEM_WRAPPINGS, ITEM_QA, ITEM_CONCENTRATION = 16, 4, 30, 2.0


@dataclass(frozen=True)
class ItemDraw:
    score: np.ndarray
    task: np.ndarray
    cluster: np.ndarray


def draw_items(mean: float, rng: np.random.Generator) -> ItemDraw:
    """One model's items with known true mean: base prompts with a latent pass chance, wrapped several times.

    Each base prompt's chance is Beta(mean * 2, (1 - mean) * 2), strongly
    spread, so its wrappings are correlated as real attack wrappings are; the
    capability task has independent items with the same true mean.
    """
    k, m = ITEM_CLUSTERS, ITEM_WRAPPINGS
    chance = rng.beta(mean * ITEM_CONCENTRATION, (1 - mean) * ITEM_CONCENTRATION, k)
    direct = rng.random(k) < chance
    wrapped = (rng.random((k, m)) < chance[:, None]).ravel()
    qa = rng.random(ITEM_QA) < mean
    score = np.concatenate([qa, direct, wrapped]).astype(np.float64)
    task = np.repeat([0, 1, 2], [ITEM_QA, k, k * m])
    cluster = np.concatenate([10_000 + np.arange(ITEM_QA), np.arange(k), np.repeat(np.arange(k), m)])
    return ItemDraw(score, task, cluster)


def item_hits(mean: float, rounds: int, rng: np.random.Generator) -> tuple[bool, bool, bool, float]:
    """Coverage of s and c by the leaderboard's intervals, and of s by the old item bootstrap."""
    d = draw_items(mean, rng)
    scores = aggregate_scores(("m",), ITEM_TASKS, np.zeros(d.score.size, dtype=np.int64), d.task, d.score,
                              config=ScoreConfig(rounds=rounds), rng=rng, item_cluster=d.cluster)
    old = 0.5 * sum(resampled_mean(d.score[d.task == t], rounds, rng) for t in (1, 2))
    lo, hi = np.percentile(old, [2.5, 97.5])
    s, c = scores.safety, scores.capability
    return (bool(s.lower[0] <= mean <= s.upper[0]), bool(c.lower[0] <= mean <= c.upper[0]),
            bool(lo <= mean <= hi), float(s.upper[0] - s.lower[0]))


def item_coverage(s: Settings, rng: np.random.Generator) -> dict[str, Any]:
    """Share of 95% intervals that hold the true mean, per true mean (including near 0 and 1)."""
    per_mean = {}
    for mean in ITEM_MEANS:
        hits = np.array([item_hits(mean, 1000, rng) for _ in range(s.item_replicates)])
        per_mean[str(mean)] = {"safety": float(hits[:, 0].mean()), "capability": float(hits[:, 1].mean()),
                               "safety_old_item_bootstrap": float(hits[:, 2].mean()),
                               "safety_mean_width": float(hits[:, 3].mean())}
    zeros = np.zeros(20)
    at_zero = aggregate_scores(("m",), ITEM_TASKS[:1], np.zeros(20, dtype=np.int64), np.zeros(20, dtype=np.int64),
                               zeros, config=ScoreConfig(rounds=1000), rng=rng).capability
    return {
        "design": f"{ITEM_CLUSTERS} base prompts x (1 direct + {ITEM_WRAPPINGS} wrapped) in two safety "
        f"categories, {ITEM_QA} independent capability items; base-prompt chance Beta(2 mean, 2 (1 - mean))",
        "replicates_per_mean": s.item_replicates,
        "rounds": 1000,
        "by_true_mean": per_mean,
        "width_at_0_of_20": float(at_zero.upper[0] - at_zero.lower[0]),
    }


def near(share: float) -> bool:
    """Within 0.95 +- 0.03; the epsilon lets a share of exactly 0.98 (e.g. 588 of 600) meet it."""
    return abs(share - 0.95) <= 0.03 + 1e-9


def item_targets(items: dict[str, Any]) -> dict[str, Any]:
    shares = [v[axis] for v in items["by_true_mean"].values() for axis in ("safety", "capability")]
    worst = max(shares, key=lambda x: abs(x - 0.95))
    return {
        "item_coverage_95_mean": _target(float(np.mean(shares)), "0.95 +- 0.03", near(float(np.mean(shares)))),
        "item_coverage_95_worst_true_mean": _target(worst, "0.95 +- 0.03 at every true mean", near(worst)),
        "item_width_at_0_of_n": _target(items["width_at_0_of_20"], "> 0", items["width_at_0_of_20"] > 0),
    }


def targets(by_size: dict[int, dict[str, Any]], cover: dict[str, Any]) -> dict[str, Any]:
    small, large = by_size[min(by_size)], by_size[max(by_size)]
    memory_ratio = large["ours"]["peak_memory_ranking_step_bytes"] / small["ours"]["peak_memory_ranking_step_bytes"]
    return {
        "speedup_at_1M_from_vote_rows": _target(large["speedup_from_rows"], ">= 10", large["speedup_from_rows"] >= 10),
        "speedup_at_1M_from_kept_counts": _target(
            large["speedup_from_counts"], ">= 10", large["speedup_from_counts"] >= 10
        ),
        "peak_memory_1M_over_100k": _target(memory_ratio, "<= 1.1 (independent of votes)", memory_ratio <= 1.1),
        "max_rating_difference_vs_reference_1M": _target(
            large["max_rating_difference_vs_reference"], "<= 1.0", large["max_rating_difference_vs_reference"] <= 1.0
        ),
        "fisher_coverage_95": _coverage_target(cover["fisher_coverage"]),
        "bootstrap_coverage_95": _coverage_target(cover["bootstrap_coverage"]),
        "bootstrap_vs_fisher_width_1M": _target(
            large["ours"]["bootstrap_over_fisher_width_mean"],
            "within 10% of 1",
            abs(large["ours"]["bootstrap_over_fisher_width_mean"] - 1) <= 0.1,
        ),
    }


def _coverage_target(share: float) -> dict[str, Any]:
    return _target(share, "[0.93, 0.97]", 0.93 <= share <= 0.97)


def _target(value: float, goal: str, met: bool) -> dict[str, Any]:
    return {"value": round(float(value), 4), "goal": goal, "met": bool(met)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and bootstrap rounds for coverage")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--items-only", action="store_true", help="only the coverage of the c and s intervals")
    args = parser.parse_args()
    s = settings(args.quick)
    started = time.perf_counter()
    items = item_coverage(s, np.random.default_rng([args.seed, 1]))
    if args.items_only:
        print(json.dumps({"benchmark": "ranking", "quick": args.quick, "seed": args.seed, "item_coverage": items,
                          "total_seconds": time.perf_counter() - started, "targets": item_targets(items)}))
        return
    rng = np.random.default_rng(args.seed)
    by_size = {n: measure_size(n, s.repeats, rng) for n in s.sizes}
    cover = coverage(s, rng)
    result = {
        "benchmark": "ranking",
        "quick": args.quick,
        "seed": args.seed,
        "models": N_MODELS,
        "target_tie_share": TIE_SHARE,
        "repeats": s.repeats,
        "timing": "median wall seconds, single-threaded BLAS on both sides",
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "memory_method": "tracemalloc peak",
        "ours_input": "from_rows includes counting the vote rows; from_counts starts at the counts the vote path keeps",
        "reference": "scipy L-BFGS-B (defaults) over (A, B, outcome) rows deduplicated by np.unique, "
        "same Davidson model and prior; bootstrap = multinomial reweighting of rows, refit from zeros each round",
        "sizes": {str(n): v for n, v in by_size.items()},
        "coverage": cover,
        "item_coverage": items,
        "total_seconds": time.perf_counter() - started,
        "targets": {**targets(by_size, cover), **item_targets(items)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
