#!/usr/bin/env bash
# The main job from README.md: sets up what is missing, then runs the local lab (a real
# control plane and Prometheus, the operator, routers and simulated providers, a policy
# rolled out and judged). Arguments go to `tierguard lab`, e.g. --scenario pareto-trap.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tierguard lab "$@"
