import numpy as np
import pytest

from ranking import A_WINS, B_WINS, TIE, online_elo, rank_intervals
from ranking.simulate import simulate_arena


def test_elo_single_update_and_tie():
    result = online_elo(("a", "b"), np.array([0, 0]), np.array([1, 1]), np.array([A_WINS, TIE]), k=32.0)
    # First: expected 0.5, a gains 16. Second: a is favoured, so a tie costs a a little.
    assert result.ratings[0] == pytest.approx(1016.0 + 32 * (0.5 - 1 / (1 + 10 ** (-32 / 400))))
    assert result.ratings.sum() == pytest.approx(2000.0)
    assert result.games.tolist() == [2, 2]


def test_elo_orders_simulated_models_roughly():
    arena = simulate_arena(6, 20_000, rng=np.random.default_rng(3), rating_sd=200.0)
    elo = online_elo(arena.models, arena.model_a, arena.model_b, arena.outcome)
    assert np.corrcoef(elo.ratings, arena.true_ratings)[0, 1] > 0.9


def test_elo_loss_moves_down():
    result = online_elo(("a", "b"), np.array([0]), np.array([1]), np.array([B_WINS]))
    assert result.ratings[0] < 1000 < result.ratings[1]


def test_rank_intervals_and_groups():
    lower = np.array([1100.0, 1090.0, 1000.0, 995.0, 900.0, np.nan])
    upper = np.array([1120.0, 1105.0, 1020.0, 1010.0, 950.0, np.nan])
    ranks = rank_intervals(lower, upper)
    assert ranks.best.tolist() == [1, 1, 3, 3, 5, 0]
    assert ranks.worst.tolist() == [2, 2, 4, 4, 5, 0]
    assert ranks.group.tolist() == [1, 1, 2, 2, 3, 0]
    assert ranks.order.tolist() == [0, 1, 2, 3, 4]


def test_tie_groups_do_not_chain():
    # Each overlaps the next, but the first and third are clearly apart.
    lower = np.array([100.0, 90.0, 80.0])
    upper = np.array([110.0, 101.0, 91.0])
    ranks = rank_intervals(lower, upper)
    assert ranks.group.tolist() == [1, 1, 2]
    assert ranks.worst.tolist() == [2, 3, 3]
