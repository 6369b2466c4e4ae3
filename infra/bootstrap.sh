#!/usr/bin/env bash
# Create .venv and install the project with its dev tools. Idempotent: reinstalls only
# when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null; then
    echo "bootstrap: $PYTHON not found; install Python 3.11" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # apache-flink first: its pins (via apache-beam) bound everything else.
    .venv/bin/python -m pip install --quiet "apache-flink==2.2.1"
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
