import numpy as np
import pytest
from scipy.stats import spearmanr

from ranking import SCALE, PairCounts, fisher_intervals, fit_bradley_terry
from ranking.simulate import simulate_arena


@pytest.fixture(scope="module")
def arena():
    return simulate_arena(12, 60_000, rng=np.random.default_rng(11), rating_sd=150.0)


def test_recovers_known_strengths(arena):
    counts = arena.counts()
    fit = fit_bradley_terry(counts)
    assert fit.converged and fit.iterations < 20
    se = (fisher_intervals(counts, fit).width / 3.92)
    assert spearmanr(fit.ratings, arena.true_ratings)[0] > 0.97
    # Within 4 standard errors of the truth, each model (mean-centred on 1000 like the truth).
    assert np.all(np.abs(fit.ratings - arena.true_ratings) < 4 * se)
    assert fit.ratings.mean() == pytest.approx(1000.0)


def test_recovers_tie_parameter(arena):
    fit = fit_bradley_terry(arena.counts())
    assert fit.tie_parameter == pytest.approx(arena.tie_parameter, rel=0.05)


def test_anchor_fixes_one_model_and_keeps_differences(arena):
    counts = arena.counts()
    free = fit_bradley_terry(counts)
    anchored = fit_bradley_terry(counts, anchor="model-003", anchor_rating=1500.0)
    assert anchored.ratings[3] == pytest.approx(1500.0)
    np.testing.assert_allclose(anchored.ratings - anchored.ratings[3], free.ratings - free.ratings[3], atol=1e-6)


def test_elo_scale_means_tenfold_odds_per_400_points():
    # 1000 decisive games, 10 to 1 for a: the ratings should be ~400 apart.
    counts = PairCounts.from_records(("a", "b"), [("a", "b", 10_000, 1_000, 0)])
    fit = fit_bradley_terry(counts, ties="half", prior_strength=0.0)
    assert fit.ratings[0] - fit.ratings[1] == pytest.approx(400.0, abs=0.5)
    assert SCALE == pytest.approx(400 / np.log(10))


def test_ties_pull_ratings_together_in_both_models():
    decisive = PairCounts.from_records(("a", "b"), [("a", "b", 60, 40, 0)])
    with_ties = PairCounts.from_records(("a", "b"), [("a", "b", 60, 40, 100)])
    for ties in ("davidson", "half"):
        gap = np.diff(fit_bradley_terry(decisive, ties=ties).ratings)[0]
        tied_gap = np.diff(fit_bradley_terry(with_ties, ties=ties).ratings)[0]
        assert gap < tied_gap < 0  # b is below a, less so with the ties


def test_davidson_keeps_decisive_odds_where_half_rule_shrinks_them():
    # 300 wins, 100 losses, 400 ties: decisive odds 3:1 -> ~191 points under Davidson.
    counts = PairCounts.from_records(("a", "b"), [("a", "b", 300, 100, 400)])
    davidson = fit_bradley_terry(counts, prior_strength=0.0)
    half = fit_bradley_terry(counts, ties="half", prior_strength=0.0)
    assert davidson.ratings[0] - davidson.ratings[1] == pytest.approx(SCALE * np.log(3.0), abs=0.5)
    assert half.ratings[0] - half.ratings[1] == pytest.approx(SCALE * np.log(500 / 300), abs=0.5)


def test_all_ties_give_equal_ratings():
    counts = PairCounts.from_records(("a", "b", "c"), [("a", "b", 0, 0, 50), ("b", "c", 0, 0, 50)])
    fit = fit_bradley_terry(counts)
    np.testing.assert_allclose(fit.ratings, 1000.0, atol=1e-6)


def test_disconnected_graph_rates_main_component_only():
    records = [("a", "b", 30, 20, 5), ("b", "c", 25, 25, 5), ("d", "e", 40, 1, 0)]
    counts = PairCounts.from_records(("a", "b", "c", "d", "e", "f"), records)
    fit = fit_bradley_terry(counts)
    assert fit.rated.tolist() == [True, True, True, False, False, False]
    assert np.isnan(fit.ratings[3:]).all() and np.isfinite(fit.ratings[:3]).all()
    assert len(set(fit.components.tolist())) == 3
    other = fit_bradley_terry(counts, anchor="d")
    assert other.rated.tolist() == [False, False, False, True, True, False]
    assert other.ratings[3] == pytest.approx(1000.0)


