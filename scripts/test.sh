#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: system packages, .venv, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium drives the browser tests (Playwright's own browser download does not work here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing (sudo apt-get install chromium); browser tests will skip" >&2
  fi
fi
[ -x /usr/bin/chromium ] && export LIBRA_REQUIRE_BROWSER=1
# Browser tests save a screenshot each here (kept by CI with the rest of out/).
export LIBRA_SCREENSHOT_DIR="${LIBRA_SCREENSHOT_DIR:-$PWD/out/screenshots}"

scripts/install.sh dev

# Every embedded Postgres of this run lives under one folder of its own (tests read LIBRA_TEST_ROOT).
# At exit, stop exactly the servers whose data folders are in it, found by their postmaster.pid, never
# by name: other runs on this machine keep theirs. A killed holder's watchdog has usually done it already.
LIBRA_TEST_ROOT="$(mktemp -d /tmp/libra-run-XXXXXX)"
export LIBRA_TEST_ROOT
cleanup() {
  local status=$?
  .venv/bin/python -m core.pg_reaper --stop-under "$LIBRA_TEST_ROOT" || true
  rm -rf "$LIBRA_TEST_ROOT" || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pytest exits 5 when it collects nothing; `set -e` turns that into a failure, never a silent pass.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
