"""Runs on the real Postgres: one row per item, resume, fingerprint isolation, judge re-scoring, failures.

The model's text comes from a canned OpenAI-compatible server (tests/evaluation/canned.py) reached
through the real HTTP backend: these tests are about the machinery, not about a model.
"""

import asyncio
import dataclasses

from sqlalchemy import func, select

from core.db import transaction
from core.registry.models import Contestant, ContestantStatus
from core.registry.schemas import ContestantIn
from evaluation import repository as repo
from evaluation import service
from evaluation.models import EvalGeneration, EvalRun, EvalRunItem, EvalScore, RunReason, RunStatus
from evaluation.types import Status
from server import contestants


async def add_model(deps, slug: str, config: dict) -> Contestant:
    entry = ContestantIn(slug=slug, display_name=slug, organisation="test", config=config)
    async with transaction(deps.sessions) as session:
        return await contestants.register(session, entry, ContestantStatus.pending, actor="test")


async def evaluate(deps, model: Contestant, listener=None) -> EvalRun:
    s = deps.settings
    async with transaction(deps.sessions) as session:
        run = await service.create_run(session, model, s.eval_suite, RunReason.cli, "test",
                                       s.eval_items_per_task, s.eval_held_out_per_task)
    return await service.execute_run(deps, run.id, listener)


async def count(deps, table, *where) -> int:
    async with deps.sessions() as session:
        return await session.scalar(select(func.count()).select_from(table).where(*where))


async def run_items(deps, run_id: int) -> list[EvalRunItem]:
    async with deps.sessions() as session:
        return list(await session.scalars(select(EvalRunItem).where(EvalRunItem.run_id == run_id)))


async def test_a_run_stores_one_row_per_item_and_a_summary_by_category(deps, canned) -> None:
    model = await add_model(deps, "canned-a", canned.config())
    run = await evaluate(deps, model)
    assert run.status == RunStatus.finished, run.error
    items = await run_items(deps, run.id)
    assert run.items_total == len(items) == canned.requests > 0
    assert await count(deps, EvalGeneration) == await count(deps, EvalScore) == len(items)
    categories = {c["category"] for c in run.summary["categories"]}
    assert categories == {"instruction_following", "direct_risk", "adversarial", "instruction_hierarchy",
                          "over_refusal"}
    assert {a["axis"] for a in run.summary["axes"]} == {"capability", "safety"}
    assert sum(i.held_out for i in items) == 5 and run.summary["held_out"]["n_items"] == 5
    assert run.sample_seed is not None and run.run_fingerprint and run.cycle_id
    async with deps.sessions() as session:
        assert (await session.get(Contestant, model.id)).status == ContestantStatus.active


async def test_an_interrupted_run_resumes_without_redoing_finished_items(deps, canned) -> None:
    canned.delay_s = 0.02
    model = await add_model(deps, "canned-b", canned.config(max_concurrency=2))
    running = asyncio.create_task(evaluate(deps, model))
    while await count(deps, EvalGeneration) < 6:
        await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    async with deps.sessions() as session:
        first = await session.scalar(select(EvalRun).order_by(EvalRun.id))
    assert first.status == RunStatus.failed and first.error.startswith("interrupted")
    saved, asked = await count(deps, EvalGeneration), canned.requests
    second = await evaluate(deps, model)
    assert second.status == RunStatus.finished and second.run_fingerprint == first.run_fingerprint
    assert canned.requests - asked == second.items_total - saved  # nothing saved was asked again
    assert await count(deps, EvalGeneration) == second.items_total


async def test_a_fingerprint_change_starts_a_new_run_and_never_mixes_rows(deps, canned) -> None:
    model = await add_model(deps, "canned-c", canned.config())
    first = await evaluate(deps, model)
    longer = dataclasses.replace(deps, settings=deps.settings.model_copy(update={"eval_max_tokens": 32}))
    second = await evaluate(longer, model)
    assert second.run_fingerprint != first.run_fingerprint
    old = {i.generation_fingerprint for i in await run_items(deps, first.id)}
    new = {i.generation_fingerprint for i in await run_items(deps, second.id)}
    assert len(old) == len(new) == first.items_total and old.isdisjoint(new)
    assert await count(deps, EvalGeneration) == 2 * first.items_total
    assert canned.requests == 2 * first.items_total
    async with deps.sessions() as session:
        assert (await session.get(EvalRun, first.id)).summary == first.summary


