"""Arena answers first on a shared embedded model: the priority queue, lending a batch's thread, and
(marked `model`) that a batch lent to interactive work decodes exactly the tokens it decodes undisturbed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

from inference import BackendPool, GenerationResult, Message, SamplingParams
from inference.config import LlamaCppConfig
from inference.errors import GenerationCancelled
from inference.llamacpp import LlamaCppBackend, LoadedModel, ModelKey
from inference.llamacpp.batch import _Clock
from inference.priority import interactive, is_interactive
from inference.threads import PriorityExecutor

WAIT_S = 30  # generous: only a hang reaches it


def _blocked(executor: PriorityExecutor) -> threading.Event:
    """Occupy the worker until the returned event is set, so that later jobs queue."""
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(WAIT_S)

    executor.submit(False, hold)
    assert started.wait(WAIT_S)
    return release


def _recorder(order: list[str]) -> Callable[[str], Callable[[], str]]:
    def job(name: str) -> Callable[[], str]:
        def run() -> str:
            order.append(name)
            return name

        return run

    return job


# --- without a model ---------------------------------------------------------------------


def test_interactive_is_a_context_flag_that_resets() -> None:
    assert not is_interactive()
    with interactive():
        assert is_interactive()
    assert not is_interactive()


@pytest.mark.parametrize(("preempt", "expected"), [(True, ["urgent", "bg1", "bg2"]), (False, ["bg1", "urgent", "bg2"])])
def test_urgent_jobs_jump_the_queue_unless_preemption_is_off(preempt: bool, expected: list[str]) -> None:
    executor = PriorityExecutor("test", preempt=preempt)
    order: list[str] = []
    job = _recorder(order)
    try:
        release = _blocked(executor)
        futures = [executor.submit(False, job("bg1")), executor.submit(True, job("urgent")),
                   executor.submit(False, job("bg2"))]
        release.set()
        assert [f.result(WAIT_S) for f in futures] == ["bg1", "urgent", "bg2"]
    finally:
        executor.shutdown()
    assert order == expected


def test_a_running_job_lends_its_thread_to_urgent_jobs_between_steps() -> None:
    executor = PriorityExecutor("test")
    order: list[str] = []
    job = _recorder(order)

    def long_job() -> str:
        for step in range(3):
            order.append(f"step{step}")
            if step == 0:
                urgent.set()  # the test thread queues urgent work now...
                assert queued.wait(WAIT_S)  # ...and the next step finds it waiting
            executor.run_urgent()
        return "long"

    urgent, queued = threading.Event(), threading.Event()
    try:
        long_future = executor.submit(False, long_job)
        assert urgent.wait(WAIT_S)
        background = executor.submit(False, job("bg"))
        first, second = executor.submit(True, job("u1")), executor.submit(True, job("u2"))
        queued.set()
        assert long_future.result(WAIT_S) == "long" and first.result(WAIT_S) == "u1"
        assert second.result(WAIT_S) == "u2" and background.result(WAIT_S) == "bg"
    finally:
        executor.shutdown()
    assert order == ["step0", "u1", "u2", "step1", "step2", "bg"]
    assert executor.lent == 2


def test_lending_does_nothing_with_preemption_off_or_nothing_urgent() -> None:
    executor = PriorityExecutor("test", preempt=False)
    try:
        release = _blocked(executor)
        queued = executor.submit(True, lambda: "later")
        assert not executor.urgent_waiting() and executor.run_urgent() == 0.0
        release.set()
        assert queued.result(WAIT_S) == "later"
    finally:
        executor.shutdown()
    assert executor.lent == 0


def test_an_urgent_job_never_lends_recursively_and_errors_reach_its_awaiter() -> None:
    executor = PriorityExecutor("test")
    nested: list[float] = []

    def urgent_job() -> None:
        executor.submit(True, lambda: None)
        nested.append(executor.run_urgent())  # inside an urgent job: refused
        raise ValueError("boom")

    try:
        release = _blocked(executor)
        failing = executor.submit(True, urgent_job)
        release.set()
        with pytest.raises(ValueError, match="boom"):
            failing.result(WAIT_S)
    finally:
        executor.shutdown()
    assert nested == [0.0]


def test_cancelled_jobs_are_skipped_and_shutdown_cancels_the_queue() -> None:
    executor = PriorityExecutor("test")
    ran: list[str] = []
    release = _blocked(executor)
    given_up = executor.submit(True, lambda: ran.append("given up"))
    assert given_up.cancel()
    kept = executor.submit(False, lambda: ran.append("kept"))
    release.set()
    kept.result(WAIT_S)
    release = _blocked(executor)
    left = executor.submit(False, lambda: ran.append("left"))
    stopper = threading.Thread(target=executor.shutdown)
    stopper.start()
    release.set()
    stopper.join(WAIT_S)
    assert ran == ["kept"]
    with pytest.raises(CancelledError):
        left.result(WAIT_S)
    with pytest.raises(RuntimeError):
        executor.submit(False, lambda: None)


class _DummyLlamaForTests:
    """Stands in for a loaded `Llama` where only the queueing is under test."""

    def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_calls_inside_interactive_jump_a_loaded_models_queue(tmp_path: Path, monkeypatch: Any) -> None:
    model = LoadedModel(ModelKey("double", 64, 1), tmp_path)
    monkeypatch.setattr(model, "_load", _DummyLlamaForTests)
    order: list[str] = []
    release = threading.Event()

    def blocker(llm: Any, cancel: threading.Event) -> None:
        release.wait(WAIT_S)

    def named(name: str) -> Callable[[Any, threading.Event], str]:
        return lambda llm, cancel: order.append(name) or name

    try:
        first = asyncio.ensure_future(model.call(blocker))
        await asyncio.sleep(0.05)
        calls = [asyncio.ensure_future(model.call(named("evaluation")))]
        with interactive():
            calls.append(asyncio.ensure_future(model.call(named("arena"))))
        await asyncio.sleep(0.05)
        release.set()
        await first
        assert await asyncio.gather(*calls) == ["evaluation", "arena"]
    finally:
        await asyncio.to_thread(model.close)
    assert order == ["arena", "evaluation"]


def test_a_batch_checkpoint_stops_when_cancelled_and_pauses_its_clock_while_lending() -> None:
    cancel = threading.Event()
    clock = _Clock(cancel, lend=lambda: 5.0, started=100.0)
    clock.checkpoint()
    assert clock.started == 105.0  # five seconds lent to arena answers do not count as the batch's latency
    cancel.set()
    with pytest.raises(GenerationCancelled):
        clock.checkpoint()


# --- with the real SmolLM2 ----------------------------------------------------------------

SMOL = LlamaCppConfig(kind="llamacpp", model="smollm2-135m-instruct")
QUESTIONS = ("Write a poem about the sea.", "Explain photosynthesis.", "List five fruits.", "Tell me a story.")


def _ask(text: str) -> list[Message]:
    return [Message("user", text)]


@pytest.mark.model
@pytest.mark.asyncio
@pytest.mark.parametrize("temperature", [0.0, 0.8])
async def test_a_batch_lent_to_arena_answers_decodes_the_same_tokens(
    model_cache_dir: Path, temperature: float
) -> None:
    params = SamplingParams(max_tokens=96, temperature=temperature, seed=7)
    pool = BackendPool(cache_dir=model_cache_dir)
    try:
        backend = pool.get(SMOL.model_dump())
        batch = [_ask(q) for q in QUESTIONS]
        await backend.generate(_ask("Warm up."), SamplingParams(max_tokens=1))
        alone = await backend.generate_batch(batch, params)
        assert isinstance(backend, LlamaCppBackend)
        model = backend._model
        lent_before = model.lent
        finished: list[str] = []

        async def evaluation() -> list[Any]:
            items = await backend.generate_batch(batch, params)
            finished.append("evaluation")
            return items

        async def arena() -> GenerationResult:
            await asyncio.sleep(0.2)  # the batch is decoding by now
            with interactive():
                answer = await backend.generate(_ask("Say hello."), SamplingParams(max_tokens=16, seed=3))
            finished.append("arena")
            return answer

        disturbed, answer = await asyncio.gather(evaluation(), arena())
    finally:
        await pool.aclose()
    assert model.lent > lent_before  # the arena answer ran inside the batch, not after it
    assert finished == ["arena", "evaluation"] and answer.completion_tokens > 0
    assert all(isinstance(item, GenerationResult) for item in alone)
    assert [item.text for item in disturbed] == [item.text for item in alone]
    assert [item.completion_tokens for item in disturbed] == [item.completion_tokens for item in alone]

