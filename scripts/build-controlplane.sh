#!/usr/bin/env bash
# Builds the real Kubernetes control-plane binaries (kube-apiserver,
# kube-controller-manager, kubectl) and etcd from the Go module proxy, because
# these machines have no Docker engine and cannot download release binaries.
#
# Binaries are cached under $TIERGUARD_CACHE/controlplane/k8s-<ver>-etcd-<ver>/bin
# so only the first run pays for the build (about 25 minutes on 2 cores; see
# docs/testbed.md for measured numbers). A second run finds the binaries and
# returns at once. Two runs at the same time do not build twice: the second waits
# for the first (flock on the cache directory).
#
# Progress: each step is logged with the elapsed time; while a binary compiles the
# script prints how many of its Go packages have been compiled so far.
#
# Usage: scripts/build-controlplane.sh            # build what is missing, print bin dir
#        K8S_VERSION=1.36.3 ETCD_VERSION=3.6.16 scripts/build-controlplane.sh
# Output: the bin directory on stdout (last line); everything else on stderr.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.36.3}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
CACHE=${TIERGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierguard}
ROOT="$CACHE/controlplane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BIN="$ROOT/bin"
mkdir -p "$BIN" "$ROOT/build"

log() {
  printf '[build-controlplane %dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2
}

all_present() {
  for b in etcd kube-apiserver kube-controller-manager kubectl; do
    [ -x "$BIN/$b" ] || return 1
  done
}

if all_present; then
  echo "$BIN"
  exit 0
fi

# One build per cache directory at a time; a concurrent caller waits, then finds
# the binaries already there.
exec 9>"$ROOT/.build.lock"
if ! flock -n 9; then
  log "another build of $ROOT is running; waiting for it to finish"
  flock 9
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  log "the Go toolchain (1.26 or newer) is required: see https://go.dev/doc/install"
  log "(Debian's golang-go package is too old for Kubernetes $K8S_VERSION)"
  exit 1
fi
log "using $(go version)"

export CGO_ENABLED=0
export GOFLAGS=-buildvcs=false
# Linking kube-apiserver needs a few GiB; two parallel compile jobs fit 2 cores.
export GOMAXPROCS=${GOMAXPROCS:-2}

# go_build OUT PKG [go build flags...]: `go build -v` prints each package it
# compiles; turn that into a progress line every 100 packages (of the total
# `go list -deps` reports; cached packages are not printed, so the count may end
# below the total). Any other output (compiler errors) passes through.
go_build() {
  local out=$1 pkg=$2
  shift 2
  local total
  total=$(go list -deps "$pkg" 2>/dev/null | wc -l || echo "?")
  log "compiling $pkg ($total packages in its import graph)"
  go build -v "$@" -o "$out.tmp" "$pkg" 2>&1 | awk -v total="$total" '
    /^[^ :]+$/ {
      n++
      if (n % 100 == 0) {
        printf "[build-controlplane] ... %d/%s packages compiled\n", n, total > "/dev/stderr"
        fflush("/dev/stderr")
      }
      next
    }
    { print > "/dev/stderr" }
    END { printf "[build-controlplane] ... %d packages compiled in this run\n", n > "/dev/stderr" }
  '
  mv "$out.tmp" "$out"
  log "built $out"
}

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
    log "resolving k8s.io/kubernetes v$K8S_VERSION (staging modules at v$s) from the Go module proxy"
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
    log "building $cmd v$K8S_VERSION"
    go_build "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd" -trimpath -ldflags "$ldf"
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
  log "resolving go.etcd.io/etcd/server/v3 v$ETCD_VERSION from the Go module proxy"
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  log "building etcd v$ETCD_VERSION"
  go_build "$BIN/etcd" go.etcd.io/etcd/server/v3 -trimpath -ldflags "-s -w"
}

log "building into $BIN (first build: about 25 minutes on 2 cores)"
build_etcd
build_k8s
log "done"
echo "$BIN"
