"""The job worker slots on a real database: short jobs never wait behind an evaluation, a stop puts the
evaluation back in the queue, and a worker whose database connections die starts again by itself.

The model's text comes from the canned OpenAI-compatible server (tests/evaluation/canned.py), slowed
down so that the evaluation is still running while the test looks; it is about the workers.
"""

import asyncio
import contextlib
import socket
import time

import psycopg
import pytest
from sqlalchemy import make_url

from core.db import libpq_url
from core.errors import LibraError
from evaluation import service
from evaluation.jobs import queue_evaluation, queue_leaderboard_recompute
from evaluation.models import EvalRun, RunReason, RunStatus
from server.cli.common import check_port_free
from server.workers import Workers, slots_for
from tests.conftest import database_url
from tests.evaluation.canned import canned_server
from tests.evaluation.test_eval_pg_runs import add_model


async def _until(condition, timeout: float, what: str) -> float:  # noqa: ANN001
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def eval_settings(runtime):  # noqa: ANN001
    return runtime.settings.model_copy(update={
        "eval_suite": "smoke", "eval_items_per_task": 6, "eval_held_out_per_task": 0, "eval_max_tokens": 16,
        "leaderboard_bootstrap_rounds": 50})


@contextlib.asynccontextmanager
async def _workers(runtime, settings):  # noqa: ANN001
    context = {**runtime.job_context, "settings": settings}
    workers = Workers(runtime.jobs, context, slots_for(None, 1, stop_timeout_s=4))
    task = asyncio.create_task(workers.run())
    try:
        yield workers
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _run(runtime, run_id: int) -> EvalRun:  # noqa: ANN001
    async with runtime.sessions() as session:
        return await session.get_one(EvalRun, run_id, populate_existing=True)


async def _snapshots(runtime) -> int:  # noqa: ANN001
    """Snapshot jobs done (a snapshot whose result did not change stores no new version)."""
    with psycopg.connect(libpq_url(_url(runtime))) as conn:
        return conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'ranking:snapshot' "
                            "AND status = 'succeeded'").fetchone()[0]


async def test_a_snapshot_requested_during_an_evaluation_is_done_within_seconds(runtime, eval_settings) -> None:
    deps = service.EvalDeps(runtime.sessions, eval_settings, runtime.backends)
    with canned_server(delay_s=1.0) as canned:
        model = await add_model(deps, "canned-slow", canned.config())
        run = await queue_evaluation(runtime.sessions, runtime.jobs, eval_settings, model.slug, None,
                                     RunReason.admin, "test")
        async with _workers(runtime, eval_settings):
            await _until(lambda: _running(runtime, run.id), 30, "the evaluation to start")
            before = await _snapshots(runtime)
            assert await queue_leaderboard_recompute(runtime.jobs)
            took = await _until(lambda: _more_snapshots(runtime, before), 20, "the snapshot")
            assert (await _run(runtime, run.id)).status == RunStatus.running, "the evaluation should still run"
        print(f"snapshot during an evaluation: {took:.2f} s")
        # Stopped mid-run: the run is queued again, with a job waiting for the next worker.
        stopped = await _run(runtime, run.id)
        assert stopped.status == RunStatus.queued
        with psycopg.connect(libpq_url(_url(runtime))) as conn:
            waiting = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = %s AND status = 'todo'",
                                   (stopped.job_id,)).fetchone()[0]
        assert waiting == 1, (runtime.stop_notes, stopped.job_id)
        async with _workers(runtime, eval_settings):
            await _until(lambda: _finished(runtime, run.id), 90, "the resumed run to finish")


async def _running(runtime, run_id: int) -> bool:  # noqa: ANN001
    run = await _run(runtime, run_id)
    return run.status == RunStatus.running and run.heartbeat_at is not None and run.items_total > 0


async def _finished(runtime, run_id: int) -> bool:  # noqa: ANN001
    return (await _run(runtime, run_id)).status == RunStatus.finished


async def _more_snapshots(runtime, before: int) -> bool:  # noqa: ANN001
    return await _snapshots(runtime) > before


def _url(runtime) -> str:  # noqa: ANN001
    return runtime.engine.url.render_as_string(hide_password=False)


async def test_workers_start_again_after_the_database_was_away(runtime, eval_settings) -> None:
    """What a Postgres restart looks like to a worker: every connection is cut, and for a few seconds
    no new one is accepted (the database refuses connections, then accepts them again)."""
    url = _url(runtime)
    async with _workers(runtime, eval_settings) as workers:
        await _until(lambda: _true(workers.all_running), 10, "the slots to start")
        await asyncio.sleep(1.0)
        name = make_url(url).database
        with psycopg.connect(libpq_url(database_url(url, "postgres")), autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            try:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                              (name,))
                await asyncio.sleep(3.0)
            finally:
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await _until(lambda: _true(workers.all_running and any(s.restarts for s in workers.states.values())),
                     60, "the slots to run again")
        before = await _snapshots(runtime)
        assert await queue_leaderboard_recompute(runtime.jobs)
        await _until(lambda: _more_snapshots(runtime, before), 30, "a job done after the outage")


async def test_a_job_deferred_after_a_database_restart_finds_a_live_connection(runtime) -> None:
    """The job pool's idle connections die with a restart; the next defer must not be the one that notices."""
    assert await queue_leaderboard_recompute(runtime.jobs)  # leaves an idle connection in the job pool
    name = make_url(_url(runtime)).database
    with psycopg.connect(libpq_url(database_url(_url(runtime), "postgres")), autocommit=True) as admin:
        cut = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()
    assert cut is not None and cut[0] >= 1
    await runtime.engine.dispose()  # the service's own pool is not what this test is about
    assert await queue_leaderboard_recompute(runtime.jobs)


async def _true(value: bool) -> bool:
    return value


async def test_readyz_says_when_the_job_worker_is_not_running(client, runtime) -> None:  # noqa: ANN001
    workers = Workers(runtime.jobs, runtime.job_context, slots_for(None, 1, 4))
    client._transport.app.state.workers = workers  # noqa: SLF001 - the app object behind the test client
    workers.states["short jobs"].running = True
    workers.states["evaluations"].running = False
    answer = await client.get("/api/v1/readyz")
    assert answer.status_code == 503 and "evaluations" in answer.json()["error"]["message"]
    workers.states["evaluations"].running = True
    assert (await client.get("/api/v1/readyz")).json()["worker"] == "running"


def test_a_port_held_only_in_time_wait_is_free_and_a_listening_one_is_not() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(LibraError):
            check_port_free("127.0.0.1", port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.close()
    time.sleep(0.1)
    check_port_free("127.0.0.1", port)  # a restart right after a crash must not be refused
