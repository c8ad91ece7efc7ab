"""The first start evaluates the embedded defaults, so that the first leaderboard is not empty.

On the first start of `libra serve` (no evaluation run of any kind in the database yet), each default
contestant (`inference.DEFAULT_CONTESTANTS`) gets a *preview* run of the configured suite,
LIBRA_FIRST_RUN_ITEMS_PER_TASK public items per task and no held-out items, and then its full run.
The full runs are deferred at a lower procrastinate priority: a worker fetches higher priorities
first, so with one evaluation slot every preview finishes (and queues its leaderboard snapshot)
before any full run starts. A model's full run replaces its preview on the leaderboard once it
finishes. LIBRA_FIRST_RUN_EVALUATIONS=false turns all of this off.
"""

import asyncio
import logging

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker, transaction
from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings
from evaluation import repository as eval_repo
from evaluation import service as eval_service
from evaluation.jobs import defer_run
from evaluation.models import EvalRun, RunReason, RunScope
from inference import DEFAULT_CONTESTANTS
from server.jobs import build_job_app

log = logging.getLogger(__name__)

FULL_RUN_PRIORITY = -1
"""Below the default 0 of every other job: full runs wait behind previews and anything queued later."""


async def queue_first_run(
    sessions: async_sessionmaker[AsyncSession], jobs: procrastinate.App, settings: Settings
) -> list[str]:
    """Queue the first start's runs; returns the slugs queued ([] when turned off or not the first start)."""
    if not (settings.first_run_evaluations and settings.seed_defaults):
        return []
    async with transaction(sessions) as session:
        await eval_repo.lock_first_run(session)  # two processes starting at once: only one queues
        if await eval_repo.any_run(session):
            return []
        models = await _defaults(session)
        previews = [await _create(session, settings, m, settings.first_run_items_per_task, 0) for m in models]
        fulls = [await _create(session, settings, m, settings.eval_items_per_task,
                               settings.eval_held_out_per_task) for m in models]
    # Deferred after the commit (the worker must find the rows): every preview before any full run.
    for run, model in zip(previews, models, strict=True):
        await defer_run(sessions, jobs, run, model)
    if previews and previews[0].scope == RunScope.preview:  # a "preview" as large as a full run is one
        for run, model in zip(fulls, models, strict=True):
            await defer_run(sessions, jobs, run, model, priority=FULL_RUN_PRIORITY)
    slugs = [m.slug for m in models]
    log.info("evaluation.first_run.queued", extra={
        "models": slugs, "suite": settings.eval_suite, "preview_items_per_task": settings.first_run_items_per_task,
    })
    return slugs


async def _defaults(session: AsyncSession) -> list[Contestant]:
    registered = {m.slug: m for m in await registry.list_all(session)}
    found = [registered.get(default.slug) for default in DEFAULT_CONTESTANTS]
    return [m for m in found if m is not None and m.status != ContestantStatus.retired]


async def _create(
    session: AsyncSession, settings: Settings, model: Contestant, per_task: int, held_out: int
) -> EvalRun:
    scope = eval_service.scope_for(settings, per_task, held_out)
    return await eval_service.create_run(session, model, settings.eval_suite, RunReason.first_run, "system",
                                         per_task, held_out, scope)


def queue_first_run_at_start(settings: Settings, url: str) -> list[str]:
    """For `libra serve`, before the app starts: a short-lived engine and job app around
    :func:`queue_first_run`. A failure is logged and the service starts anyway."""
    if not (settings.first_run_evaluations and settings.seed_defaults):
        return []
    return asyncio.run(_at_start(settings, url))


async def _at_start(settings: Settings, url: str) -> list[str]:
    engine, jobs = create_engine(url), build_job_app(url, settings)
    await jobs.open_async()
    try:
        return await queue_first_run(create_sessionmaker(engine), jobs, settings)
    except LibraError as exc:  # e.g. an unknown LIBRA_EVAL_SUITE: the API and the arena still work
        log.warning("evaluation.first_run.not_queued", extra={"reason": exc.message})
        return []
    finally:
        await jobs.close_async()
        await engine.dispose()
