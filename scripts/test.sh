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

scripts/install.sh dev

# Embedded Postgres servers of this run live under /tmp/libra-*; stop any a crash left behind.
cleanup() { pkill -f 'postgres -D /tmp/libra-' 2>/dev/null || true; }
trap cleanup EXIT

# pytest exits 5 when it collects nothing; `set -e` turns that into a failure, never a silent pass.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
