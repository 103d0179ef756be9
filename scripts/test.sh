#!/usr/bin/env bash
# The whole test suite: installs the pinned real tools it needs, type-checks, lints, builds, runs the
# policies' own `opa test`, then every vitest suite. Prints a closing "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-tools.sh

echo "== typecheck"; npm run --silent typecheck
echo "== lint"; npm run --silent lint
echo "== build"; npm run --silent build
echo "== opa test"
# Each policy bundle directory is its own data root (its data.json sits at data.<roots>).
for dir in policies/*/; do
  if ls "$dir"*.rego >/dev/null 2>&1; then .tools/bin/opa test "$dir"; fi
done

mkdir -p .tmp
status=0
npx vitest run --reporter=default --reporter=json --outputFile=.tmp/vitest.json "$@" || status=$?
node scripts/test-summary.js .tmp/vitest.json || status=1
exit $status
