"""GPU backends. transformers runs on CPU here with a tiny random-weight model;
vLLM and CUDA tests skip cleanly where there is no GPU. Needs the `transformers` extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from inference import (
    BackendPool,
    ContextTooLong,
    GenerationResult,
    Message,
    RequestRejected,
    SamplingParams,
)
from inference.synthetic import build_random_chat_model

ROOT = Path(__file__).resolve().parents[2]
HAS_CUDA = bool(torch.cuda.is_available())
PARAMS = SamplingParams(max_tokens=6, temperature=0.8, seed=5)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_chat_model(tmp_path_factory.mktemp("tiny-llama"), "tiny")


def _conversation(words: int) -> list[Message]:
    return [Message("system", "w1 w2"), Message("user", " ".join(f"w{i + 10}" for i in range(words)))]


@pytest.mark.asyncio
async def test_transformers_batches_on_cpu(tiny_model: Path) -> None:
    pool = BackendPool()
    try:
        backend = pool.get(
            {"kind": "transformers", "model": str(tiny_model), "device": "cpu", "batch_size": 2}
        )
        batch = [_conversation(3), [], _conversation(12), _conversation(600), _conversation(5)]
        items = await backend.generate_batch(batch, PARAMS)
        again = await backend.generate_batch(batch, PARAMS)
    finally:
        await pool.aclose()
    assert isinstance(items[1], RequestRejected)
    assert isinstance(items[3], ContextTooLong)
    done = [items[i] for i in (0, 2, 4)]
    # Random weights may draw the end token early, so counts are bounded, not exact.
    assert all(isinstance(r, GenerationResult) and 0 < r.completion_tokens <= 6 for r in done)
    assert all(r.prompt_tokens > 3 for r in done)  # type: ignore[union-attr]
    assert [getattr(r, "text", None) for r in again] == [getattr(r, "text", None) for r in items]


@pytest.mark.asyncio
async def test_transformers_streams_tokens(tiny_model: Path) -> None:
    pool = BackendPool()
    try:
        backend = pool.get({"kind": "transformers", "model": str(tiny_model), "device": "cpu"})
        stream = backend.stream(_conversation(4), PARAMS)
        chunks = [chunk async for chunk in stream]
    finally:
        await pool.aclose()
    assert len(chunks) > 1 and "".join(chunks) == stream.result.text
    assert 0 < stream.result.completion_tokens <= 6 and stream.result.ttft_s is not None


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.asyncio
async def test_transformers_on_cuda(tiny_model: Path) -> None:
    pool = BackendPool()
    try:
        backend = pool.get({"kind": "transformers", "model": str(tiny_model), "device": "cuda"})
        [item] = await backend.generate_batch([_conversation(4)], PARAMS)
    finally:
        await pool.aclose()
    assert isinstance(item, GenerationResult) and 0 < item.completion_tokens <= 6


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.asyncio
async def test_vllm_batch_on_gpu(tiny_model: Path) -> None:
    pytest.importorskip("vllm")
    config = {"kind": "vllm", "model": str(tiny_model), "enforce_eager": True, "gpu_memory_utilization": 0.3}
    pool = BackendPool()
    try:
        items = await pool.get(config).generate_batch([_conversation(4), _conversation(8)], PARAMS)
    finally:
        await pool.aclose()
    assert all(isinstance(r, GenerationResult) and r.completion_tokens > 0 for r in items)


def test_gpu_check_script_reports_json() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    command = ["bash", "deploy/gpu-check.sh", "--size", "tiny", "--batch-size", "2", "--max-tokens", "4"]
    if not HAS_CUDA:
        refused = subprocess.run(
            command, check=False, cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
        )
        assert refused.returncode == 2
        assert json.loads(refused.stdout.strip().splitlines()[-1])["ok"] is False
        command.append("--allow-cpu")
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=280, env=env
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, report
    assert report["ok"] and report["tokens_per_s"] > 0 and report["seconds_per_batch"] > 0
    assert 0 < report["results"][0]["completion_tokens"] <= 8
