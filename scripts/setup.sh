#!/usr/bin/env bash
# Everything a fresh machine needs before the lab or the tests run, idempotent and
# cached: a virtualenv with pinned Python packages, Prometheus (Debian package), and the
# Kubernetes control plane + etcd (+ helm) built from the Go module proxy.
#
# First run: about 20-30 minutes on 2 cores (mostly building kube-apiserver);
# later runs: seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  log "Python >= 3.11 is required (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11"
  exit 1
fi

# 1. Python environment, pinned by constraints.txt (regenerate: scripts/lock.sh).
stamp=.venv/.tierguard-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[train,lab,otel,dev]'
  echo "$want" > "$stamp"
fi

# 2. Prometheus from Debian's package (no daemon is started; tests run their own).
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing prometheus (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    log "prometheus is missing: run 'sudo apt-get install prometheus' (Debian/Ubuntu) or put a prometheus binary on PATH"
    exit 1
  fi
fi

# 3. Kubernetes control plane and etcd, built from the Go module proxy and cached. The
# build prints its steps and a heartbeat; its full log's path is printed first.
log "control plane binaries (built once, then cached; the first build takes 20-30 minutes)"
if ! scripts/build-controlplane.sh >/dev/null; then
  log "the control-plane build failed: see the messages and the log named above"
  exit 1
fi

# 4. Go tools the tests run, likewise: helm (chart tests), tools/argocd-lua (Argo CD's
# Lua runtime for the health check and actions), tools/dashboard-validate (the Grafana
# dashboard against Grafana's own schema), kubeconform (schema validation), kube-score
# (manifest analysis, lint/kube-score.yaml).
log "helm (built once, then cached)"
scripts/build-helm.sh >/dev/null || { log "building helm failed (see above)"; exit 1; }
for tool in argocd-lua dashboard-validate kubeconform kube-score; do
  log "$tool (built once, then cached)"
  scripts/build-go-tool.sh "$tool" >/dev/null || { log "building $tool failed (see above)"; exit 1; }
done
log "ready"
