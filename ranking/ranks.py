"""Rank intervals and groups of statistically tied models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranking.counts import FloatArray, IntArray


@dataclass(frozen=True)
class RankIntervals:
    """best[i]..worst[i] is every rank model i's interval allows (1 = top).

    `group` numbers tie groups from 1 in rank order; 0 marks models without
    an interval (unrated), which take no rank and do not push others down.
    """

    best: IntArray
    worst: IntArray
    group: IntArray
    order: IntArray  # indices of the valid models, best estimate first


def rank_intervals(lower: FloatArray, upper: FloatArray, estimate: FloatArray | None = None) -> RankIntervals:
    """Ranks from interval overlap.

    A model is surely below j when j's lower bound exceeds its upper bound;
    its best rank counts those, its worst rank counts everyone it is not
    surely above. Overlap of two 95% intervals is a conservative test for a
    difference, so groups err towards calling models tied.
    """
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    valid = np.isfinite(lower) & np.isfinite(upper)
    lo, hi = lower[valid], upper[valid]
    above = lo[None, :] > hi[:, None]  # above[i, j]: j surely better than i
    below = hi[None, :] < lo[:, None]  # below[i, j]: j surely worse than i
    best = np.zeros(len(lower), dtype=np.int64)
    worst = np.zeros(len(lower), dtype=np.int64)
    best[valid] = 1 + above.sum(axis=1)
    worst[valid] = valid.sum() - below.sum(axis=1)
    centre = 0.5 * (lower + upper) if estimate is None else np.asarray(estimate, dtype=np.float64)
    index = np.flatnonzero(valid)
    order = index[np.argsort(-centre[valid], kind="stable")]
    return RankIntervals(best, worst, _tie_groups(order, lower, upper, len(lower)), order)


def _tie_groups(order: IntArray, lower: FloatArray, upper: FloatArray, n: int) -> IntArray:
    """Greedy from the top: a group is a leader plus every later model whose
    interval reaches the leader's lower bound. Groups never chain, so a long
    run of pairwise overlaps does not merge the whole table into one group."""
    group = np.zeros(n, dtype=np.int64)
    label, leader = 0, -1
    for i in order:
        if leader < 0 or upper[i] < lower[leader]:
            label, leader = label + 1, i
        group[i] = label
    return group
