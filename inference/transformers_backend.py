"""Hugging Face transformers in PyTorch, on CUDA or CPU (the `transformers` extra).

The fallback GPU backend for workers without vLLM: padded batches through
`model.generate`, and real token streaming for single conversations. Models
load from a local folder only (`local_files_only`): workers have no network.
Seeds are per call: a batch with a seed is reproducible as a whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from inference.config import TransformersConfig
from inference.errors import BackendUnavailable, ContextTooLong, InferenceError
from inference.gpu_common import EngineBackend, batch_result, free_cuda_memory
from inference.protocol import BatchItem
from inference.stream import StreamEnd, StreamEvent
from inference.text import StopMatcher, cut_at_stop
from inference.threads import Emit, stream_from_thread
from inference.types import Message, SamplingParams


@dataclass
class Engine:
    """A loaded model and tokenizer, and where they run."""

    model: Any
    tokenizer: Any
    device: str
    context_limit: int | None


class TransformersBackend(EngineBackend[Engine]):
    def __init__(self, config: TransformersConfig) -> None:
        super().__init__(thread_name="transformers")
        self.config = config

    @property
    def name(self) -> str:
        return f"transformers:{self.config.model}"

    def _load(self) -> Engine:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as error:
            raise BackendUnavailable(
                "torch and transformers are not installed (the `transformers` extra)"
            ) from error
        device = _device(self.config.device, torch)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.config.model, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                self.config.model,
                local_files_only=True,
                **{_dtype_keyword(): _dtype(self.config.dtype, device, torch)},
            )
        except (OSError, ValueError) as error:
            raise BackendUnavailable(f"cannot load a model from {self.config.model}: {error}") from error
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        limit = getattr(model.config, "max_position_embeddings", None)
        loaded: Any = model  # transformers' typing of .to() is narrower than its behaviour
        return Engine(loaded.to(device).eval(), tokenizer, device, limit)

    def _release(self, engine: Engine) -> None:
        del engine
        free_cuda_memory()

    def _run_batch(
        self, engine: Engine, batch: list[list[dict[str, str]]], params: SamplingParams
    ) -> list[BatchItem]:
        params = self.config.sampling.apply(params)
        prompts = [self._render(engine, conversation) for conversation in batch]
        items: list[BatchItem] = []
        size = self.config.batch_size
        for start in range(0, len(prompts), size):
            items.extend(self._run_chunk(engine, prompts[start : start + size], params))
        return items

    def _run_chunk(self, engine: Engine, prompts: list[str], params: SamplingParams) -> list[BatchItem]:
        lengths = [len(engine.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
        errors = {i: _too_long(n, engine.context_limit) for i, n in enumerate(lengths)}
        runnable = [i for i in range(len(prompts)) if errors[i] is None]
        longest = max((lengths[i] for i in runnable), default=0)
        outputs = iter(
            self._generate(engine, [prompts[i] for i in runnable], params, longest) if runnable else []
        )
        return [errors[i] or next(outputs) for i in range(len(prompts))]

    def _generate(
        self, engine: Engine, prompts: list[str], params: SamplingParams, longest: int
    ) -> list[BatchItem]:
        import torch

        encoded = engine.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = encoded.to(engine.device)
        max_new = _budget(params.max_tokens, longest, engine.context_limit)
        started = time.perf_counter()
        with torch.inference_mode():
            _seed(params, torch)
            output = engine.model.generate(**encoded, **_sampling_kwargs(engine, params, max_new))
        elapsed = time.perf_counter() - started
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        prompt_sizes = encoded["attention_mask"].sum(dim=1).tolist()
        return [
            self._decode_row(engine, row, int(prompt_sizes[i]), params, max_new, elapsed)
            for i, row in enumerate(new_tokens.tolist())
        ]

    def _decode_row(
        self,
        engine: Engine,
        row: list[int],
        prompt_tokens: int,
        params: SamplingParams,
        max_new: int,
        elapsed: float,
    ) -> BatchItem:
        ends = {engine.tokenizer.eos_token_id, engine.tokenizer.pad_token_id} - {None}
        cut = next((i for i, token in enumerate(row) if token in ends), None)
        tokens = row if cut is None else row[:cut]
        text, stopped = cut_at_stop(engine.tokenizer.decode(tokens, skip_special_tokens=True), params.stop)
        finish = "stop" if stopped or cut is not None or len(tokens) < max_new else "length"
        return batch_result(text, finish, prompt_tokens, len(tokens), elapsed, None)

    async def _events(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[StreamEvent]:
        """Token streaming for one conversation, through a transformers streamer."""
        params = self.config.sampling.apply(params)
        conversation = [m.as_dict() for m in messages]
        # Load (if needed) on the engine thread first; the stream then runs there too.
        engine = await self._on_thread(lambda engine: engine)

        def work(emit: Emit[StreamEvent], cancel: threading.Event) -> None:
            self._stream_one(engine, conversation, params, emit, cancel)

        async with aclosing(stream_from_thread(self._executor, work)) as events:
            async for event in events:
                yield event

    def _stream_one(
        self,
        engine: Engine,
        conversation: list[dict[str, str]],
        params: SamplingParams,
        emit: Emit[StreamEvent],
        cancel: threading.Event,
    ) -> None:
        import torch

        with self._lock:
            prompt = self._render(engine, conversation)
            encoded = engine.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(
                engine.device
            )
            prompt_tokens = int(encoded["input_ids"].shape[1])
            error = _too_long(prompt_tokens, engine.context_limit)
            if error is not None:
                raise error
            max_new = _budget(params.max_tokens, prompt_tokens, engine.context_limit)
            streamer = _streamer(engine.tokenizer, params.stop, emit, cancel)
            with torch.inference_mode():
                _seed(params, torch)
                engine.model.generate(
                    **encoded,
                    **_sampling_kwargs(engine, params, max_new),
                    streamer=streamer,
                    stopping_criteria=_stop_when(streamer),
                )
            streamer.finish()
            finish = "stop" if streamer.matcher.stopped or streamer.tokens < max_new else "length"
            emit(StreamEnd(finish, prompt_tokens, streamer.tokens))  # type: ignore[arg-type]

    def _render(self, engine: Engine, conversation: list[dict[str, str]]) -> str:
        template = self.config.chat_template or engine.tokenizer.chat_template
        if not template:
            # No template anywhere: a plain transcript still lets a base model answer.
            turns = "".join(f"{m['role']}: {m['content']}\n" for m in conversation)
            return turns + "assistant:"
        return engine.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True, chat_template=template
        )


def _streamer(
    tokenizer: Any, stops: tuple[str, ...], emit: Emit[StreamEvent], cancel: threading.Event
) -> Any:
    from transformers import TextStreamer

    class _Streamer(TextStreamer):  # type: ignore[misc]
        """Counts tokens and forwards finished text through the stop matcher."""

        def __init__(self) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.matcher = StopMatcher(stops)
            self.tokens = 0
            self.cancel = cancel
            self._prompt_seen = False

        def put(self, value: Any) -> None:
            if self._prompt_seen:
                self.tokens += int(value.numel())
            self._prompt_seen = True
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            piece = self.matcher.feed(text)
            if piece:
                emit(piece)

        def finish(self) -> None:
            tail = self.matcher.flush()
            if tail:
                emit(tail)

    return _Streamer()


def _stop_when(streamer: Any) -> Any:
    """A stopping criterion: a stop sequence appeared, or the consumer left."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopWhen(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = bool(streamer.matcher.stopped or streamer.cancel.is_set())
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_StopWhen()])


