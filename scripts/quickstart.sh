#!/usr/bin/env bash
# Fresh machine → verdict serving the embedded default policy on 127.0.0.1:9191 (gRPC) and :8181 (ops).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci
scripts/setup-tools.sh opa
npm run build
# bin/verdict starts node with verdict's memory defaults (docs/memory.md).
exec bin/verdict serve "$@"