def test_perfect_record_is_finite_flagged_and_on_top():
    records = [("a", "b", 20, 0, 0), ("a", "c", 15, 0, 0), ("b", "c", 30, 20, 10)]
    counts = PairCounts.from_records(("a", "b", "c"), records)
    fit = fit_bradley_terry(counts)
    assert fit.converged and np.isfinite(fit.ratings).all()
    assert fit.perfect_record.tolist() == [True, False, False]
    assert fit.ratings[0] > fit.ratings[1] + 200
    weaker_prior = fit_bradley_terry(counts, prior_strength=0.1)
    assert weaker_prior.ratings[0] > fit.ratings[0]  # only the prior holds it


def test_model_without_votes_is_unrated_not_invented():
    counts = PairCounts.from_records(("a", "b", "new"), [("a", "b", 10, 5, 5)])
    fit = fit_bradley_terry(counts)
    assert np.isnan(fit.ratings[2]) and not fit.rated[2]
    assert np.isfinite(fit.ratings[:2]).all()


def test_no_votes_at_all():
    counts = PairCounts.from_records(("a", "b"), [])
    fit = fit_bradley_terry(counts)
    assert not fit.rated.any() and np.isnan(fit.ratings).all()


def test_unknown_anchor_is_an_error():
    counts = PairCounts.from_records(("a", "b"), [("a", "b", 1, 1, 0)])
    with pytest.raises(ValueError):
        fit_bradley_terry(counts, anchor="zzz")


@pytest.mark.parametrize("anchor", ["x", "d"])
def test_anchor_outside_a_component_of_two_is_a_clear_error(anchor):
    # x has no games at all; d is alone too (its only pair has zero games recorded).
    counts = PairCounts.from_records(("a", "b", "c", "d", "x"), [("a", "b", 3, 2, 1), ("b", "c", 2, 2, 0),
                                                                 ("c", "d", 0, 0, 0)])
    with pytest.raises(ValueError, match="fewer than two models"):
        fit_bradley_terry(counts, anchor=anchor)


def test_anchor_in_a_small_but_real_component_is_fine():
    counts = PairCounts.from_records(("a", "b", "c", "d"), [("a", "b", 3, 2, 1), ("c", "d", 1, 2, 0)])
    fit = fit_bradley_terry(counts, anchor="c", anchor_rating=1200.0)
    assert fit.ratings[2] == pytest.approx(1200.0) and np.isnan(fit.ratings[:2]).all()


def test_newton_reports_a_line_search_that_gives_up(monkeypatch):
    """A line search that never finds an uphill step is a failure, not convergence."""
    from ranking import likelihood
    from ranking.bradley_terry import pair_problem

    counts = PairCounts.from_records(("a", "b", "c"), [("a", "b", 5, 2, 1), ("b", "c", 4, 4, 2)])
    problem = pair_problem(counts, np.ones(3, dtype=bool), "davidson", 1.0)
    start = likelihood.start(problem)
    calls = iter([0.0])
    # The start point scores 0; every candidate scores lower, so all 40 halvings fail.
    monkeypatch.setattr(likelihood, "log_posterior", lambda p, phi: next(calls, -1.0))
    phi, iterations, converged = likelihood.newton(problem, start.copy())
    assert converged is False and iterations == 1
    np.testing.assert_array_equal(phi, start)


def test_newton_on_invalid_counts_does_not_claim_convergence():
    from ranking import likelihood
    from ranking.bradley_terry import pair_problem

    counts = PairCounts.from_records(("a", "b"), [("a", "b", 5, 2, 1)])
    problem = pair_problem(counts, np.ones(2, dtype=bool), "davidson", 1.0)
    broken = problem.with_outcomes(np.array([[np.nan, 2.0, 1.0]]))
    _, _, converged = likelihood.newton(broken, likelihood.start(problem))
    assert converged is False
