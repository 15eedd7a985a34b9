#!/usr/bin/env bash
# Installs the Kubernetes checks' npm packages (kubernetes-models, its prometheus-operator models,
# yaml) into tests/kubernetes/node_modules from package-lock.json: ctest's fixture
# kubernetes.setup runs it, and does nothing once they are there.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
