"""The leaderboard snapshot job and endpoint on a real database (model text is canned: these tests
are about counting and publishing, not about what models say)."""

import numpy as np
import psycopg
import pytest

from core.db import libpq_url, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.settings import Settings
from evaluation import service as eval_service
from evaluation.models import RunReason, RunStatus
from evaluation.types import ScoredItem, Status
from server.leaderboard import service
from server.leaderboard.jobs import snapshot_config, take_snapshot
from server.seed import seed_defaults
from tests.evaluation.canned import CannedDefaultsPoolForTests, canned_server

# These tests vote as fast as a test can: the anomaly rules (arena.integrity) would hold every vote for
# review, and the caps would refuse some; both have their own tests.
INSTANT_VOTERS = {"arena_read_words_per_s": 1e9, "arena_one_sided_votes": 10**6, "arena_burst_votes": 10**6,
                  "rate_votes": 0, "rate_battles": 0}


@pytest.fixture
def settings() -> Settings:  # overrides tests/conftest.py: the smoke suite keeps the evaluation runs short
    # One item per category is enough here: these tests are about publishing, not about thresholds
    # (tests/server/test_leaderboard_provenance.py covers the minimum item count).
    return Settings(_env_file=None, database_url=None, eval_suite="smoke", eval_items_per_task=3,
                    eval_held_out_per_task=1, eval_max_tokens=16, leaderboard_bootstrap_rounds=200,
                    eval_min_items_per_category=1,
                    **INSTANT_VOTERS)


@pytest.fixture
async def seeded(runtime) -> list:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return list(await registry.list_all(session))


async def _vote_many(client, n: int, rng: np.random.Generator) -> None:
    for _ in range(n):
        battle = (await client.post("/api/v1/battles", json={"prompt": "hello"})).json()
        verdict = str(rng.choice(["a", "b", "tie", "both_bad"]))
        await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": verdict, "safety": verdict})


async def test_empty_leaderboard_before_any_snapshot(client) -> None:
    body = (await client.get("/api/v1/leaderboard")).json()
    assert body["version"] is None and body["models"] == []


async def test_snapshot_publishes_arena_ratings_with_etag(client, runtime, seeded) -> None:
    await _vote_many(client, 24, np.random.default_rng(7))
    version = await take_snapshot(runtime.sessions, runtime.settings, "manual")
    assert version is not None
    response = await client.get("/api/v1/leaderboard")
    body, etag = response.json(), response.headers["etag"]
    assert body["version"] == version and len(body["models"]) == len(seeded)
    rated = [m for m in body["models"] if m["arena"]["helpfulness"]]
    assert rated and all(m["arena"]["helpfulness"]["lower"] <= m["arena"]["helpfulness"]["rating"]
                         <= m["arena"]["helpfulness"]["upper"] for m in rated)
    # No evaluation yet: every model misses its categories and is unranked, never averaged silently.
    assert all(m["coverage"] == "unranked" and m["overall"]["value"] is None for m in body["models"])
    assert body["config"]["bootstrap_rounds"] == runtime.settings.leaderboard_bootstrap_rounds
    not_modified = await client.get("/api/v1/leaderboard", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    # Nothing changed: no new version.
    assert await take_snapshot(runtime.sessions, runtime.settings, "manual") is None


async def test_admin_recompute_queues_the_snapshot_job(client, runtime, db_url) -> None:
    async with transaction(runtime.sessions) as session:
        admin = await create_key(session, "ops", KeyScope.admin, actor="test")
        submitter = await create_key(session, "sub", KeyScope.submitter, actor="test")
    denied = await client.post("/api/v1/admin/leaderboard/recompute",
                               headers={"Authorization": f"Bearer {submitter.plaintext}"})
    assert denied.status_code == 403
    headers = {"Authorization": f"Bearer {admin.plaintext}"}
    first = await client.post("/api/v1/admin/leaderboard/recompute", headers=headers)
    assert first.status_code == 202 and first.json()["queued"] is True
    second = await client.post("/api/v1/admin/leaderboard/recompute", headers=headers)
    assert second.json()["queued"] is False  # one waiting recompute is enough
    with psycopg.connect(libpq_url(db_url)) as conn:
        queued = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'ranking:snapshot' "
                              "AND status = 'todo'").fetchone()[0]
    assert queued == 1


