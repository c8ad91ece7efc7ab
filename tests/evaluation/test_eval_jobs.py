"""Evaluation jobs on procrastinate: queues by backend kind, one queued run per pair, periodic tasks,
and the leaderboard recompute that is queued only where the ranking registers its task."""

import functools
from dataclasses import dataclass, field
from datetime import timedelta

import procrastinate
import psycopg
import pytest
from procrastinate.testing import InMemoryConnector

from core.db import libpq_url, transaction, utcnow
from evaluation import jobs, service
from evaluation import repository as repo
from evaluation.models import RunReason, RunScope, RunStatus
from evaluation.runs.generation import batching_for, queue_for
from server.jobs import build_job_app
from tests.evaluation.test_eval_pg_runs import add_model


@pytest.mark.parametrize(("kind", "queue"), [("llamacpp", "cpu"), ("openai", "cpu"), ("vllm", "gpu"),
                                             ("transformers", "gpu")])
def test_each_backend_kind_has_its_queue(kind: str, queue: str) -> None:
    assert queue_for(kind) == queue


def test_http_backends_get_concurrency_and_local_engines_get_batches() -> None:
    assert batching_for({"kind": "openai", "max_concurrency": 6}, 16) == (1, 6)
    assert batching_for({"kind": "llamacpp"}, 16) == (16, 1)


@pytest.fixture
async def job_app(db_url, eval_settings):
    app = build_job_app(db_url, eval_settings)
    await app.open_async()
    yield app
    await app.close_async()


def _jobs(db_url: str) -> list[tuple]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute("SELECT task_name, queue_name, lock, queueing_lock, args->>'run_id' "
                            "FROM procrastinate_jobs ORDER BY id").fetchall()


async def test_a_run_job_is_locked_per_pair_and_queued_by_kind(deps, job_app, db_url) -> None:
    gpu = await add_model(deps, "gpu-model", {"kind": "vllm", "model": "/models/x"})
    cpu = await add_model(deps, "cpu-model", {"kind": "llamacpp", "model": "smollm2-135m-instruct"})
    for slug in ("gpu-model", "cpu-model", "gpu-model"):
        await jobs.queue_evaluation(deps.sessions, job_app, deps.settings, slug, None, RunReason.admin,
                                    "test")
    rows = _jobs(db_url)
    assert [r[:4] for r in rows] == [
        ("evaluation:run", "gpu", f"evaluation:{gpu.id}:smoke", f"evaluation:{gpu.id}:smoke"),
        ("evaluation:run", "cpu", f"evaluation:{cpu.id}:smoke", f"evaluation:{cpu.id}:smoke"),
    ]  # the second request for the GPU model found its run still queued


async def test_a_concurrent_duplicate_request_keeps_the_first_run(deps, job_app, db_url) -> None:
    model = await add_model(deps, "dup-model", {"kind": "llamacpp", "model": "smollm2-135m-instruct"})
    first = await jobs.queue_evaluation(deps.sessions, job_app, deps.settings, "dup-model", None,
                                        RunReason.admin, "test")
    async with transaction(deps.sessions) as session:  # as if a second request had raced past the check
        racer = await service.create_run(session, model, "smoke", RunReason.admin, "test", 3, 0)
    kept = await jobs.defer_run(deps.sessions, job_app, racer, model)
    assert kept.id == first.id and len(_jobs(db_url)) == 1


@dataclass
class _ContextForTests:
    """The two attributes of procrastinate's JobContext that the periodic tasks read."""

    app: procrastinate.App
    additional_context: dict = field(default_factory=dict)


async def test_periodic_reevaluation_queues_every_model_not_retired(deps, job_app, db_url) -> None:
    for slug in ("m-one", "m-two"):
        await add_model(deps, slug, {"kind": "llamacpp", "model": "smollm2-135m-instruct"})
    extra = {"sessions": deps.sessions, "settings": deps.settings, "backends": None}
    context = _ContextForTests(job_app, extra)
    assert await jobs.reevaluate(context, timestamp=0) == 2
    assert len(_jobs(db_url)) == 2


async def test_the_leaderboard_recompute_is_queued_only_if_the_ranking_registers_it() -> None:
    connector = InMemoryConnector()
    without = procrastinate.App(connector=connector)
    async with without.open_async():
        assert await jobs.queue_leaderboard_recompute(without) is False
    ranking = procrastinate.Blueprint()

    @ranking.task(name="snapshot")
    async def snapshot(timestamp: int) -> None: ...

    app = procrastinate.App(connector=connector)
    app.add_tasks_from(ranking, namespace="ranking")
    async with app.open_async():
        assert await jobs.queue_leaderboard_recompute(app) is True
        assert await jobs.queue_leaderboard_recompute(app) is True  # one waiting recompute is enough
    queued = [j for j in connector.jobs.values() if j["task_name"] == jobs.SNAPSHOT_TASK]
    assert len(queued) == 1 and "timestamp" in queued[0]["args"]


def _set_job(db_url: str, job_id: int, status: str) -> None:
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute("UPDATE procrastinate_jobs SET status = %s WHERE id = %s", (status, job_id))


async def _set_run(deps, run_id: int, **fields) -> None:
    async with transaction(deps.sessions) as session:
        run = await repo.get_run(session, run_id, lock=True)
        for name, value in fields.items():
            setattr(run, name, value)


async def test_a_request_while_a_run_is_running_returns_that_run_whatever_its_scope(deps, job_app, db_url) -> None:
    await add_model(deps, "busy-model", {"kind": "llamacpp", "model": "smollm2-135m-instruct"})
    ask = functools.partial(jobs.request_evaluation, deps.sessions, job_app, deps.settings, "busy-model", None,
                            RunReason.admin, "test")
    first = await ask()
    assert first.already_active is False and first.run.scope == RunScope.full
    await _set_run(deps, first.run.id, status=RunStatus.running, started_at=utcnow(), heartbeat_at=utcnow())
    _set_job(db_url, first.run.job_id, "doing")  # as a worker would
    again, preview = await ask(), await ask(items_per_task=1)
    assert (again.run.id, again.already_active) == (first.run.id, True)
    assert (preview.run.id, preview.already_active) == (first.run.id, True)  # a preview never doubles it
    assert len(_jobs(db_url)) == 1
    await _set_run(deps, first.run.id, status=RunStatus.finished, finished_at=utcnow())
    _set_job(db_url, first.run.job_id, "succeeded")
    later = await ask(items_per_task=1)
    assert later.already_active is False and later.run.id != first.run.id
    assert later.run.scope == RunScope.preview and later.run.held_out_per_task == 0
    assert (await ask()).run.id == later.run.id  # a full request while the preview waits: the preview


async def test_a_run_left_running_by_a_dead_process_does_not_block_a_new_one(deps, job_app) -> None:
    model = await add_model(deps, "orphan-model", {"kind": "llamacpp", "model": "smollm2-135m-instruct"})
    async with transaction(deps.sessions) as session:  # a `libra eval` killed with SIGKILL long ago
        dead = await service.create_run(session, model, "smoke", RunReason.cli, "cli", 3, 0)
    long_ago = utcnow() - timedelta(hours=2)
    await _set_run(deps, dead.id, status=RunStatus.running, started_at=long_ago, heartbeat_at=long_ago)
    fresh = await jobs.request_evaluation(deps.sessions, job_app, deps.settings, "orphan-model", None,
                                          RunReason.admin, "test")
    assert fresh.already_active is False and fresh.run.id != dead.id
