from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from evaluation.runs.runner import RunReport, RunSettings, run_evaluation
from evaluation.runs.summary import format_table, summarize_by_category
from evaluation.scoring import RefusalJudge
from evaluation.tasks import private
from evaluation.tasks.registry import Registry
from evaluation.tasks.sampling import sample_cycle
from evaluation.tasks.spec import LoadedTask
from evaluation.types import Status, TextResult
from tests.evaluation.store_double import InMemoryItemStoreForTests

TASKS = (
    "capability.instruction_following.verifiable",
    "safety.direct_risk.risky_prompts",
    "safety.adversarial.base64",
)
SETTINGS = RunSettings(
    model_config={"backend": "fake", "model": "m1", "api_key": "secret"},
    sampling={"temperature": 0.0},
    seed=7,
    batch_size=4,
)


class Crash(BaseException):
    """Stands in for a killed worker: not an Exception, so nothing inside the runner catches it."""


class FakeBackend:
    def __init__(self, reply: str = "I can't help with that.", crash_after: int | None = None) -> None:
        self.reply = reply
        self.crash_after = crash_after
        self.batches: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, conversations: list[list[dict[str, str]]]) -> Sequence[object]:
        if self.crash_after is not None and len(self.batches) >= self.crash_after:
            raise Crash()
        self.batches.append(len(conversations))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        return [TextResult(self.reply) for _ in conversations]


@pytest.fixture()
def tasks(registry: Registry) -> list[LoadedTask]:
    return [registry.load(name) for name in TASKS]


def _run(tasks, backend, store, settings=SETTINGS, judge=None, sample=None) -> RunReport:
    return asyncio.run(run_evaluation(tasks, backend, store, settings, judge=judge, sample=sample))


def test_a_killed_run_resumes_without_redoing_finished_items(tasks) -> None:
    store = InMemoryItemStoreForTests()
    with pytest.raises(Crash):
        _run(tasks, FakeBackend(crash_after=5), store)
    saved = len(store.generations)
    assert saved == 5 * SETTINGS.batch_size
    backend = FakeBackend()
    report = _run(tasks, backend, store)
    total = sum(len(t.items) for t in tasks)
    assert sum(backend.batches) == total - saved
    assert (report.generated, report.reused_generations) == (total - saved, saved)
    assert len(report.results) == total and all(r.status is Status.OK for r in report.results)


def test_a_finished_run_reruns_as_a_no_op(tasks) -> None:
    store = InMemoryItemStoreForTests()
    _run(tasks, FakeBackend(), store)
    backend = FakeBackend()
    report = _run(tasks, backend, store)
    assert backend.batches == [] and report.generated == 0 and report.scored == 0


@pytest.mark.parametrize(
    "change",
    [
        {"sampling": {"temperature": 0.7}},
        {"seed": 8},
        {"model_config": {"backend": "fake", "model": "m2"}},
    ],
)
def test_any_fingerprint_change_starts_fresh_and_never_mixes_rows(tasks, change: dict) -> None:
    store = InMemoryItemStoreForTests()
    first = _run(tasks, FakeBackend(), store)
    changed = RunSettings(**{**SETTINGS.__dict__, **change})
    second = _run(tasks, FakeBackend(), store, settings=changed)
    assert second.reused_generations == 0 and second.run_fingerprint != first.run_fingerprint
    old = {r.generation_fingerprint for r in first.results}
    assert old.isdisjoint(r.generation_fingerprint for r in second.results)
    assert len(store.generations) == 2 * len(first.results)


def test_rotating_the_api_key_is_not_a_new_run(tasks) -> None:
    store = InMemoryItemStoreForTests()
    first = _run(tasks, FakeBackend(), store)
    rotated = RunSettings(
        **{**SETTINGS.__dict__, "model_config": {**SETTINGS.model_config, "api_key": "new"}}
    )
    assert _run(tasks, FakeBackend(), store, settings=rotated).run_fingerprint == first.run_fingerprint


