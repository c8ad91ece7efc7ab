"""Bradley-Terry (Davidson ties) maximum a posteriori ratings from pair counts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ranking.counts import (
    BoolArray,
    FloatArray,
    IntArray,
    PairCounts,
    components,
    main_component,
    perfect_records,
)
from ranking.likelihood import Cells, Problem, log_posterior, newton, start

# Elo-like scale: 400 rating points = a factor 10 in odds of a decisive win.
SCALE = 400.0 / np.log(10.0)

TieModel = Literal["davidson", "half"]


@dataclass(frozen=True)
class BTResult:
    """Ratings on the Elo-like scale; NaN for models outside the rated component.

    `params` are the natural-log strengths of the rated models (in the order of
    `rated`), then log nu for the Davidson model.
    """

    models: tuple[str, ...]
    ratings: FloatArray
    components: IntArray
    rated: BoolArray
    perfect_record: BoolArray
    ties: TieModel
    tie_parameter: float
    anchor: str | None
    anchor_rating: float
    prior_strength: float
    converged: bool
    iterations: int
    log_posterior: float
    params: FloatArray


def prior_precision(prior_strength: float) -> float:
    """Precision of the N(0, 1/precision) prior on each log-strength.

    A game between equals carries Fisher information 1/4 about their log-odds
    difference, so `prior_strength` reads as "this many virtual even games".
    """
    return prior_strength / 4.0


def pair_problem(counts: PairCounts, rated: BoolArray, ties: TieModel, prior_strength: float) -> Problem:
    """One cell per pair of rated models that played at least one game."""
    index = np.flatnonzero(rated)
    games = counts.games[np.ix_(index, index)]
    a, b = np.nonzero(np.triu(games) > 0)
    ia, ib = index[a], index[b]
    outcomes = np.stack([counts.wins[ia, ib], counts.wins[ib, ia], counts.ties[ia, ib]], axis=1)
    cells = Cells(a.astype(np.int64), b.astype(np.int64), np.zeros((len(a), 0)), outcomes)
    return Problem(cells, len(index), ties == "davidson", prior_precision(prior_strength))


def rating_transform(n_rated: int, anchor_position: int | None) -> FloatArray:
    """Matrix T with ratings = anchor_rating + T @ theta (anchor fixed, or mean fixed)."""
    eye = np.eye(n_rated)
    if anchor_position is None:
        return SCALE * (eye - 1.0 / max(n_rated, 1))
    shift = np.zeros((n_rated, n_rated))
    shift[:, anchor_position] = 1.0
    return SCALE * (eye - shift)


def anchor_position(fit: BTResult) -> int | None:
    if fit.anchor is None:
        return None
    return int(np.flatnonzero(fit.rated).tolist().index(fit.models.index(fit.anchor)))


def rated_mask(labels: IntArray, counts: PairCounts, anchor: str | None) -> BoolArray:
    """Models of the main component; a lone model with no games is never rated."""
    main = main_component(labels, counts, anchor)
    rated = labels == main
    if rated.sum() < 2:
        return np.zeros(len(labels), dtype=bool)
    return rated


def _check_anchor(counts: PairCounts, labels: IntArray, anchor: str | None) -> None:
    """An anchor fixes the scale only if it is rated: present, and connected to another model."""
    if anchor is None:
        return
    if anchor not in counts.models:
        raise ValueError(f"anchor {anchor!r} is not among the models")
    if np.sum(labels == labels[counts.models.index(anchor)]) < 2:
        raise ValueError(
            f"anchor {anchor!r} has no games against other models: its component has fewer than two "
            "models, so it cannot fix the rating scale"
        )


def fit_bradley_terry(
    counts: PairCounts,
    *,
    anchor: str | None = None,
    anchor_rating: float = 1000.0,
    prior_strength: float = 1.0,
    ties: TieModel = "davidson",
    tol: float = 1e-10,
    max_iter: int = 100,
) -> BTResult:
    """Fit ratings of the main connected component by Newton's method.

    Without an anchor the rated models' mean rating is `anchor_rating`; with
    one, that model's rating is. Models in other components get NaN and keep
    their component label, so the caller can show them as unrated.
    """
    labels = components(counts)
    _check_anchor(counts, labels, anchor)
    rated = rated_mask(labels, counts, anchor)
    problem = pair_problem(counts, rated, ties, prior_strength)
    phi, iterations, converged = start(problem), 0, True
    if rated.any():
        phi, iterations, converged = newton(problem, phi, tol=tol, max_iter=max_iter)
    result = BTResult(
        models=counts.models,
        ratings=np.full(len(counts.models), np.nan),
        components=labels,
        rated=rated,
        perfect_record=perfect_records(counts) & rated,
        ties=ties,
        tie_parameter=float(np.exp(phi[-1])) if problem.davidson else 0.0,
        anchor=anchor,
        anchor_rating=anchor_rating,
        prior_strength=prior_strength,
        converged=converged,
        iterations=iterations,
        log_posterior=log_posterior(problem, phi),
        params=phi,
    )
    ratings = result.ratings.copy()
    ratings[rated] = ratings_from_params(result, phi[None, :])[0]
    return replace(result, ratings=ratings)


def ratings_from_params(fit: BTResult, phis: FloatArray) -> FloatArray:
    """Ratings of the rated models for a batch of parameter vectors (rounds, size)."""
    n_rated = int(fit.rated.sum())
    transform = rating_transform(n_rated, anchor_position(fit))
    return fit.anchor_rating + phis[:, :n_rated] @ transform.T
