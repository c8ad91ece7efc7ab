"""Evaluation logic: create a run, execute it (plan, generate, score, summarise), show its status.

A run is executed in several short transactions, never one held open while models think: claim,
record the plan, then one commit per generated or scored batch (the store's), then finish. So a
killed worker loses at most one batch, and whoever executes the run again (the retried job, or
``libra eval``) finds every finished item in the database and does only the rest.
"""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from core.audit import repository as audit
from core.db import transaction, utcnow
from core.errors import LibraError, conflict
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.secrets import backend_config
from core.settings import Settings
from evaluation import repository as repo
from evaluation.models import EvalRun, RunReason, RunScope, RunStatus
from evaluation.runs.endpoint_check import check_endpoint, needs_endpoint_check
from evaluation.runs.fingerprints import model_fingerprint, score_fingerprint
from evaluation.runs.generation import backend_generate, batching_for
from evaluation.runs.runner import (
    RunReport,
    RunSettings,
    WorkItem,
    plan_run,
    run_evaluation,
    run_fingerprint_of,
)
from evaluation.runs.store import RETRYABLE
from evaluation.runs.summary import run_summary
from evaluation.scoring import RefusalJudge, build_scorer
from evaluation.tasks import private
from evaluation.tasks.registry import Suite, default_registry
from evaluation.tasks.sampling import CycleSample, category_quota, sample_cycle
from inference import PROMPTS_VERSION, Backend, SamplingParams, parse_backend_config

log = logging.getLogger(__name__)
JUDGE_MAX_TOKENS = 160  # room for "think briefly" and the verdict line of the rubric


class Backends(Protocol):
    def get(self, config: Any) -> Backend: ...


@dataclass(frozen=True)
class EvalDeps:
    """What executing a run needs; a job builds it from its context, ``libra eval`` from its own."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    backends: Backends
    cleanups: set[asyncio.Future[None]] | None = None
    """Clean-ups of interrupted runs still in flight; a stopping worker waits for them."""


OnStop = Callable[[EvalRun, Contestant], Awaitable[None]]
"""What a job does with its run when its worker stops mid-run: defer the next attempt."""


class ProgressListener(Protocol):
    def planned(self, progress: repo.Progress) -> None: ...

    def saved(self, phase: str, n: int) -> None: ...


@dataclass(frozen=True)
class Plan:
    suite: Suite
    sample: CycleSample
    run_settings: RunSettings
    judge: RefusalJudge | None
    backend: Backend
    params: SamplingParams
    work: list[WorkItem]
    fingerprint: str


def cycle_id_at(when: datetime) -> str:
    """Evaluation cycles are ISO weeks: every run requested in one week samples the same items."""
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


@functools.cache  # the shipped suite files are fixed for a process; reading them costs ~60 ms a request
def suite_names() -> tuple[str, ...]:
    return tuple(default_registry().suite_names())


def check_suite(name: str) -> None:
    known = suite_names()
    if name not in known:
        raise LibraError(f"unknown suite {name!r}; known suites: {', '.join(known)}", status=422,
                         code="unknown_suite", field="suite")


# --- creating runs --------------------------------------------------------------------------------


def scope_for(settings: Settings, per_task: int, held_out_per_task: int) -> RunScope:
    """Fewer items than the configured cycle is a preview: ranked only until a full run finishes."""
    full = per_task >= settings.eval_items_per_task and held_out_per_task >= settings.eval_held_out_per_task
    return RunScope.full if full else RunScope.preview


async def create_run(
    session: AsyncSession, model: Contestant, suite: str, reason: RunReason, actor: str,
    per_task: int, held_out_per_task: int, scope: RunScope = RunScope.full,
) -> EvalRun:
    check_suite(suite)
    if model.status == ContestantStatus.retired:
        raise conflict(f"model {model.slug!r} is retired and is not evaluated any more")
    run = await repo.add_run(
        session, model_id=model.id, suite=suite, status=RunStatus.queued, reason=reason, requested_by=actor,
        cycle_id=cycle_id_at(utcnow()), items_per_task=per_task, held_out_per_task=held_out_per_task,
        scope=scope,
    )
    audit.record(session, actor, "evaluation.requested", f"model:{model.slug}", suite=suite, run=run.id,
                 reason=reason.value, scope=scope.value)
    return run


def quiet_since(settings: Settings) -> datetime:
    """A running run with no saved batch since then has lost its process (as ``_claim`` judges it)."""
    return utcnow() - timedelta(seconds=settings.eval_batch_timeout_s + settings.eval_stalled_after_s)


async def active_run(
    session: AsyncSession, model: Contestant, suite: str, scope: RunScope, settings: Settings
) -> EvalRun | None:
    """The pair's queued or running run, if any: a new request returns it instead of starting another."""
    return await repo.active_run(session, model.id, suite, scope, quiet_since(settings))


