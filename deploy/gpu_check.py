"""GPU worker check: can this machine generate, and how fast? (called by gpu-check.sh)

Works offline and without model weights: it builds a random-weight chat model
the size of a small one (about 0.4 B parameters) from a config, then measures
every GPU path that imports here, in this order:

- ``vllm-server``: vLLM's OpenAI-compatible server in a process of its own,
  reached through the HTTP backend (kind ``openai``): the recommended GPU path
  (docs/deploy.md, "GPU models");
- ``vllm``: vLLM's offline engine in process (one-machine setups);
- ``transformers``: PyTorch's ``model.generate``.

For each, two figures in the same run: the backend's tokens/s on one batch of
``--batch-size`` conversations, and the evaluation runner's tokens/s on
``--runner-items`` items of the ``smoke`` suite (plan, generate, score, with an
in-memory store instead of Postgres), batched as a worker batches that kind.
Each backend runs in its own subprocess with a deadline, so a hung or crashing
engine cannot take the check down. The last stdout line is one JSON object.
Exit codes: 0 = at least one backend generated, 1 = none did, 2 = no CUDA
device (or PyTorch missing).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 420.0  # the whole check stays under 7 minutes (gpu-check.sh stops it at 450 s)
SERVER_START_S = 240.0  # vLLM's server: import, load, profile memory, then /health answers
BACKENDS = ("vllm-server", "vllm", "transformers")
SERVED_NAME = "gpu-check"
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.max_tokens < 1 or args.runner_items < 0 or args.tensor_parallel_size < 1:
        parser.error("--batch-size, --max-tokens and --tensor-parallel-size must be at least 1, "
                     "--runner-items at least 0")
    os.environ.update(OFFLINE_ENV)
    sys.path.insert(0, str(ROOT))
    if args.run_one:
        return _emit(asyncio.run(_run_one(args)))
    return _check(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("auto", *BACKENDS), default="auto")
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="conversations per batch; for vllm-server also its --max-num-seqs and the "
                             "HTTP backend's max_concurrency")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--runner-items", type=int, default=64,
                        help="smoke-suite items the evaluation runner generates and scores per backend (0: skip)")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU when there is no GPU (testing)")
    parser.add_argument("--run-one", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--deadline-s", type=float, default=DEADLINE_S, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    return parser


def _check(args: argparse.Namespace) -> int:
    started = time.monotonic()
    device = _device_info(args.allow_cpu)
    if "error" in device:
        return _emit({"ok": False, **device}, code=2)
    backends = _backends(args.backend, device["device"])
    if not backends:
        return _emit(
            {"ok": False, **device, "error": "neither vLLM nor transformers can be imported"}, code=1
        )
    with tempfile.TemporaryDirectory(prefix="libra-gpu-check-") as folder:
        model = _build_model(Path(folder), args.size, device["device"])
        results = [_run_backend(args, name, model, device["device"], started) for name in backends]
    ok = [r for r in results if "error" not in r]
    summary = {"ok": bool(ok), **device, "model": model | {"dir": None}, "results": results}
    if ok:
        best = ok[0]
        keys = ("backend", "batch_size", "tokens_per_s", "seconds_per_batch", "runner_tokens_per_s")
        summary |= {k: best[k] for k in keys if k in best}
    summary["total_s"] = round(time.monotonic() - started, 1)
    return _emit(summary, code=0 if ok else 1)


def _device_info(allow_cpu: bool) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"error": "PyTorch is not installed"}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {
            "device": "cuda",
            "gpu": props.name,
            "gpu_count": torch.cuda.device_count(),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
    if allow_cpu:
        return {"device": "cpu", "torch": torch.__version__}
    return {"error": "no CUDA device visible to PyTorch", "torch": torch.__version__}


def _backends(choice: str, device: str) -> list[str]:
    wanted = list(BACKENDS) if choice == "auto" else [choice]
    # Both vLLM paths need vLLM itself, and neither has a CPU path in this check.
    needs = {"vllm-server": "vllm", "vllm": "vllm", "transformers": "transformers"}
    importable = [name for name in wanted if importlib.util.find_spec(needs[name]) is not None]
    return [name for name in importable if not (name.startswith("vllm") and device != "cuda")]


def _build_model(folder: Path, size: str, device: str) -> dict[str, Any]:
    from inference.synthetic import SHAPES, build_random_chat_model, parameter_count

    started = time.monotonic()
    dtype = "bfloat16" if device == "cuda" else "float32"
    build_random_chat_model(folder, size, device=device, dtype=dtype)
    return {
        "dir": str(folder),
        "size": size,
        "parameters": parameter_count(SHAPES[size]),
        "dtype": dtype,
        "build_s": round(time.monotonic() - started, 1),
    }


def _run_backend(
    args: argparse.Namespace, name: str, model: dict[str, Any], device: str, started: float
) -> dict[str, Any]:
    remaining = DEADLINE_S - (time.monotonic() - started)
    if remaining < 20:
        return {"backend": name, "error": "skipped: not enough time left"}
    command = [
        sys.executable, str(Path(__file__).resolve()), "--run-one", name, "--model-dir", model["dir"],
        "--device", device, "--batch-size", str(args.batch_size), "--max-tokens", str(args.max_tokens),
        "--tensor-parallel-size", str(args.tensor_parallel_size), "--runner-items", str(args.runner_items),
        "--deadline-s", str(round(remaining - 5, 1)),
    ]
    try:
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=remaining, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"backend": name, "error": f"timed out after {remaining:.0f} s"}
    return _last_json(done.stdout) or {
        "backend": name,
        "error": f"exit {done.returncode}: " + (done.stderr.strip().splitlines() or ["no output"])[-1][:300],
    }


async def _run_one(args: argparse.Namespace) -> dict[str, Any]:
    from inference import BackendPool, InferenceError

    started = time.monotonic()
    server = VLLMServer(args) if args.run_one == "vllm-server" else None
    pool = BackendPool()
    try:
        if server is not None:
            await server.wait_healthy(min(SERVER_START_S, args.deadline_s - 30))
        config = server.config(args) if server is not None else _config(args)
        backend = pool.get(config)
        result = await _measure_batch(args, backend)
        if args.runner_items and "error" not in result:
            time_left = max(args.deadline_s - (time.monotonic() - started) - 5, 1)
            try:
                result |= await asyncio.wait_for(_measure_runner(args, backend, config), timeout=time_left)
            except TimeoutError:
                result["runner_error"] = f"the runner did not finish within {time_left:.0f} s"
    except InferenceError as error:
        return {"backend": args.run_one, "error": f"{error.code}: {error.message}"[:500]}
    except (RuntimeError, TimeoutError) as error:
        return {"backend": args.run_one, "error": f"{type(error).__name__}: {error}"[:500]}
    finally:
        await pool.aclose()
        if server is not None:
            server.stop()
    return result


async def _measure_batch(args: argparse.Namespace, backend: Any) -> dict[str, Any]:
    from inference import InferenceError, SamplingParams

    conversations = _conversations(args.batch_size)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.8, seed=0)
    load_started = time.perf_counter()
    await backend.generate_batch(conversations[:2], SamplingParams(max_tokens=4, seed=0))  # load + warm up
    load_s = time.perf_counter() - load_started
    batch_started = time.perf_counter()
    items = await backend.generate_batch(conversations, params)
    seconds = time.perf_counter() - batch_started
    failures = [item for item in items if isinstance(item, InferenceError)]
    tokens = sum(item.completion_tokens for item in items if not isinstance(item, InferenceError))
    return {
        "backend": args.run_one,
        "device": args.device,
        "batch_size": len(conversations),
        "max_tokens": args.max_tokens,
        "completion_tokens": tokens,
        "failed_items": len(failures),
        "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
        "seconds_per_batch": round(seconds, 3),
        "load_and_warmup_s": round(load_s, 1),
        **({"error": f"{failures[0].code}: {failures[0].message}"} if failures and not tokens else {}),
    }


async def _measure_runner(args: argparse.Namespace, backend: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The evaluation runner over smoke-suite items, batched as a worker batches this backend kind."""
    try:
        from evaluation.runs.generation import backend_generate, batching_for
        from evaluation.runs.runner import RunSettings, run_evaluation
        from evaluation.tasks.registry import default_registry
        from evaluation.tasks.sampling import sample_cycle
        from inference import SamplingParams
    except ImportError as error:  # the GPU host lacks a project dependency (sqlalchemy, pyyaml...)
        return {"runner_error": f"cannot import the runner: {error}"}
    tasks = default_registry().suite("smoke").tasks
    sample = sample_cycle(tasks, "gpu-check", math.ceil(args.runner_items / len(tasks)), 0)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, top_p=1.0, seed=0)
    batch_size, concurrency = batching_for(config, args.batch_size)
    settings = RunSettings(model_config=config, sampling=params.fingerprint_dict(), seed=0,
                           batch_size=batch_size, max_concurrency=concurrency, timeout_s=args.deadline_s)
    store = _MemoryStore()
    started = time.perf_counter()
    report = await run_evaluation(tasks, backend_generate(backend, params), store, settings, sample=sample)
    seconds = time.perf_counter() - started
    tokens = sum(int(r.usage.get("completion_tokens") or 0) for r in store.generations.values())
    return {
        "runner_items": len(report.results),
        "runner_failed_items": sum(1 for r in store.generations.values()
                                   if r.status.value in ("timeout", "backend_error")),
        "runner_completion_tokens": tokens,
        "runner_seconds": round(seconds, 2),
        "runner_tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else None,
        "runner_batch_size": batch_size,
        "runner_concurrency": concurrency,
    }


