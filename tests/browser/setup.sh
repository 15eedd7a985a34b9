#!/usr/bin/env bash
# Installs the browser tests' npm packages (playwright-core only: the browser is Debian's chromium).
set -euo pipefail
cd "$(dirname "$0")"
[ -f package-lock.json ] || exit 0
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
