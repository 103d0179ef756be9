#!/usr/bin/env bash
# Builds the kernel programs (build/bpf/fastpath.bpf.o, build/bpf/kernel-telemetry.bpf.o) and the N-API addon (bpf/addon/build/Release/fastpath.node).
# binding.gyp lives in bpf/addon/, not at the package root, so `npm ci` never runs node-gyp implicitly.
# Where the toolchain is missing (not Linux, no clang/libbpf) the fast path is simply not built and verdict
# runs with it off; under CI=true that is an error, because CI must exercise the kernel path.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  if [ "${CI:-}" = "true" ]; then echo "[build:native] FAILED: $*" >&2; exit 1; fi
  echo "[build:native] fast path not built: $* (verdict runs with fastpath off)" >&2
  exit 0
}

[ "$(uname -s)" = "Linux" ] || skip "not Linux"
command -v clang >/dev/null || skip "clang not installed (scripts/setup-tools.sh bpf)"
[ -f /usr/include/bpf/libbpf.h ] || skip "libbpf-dev not installed (scripts/setup-tools.sh bpf)"

npx --no-install node-gyp rebuild --directory bpf/addon --silent >/dev/null
mkdir -p build/bpf
arch=$(uname -m)
case "$arch" in x86_64) target_arch=x86 ;; aarch64) target_arch=arm64 ;; *) target_arch=$arch ;; esac
clang -O2 -g -Wall -target bpf -D__TARGET_ARCH_"$target_arch" \
  -I/usr/include/"$arch"-linux-gnu -Ibpf \
  -c bpf/fastpath.bpf.c -o build/bpf/fastpath.bpf.o
clang -O2 -g -Wall -target bpf -D__TARGET_ARCH_"$target_arch" \
  -I/usr/include/"$arch"-linux-gnu -Ibpf \
  -c bpf/kernel-telemetry.bpf.c -o build/bpf/kernel-telemetry.bpf.o
echo "[build:native] build/bpf/fastpath.bpf.o build/bpf/kernel-telemetry.bpf.o bpf/addon/build/Release/fastpath.node" >&2
