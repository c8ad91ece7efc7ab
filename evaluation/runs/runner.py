"""The storage-agnostic runner core: plan, generate, score, collect.

Resumable by construction: every item's generation and score are saved as soon as their batch
finishes, keyed by fingerprints, and a run first asks the store what is already done. Killing a
run loses at most the batches in flight. Generations are shared by every scorer and judge version;
scores are per scorer version, so a new judge re-scores without regenerating.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from core import metrics
from evaluation.runs.endpoint_check import within_budget
from evaluation.runs.fingerprints import (
    generation_fingerprint,
    model_fingerprint,
    run_fingerprint,
    score_fingerprint,
)
from evaluation.runs.results import normalize_result
from evaluation.runs.store import RETRYABLE, GenerationRecord, ItemStore
from evaluation.scoring import RefusalJudge, ScoreInput, Scorer, build_scorer
from evaluation.tasks.sampling import CycleSample, item_rng
from evaluation.tasks.spec import LoadedTask
from evaluation.types import Generate, Item, ScoredItem, Status

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RunSettings:
    model_config: Mapping[str, Any]
    """Everything that identifies the model and backend (credentials are stripped from fingerprints)."""
    sampling: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 8
    """Conversations per ``generate`` call: large for batched local backends, 1 for HTTP."""
    max_concurrency: int = 1
    """``generate`` calls in flight at once: raise it for HTTP backends."""
    timeout_s: float | None = None
    """Per-batch limit; a batch that exceeds it gets status ``timeout``."""
    generation_budget_s: float | None = None
    """Wall time for all of the run's generation (a submitted endpoint's: ``endpoint_check.within_budget``)."""
    retry_failed: bool = True


@dataclass(frozen=True)
class WorkItem:
    task: LoadedTask
    item: Item
    messages: tuple[Mapping[str, str], ...]
    prompt: str
    generation_fp: str


@dataclass(frozen=True)
class RunReport:
    run_fingerprint: str
    results: tuple[ScoredItem, ...]
    generated: int
    reused_generations: int
    scored: int
    reused_scores: int


def plan_run(
    tasks: Sequence[LoadedTask], settings: RunSettings, sample: CycleSample | None = None
) -> list[WorkItem]:
    """Render every (sampled) item into the conversation it will be sent as, with its fingerprint."""
    model_fp = model_fingerprint(settings.model_config)
    work = []
    for task in tasks:
        wanted = set(sample.item_ids.get(task.name, ())) if sample else None
        for item in task.items:
            if wanted is None or item.id in wanted:
                work.append(_work_item(task, item, model_fp, settings))
    return work


def _work_item(task: LoadedTask, item: Item, model_fp: str, settings: RunSettings) -> WorkItem:
    template = task.spec.template
    messages = template.render(item, item_rng(settings.seed, task.name, item.id))
    fp = generation_fingerprint(
        model_fp, task.version, template.version, settings.sampling, settings.seed, item.id
    )
    return WorkItem(task, item, tuple(messages), template.user_prompt(item), fp)


def run_fingerprint_of(
    settings: RunSettings, suite_version: str, judge: RefusalJudge | None, sample: CycleSample | None
) -> str:
    """The run's identity, known before any work starts (storage records it when it plans)."""
    return run_fingerprint(
        model_fingerprint(settings.model_config),
        suite_version,
        settings.sampling,
        settings.seed,
        judge.version if judge else None,
        sample.fingerprint if sample else None,
    )


async def run_evaluation(
    tasks: Sequence[LoadedTask],
    generate: Generate,
    store: ItemStore,
    settings: RunSettings,
    judge: RefusalJudge | None = None,
    sample: CycleSample | None = None,
    suite_version: str = "",
) -> RunReport:
    """Generate, then score, then collect per-item results; safe to call again after a crash."""
    work = plan_run(tasks, settings, sample)
    run_fp = run_fingerprint_of(settings, suite_version, judge, sample)
    log.info("evaluation.run.started", extra={"run": run_fp, "items": len(work)})
    generations, generated = await _generation_phase(work, generate, store, settings)
    scorers = {task.name: build_scorer(task.spec.scorer, judge) for task in tasks}
    scores, scored = await _score_phase(work, generations, scorers, store, settings)
    results = tuple(_result(w, scores[w.generation_fp]) for w in work)
    log.info("evaluation.run.finished", extra={"run": run_fp, "generated": generated, "scored": scored})
    return RunReport(run_fp, results, generated, len(work) - generated, scored, len(work) - scored)


async def _bounded(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    semaphore = asyncio.Semaphore(max(1, limit))

    async def guarded(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(guarded(job) for job in jobs)))


def _chunks(rows: Sequence[T], size: int) -> list[Sequence[T]]:
    return [rows[i : i + size] for i in range(0, len(rows), max(1, size))]


def _needs_work(status: Status | None, settings: RunSettings) -> bool:
    return status is None or (settings.retry_failed and status in RETRYABLE)


