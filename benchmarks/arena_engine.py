"""Arena answers first on a shared embedded engine (issue 11, item 6).

    python -m benchmarks.arena_engine [--quick] [--no-gemma]

With the real embedded SmolLM2 (one thread), times a battle-like pair of interactive generations (both
sides on the same model, `battle_max_tokens` each, inside `inference.priority.interactive()`; side b on a
copy of the model, as the service runs such a battle since 2026-12-05: `inference.BackendPool.copies_for`):
- on an idle engine, and on one instance for both sides (as before the copies);
- while an evaluation-like batch (16 conversations, `eval_max_tokens` each, greedy) decodes on the same
  engine, with priorities on (the battle jumps the queue and the batch lends its thread between decode
  steps) and off (`LoadedModel(preempt=False)`, both sides on that one instance: first come, first
  served, as before 2026-12-02);
- in the full run, also while the batch runs on Gemma, a different embedded model with its own thread
  (CPU contention rather than queueing).
Rounds interleave idle, on and off so that drifting machine load hits all three alike; each round starts a
fresh batch, waits a random share of one batch's duration (seeded numpy Generator, seed in the output) and
then starts the battle. Figures are medians. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference import GenerationResult, Message, SamplingParams
from inference.config import LlamaCppConfig
from inference.llamacpp import LlamaCppBackend, LoadedModel, ModelKey
from inference.pool import default_cache_dir
from inference.priority import interactive

SMOL = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"
SEED = 20261102
EVAL_BATCH = 16
TOPICS = ("how rainbows form", "why the sea is salty", "how a bicycle stays upright", "what causes the seasons",
          "how bees make honey", "why leaves change colour", "how a fridge keeps food cold", "what makes thunder")


@dataclass(frozen=True)
class Plan:
    rounds: int
    battle_tokens: int
    eval_tokens: int
    gemma: bool


QUICK = Plan(rounds=3, battle_tokens=32, eval_tokens=32, gemma=False)
FULL = Plan(rounds=3, battle_tokens=200, eval_tokens=256, gemma=True)


@dataclass
class Engine:
    """One loaded model with an evaluation backend and the two arena sides on it (side b on a copy, if any)."""

    model: LoadedModel
    copy: LoadedModel | None
    evaluation: LlamaCppBackend
    side_a: LlamaCppBackend
    side_b: LlamaCppBackend


def _engine(name: str, cache_dir: Path, *, preempt: bool, side_b_copy: bool = True) -> Engine:
    base = LlamaCppConfig(kind="llamacpp", model=name)
    model = LoadedModel(ModelKey(name, base.n_ctx, base.n_threads), cache_dir, preempt=preempt)
    copy = LoadedModel(ModelKey(name, base.n_ctx, base.n_threads, 1), cache_dir, preempt=preempt) if side_b_copy \
        else None

    def backend(system: str | None, on: LoadedModel) -> LlamaCppBackend:
        return LlamaCppBackend(base.model_copy(update={"system_prompt": system}), on)

    return Engine(model, copy, backend(None, model), backend("Answer helpfully.", model),
                  backend("Answer carefully and safely.", copy or model))


def _ask(text: str) -> list[Message]:
    return [Message("user", text)]


def _eval_batch() -> list[list[Message]]:
    return [_ask(f"Explain {TOPICS[i % len(TOPICS)]} in detail, step by step. ({i})") for i in range(EVAL_BATCH)]


@dataclass(frozen=True)
class Timing:
    battle_s: float  # until both sides have answered
    first_token_s: float  # until the first side's first token (what a streaming page shows first)
    both_started_s: float  # until the later side's first token (until both sides show text)
    tokens: int


async def _battle(engine: Engine, plan: Plan, seed: int) -> Timing:
    """Both sides' answers to one prompt, started together."""
    params = SamplingParams(max_tokens=plan.battle_tokens, temperature=0.7, seed=seed)
    prompt = _ask("Tell me about the history of the bicycle.")
    started = time.perf_counter()
    with interactive():
        answers = await asyncio.gather(engine.side_a.generate(prompt, params),
                                       engine.side_b.generate(prompt, params))
    starts = [a.ttft_s for a in answers if a.ttft_s is not None]
    return Timing(time.perf_counter() - started, min(starts), max(starts), sum(a.completion_tokens for a in answers))


async def _eval_once(engine: Engine, plan: Plan) -> float:
    params = SamplingParams(max_tokens=plan.eval_tokens, temperature=0.0, seed=1)
    started = time.perf_counter()
    items = await engine.evaluation.generate_batch(_eval_batch(), params)
    assert all(isinstance(item, GenerationResult) for item in items), items
    return time.perf_counter() - started


