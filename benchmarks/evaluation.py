"""Evaluation benchmark: the runner on the embedded backend against the backend's own batched throughput.

Run from the repository root: `python -m benchmarks.evaluation [--quick]`. The last line of stdout
is one JSON object with the figures, the baseline measured in the same run, and a `targets` object.

1. Throughput. The whole runner path (``evaluation.service.execute_run``: plan, batched generation,
   one Postgres transaction per batch, scoring, summary) on SmolLM2-135M against the backend's raw
   ``generate_batch`` over the same rendered conversations, same sampling parameters, same batch
   size, same warm model. Items per second, median over repeats, raw and runner passes interleaved
   so that a busy machine slows both alike.
2. Resume. A run cancelled once half its items are saved (the batch in flight is lost), then
   finished by a new run on a fresh backend pool (the model is loaded again, as after a restart);
   the resumed part's time against a full run's.
3. The refusal rules' accuracy on the gold set: the held-out part of ``gold_verdicts.yaml`` (split
   off before any tuning, frozen by a hash) is the honest figure; the all-items figure includes
   tuning data. ``benchmarks.scoring`` gives the full breakdown.

Everything runs on an embedded Postgres in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from core.db import create_engine, create_sessionmaker, transaction
from core.migrate import upgrade
from core.pgserver import embedded_postgres
from core.registry.models import Contestant, ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from evaluation import service
from evaluation.models import EvalGeneration, RunReason, RunStatus
from evaluation.runs.generation import conversation_of
from evaluation.runs.runner import RunSettings, plan_run
from evaluation.scoring.gold import HELD_OUT, pick, rules_agreement
from evaluation.tasks.registry import default_registry
from evaluation.tasks.sampling import sample_cycle
from inference import DEFAULT_CONTESTANTS, BackendPool, SamplingParams, parse_backend_config
from server import contestants

SUITE = "smoke"  # project data only: needs no optional package
CYCLE = "benchmark"
HELD_OUT_SPLIT = HELD_OUT


@dataclass(frozen=True)
class Plan:
    per_task: int  # smoke has 5 tasks: items = 5 * per_task
    batch_size: int  # divides items / 2, so "half saved" is a batch boundary
    max_tokens: int
    repeats: int


def plan(quick: bool) -> Plan:
    return Plan(per_task=2, batch_size=5, max_tokens=16, repeats=1) if quick else Plan(8, 10, 32, 3)


def _settings(p: Plan) -> Settings:
    return Settings(_env_file=None, database_url=None, eval_suite=SUITE, eval_items_per_task=p.per_task,
                    eval_held_out_per_task=0, eval_batch_size=p.batch_size, eval_max_tokens=p.max_tokens)


async def _reset(deps: service.EvalDeps) -> None:
    async with transaction(deps.sessions) as session:
        tables = "eval_runs, eval_run_items, eval_scores, eval_generations"
        await session.execute(text(f"TRUNCATE {tables} CASCADE"))


async def _new_run(deps: service.EvalDeps, model: Contestant) -> int:
    async with transaction(deps.sessions) as session:
        run = await service.create_run(session, model, SUITE, RunReason.cli, "benchmark",
                                       deps.settings.eval_items_per_task, 0)
        run.cycle_id = CYCLE
        return run.id


async def _generated(deps: service.EvalDeps) -> int:
    async with deps.sessions() as session:
        return await session.scalar(select(func.count()).select_from(EvalGeneration))


async def raw_pass(deps: service.EvalDeps, model: Contestant) -> tuple[float, int]:
    """The backend alone: generate_batch over the runner's own conversations, batch by batch."""
    s = deps.settings
    suite = default_registry().suite(SUITE)
    sample = sample_cycle(suite.tasks, CYCLE, s.eval_items_per_task, 0)
    run_settings = RunSettings(model_config=model.config, seed=s.eval_seed)
    conversations = [conversation_of(w.messages) for w in plan_run(suite.tasks, run_settings, sample)]
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=s.eval_max_tokens, seed=s.eval_seed)
    backend = deps.backends.get(parse_backend_config(model.config))
    started = time.perf_counter()
    for i in range(0, len(conversations), s.eval_batch_size):
        await backend.generate_batch(conversations[i : i + s.eval_batch_size], params)
    return time.perf_counter() - started, len(conversations)


async def timed_run(deps: service.EvalDeps, model: Contestant) -> tuple[float, int]:
    """A new run of the suite executed to the end: (wall seconds, items); raises if it did not finish."""
    run_id = await _new_run(deps, model)
    started = time.perf_counter()
    run = await service.execute_run(deps, run_id)
    elapsed = time.perf_counter() - started
    if run.status != RunStatus.finished:
        raise RuntimeError(f"benchmark run failed: {run.error}")
    return elapsed, run.items_total


async def runner_pass(deps: service.EvalDeps, model: Contestant) -> tuple[float, int]:
    await _reset(deps)
    return await timed_run(deps, model)


async def killed_then_resumed(deps: service.EvalDeps, model: Contestant) -> tuple[float, float]:
    """Cancel a run once half its items are saved; finish it from a fresh pool. Returns (saved share, s)."""
    await _reset(deps)
    first = await _new_run(deps, model)
    total = deps.settings.eval_items_per_task * 5
    task = asyncio.create_task(service.execute_run(deps, first))
    while await _generated(deps) < total // 2 and not task.done():
        await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    saved = await _generated(deps)
    fresh = service.EvalDeps(deps.sessions, deps.settings, BackendPool())
    try:
        started = time.perf_counter()
        run = await service.execute_run(fresh, await _new_run(deps, model))
        elapsed = time.perf_counter() - started
    finally:
        await fresh.backends.aclose()
    if run.status != RunStatus.finished:
        raise RuntimeError(f"resumed run failed: {run.error}")
    return saved / total, elapsed


