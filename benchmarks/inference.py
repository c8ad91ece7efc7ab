"""Embedded-backend throughput, and what the OpenAI-compatible endpoint costs.

    python -m benchmarks.inference [--quick]

Measures, in one run and on the same prompts and seeds:
- single-stream decode tokens/s and time to first token of SmolLM2 called in process;
- the same through `inference.openai_server` in a separate process over loopback
  (what `libra serve-model` runs), read by the HTTP backend with streaming;
- 8-prompt batch throughput of the embedded backend (`generate_batch`, completion
  tokens over wall time, prefill included) against the same 8 prompts one by one.
In-process and endpoint runs alternate so that drifting machine load hits
both alike. Figures are medians; the targets use medians of per-prompt ratios. Progress goes to stderr; the last stdout
line is one JSON object with the figures and `targets`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from inference import Backend, BackendPool, GenerationResult, InferenceError, Message, SamplingParams

logger = logging.getLogger("benchmarks.inference")

MODEL = {"kind": "llamacpp", "model": "smollm2-135m-instruct", "n_threads": 1}
SERVED_NAME = "smollm2-135m-bench"
SYSTEM = "You are a helpful assistant. Answer clearly and in complete sentences."
TOPICS = (
    "how rainbows form",
    "why the sea is salty",
    "how a bicycle stays upright",
    "what causes the seasons",
    "how bees make honey",
    "why leaves change colour in autumn",
    "how a refrigerator keeps food cold",
    "what makes thunder",
    "how vaccines train the immune system",
    "why bread rises",
)


@dataclass(frozen=True)
class Plan:
    runs: int
    max_tokens: int
    batch_runs: int
    batch_max_tokens: int


QUICK = Plan(runs=5, max_tokens=24, batch_runs=1, batch_max_tokens=24)
FULL = Plan(runs=9, max_tokens=128, batch_runs=3, batch_max_tokens=64)


def _conversation(index: int) -> list[Message]:
    topic = TOPICS[index % len(TOPICS)]
    return [Message("system", SYSTEM), Message("user", f"Explain {topic} to a curious twelve-year-old.")]


def _params(plan: Plan, seed: int, max_tokens: int | None = None) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens or plan.max_tokens, temperature=0.7, seed=seed)


def _decode_rate(result: GenerationResult) -> float | None:
    return result.decode_tokens_per_s


async def _single_stream(
    backend: Backend, conversation: list[Message], params: SamplingParams
) -> GenerationResult:
    stream = backend.stream(conversation, params)
    async for _ in stream:
        pass
    return stream.result


async def _compare_streams(local: Backend, remote: Backend, plan: Plan) -> dict[str, list[GenerationResult]]:
    runs: dict[str, list[GenerationResult]] = {"in_process": [], "endpoint": []}
    for index in range(plan.runs):
        conversation, params = _conversation(index), _params(plan, seed=index)
        # Alternate which goes first, so neither always runs on a warmer machine.
        order = (("in_process", local), ("endpoint", remote))
        for label, backend in order if index % 2 == 0 else order[::-1]:
            runs[label].append(await _single_stream(backend, conversation, params))
        logger.info("benchmark.stream.run", extra={"run": index})
    return runs


async def _batch(backend: Backend, plan: Plan) -> dict[str, float]:
    """8 prompts through generate_batch, and the same 8 one after another, alternating."""
    batched, sequential = [], []
    for run in range(plan.batch_runs):
        conversations = [_conversation(run * 8 + i) for i in range(8)]
        params = _params(plan, seed=run, max_tokens=plan.batch_max_tokens)
        started = time.perf_counter()
        items = await backend.generate_batch(conversations, params)
        batched.append(_tokens(items) / (time.perf_counter() - started))
        started = time.perf_counter()
        one_by_one = [await backend.generate(c, params) for c in conversations]
        sequential.append(_tokens(one_by_one) / (time.perf_counter() - started))
        logger.info("benchmark.batch.run", extra={"run": run})
    return {
        "tokens_per_s": round(_median(batched), 2),
        "sequential_tokens_per_s": round(_median(sequential), 2),
        "speedup": round(_median(batched) / _median(sequential), 2),
    }


def _tokens(items: Sequence[GenerationResult | InferenceError]) -> int:
    failures = [i for i in items if isinstance(i, InferenceError)]
    if failures:
        raise failures[0]
    return sum(i.completion_tokens for i in items if isinstance(i, GenerationResult))


def _median(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else float("nan")


def _summary(results: list[GenerationResult]) -> dict[str, float]:
    return {
        "decode_tokens_per_s": round(_median([_decode_rate(r) for r in results]), 2),
        "ttft_s": round(_median([r.ttft_s for r in results]), 4),
        "latency_s": round(_median([r.latency_s for r in results]), 3),
        "completion_tokens": round(_median([float(r.completion_tokens) for r in results]), 1),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "inference.openai_server",
        "--config",
        json.dumps(MODEL),
        "--model-name",
        SERVED_NAME,
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
    )


async def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the endpoint process exited with {server.returncode}")
            try:
                if (await client.get(f"{url}/models")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the endpoint did not start in time")


def _paired(local: list[GenerationResult], remote: list[GenerationResult]) -> dict[str, float]:
    """Medians of per-prompt ratios: each pair ran back to back, so load drift cancels."""
    rates = [
        r.decode_tokens_per_s / l.decode_tokens_per_s
        for l, r in zip(local, remote, strict=True)
        if l.decode_tokens_per_s and r.decode_tokens_per_s
    ]
    ttfts = [r.ttft_s / l.ttft_s - 1.0 for l, r in zip(local, remote, strict=True) if l.ttft_s and r.ttft_s]
    return {"decode_ratio": _median(rates), "ttft_overhead": _median(ttfts)}


def _targets(paired: dict[str, float]) -> dict[str, dict[str, Any]]:
    ratio, overhead = paired["decode_ratio"], paired["ttft_overhead"]
    return {
        "endpoint_decode_tokens_per_s_ratio": {
            "value": round(ratio, 3),
            "goal": ">= 0.9",
            "met": ratio >= 0.9,
        },
        "endpoint_ttft_overhead": {"value": round(overhead, 3), "goal": "< 0.10", "met": overhead < 0.10},
    }


async def run(plan: Plan, quick: bool) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = _start_server(port)
    pool = BackendPool()
    try:
        local = pool.get(MODEL)
        remote = pool.get({"kind": "openai", "base_url": url, "model": SERVED_NAME, "max_retries": 0})
        await _wait_ready(url, server)
        for backend in (local, remote):  # load the model on both sides
            await backend.generate(_conversation(99), _params(plan, seed=99, max_tokens=4))
        streams = await _compare_streams(local, remote, plan)
        batch = await _batch(local, plan)
    finally:
        await pool.aclose()
        server.terminate()
        server.wait(timeout=10)
    local_summary, remote_summary = _summary(streams["in_process"]), _summary(streams["endpoint"])
    return {
        "benchmark": "inference",
        "quick": quick,
        "model": MODEL["model"],
        "n_threads": MODEL["n_threads"],
        "runs": plan.runs,
        "max_tokens": plan.max_tokens,
        "in_process": local_summary,
        "endpoint": remote_summary,
        "batch": {"prompts": 8, "max_tokens": plan.batch_max_tokens, "runs": plan.batch_runs, **batch},
        "targets": _targets(_paired(streams["in_process"], streams["endpoint"])),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Embedded inference benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (under a minute)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    started = time.perf_counter()
    report = asyncio.run(run(QUICK if args.quick else FULL, args.quick))
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report))  # a CLI: the report is its output


if __name__ == "__main__":
    main()
