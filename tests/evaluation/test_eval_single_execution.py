"""One evaluation run never executes twice at once.

procrastinate's `lock` keeps two *jobs* of a pair apart, but `recover_stalled` retries a job whose
worker's heartbeat is late: if that worker is in fact alive, the retried job would run the same
evaluation next to it. The executing process holds the run's advisory lock, so a second execution
waits for the first, and recovery leaves the job of a run still executing alone.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import func, select

from core.db import libpq_url, transaction
from evaluation import jobs, service
from evaluation.models import EvalGeneration, EvalRun, RunReason, RunStatus
from tests.evaluation.test_eval_pg_runs import add_model


async def _queued_run(deps, slug: str, config: dict) -> EvalRun:
    model = await add_model(deps, slug, config)
    s = deps.settings
    async with transaction(deps.sessions) as session:
        return await service.create_run(
            session,
            model,
            s.eval_suite,
            RunReason.cli,
            "test",
            s.eval_items_per_task,
            s.eval_held_out_per_task,
        )


async def _until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _generations(deps) -> int:
    async with deps.sessions() as session:
        return await session.scalar(select(func.count()).select_from(EvalGeneration))


async def test_a_second_execution_waits_and_nothing_is_generated_twice(deps, canned) -> None:
    canned.delay_s = 0.05
    run = await _queued_run(deps, "once", canned.config(max_concurrency=2))
    first = asyncio.create_task(service.execute_run(deps, run.id))
    await _until(lambda: canned.requests > 0)
    # The same run's job, retried as stalled and fetched by a second worker while the first one lives.
    second = asyncio.create_task(service.execute_run(deps, run.id))
    await asyncio.sleep(0.2)
    assert first.done() or not second.done(), "the second execution ran next to the first"
    done_first, done_second = await first, await second
    assert done_first.status == done_second.status == RunStatus.finished
    assert canned.requests == done_first.items_total == await _generations(deps)


async def test_a_live_owner_blocks_execution_and_a_dead_one_releases_it(deps, canned, db_url) -> None:
    run = await _queued_run(deps, "owned", canned.config())
    owner = psycopg.connect(libpq_url(db_url), autocommit=True)  # another worker, executing the run
    owner.execute("SELECT pg_advisory_lock(%s, %s)", (service.RUN_LOCK_SPACE, run.id))
    try:
        async with transaction(deps.sessions) as session:
            assert await service.run_is_executing(session, run.id)
        task = asyncio.create_task(service.execute_run(deps, run.id))
        await asyncio.sleep(1.0)
        assert not task.done() and canned.requests == 0
    finally:
        owner.close()  # the owner dies: its connection, and so its lock, goes with it
    done = await asyncio.wait_for(task, 60)
    assert done.status == RunStatus.finished and canned.requests == done.items_total
    async with transaction(deps.sessions) as session:
        assert not await service.run_is_executing(session, run.id)


@dataclass
class StalledJobForTests:
    id: int
    task_kwargs: dict


@dataclass
class JobManagerForTests:
    """procrastinate's job manager as `recover_stalled` uses it, reporting given jobs as stalled."""

    stalled: list[StalledJobForTests]
    retried: list[int] = field(default_factory=list)

    async def get_stalled_jobs(self, **_: object) -> list[StalledJobForTests]:
        return self.stalled

    async def retry_job(self, job: StalledJobForTests) -> None:
        self.retried.append(job.id)

    async def finish_job(self, job: StalledJobForTests, **_: object) -> None:
        raise AssertionError("not expected")


@dataclass
class JobContextForTests:
    app: object
    additional_context: dict


async def test_recovery_does_not_retry_the_job_of_a_run_still_executing(deps, canned, db_url) -> None:
    alive = await _queued_run(deps, "alive", canned.config())
    dead = await _queued_run(deps, "dead", canned.config())
    manager = JobManagerForTests(
        [StalledJobForTests(1, {"run_id": alive.id}), StalledJobForTests(2, {"run_id": dead.id})]
    )
    app = type("AppForTests", (), {"job_manager": manager})()
    context = JobContextForTests(app, {"settings": deps.settings, "sessions": deps.sessions})
    with psycopg.connect(libpq_url(db_url), autocommit=True) as owner:
        owner.execute("SELECT pg_advisory_lock(%s, %s)", (service.RUN_LOCK_SPACE, alive.id))
        recovered = await jobs.recover_stalled(context, timestamp=0)
    assert manager.retried == [2] and recovered == 1


async def test_answers_with_nul_characters_are_stored_without_them(deps, canned) -> None:
    # (Here because NUL is the other way a run could die mid-write: Postgres text cannot hold it.)
    answer = canned.answer
    canned.answer = lambda body: _with_nul(answer(body))
    run = await _queued_run(deps, "nul", canned.config())
    done = await service.execute_run(deps, run.id)
    assert done.status == RunStatus.finished, done.error
    async with deps.sessions() as session:
        texts = list(await session.scalars(select(EvalGeneration.text)))
    assert len(texts) == done.items_total and not any("\x00" in (t or "") for t in texts)


def _with_nul(reply: dict) -> dict:
    message = reply["choices"][0]["message"]
    message["content"] = "\x00" + message["content"].replace(" ", " \x00", 1)
    return reply
