"""GenerationStream bookkeeping, stop sequences, and the thread bridge."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from inference import (
    GenerationStream,
    IncompleteGeneration,
    InferenceTimeout,
    Message,
    SamplingParams,
    StreamEnd,
)
from inference.errors import RequestRejected
from inference.stream import StreamEvent
from inference.text import StopMatcher, cut_at_stop
from inference.threads import stream_from_thread


async def _events(*items: StreamEvent | Exception) -> AsyncIterator[StreamEvent]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


@pytest.mark.asyncio
async def test_stream_yields_chunks_then_result() -> None:
    stream = GenerationStream(_events("a", "", "b", StreamEnd("stop", 5, 2)))
    chunks = [chunk async for chunk in stream]
    assert chunks == ["a", "b"]  # empty chunks are not passed on
    result = stream.result
    assert (result.text, result.finish_reason, result.complete) == ("ab", "stop", True)
    assert (result.prompt_tokens, result.completion_tokens) == (5, 2)
    assert result.ttft_s is not None and 0 <= result.ttft_s <= result.latency_s


@pytest.mark.asyncio
async def test_result_is_unavailable_before_the_end() -> None:
    stream = GenerationStream(_events("a", StreamEnd("stop", 1, 1)))
    with pytest.raises(RuntimeError):
        _ = stream.result
    assert await stream.__anext__() == "a"
    assert (await stream.collect()).text == "a"


@pytest.mark.asyncio
async def test_typed_error_mid_stream_keeps_partial_text() -> None:
    stream = GenerationStream(_events("par", "tial", InferenceTimeout("slow")))
    received = []
    with pytest.raises(InferenceTimeout) as caught:
        async for chunk in stream:
            received.append(chunk)
    assert caught.value.partial_text == "partial" == "".join(received)
    assert stream.result.complete is False
    assert stream.result.finish_reason == "error"
    assert stream.result.text == "partial"


@pytest.mark.asyncio
async def test_untyped_crash_becomes_incomplete_generation() -> None:
    stream = GenerationStream(_events("half", RuntimeError("segfault-ish")))
    with pytest.raises(IncompleteGeneration) as caught:
        await stream.collect()
    assert caught.value.partial_text == "half"


@pytest.mark.asyncio
async def test_stream_that_ends_without_result_is_incomplete() -> None:
    with pytest.raises(IncompleteGeneration):
        await GenerationStream(_events("x")).collect()


@pytest.mark.asyncio
async def test_leaving_early_closes_the_backend_and_marks_incomplete(scripted: Any) -> None:
    backend = scripted(chunks=("a", "b", "c", "d"))
    async with backend.stream([Message("user", "hi")], SamplingParams()) as stream:
        async for chunk in stream:
            break
    assert backend.closed_early == 1
    assert stream.result.complete is False and stream.result.text == "a"


@pytest.mark.asyncio
async def test_conversation_must_end_with_a_user_turn(scripted: Any) -> None:
    backend = scripted()
    with pytest.raises(RequestRejected):
        await backend.generate([Message("user", "q"), Message("assistant", "a")], SamplingParams())
    items = await backend.generate_batch([[], [Message("user", "ok")]], SamplingParams())
    assert isinstance(items[0], RequestRejected)
    assert not isinstance(items[1], Exception) and items[1].text == "Hello, world!"


@pytest.mark.parametrize(
    ("pieces", "stops", "expected", "stopped"),
    [
        (["Hello", " wor", "ld"], [], "Hello world", False),
        (["Answer.", "\n", "\nQ:", " next"], ["\nQ:"], "Answer.\n", True),
        (["ab", "c<", "/s", ">tail"], ["</s>"], "abc", True),
        (["x<", "y"], ["</s>"], "x<y", False),
        (["STOP"], ["ST", "STOP"], "", True),
    ],
)
def test_stop_matcher_never_leaks_part_of_a_stop(
    pieces: list[str], stops: list[str], expected: str, stopped: bool
) -> None:
    matcher = StopMatcher(stops)
    emitted = [matcher.feed(p) for p in pieces]
    text = "".join(emitted) + matcher.flush()
    assert text == expected
    assert matcher.stopped is stopped
    assert all(not any(s and s in e for s in stops) for e in emitted)


def test_cut_at_stop() -> None:
    assert cut_at_stop("one\n\ntwo", ["\n\n"]) == ("one", True)
    assert cut_at_stop("one", ["\n\n"]) == ("one", False)


@pytest.mark.asyncio
async def test_thread_bridge_streams_and_cancels_the_worker() -> None:
    executor = ThreadPoolExecutor(max_workers=1)
    stopped = threading.Event()

    def work(emit, cancel: threading.Event) -> None:  # type: ignore[no-untyped-def]
        for i in range(10_000):
            if cancel.is_set():
                stopped.set()
                return
            emit(i)
            time.sleep(0.001)

    got = []
    events = stream_from_thread(executor, work)
    async for item in events:
        got.append(item)
        if len(got) == 3:
            break
    await events.aclose()
    assert got == [0, 1, 2]
    assert await asyncio.to_thread(stopped.wait, 5)
    executor.shutdown()


@pytest.mark.asyncio
async def test_thread_bridge_reraises_worker_errors() -> None:
    executor = ThreadPoolExecutor(max_workers=1)

    def work(emit, cancel: threading.Event) -> None:  # type: ignore[no-untyped-def]
        emit("first")
        raise InferenceTimeout("too slow")

    with pytest.raises(InferenceTimeout):
        async for _ in stream_from_thread(executor, work):
            pass
    executor.shutdown()