class CountingJudge:
    def __init__(self) -> None:
        self.judged = 0

    async def __call__(self, conversations: list[list[dict[str, str]]]) -> Sequence[object]:
        self.judged += len(conversations)
        return [TextResult("VERDICT: REFUSED") for _ in conversations]


def test_a_new_judge_rescores_safety_items_and_reuses_generations(tasks) -> None:
    store = InMemoryItemStoreForTests()
    inconclusive = "I can't give a full how-to. At a high level, it works by combining the parts in order."
    _run(tasks, FakeBackend(inconclusive), store)
    judge_backend = CountingJudge()
    backend = FakeBackend(inconclusive)
    report = _run(tasks, backend, store, judge=RefusalJudge(judge_backend, "judge-a"))
    safety = [r for r in report.results if r.axis == "safety"]
    assert backend.batches == [] and report.reused_generations == len(report.results)
    assert report.scored == len(safety) and judge_backend.judged == len(safety)
    assert all(r.scored_by == "judge" and r.score == 1.0 for r in safety)


async def _flaky(conversations: list[list[dict[str, str]]]) -> Sequence[object]:
    text = conversations[0][-1]["content"]
    if "Japan" in text:
        raise ConnectionError("backend went away")
    if "haiku" in text:
        await asyncio.sleep(1)
    if "octopus" in text:
        return [TextResult("   ")]
    return [TextResult("I can't help with that.")]


def test_failed_items_are_statuses_excluded_from_means_and_counted(tasks) -> None:
    settings = RunSettings(**{**SETTINGS.__dict__, "batch_size": 1, "max_concurrency": 8, "timeout_s": 0.2})
    report = _run(tasks[:1], _flaky, InMemoryItemStoreForTests(), settings=settings)
    statuses = {r.item_id: r.status for r in report.results}
    assert statuses["i004"] is Status.BACKEND_ERROR and statuses["i015"] is Status.EMPTY
    assert statuses["i017"] is Status.TIMEOUT
    assert all(r.score is None for r in report.results if r.status is not Status.OK)
    (summary,) = summarize_by_category(report.results)
    assert summary.n_ok == len(report.results) - 3 and summary.mean == 0.0
    assert summary.status_counts == {"backend_error": 1, "empty": 1, "ok": summary.n_ok, "timeout": 1}
    assert "timeout=1" in format_table([summary])


def test_transient_failures_are_retried_on_resume(tasks) -> None:
    store = InMemoryItemStoreForTests()
    settings = RunSettings(**{**SETTINGS.__dict__, "batch_size": 1, "max_concurrency": 8, "timeout_s": 0.2})
    _run(tasks[:1], _flaky, store, settings=settings)
    backend = FakeBackend()
    second = _run(tasks[:1], backend, store, settings=settings)
    assert sum(backend.batches) == 2  # the backend error and the timeout; "empty" is a final answer
    statuses = {r.item_id: r.status for r in second.results}
    assert (statuses["i004"], statuses["i017"], statuses["i015"]) == (Status.OK, Status.OK, Status.EMPTY)


def test_concurrency_and_batch_size_are_bounded(tasks) -> None:
    backend = FakeBackend()
    settings = RunSettings(**{**SETTINGS.__dict__, "batch_size": 3, "max_concurrency": 2})
    _run(tasks, backend, InMemoryItemStoreForTests(), settings=settings)
    assert max(backend.batches) == 3 and backend.max_in_flight == 2


def test_a_cycle_sample_restricts_the_run_and_labels_rows(tasks) -> None:
    tasks = private.apply(tasks, "cycle-1", private.HeldOutPolicy(secret=b"test secret"))
    sample = sample_cycle(tasks, "cycle-1", per_task=3, held_out_per_task=1)
    report = _run(tasks, FakeBackend(), InMemoryItemStoreForTests(), sample=sample)
    assert len(report.results) == 4 * len(tasks)
    assert sum(r.held_out for r in report.results) == len(tasks)
    risky = [r for r in report.results if r.category == "direct_risk"]
    assert all({"harm_category", "severity"} <= set(r.labels) for r in risky)
