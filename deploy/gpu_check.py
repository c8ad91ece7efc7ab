"""GPU worker check: can this machine generate, and how fast? (called by gpu-check.sh)

Works offline and without model weights: it builds a random-weight chat model
the size of a small one (about 0.4 B parameters) from a config, then runs a
batch through every GPU backend that imports here, vLLM first, then
transformers. Each backend runs in its own subprocess with a deadline, so a
hung or crashing engine cannot take the check down. The last stdout line is
one JSON object. Exit codes: 0 = at least one backend generated, 1 = none
did, 2 = no CUDA device (or PyTorch missing).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 270.0  # the whole check must stay under 5 minutes
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    sys.path.insert(0, str(ROOT))
    if args.run_one:
        return _emit(asyncio.run(_run_one(args)))
    return _check(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto")
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU when there is no GPU (testing)")
    parser.add_argument("--run-one", choices=("vllm", "transformers"), help=argparse.SUPPRESS)
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
        summary |= {k: best[k] for k in ("backend", "batch_size", "tokens_per_s", "seconds_per_batch")}
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
    wanted = ["vllm", "transformers"] if choice == "auto" else [choice]
    importable = [name for name in wanted if importlib.util.find_spec(name) is not None]
    # vLLM has no CPU path in this check.
    return [name for name in importable if not (name == "vllm" and device != "cuda")]


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
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-one",
        name,
        "--model-dir",
        model["dir"],
        "--device",
        device,
        "--batch-size",
        str(args.batch_size),
        "--max-tokens",
        str(args.max_tokens),
        "--tensor-parallel-size",
        str(args.tensor_parallel_size),
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
    from inference import BackendPool, InferenceError, SamplingParams

    config = _config(args)
    pool = BackendPool()
    try:
        backend = pool.get(config)
        conversations = _conversations(args.batch_size)
        params = SamplingParams(max_tokens=args.max_tokens, temperature=0.8, seed=0)
        load_started = time.perf_counter()
        await backend.generate_batch(
            conversations[:2], SamplingParams(max_tokens=4, seed=0)
        )  # load + warm up
        load_s = time.perf_counter() - load_started
        batch_started = time.perf_counter()
        items = await backend.generate_batch(conversations, params)
        seconds = time.perf_counter() - batch_started
    except InferenceError as error:
        return {"backend": args.run_one, "error": f"{error.code}: {error.message}"[:500]}
    finally:
        await pool.aclose()
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
