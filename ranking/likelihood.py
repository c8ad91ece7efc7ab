"""The Davidson / Bradley-Terry likelihood on cells of counts, and its solvers.

A cell is one pair of models (optionally one bin of style covariates) with its
counts of (wins of a, wins of b, ties). The linear predictor of a cell is
d = theta[a] - theta[b] + z @ beta, and one game's outcome probabilities are

    P(a) = e^{d/2} / Z,  P(b) = e^{-d/2} / Z,  P(tie) = e^eta / Z,
    Z = e^{d/2} + e^{-d/2} + e^eta,

which is Davidson's (1970) tie model with nu = e^eta; among decisive games it
is exactly Bradley-Terry. Setting e^eta = 0 gives the "half a win each" model,
whose log-likelihood depends on ties only through the number of games.
Both are exponential families in (theta, beta, eta), so the observed and the
expected information coincide and the log-likelihood is concave: Newton's
method converges in a handful of steps.

Parameter vector layout: [theta (n_models), beta (n_features), eta (Davidson only)].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

# Bound on elements per temporary array in batched solves: keeps peak memory
# fixed whatever the number of rounds (~8 MB per float64 temporary).
BATCH_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class Cells:
    """Sufficient statistics: per cell, models a and b, covariates z, counts."""

    a: IntArray
    b: IntArray
    z: FloatArray  # (cells, n_features); n_features may be 0
    outcomes: FloatArray  # (cells, 3): wins of a, wins of b, ties


@dataclass(frozen=True)
class Problem:
    cells: Cells
    n_models: int
    davidson: bool
    prior: float  # Gaussian precision on every parameter, natural-log units

    @property
    def n_linear(self) -> int:
        return self.n_models + self.cells.z.shape[1]

    @property
    def size(self) -> int:
        return self.n_linear + int(self.davidson)

    def with_outcomes(self, outcomes: FloatArray) -> Problem:
        c = self.cells
        return Problem(Cells(c.a, c.b, c.z, outcomes), self.n_models, self.davidson, self.prior)


def moments(d: FloatArray, eta: FloatArray | float) -> tuple[FloatArray, ...]:
    """P(a), P(b), P(tie) and log Z, shifted by the largest exponent to avoid overflow."""
    half = 0.5 * d
    top = np.maximum(np.abs(half), eta)
    ea, eb, et = np.exp(half - top), np.exp(-half - top), np.exp(eta - top)
    total = ea + eb + et
    return ea / total, eb / total, et / total, top + np.log(total)


def _eta(problem: Problem, phi: FloatArray) -> FloatArray | float:
    return phi[..., -1:] if problem.davidson else -np.inf


def predictor(problem: Problem, phi: FloatArray) -> FloatArray:
    """d per cell; phi may be one vector or a (rounds, size) batch."""
    c, m = problem.cells, problem.n_models
    theta = phi[..., :m]
    d = theta[..., c.a] - theta[..., c.b]
    if c.z.shape[1]:
        d = d + phi[..., m : problem.n_linear] @ c.z.T
    return d


def log_posterior(problem: Problem, phi: FloatArray) -> float:
    o = problem.cells.outcomes
    d = predictor(problem, phi)
    eta = _eta(problem, phi)
    *_, log_z = moments(d, eta)
    value = 0.5 * (o[:, 0] - o[:, 1]) @ d - o.sum(axis=1) @ log_z
    if problem.davidson:
        value += float(o[:, 2].sum() * phi[-1])
    return float(value - 0.5 * problem.prior * phi @ phi)


def _scatter(problem: Problem, values: FloatArray) -> FloatArray:
    """X^T values for the design X (rows e_a - e_b, then z); values may be (cells, k)."""
    c, m = problem.cells, problem.n_models
    cols = values.reshape(len(c.a), 1 if values.ndim == 1 else values.shape[1])
    theta = np.stack([np.bincount(c.a, v, m) - np.bincount(c.b, v, m) for v in cols.T], axis=1)
    out = np.concatenate([theta, c.z.T @ cols], axis=0)
    return out.reshape((problem.n_linear,) + values.shape[1:])


def _gram(problem: Problem, w: FloatArray) -> FloatArray:
    """X^T diag(w) X: a weighted graph Laplacian plus the covariate blocks."""
    c, m = problem.cells, problem.n_models
    degree = np.bincount(c.a, w, m) + np.bincount(c.b, w, m)
    offdiag = np.bincount(c.a * m + c.b, w, m * m).reshape(m, m)
    gram = np.zeros((problem.n_linear, problem.n_linear))
    gram[:m, :m] = np.diag(degree) - offdiag - offdiag.T
    if c.z.shape[1]:
        cross = _scatter(problem, w[:, None] * c.z)
        gram[:, m:] = cross
        gram[m:, :m] = cross[:m].T
    return gram


def derivatives(problem: Problem, phi: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Gradient of the log posterior and the information (minus its Hessian)."""
    o = problem.cells.outcomes
    games = o.sum(axis=1)
    pa, pb, pt, _ = moments(predictor(problem, phi), _eta(problem, phi))
    mean = 0.5 * (pa - pb)  # expected score minus one half, per game
    grad = np.zeros(problem.size)
    info = np.zeros((problem.size, problem.size))
    k = problem.n_linear
    grad[:k] = _scatter(problem, 0.5 * (o[:, 0] - o[:, 1]) - games * mean)
    info[:k, :k] = _gram(problem, games * (0.25 * (pa + pb) - mean**2))
    if problem.davidson:
        grad[-1] = float((o[:, 2] - games * pt).sum())
        cross = _scatter(problem, -games * mean * pt)
        info[-1, :k], info[:k, -1] = cross, cross
        info[-1, -1] = float((games * pt * (1 - pt)).sum())
    grad -= problem.prior * phi
    info += problem.prior * np.eye(problem.size)
    if problem.prior == 0.0:
        # Without a prior only differences of strengths are identified. Adding
        # 11^T/m to a Laplacian leaves every step orthogonal to the common
        # mode unchanged and makes the matrix invertible (a gauge fix).
        m = problem.n_models
        info[:m, :m] += 1.0 / max(m, 1)
    return grad, info


