"""Preview runs on the real Postgres: which run the leaderboard reads, the failure a newer run would hide,
and the public progress summary while a run is going. Model text comes from the canned server."""

import asyncio
from datetime import timedelta

from core.db import transaction, utcnow
from core.settings import Settings
from evaluation import repository as repo
from evaluation import service, status
from evaluation.models import EvalRun, RunReason, RunScope, RunStatus
from tests.evaluation.test_eval_pg_runs import add_model


async def _run(deps, model, per_task: int, held_out: int) -> EvalRun:
    scope = service.scope_for(deps.settings, per_task, held_out)
    async with transaction(deps.sessions) as session:
        run = await service.create_run(session, model, "smoke", RunReason.cli, "test", per_task, held_out, scope)
    done = await service.execute_run(deps, run.id)
    assert done.status == RunStatus.finished, done.error
    return done


def test_fewer_items_than_the_configured_cycle_is_a_preview() -> None:
    settings = Settings(_env_file=None, eval_items_per_task=100, eval_held_out_per_task=10)
    assert service.scope_for(settings, 100, 10) == RunScope.full
    assert service.scope_for(settings, 5, 0) == RunScope.preview
    assert service.scope_for(settings, 100, 0) == RunScope.preview  # no held-out items: not the full sample
    assert service.scope_for(settings.model_copy(update={"eval_held_out_per_task": 0}), 100, 0) == RunScope.full


async def test_the_leaderboard_reads_the_latest_full_run_and_a_preview_only_without_one(deps, canned) -> None:
    model = await add_model(deps, "prev-model", canned.config())
    preview = await _run(deps, model, 1, 0)
    async with deps.sessions() as session:
        assert (await repo.leaderboard_runs(session, "smoke"))[model.id].id == preview.id
        items = (await repo.latest_scored_items(session, "smoke"))[model.id]
    assert preview.scope == RunScope.preview and len(items) == preview.items_total == 5
    full = await _run(deps, model, 4, 1)
    later_preview = await _run(deps, model, 2, 0)  # e.g. `libra eval --limit 2` after the full run
    async with deps.sessions() as session:
        chosen = (await repo.leaderboard_runs(session, "smoke"))[model.id]
        items = (await repo.latest_scored_items(session, "smoke"))[model.id]
        shown = await status.evaluation_status(session, "prev-model", "smoke")
    assert later_preview.finished_at > full.finished_at
    assert chosen.id == full.id and chosen.scope == RunScope.full and len(items) == full.items_total
    assert shown.latest_run.id == later_preview.id and shown.latest_run.scope == RunScope.preview
    assert shown.results.run_id == full.id and shown.results.scope == RunScope.full
    assert shown.results.items == full.items_total


async def _add_run(deps, model, status: RunStatus, finished_minutes_ago: float | None, error: str | None = None):
    finished_at = utcnow() - timedelta(minutes=finished_minutes_ago) if finished_minutes_ago is not None else None
    async with transaction(deps.sessions) as session:
        run = await service.create_run(session, model, "smoke", RunReason.admin, "test", 4, 1)
        run.status, run.finished_at, run.error = status, finished_at, error
    return run


async def _status(deps, slug: str):
    async with deps.sessions() as session:
        return await status.evaluation_status(session, slug, "smoke")


async def test_the_status_keeps_a_failure_that_a_newer_run_would_hide(deps) -> None:
    model = await add_model(deps, "flaky-model", {"kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                                                  "model": "m"})
    await _add_run(deps, model, RunStatus.finished, 30)
    failed = await _add_run(deps, model, RunStatus.failed, 20, "the backend failed on every item; first error: x")
    await _add_run(deps, model, RunStatus.queued, None)
    shown = await _status(deps, "flaky-model")
    assert shown.status == "pending" and shown.last_failure is not None
    assert (shown.last_failure.run_id, shown.last_failure.error) == (failed.id, failed.error)
    assert shown.results is not None  # the older finished run stays visible too
    # Once a run finishes after the failure, the failure is history.
    await _add_run(deps, model, RunStatus.finished, 1)
    assert (await _status(deps, "flaky-model")).last_failure is None
    # A failed latest run shows its own error; last_failure does not repeat it.
    await _add_run(deps, model, RunStatus.failed, 0, "boom")
    latest_failed = await _status(deps, "flaky-model")
    assert latest_failed.status == "failed" and latest_failed.last_failure is None


async def test_the_progress_summary_counts_the_wave_while_a_run_goes(deps, canned) -> None:
    canned.delay_s = 0.05
    first = await add_model(deps, "wave-a", canned.config(max_concurrency=1))
    second = await add_model(deps, "wave-b", canned.config(max_concurrency=1))
    async with transaction(deps.sessions) as session:
        runs = [await service.create_run(session, m, "smoke", RunReason.first_run, "system", 2, 0, RunScope.preview)
                for m in (first, second)]
    running = asyncio.create_task(service.execute_run(deps, runs[0].id))
    seen = None
    while not running.done():
        async with deps.sessions() as session:
            summary = await status.progress_summary(session, "smoke", deps.settings)
        entry = {m.slug: m for m in summary.models}["wave-a"]
        if entry.phase == "generating" and 0 < entry.fraction < 0.5:
            seen = summary
            break
        await asyncio.sleep(0.02)
    await running
    assert seen is not None and seen.active and seen.wave.scope == RunScope.preview
    assert (seen.wave.models, seen.wave.evaluating, seen.wave.queued, seen.wave.done) == (2, 1, 1, 0)
    assert 0 < seen.wave.fraction < 0.25  # half of one run's share at most, over two models
    phases = {m.slug: (m.phase, m.scope, m.ranked_on) for m in seen.models}
    assert phases["wave-b"] == ("queued", RunScope.preview, None)
    async with deps.sessions() as session:
        after = await status.progress_summary(session, "smoke", deps.settings)
    assert after.wave.done == 1 and after.wave.queued == 1 and after.wave.fraction == 0.5
    assert {m.slug: m.ranked_on for m in after.models}["wave-a"] == RunScope.preview
    await service.execute_run(deps, runs[1].id)
    async with deps.sessions() as session:
        idle = await status.progress_summary(session, "smoke", deps.settings)
    assert not idle.active and idle.wave is None
    assert {m.phase for m in idle.models} == {"finished"}
