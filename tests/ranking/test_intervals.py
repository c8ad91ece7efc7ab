import numpy as np
import pytest

from ranking import PairCounts, bootstrap_intervals, fisher_intervals, fit_bradley_terry
from ranking.simulate import counts_from_pairs, simulate_arena, simulate_counts


@pytest.fixture(scope="module")
def counts():
    return simulate_arena(10, 40_000, rng=np.random.default_rng(5)).counts()


@pytest.mark.parametrize("ties", ["davidson", "half"])
def test_bootstrap_and_fisher_widths_agree_within_ten_percent(counts, ties):
    fit = fit_bradley_terry(counts, ties=ties)
    boot = bootstrap_intervals(counts, fit, rounds=800, rng=np.random.default_rng(1))
    fisher = fisher_intervals(counts, fit)
    ratio = boot.width / fisher.width
    assert boot.converged_share == 1.0
    assert abs(ratio.mean() - 1.0) < 0.10
    assert np.all(np.abs(ratio - 1.0) < 0.25)  # per model, with 800 rounds of Monte Carlo noise


def test_half_rule_information_alone_would_overstate_width(counts):
    """Why the half-win model needs the sandwich: it treats a tie as a coin flip."""
    from ranking.bradley_terry import pair_problem, rating_transform
    from ranking.likelihood import derivatives

    fit = fit_bradley_terry(counts, ties="half")
    problem = pair_problem(counts, fit.rated, "half", fit.prior_strength)
    transform = rating_transform(problem.n_models, None)
    naive = transform @ np.linalg.inv(derivatives(problem, fit.params)[1]) @ transform.T
    sandwich_se = fisher_intervals(counts, fit).width / 3.92
    assert np.all(np.sqrt(np.diag(naive)) > 1.1 * sandwich_se)


def test_bootstrap_is_reproducible_and_contains_estimate(counts):
    fit = fit_bradley_terry(counts)
    first = bootstrap_intervals(counts, fit, rounds=200, rng=np.random.default_rng(9))
    second = bootstrap_intervals(counts, fit, rounds=200, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(first.lower, second.lower)
    assert np.all((first.lower < fit.ratings) & (fit.ratings < first.upper))
    assert first.draws.shape == (200, 10)


def test_bootstrap_matches_exact_refits():
    """The batched chord solver returns the same optimum as a full Newton refit."""
    from ranking.bradley_terry import pair_problem
    from ranking.intervals import resample_counts
    from ranking.likelihood import newton, solve_batch

    counts = simulate_arena(8, 5_000, rng=np.random.default_rng(2)).counts()
    fit = fit_bradley_terry(counts)
    problem = pair_problem(counts, fit.rated, fit.ties, fit.prior_strength)
    samples = resample_counts(problem, 20, np.random.default_rng(4))
    batch, done = solve_batch(problem, samples, fit.params)
    assert done.all()
    for r in range(20):
        exact, _, _ = newton(problem.with_outcomes(samples[r]), fit.params.copy())
        np.testing.assert_allclose(batch[r], exact, atol=1e-5)


def test_anchor_interval_is_a_point_and_others_widen(counts):
    fit = fit_bradley_terry(counts, anchor="model-000")
    fisher = fisher_intervals(counts, fit)
    assert fisher.width[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(fisher.width[1:] > fisher_intervals(counts, fit_bradley_terry(counts)).width[1:] * 0.9)


def test_unrated_models_have_nan_intervals():
    counts = PairCounts.from_records(("a", "b", "c", "x"), [("a", "b", 30, 20, 5), ("b", "c", 20, 25, 5)])
    fit = fit_bradley_terry(counts)
    boot = bootstrap_intervals(counts, fit, rounds=50, rng=np.random.default_rng(0))
    fisher = fisher_intervals(counts, fit)
    assert np.isnan(boot.lower[3]) and np.isnan(fisher.upper[3])
    assert np.isfinite(boot.lower[:3]).all()


def test_fisher_coverage_near_nominal():
    rng = np.random.default_rng(21)
    truth = simulate_arena(8, 1, rng=rng)
    share = np.full(28, 1 / 28)
    boards = simulate_counts(truth.true_ratings, truth.tie_parameter, share, 8_000, 150, rng)
    covered = []
    for table in boards:
        counts = counts_from_pairs(truth.models, table)
        fit = fit_bradley_terry(counts)
        fisher = fisher_intervals(counts, fit)
        covered.append((fisher.lower <= truth.true_ratings) & (truth.true_ratings <= fisher.upper))
    assert 0.92 <= np.mean(covered) <= 0.98


def test_no_votes_gives_nan_intervals():
    counts = PairCounts.from_records(("a", "b"), [])
    fit = fit_bradley_terry(counts)
    boot = bootstrap_intervals(counts, fit, rounds=10, rng=np.random.default_rng(0))
    assert np.isnan(boot.lower).all() and np.isnan(fisher_intervals(counts, fit).upper).all()


def test_a_wilson_interval_holds_its_share_at_zero_and_all_for_every_n():
    """0/n and n/n: the rounding of centre - half once put the lower bound at 5.6e-17, above a share of 0."""
    from ranking.proportions import wilson_interval

    for n in range(1, 500):
        none, every = wilson_interval(0, n), wilson_interval(n, n)
        assert none.lower == 0.0 <= none.upper and every.lower <= 1.0 == every.upper, n
