"""Closed-form intervals for shares and bounded means, cheap enough to compute inside a request.

The leaderboard's own intervals come from a cluster-level Bayesian bootstrap in a job
(`ranking.libra`); a model page shows finer cells (one task, one opponent) and needs an answer in
microseconds, so it uses the closed forms that the bootstrap reduces to for independent items:

- a task mean of scores in [0, 1]: the Jeffreys posterior Beta(k + 1/2, n - k + 1/2), with k the sum
  of the item scores (for binary items exactly what `posterior_task_means` draws; graded scores enter
  with their value). It keeps width at 0/n and n/n;
- a category (the mean of its task means): percentiles of the mean of independent draws from each
  task's posterior (a small Monte Carlo with an explicit generator);
- a win rate (decisive votes won): the Wilson score interval.

Items are taken as independent here: the attack wrappings of one request (one cluster for the
leaderboard) make an attack task's interval somewhat narrower than the leaderboard's would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, norm

JEFFREYS = "jeffreys-beta"
MEAN_OF_JEFFREYS = "jeffreys-beta-mc"
WILSON = "wilson"


@dataclass(frozen=True)
class Share:
    """A share with its equal-tailed interval; None everywhere when nothing was counted."""

    value: float | None
    lower: float | None
    upper: float | None
    n: int


def jeffreys_interval(total: float, n: int, level: float = 0.95) -> Share:
    """Mean `total / n` of n scores in [0, 1], with the Jeffreys Beta(total + 1/2, n - total + 1/2) interval."""
    if n <= 0:
        return Share(None, None, None, 0)
    a, b = total + 0.5, n - total + 0.5
    tail = (1.0 - level) / 2.0
    lower, upper = (float(x) for x in beta.ppf([tail, 1.0 - tail], a, b))
    # Brown, Cai & DasGupta's boundary rule: at 0/n (n/n) the interval reaches 0 (1), so it holds the mean.
    return Share(total / n, 0.0 if total <= 0 else lower, 1.0 if total >= n else upper, n)


def mean_of_jeffreys(
    cells: Sequence[tuple[float, int]], rng: np.random.Generator, rounds: int = 2000, level: float = 0.95
) -> Share:
    """The mean of several task means, each (total, n); its interval from `rounds` joint posterior draws."""
    kept = [(total, n) for total, n in cells if n > 0]
    if not kept:
        return Share(None, None, None, 0)
    totals = np.array([t for t, _ in kept], dtype=np.float64)
    counts = np.array([n for _, n in kept], dtype=np.float64)
    draws = rng.beta(totals + 0.5, counts - totals + 0.5, size=(rounds, len(kept))).mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    lower, upper = np.percentile(draws, [tail, 100.0 - tail])
    mean = float(np.mean(totals / counts))
    # As for one task: an all-0 (all-1) category reaches 0 (1) rather than leave out its own mean.
    return Share(mean, min(float(lower), mean), max(float(upper), mean), int(counts.sum()))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Share:
    """Share `successes / n` with the Wilson score interval (sound at 0/n and n/n, unlike the normal one)."""
    if n <= 0:
        return Share(None, None, None, 0)
    z = float(norm.ppf(0.5 + level / 2.0))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # The interval holds p by construction; the clamp to p removes float rounding (0/n gave 5.6e-17 > 0).
    return Share(p, float(max(0.0, min(p, centre - half))), float(min(1.0, max(p, centre + half))), n)
