"""Pair draws on the real database: maintainer weights, the new-model boost, active scores, replay,
the refresh job and the admin endpoints (issue 11, item 5)."""

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from sqlalchemy import select

from arena import jobs, pairing
from arena import pairing_repository as repo
from arena.models import Battle, PairCount, PairScore
from core.db import transaction
from core.errors import LibraError
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.settings import Settings
from server.jobs import build_job_app
from server.seed import seed_defaults


@pytest.fixture
async def models(runtime) -> dict[str, int]:
    """The four default contestants, slug -> id."""
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return {m.slug: m.id for m in await registry.list_all(session, ContestantStatus.active)}


def _settings(**changes: object) -> Settings:
    return Settings(_env_file=None, database_url=None, **changes)


async def _draws(runtime, settings: Settings, n: int) -> list[tuple[int, int]]:
    async with transaction(runtime.sessions) as session:
        return [(d.model_a.id, d.model_b.id)
                for d in [await pairing.draw(session, np.random.default_rng([7, i]), settings) for i in range(n)]]


async def _set_weight(runtime, model_id: int, weight: float) -> None:
    async with transaction(runtime.sessions) as session:
        await repo.set_weight(session, model_id, weight, None, "test")


async def _give_votes(runtime, ids: list[int], each: int) -> None:
    """Counted helpfulness votes between consecutive models of `ids`, `each` per pair."""
    async with transaction(runtime.sessions) as session:
        for lo, hi in itertools.pairwise(ids):
            lo, hi = sorted((lo, hi))
            session.add(PairCount(dimension="helpfulness", model_lo_id=lo, model_hi_id=hi, lo_wins=each // 2,
                                  hi_wins=each - each // 2 - each // 4, ties=each // 4, both_bad=0))


async def test_a_weight_of_zero_is_never_drawn_and_weights_shape_the_odds(runtime, models) -> None:
    ids = sorted(models.values())
    await _set_weight(runtime, ids[0], 0.0)
    await _set_weight(runtime, ids[1], 4.0)
    uniform = _settings(arena_pairing="uniform")
    draws = await _draws(runtime, uniform, 400)
    assert all(ids[0] not in pair for pair in draws)
    async with transaction(runtime.sessions) as session:
        record, _ = await pairing.draw_inputs(session, np.random.default_rng(1), uniform)
    pairs, p = pairing.pair_probabilities(record)  # under "uniform" the record alone is enough
    assert record["models"] == ids[1:] and record["weights"] == [4.0, 1.0, 1.0]
    assert pairs == [(ids[1], ids[2]), (ids[1], ids[3]), (ids[2], ids[3])]
    assert p == pytest.approx([4 / 9, 4 / 9, 1 / 9])
    with_heavy = sum(ids[1] in pair for pair in draws) / len(draws)
    assert 0.8 < with_heavy < 0.95  # 8/9 in expectation


async def test_new_models_are_boosted_until_they_have_enough_votes(runtime, models) -> None:
    ids = sorted(models.values())
    await _give_votes(runtime, ids[:3], 40)  # ids[0..2] counted 40 or 80 votes; ids[3] none
    settings = _settings(arena_pairing="uniform", arena_new_model_votes=30, arena_new_model_boost=3.0)
    async with transaction(runtime.sessions) as session:
        record, _ = await pairing.draw_inputs(session, np.random.default_rng(1), settings)
    assert record["boosts"] == [1.0, 1.0, 1.0, 3.0]
    pairs, p = pairing.pair_probabilities(record)
    assert sum(q for pair, q in zip(pairs, p, strict=True) if ids[3] in pair) == pytest.approx(0.75)
    share = sum(ids[3] in pair for pair in await _draws(runtime, settings, 400)) / 400
    assert 0.68 < share < 0.82  # 0.75 in expectation, 0.5 without the boost
    enough = _settings(arena_pairing="uniform", arena_new_model_votes=0)
    async with transaction(runtime.sessions) as session:
        assert (await pairing.draw_inputs(session, np.random.default_rng(1), enough))[0]["boosts"] == [1.0] * 4


async def test_a_recorded_draw_replays_to_the_same_pair(runtime, models) -> None:
    await _give_votes(runtime, sorted(models.values()), 50)
    async with transaction(runtime.sessions) as session:
        await pairing.refresh_scores(session)
        known = await repo.scores_of(session, 1)
        for seed in range(30):
            found = await pairing.draw(session, np.random.default_rng(seed), _settings())
            assert found.record["policy"] == "active" and found.record["scores_version"] == 1
            assert "scores" not in found.record  # named by version, not copied into every battle
            assert pairing.replay_draw(found.record, known) == (found.model_a.id, found.model_b.id)
            # What battles.pairing stores (JSONB) replays too: the record survives a JSON round trip.
            stored = json.loads(json.dumps(found.record))
            assert pairing.replay_draw(stored, known) == (found.model_a.id, found.model_b.id)
            assert await pairing.replay_stored(session, stored) == (found.model_a.id, found.model_b.id)
        with pytest.raises(ValueError, match="scores of version 1"):
            pairing.replay_draw(found.record)
    sides: Counter[bool] = Counter()
    for seed in range(200):
        async with transaction(runtime.sessions) as session:
            found = await pairing.draw(session, np.random.default_rng(seed), _settings())
        sides[found.model_a.id < found.model_b.id] += 1
    assert 70 < sides[True] < 130  # side order is random


def test_a_record_stored_with_its_scores_still_replays() -> None:
    """Records of version 1 (before the scores were named by version) carry every pair's score."""
    record = {"v": 1, "policy": "active", "seed": 11, "models": [3, 5, 9], "weights": [1.0, 1.0, 1.0],
              "boosts": [1.0, 1.0, 1.0], "scores_version": 4, "scores": [0.0, 1.0, 0.0]}
    assert all(pairing.replay_draw({**record, "seed": seed}) in ((3, 9), (9, 3)) for seed in range(20))
    pairs, p = pairing.pair_probabilities(record)
    assert pairs == [(3, 5), (3, 9), (5, 9)] and list(p) == [0.0, 1.0, 0.0]


async def test_the_refresh_job_keeps_every_version_and_new_models_get_a_fallback(runtime, models) -> None:
    ids = sorted(models.values())
    await _give_votes(runtime, ids[:3], 60)  # ids[3] has no votes: no score of its own
    context = _ContextForTests({"sessions": runtime.sessions, "settings": _settings()})
    assert await jobs.refresh_pair_scores(context, timestamp=0) == 1
    async with transaction(runtime.sessions) as session:
        first = await pairing.draw(session, np.random.default_rng(3), _settings())
    assert await jobs.refresh_pair_scores(context, timestamp=1) == 1  # no new votes: no new version
    await _give_votes(runtime, [ids[0], ids[2]], 30)
    assert await jobs.refresh_pair_scores(context, timestamp=2) == 2
    async with transaction(runtime.sessions) as session:
        rows = (await session.scalars(select(PairScore))).all()
        record, known = await pairing.draw_inputs(session, np.random.default_rng(3), _settings())
        # The battle drawn with version 1 still replays with version 1's scores, now that 2 is the latest.
        assert await pairing.replay_stored(session, first.record) == (first.model_a.id, first.model_b.id)
        assert await repo.scores_of(session, 1) != known
    pairs_of = {v: {(r.model_lo_id, r.model_hi_id) for r in rows if r.version == v} for v in (1, 2)}
    assert pairs_of[1] == pairs_of[2] == {(ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])}
    assert len(rows) == 6 and all(r.score > 0 for r in rows)
    assert record["scores_version"] == 2 and known == {(r.model_lo_id, r.model_hi_id): r.score
                                                       for r in rows if r.version == 2}
    pairs, scores = pairing.pair_probabilities(record, known)[0], pairing.record_scores(record, known)
    top = max(known.values())
    assert all(scores[pairs.index((lo, ids[3]))] == top for lo in ids[:3])  # the fallback: as useful as the best


async def test_the_draw_never_uses_scores_it_kept_from_another_refresh(runtime, models) -> None:
    """Each process keeps the latest version's scores (read once, not at every battle). A new version, or
    the same version number written again (a recreated or restored database under a running process),
    must be read afresh: the draw's pair odds follow the scores in the database, never the kept copy."""
    from core.db import driver_connection as connection
    from core.db import engine_of

    ids = sorted(models.values())
    favoured = {(ids[0], ids[1]): 1.0, (ids[2], ids[3]): 1e-9}

    async def write_version_1(scores: dict[tuple[int, int], float]) -> None:
        async with transaction(runtime.sessions) as session:
            await session.execute(PairScore.__table__.delete())
            assert await repo.add_scores(session, [(lo, hi, s) for (lo, hi), s in scores.items()]) == 1

    async def pairs_drawn() -> Counter[tuple[int, int]]:
        async with connection(engine_of(runtime.sessions)) as conn:
            draws = [await pairing.draw_on(conn, np.random.default_rng([4, i]), _settings()) for i in range(60)]
        assert {d.record["scores_version"] for d in draws} == {1}
        return Counter(tuple(sorted((d.model_a.id, d.model_b.id))) for d in draws)

    await write_version_1(favoured)
    assert (ids[2], ids[3]) not in await pairs_drawn()  # 1e-9 of the mass; the other pairs get the top score
    await write_version_1({(ids[0], ids[1]): 1e-9, (ids[2], ids[3]): 1.0})
    found = await pairs_drawn()
    assert (ids[0], ids[1]) not in found and found[(ids[2], ids[3])] > 0


async def test_concurrent_refreshes_take_turns_and_get_their_own_versions(runtime, models) -> None:
    import asyncio

    ids = sorted(models.values())

    async def refresh(score: float) -> int:
        async with transaction(runtime.sessions) as session:
            return await repo.add_scores(session, [(ids[0], ids[1], score), (ids[1], ids[2], 1.0)])

    assert sorted(await asyncio.gather(*(refresh(0.1 * k) for k in range(1, 5)))) == [1, 2, 3, 4]
    async with transaction(runtime.sessions) as session:
        assert len((await session.scalars(select(PairScore))).all()) == 8


async def test_the_refresh_job_runs_on_the_snapshot_schedule() -> None:
    settings = _settings(leaderboard_cron="*/7 * * * *")
    app = build_job_app("postgresql://unused/db", settings)
    task = app.periodic_registry.periodic_tasks[("arena:refresh_pair_scores", "pair_scores")]
    assert task.cron == "*/7 * * * *" and task.task.queue == "housekeeping"


async def test_fewer_than_two_drawable_models_is_no_pair(client, runtime, models) -> None:
    ids = sorted(models.values())
    for model_id in ids[1:]:
        await _set_weight(runtime, model_id, 0.0)
    with pytest.raises(LibraError) as raised:
        await _draws(runtime, _settings(), 1)
    assert raised.value.status == 503 and raised.value.code == "no_pair"
    response = await client.post("/api/v1/battles", json={"prompt": "hi"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_pair"


async def test_a_battle_stores_its_draw_record(client, runtime, models) -> None:
    created = await client.post("/api/v1/battles", json={"prompt": "How do plants make food?"})
    assert created.status_code == 201, created.text
    async with transaction(runtime.sessions) as session:
        battle = (await session.scalars(select(Battle))).one()
    assert battle.pairing["policy"] == "active"
    async with transaction(runtime.sessions) as session:
        assert await pairing.replay_stored(session, battle.pairing) == (battle.model_a_id, battle.model_b_id)


async def _admin(runtime, scope: KeyScope = KeyScope.admin) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "tester", scope, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def test_admins_list_and_set_weights_and_the_change_is_audited(client, runtime, models) -> None:
    headers = await _admin(runtime)
    listed = await client.get("/api/v1/admin/arena/weights", headers=headers)
    assert listed.status_code == 200
    assert {w["slug"] for w in listed.json()} == set(models) and all(w["weight"] == 1.0 for w in listed.json())
    slug = min(models)
    changed = await client.put(f"/api/v1/admin/arena/weights/{slug}", json={"weight": 0, "note": " broken "},
                               headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["weight"] == 0.0 and changed.json()["note"] == "broken"
    again = {w["slug"]: w for w in (await client.get("/api/v1/admin/arena/weights", headers=headers)).json()}
    assert again[slug]["weight"] == 0.0 and again[slug]["updated_by"].startswith("key:")
    assert again[slug]["draw_share"] == 0.0
    assert sum(w["draw_share"] for w in again.values()) == pytest.approx(2.0)  # two models per battle
    assert all(w["draw_share"] == pytest.approx(2 / 3) for s, w in again.items() if s != slug)
    from core.audit.repository import latest

    async with transaction(runtime.sessions) as session:
        assert "arena.weight.set" in [e.action for e in await latest(session)]


async def test_weight_endpoints_need_an_admin_and_valid_input(client, runtime, models) -> None:
    slug = min(models)
    assert (await client.get("/api/v1/admin/arena/weights")).status_code == 401
    submitter = await _admin(runtime, KeyScope.submitter)
    assert (await client.get("/api/v1/admin/arena/weights", headers=submitter)).status_code == 403
    assert (await client.put(f"/api/v1/admin/arena/weights/{slug}", json={"weight": 2},
                             headers=submitter)).status_code == 403
    admin = await _admin(runtime)
    for bad in ({"weight": -1}, {"weight": "heavy"}, {}, {"weight": 1, "extra": 1}, {"weight": 1e9},
                {"weight": 1, "note": "x" * 501}, {"weight": 1, "note": "a\x00b"}):
        response = await client.put(f"/api/v1/admin/arena/weights/{slug}", json=bad, headers=admin)
        assert response.status_code == 422, (bad, response.text)
    nan = await client.put(f"/api/v1/admin/arena/weights/{slug}", content=b'{"weight": NaN}',
                           headers={**admin, "Content-Type": "application/json"})
    assert nan.status_code == 422
    missing = await client.put("/api/v1/admin/arena/weights/nobody", json={"weight": 1}, headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for bad_slug in ("Not%20A%20Slug", "x" * 80, "-dash-first"):
        assert (await client.put(f"/api/v1/admin/arena/weights/{bad_slug}", json={"weight": 1},
                                 headers=admin)).status_code == 422
        assert (await client.post(f"/api/v1/admin/arena/paused/{bad_slug}/resume", headers=admin)).status_code == 422


@dataclass
class _ContextForTests:
    """The attribute of procrastinate's JobContext that the arena's jobs read."""

    additional_context: dict = field(default_factory=dict)


def test_the_pairing_benchmark_uses_the_service_rules_and_replays() -> None:
    from benchmarks import arena_pairing

    tiny = arena_pairing.SimPlan(models=4, repeats=1, refresh=200, max_votes=40_000)
    found = arena_pairing.pairing_efficiency(tiny, seed=7, bound=True, join=True)
    run = found["runs"][0]
    assert run["uniform_votes"] and run["active_votes"] and run["greedy_votes"]
    assert 0 < run["best_allocation_ratio"] <= 1.0 + 1e-6  # uniform is one of the allocations
    joined = run["new_model_joins"]
    assert joined["seed"] == [7, 6, 0] and joined["uniform_votes"] and joined["active_votes"]
    assert found["new_model_joins_active_over_uniform_votes"] == joined["active_votes"] / joined["uniform_votes"]
    assert arena_pairing.pairing_efficiency(tiny, seed=7, bound=True, join=True)["runs"] == found["runs"]
    # The first batch of the service's policy, with no fit yet: every model is new, so it is uniform.
    a, b = arena_pairing.service_pairs(None, None, 4, 600, np.random.default_rng(1))
    pairs = Counter(tuple(sorted(p)) for p in zip(a.tolist(), b.tolist(), strict=True))
    assert len(pairs) == 6 and min(pairs.values()) > 60


async def test_the_battle_paths_draw_is_the_sessions_draw(runtime, models) -> None:
    """The battle path draws on the driver's own connection (pairing.draw_on); with the same generator it
    must make the same record and pair as `draw` through a session, weights, boosts and scores included."""
    from core.db import driver_connection as connection
    from core.db import engine_of

    ids = sorted(models.values())
    await _set_weight(runtime, ids[0], 2.5)
    await _set_weight(runtime, ids[1], 0)  # not drawable
    await _give_votes(runtime, ids[1:], 40)
    async with transaction(runtime.sessions) as session:
        await pairing.refresh_scores(session)
    for settings in (_settings(), _settings(arena_pairing="uniform")):
        async with transaction(runtime.sessions) as session:
            by_session = [await pairing.draw(session, np.random.default_rng([5, i]), settings) for i in range(20)]
        async with connection(engine_of(runtime.sessions)) as conn:
            on_conn = [await pairing.draw_on(conn, np.random.default_rng([5, i]), settings) for i in range(20)]
        assert [d.record for d in on_conn] == [d.record for d in by_session]
        assert [(d.model_a.slug, d.model_b.slug) for d in on_conn] == [(d.model_a.slug, d.model_b.slug)
                                                                      for d in by_session]
        assert on_conn[0].record["scores_version" if settings.arena_pairing == "active" else "policy"] is not None
        assert ids[1] not in on_conn[0].record["models"]
    assert {d.model_a.config["kind"] for d in on_conn} <= {"llamacpp", "openai"}  # full model rows, config included
