#!/usr/bin/env bash
# Regenerates constraints.txt from a fresh resolution of pyproject.toml, so every machine
# installs the same versions. Run after changing dependencies; commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q '.[train,lab,otel,dev]'
"$tmp/venv/bin/pip" freeze --exclude tierguard | sort -f > constraints.txt
echo "wrote constraints.txt ($(wc -l < constraints.txt) packages)"
