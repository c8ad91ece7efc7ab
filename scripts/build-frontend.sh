#!/usr/bin/env bash
# Installs the pages' npm packages from package-lock.json (only when it changed) and bundles the pages
# into frontend/dist. Needs Node.js 18+ and npm: Debian's nodejs and npm are installed where missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's nodejs and npm (to build the web pages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "error: Node.js and npm are needed to build the web pages (sudo apt-get install nodejs npm)" >&2
    exit 1
  fi
fi

stamp="node_modules/.installed"
fingerprint="$({ cat package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$fingerprint" ]; then
  log="$PWD/node_modules.install.log"
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    echo "error: npm ci failed; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  echo "$fingerprint" >"$stamp"
  rm -f "$log"
fi
node frontend/build.mjs