async def test_a_run_whose_inputs_changed_before_its_retry_is_superseded(deps, canned) -> None:
    model = await add_model(deps, "canned-d", canned.config())
    async with transaction(deps.sessions) as session:
        run = await service.create_run(session, model, "smoke", RunReason.admin, "test", 3, 0)
        # As if a worker had planned it, died, and the suite or model config changed before the retry.
        run.status, run.run_fingerprint = RunStatus.running, "f" * 24
    done = await service.execute_run(deps, run.id)
    async with deps.sessions() as session:
        old = await session.get(EvalRun, run.id)
    assert old.status == RunStatus.failed and old.superseded_by == done.id and "superseded" in old.error
    assert done.status == RunStatus.finished and done.reason == RunReason.superseded
    assert await run_items(deps, old.id) == []


async def test_a_new_judge_rescores_safety_items_from_stored_generations(deps, canned) -> None:
    model = await add_model(deps, "canned-e", canned.config())
    first = await evaluate(deps, model)
    await add_model(deps, "judge", canned.config(model="judge"))
    judged = dataclasses.replace(deps, settings=deps.settings.model_copy(update={"eval_judge": "judge"}))
    asked = canned.requests
    second = await evaluate(judged, model)
    assert second.status == RunStatus.finished and second.judge_version.endswith("max_tokens=160")
    judge_prompts = [p for p in canned.prompts[asked:] if p.startswith("You are grading")]
    assert canned.requests - asked == len(judge_prompts) > 0  # no new generation, only judge calls
    before = {i.item_id + i.task: i for i in await run_items(deps, first.id)}
    after = await run_items(deps, second.id)
    assert all(i.generation_fingerprint == before[i.item_id + i.task].generation_fingerprint for i in after)
    for item in after:  # capability scores are reused; every safety score is new
        same = item.score_fingerprint == before[item.item_id + item.task].score_fingerprint
        assert same == (item.category in {"instruction_following", "instruction_hierarchy"}), item.task
    assert await count(deps, EvalGeneration) == first.items_total


async def test_a_dead_backend_fails_the_run_with_the_reason(deps) -> None:
    model = await add_model(deps, "dead-end", {"kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                                               "model": "m", "max_retries": 0})
    run = await evaluate(deps, model)
    assert run.status == RunStatus.failed
    assert run.error.startswith("the backend failed on every item") and "connect" in run.error
    async with deps.sessions() as session:
        assert (await session.get(Contestant, model.id)).status == ContestantStatus.pending


async def test_latest_scored_items_feed_the_leaderboard(deps, canned) -> None:
    a = await add_model(deps, "canned-f", canned.config())
    b = await add_model(deps, "canned-g", canned.config(model="other"))
    await evaluate(deps, a)
    latest_a = await evaluate(deps, a)
    await evaluate(deps, b)
    async with deps.sessions() as session:
        found = await repo.latest_scored_items(session, "smoke")
    assert set(found) == {a.id, b.id}
    # Only the latest run counts: two finished runs of `a` never double its items.
    assert len(found[a.id]) == latest_a.items_total
    rows = [item for items in found.values() for item in items]
    assert all((r.score is None) == (r.status is not Status.OK) for r in rows)
    assert {r.axis for r in rows} == {"capability", "safety"} and any(r.held_out for r in rows)


async def test_a_run_left_running_by_a_dead_process_is_marked_interrupted(deps, canned) -> None:
    model = await add_model(deps, "canned-h", canned.config())
    async with transaction(deps.sessions) as session:
        dead = await service.create_run(session, model, "smoke", RunReason.cli, "test", 2, 0)
        dead.status = RunStatus.running  # a `libra eval` killed with SIGKILL long ago
        dead.started_at = dead.heartbeat_at = dead.created_at.replace(year=2000)
    await evaluate(deps, model)
    async with deps.sessions() as session:
        dead = await session.get(EvalRun, dead.id)
    assert dead.status == RunStatus.failed and dead.error.startswith("interrupted")
