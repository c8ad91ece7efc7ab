import numpy as np
import pytest

from ranking import StyleCounts, fit_bradley_terry, fit_style_controlled
from ranking.simulate import simulate_styled_arena
from ranking.style import StyleConfig, style_difference


@pytest.fixture(scope="module")
def styled():
    return simulate_styled_arena(10, 60_000, rng=np.random.default_rng(8))


@pytest.fixture(scope="module")
def binned(styled):
    arena = styled.arena
    return StyleCounts.from_votes(arena.models, arena.model_a, arena.model_b, arena.outcome,
                                  styled.style_a, styled.style_b)


def test_style_control_removes_style_bias(styled, binned):
    truth = styled.arena.true_ratings
    plain = fit_bradley_terry(binned.pair_counts())
    controlled = fit_style_controlled(binned)
    assert controlled.converged
    plain_error = np.abs(plain.ratings - truth).max()
    controlled_error = np.abs(controlled.ratings - truth).max()
    assert controlled_error < 0.5 * plain_error
    assert np.all(np.abs(controlled.coefficients - styled.coefficients) < 4 * controlled.coefficient_se + 0.02)
    lower, upper = controlled.intervals.lower, controlled.intervals.upper
    assert np.mean((lower <= truth) & (truth <= upper)) >= 0.8


def test_binning_bounds_cells_and_matches_unbinned_fit(styled, binned):
    arena = styled.arena
    pairs = 10 * 9 // 2
    assert len(binned.a) <= pairs * 135 < len(arena.outcome)
    assert np.all(binned.a < binned.b)
    z = style_difference(styled.style_a, styled.style_b)
    outcomes = np.eye(3)[arena.outcome]
    per_vote = StyleCounts(arena.models, binned.features, arena.model_a, arena.model_b, z, outcomes)
    exact = fit_style_controlled(per_vote)
    approx = fit_style_controlled(binned)
    # Binning replaces each vote's covariates by its cell's mean: a small
    # approximation, well inside the statistical error.
    se = approx.intervals.width / 3.92
    assert np.all(np.abs(exact.ratings - approx.ratings) < 0.75 * se)
    np.testing.assert_allclose(approx.coefficients, exact.coefficients, rtol=0.1, atol=0.02)


def test_pair_counts_agree_with_plain_counting(styled, binned):
    direct = styled.arena.counts()
    np.testing.assert_array_equal(binned.pair_counts().wins, direct.wins)
    np.testing.assert_array_equal(binned.pair_counts().ties, direct.ties)


def test_style_difference_and_orientation():
    z = style_difference(np.array([[300.0, 0.0]]), np.array([[100.0, 0.0]]))
    np.testing.assert_allclose(z, [[0.5, 0.0]])
    config = StyleConfig(features=("length",), edges=((-0.1, 0.1),))
    # The same vote seen from either side lands in one cell with one sign convention.
    counts = StyleCounts.from_votes(("x", "y"), np.array([1, 0]), np.array([0, 1]), np.array([0, 1]),
                                    np.array([[300.0], [100.0]]), np.array([[100.0], [300.0]]), config)
    assert len(counts.a) == 1
    assert counts.outcomes.tolist() == [[0.0, 2.0, 0.0]]
    np.testing.assert_allclose(counts.z, [[-0.5]])
