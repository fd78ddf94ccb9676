#!/usr/bin/env bash
# The test command from README.md: sets up what is missing, then runs the linters, the
# type checker and every test (unit, integration against a real kube-apiserver + etcd
# and a real Prometheus, and the lab's end-to-end scenarios).
#
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -k split`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
scripts/mypy.sh
echo "== pytest"
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest tests
