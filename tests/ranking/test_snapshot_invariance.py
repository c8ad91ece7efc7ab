"""The snapshot's guarantees, tested on `build_snapshot` itself.

Adding a model with evaluation items only changes no other model's c, s,
overall, their intervals, its arena numbers, or which pairs are separated;
adding votes changes nothing on the evaluation side. Small vote counts are
provisional, with intervals that do not sit on the prior.
"""

import numpy as np
import pytest

from ranking import ArenaBlend, PairCounts, ScoreConfig, SnapshotConfig, TaskInfo, arena_board, build_snapshot
from ranking.intervals import bootstrap_intervals
from ranking.simulate import simulate_arena

TASKS = (
    TaskInfo("qa", "knowledge", "capability"),
    TaskInfo("math", "reasoning", "capability"),
    TaskInfo("direct", "direct-risk", "safety"),
    TaskInfo("wrapped", "adversarial", "safety"),
)
BANDS = ("capability", "safety", "overall")


def _items(quality: dict[str, float], names: tuple[str, ...], seed: int):
    """30 items per task; the adversarial task wraps each of 10 direct prompts three times."""
    model, task, score, cluster = [], [], [], []
    for m, name in enumerate(names):
        rng = np.random.default_rng([seed, m if name not in quality else sorted(quality).index(name)])
        p = quality[name]
        direct = (rng.random(10) < p).astype(float)
        blocks = [(0, rng.random(30) < p, np.arange(1000, 1030)), (1, rng.random(30) < p, np.arange(2000, 2030)),
                  (2, direct, np.arange(10)), (3, np.repeat(direct, 3), np.repeat(np.arange(10), 3))]
        for t, values, ids in blocks:
            model += [m] * len(values)
            task += [t] * len(values)
            score += list(np.asarray(values, dtype=float))
            cluster += list(ids)
    return np.array(model), np.array(task), np.array(score), np.array(cluster)


def _with_silent(counts: PairCounts, names: tuple[str, ...]) -> PairCounts:
    """The same votes over a longer model list: the added models have no games."""
    index = [counts.models.index(n) if n in counts.models else -1 for n in names]
    wins, ties = np.zeros((len(names), len(names))), np.zeros((len(names), len(names)))
    for i, a in enumerate(index):
        for j, b in enumerate(index):
            if a >= 0 and b >= 0:
                wins[i, j], ties[i, j] = counts.wins[a, b], counts.ties[a, b]
    return PairCounts(names, wins, ties)


@pytest.fixture(scope="module")
def votes() -> PairCounts:
    return simulate_arena(5, 3_000, rng=np.random.default_rng(8)).counts()


QUALITY = {"model-000": 0.9, "model-001": 0.75, "model-002": 0.6, "model-003": 0.45, "model-004": 0.3}


def _snapshot(names, votes, config, quality=QUALITY):
    model, task, score, cluster = _items(quality, names, seed=5)
    counts = _with_silent(votes, names)
    return build_snapshot(models=names, tasks=TASKS, item_model=model, item_task=task, item_score=score,
                          item_cluster=cluster, helpfulness=counts, safety=counts, style=None, config=config)


def _assert_same_model(before, after, i: int, j: int) -> None:
    for band in BANDS:
        for part in ("value", "lower", "upper"):
            assert getattr(getattr(after.scores, band), part)[j] == getattr(getattr(before.scores, band), part)[i]
    for board in ("helpfulness", "safety"):
        old, new = getattr(before, board), getattr(after, board)
        for part in ("estimate", "lower", "upper"):
            assert getattr(new.intervals, part)[j] == getattr(old.intervals, part)[i]


def _separated(snapshot, index: list[int]) -> np.ndarray:
    """separated[i, j]: j's interval lies wholly above i's (the pairwise fact behind every rank)."""
    lower, upper = snapshot.scores.overall.lower[index], snapshot.scores.overall.upper[index]
    return lower[None, :] > upper[:, None]


@pytest.mark.parametrize("newcomer_quality", [0.68, 0.02])
def test_adding_a_model_with_items_only_changes_no_other_model(votes, newcomer_quality):
    config = SnapshotConfig(bootstrap_rounds=300, seed=3, min_votes=0)
    names = tuple(QUALITY)
    before = _snapshot(names, votes, config)
    grown = names[:2] + ("newcomer",) + names[2:]
    after = _snapshot(grown, votes, config, {**QUALITY, "newcomer": newcomer_quality})
    position = [grown.index(n) for n in names]
    for i, j in enumerate(position):
        _assert_same_model(before, after, i, j)
    np.testing.assert_array_equal(_separated(after, position), _separated(before, list(range(len(names)))))
    # Groups are formed greedily from the top: every model ranked above the newcomer keeps its group.
    new_value = after.scores.overall.value[2]
    for i, j in enumerate(position):
        if before.scores.overall.value[i] > new_value:
            assert after.ranks.group[j] == before.ranks.group[i]
    if newcomer_quality < 0.1:  # far below everyone: the whole grouping of the others is unchanged
        np.testing.assert_array_equal(after.ranks.group[position], before.ranks.group)