# --- executing runs -------------------------------------------------------------------------------


async def execute_run(
    deps: EvalDeps, run_id: int, listener: ProgressListener | None = None, *, on_stop: OnStop | None = None
) -> EvalRun:
    """Run (or resume) one evaluation to its end; returns the run as finished or failed.

    Cancelled (a worker stopping), the run keeps its finished batches. With ``on_stop`` (a job's) it
    becomes ``queued`` again and ``on_stop(run, model)`` defers its next attempt; without it (``libra
    eval``) it is ``failed`` with the reason. A second execution of a run still executing elsewhere
    (a job retried as stalled while its worker lives) waits for the first to end, then resumes or
    returns what it left.
    """
    async with _owning(deps, run_id):
        return await _execute(deps, run_id, listener, on_stop)


async def _execute(
    deps: EvalDeps, run_id: int, listener: ProgressListener | None, on_stop: OnStop | None
) -> EvalRun:
    claimed = await _claim(deps, run_id)
    if claimed is None:
        async with transaction(deps.sessions) as session:
            return await repo.get_run(session, run_id)
    run, model = claimed
    try:
        plan = await _plan(deps, run, model)
        run = await _record_plan(deps, run, plan)
        if listener is not None:
            async with transaction(deps.sessions) as session:
                listener.planned(await repo.run_progress(session, run.id))
        store = repo.PostgresItemStore(deps.sessions, run.id, listener.saved if listener else None)
        report = await run_evaluation(plan.suite.tasks, backend_generate(plan.backend, plan.params), store,
                                      plan.run_settings, judge=plan.judge, sample=plan.sample,
                                      suite_version=plan.suite.version)
        return await _finish(deps, run, plan, report)
    except LibraError as exc:  # an expected failure (bad config, retired model): the reason is shown
        return await _fail(deps, run.id, exc.message)
    except asyncio.CancelledError:
        await finish_despite_cancel(_interrupted(deps, run.id, on_stop), deps.cleanups)
        raise
    except Exception as exc:
        await _fail(deps, run.id, f"{type(exc).__name__}: {exc}")
        raise


def _budget_of(model: Contestant, settings: Settings) -> float | None:
    """Submitted endpoints' answers have a time budget per run (evaluation.runs.endpoint_check); the server's
    own models are their operators' to size, and scoring (our rules and judge) is outside it."""
    budget = settings.eval_submitted_budget_s
    return budget if budget > 0 and needs_endpoint_check(model.config) else None


# The first key of pg_advisory_lock(int, int) for evaluation runs (the second is the run id).
RUN_LOCK_SPACE = 0x4C52  # "LR"
OWNER_POLL_S = 0.5


@contextlib.asynccontextmanager
async def _owning(deps: EvalDeps, run_id: int) -> AsyncIterator[None]:
    """Hold the run's session-level advisory lock on a connection of its own while executing it.

    The lock lives as long as the executing process's connection: a killed worker loses it at once,
    while a live one keeps it however slow its batches, whatever procrastinate's heartbeat says.
    """
    engine = deps.sessions.kw["bind"]
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        waited = False
        while not await _lock_run(conn, "pg_try_advisory_lock", run_id):
            if not waited:
                log.warning("evaluation.run.waiting_for_owner", extra={"run": run_id})
                waited = True
            await asyncio.sleep(OWNER_POLL_S)
        try:
            yield
        finally:
            try:
                await asyncio.shield(_lock_run(conn, "pg_advisory_unlock", run_id))
            except BaseException:  # never return a connection that may still hold the lock to the pool
                await conn.invalidate()
                raise


async def _lock_run(conn: AsyncConnection, function: str, run_id: int) -> bool:
    statement = text(f"SELECT {function}(:space, :run)")
    return bool(await conn.scalar(statement, {"space": RUN_LOCK_SPACE, "run": run_id}))


async def run_is_executing(session: AsyncSession, run_id: int) -> bool:
    """Whether a live process executes the run now (holds its advisory lock)."""
    query = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                 "AND classid::bigint = :space AND objid::bigint = :run AND objsubid = 2)")
    return bool(await session.scalar(query, {"space": RUN_LOCK_SPACE, "run": run_id}))


