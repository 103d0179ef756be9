#!/usr/bin/env bash
# Renders deploy/kubernetes/*.yaml from the Helm chart with the pinned helm (scripts/setup-tools.sh helm).
# test/deploy/helm-chart.test.ts fails when the committed files differ from this output.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm="$root/.tools/bin/helm"
[ -x "$helm" ] || { echo "helm is not installed: run scripts/setup-tools.sh helm" >&2; exit 1; }
chart="$root/deploy/helm/verdict"
out="$root/deploy/kubernetes"
header='# Rendered from deploy/helm/verdict by scripts/render-manifests.sh; do not edit by hand.'
render() { # name, values files...
  local name=$1; shift
  { echo "$header"; "$helm" template verdict "$chart" --namespace verdict-system --kube-version 1.30.0 "$@"; } >"$out/$name.yaml"
}
render verdict-deployment
render verdict-daemonset -f "$chart/ci/daemonset-values.yaml"
