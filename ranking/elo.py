"""Online Elo, for display and comparison only.

It depends on the order of the votes and never converges to a fixed value, so
the leaderboard's ratings and intervals come from Bradley-Terry; this exists
to show how the familiar number would look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ranking.counts import A_WINS, B_WINS, FloatArray, IntArray


@dataclass(frozen=True)
class EloResult:
    models: tuple[str, ...]
    ratings: FloatArray
    games: IntArray
    k: float


def online_elo(
    models: Sequence[str],
    model_a: IntArray,
    model_b: IntArray,
    outcome: IntArray,
    *,
    k: float = 4.0,
    initial: float = 1000.0,
    scale: float = 400.0,
) -> EloResult:
    """Sequential Elo updates over votes in time order; a tie scores one half."""
    ratings = [float(initial)] * len(models)
    score_of = {A_WINS: 1.0, B_WINS: 0.0}
    # A plain Python loop: each update depends on the previous one, and on
    # lists of floats this is several times faster than numpy scalar indexing.
    for a, b, o in zip(np.asarray(model_a).tolist(), np.asarray(model_b).tolist(), np.asarray(outcome).tolist()):
        expected = 1.0 / (1.0 + 10.0 ** ((ratings[b] - ratings[a]) / scale))
        delta = k * (score_of.get(o, 0.5) - expected)
        ratings[a] += delta
        ratings[b] -= delta
    games = np.bincount(model_a, minlength=len(models)) + np.bincount(model_b, minlength=len(models))
    return EloResult(tuple(models), np.array(ratings), games.astype(np.int64), k)
