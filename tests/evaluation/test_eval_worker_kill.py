"""A worker killed with SIGKILL mid-run and restarted: one row per item, the same aggregates.

`libra worker` runs as a real subprocess on the test's database; the model's text comes from the
canned OpenAI-compatible server (tests/evaluation/canned.py), slowed down so the kill lands
mid-run. The uninterrupted reference run goes into a second, fresh database.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from core.db import create_engine, create_sessionmaker, libpq_url, transaction
from core.settings import Settings
from evaluation import service
from evaluation.jobs import queue_evaluation
from evaluation.models import EvalGeneration, EvalRun, EvalRunItem, EvalScore, RunReason, RunStatus
from inference import BackendPool
from server.jobs import build_job_app
from tests.conftest import TEMPLATE, database_url
from tests.evaluation.test_eval_pg_runs import add_model

LIBRA = str(Path(sys.executable).with_name("libra"))
ENV = {"LIBRA_EVAL_SUITE": "smoke", "LIBRA_EVAL_ITEMS_PER_TASK": "8", "LIBRA_EVAL_HELD_OUT_PER_TASK": "1",
       "LIBRA_EVAL_MAX_TOKENS": "16", "LIBRA_EVAL_STALLED_AFTER_S": "12",
       "LIBRA_EVAL_RECOVER_CRON": "* * * * * */2", "LIBRA_EVAL_CRON": "0 0 1 1 *",
       "LIBRA_SEED_DEFAULTS": "false"}


def _settings() -> Settings:
    fields = {k.removeprefix("LIBRA_").lower(): v for k, v in ENV.items()}
    return Settings(_env_file=None, database_url=None, **fields)


@pytest.fixture
def reference_db(pg_server: str):
    name = f"ref_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield database_url(pg_server, name)
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _worker(db_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV, "LIBRA_DATABASE_URL": db_url}
    with log.open("a") as out:
        return subprocess.Popen([LIBRA, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


def _scalar(db_url: str, sql: str, *args: object) -> object:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute(sql, args).fetchone()[0]


def _wait_for(condition, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


async def _queue(db_url: str, slug: str, config: dict) -> int:
    engine = create_engine(db_url)
    jobs = build_job_app(db_url, _settings())
    await jobs.open_async()
    try:
        deps = service.EvalDeps(create_sessionmaker(engine), _settings(), BackendPool())
        await add_model(deps, slug, config)
        run = await queue_evaluation(deps.sessions, jobs, deps.settings, slug, None, RunReason.admin, "test")
        return run.id
    finally:
        await jobs.close_async()
        await engine.dispose()


async def _rows(db_url: str, run_id: int) -> tuple[EvalRun, dict, dict[str, int]]:
    engine = create_engine(db_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            run = await session.get_one(EvalRun, run_id)
            query = (select(EvalRunItem.task, EvalRunItem.item_id, EvalScore.status, EvalScore.score)
                     .join(EvalScore, EvalScore.fingerprint == EvalRunItem.score_fingerprint)
                     .where(EvalRunItem.run_id == run_id))
            items = {(t, i): (status.value, score) for t, i, status, score in await session.execute(query)}
            counts = {table.__tablename__: await session.scalar(select(func.count()).select_from(table))
                      for table in (EvalGeneration, EvalScore, EvalRunItem)}
            return run, items, counts
    finally:
        await engine.dispose()


async def _uninterrupted(db_url: str, slug: str, config: dict, cycle_id: str) -> int:
    engine, backends = create_engine(db_url), BackendPool()
    deps = service.EvalDeps(create_sessionmaker(engine), _settings(), backends)
    try:
        model = await add_model(deps, slug, config)
        async with transaction(deps.sessions) as session:
            run = await service.create_run(session, model, "smoke", RunReason.admin, "test", 8, 1)
            run.cycle_id = cycle_id  # the same sample as the killed run, even across a week boundary
        return (await service.execute_run(deps, run.id)).id
    finally:
        await backends.aclose()
        await engine.dispose()


def test_a_worker_killed_mid_run_resumes_to_one_row_per_item_and_the_same_aggregates(
    db_url: str, reference_db: str, canned, tmp_path: Path
) -> None:
    canned.delay_s = 0.05
    config = canned.config(max_concurrency=2)
    run_id = asyncio.run(_queue(db_url, "canned-kill", config))
    log = tmp_path / "worker.log"
    generated = lambda: _scalar(db_url, "SELECT count(*) FROM eval_generations")  # noqa: E731

    first = _worker(db_url, log)
    try:
        _wait_for(lambda: generated() >= 10, 90, "the first batches", log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    asked_before, saved = canned.requests, generated()
    total = _scalar(db_url, "SELECT items_total FROM eval_runs WHERE id = %s", run_id)
    assert 0 < saved < total, "the kill did not land mid-run"
    job_status = "SELECT status FROM procrastinate_jobs WHERE task_name = 'evaluation:run'"
    assert _scalar(db_url, job_status) == "doing"

    second = _worker(db_url, log)
    try:
        status = "SELECT status FROM eval_runs WHERE id = %s"
        finished = lambda: _scalar(db_url, status, run_id) == "finished"  # noqa: E731
        _wait_for(finished, 120, "the resumed run to finish", log)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(30)

    assert "evaluation.run.requeued_stalled" in log.read_text()  # the stalled job was put back, then resumed
    run, items, counts = asyncio.run(_rows(db_url, run_id))
    assert run.status == RunStatus.finished and len(items) == total
    assert counts == {"eval_generations": total, "eval_scores": total, "eval_run_items": total}
    assert canned.requests - asked_before == total - saved  # nothing saved before the kill was redone

    canned.delay_s = 0.0
    ref_id = asyncio.run(_uninterrupted(reference_db, "canned-kill", config, run.cycle_id))
    reference, ref_items, _ = asyncio.run(_rows(reference_db, ref_id))
    assert reference.run_fingerprint == run.run_fingerprint
    assert items == ref_items
    assert run.summary == reference.summary