def empirical_meat(problem: Problem) -> FloatArray:
    """Outer product of scores from the observed per-cell outcome spread.

    Used for the sandwich covariance of the half-win model, whose own
    information ignores that a tie has less variance than a coin flip.
    """
    o = problem.cells.outcomes
    games = np.maximum(o.sum(axis=1), 1.0)
    mean = 0.5 * (o[:, 0] - o[:, 1]) / games
    spread = 0.25 * (o[:, 0] + o[:, 1]) / games - mean**2
    return _gram(problem, games * spread)


def start(problem: Problem) -> FloatArray:
    """Equal strengths; eta from the observed tie share as if all games were even."""
    phi = np.zeros(problem.size)
    if problem.davidson:
        o = problem.cells.outcomes
        share = np.clip(o[:, 2].sum() / max(o.sum(), 1.0), 1e-6, 1 - 1e-6)
        phi[-1] = np.log(2 * share / (1 - share))
    return phi


def newton(
    problem: Problem, phi: FloatArray, *, tol: float = 1e-10, max_iter: int = 100
) -> tuple[FloatArray, int, bool]:
    """Newton's method with step halving; returns (phi, iterations, converged).

    A line search that finds no acceptable step is a failure, not convergence:
    the last point is returned with converged=False.
    """
    value = log_posterior(problem, phi)
    for iteration in range(1, max_iter + 1):
        grad, info = derivatives(problem, phi)
        step = np.linalg.solve(info, grad)
        accepted = _backtrack(problem, phi, value, step)
        if accepted is None:
            return phi, iteration, False
        phi, value, step = accepted
        if np.max(np.abs(step), initial=0.0) < tol:
            return phi, iteration, True
    return phi, max_iter, False


def _backtrack(
    problem: Problem, phi: FloatArray, value: float, step: FloatArray
) -> tuple[FloatArray, float, FloatArray] | None:
    """The first halving of `step` that does not lower the posterior, or None when 40 halvings fail."""
    # Near the optimum the gain is below rounding, so allow a rounding-size loss.
    slack = 1e-12 * (1.0 + abs(value))
    for _ in range(40):
        candidate = phi + step
        new_value = log_posterior(problem, candidate)
        if new_value >= value - slack:
            return candidate, new_value, step
        step = 0.5 * step
    return None


def design(problem: Problem) -> FloatArray:
    """Dense X (cells, n_linear) for batched gradients; small for pair cells."""
    c = problem.cells
    rows = np.arange(len(c.a))
    x = np.zeros((len(c.a), problem.n_linear))
    x[rows, c.a] = 1.0
    x[rows, c.b] = -1.0
    x[:, problem.n_models :] = c.z
    return x


def fast_moments(d: FloatArray, nu: FloatArray | float) -> tuple[FloatArray, FloatArray]:
    """(P(a) - P(b)) / 2 and P(tie) with a single exponential, for the batched hot loop.

    With e = exp(-|d|/2), multiplying Z by e gives 1 + e^2 + nu * e, bounded and
    free of overflow.
    """
    e = np.exp(-0.5 * np.abs(d))
    e2 = e * e
    inv = 1.0 / (1.0 + e2 + nu * e)
    return 0.5 * np.sign(d) * (1.0 - e2) * inv, nu * e * inv