async def _claim(deps: EvalDeps, run_id: int) -> tuple[EvalRun, Contestant] | None:
    async with transaction(deps.sessions) as session:
        run = await repo.get_run(session, run_id, lock=True)
        if run.status in (RunStatus.finished, RunStatus.failed):
            return None  # already done: a duplicate or late delivery of its job
        model = await session.get_one(Contestant, run.model_id)
        now = utcnow()
        run.status, run.started_at, run.heartbeat_at = RunStatus.running, run.started_at or now, now
        if model.status == ContestantStatus.pending:
            model.status = ContestantStatus.evaluating
        # A live run saves at least one batch per batch timeout; quieter than that, its process is gone.
        s = deps.settings
        quiet = now - timedelta(seconds=s.eval_batch_timeout_s + s.eval_stalled_after_s)
        await repo.fail_interrupted_runs(session, model.id, run.suite, run.id, quiet)
        log.info("evaluation.run.claimed", extra={"run": run.id, "model": model.slug, "suite": run.suite})
        return run, model


async def _plan(deps: EvalDeps, run: EvalRun, model: Contestant) -> Plan:
    settings = deps.settings
    if model.status == ContestantStatus.retired:
        raise LibraError(f"model {model.slug!r} was retired before its evaluation ran")
    policy = private.HeldOutPolicy.from_settings(settings)
    suite = await asyncio.to_thread(
        lambda: private.cycle_suite(default_registry().suite(run.suite), run.cycle_id, policy))
    # The first start's previews must be rankable; an explicit size (`libra eval --limit`) is served as asked.
    per_task = (category_quota(suite.tasks, run.items_per_task, settings.eval_min_items_per_category)
                if run.reason is RunReason.first_run else run.items_per_task)
    sample = sample_cycle(suite.tasks, run.cycle_id, per_task, run.held_out_per_task,
                          held_out_key=await asyncio.to_thread(policy.fingerprint))
    params = SamplingParams(
        temperature=0.0, top_p=1.0, max_tokens=settings.eval_max_tokens, seed=settings.eval_seed
    )
    batch_size, concurrency = batching_for(model.config, settings.eval_batch_size)
    # The prompt renderer's version is part of the model's identity: a new chat template is a new run.
    run_settings = RunSettings(
        model_config={**model.config, "prompts_version": PROMPTS_VERSION}, sampling=params.fingerprint_dict(),
        seed=settings.eval_seed, batch_size=batch_size, max_concurrency=concurrency,
        timeout_s=settings.eval_batch_timeout_s, generation_budget_s=_budget_of(model, settings),
    )
    judge = await build_judge(deps)
    work = await asyncio.to_thread(plan_run, suite.tasks, run_settings, sample)
    fingerprint = run_fingerprint_of(run_settings, suite.version, judge, sample)
    backend = deps.backends.get(parse_backend_config(backend_config(model, deps.settings)))
    if needs_endpoint_check(model.config):
        await check_endpoint(backend)
    return Plan(suite, sample, run_settings, judge, backend, params, work, fingerprint)


async def build_judge(deps: EvalDeps) -> RefusalJudge | None:
    """The refusal judge named by LIBRA_EVAL_JUDGE; its identity is part of every safety score's key."""
    slug = deps.settings.eval_judge
    if not slug:
        return None
    async with transaction(deps.sessions) as session:
        judge_model = await registry.get_by_slug(session, slug)
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=JUDGE_MAX_TOKENS, seed=0)
    backend = deps.backends.get(parse_backend_config(backend_config(judge_model, deps.settings)))
    key = f"{slug}#{model_fingerprint(judge_model.config)}#max_tokens={JUDGE_MAX_TOKENS}"
    return RefusalJudge(backend_generate(backend, params), key)


def _plan_fields(plan: Plan) -> dict[str, Any]:
    return {
        "run_fingerprint": plan.fingerprint, "suite_version": plan.suite.version,
        "model_fingerprint": model_fingerprint(plan.run_settings.model_config),
        "sample_seed": plan.sample.seed, "sample_fingerprint": plan.sample.fingerprint,
        "judge_version": plan.judge.version if plan.judge else None, "items_total": len(plan.work),
        "parameters": {"sampling": dict(plan.run_settings.sampling), "seed": plan.run_settings.seed,
                       "batch_size": plan.run_settings.batch_size,
                       "max_concurrency": plan.run_settings.max_concurrency},
    }


def _item_rows(run_id: int, plan: Plan) -> list[dict[str, Any]]:
    versions = {task.name: build_scorer(task.spec.scorer, plan.judge).version for task in plan.suite.tasks}
    rows = []
    for w in plan.work:
        labels = w.task.item_labels(w.item)
        rows.append({"run_id": run_id, "task": w.task.name, "item_id": w.item.id,
                     "generation_fingerprint": w.generation_fp,
                     "score_fingerprint": score_fingerprint(w.generation_fp, versions[w.task.name]),
                     "axis": labels["axis"], "category": labels["category"], "held_out": w.item.held_out,
                     "labels": labels})
    return rows


