"""Test doubles for a model's *text*, used only where a test is about something else.

Anything with backend kind "openai" still goes to the real HTTP backend, so tests of failures
(a closed port, a dead endpoint) exercise the real code path.
"""

import time
from collections.abc import Sequence

from inference import BackendPool, GenerationResult, Message, SamplingParams


class CannedTextBackendForTests:
    def __init__(self, label: str) -> None:
        self.label = label

    async def generate(self, messages: Sequence[Message], params: SamplingParams) -> GenerationResult:
        started = time.perf_counter()
        text = f"[{self.label}] canned answer to: {messages[-1].content[:40]}"
        return GenerationResult(text=text, finish_reason="stop", prompt_tokens=len(messages[-1].content.split()),
                                completion_tokens=len(text.split()), latency_s=time.perf_counter() - started,
                                ttft_s=0.0, complete=True)

    async def aclose(self) -> None:
        return None


class CannedBackendPoolForTests:
    def __init__(self) -> None:
        self.real = BackendPool()

    def get(self, config, copy: int = 0):  # noqa: ANN001, ANN201
        if config.kind == "openai":
            return self.real.get(config)
        return CannedTextBackendForTests(getattr(config, "system_prompt", None) and "guarded" or config.kind)

    async def evict(self, config) -> None:  # noqa: ANN001
        await self.real.evict(config)

    async def aclose(self) -> None:
        await self.real.aclose()
