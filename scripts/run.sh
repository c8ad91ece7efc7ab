#!/usr/bin/env bash
# One command from a fresh clone to a running service: install, then `libra serve`
# (embedded Postgres, embedded models, API + web page + job worker). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh  # returns at once, silently, when nothing changed since the last install
# The embedded server opens read access on every parent of its data folder: keep it out of /root.
if [ -z "${LIBRA_HOME:-}" ] && [ "$(id -u)" = 0 ] && [[ "$PWD" == /root* ]]; then
  export LIBRA_HOME="/var/lib/libra-arena"
fi
exec .venv/bin/libra serve "$@"
