"""Job registration: every domain's procrastinate blueprint, plus the periodic schedule from settings.

A job carries the id of the request that queued it. procrastinate 3 stores nothing but a job's keyword
arguments, so the id travels as one more of them, ``_request_id``: the job manager adds it when a job
is deferred while a request (or a job of one) is handled, and a worker middleware takes it out again
before the task is called, sets it for the job's log lines, and logs the job's start with the host and
pid that claimed it. Tasks never see it.
"""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import procrastinate
from procrastinate.exceptions import JobAborted
from procrastinate.manager import JobManager

from arena import jobs as arena_jobs
from core import metrics
from core.jobs import create_job_app
from core.logging import request_id
from core.settings import Settings
from evaluation import jobs as evaluation_jobs
from server.leaderboard import jobs as leaderboard_jobs

JUDGE_AGREEMENT_CRON = "*/5 * * * *"
REQUEST_ID_KWARG = "_request_id"

log = logging.getLogger(__name__)


class RequestIdJobManager(JobManager):
    """procrastinate's job manager, adding the current request id to every job it defers."""

    async def batch_defer_jobs_async(self, jobs: list[procrastinate.jobs.Job], connection: Any = None
                                     ) -> list[procrastinate.jobs.Job]:
        return await super().batch_defer_jobs_async(_with_request_id(jobs), connection)

    def batch_defer_jobs(self, jobs: list[procrastinate.jobs.Job], connection: Any = None
                         ) -> list[procrastinate.jobs.Job]:
        return super().batch_defer_jobs(_with_request_id(jobs), connection)


def _with_request_id(jobs: list[procrastinate.jobs.Job]) -> list[procrastinate.jobs.Job]:
    current = request_id.get()
    if current is None:
        return jobs
    return [job.evolve(task_kwargs={**job.task_kwargs, REQUEST_ID_KWARG: current}) for job in jobs]


async def run_job_in_context(call_next: Callable[[], Awaitable[Any]], context: procrastinate.JobContext,
                             worker: object) -> Any:
    """Worker middleware: the job's request id for its log lines, one line when it starts and one when
    it ends (with the host and pid that ran it), and the job metrics."""
    job = context.job
    # Taken out of the very dict the worker calls the task with, so the task never sees it.
    carried = job.task_kwargs.pop(REQUEST_ID_KWARG, None)
    token = request_id.set(carried if isinstance(carried, str) else None)
    where = {"job": job.id, "task": job.task_name, "queue": job.queue, "host": socket.gethostname(),
             "pid": os.getpid()}
    log.info("jobs.job.started", extra={**where, "attempt": job.attempts + 1, "slot": context.worker_name})
    started, outcome = time.monotonic(), "failed"
    try:
        result = await call_next()
        outcome = "succeeded"
        return result
    except (asyncio.CancelledError, JobAborted):
        outcome = "cancelled"
        raise
    finally:
        took = time.monotonic() - started
        metrics.JOBS.labels(job.task_name, outcome).inc()
        metrics.JOB_DURATION.labels(job.task_name).observe(took)
        log.info("jobs.job.finished", extra={**where, "outcome": outcome, "duration_s": round(took, 3)})
        request_id.reset(token)


def build_job_app(database_url: str, settings: Settings) -> procrastinate.App:
    app = create_job_app(database_url)
    app.job_manager = RequestIdJobManager(app.connector)
    app.worker_defaults = {**app.worker_defaults, "worker_middleware": [run_job_in_context]}
    app.add_tasks_from(arena_jobs.build_blueprint(), namespace="arena")
    # The cron is configuration, so the periodic schedule is attached here rather than in the domain.
    app.periodic(cron=settings.housekeeping_cron, periodic_id="housekeeping")(
        app.tasks["arena:fail_stale_battles"]
    )
    # Pair scores follow the fit, so they are refreshed on the snapshot's schedule.
    app.periodic(cron=settings.leaderboard_cron, periodic_id="pair_scores")(app.tasks["arena:refresh_pair_scores"])
    app.add_tasks_from(evaluation_jobs.build_blueprint(), namespace=evaluation_jobs.NAMESPACE)
    app.periodic(cron=settings.eval_cron, periodic_id="reevaluate")(app.tasks["evaluation:reevaluate"])
    app.periodic(cron=settings.eval_recover_cron, periodic_id="recover")(app.tasks["evaluation:recover_stalled"])
    # Measuring the configured judge is a no-op once done, so a fixed, frequent schedule costs nothing
    # and makes "measured when configured" happen within minutes of a worker starting.
    app.periodic(cron=JUDGE_AGREEMENT_CRON, periodic_id="measure_judge")(app.tasks["evaluation:measure_judge"])
    # The namespace "ranking" is what evaluation.jobs looks for to queue a recompute after a run.
    app.add_tasks_from(leaderboard_jobs.build_blueprint(), namespace="ranking")
    app.periodic(cron=settings.leaderboard_cron, periodic_id="leaderboard")(app.tasks["ranking:periodic_snapshot"])
    return app
