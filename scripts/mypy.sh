#!/usr/bin/env bash
# The type checker over src/, tests/ and bench/ (scripts/test.sh runs this).
#
# One mypy run cannot hold them all: pytest and the bench scripts import their neighbours
# as top-level modules, so tests/integration, tests/unit/operator and each bench/<study>
# directory is an import root, and some names then exist twice (conftest.py in tests/,
# tests/integration and tests/unit/operator; run.py in bench/scale, bench/router and
# bench/detection; preflight.py in bench/router and bench/detection). The first run is
# pyproject's [tool.mypy] (src, tests, bench/detection, bench/*.py); the other two check
# what it leaves out, each with its own directory as an extra import root. Same settings,
# same cache, so src/ is analysed once.
set -euo pipefail
cd "$(dirname "$0")/.."
mypy=${MYPY:-.venv/bin/mypy}
"$mypy" "$@"
MYPYPATH=bench/scale "$mypy" "$@" tests/integration/conftest.py bench/scale
MYPYPATH=bench/router "$mypy" "$@" tests/unit/operator/conftest.py bench/router
