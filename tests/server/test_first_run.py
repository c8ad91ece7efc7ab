"""The first start queues a preview of every default contestant, then their full runs at a lower priority,
once; a worker runs every preview before any full run. Model text comes from the canned OpenAI-compatible
server (tests/evaluation/canned.py): these tests are about queueing and order, not about what models say."""

import asyncio
from dataclasses import replace

import psycopg
import pytest
from sqlalchemy import select

from core.db import libpq_url, transaction
from core.settings import Settings
from evaluation.models import EvalRun, RunReason, RunScope, RunStatus
from inference import DEFAULT_CONTESTANTS
from server.first_run import FULL_RUN_PRIORITY, queue_first_run, queue_first_run_at_start
from server.seed import seed_defaults
from tests.evaluation.canned import CannedDefaultsPoolForTests, canned_server

DEFAULTS = [c.slug for c in DEFAULT_CONTESTANTS]


@pytest.fixture
def settings() -> Settings:  # overrides tests/conftest.py: a small suite keeps the runs short
    return Settings(_env_file=None, database_url=None, eval_suite="smoke", eval_items_per_task=3,
                    eval_held_out_per_task=1, eval_max_tokens=16, first_run_items_per_task=1,
                    eval_min_items_per_category=2)


@pytest.fixture
async def seeded(runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)


def _jobs(db_url: str) -> list[tuple]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute("SELECT (args->>'run_id')::int, priority, lock, queueing_lock FROM procrastinate_jobs "
                            "WHERE task_name = 'evaluation:run' ORDER BY id").fetchall()


async def _runs(runtime) -> list[EvalRun]:  # noqa: ANN001
    async with runtime.sessions() as session:
        return list(await session.scalars(select(EvalRun).order_by(EvalRun.id)))


async def test_the_first_start_queues_previews_then_full_runs_once(runtime, seeded, db_url) -> None:  # noqa: ANN001
    assert await queue_first_run(runtime.sessions, runtime.jobs, runtime.settings) == DEFAULTS
    runs = await _runs(runtime)
    previews, fulls = runs[:4], runs[4:]
    assert [r.scope for r in runs] == [RunScope.preview] * 4 + [RunScope.full] * 4
    assert all(r.reason == RunReason.first_run and r.suite == "smoke" for r in runs)
    assert {(r.items_per_task, r.held_out_per_task) for r in previews} == {(1, 0)}
    assert {(r.items_per_task, r.held_out_per_task) for r in fulls} == {(3, 1)}
    jobs = _jobs(db_url)
    assert [(run_id, priority) for run_id, priority, _, _ in jobs] == \
        [(r.id, 0) for r in previews] + [(r.id, FULL_RUN_PRIORITY) for r in fulls]
    locks = {run_id: lock for run_id, _, lock, _ in jobs}
    assert all(locks[p.id] == locks[f.id] for p, f in zip(previews, fulls, strict=True))  # never both at once
    # A second start (or a restart after the runs finished) queues nothing more.
    assert await queue_first_run(runtime.sessions, runtime.jobs, runtime.settings) == []
    assert await asyncio.to_thread(queue_first_run_at_start, runtime.settings, db_url) == []
    assert len(await _runs(runtime)) == 8 and len(_jobs(db_url)) == 8


async def test_a_worker_finishes_every_preview_before_any_full_run_starts(runtime, seeded) -> None:  # noqa: ANN001
    await queue_first_run(runtime.sessions, runtime.jobs, runtime.settings)
    with canned_server() as canned:
        answering = replace(runtime, backends=CannedDefaultsPoolForTests(canned))
        try:
            await runtime.jobs.run_worker_async(wait=False, install_signal_handlers=False, concurrency=1,
                                                additional_context=answering.job_context, queues=["cpu"])
        finally:
            await answering.backends.aclose()
    runs = await _runs(runtime)
    assert {r.status for r in runs} == {RunStatus.finished}
    # One item per task, topped up to 2 per category (smoke: one task per category), so a preview is rankable.
    assert {r.items_total for r in runs if r.scope == RunScope.preview} == {2 * 5}
    last_preview = max(r.finished_at for r in runs if r.scope == RunScope.preview)
    assert all(r.started_at > last_preview for r in runs if r.scope == RunScope.full)


async def test_the_first_run_waits_for_an_empty_database_and_can_be_turned_off(runtime, seeded) -> None:  # noqa: ANN001
    off = runtime.settings.model_copy(update={"first_run_evaluations": False})
    assert await queue_first_run(runtime.sessions, runtime.jobs, off) == []
    no_defaults = runtime.settings.model_copy(update={"seed_defaults": False})
    assert await queue_first_run(runtime.sessions, runtime.jobs, no_defaults) == []
    assert await _runs(runtime) == []


async def test_replicas_seeding_at_the_same_moment_register_each_default_once(runtime) -> None:  # noqa: ANN001
    """Two API replicas started together both seed; the second waits for the first instead of failing."""

    async def seed_once() -> list[str]:
        async with transaction(runtime.sessions) as session:
            added = await seed_defaults(session)
            await asyncio.sleep(0.5)  # hold the transaction open while the other replica arrives
            return added

    first, second = await asyncio.gather(seed_once(), seed_once())
    assert sorted(first + second) == sorted(d.slug for d in DEFAULT_CONTESTANTS)
    assert not (first and second)  # one of them found everything already there


def test_the_first_start_of_the_real_server_queues_the_previews(db_url: str) -> None:
    """`libra serve` itself (no worker, so nothing runs): the previews and full runs wait in the queue."""
    from tests.server.livesite import serving

    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_EVAL_SUITE": "smoke", "LIBRA_FIRST_RUN_ITEMS_PER_TASK": "2",
           "LIBRA_EVAL_MIN_ITEMS_PER_CATEGORY": "1"}
    with serving(env, "--no-worker") as (base_url, _):
        import httpx

        progress = httpx.get(f"{base_url}/api/v1/evaluations/progress", timeout=10).json()
    assert progress["active"] is True and progress["wave"]["scope"] == "preview"
    assert progress["wave"]["models"] == len(DEFAULTS) and progress["wave"]["queued"] == len(DEFAULTS)
    assert {m["phase"] for m in progress["models"]} == {"queued"}
    with serving({**env, "LIBRA_FIRST_RUN_EVALUATIONS": "true"}, "--no-worker"):
        pass  # a second start queues nothing more
    with psycopg.connect(libpq_url(db_url)) as conn:
        scopes = conn.execute("SELECT scope, count(*) FROM eval_runs GROUP BY scope ORDER BY scope").fetchall()
    assert scopes == [("full", len(DEFAULTS)), ("preview", len(DEFAULTS))]
