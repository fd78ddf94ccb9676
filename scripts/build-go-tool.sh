#!/usr/bin/env bash
# Builds a Go tool the test suite runs, from the Go module proxy (no release downloads
# here), and caches it under $TIERGUARD_CACHE/tools/<name>/<version>/<name>, like
# scripts/build-helm.sh does for helm. A second run finds the binary and returns at once.
#
#   argocd-lua   tools/argocd-lua in this repository: Argo CD's Lua runtime for the
#                RoutingPolicy health check and actions (github.com/yuin/gopher-lua);
#                cached by a hash of its sources.
#   dashboard-validate  tools/dashboard-validate in this repository: the Grafana
#                dashboard checked against Grafana's own dashboard schema (the Grafana
#                Foundation SDK, github.com/grafana/grafana-foundation-sdk/go); cached by a
#                hash of its sources.
#   kubeconform  github.com/yannh/kubeconform (schema validation of manifests)
#   kube-score   github.com/zegl/kube-score (Kubernetes object analysis)
#
# Usage: scripts/build-go-tool.sh NAME        # build if missing, print the binary path
# Measured on the 2 shared cores of the CI machine (cold module cache, other builds
# running): argocd-lua ~10 s (2m48s while kube-apiserver compiled), dashboard-validate
# ~1 min (load average 14), kubeconform ~15 s,
# kube-score ~4.5 min (it pulls k8s.io/api); see docs/testbed.md.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: scripts/build-go-tool.sh NAME}
CACHE=${TIERGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierguard}
log() { printf '[build-go-tool %s] %s\n' "$name" "$*" >&2; }

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi

case "$name" in
  argocd-lua)
    src=tools/argocd-lua
    version=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)
    ;;
  dashboard-validate)
    src=tools/dashboard-validate
    version=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)
    ;;
  kubeconform)
    module=github.com/yannh/kubeconform/cmd/kubeconform
    version=${KUBECONFORM_VERSION:-v0.7.0}
    ;;
  kube-score)
    module=github.com/zegl/kube-score/cmd/kube-score
    version=${KUBE_SCORE_VERSION:-v1.20.0}
    ;;
  *)
    log "unknown tool (known: argocd-lua, dashboard-validate, kubeconform, kube-score)"
    exit 2
    ;;
esac

DIR="$CACHE/tools/$name/$version"
OUT="$DIR/$name"
if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "the Go toolchain is required (https://go.dev/doc/install); then rerun scripts/setup.sh"
  exit 1
fi
mkdir -p "$DIR"
exec 9>"$DIR/.build.lock"
flock 9
if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$SECONDS
log "building $version from the Go module proxy ($(go env GOPROXY))"
if [ -n "${src:-}" ]; then
  (cd "$src" && go build -p 1 -trimpath -ldflags "-s -w" -o "$OUT.tmp" .)
else
  GOBIN="$DIR/.gobin" go install -p 1 -trimpath -ldflags "-s -w" "$module@$version"
  mv "$DIR/.gobin/$name" "$OUT.tmp"
  rmdir "$DIR/.gobin" 2>/dev/null || true
fi
mv "$OUT.tmp" "$OUT"
log "built $OUT in $((SECONDS - start)) s"
echo "$OUT"