async def _during_eval(evaluating: Engine, arena: Engine, plan: Plan, delay_s: float, seed: int) -> Timing:
    """A battle started `delay_s` into a fresh evaluation batch; the batch is cancelled afterwards."""
    batch = asyncio.create_task(_eval_once(evaluating, plan))
    await asyncio.sleep(delay_s)
    assert not batch.done(), "the batch ended before the battle started; lower the delay"
    timing = await _battle(arena, plan, seed)
    batch.cancel()
    await asyncio.gather(batch, return_exceptions=True)
    await evaluating.model.call(lambda llm, cancel: None)  # the thread is free again (the batch stopped)
    return timing


async def _measure(plan: Plan, cache_dir: Path) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    on, off = _engine(SMOL, cache_dir, preempt=True), _engine(SMOL, cache_dir, preempt=False, side_b_copy=False)
    other = _engine(GEMMA, cache_dir, preempt=True, side_b_copy=False) if plan.gemma else None
    engines = [e for e in (on, off, other) if e is not None]
    try:
        for engine in engines:  # loads, and a first batch context, outside the timings
            await engine.evaluation.generate(_ask("Warm up."), SamplingParams(max_tokens=2))
            await engine.side_b.generate(_ask("Warm up."), SamplingParams(max_tokens=2))
        batch_s = await _eval_once(on, plan)
        tokens = (await _battle(on, plan, seed=0)).tokens
        samples: dict[str, list[Timing]] = {"idle": [], "idle_one_instance": [], "priority_on": [], "priority_off": [],
                                            "other_model": []}
        for index in range(plan.rounds):
            delay = float(rng.uniform(0.1, 0.5)) * batch_s
            print(f"round {index + 1}/{plan.rounds}: battle {delay:.2f} s into a batch", file=sys.stderr)
            samples["idle"].append(await _battle(on, plan, seed=index))
            samples["idle_one_instance"].append(await _battle(off, plan, seed=index))
            samples["priority_on"].append(await _during_eval(on, on, plan, delay, seed=index))
            samples["priority_off"].append(await _during_eval(off, off, plan, delay, seed=index))
            if other is not None:
                samples["other_model"].append(await _during_eval(other, on, plan, delay, seed=index))
        return _report(plan, samples, batch_s, tokens, on.model.lent)
    finally:
        for engine in engines:
            await asyncio.to_thread(engine.model.close)
            if engine.copy is not None:
                await asyncio.to_thread(engine.copy.close)


def _report(plan: Plan, samples: dict[str, list[Timing]], batch_s: float, tokens: int, lent: int) -> dict[str, Any]:
    """Medians; the load average says how much else the machine was running (it is shared)."""
    samples = {name: values for name, values in samples.items() if values}
    median = {name: statistics.median(t.battle_s for t in values) for name, values in samples.items()}
    first = {name: round(statistics.median(t.first_token_s for t in values), 3) for name, values in samples.items()}
    both = {name: round(statistics.median(t.both_started_s for t in values), 3) for name, values in samples.items()}
    ratio = {name: round(value / median["idle"], 3) for name, value in median.items() if name != "idle"}
    figures: dict[str, Any] = {
        "battle_idle_s": round(median["idle"], 3),
        "battle_during_eval_s": round(median["priority_on"], 3),
        "during_eval_over_idle": ratio["priority_on"],
        "battle_tokens_both_sides": tokens,
        "eval_batch_s": round(batch_s, 3),
        "interactive_calls_lent_by_batches": lent,
        "first_token_s": first,
        "both_sides_first_token_s": both,
        "samples_s": {name: [round(t.battle_s, 3) for t in values] for name, values in samples.items()},
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "plan": {"rounds": plan.rounds, "battle_max_tokens": plan.battle_tokens,
                 "eval_batch_size": EVAL_BATCH, "eval_max_tokens": plan.eval_tokens, "seed": SEED},
    }
    if "other_model" in ratio:
        figures["battle_during_eval_on_gemma_s"] = round(median["other_model"], 3)
        figures["during_other_model_eval_over_idle"] = ratio["other_model"]
    baseline = {"battle_during_eval_priority_off_s": round(median["priority_off"], 3),
                "during_eval_over_idle_priority_off": ratio["priority_off"],
                "battle_idle_one_instance_s": round(median["idle_one_instance"], 3),
                "idle_one_instance_over_idle": ratio["idle_one_instance"]}
    targets = {"battle_during_eval_over_idle": {
        "value": ratio["priority_on"], "goal": "<= 1.5 (same engine, medians)", "met": ratio["priority_on"] <= 1.5,
    }}
    return {"figures": figures, "baseline": baseline, "targets": targets}


def measure(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    return asyncio.run(_measure(plan, default_cache_dir()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer tokens and rounds (under a minute)")
    parser.add_argument("--no-gemma", action="store_true", help="skip the two-model contention figure")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.no_gemma:
        plan = Plan(plan.rounds, plan.battle_tokens, plan.eval_tokens, gemma=False)
    print(json.dumps(asyncio.run(_measure(plan, default_cache_dir()))))


if __name__ == "__main__":
    main()
