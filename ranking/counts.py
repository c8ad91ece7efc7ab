"""Aggregated pair-outcome counts, the only thing the Bradley-Terry fit reads.

A million votes between 50 models collapse into 50 x 50 win counts and 50 x 50
tie counts, so every later step costs a function of the number of models, not
of the number of votes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

# Outcome codes of one vote, as the vote path stores them.
A_WINS = 0
B_WINS = 1
TIE = 2

Record = tuple[str, str, float, float, float]


@dataclass(frozen=True)
class PairCounts:
    """wins[i, j] = times models[i] beat models[j]; ties is symmetric."""

    models: tuple[str, ...]
    wins: FloatArray
    ties: FloatArray

    def __post_init__(self) -> None:
        n = len(self.models)
        if len(set(self.models)) != n:
            raise ValueError("model names must be unique")
        if self.wins.shape != (n, n) or self.ties.shape != (n, n):
            raise ValueError(f"wins and ties must be {n}x{n}")
        if (self.wins < 0).any() or (self.ties < 0).any():
            raise ValueError("counts must be non-negative")
        if not np.array_equal(self.ties, self.ties.T):
            raise ValueError("ties must be symmetric")
        if np.diagonal(self.wins).any() or np.diagonal(self.ties).any():
            raise ValueError("a model cannot play itself")

    @classmethod
    def from_records(cls, models: Sequence[str], records: Iterable[Record]) -> PairCounts:
        """Build from (model_a, model_b, wins_a, wins_b, ties) rows, e.g. the DB's pair table."""
        index = {name: i for i, name in enumerate(models)}
        n = len(index)
        wins = np.zeros((n, n))
        ties = np.zeros((n, n))
        for model_a, model_b, wins_a, wins_b, tied in records:
            i, j = index[model_a], index[model_b]
            wins[i, j] += wins_a
            wins[j, i] += wins_b
            ties[i, j] += tied
            ties[j, i] += tied
        return cls(tuple(models), wins, ties)

    @classmethod
    def from_votes(
        cls, models: Sequence[str], model_a: IntArray, model_b: IntArray, outcome: IntArray
    ) -> PairCounts:
        """Count vote rows (model indices, outcome codes) in one pass; O(votes) time, O(n^2) memory."""
        n = len(models)
        pair = np.asarray(model_a, dtype=np.int64) * n + np.asarray(model_b, dtype=np.int64)
        table = np.bincount(pair * 3 + np.asarray(outcome), minlength=n * n * 3)
        table = table.reshape(n, n, 3).astype(np.float64)
        wins = table[:, :, A_WINS] + table[:, :, B_WINS].T
        ties = table[:, :, TIE] + table[:, :, TIE].T
        return cls(tuple(models), wins, ties)

    @property
    def games(self) -> FloatArray:
        """Games played per pair, symmetric."""
        return self.wins + self.wins.T + self.ties

    @property
    def total(self) -> float:
        return float(np.triu(self.games).sum())

    def subset(self, keep: Sequence[str]) -> PairCounts:
        """The counts among `keep` only, in that order."""
        index = [self.models.index(name) for name in keep]
        grid = np.ix_(index, index)
        return PairCounts(tuple(keep), self.wins[grid].copy(), self.ties[grid].copy())


def components(counts: PairCounts) -> IntArray:
    """Label each model by connected component of the comparison graph.

    Ratings are only comparable inside one component; a model without votes is
    a component of its own.
    """
    graph = csr_matrix(counts.games > 0)
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def main_component(labels: IntArray, counts: PairCounts, anchor: str | None) -> int:
    """The component that gets ratings: the anchor's, else the largest (then most games)."""
    if anchor is not None:
        return int(labels[counts.models.index(anchor)])
    played = counts.games.sum(axis=1)
    sizes = np.bincount(labels)
    games = np.bincount(labels, weights=played)
    # lexsort keys: last is primary; lowest label wins exact ties for determinism.
    order = np.lexsort((np.arange(len(sizes)), -games, -sizes))
    return int(order[0])


def perfect_records(counts: PairCounts) -> BoolArray:
    """Models that never lost (or never won) a game they played and never tied.

    Their maximum-likelihood rating is infinite; only the prior keeps it finite.
    """
    won = counts.wins.sum(axis=1)
    lost = counts.wins.sum(axis=0)
    tied = counts.ties.sum(axis=1)
    played = won + lost + tied
    return (played > 0) & (tied == 0) & ((lost == 0) | (won == 0))