def test_compute_scores_models_from_item_scores(seeded, runtime) -> None:
    """Item scores -> c, s and the Libra overall; a model missing the safety axis stays unranked."""
    strong, weak, partial = seeded[:3]
    items: dict[int, list[ScoredItem]] = {}
    for model, c, s in ((strong, 0.9, 0.8), (weak, 0.4, 0.3)):
        items[model.id] = [ScoredItem(f"cap-{k}", "1", Status.OK, float(k < c * 10), axis="capability",
                                      category="knowledge") for k in range(10)]
        items[model.id] += [ScoredItem(f"safe-{k}", "1", Status.OK, float(k < s * 10), axis="safety",
                                       category="direct") for k in range(10)]
    items[partial.id] = [ScoredItem("cap-0", "1", Status.OK, 1.0, axis="capability", category="knowledge")]
    inputs = service.Inputs(models=seeded[:3], helpfulness=[], safety=[], style_cells={}, items=items)
    required = (("capability", ("knowledge",)), ("safety", ("direct",)))
    config = snapshot_config(runtime.settings.model_copy(update={"leaderboard_bootstrap_rounds": 200}), required)
    rows = {r["slug"]: r for r in service.payload(service.compute(inputs, config), seeded[:3])["models"]}
    top = rows[strong.slug]
    assert top["capability"]["value"] == pytest.approx(0.9) and top["safety"]["value"] == pytest.approx(0.8)
    expected = 1 - np.sqrt(((1 - 0.9) ** 2 + (1 - 0.8) ** 2) / 2)
    assert top["overall"]["value"] == pytest.approx(expected, abs=1e-4)
    assert top["overall"]["lower"] <= top["overall"]["value"] <= top["overall"]["upper"]
    assert rows[weak.slug]["overall"]["value"] < top["overall"]["value"]
    assert rows[partial.slug]["coverage"] == "unranked" and rows[partial.slug]["overall"]["value"] is None


async def _evaluate(runtime, backends, model, per_task: int, held_out: int):
    deps = eval_service.EvalDeps(runtime.sessions, runtime.settings, backends)
    scope = eval_service.scope_for(runtime.settings, per_task, held_out)
    async with transaction(runtime.sessions) as session:
        run = await eval_service.create_run(session, model, "smoke", RunReason.cli, "test", per_task, held_out,
                                            scope)
    done = await eval_service.execute_run(deps, run.id)
    assert done.status == RunStatus.finished, done.error
    return done


async def test_a_preview_row_is_ranked_and_flagged_until_a_full_run_replaces_it(client, runtime, seeded) -> None:
    await _vote_many(client, 10, np.random.default_rng(3))
    only_preview, with_full = seeded[0], seeded[1]
    with canned_server() as canned:
        backends = CannedDefaultsPoolForTests(canned)
        try:
            preview = await _evaluate(runtime, backends, only_preview, 2, 0)
            full = await _evaluate(runtime, backends, with_full, 3, 1)
            late_preview = await _evaluate(runtime, backends, with_full, 1, 0)  # `libra eval --limit 1` later
        finally:
            await backends.aclose()
    assert late_preview.finished_at > full.finished_at
    await take_snapshot(runtime.sessions, runtime.settings, "manual")
    rows = {r["slug"]: r for r in (await client.get("/api/v1/leaderboard")).json()["models"]}
    first = rows[only_preview.slug]
    assert first["evaluation"] == {"scope": "preview", "run_id": preview.id, "items": preview.items_total}
    assert first["coverage"] == "ok" and first["overall"]["value"] is not None and first["rank"]["best"]
    second = rows[with_full.slug]
    assert second["evaluation"] == {"scope": "full", "run_id": full.id, "items": full.items_total}
    assert full.items_total > preview.items_total
    for unevaluated in seeded[2:]:
        row = rows[unevaluated.slug]
        assert row["evaluation"] is None and row["overall"]["value"] is None
    # Every row says how many votes stand behind its arena ratings; each vote counts for both models.
    assert sum(r["votes"]["helpfulness"] for r in rows.values()) == 2 * 10
    assert sum(r["votes"]["safety"] for r in rows.values()) == 2 * 10
