"""The evaluation's jobs on procrastinate, and queueing them.

(The house style calls this file ``tasks.py``; in this package ``tasks.py`` already holds the task
declarations of the suites, so the jobs live here.)

- ``evaluation:run(run_id)``: executes one run. Deferred on queue ``cpu`` or ``gpu`` by backend
  kind, with a ``lock`` and a ``queueing_lock`` per (model, suite): the same pair never runs twice
  at once and is never queued twice at one priority. A request for a pair with a queued or running
  run returns that run instead (``request_evaluation``); only the first start's full runs are
  deferred behind their previews, at a lower priority (``server/first_run.py``).
- ``evaluation:reevaluate(timestamp)``: periodic (``LIBRA_EVAL_CRON``), queues every model again.
- ``evaluation:measure_judge(timestamp)``: periodic (every few minutes while a worker runs, so in
  effect at worker start): measures the configured judge's agreement with the gold set once per
  judge and gold version; a no-op when there is no judge or the row exists.
- ``evaluation:recover_stalled(timestamp)``: periodic (``LIBRA_EVAL_RECOVER_CRON``). A worker
  killed mid-run leaves its job "doing" forever; once that worker has sent no heartbeat for
  ``LIBRA_EVAL_STALLED_AFTER_S`` its run jobs are put back in the queue, and the next worker resumes
  them from the rows already saved.

After each run, a leaderboard recompute is queued if the ranking's ``ranking:snapshot`` task is
registered in the job app (it is deferred with one argument, ``timestamp``, like a periodic firing).
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings
from evaluation import repository as repo
from evaluation import service
from evaluation.models import EvalRun, RunReason, RunStatus
from evaluation.runs.generation import queue_for
from evaluation.scoring import gold

log = logging.getLogger(__name__)

NAMESPACE = "evaluation"
RUN_TASK = f"{NAMESPACE}:run"
SNAPSHOT_TASK = "ranking:snapshot"


def pair_lock(model_id: int, suite: str) -> str:
    return f"evaluation:{model_id}:{suite}"


@dataclass(frozen=True)
class Requested:
    run: EvalRun
    already_active: bool  # the pair's queued or running run, returned instead of a second one


async def queue_evaluation(
    sessions: async_sessionmaker[AsyncSession], app: procrastinate.App, settings: Settings,
    slug: str, suite: str | None, reason: RunReason, actor: str, *, items_per_task: int | None = None,
) -> EvalRun:
    """Queue a run of (model, suite), or return the one already queued or running for it."""
    requested = await request_evaluation(sessions, app, settings, slug, suite, reason, actor,
                                         items_per_task=items_per_task)
    return requested.run


async def request_evaluation(
    sessions: async_sessionmaker[AsyncSession], app: procrastinate.App, settings: Settings,
    slug: str, suite: str | None, reason: RunReason, actor: str, *, items_per_task: int | None = None,
) -> Requested:
    """Like :func:`queue_evaluation`, and says whether the run was already active. ``items_per_task``
    asks for that many public items and no held-out ones (a preview when fewer than configured). An
    active run of the pair is returned whatever its scope: a pair never runs twice."""
    suite = suite or settings.eval_suite
    per_task, held_out = ((items_per_task, 0) if items_per_task
                          else (settings.eval_items_per_task, settings.eval_held_out_per_task))
    scope = service.scope_for(settings, per_task, held_out)
    async with transaction(sessions) as session:
        model = await registry.get_by_slug(session, slug)
        active = await service.active_run(session, model, suite, scope, settings)
        if active is not None:
            return Requested(active, already_active=True)
        run = await service.create_run(session, model, suite, reason, actor, per_task, held_out, scope)
    # Deferred after the commit, so the worker always finds the run row.
    kept = await defer_run(sessions, app, run, model)
    return Requested(kept, already_active=kept.id != run.id)


async def defer_run(
    sessions: async_sessionmaker[AsyncSession], app: procrastinate.App, run: EvalRun, model: Contestant,
    *, priority: int = 0,
) -> EvalRun:
    """Defer the job of a committed, queued run. Every job of a pair shares its ``lock`` (never two at
    once); each priority has its own queueing lock, so a run deferred at a lower priority (the first
    start's full runs) can wait behind the pair's preview. Higher priorities are fetched first."""
    try:
        job_id = await _defer_job(app, run, model, priority)
    except AlreadyEnqueued:  # a concurrent request queued the pair a moment ago: keep that one
        async with transaction(sessions) as session:
            await repo.delete_run(session, run.id)
            waiting = await repo.latest_run(session, model.id, run.suite, [RunStatus.queued])
        if waiting is None:
            raise
        return waiting
    async with transaction(sessions) as session:
        run = await repo.get_run(session, run.id, lock=True)
        run.job_id = job_id
    log.info("evaluation.run.queued", extra={"run": run.id, "model": model.slug, "job": job_id,
                                             "scope": run.scope.value, "priority": priority})
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
    return service.EvalDeps(extra["sessions"], extra["settings"], extra["backends"], extra.get("cleanups"))


async def run(context: procrastinate.JobContext, run_id: int) -> str:
    deps = _deps(context)

    async def on_stop(stopped: EvalRun, model: Contestant) -> None:  # the next start resumes the run
        await _requeue(context, deps, stopped, model)

    done = await service.execute_run(deps, run_id, on_stop=on_stop)
    await queue_leaderboard_recompute(context.app)
    return done.status.value


async def _requeue(
    context: procrastinate.JobContext, deps: service.EvalDeps, run: EvalRun, model: Contestant
) -> None:
    """Defer the next attempt of an interrupted run, and leave a note for the terminal."""
    try:
        async with transaction(deps.sessions) as session:
            progress = await repo.run_progress(session, run.id)
        await _defer_again(deps.sessions, context.app, run, model)
        note = (f"evaluation of {model.slug} saved at {progress.generated}/{progress.total} items, "
                "resumes at next start")
    except Exception as exc:  # noqa: BLE001 - the database may be gone; recovery defers the run later
        note = f"evaluation of {model.slug} interrupted ({type(exc).__name__}); recovery resumes it later"
    log.warning("evaluation.run.interrupted", extra={"run": run.id, "note": note})
    notes = context.additional_context.get("stop_notes")
    if isinstance(notes, list):
        notes.append(note)


async def _defer_job(app: procrastinate.App, run: EvalRun, model: Contestant, priority: int = 0) -> int:
    """The run's job on its backend's queue; raises AlreadyEnqueued if the pair already waits."""
    lock = pair_lock(model.id, run.suite)
    queueing_lock = lock if priority == 0 else f"{lock}:priority:{priority}"
    return await app.tasks[RUN_TASK].configure(
        queue=queue_for(model.backend_kind), lock=lock, queueing_lock=queueing_lock, priority=priority
    ).defer_async(run_id=run.id)


async def _defer_again(
    sessions: async_sessionmaker[AsyncSession], app: procrastinate.App, run: EvalRun, model: Contestant
) -> None:
    """Defer an interrupted or orphaned run again, keeping the run and its saved rows."""
    try:
        job_id = await _defer_job(app, run, model)
    except AlreadyEnqueued:  # a waiting job of this pair resumes it anyway
        return
    async with transaction(sessions) as session:
        (await repo.get_run(session, run.id, lock=True)).job_id = job_id


async def reevaluate(context: procrastinate.JobContext, timestamp: int) -> int:
    """Periodic: a new cycle for every model not retired (active, awaiting review, or still waiting for
    its first run; an evaluating one keeps its live run)."""
    deps = _deps(context)
    async with transaction(deps.sessions) as session:
        models = [m.slug for m in await registry.list_all(session) if m.status != ContestantStatus.retired]
    for slug in models:
        await queue_evaluation(
            deps.sessions, context.app, deps.settings, slug, None, RunReason.periodic, "system"
        )
    log.info("evaluation.reevaluate.queued", extra={"models": len(models), "scheduled_at": timestamp})
    return len(models)


async def recover_stalled(context: procrastinate.JobContext, timestamp: int) -> int:
    settings: Settings = context.additional_context["settings"]
    manager = context.app.job_manager
    sessions = context.additional_context["sessions"]
    stalled = list(await manager.get_stalled_jobs(
        task_name=RUN_TASK, seconds_since_heartbeat=settings.eval_stalled_after_s
    ))
    async with transaction(sessions) as session:
        # A worker whose heartbeat is late but which still executes the run is not stalled: retrying
        # its job would run the evaluation twice at once (the executing process holds the run's lock).
        stalled = [job for job in stalled
                   if not await service.run_is_executing(session, job.task_kwargs.get("run_id", -1))]
    for job in stalled:
        try:
            await manager.retry_job(job)
        except Exception:  # noqa: BLE001 - a newer job of the same run already waits: this one is done
            await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
        log.warning("evaluation.run.requeued_stalled", extra={"job": job.id, "scheduled_at": timestamp})
    async with transaction(sessions) as session:
        orphans = [(run, model) for run, model in await repo.runs_without_live_job(session)
                   if not await service.run_is_executing(session, run.id)]
    for orphan, model in orphans:  # a stop whose requeue failed (database gone), or a lost job
        await _defer_again(sessions, context.app, orphan, model)
        log.warning("evaluation.run.requeued_orphan", extra={"run": orphan.id, "scheduled_at": timestamp})
    return len(stalled) + len(orphans)


async def measure_judge(context: procrastinate.JobContext, timestamp: int) -> str:
    """Periodic and cheap when done: measures the configured judge (LIBRA_EVAL_JUDGE) on the gold set
    once per (judge version, gold version) and stores its agreement for the methodology page."""
    deps = _deps(context)
    return await measure_configured_judge(deps, timestamp)


async def measure_configured_judge(
    deps: service.EvalDeps, timestamp: int = 0, items: Sequence[gold.GoldItem] | None = None
) -> str:
    """``items``: a subset of the gold set (tests with a real model); the row says how many."""
    judge = await service.build_judge(deps)
    if judge is None:
        return "no judge configured"
    version = gold.gold_version()
    async with transaction(deps.sessions) as session:
        if await repo.judge_agreement(session, judge.version, version) is not None:
            return "already measured"
    started = time.perf_counter()
    measured = await gold.measure_judge(judge, items)
    held = gold.pick(measured.judge, gold.HELD_OUT)
    async with transaction(deps.sessions) as session:
        await repo.save_judge_agreement(
            session, judge_version=judge.version, gold_version=version, rubric_version=judge.rubric.version,
            n_items=measured.n_items, n_abstained=measured.n_abstained,
            heldout_accuracy=held.accuracy if held else None, heldout_kappa=held.kappa if held else None,
            results=[gold.as_dict(a) for a in measured.judge + measured.chain],
            duration_s=round(time.perf_counter() - started, 3),
        )
    log.info("evaluation.judge.measured", extra={"judge": judge.version, "gold": version, "scheduled_at": timestamp,
                                                 "abstained": measured.n_abstained})
    return "measured"


def build_blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint per job app: procrastinate renames the tasks of a blueprint it absorbs."""
    tasks = procrastinate.Blueprint()
    tasks.task(name="run", queue="cpu", pass_context=True)(run)
    tasks.task(name="reevaluate", queue="housekeeping", queueing_lock="evaluation:reevaluate",
               pass_context=True)(reevaluate)
    tasks.task(name="recover_stalled", queue="housekeeping", queueing_lock="evaluation:recover_stalled",
               pass_context=True)(recover_stalled)
    tasks.task(name="measure_judge", queue="housekeeping", queueing_lock="evaluation:measure_judge",
               pass_context=True)(measure_judge)
    return tasks

