"""Active pairing maths (ranking.active): scores, the greedy reference design, seeded pair choice."""

import numpy as np
import pytest

from ranking import fit_bradley_terry, rating_covariance
from ranking.active import (
    choose_pair,
    draw_probabilities,
    expected_gains,
    fill_missing,
    greedy_plan,
    pair_scores,
    scores_for_all,
    vote_information,
)
from ranking.simulate import counts_from_pairs, simulate_arena


def test_a_vote_between_equals_carries_the_most_information() -> None:
    ratings = np.array([1000.0, 1000.0, 1400.0])
    info = vote_information(ratings, 0.5, np.array([0, 0]), np.array([1, 2]))
    assert info[0] > info[1] > 0
    no_ties = vote_information(ratings, 0.0, np.array([0]), np.array([1]))
    assert no_ties[0] == pytest.approx(0.25 / (400 / np.log(10)) ** 2)  # p(1-p) at p = 1/2


def test_the_gain_is_the_exact_drop_of_the_weighted_variance() -> None:
    rng = np.random.default_rng(3)
    root = rng.normal(size=(4, 4))
    cov = root @ root.T + np.eye(4)
    a, b = np.array([0, 1]), np.array([2, 3])
    info = np.array([0.3, 0.7])
    gain, _, _ = expected_gains(cov, info, a, b, power=0.0)
    for k in range(2):
        x = np.zeros(4)
        x[a[k]], x[b[k]] = 1.0, -1.0
        after = np.linalg.inv(np.linalg.inv(cov) + info[k] * np.outer(x, x))
        assert gain[k] == pytest.approx(np.trace(cov) - np.trace(after))


def test_scores_favour_pairs_with_the_widest_model() -> None:
    arena = simulate_arena(5, 3000, rng=np.random.default_rng(11))
    counts = arena.counts()
    # Model 4 has played few games: its rating is the least certain.
    table = np.zeros((10, 3))
    a, b = np.triu_indices(5, k=1)
    table[:, 0], table[:, 1], table[:, 2] = 80, 80, 40
    table[(a == 3) & (b == 4)] = (3, 3, 1)
    table[(b == 4) & (a != 3)] = (4, 4, 2)
    counts = counts_from_pairs(counts.models, table)
    fit = fit_bradley_terry(counts)
    scores = pair_scores(counts, fit)
    assert len(scores.score) == 10 and np.all(scores.score > 0)
    best = int(np.argmax(scores.score))
    assert 4 in (scores.a[best], scores.b[best])


def test_unrated_models_get_no_score() -> None:
    table = np.array([[5.0, 5.0, 2.0], [0, 0, 0], [0, 0, 0]])  # pairs (0,1), (0,2), (1,2): model 2 unplayed
    counts = counts_from_pairs(("m0", "m1", "m2"), table)
    scores = pair_scores(counts, fit_bradley_terry(counts))
    assert list(zip(scores.a, scores.b, strict=True)) == [(0, 1)]


def test_greedy_plan_spreads_votes_over_the_uncertain_model() -> None:
    cov = np.diag([100.0, 100.0, 100.0, 2500.0])
    a, b = np.triu_indices(4, k=1)
    chosen = greedy_plan(cov, vote_information(np.full(4, 1000.0), 0.5, a, b), a, b, 6)
    involved = (a[chosen] == 3) | (b[chosen] == 3)
    assert involved.sum() >= 4
    assert len(set(chosen[involved].tolist())) > 1  # the covariance update moves it to other partners


def test_probabilities_respect_weights_and_zeros() -> None:
    p = draw_probabilities(np.array([1.0, 2.0, 1.0]), np.array([1.0, 1.0, 0.0]), np.array([3.0, 1.0, 1.0]))
    assert p == pytest.approx([0.6, 0.4, 0.0])
    assert not draw_probabilities(np.ones(2), np.zeros(2), np.ones(2)).any()
    assert not draw_probabilities(np.array([np.inf]), np.ones(1), np.ones(1)).any()


def test_choose_pair_is_seeded_and_never_picks_an_impossible_pair() -> None:
    p = np.array([0.0, 0.5, 0.0, 0.5])
    picks = [choose_pair(p, np.random.default_rng(s)) for s in range(300)]
    assert {i for i, _ in picks} == {1, 3}
    assert 100 < sum(first for _, first in picks) < 200  # side order is a fair coin
    assert [choose_pair(p, np.random.default_rng(s)) for s in range(300)] == picks


def test_rating_covariance_shrinks_where_scores_point() -> None:
    arena = simulate_arena(4, 2000, rng=np.random.default_rng(5))
    counts = arena.counts()
    fit = fit_bradley_terry(counts)
    scores = pair_scores(counts, fit)
    cov = rating_covariance(counts, fit)
    assert np.all(np.isfinite(scores.score)) and np.max(scores.score) < np.trace(cov)


def test_missing_scores_fall_back_to_the_best_known_one() -> None:
    assert fill_missing(np.array([0.2, np.nan, 0.5, 0.0])).tolist() == [0.2, 0.5, 0.5, 0.5]
    assert fill_missing(np.array([np.nan, np.nan])).tolist() == [1.0, 1.0]
    table = np.array([[5.0, 5.0, 2.0], [0, 0, 0], [0, 0, 0]])  # model 2 has not played
    counts = counts_from_pairs(("m0", "m1", "m2"), table)
    scores = pair_scores(counts, fit_bradley_terry(counts))
    full = scores_for_all(scores, 3)
    assert full[0] == scores.score[0] and full.tolist()[1:] == [scores.score[0]] * 2
