"""What the vLLM and transformers backends share: a thread, lazy loading, batch plumbing.

Both engines block for the length of a whole batch and keep state on the GPU
that must not be touched from two threads; each backend owns one worker
thread and does all engine work there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from inference.errors import InferenceError
from inference.protocol import BaseBackend, BatchItem, Conversation, run_valid
from inference.stream import StreamEnd, StreamEvent
from inference.types import GenerationResult, Message, SamplingParams

E = TypeVar("E")
R = TypeVar("R")


class EngineBackend(BaseBackend, Generic[E]):
    """A backend whose engine `E` loads lazily on, and is used only from, its own thread."""

    def __init__(self, thread_name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._engine: E | None = None
        self._lock = threading.Lock()

    async def generate_batch(
        self, conversations: Sequence[Conversation], params: SamplingParams
    ) -> list[BatchItem]:
        def run(valid: list[Conversation]) -> Awaitable[list[BatchItem]]:
            batch = [[m.as_dict() for m in conversation] for conversation in valid]
            return self._on_thread(lambda engine: self._run_batch(engine, batch, params))

        return await run_valid(conversations, run)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            self._release(engine)

    async def _events(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[StreamEvent]:
        """Default stream: the whole answer as one chunk (engines without token streaming)."""
        [item] = await self.generate_batch([messages], params)
        if isinstance(item, InferenceError):
            raise item
        yield item.text
        yield StreamEnd(item.finish_reason, item.prompt_tokens, item.completion_tokens)

    async def _on_thread(self, fn: Callable[[E], R]) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_engine, fn)

    def _with_engine(self, fn: Callable[[E], R]) -> R:
        with self._lock:
            if self._engine is None:
                self._engine = self._load()
            return fn(self._engine)

    def _load(self) -> E:
        raise NotImplementedError

    def _release(self, engine: E) -> None:
        """Free the engine's memory (best effort)."""

    def _run_batch(
        self, engine: E, batch: list[list[dict[str, str]]], params: SamplingParams
    ) -> list[BatchItem]:
        raise NotImplementedError


def batch_result(
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    latency_s: float,
    ttft_s: float | None,
) -> GenerationResult:
    """A finished batch item; engines report "abort" and the like as errors."""
    reason = finish_reason if finish_reason in ("stop", "length") else "error"
    return GenerationResult(
        text=text,
        finish_reason=reason,  # type: ignore[arg-type]
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
        ttft_s=ttft_s,
        complete=reason != "error",
    )


def free_cuda_memory() -> None:
    try:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
