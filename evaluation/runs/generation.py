"""The runner's ``Generate`` on top of an inference backend, and how each backend kind is driven.

Local engines decode a whole batch in one call (llama.cpp packs up to 16 sequences per step, vLLM
and transformers batch on the GPU), so they get large batches, one at a time. An HTTP endpoint
answers requests independently, so it gets small batches with several in flight, bounded by the
endpoint's own ``max_concurrency``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.types import Generate, Status
from inference import Backend, GenerationResult, InferenceError, InferenceTimeout, Message, SamplingParams

GPU_KINDS = frozenset({"vllm", "transformers"})
HTTP_KINDS = frozenset({"openai"})


@dataclass(frozen=True)
class BackendAnswer:
    """One slot of a batch as the runner reads it (see ``evaluation.types.ResultLike``)."""

    text: str | None
    status: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None


def queue_for(backend_kind: str) -> str:
    """GPU engines run only on GPU workers; everything else (CPU models, HTTP calls) on ``cpu``."""
    return "gpu" if backend_kind in GPU_KINDS else "cpu"


def batching_for(config: Mapping[str, Any], batch_size: int) -> tuple[int, int]:
    """``(batch_size, max_concurrency)`` for the runner."""
    if config.get("kind") in HTTP_KINDS:
        return 1, int(config.get("max_concurrency", 4))
    return batch_size, 1


def backend_generate(backend: Backend, params: SamplingParams) -> Generate:
    async def generate(conversations: list[list[dict[str, str]]]) -> list[BackendAnswer]:
        batch = [conversation_of(conversation) for conversation in conversations]
        return [to_answer(item) for item in await backend.generate_batch(batch, params)]

    return generate


def to_answer(item: GenerationResult | InferenceError) -> BackendAnswer:
    if isinstance(item, InferenceTimeout):
        return BackendAnswer(item.partial_text or None, Status.TIMEOUT.value, item.message)
    if isinstance(item, InferenceError):
        error = f"{item.code}: {item.message}"
        return BackendAnswer(item.partial_text or None, Status.BACKEND_ERROR.value, error)
    usage = {"finish_reason": item.finish_reason, "prompt_tokens": item.prompt_tokens,
             "completion_tokens": item.completion_tokens, "latency_s": item.latency_s}
    if not item.complete:  # a partial answer is not an answer; the item is retried on resume
        return BackendAnswer(item.text, Status.BACKEND_ERROR.value, "incomplete generation", **usage)
    return BackendAnswer(item.text, **usage)


def conversation_of(messages: Sequence[Mapping[str, str]]) -> list[Message]:
    return [Message(m["role"], m["content"]) for m in messages]  # type: ignore[arg-type]