def test_the_test_would_catch_one_shared_generator(votes):
    """Sanity check of the invariance test: spending draws before the items do moves their intervals."""
    from ranking import aggregate_scores

    names = tuple(QUALITY)
    model, task, score, cluster = _items(QUALITY, names, seed=5)
    config = ScoreConfig(rounds=300)
    one = aggregate_scores(names, TASKS, model, task, score, config=config, rng=np.random.default_rng(3),
                           item_cluster=cluster)
    rng = np.random.default_rng(3)
    rng.standard_normal(10)  # what an arena bootstrap on the same generator would have spent
    two = aggregate_scores(names, TASKS, model, task, score, config=config, rng=rng, item_cluster=cluster)
    assert not np.array_equal(one.overall.lower, two.overall.lower)


def test_votes_never_move_the_evaluation_side(votes):
    config = SnapshotConfig(bootstrap_rounds=300, seed=4)
    names = tuple(QUALITY)
    before = _snapshot(names, votes, config)
    more = simulate_arena(5, 2_000, rng=np.random.default_rng(9)).counts()
    after = _snapshot(names, PairCounts(votes.models, votes.wins + more.wins, votes.ties + more.ties), config)
    assert not np.array_equal(after.helpfulness.fit.ratings, before.helpfulness.fit.ratings)
    for band in BANDS:
        for part in ("value", "lower", "upper"):
            np.testing.assert_array_equal(getattr(getattr(after.scores, band), part),
                                          getattr(getattr(before.scores, band), part))
    for part in ("best", "worst", "group"):
        np.testing.assert_array_equal(getattr(after.ranks, part), getattr(before.ranks, part))


def test_anchored_blending_keeps_other_models_fixed(votes):
    config = SnapshotConfig(bootstrap_rounds=300, seed=6, anchor="model-002", min_votes=0,
                            blend=ArenaBlend(capability_weight=0.3, safety_weight=0.2),
                            scores=ScoreConfig(missing="partial"))
    names = tuple(QUALITY)
    before = _snapshot(names, votes, config)
    grown = ("newcomer",) + names
    after = _snapshot(grown, votes, config, {**QUALITY, "newcomer": 0.99})
    for i in range(len(names)):
        _assert_same_model(before, after, i, i + 1)
    assert after.scores.status[0] == "partial"  # no arena rating: a missing blended signal, flagged


SIX_VOTES = PairCounts.from_records(("a", "b", "c"), [("a", "b", 3, 1, 1), ("c", "a", 1, 0, 0)])


def test_six_votes_bootstrap_pins_a_bound_at_the_prior():
    """The failure the page showed (757 [708, 1000]): resamples without c's one game return the prior."""
    from ranking import fit_bradley_terry

    fit = fit_bradley_terry(SIX_VOTES)
    boot = bootstrap_intervals(SIX_VOTES, fit, rounds=1000, rng=np.random.default_rng(0))
    assert np.min(np.abs(np.concatenate([boot.lower, boot.upper]) - 1000.0)) < 1e-3


def test_six_votes_are_provisional_with_intervals_off_the_prior():
    config = SnapshotConfig(bootstrap_rounds=1000, seed=0, min_votes=30)
    board = arena_board(SIX_VOTES, config, np.random.default_rng(0))
    assert board.provisional.all() and board.games.tolist() == [6.0, 5.0, 1.0]
    iv = board.intervals
    assert np.all(iv.lower < board.fit.ratings) and np.all(board.fit.ratings < iv.upper)
    bounds = np.concatenate([iv.lower, iv.upper])
    assert np.min(np.abs(bounds - config.anchor_rating)) > 1.0  # no bound on the prior mean
    assert iv.width[2] > iv.width[0]  # one game says less than six
    assert np.isfinite(iv.draws).all() and iv.draws.shape == (1000, 3)
    settled = arena_board(SIX_VOTES, SnapshotConfig(bootstrap_rounds=1000, min_votes=5), np.random.default_rng(0))
    assert settled.provisional.tolist() == [False, False, True]
