"""Evaluation jobs on procrastinate: queues by backend kind, one queued run per pair, periodic tasks,
and the leaderboard recompute that is queued only where the ranking registers its task."""

from dataclasses import dataclass, field

import procrastinate
import psycopg
import pytest
from procrastinate.testing import InMemoryConnector

from core.db import libpq_url, transaction
from evaluation import jobs, service
from evaluation.models import RunReason
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
    kept = await jobs._defer(deps.sessions, job_app, racer, model)
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