@dataclass(frozen=True)
class BatchStats:
    """What the batched gradient needs from (rounds, cells, 3) outcomes, computed once.

    Single precision: the hot loop is memory-bound and float32 halves the
    traffic. Counts are exact in float32 and the resulting error in the
    parameters (~1e-7 nats, ~1e-5 rating points) is far below bootstrap noise.
    """

    games: NDArray[np.float32]  # (rounds, cells)
    score: NDArray[np.float32]  # (rounds, cells): (wins of a - wins of b) / 2
    ties: FloatArray  # (rounds,)

    @classmethod
    def of(cls, outcomes: FloatArray) -> BatchStats:
        score = 0.5 * (outcomes[:, :, 0] - outcomes[:, :, 1])
        games = outcomes.sum(axis=2)
        return cls(games.astype(np.float32), score.astype(np.float32), outcomes[:, :, 2].sum(axis=1))

    def take(self, rows: IntArray) -> BatchStats:
        return BatchStats(self.games[rows], self.score[rows], self.ties[rows])


def batch_gradient(problem: Problem, x: NDArray[np.float32], stats: BatchStats, phi: FloatArray) -> FloatArray:
    """Gradients of the log posterior for a batch of rounds; phi is (rounds, size)."""
    d = phi[:, : problem.n_linear].astype(np.float32) @ x.T
    nu = np.exp(phi[:, -1:]).astype(np.float32) if problem.davidson else np.float32(0.0)
    mean, pt = fast_moments(d, nu)
    grad = np.empty_like(phi)
    grad[:, : problem.n_linear] = (stats.score - stats.games * mean) @ x
    # Each cell adds +r to a and -r to b, so the strengths' data gradient sums
    # to zero; float32 rounding breaks that, and the prior-only common mode
    # (information = prior) would amplify it. Restore the exact identity.
    m = problem.n_models
    grad[:, :m] -= grad[:, :m].mean(axis=1, keepdims=True)
    if problem.davidson:
        grad[:, -1] = stats.ties - (stats.games * pt).sum(axis=1, dtype=np.float64)
    return grad - problem.prior * phi


def solve_batch(
    problem: Problem, outcomes: FloatArray, phi0: FloatArray, *, tol: float = 1e-6, max_iter: int = 25
) -> tuple[FloatArray, BoolArray]:
    """Maximise the posterior for many outcome tables sharing cells.

    Chord method: every round reuses the inverse information at phi0 (the
    original data's fit), so one iteration is two matrix products for all
    rounds; resamples stay close to the original data, so it contracts fast.
    `tol` bounds the last step in nats. Rounds that do not converge (e.g. a
    resample that gives a model a perfect record) get an exact Newton fit.
    """
    rounds = outcomes.shape[0]
    chunk = max(1, BATCH_ELEMENTS // max(outcomes.shape[1], 1))
    x = design(problem).astype(np.float32)
    inverse = np.linalg.inv(derivatives(problem, phi0)[1])
    phis = np.empty((rounds, problem.size))
    done = np.zeros(rounds, dtype=bool)
    for lo in range(0, rounds, chunk):
        part = slice(lo, min(lo + chunk, rounds))
        phis[part], done[part] = _chord(problem, x, inverse, outcomes[part], phi0, tol, max_iter)
    for r in np.flatnonzero(~done):
        phis[r], _, done[r] = newton(problem.with_outcomes(outcomes[r]), phi0.copy())
    return phis, done


def _chord(
    problem: Problem,
    x: NDArray[np.float32],
    inverse: FloatArray,
    outcomes: FloatArray,
    phi0: FloatArray,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, BoolArray]:
    phi = np.tile(phi0, (outcomes.shape[0], 1))
    active = np.arange(outcomes.shape[0])
    done = np.zeros(outcomes.shape[0], dtype=bool)
    stats = BatchStats.of(outcomes)
    for _ in range(max_iter):
        step = batch_gradient(problem, x, stats, phi[active]) @ inverse
        phi[active] += step
        size = np.max(np.abs(step), axis=1)
        done[active[size < tol]] = True
        keep = (size >= tol) & (size < 1e3)  # a diverging round goes to Newton
        if not keep.any():
            break
        if not keep.all():
            active, stats = active[keep], stats.take(np.flatnonzero(keep))
    return phi, done
