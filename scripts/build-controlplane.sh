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
# Progress: each step is logged with the elapsed time as "[n/m] <binary>"; while a
# binary compiles, a heartbeat every 30 s (PROGRESS_EVERY) says how many of its Go
# packages are compiled. The full go output is kept in $ROOT/build.log (BUILD_LOG),
# whose path is printed; a failure names the step, shows the log's last lines and
# exits non-zero.
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

# The full output of every go command goes to $BUILD_LOG (its path is printed first);
# the terminal gets one line per step and, while a binary compiles or links, a
# heartbeat every $PROGRESS_EVERY seconds: which binary, step n of m, packages compiled
# so far (of the total `go list -deps` reports; cached packages are not recompiled, so
# the count may end below the total) and the elapsed time.
BUILD_LOG=${BUILD_LOG:-$ROOT/build.log}
PROGRESS_EVERY=${PROGRESS_EVERY:-30}
STEP=0
STEPS=0
CURRENT=""

# fail MESSAGE: say what failed, show the end of the log, say where the rest is.
fail() {
  log "FAILED: $*"
  if [ -s "$BUILD_LOG" ]; then
    log "last 30 lines of $BUILD_LOG:"
    tail -n 30 "$BUILD_LOG" >&2
  fi
  log "full log: $BUILD_LOG"
  log "fix the cause above (disk space, memory, proxy.golang.org reachable?) and rerun scripts/setup.sh"
  CURRENT=""
  exit 1
}
trap 'rc=$?; [ $rc -eq 0 ] || [ -z "$CURRENT" ] || log "FAILED while $CURRENT (full log: $BUILD_LOG)"' EXIT

# run_logged DESCRIPTION CMD...: run CMD with its output appended to the log.
run_logged() {
  local what=$1
  shift
  CURRENT=$what
  echo "### $what: $*" >>"$BUILD_LOG"
  "$@" >>"$BUILD_LOG" 2>&1 || fail "$what (exit $?)"
  CURRENT=""
}

# go_build NAME OUT PKG [go build flags...]
go_build() {
  local name=$1 out=$2 pkg=$3
  shift 3
  STEP=$((STEP + 1))
  local total part started=$SECONDS
  total=$(go list -deps "$pkg" 2>>"$BUILD_LOG" | wc -l || echo "?")
  part="$ROOT/build/$name.packages"
  : >"$part"
  rm -f "$out.tmp"
  log "[$STEP/$STEPS] compiling $name ($total packages in its import graph)"
  CURRENT="compiling $name"
  echo "### go build $pkg" >>"$BUILD_LOG"
  # `go build -v` names each package as it compiles it; keep those in $part (counted
  # for the heartbeat) and everything in the log.
  go build -v "$@" -o "$out.tmp" "$pkg" 2>&1 | tee -a "$BUILD_LOG" >"$part" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local waited=0
    while [ "$waited" -lt "$PROGRESS_EVERY" ] && kill -0 "$pid" 2>/dev/null; do
      sleep 1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      local n el=$((SECONDS - started))
      n=$(grep -c '^[^ :]*$' "$part" || true)
      log "[$STEP/$STEPS] $name: $n/$total packages compiled ($((el / 60))m$(printf '%02d' $((el % 60)))s for this binary$([ "$n" -ge "$total" ] 2>/dev/null && echo ', linking'))"
    fi
  done
  if ! wait "$pid" || [ ! -s "$out.tmp" ]; then
    rm -f "$out.tmp"
    fail "compiling $name ($pkg)"
  fi
  # A pipeline's status is its last command's (tee); the binary's presence is checked above.
  mv "$out.tmp" "$out"
  CURRENT=""
  log "[$STEP/$STEPS] built $name in $(((SECONDS - started) / 60))m$(printf '%02d' $(((SECONDS - started) % 60)))s"
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
    run_logged "resolving k8s.io/kubernetes v$K8S_VERSION" go get "k8s.io/kubernetes@v$K8S_VERSION"
    cat > tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy -e >>"$BUILD_LOG" 2>&1 || true
  fi
  local ldf="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    if [ -x "$BIN/$cmd" ]; then continue; fi
    go_build "$cmd" "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd" -trimpath -ldflags "$ldf"
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
  run_logged "resolving etcd v$ETCD_VERSION" go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go_build etcd "$BIN/etcd" go.etcd.io/etcd/server/v3 -trimpath -ldflags "-s -w"
}

for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [ -x "$BIN/$b" ] || STEPS=$((STEPS + 1))
done
: >"$BUILD_LOG"
log "building $STEPS binaries into $BIN (first build: about 25 minutes on 2 cores)"
log "full build log: $BUILD_LOG"
build_etcd
build_k8s
log "done"
echo "$BIN"
