import numpy as np
import pytest

from ranking import ScoreConfig, TaskInfo, aggregate_scores, libra_overall, rating_to_unit

TASKS = (
    TaskInfo("mmlu", "knowledge", "capability"),
    TaskInfo("arc", "knowledge", "capability"),
    TaskInfo("gsm", "reasoning", "capability"),
    TaskInfo("harmful", "refusal", "safety"),
    TaskInfo("xstest", "over-refusal", "safety"),
)


def test_overall_formula_and_weights():
    assert libra_overall(1.0, 1.0) == pytest.approx(1.0)
    assert libra_overall(0.0, 0.0) == pytest.approx(0.0)
    assert libra_overall(0.6, 0.8) == pytest.approx(1 - np.sqrt((0.4**2 + 0.2**2) / 2))
    # Fixing the weak axis gains more than polishing the strong one.
    assert libra_overall(0.7, 0.7) > libra_overall(0.5, 0.9)
    assert libra_overall(0.6, 0.8, weights=(3.0, 1.0)) == pytest.approx(1 - np.sqrt((3 * 0.16 + 0.04) / 4))


def test_rating_to_unit_is_fixed_win_probability():
    assert rating_to_unit(1000.0) == pytest.approx(0.5)
    assert rating_to_unit(1400.0) == pytest.approx(10 / 11)
    assert rating_to_unit(1200.0, reference_rating=1200.0) == pytest.approx(0.5)


def _items(rng, models_quality, per_task=40, skip=()):
    model, task, score = [], [], []
    for m, quality in enumerate(models_quality):
        for t in range(len(TASKS)):
            if (m, t) in skip:
                continue
            model += [m] * per_task
            task += [t] * per_task
            score += list((rng.random(per_task) < quality[t]).astype(float))
    return np.array(model), np.array(task), np.array(score)


def test_macro_averages_items_tasks_categories():
    model = np.array([0] * 7)
    task = np.array([0, 0, 1, 2, 2, 3, 4])
    score = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.2, np.nan])
    # Task 4 has only a status (NaN): it is missing, not 0.5.
    config = ScoreConfig(rounds=50, missing="partial", min_items_per_category=1)
    scores = aggregate_scores(("m",), TASKS, model, task, score, config=config, rng=np.random.default_rng(0))
    # knowledge = mean(0.5, 1.0) = 0.75; reasoning = 1.0; c = 0.875
    assert scores.capability.value[0] == pytest.approx(0.875)
    assert scores.safety.value[0] == pytest.approx(0.2)
    assert scores.status == ("partial",)
    assert scores.missing == (("safety/over-refusal",),)
    assert np.isnan(scores.task_means[0, 4])


def test_missing_category_is_unranked_by_default():
    rng = np.random.default_rng(1)
    model, task, score = _items(rng, [[0.8] * 5, [0.7] * 5], skip={(1, 4)})
    scores = aggregate_scores(("a", "b"), TASKS, model, task, score, config=ScoreConfig(rounds=100), rng=rng)
    assert scores.status == ("ok", "unranked")
    assert np.isnan(scores.overall.value[1]) and np.isnan(scores.capability.lower[1])
    assert np.isfinite(scores.overall.value[0])


def test_required_categories_limit_what_counts():
    rng = np.random.default_rng(2)
    model, task, score = _items(rng, [[0.8] * 5], skip={(0, 4)})
    config = ScoreConfig(required=(("safety", ("refusal",)),), rounds=50)
    scores = aggregate_scores(("a",), TASKS, model, task, score, config=config, rng=rng)
    assert scores.status == ("ok",)
    assert scores.safety.value[0] == pytest.approx(scores.task_means[0, 3])


def test_adding_a_model_changes_no_other_model():
    rng = np.random.default_rng(3)
    quality = [[0.9, 0.8, 0.7, 0.6, 0.9], [0.5, 0.6, 0.4, 0.95, 0.8]]
    model, task, score = _items(rng, quality)
    config = ScoreConfig(rounds=300)
    before = aggregate_scores(("a", "b"), TASKS, model, task, score, config=config, rng=np.random.default_rng(7))
    # A much stronger model joins; normalisation is fixed, so a and b keep every number.
    new_model, new_task, new_score = _items(rng, [[1.0] * 5])
    after = aggregate_scores(
        ("new", "a", "b"),
        TASKS,
        np.concatenate([new_model, model + 1]),
        np.concatenate([new_task, task]),
        np.concatenate([new_score, score]),
        config=config,
        rng=np.random.default_rng(7),
    )
    for band in ("capability", "safety", "overall"):
        for part in ("value", "lower", "upper"):
            np.testing.assert_array_equal(getattr(getattr(after, band), part)[1:], getattr(getattr(before, band), part))


def test_intervals_cover_and_shrink_with_items():
    rng = np.random.default_rng(4)
    small = aggregate_scores(("a",), TASKS, *_items(rng, [[0.7] * 5], per_task=20),
                             config=ScoreConfig(rounds=400), rng=rng)
    large = aggregate_scores(("a",), TASKS, *_items(rng, [[0.7] * 5], per_task=500),
                             config=ScoreConfig(rounds=400), rng=rng)
    for scores in (small, large):
        assert scores.overall.lower[0] < scores.overall.value[0] < scores.overall.upper[0]
        assert scores.capability.lower[0] < 0.7 < scores.capability.upper[0]
    width = lambda s: s.overall.upper[0] - s.overall.lower[0]
    assert width(large) < 0.4 * width(small)


def test_resampled_mean_matches_item_bootstrap_spread():
    from ranking.libra import resampled_mean

    rng = np.random.default_rng(5)
    values = rng.choice([0.0, 0.5, 1.0], size=200)
    fast = resampled_mean(values, 4000, rng)
    slow = values[rng.integers(0, 200, size=(4000, 200))].mean(axis=1)
    assert fast.std() == pytest.approx(slow.std(), rel=0.08)
    assert fast.mean() == pytest.approx(values.mean(), abs=0.005)


def test_scores_outside_unit_interval_are_rejected():
    with pytest.raises(ValueError):
        aggregate_scores(("a",), TASKS, np.array([0]), np.array([0]), np.array([1.5]),
                         config=ScoreConfig(rounds=10), rng=np.random.default_rng(0))
