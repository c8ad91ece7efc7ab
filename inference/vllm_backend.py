"""vLLM's offline engine (`vllm.LLM`) on a GPU worker; the `gpu` extra.

Written against vLLM's documented offline API: `LLM(model=..., ...)`,
`LLM.chat(conversations, sampling_params)` (which applies the model's chat
template), `SamplingParams`, and `RequestOutput.outputs[0]`. A whole
evaluation batch goes to vLLM in one call; its scheduler does the batching.

The offline engine has no token stream: `stream()` yields the whole answer as
one chunk, so there `ttft_s` equals the latency. For live token streaming
from vLLM, run `vllm serve` and register it as an `openai` backend.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from inference.config import VLLMConfig
from inference.errors import BackendUnavailable, ContextTooLong
from inference.gpu_common import EngineBackend, batch_result, free_cuda_memory
from inference.protocol import BatchItem
from inference.types import SamplingParams

if TYPE_CHECKING:
    from vllm import LLM


class VLLMBackend(EngineBackend["LLM"]):
    def __init__(self, config: VLLMConfig) -> None:
        super().__init__(thread_name="vllm")
        self.config = config

    @property
    def name(self) -> str:
        return f"vllm:{self.config.model}"

    def _load(self) -> LLM:
        try:
            import vllm
        except ImportError as error:
            raise BackendUnavailable(
                "vLLM is not installed; install the `gpu` extra (pip install vllm)"
            ) from error
        options: dict[str, Any] = {
            "model": self.config.model,
            "tensor_parallel_size": self.config.tensor_parallel_size,
            "dtype": self.config.dtype,
            "gpu_memory_utilization": self.config.gpu_memory_utilization,
            "seed": self.config.seed,
            "enforce_eager": self.config.enforce_eager,
        }
        if self.config.max_model_len is not None:
            options["max_model_len"] = self.config.max_model_len
        try:
            return vllm.LLM(**options)
        except Exception as error:  # vLLM raises many kinds at start-up (CUDA, config, memory)
            raise BackendUnavailable(f"vLLM could not start {self.config.model}: {error}") from error

    def _release(self, engine: LLM) -> None:
        del engine
        free_cuda_memory()

    def _run_batch(
        self, engine: LLM, batch: list[list[dict[str, str]]], params: SamplingParams
    ) -> list[BatchItem]:
        params = self.config.sampling.apply(params)
        too_long = self._too_long(engine, batch)
        runnable = [conv for i, conv in enumerate(batch) if i not in too_long]
        started = time.perf_counter()
        outputs = (
            engine.chat(
                runnable,
                sampling_params=self._sampling(params),
                use_tqdm=False,
                chat_template=self.config.chat_template,
            )
            if runnable
            else []
        )
        elapsed = time.perf_counter() - started
        results = iter(_to_result(output, elapsed) for output in outputs)
        return [too_long[i] if i in too_long else next(results) for i in range(len(batch))]

    def _sampling(self, params: SamplingParams) -> Any:
        import vllm

        return vllm.SamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
        )

    def _too_long(self, engine: LLM, batch: list[list[dict[str, str]]]) -> dict[int, ContextTooLong]:
        """Items whose prompt fills the context: vLLM would fail the whole call for one."""
        limit = _max_model_len(engine) or self.config.max_model_len
        if limit is None:
            return {}
        tokenizer = engine.get_tokenizer()
        errors: dict[int, ContextTooLong] = {}
        for index, conversation in enumerate(batch):
            size = len(
                tokenizer.apply_chat_template(
                    conversation,
                    add_generation_prompt=True,
                    tokenize=True,
                    chat_template=self.config.chat_template,
                )
            )
            if size >= limit:
                errors[index] = ContextTooLong(
                    f"the prompt has {size} tokens; max_model_len is {limit}",
                    prompt_tokens=size,
                    context_limit=limit,
                )
        return errors


def _max_model_len(engine: Any) -> int | None:
    model_config = getattr(getattr(engine, "llm_engine", None), "model_config", None)
    value = getattr(model_config, "max_model_len", None)
    return int(value) if value else None


def _to_result(output: Any, elapsed: float) -> BatchItem:
    completion = output.outputs[0]
    latency, ttft = _timings(output, elapsed)
    return batch_result(
        completion.text,
        str(completion.finish_reason),
        len(output.prompt_token_ids or ()),
        len(completion.token_ids),
        latency,
        ttft,
    )


def _timings(output: Any, elapsed: float) -> tuple[float, float | None]:
    """Per-request times where this vLLM version reports them, else the batch's."""
    metrics = getattr(output, "metrics", None)
    arrival = getattr(metrics, "arrival_time", None)
    first = getattr(metrics, "first_token_time", None)
    finished = getattr(metrics, "finished_time", None) or getattr(metrics, "last_token_time", None)
    if arrival and finished:
        return finished - arrival, (first - arrival) if first else None
    return elapsed, None
