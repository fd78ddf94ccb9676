#!/usr/bin/env bash
# Builds the real Kubernetes control-plane binaries (kube-apiserver,
# kube-controller-manager, kubectl) and etcd from the Go module proxy, because
# these machines have no Docker engine and cannot download release binaries.
#
# Binaries are cached under $TIERGUARD_CACHE/controlplane/k8s-<ver>-etcd-<ver>/bin
# so only the first run pays for the build (about 15-25 minutes on 2 cores).
#
# Usage: hack/build-controlplane.sh            # build what is missing, print bin dir
#        K8S_VERSION=1.36.3 ETCD_VERSION=3.6.16 hack/build-controlplane.sh
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.36.3}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
CACHE=${TIERGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierguard}
ROOT="$CACHE/controlplane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BIN="$ROOT/bin"
mkdir -p "$BIN" "$ROOT/build"

log() { printf '[build-controlplane] %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "the Go toolchain is required (apt-get install golang-go, or see https://go.dev/doc/install)"
  exit 1
fi

export CGO_ENABLED=0
export GOFLAGS=-buildvcs=false
# Linking kube-apiserver needs a few GiB; two parallel compile jobs fit 2 cores.
export GOMAXPROCS=${GOMAXPROCS:-2}

STAGING="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
cloud-provider cluster-bootstrap code-generator component-base component-helpers
controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
sample-apiserver sample-cli-plugin sample-controller"

build_k8s() {
  local s="0.${K8S_VERSION#1.}" minor dir="$ROOT/build/k8s"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  mkdir -p "$dir"
  cd "$dir"
  if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION" go.mod; then
    log "resolving k8s.io/kubernetes v$K8S_VERSION (staging modules at v$s)"
    {
      echo 'module local/k8sbuild'; echo; echo 'go 1.24.0'; echo
      echo 'replace ('
      for m in $STAGING; do printf '\tk8s.io/%s => k8s.io/%s v%s\n' "$m" "$m" "$s"; done
      echo ')'
    } > go.mod
    go get "k8s.io/kubernetes@v$K8S_VERSION"
    cat > tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy -e >/dev/null 2>&1 || true
  fi
  local ldf="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    if [ -x "$BIN/$cmd" ]; then continue; fi
    log "building $cmd v$K8S_VERSION (go build; progress below)"
    go build -trimpath -ldflags "$ldf" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    log "built $BIN/$cmd"
  done
}

build_etcd() {
  [ -x "$BIN/etcd" ] && return 0
  local dir="$ROOT/build/etcd"
  mkdir -p "$dir"
  cd "$dir"
  if [ ! -f go.mod ]; then
    go mod init local/etcdbuild >/dev/null 2>&1
  fi
  log "resolving go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  log "building etcd v$ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
  log "built $BIN/etcd"
}

build_etcd
build_k8s
echo "$BIN"