async def _generation_phase(
    work: Sequence[WorkItem], generate: Generate, store: ItemStore, settings: RunSettings
) -> tuple[dict[str, GenerationRecord], int]:
    unique = list({w.generation_fp: w for w in work}.values())
    done = dict(await store.get_generations([w.generation_fp for w in unique]))
    todo = [
        w
        for w in unique
        if _needs_work(done[w.generation_fp].status if w.generation_fp in done else None, settings)
    ]

    async def run_batch(batch: Sequence[WorkItem]) -> list[GenerationRecord]:
        records = await _generate_batch(batch, generate, settings.timeout_s)
        await store.save_generations(records)
        _count("generated", records)
        return records

    jobs = [lambda b=batch: run_batch(b) for batch in _chunks(todo, settings.batch_size)]
    for records in await within_budget(_bounded(jobs, settings.max_concurrency), settings.generation_budget_s):
        done.update({record.fingerprint: record for record in records})
    return done, len(todo)


async def _generate_batch(
    batch: Sequence[WorkItem], generate: Generate, timeout_s: float | None
) -> list[GenerationRecord]:
    conversations = [[dict(message) for message in w.messages] for w in batch]
    try:
        results: Sequence[object] = await asyncio.wait_for(generate(conversations), timeout_s)
        if len(results) != len(batch):
            raise RuntimeError(f"backend returned {len(results)} results for {len(batch)} conversations")
    except Exception as exc:  # noqa: BLE001 - any backend failure becomes a status on its items
        log.warning("evaluation.generate.failed", extra={"error": type(exc).__name__, "batch": len(batch)})
        results = [exc] * len(batch)
    return [_generation_record(w, result) for w, result in zip(batch, results, strict=True)]


def _count(stage: str, records: Sequence[GenerationRecord | ScoredItem]) -> None:
    for record in records:  # items stored, by how they ended: the rate is the run's items per second
        metrics.EVALUATION_ITEMS.labels(stage, record.status.value).inc()


def _generation_record(w: WorkItem, result: object) -> GenerationRecord:
    if isinstance(result, BaseException):  # a failed batch fails each of its items with the same kind
        metrics.count_backend_error("evaluation", result)
    normalized = normalize_result(result)
    return GenerationRecord(
        fingerprint=w.generation_fp,
        task=w.task.name,
        task_version=w.task.version,
        item_id=w.item.id,
        messages=w.messages,
        status=normalized.status,
        text=normalized.text,
        error=normalized.error,
        usage=_usage(result),
    )


_USAGE_FIELDS = ("finish_reason", "prompt_tokens", "completion_tokens", "latency_s")


def _usage(result: object) -> dict[str, Any]:
    """Token counts and latency where the backend's result carries them (read duck-typed)."""
    found = {name: getattr(result, name, None) for name in _USAGE_FIELDS}
    return {name: value for name, value in found.items() if isinstance(value, (str, int, float))}


async def _score_phase(
    work: Sequence[WorkItem],
    generations: Mapping[str, GenerationRecord],
    scorers: Mapping[str, Scorer],
    store: ItemStore,
    settings: RunSettings,
) -> tuple[dict[str, ScoredItem], int]:
    keyed = {score_fingerprint(w.generation_fp, scorers[w.task.name].version): w for w in work}
    done = dict(await store.get_scores(list(keyed)))
    todo = [
        (fp, w) for fp, w in keyed.items() if _needs_work(done[fp].status if fp in done else None, settings)
    ]

    async def run_chunk(chunk: Sequence[tuple[str, WorkItem]]) -> list[ScoredItem]:
        records = await _score_chunk(chunk, generations, scorers)
        await store.save_scores(records)
        _count("scored", records)
        return records

    by_task = [[entry for entry in todo if entry[1].task.name == name] for name in scorers]
    jobs = [
        lambda c=chunk: run_chunk(c) for group in by_task for chunk in _chunks(group, settings.batch_size)
    ]
    for records in await _bounded(jobs, settings.max_concurrency):
        done.update({record.fingerprint: record for record in records})
    by_generation = {w.generation_fp: done[fp] for fp, w in keyed.items()}
    return by_generation, len(todo)


async def _score_chunk(
    chunk: Sequence[tuple[str, WorkItem]],
    generations: Mapping[str, GenerationRecord],
    scorers: Mapping[str, Scorer],
) -> list[ScoredItem]:
    scorer = scorers[chunk[0][1].task.name]
    ok = [(fp, w) for fp, w in chunk if generations[w.generation_fp].status is Status.OK]
    inputs = [ScoreInput(w.item, w.prompt, generations[w.generation_fp].text or "", w.task.name, w.messages)
              for _, w in ok]
    scored = dict(zip([fp for fp, _ in ok], await scorer.score(inputs), strict=True))
    return [
        _score_record(fp, w, scorer.version, generations[w.generation_fp].status, scored.get(fp))
        for fp, w in chunk
    ]


def _score_record(
    fp: str, w: WorkItem, scorer_version: str, generation_status: Status, verdict: ScoredItem | None
) -> ScoredItem:
    """The scorer's verdict with its storage keys; a failed generation carries its status, never a score."""
    if verdict is None:
        verdict = ScoredItem(w.task.name, w.item.id, generation_status)
    return replace(verdict, fingerprint=fp, generation_fingerprint=w.generation_fp,
                   scorer_version=scorer_version)


def _result(w: WorkItem, record: ScoredItem) -> ScoredItem:
    """The stored record, labelled with where it counts (axis, category, held-out)."""
    labels = w.task.item_labels(w.item)
    return replace(record, axis=labels["axis"], category=labels["category"], held_out=w.item.held_out,
                   labels=labels)
