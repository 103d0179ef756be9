#!/usr/bin/env bash
# Fresh machine → verdict serving the embedded default policy on 127.0.0.1:9191 (gRPC) and :8181 (ops).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci
scripts/setup-tools.sh opa
npm run build
# 4 MiB young-generation semi-spaces: ~40 MiB less RSS under load (docs/memory.md).
exec node --max-semi-space-size=4 bin/verdict.js serve "$@"
