#!/usr/bin/env bash
# Copies the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs into
# tests/integration/fixtures/prometheus-operator/, from the prometheus-operator Go module
# on the Go module proxy (no release download). The tests install them on the testbed's
# API server, so every render of the chart and every ServiceMonitor the operator renders
# is validated by the real schemas (server-side dry run, kubeconform).
#
# Usage: scripts/vendor-monitoring-crds.sh [VERSION]     (default below; commit the result)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-v0.85.0}
MOD=github.com/prometheus-operator/prometheus-operator
OUT=tests/integration/fixtures/prometheus-operator
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" && go mod init vendor-crds >/dev/null 2>&1 && cd - >/dev/null
DIR=$(cd "$tmp" && go mod download -json "$MOD@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$DIR/example/prometheus-operator-crd" ] || { echo "no CRDs in $MOD@$VERSION" >&2; exit 1; }
mkdir -p "$OUT"
for kind in servicemonitors prometheusrules; do
  cp "$DIR/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$OUT/"
  chmod 644 "$OUT/monitoring.coreos.com_$kind.yaml"
done
cp "$DIR/LICENSE" "$OUT/LICENSE"
chmod 644 "$OUT/LICENSE"
echo "$MOD $VERSION example/prometheus-operator-crd/" > "$OUT/SOURCE"
echo "vendored $MOD@$VERSION CRDs into $OUT"