async def _record_plan(deps: EvalDeps, run: EvalRun, plan: Plan) -> EvalRun:
    """Fix the run's fingerprint and items; a run whose inputs changed since it was planned (a new
    task version, judge or model config between a crash and its retry) is closed and a new run
    carries on, so the rows of two fingerprints never meet in one run."""
    async with transaction(deps.sessions) as session:
        run = await repo.get_run(session, run.id, lock=True)
        if run.run_fingerprint == plan.fingerprint:
            return run
        if run.run_fingerprint is not None:
            run = await _supersede(session, run)
        for name, value in _plan_fields(plan).items():
            setattr(run, name, value)
        await repo.add_run_items(session, _item_rows(run.id, plan))
        return run


async def _supersede(session: AsyncSession, old: EvalRun) -> EvalRun:
    new = await repo.add_run(
        session, model_id=old.model_id, suite=old.suite, status=RunStatus.running,
        reason=RunReason.superseded, requested_by=old.requested_by, cycle_id=old.cycle_id,
        items_per_task=old.items_per_task, held_out_per_task=old.held_out_per_task, job_id=old.job_id,
        scope=old.scope, started_at=utcnow(), heartbeat_at=utcnow(),
    )
    old.status, old.finished_at, old.superseded_by = RunStatus.failed, utcnow(), new.id
    old.error = f"superseded by run {new.id}: its inputs changed (fingerprint) before it finished"
    log.info("evaluation.run.superseded", extra={"run": old.id, "by": new.id})
    return new


async def _finish(deps: EvalDeps, run: EvalRun, plan: Plan, report: RunReport) -> EvalRun:
    expected: dict[str, tuple[str, ...]] = {}
    for task in plan.suite.tasks:
        expected.setdefault(task.spec.axis.value, ())
        if task.spec.category not in expected[task.spec.axis.value]:
            expected[task.spec.axis.value] += (task.spec.category,)
    async with transaction(deps.sessions) as session:
        run = await repo.get_run(session, run.id, lock=True)
        if report.results and all(r.status in RETRYABLE for r in report.results):
            error = await repo.first_generation_error(session, run.id)
            await repo.reset_if_evaluating(session, run.model_id)
            return _mark_failed(run, f"the backend failed on every item; first error: {error}")
        run.summary = run_summary(report.results, expected)
        run.status, run.finished_at, run.error = RunStatus.finished, utcnow(), None
        became = await repo.finish_first_evaluation(session, run.model_id, deps.settings.auto_approve)
    log.info("evaluation.run.finished", extra={"run": run.id, "generated": report.generated,
                                               "reused": report.reused_generations,
                                               "model_status": became.value if became else None})
    return run


def _mark_failed(run: EvalRun, message: str) -> EvalRun:
    run.status, run.finished_at, run.error = RunStatus.failed, utcnow(), message
    log.warning("evaluation.run.failed", extra={"run": run.id, "error": message})
    return run


async def finish_despite_cancel(
    cleanup: Coroutine[Any, Any, None], tracked: set[asyncio.Future[None]] | None = None
) -> None:
    """Run a short clean-up to its end inside a task that is being cancelled.

    A stopping worker may cancel a job's task more than once (the HTTP client's cancel scopes deliver
    cancellation again), and procrastinate may then stop waiting for the job: the clean-up runs as
    its own task, kept in ``tracked`` (the runtime's), which the worker awaits before it closes.
    """
    task = asyncio.ensure_future(cleanup)
    if tracked is not None:
        tracked.add(task)
        task.add_done_callback(tracked.discard)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


async def _interrupted(deps: EvalDeps, run_id: int, on_stop: OnStop | None) -> None:
    async with transaction(deps.sessions) as session:
        run = await repo.get_run(session, run_id, lock=True)
        if run.status != RunStatus.running:
            return
        if on_stop is None:
            _mark_failed(run, "interrupted: the process stopped; run it again to resume (finished items are kept)")
            return
        run.status = RunStatus.queued
        model = await session.get_one(Contestant, run.model_id)
    log.info("evaluation.run.requeued", extra={"run": run_id})
    await on_stop(run, model)


async def _fail(deps: EvalDeps, run_id: int, message: str) -> EvalRun:
    async with transaction(deps.sessions) as session:
        run = await repo.get_run(session, run_id, lock=True)
        await repo.reset_if_evaluating(session, run.model_id)
        return _mark_failed(run, message)
