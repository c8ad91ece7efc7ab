import numpy as np
import pytest

from ranking import A_WINS, B_WINS, TIE, PairCounts, components


def test_from_votes_matches_from_records():
    models = ("a", "b", "c")
    votes_a = np.array([0, 1, 0, 2, 2])
    votes_b = np.array([1, 0, 1, 0, 1])
    outcome = np.array([A_WINS, A_WINS, TIE, B_WINS, TIE])
    counted = PairCounts.from_votes(models, votes_a, votes_b, outcome)
    records = [("a", "b", 1, 1, 1), ("c", "a", 0, 1, 0), ("c", "b", 0, 0, 1)]
    listed = PairCounts.from_records(models, records)
    np.testing.assert_array_equal(counted.wins, listed.wins)
    np.testing.assert_array_equal(counted.ties, listed.ties)
    assert counted.total == 5
    assert counted.wins[0, 1] == 1 and counted.wins[1, 0] == 1 and counted.wins[0, 2] == 1


def test_validation_rejects_bad_counts():
    with pytest.raises(ValueError):
        PairCounts(("a", "b"), np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError):
        PairCounts(("a", "a"), np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        PairCounts(("a", "b"), np.array([[0.0, -1.0], [0.0, 0.0]]), np.zeros((2, 2)))


def test_components_split_disconnected_groups():
    records = [("a", "b", 3, 1, 0), ("c", "d", 2, 2, 1)]
    counts = PairCounts.from_records(("a", "b", "c", "d", "e"), records)
    labels = components(counts)
    assert labels[0] == labels[1] and labels[2] == labels[3]
    assert len({labels[0], labels[2], labels[4]}) == 3


def test_subset_keeps_counts():
    counts = PairCounts.from_records(("a", "b", "c"), [("a", "b", 3, 1, 2), ("b", "c", 1, 0, 0)])
    sub = counts.subset(("b", "a"))
    assert sub.wins[1, 0] == 3 and sub.wins[0, 1] == 1 and sub.ties[0, 1] == 2