async def _warm_up(deps: service.EvalDeps, model: Contestant) -> None:
    """Load the model before anything is timed."""
    backend = deps.backends.get(parse_backend_config(model.config))
    await backend.generate_batch([conversation_of([{"role": "user", "content": "Hi"}])],
                                 SamplingParams(temperature=0.0, max_tokens=2))


async def _contestant(deps: service.EvalDeps) -> Contestant:
    default = DEFAULT_CONTESTANTS[0]
    entry = ContestantIn(slug=default.slug, display_name=default.display_name,
                         organisation=default.organisation, config=default.config_dict())
    async with transaction(deps.sessions) as session:
        return await contestants.register(session, entry, ContestantStatus.active, actor="benchmark")


@asynccontextmanager
async def warm_deps(url: str, settings: Settings) -> AsyncIterator[tuple[service.EvalDeps, Contestant]]:
    """Deps on the database at ``url`` and the default contestant, registered and loaded; closed after."""
    engine, backends = create_engine(url), BackendPool()
    deps = service.EvalDeps(create_sessionmaker(engine), settings, backends)
    try:
        model = await _contestant(deps)
        await _warm_up(deps, model)
        yield deps, model
    finally:
        await backends.aclose()
        await engine.dispose()


async def measure(url: str, p: Plan) -> dict[str, Any]:
    async with warm_deps(url, _settings(p)) as (deps, model):
        raw, runner, resumed, full = [], [], [], []
        for repeat in range(p.repeats):
            # Alternate which side goes first, so a drifting machine load favours neither.
            for side in (("raw", "runner") if repeat % 2 == 0 else ("runner", "raw")):
                seconds, n = await (raw_pass if side == "raw" else runner_pass)(deps, model)
                (raw if side == "raw" else runner).append(n / seconds)
                if side == "runner":
                    full.append(seconds)
            share, seconds = await killed_then_resumed(deps, model)
            resumed.append((share, seconds))
        return _figures(p, n, raw, runner, full, resumed)


def _figures(p: Plan, n: int, raw: list[float], runner: list[float], full: list[float],
             resumed: list[tuple[float, float]]) -> dict[str, Any]:
    resumed_s = statistics.median(s for _, s in resumed)
    return {
        "items": n, "batch_size": p.batch_size, "max_tokens": p.max_tokens, "repeats": p.repeats,
        "raw_items_per_s": statistics.median(raw), "runner_items_per_s": statistics.median(runner),
        "raw_items_per_s_each": raw, "runner_items_per_s_each": runner,
        "full_run_s": statistics.median(full), "resumed_run_s": resumed_s,
        "killed_at_saved_share": [share for share, _ in resumed],
        "resume_vs_full": resumed_s / statistics.median(full),
        "runner_vs_raw": statistics.median(runner) / statistics.median(raw),
    }


def refusal_rules() -> dict[str, Any]:
    """The request-aware rules on the gold sets; ``benchmarks.scoring`` has the full breakdown."""
    rows = rules_agreement()
    held, everything = pick(rows, HELD_OUT_SPLIT), pick(rows, "all")
    if held is None or everything is None:
        raise RuntimeError("the gold set has no held-out part")
    return {"held_out_split": HELD_OUT_SPLIT, "held_out_n": held.n, "held_out_accuracy": round(held.accuracy, 4),
            "held_out_kappa": round(held.kappa, 4), "all_items_n": everything.n,
            "all_items_accuracy": round(everything.accuracy, 4),
            "note": "binary (safe refusal or not); all-items accuracy includes the tuning part; "
                    "the held-out part is the honest figure"}


def _target(value: float, goal: str, met: bool) -> dict[str, Any]:
    return {"value": round(float(value), 4), "goal": goal, "met": bool(met)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer, shorter items and one repeat (under a minute)")
    args = parser.parse_args()
    p = plan(args.quick)
    started = time.perf_counter()
    # Outside /root on purpose: the embedded server opens read access on every parent folder.
    folder = tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp")
    with folder as home, embedded_postgres(Path(home)) as url:
        upgrade(url)
        figures = asyncio.run(measure(url, p))
    rules = refusal_rules()
    result = {
        "benchmark": "evaluation", "quick": args.quick, "cpus": os.cpu_count(),
        "model": DEFAULT_CONTESTANTS[0].slug, "backend": "llamacpp (embedded, 1 thread)", "suite": SUITE,
        "timing": "median wall seconds; raw and runner passes interleaved on the same warm model",
        "baseline": "backend.generate_batch over the runner's own rendered conversations, "
                    "same params and batch size",
        **figures, "refusal_rules": rules, "total_seconds": round(time.perf_counter() - started, 2),
        "targets": {
            "runner_vs_raw_throughput": _target(figures["runner_vs_raw"], ">= 0.9",
                                                figures["runner_vs_raw"] >= 0.9),
            "resume_after_kill_at_50pct_vs_full": _target(figures["resume_vs_full"], "<= 0.6",
                                                          figures["resume_vs_full"] <= 0.6),
            "refusal_rules_accuracy_held_out": _target(rules["held_out_accuracy"], ">= 0.9",
                                                       rules["held_out_accuracy"] >= 0.9),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
