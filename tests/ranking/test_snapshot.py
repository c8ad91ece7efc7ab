import json

import numpy as np
import pytest

from ranking import (
    ArenaBlend,
    ScoreConfig,
    SnapshotConfig,
    StyleCounts,
    TaskInfo,
    blend_arena,
    bootstrap_intervals,
    build_snapshot,
    fit_bradley_terry,
    rating_to_unit,
)
from ranking.simulate import simulate_styled_arena

TASKS = (TaskInfo("qa", "knowledge", "capability"), TaskInfo("harm", "refusal", "safety"))


def _inputs(models, rng):
    model = np.repeat(np.arange(len(models)), 60)
    task = np.tile(np.repeat([0, 1], 30), len(models))
    score = (rng.random(model.size) < 0.75).astype(float)
    return model, task, score


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(12)
    styled = simulate_styled_arena(5, 8_000, rng=rng)
    arena = styled.arena
    style = StyleCounts.from_votes(arena.models, arena.model_a, arena.model_b, arena.outcome,
                                   styled.style_a, styled.style_b)
    models = arena.models + ("no-arena",)
    return models, style, _inputs(models, rng)


def test_config_is_recorded_as_plain_data():
    config = SnapshotConfig(blend=ArenaBlend(capability_weight=0.25), scores=ScoreConfig(missing="partial"))
    data = config.as_dict()
    assert data["blend"]["capability_weight"] == 0.25 and data["scores"]["missing"] == "partial"
    assert data["scores"]["rounds"] == data["bootstrap_rounds"]  # what was used, not a stale default
    assert data["method"].startswith("libra-ranking/")
    json.dumps(data)


def test_default_snapshot_shows_arena_beside_scores(world):
    models, style, (model, task, score) = world
    config = SnapshotConfig(bootstrap_rounds=200, seed=1)
    snap = build_snapshot(models=models, tasks=TASKS, item_model=model, item_task=task, item_score=score,
                          helpfulness=style.pair_counts(), safety=style.pair_counts(), style=style,
                          config=config, rng=np.random.default_rng(config.seed))
    assert snap.config == config.as_dict()
    assert snap.helpfulness.fit.rated.sum() == 5 and snap.style.converged
    assert snap.scores.status == ("ok",) * 6  # not blended: the arena-less model is fine
    assert snap.ranks.best.min() == 1 and snap.ranks.worst.max() <= 6
    again = build_snapshot(models=models, tasks=TASKS, item_model=model, item_task=task, item_score=score,
                           helpfulness=style.pair_counts(), safety=None, style=None,
                           config=config, rng=np.random.default_rng(config.seed))
    np.testing.assert_array_equal(again.helpfulness.intervals.lower, snap.helpfulness.intervals.lower)


def test_blending_moves_capability_toward_arena(world):
    models, style, (model, task, score) = world
    from ranking import aggregate_scores

    counts = style.pair_counts()
    fit = fit_bradley_terry(counts)
    boot = bootstrap_intervals(counts, fit, rounds=100, rng=np.random.default_rng(2))
    scores = aggregate_scores(models, TASKS, model, task, score, config=ScoreConfig(rounds=100, missing="partial"),
                              rng=np.random.default_rng(3))
    blended = blend_arena(scores, boot, None, ArenaBlend(capability_weight=0.5))
    expected = 0.5 * scores.capability.value[:5] + 0.5 * rating_to_unit(fit.ratings)
    np.testing.assert_allclose(blended.capability.value[:5], expected)
    np.testing.assert_array_equal(blended.safety.value, scores.safety.value)
    assert blended.status[5] == "partial" and "arena/helpfulness" in blended.missing[5]
    assert blended.capability.value[5] == scores.capability.value[5]
    assert blend_arena(scores, boot, None, ArenaBlend()) is scores
