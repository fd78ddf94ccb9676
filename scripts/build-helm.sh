#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy, because these machines have no Docker
# engine and cannot download release tarballs (only package registries are reachable).
#
# helm.sh/helm/v3 has no `replace` directives in its go.mod, so a plain
# `go install helm.sh/helm/v3/cmd/helm@vX` works without a wrapper module. We pass the
# same -ldflags as helm's Makefile so `helm version` reports the real version and
# `helm lint` / `helm template` assume the Kubernetes version helm was built against
# (otherwise they default to v1.20 and `.Capabilities.KubeVersion` lies).
#
# The binary is cached under $TIERGUARD_CACHE/helm/<version>/helm, so only the first
# run pays for the build (a few minutes on 2 cores).
#
# Usage: scripts/build-helm.sh                    # build if missing, print the binary path
#        HELM_VERSION=3.22.0 scripts/build-helm.sh
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-3.22.0}
HELM_VERSION=${HELM_VERSION#v}
CACHE=${TIERGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierguard}
DIR="$CACHE/helm/$HELM_VERSION"
OUT="$DIR/helm"

log() { printf '[build-helm] %s\n' "$*" >&2; }

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "the Go toolchain is required (apt-get install golang-go, or see https://go.dev/doc/install)"
  exit 1
fi

mkdir -p "$DIR"
export CGO_ENABLED=0
export GOFLAGS=-buildvcs=false
export GOMAXPROCS=${GOMAXPROCS:-2}

MOD="helm.sh/helm/v3"
log "resolving $MOD v$HELM_VERSION"
SRC=$(go mod download -json "$MOD@v$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$SRC" ] || [ ! -f "$SRC/go.mod" ]; then
  log "could not download $MOD@v$HELM_VERSION from the Go module proxy ($(go env GOPROXY))"
  exit 1
fi
if grep -qE '^[[:space:]]*replace' "$SRC/go.mod"; then
  # `go install pkg@version` refuses modules with replace directives; a wrapper module
  # copying them would be needed. helm v3 has none today; fail loudly if that changes.
  log "$MOD v$HELM_VERSION has replace directives; go install cannot build it directly"
  exit 1
fi

# Kubernetes version helm assumes offline: client-go v0.X.Y -> 1.X (as helm's Makefile does).
CLIENT_GO=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$SRC/go.mod" | head -1)
K8S_MINOR=${CLIENT_GO:-20}

LDFLAGS="-s -w \
 -X $MOD/internal/version.version=v$HELM_VERSION \
 -X $MOD/internal/version.metadata= \
 -X $MOD/internal/version.gitTreeState=clean \
 -X $MOD/pkg/lint/rules.k8sVersionMajor=1 \
 -X $MOD/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR \
 -X $MOD/pkg/chartutil.k8sVersionMajor=1 \
 -X $MOD/pkg/chartutil.k8sVersionMinor=$K8S_MINOR"

log "building helm v$HELM_VERSION (assumes Kubernetes 1.$K8S_MINOR offline)"
GOBIN="$DIR/.gobin" go install -trimpath -ldflags "$LDFLAGS" "$MOD/cmd/helm@v$HELM_VERSION"
mv "$DIR/.gobin/helm" "$OUT"
rmdir "$DIR/.gobin" 2>/dev/null || true
log "built $OUT"
echo "$OUT"
