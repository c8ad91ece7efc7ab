"""Style control: ratings with answer length and formatting as joint covariates.

Per vote, the covariate of a feature is the normalised difference
(a - b) / (a + b) in [-1, 1] (0 when both are 0). Each difference is binned
with fixed edges; votes of one model pair in one joint bin form one cell,
whose covariate is the mean difference of its votes. The fit then reads at
most pairs x bins cells, a bound that does not grow with the number of votes;
the vote path can keep the per-cell counts and covariate sums up to date.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ranking.bradley_terry import TieModel, prior_precision, rated_mask, rating_transform
from ranking.counts import A_WINS, B_WINS, TIE, BoolArray, FloatArray, IntArray, PairCounts, components
from ranking.intervals import Intervals, normal_intervals, params_covariance
from ranking.likelihood import Cells, Problem, newton, start

STYLE_FEATURES = ("length", "headers", "lists", "bold")
# Length gets five bins, each formatting count three (fewer, same, more):
# 5 * 3^3 = 135 joint bins per pair.
DEFAULT_EDGES = ((-0.35, -0.1, 0.1, 0.35), (-0.2, 0.2), (-0.2, 0.2), (-0.2, 0.2))


@dataclass(frozen=True)
class StyleConfig:
    features: tuple[str, ...] = STYLE_FEATURES
    edges: tuple[tuple[float, ...], ...] = DEFAULT_EDGES


@dataclass(frozen=True)
class StyleCounts:
    """Cells with a < b: counts (wins of a, wins of b, ties) and mean covariates z (a minus b)."""

    models: tuple[str, ...]
    features: tuple[str, ...]
    a: IntArray
    b: IntArray
    z: FloatArray
    outcomes: FloatArray

    def __post_init__(self) -> None:
        cells = len(self.a)
        if len(self.b) != cells or self.outcomes.shape != (cells, 3):
            raise ValueError("a, b and outcomes (cells, 3) must describe the same cells")
        if self.z.shape != (cells, len(self.features)):
            raise ValueError("z must be (cells, features)")

    @classmethod
    def from_votes(
        cls,
        models: Sequence[str],
        model_a: IntArray,
        model_b: IntArray,
        outcome: IntArray,
        style_a: FloatArray,
        style_b: FloatArray,
        config: StyleConfig = StyleConfig(),
    ) -> StyleCounts:
        """Bin vote rows; style_a / style_b are (votes, features) raw counts (tokens, headers...)."""
        a, b, o = np.asarray(model_a), np.asarray(model_b), np.asarray(outcome)
        z = style_difference(np.asarray(style_a, float), np.asarray(style_b, float))
        flip = a > b
        a, b = np.where(flip, b, a), np.where(flip, a, b)
        z[flip] = -z[flip]
        o = np.where(flip & (o == A_WINS), B_WINS, np.where(flip & (o == B_WINS), A_WINS, o))
        key = (a * len(models) + b) * joint_bins(config) + joint_bin(z, config)
        cells, inverse = np.unique(key, return_inverse=True)
        games = np.bincount(inverse, minlength=cells.size)
        outcomes = np.stack([np.bincount(inverse, o == k, cells.size) for k in (A_WINS, B_WINS, TIE)], axis=1)
        zsum = np.stack([np.bincount(inverse, col, cells.size) for col in z.T], axis=1)
        pair = cells // joint_bins(config)
        ia, ib = pair // len(models), pair % len(models)
        return cls(tuple(models), config.features, ia, ib, zsum / games[:, None], outcomes)

    @classmethod
    def from_cells(
        cls,
        models: Sequence[str],
        lo: IntArray,
        hi: IntArray,
        bins: IntArray,
        outcomes: FloatArray,
        zsum: FloatArray,
        config: StyleConfig = StyleConfig(),
    ) -> StyleCounts:
        """Stored cells (see `vote_cell`): model indices lo/hi, the joint bin, outcomes (cells, 3) as
        (lo wins, hi wins, ties) and covariate sums (cells, features), low model minus high model.

        Equal to `from_votes` on the same votes when lo < hi in `models` order (the cells' bins were
        taken in that orientation; the edges are not symmetric, so a vote exactly on an edge could
        fall in the mirrored neighbour otherwise). Cells are sorted like `from_votes` sorts them.
        """
        lo, hi, bins = (np.asarray(x, dtype=np.int64) for x in (lo, hi, bins))
        outcomes, zsum = np.asarray(outcomes, float).copy(), np.asarray(zsum, float).copy()
        games = outcomes.sum(axis=1)
        flip = lo > hi
        a, b = np.where(flip, hi, lo), np.where(flip, lo, hi)
        zsum[flip] = -zsum[flip]
        outcomes[flip] = outcomes[flip][:, [1, 0, 2]]
        keep = games > 0
        order = np.lexsort((bins[keep], b[keep], a[keep]))
        a, b, games = a[keep][order], b[keep][order], games[keep][order]
        z = zsum[keep][order] / games[:, None]
        return cls(tuple(models), config.features, a, b, z, outcomes[keep][order])

    def pair_counts(self) -> PairCounts:
        """The plain counts, summed over style bins, for the unadjusted fit."""
        n = len(self.models)
        table = np.zeros((n, n, 3))
        np.add.at(table, (self.a, self.b), self.outcomes)
        wins = table[:, :, 0] + table[:, :, 1].T
        ties = table[:, :, 2] + table[:, :, 2].T
        return PairCounts(self.models, wins, ties)


def style_difference(style_a: FloatArray, style_b: FloatArray) -> FloatArray:
    """(a - b) / (a + b) per feature, 0 where both are 0; bounded so outliers cannot dominate."""
    total = style_a + style_b
    return np.divide(style_a - style_b, total, out=np.zeros_like(total), where=total > 0)


def vote_cell(
    style_lo: Sequence[float], style_hi: Sequence[float], config: StyleConfig = StyleConfig()
) -> tuple[int, tuple[float, ...]]:
    """One vote's joint bin and covariates, oriented low model first (the vote path stores these).

    The same arithmetic as `from_votes`, so summing these per cell reproduces its cells. In plain floats,
    not numpy: it runs once per vote, where numpy's cost per call on four numbers was most of its time
    (0.25 ms); IEEE float64 division and `bisect_right` (numpy's `digitize`) give the same bits.
    """
    z = tuple(_difference(float(lo), float(hi)) for lo, hi in zip(style_lo, style_hi, strict=True))
    index = 0
    for value, edges in zip(z, config.edges, strict=True):
        index = index * (len(edges) + 1) + bisect.bisect_right(edges, value)
    return index, z


def _difference(lo: float, hi: float) -> float:
    """`style_difference` of one feature."""
    total = lo + hi
    return (lo - hi) / total if total > 0 else 0.0


def joint_bins(config: StyleConfig) -> int:
    return int(np.prod([len(e) + 1 for e in config.edges]))


def joint_bin(z: FloatArray, config: StyleConfig) -> IntArray:
    """Mixed-radix index of each row's per-feature bins."""
    index = np.zeros(z.shape[0], dtype=np.int64)
    for column, edges in zip(z.T, config.edges):
        index = index * (len(edges) + 1) + np.digitize(column, edges)
    return index


@dataclass(frozen=True)
class StyleResult:
    """Style-controlled ratings with Fisher intervals, and the style coefficients.

    A coefficient is the change in log-odds of a decisive win per unit of
    normalised difference; `coefficient_se` its standard error.
    """

    intervals: Intervals
    features: tuple[str, ...]
    coefficients: FloatArray
    coefficient_se: FloatArray
    rated: BoolArray
    components: IntArray
    tie_parameter: float
    converged: bool
    iterations: int

    @property
    def ratings(self) -> FloatArray:
        return self.intervals.estimate


def style_problem(counts: StyleCounts, rated: BoolArray, ties: TieModel, prior_strength: float) -> Problem:
    position = np.cumsum(rated) - 1
    keep = rated[counts.a] & rated[counts.b]
    cells = Cells(position[counts.a[keep]], position[counts.b[keep]], counts.z[keep], counts.outcomes[keep])
    return Problem(cells, int(rated.sum()), ties == "davidson", prior_precision(prior_strength))


def fit_style_controlled(
    counts: StyleCounts,
    *,
    anchor: str | None = None,
    anchor_rating: float = 1000.0,
    prior_strength: float = 1.0,
    ties: TieModel = "davidson",
    level: float = 0.95,
) -> StyleResult:
    """Davidson / Bradley-Terry with style covariates, fitted jointly by Newton's method.

    Rated models and components follow the plain fit's rules, so the two
    ratings can be shown side by side.
    """
    plain = counts.pair_counts()
    labels = components(plain)
    rated = rated_mask(labels, plain, anchor)
    problem = style_problem(counts, rated, ties, prior_strength)
    phi, iterations, converged = newton(problem, start(problem))
    cov = params_covariance(problem, phi)
    m, k = problem.n_models, problem.n_linear
    position = None if anchor is None else int(np.cumsum(rated)[counts.models.index(anchor)] - 1)
    transform = rating_transform(m, position)
    ratings = anchor_rating + transform @ phi[:m]
    intervals = _intervals(counts.models, rated, ratings, transform @ cov[:m, :m] @ transform.T, level)
    return StyleResult(
        intervals=intervals,
        features=counts.features,
        coefficients=phi[m:k],
        coefficient_se=np.sqrt(np.diag(cov)[m:k]),
        rated=rated,
        components=labels,
        tie_parameter=float(np.exp(phi[-1])) if problem.davidson else 0.0,
        converged=converged,
        iterations=iterations,
    )


def _intervals(
    models: tuple[str, ...], rated: BoolArray, ratings: FloatArray, cov: FloatArray, level: float
) -> Intervals:
    estimate = np.full(len(models), np.nan)
    estimate[rated] = ratings
    covariance = np.full((len(models), len(models)), np.nan)
    covariance[np.ix_(rated, rated)] = cov
    return normal_intervals(models, estimate, covariance, level)
