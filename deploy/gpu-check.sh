#!/usr/bin/env bash
# Short check of a GPU worker with no network: builds a random-weight ~0.4 B
# chat model, generates a batch with vLLM and/or transformers (whichever
# import), and prints tokens/s and seconds per batch as one JSON line.
# Exit 0: a backend generated; 1: none could; 2: no CUDA device.
# Options pass through, e.g. --batch-size 32 --max-tokens 256 --backend transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --kill-after=10 295 "${PYTHON:-python3}" deploy/gpu_check.py "$@"
