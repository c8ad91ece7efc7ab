"""`GenerationStream`: text chunks as they come, then one `GenerationResult`.

A backend produces an async iterator of *events*: text chunks (`str`) followed
by exactly one `StreamEnd` carrying what only the backend knows (finish reason,
token counts). The stream measures time itself, so latency and time to first
token mean the same thing for every backend.

Usage::

    async with backend.stream(messages, params) as stream:
        async for chunk in stream:
            send(chunk)
    record(stream.result)

Iteration raises the backend's `InferenceError`, with `partial_text` filled
in; `stream.result` is then an incomplete record (finish_reason "error") so
the partial answer can still be stored. Leaving early (break, cancellation,
`aclose()`) stops the backend's work and also leaves an incomplete record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from inference.errors import IncompleteGeneration, InferenceError
from inference.types import FinishReason, GenerationResult


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of a backend's stream."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


StreamEvent = str | StreamEnd


class GenerationStream:
    """An async iterator of text chunks with `.result` once it has ended."""

    def __init__(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._events = events
        self._clock = clock
        self._chunks: list[str] = []
        self._started_at: float | None = None
        self._ttft_s: float | None = None
        self._result: GenerationResult | None = None
        self._end: StreamEnd | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        if self._result is not None:
            raise StopAsyncIteration
        if self._started_at is None:
            self._started_at = self._clock()
        while True:
            event = await self._next_event()
            if isinstance(event, StreamEnd):
                await self._finish(event)
                raise StopAsyncIteration
            if event:
                self._on_chunk(event)
                return event

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._chunks)

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> GenerationResult:
        """The final record; only available once iteration has ended."""
        if self._result is None:
            raise RuntimeError("GenerationStream.result read before the stream ended")
        return self._result

    async def collect(self) -> GenerationResult:
        """Consume the rest of the stream and return its result."""
        async with self:
            async for _ in self:
                pass
        return self.result

    async def aclose(self) -> None:
        """Stop early; the result records the partial text as incomplete."""
        if self._result is None:
            self._result = self._record("error", complete=False)
        await _close(self._events)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _next_event(self) -> StreamEvent:
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            raise self._fail(IncompleteGeneration("the backend ended its stream without a result"))
        except InferenceError as error:
            raise self._fail(error) from None
        except Exception as error:  # a backend bug or a dead library: still a typed error
            raise self._fail(IncompleteGeneration(f"backend failed: {error!r}")) from error

    def _on_chunk(self, chunk: str) -> None:
        if self._ttft_s is None and self._started_at is not None:
            self._ttft_s = self._clock() - self._started_at
        self._chunks.append(chunk)

    async def _finish(self, end: StreamEnd) -> None:
        self._end = end
        self._result = self._record(end.finish_reason, complete=end.finish_reason != "error")
        await _close(self._events)

    def _fail(self, error: InferenceError) -> InferenceError:
        error.partial_text = self.text or error.partial_text
        self._result = self._record("error", complete=False)
        return error

    def _record(self, finish_reason: FinishReason, *, complete: bool) -> GenerationResult:
        now = self._clock()
        started = self._started_at if self._started_at is not None else now
        end = self._end
        return GenerationResult(
            text=self.text,
            finish_reason=finish_reason,
            prompt_tokens=end.prompt_tokens if end else 0,
            completion_tokens=end.completion_tokens if end else 0,
            latency_s=now - started,
            ttft_s=self._ttft_s,
            complete=complete,
        )


async def _close(events: AsyncIterator[StreamEvent]) -> None:
    closer = getattr(events, "aclose", None)
    if closer is not None:
        await closer()
