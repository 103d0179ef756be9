#!/usr/bin/env bash
# Builds native/build/Release/malloc_trim.node (native/malloc-trim.c; docs/memory.md, section 8),
# gc_marking.node (native/gc-marking.c; section 9) and eval_deadline.node (native/eval-deadline.cc;
# docs/engines.md, "OPA evaluation deadline").
# binding.gyp lives in native/, not at the package root, so `npm ci` never runs node-gyp implicitly.
# Where it cannot be built (no C toolchain) verdict runs without it and says so when it starts;
# under CI=true that is an error, because CI must exercise it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! out=$(npx --no-install node-gyp rebuild --directory native --silent 2>&1); then
  if [ "${CI:-}" = "true" ]; then echo "[build:native] FAILED: native addons: $out" >&2; exit 1; fi
  echo "[build:native] native addons not built (verdict runs without them): $out" >&2
  exit 0
fi
echo "[build:native] native/build/Release/{malloc_trim,gc_marking,eval_deadline}.node" >&2