class _MemoryStore:
    """The runner's ItemStore in memory: the check measures generation and scoring, not Postgres."""

    def __init__(self) -> None:
        self.generations: dict[str, Any] = {}
        self.scores: dict[str, Any] = {}

    async def get_generations(self, fingerprints: list[str]) -> dict[str, Any]:
        return {f: self.generations[f] for f in fingerprints if f in self.generations}

    async def save_generations(self, records: list[Any]) -> None:
        self.generations |= {r.fingerprint: r for r in records}

    async def get_scores(self, fingerprints: list[str]) -> dict[str, Any]:
        return {f: self.scores[f] for f in fingerprints if f in self.scores}

    async def save_scores(self, records: list[Any]) -> None:
        self.scores |= {r.fingerprint: r for r in records}


class VLLMServer:
    """``vllm serve`` for the check's model on a free loopback port; its output goes to a file."""

    def __init__(self, args: argparse.Namespace) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = Path(args.model_dir) / "vllm-server.log"  # removed with the model's folder
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model_dir,
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "bfloat16", "--max-model-len", "2048", "--max-num-seqs", str(args.batch_size),
            "--gpu-memory-utilization", "0.5", "--enforce-eager", "--seed", "0",
            "--tensor-parallel-size", str(args.tensor_parallel_size),
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def config(self, args: argparse.Namespace) -> dict[str, Any]:
        # As docs/deploy.md says to register a vLLM server: max_concurrency = --max-num-seqs.
        return {"kind": "openai", "base_url": f"http://127.0.0.1:{self.port}/v1", "model": SERVED_NAME,
                "max_concurrency": args.batch_size, "timeout_s": 300, "max_retries": 0}

    async def wait_healthy(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"vLLM's server exited with {self.process.returncode}: {self._tail()}")
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(1)
        raise TimeoutError(f"vLLM's server did not answer /health within {timeout_s:.0f} s: {self._tail()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])[-400:]


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.run_one == "vllm":
        # Eager mode skips CUDA-graph capture and compilation: start-up in seconds, not minutes.
        return {
            "kind": "vllm",
            "model": args.model_dir,
            "dtype": "bfloat16",
            "enforce_eager": True,
            "gpu_memory_utilization": 0.5,
            "max_model_len": 2048,
            "tensor_parallel_size": args.tensor_parallel_size,
        }
    return {
        "kind": "transformers",
        "model": args.model_dir,
        "device": args.device,
        "batch_size": args.batch_size,
    }


def _conversations(count: int) -> list[list[Any]]:
    from inference import Message

    # The tokenizer is word-level over "w0".."wN": prompts of different lengths, as in a real batch.
    return [
        [
            Message("system", "w1 w2 w3"),
            Message("user", " ".join(f"w{(i * 7 + j) % 900 + 10}" for j in range(16 + 4 * i))),
        ]
        for i in range(count)
    ]


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _emit(payload: dict[str, Any], code: int | None = None) -> int:
    print(json.dumps(payload), flush=True)  # this is a CLI: stdout is its interface
    if code is not None:
        return code
    return 0 if "error" not in payload else 1


if __name__ == "__main__":
    sys.exit(main())
