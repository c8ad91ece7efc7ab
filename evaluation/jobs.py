"""The evaluation's jobs on procrastinate, and queueing them.

(The house style calls this file ``tasks.py``; in this package ``tasks.py`` already holds the task
declarations of the suites, so the jobs live here.)

- ``evaluation:run(run_id)``: executes one run. Deferred on queue ``cpu`` or ``gpu`` by backend
  kind, with a ``lock`` and a ``queueing_lock`` per (model, suite): the same pair never runs twice
  at once and is never queued twice.
- ``evaluation:reevaluate(timestamp)``: periodic (``LIBRA_EVAL_CRON``), queues every model again.
- ``evaluation:recover_stalled(timestamp)``: periodic (``LIBRA_EVAL_RECOVER_CRON``). A worker
  killed mid-run leaves its job "doing" forever; once that worker has sent no heartbeat for
  ``LIBRA_EVAL_STALLED_AFTER_S`` its run jobs are put back in the queue, and the next worker resumes
  them from the rows already saved.

After each run, a leaderboard recompute is queued if the ranking's ``ranking:snapshot`` task is
registered in the job app (it is deferred with one argument, ``timestamp``, like a periodic firing).
"""

import logging
import time

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings
from evaluation import repository as repo
from evaluation import service
from evaluation.models import EvalRun, RunReason
from evaluation.runs.generation import queue_for

log = logging.getLogger(__name__)

NAMESPACE = "evaluation"
RUN_TASK = f"{NAMESPACE}:run"
SNAPSHOT_TASK = "ranking:snapshot"


def pair_lock(model_id: int, suite: str) -> str:
    return f"evaluation:{model_id}:{suite}"


async def queue_evaluation(
    sessions: async_sessionmaker[AsyncSession], app: procrastinate.App, settings: Settings,
    slug: str, suite: str | None, reason: RunReason, actor: str,
) -> EvalRun:
    """Queue a run of (model, suite), or return the one already waiting for it."""
    suite = suite or settings.eval_suite
    async with transaction(sessions) as session:
        model = await registry.get_by_slug(session, slug)
        waiting = await service.queued_run(session, model, suite)
        if waiting is not None:
            return waiting
        run = await service.create_run(session, model, suite, reason, actor, settings.eval_items_per_task,
                                       settings.eval_held_out_per_task)
    # Deferred after the commit, so the worker always finds the run row.
    return await _defer(sessions, app, run, model)


async def _defer(
    sessions: async_sessionmaker[AsyncSession], app: procrastinate.App, run: EvalRun, model: Contestant
) -> EvalRun:
    lock = pair_lock(model.id, run.suite)
    try:
        job_id = await app.tasks[RUN_TASK].configure(
            queue=queue_for(model.backend_kind), lock=lock, queueing_lock=lock
        ).defer_async(run_id=run.id)
    except AlreadyEnqueued:  # a concurrent request queued the pair a moment ago: keep that one
        async with transaction(sessions) as session:
            await repo.delete_run(session, run.id)
            waiting = await service.queued_run(session, model, run.suite)
        if waiting is None:
            raise
        return waiting
    async with transaction(sessions) as session:
        run = await repo.get_run(session, run.id, lock=True)
        run.job_id = job_id
    log.info("evaluation.run.queued", extra={"run": run.id, "model": model.slug, "job": job_id})
    return run


async def queue_leaderboard_recompute(app: procrastinate.App) -> bool:
    """Defer the ranking's snapshot job if this deployment registers one; True if it is queued."""
    task = app.tasks.get(SNAPSHOT_TASK)
    if task is None:
        log.info("evaluation.leaderboard.no_snapshot_task")
        return False
    try:
        await task.configure(queueing_lock=SNAPSHOT_TASK).defer_async(timestamp=int(time.time()))
    except AlreadyEnqueued:
        pass  # one recompute already waiting covers this run too
    return True


def _deps(context: procrastinate.JobContext) -> service.EvalDeps:
    extra = context.additional_context
    return service.EvalDeps(extra["sessions"], extra["settings"], extra["backends"])


async def run(context: procrastinate.JobContext, run_id: int) -> str:
    done = await service.execute_run(_deps(context), run_id)
    await queue_leaderboard_recompute(context.app)
    return done.status.value


async def reevaluate(context: procrastinate.JobContext, timestamp: int) -> int:
    """Periodic: a new cycle for every model that is active or still waiting for its first run."""
    deps = _deps(context)
    async with transaction(deps.sessions) as session:
        models = [m.slug for m in await registry.list_all(session)
                  if m.status in (ContestantStatus.active, ContestantStatus.pending)]
    for slug in models:
        await queue_evaluation(
            deps.sessions, context.app, deps.settings, slug, None, RunReason.periodic, "system"
        )
    log.info("evaluation.reevaluate.queued", extra={"models": len(models), "scheduled_at": timestamp})
    return len(models)


async def recover_stalled(context: procrastinate.JobContext, timestamp: int) -> int:
    settings: Settings = context.additional_context["settings"]
    manager = context.app.job_manager
    stalled = list(await manager.get_stalled_jobs(
        task_name=RUN_TASK, seconds_since_heartbeat=settings.eval_stalled_after_s
    ))
    for job in stalled:
        await manager.retry_job(job)
        log.warning("evaluation.run.requeued_stalled", extra={"job": job.id, "scheduled_at": timestamp})
    return len(stalled)


def build_blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint per job app: procrastinate renames the tasks of a blueprint it absorbs."""
    tasks = procrastinate.Blueprint()
    tasks.task(name="run", queue="cpu", pass_context=True)(run)
    tasks.task(name="reevaluate", queue="housekeeping", queueing_lock="evaluation:reevaluate",
               pass_context=True)(reevaluate)
    tasks.task(name="recover_stalled", queue="housekeeping", queueing_lock="evaluation:recover_stalled",
               pass_context=True)(recover_stalled)
    return tasks

