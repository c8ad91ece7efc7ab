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
    build_snapshot,
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
    config = SnapshotConfig(anchor="ref", blend=ArenaBlend(capability_weight=0.25),
                            scores=ScoreConfig(missing="partial"))
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
                          config=config)
    assert snap.config == config.as_dict()
    assert snap.helpfulness.fit.rated.sum() == 5 and snap.style.converged
    assert snap.scores.status == ("ok",) * 6  # not blended: the arena-less model is fine
    assert snap.ranks.best.min() == 1 and snap.ranks.worst.max() <= 6
    again = build_snapshot(models=models, tasks=TASKS, item_model=model, item_task=task, item_score=score,
                           helpfulness=style.pair_counts(), safety=None, style=None,
                           config=config)
    np.testing.assert_array_equal(again.helpfulness.intervals.lower, snap.helpfulness.intervals.lower)


def test_blending_moves_capability_toward_arena_relative_to_the_anchor(world):
    models, style, (model, task, score) = world
    from ranking import aggregate_scores, arena_board

    config = SnapshotConfig(anchor=models[0], anchor_rating=1200.0, bootstrap_rounds=100,
                            blend=ArenaBlend(capability_weight=0.5))
    board = arena_board(style.pair_counts(), config, np.random.default_rng(2))
    scores = aggregate_scores(models, TASKS, model, task, score, config=ScoreConfig(rounds=100, missing="partial"),
                              rng=np.random.default_rng(3))
    blended = blend_arena(scores, board, None, config.blend)
    # The anchor itself maps to exactly 1/2; the others by their gap to it, through the fixed logistic.
    expected = 0.5 * scores.capability.value[:5] + 0.5 * rating_to_unit(board.fit.ratings - 1200.0, 0.0)
    np.testing.assert_allclose(blended.capability.value[:5], expected)
    assert blended.capability.value[0] == 0.5 * scores.capability.value[0] + 0.25
    np.testing.assert_array_equal(blended.safety.value, scores.safety.value)
    assert blended.status[5] == "partial" and "arena/helpfulness" in blended.missing[5]
    assert blended.capability.value[5] == scores.capability.value[5]
    assert blend_arena(scores, board, None, ArenaBlend()) is scores


def test_blending_without_an_anchor_is_refused(world):
    models, style, (model, task, score) = world
    from ranking import aggregate_scores, arena_board

    with pytest.raises(ValueError, match="anchor"):
        SnapshotConfig(blend=ArenaBlend(safety_weight=0.3))
    board = arena_board(style.pair_counts(), SnapshotConfig(bootstrap_rounds=50), np.random.default_rng(2))
    scores = aggregate_scores(models, TASKS, model, task, score, config=ScoreConfig(rounds=50, missing="partial"),
                              rng=np.random.default_rng(3))
    with pytest.raises(ValueError, match="anchored"):
        blend_arena(scores, board, None, ArenaBlend(capability_weight=0.5))


def test_anchor_missing_from_the_board_is_a_clear_error(world):
    _, style, _ = world
    from ranking import arena_board

    with pytest.raises(ValueError, match="not among the models"):
        arena_board(style.pair_counts(), SnapshotConfig(anchor="nobody"), np.random.default_rng(0))