def _sampling_kwargs(engine: Engine, params: SamplingParams, max_new: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new,
        "pad_token_id": engine.tokenizer.pad_token_id,
        "do_sample": params.temperature > 0,
    }
    if params.temperature > 0:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
    return kwargs


def _seed(params: SamplingParams, torch: Any) -> None:
    if params.seed is not None:
        torch.manual_seed(params.seed)  # seeds the CPU and every CUDA device


def _too_long(prompt_tokens: int, limit: int | None) -> InferenceError | None:
    if limit is None or prompt_tokens < limit:
        return None
    return ContextTooLong(
        f"the prompt has {prompt_tokens} tokens; the model's context holds {limit}",
        prompt_tokens=prompt_tokens,
        context_limit=limit,
    )


def _budget(max_tokens: int, prompt_tokens: int, limit: int | None) -> int:
    return max_tokens if limit is None else max(1, min(max_tokens, limit - prompt_tokens))


def _device(choice: str, torch: Any) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("device 'cuda' was asked for but PyTorch sees no CUDA device")
    return choice


def _dtype(choice: str, device: str, torch: Any) -> Any:
    if choice != "auto":
        return getattr(torch, choice)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _dtype_keyword() -> str:
    """transformers renamed `torch_dtype` to `dtype` in 4.56; GPU images may be older."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
