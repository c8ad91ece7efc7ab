"""The embedded backend: GGUF models from PyPI packages, run by llama.cpp on CPU."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING

from inference.config import LlamaCppConfig
from inference.errors import BackendUnavailable, IncompleteGeneration, InferenceError
from inference.llamacpp import prompts
from inference.llamacpp.batch import decode_many
from inference.llamacpp.decode import Decoded, run_decode
from inference.llamacpp.runtime import LoadedModel
from inference.protocol import BaseBackend, BatchItem, Conversation, run_valid
from inference.stream import StreamEnd, StreamEvent
from inference.threads import Emit
from inference.types import GenerationResult, Message, SamplingParams

if TYPE_CHECKING:
    from llama_cpp import Llama


class LlamaCppBackend(BaseBackend):
    """One contestant on an embedded model: prompt format, system prompt, correction pass.

    Several contestants share one `LoadedModel`; the model's single thread
    serialises their calls.
    """

    def __init__(self, config: LlamaCppConfig, model: LoadedModel) -> None:
        self.config = config
        self._model = model

    @property
    def name(self) -> str:
        return f"llamacpp:{self.config.model}"

    @property
    def _lstrip(self) -> bool:
        return self.config.prompt_style == "completion"

    async def _events(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[StreamEvent]:
        params = self._effective(params)
        draft: Decoded | None = None
        if self.config.correction_pass:
            draft = await self._draft(messages, params)
            messages = prompts.correction_messages(messages, draft.text)
        final_end: StreamEnd | None = None
        final_messages = messages

        def work(llm: Llama, emit: Emit[StreamEvent], cancel: threading.Event) -> None:
            self._decode_streaming(llm, final_messages, params, emit, cancel)

        events: AsyncGenerator[StreamEvent, None] = self._model.stream(work)
        async with aclosing(events):  # closing it is what stops the thread early
            async for event in events:
                if isinstance(event, StreamEnd):
                    final_end = event
                    break
                yield event
        if final_end is not None:
            yield _combine(draft.end, final_end) if draft else final_end

    async def _draft(self, messages: list[Message], params: SamplingParams) -> Decoded:
        """The correction pass's first answer; run as a stream only so that it can be cancelled."""

        def work(llm: Llama, emit: Emit[Decoded], cancel: threading.Event) -> None:
            emit(run_decode(llm, self._prompt(llm, messages), params, cancel=cancel))

        async with aclosing(self._model.stream(work)) as events:
            async for decoded in events:
                return decoded
        raise IncompleteGeneration("the draft pass ended without an answer")

    async def generate_batch(
        self, conversations: Sequence[Conversation], params: SamplingParams
    ) -> list[BatchItem]:
        # One job on the model's thread decodes all valid items together (see batch.py).
        effective = self._effective(params)

        def run(valid: list[Conversation]) -> Awaitable[list[BatchItem]]:
            batch = [list(conversation) for conversation in valid]
            return self._model.call(lambda llm, cancel: self._decode_batch(llm, batch, effective, cancel))

        return await run_valid(conversations, run)

    def _decode_batch(
        self, llm: Llama, batch: list[list[Message]], params: SamplingParams, cancel: threading.Event
    ) -> list[BatchItem]:
        threads, lend = self.config.n_threads, self._model.lend  # arena answers go between two decode steps
        if not self.config.correction_pass:
            return decode_many(llm, [self._prompt(llm, c) for c in batch], params, threads, lstrip=self._lstrip,
                               cancel=cancel, lend=lend)
        drafts = decode_many(llm, [self._prompt(llm, c) for c in batch], params, threads, cancel=cancel, lend=lend)
        fixes = [
            prompts.correction_messages(c, d.text) if isinstance(d, GenerationResult) else None
            for c, d in zip(batch, drafts, strict=True)
        ]
        rewritten = iter(decode_many(llm, [self._prompt(llm, f) for f in fixes if f], params, threads,
                                     cancel=cancel, lend=lend))
        return [_two_pass(d, next(rewritten)) if isinstance(d, GenerationResult) else d for d in drafts]

    def _effective(self, params: SamplingParams) -> SamplingParams:
        params = self.config.sampling.apply(params)
        if self.config.prompt_style == "completion":
            stops = tuple(dict.fromkeys((*params.stop, *prompts.QA_STOPS)))
            params = params.model_copy(update={"stop": stops})
        return params

    def _prompt(self, llm: Llama, messages: Sequence[Message]) -> str:
        if self.config.prompt_style == "completion":
            return prompts.render_qa(prompts.with_system_prompt(messages, self.config.system_prompt))
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendUnavailable(
                f"{self.config.model} has no chat template; use prompt_style 'completion'"
            )
        return prompts.render_chat(
            template,
            prompts.with_system_prompt(messages, self.config.system_prompt),
            bos=_token_text(llm, llm.token_bos()),
            eos=_token_text(llm, llm.token_eos()),
        )

    def _decode_streaming(
        self,
        llm: Llama,
        messages: Sequence[Message],
        params: SamplingParams,
        emit: Emit[StreamEvent],
        cancel: threading.Event,
    ) -> None:
        decoded = run_decode(llm, self._prompt(llm, messages), params, emit, cancel, lstrip=self._lstrip)
        emit(decoded.end)


def _combine(draft: StreamEnd, final: StreamEnd) -> StreamEnd:
    """Token counts of a two-pass answer: both passes are paid for."""
    return StreamEnd(
        final.finish_reason,
        prompt_tokens=draft.prompt_tokens + final.prompt_tokens,
        completion_tokens=draft.completion_tokens + final.completion_tokens,
    )


def _two_pass(draft: GenerationResult, final: BatchItem) -> BatchItem:
    if isinstance(final, InferenceError):
        return final
    return dataclasses.replace(
        final,
        prompt_tokens=draft.prompt_tokens + final.prompt_tokens,
        completion_tokens=draft.completion_tokens + final.completion_tokens,
        latency_s=draft.latency_s + final.latency_s,
        ttft_s=None if final.ttft_s is None else draft.latency_s + final.ttft_s,
    )


def _token_text(llm: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")
