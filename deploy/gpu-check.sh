#!/usr/bin/env bash
# Short check of a GPU worker with no network: builds a random-weight ~0.4 B chat model, then measures
# each GPU path that imports here: vLLM's OpenAI server through the HTTP backend (the recommended path),
# vLLM in process, transformers. For each: tokens/s of one batch through the backend, and tokens/s of the
# evaluation runner on smoke-suite items through the same backend. One JSON line at the end.
# Exit 0: a backend generated; 1: none could; 2: no CUDA device.
# Options pass through, e.g. --batch-size 32 --max-tokens 256 --backend vllm-server --runner-items 128.
# The runner part imports the project: pydantic, pydantic-settings, sqlalchemy[asyncio], pyyaml, jinja2,
# httpx, numpy, prometheus-client (carry them as wheels); without them it reports runner_error and the
# backend figures still come.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --kill-after=10 450 "${PYTHON:-python3}" deploy/gpu_check.py "$@"
