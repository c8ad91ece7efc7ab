"""StyleCounts from stored cells equals StyleCounts from the votes (pure; ranking.style)."""

import numpy as np

from ranking import StyleCounts, fit_style_controlled
from ranking.simulate import simulate_styled_arena
from ranking.style import vote_cell


def _cells(models, model_a, model_b, outcome, style_a, style_b):
    """What the vote path stores: per (lo, hi, bin) the outcome counts and the covariate sums."""
    cells: dict[tuple[int, int, int], np.ndarray] = {}
    for a, b, o, sa, sb in zip(model_a, model_b, outcome, style_a, style_b, strict=True):
        lo, hi, lo_first = (a, b, True) if a < b else (b, a, False)
        joint_bin, z = vote_cell(sa, sb) if lo_first else vote_cell(sb, sa)
        row = cells.setdefault((int(lo), int(hi), joint_bin), np.zeros(7))
        column = 2 if o == 2 else (o if lo_first else 1 - o)
        row[column] += 1
        row[3:] += z
    keys = np.array(list(cells), dtype=np.int64)
    table = np.array(list(cells.values()))
    return StyleCounts.from_cells(models, keys[:, 0], keys[:, 1], keys[:, 2], table[:, :3], table[:, 3:])


def test_cells_equal_votes_including_votes_on_bin_edges():
    styled = simulate_styled_arena(6, 5_000, rng=np.random.default_rng(4))
    arena = styled.arena
    # Rounded features: many votes sit exactly on an edge, where orientation matters.
    style_a, style_b = np.round(styled.style_a / 20), np.round(styled.style_b / 20)
    rows = StyleCounts.from_votes(arena.models, arena.model_a, arena.model_b, arena.outcome, style_a, style_b)
    cells = _cells(arena.models, arena.model_a, arena.model_b, arena.outcome, style_a, style_b)
    np.testing.assert_array_equal(cells.a, rows.a)
    np.testing.assert_array_equal(cells.b, rows.b)
    np.testing.assert_array_equal(cells.outcomes, rows.outcomes)
    np.testing.assert_allclose(cells.z, rows.z, rtol=0, atol=1e-12)
    diff = np.abs(fit_style_controlled(cells).ratings - fit_style_controlled(rows).ratings).max()
    assert diff < 1e-9


def test_cells_stored_high_first_are_turned_round():
    models = ("x", "y")
    lo_first = StyleCounts.from_cells(models, [0], [1], [7], [[3.0, 1.0, 2.0]], [[0.6, 0.0, -0.3, 0.0]])
    hi_first = StyleCounts.from_cells(models, [1], [0], [7], [[1.0, 3.0, 2.0]], [[-0.6, 0.0, 0.3, 0.0]])
    np.testing.assert_array_equal(lo_first.outcomes, hi_first.outcomes)
    np.testing.assert_allclose(lo_first.z, hi_first.z)
    np.testing.assert_allclose(lo_first.z, [[0.1, 0.0, -0.05, 0.0]])
    empty = StyleCounts.from_cells(models, [0], [1], [0], [[0.0, 0.0, 0.0]], [[0.0] * 4])
    assert len(empty.a) == 0


def test_one_votes_cell_is_bit_for_bit_the_array_arithmetic():
    """vote_cell (plain floats, once per vote) against style_difference and joint_bin (arrays, the fit's
    path) on integer features, zeros and values exactly on the bin edges."""
    from ranking.style import StyleConfig, joint_bin, style_difference

    rng = np.random.default_rng(11)
    lo = np.concatenate([rng.integers(0, 40, size=(3_000, 4)), np.zeros((5, 4), int), rng.integers(0, 3, size=(500, 4))])
    hi = np.concatenate([rng.integers(0, 40, size=(3_000, 4)), np.zeros((5, 4), int), rng.integers(0, 3, size=(500, 4))])
    z = style_difference(lo.astype(float), hi.astype(float))
    bins = joint_bin(z, StyleConfig())
    on_edge = 0
    for i in range(len(lo)):
        joint, zs = vote_cell(lo[i].tolist(), hi[i].tolist())
        assert joint == int(bins[i]) and zs == tuple(z[i].tolist()), (lo[i], hi[i])
        on_edge += any(v in edges for v, edges in zip(zs, StyleConfig().edges, strict=True))
    assert on_edge > 50  # the edges themselves were reached, where < and <= differ
