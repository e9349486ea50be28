#!/usr/bin/env bash
# Install what the bench needs into the project's venv: vws with its dev extra (which brings
# picows and python-socketio, so the smoke test runs in CI too) and py-spy for profiling.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e '.[dev]' py-spy
command -v taskset >/dev/null || echo "warning: taskset not found (util-linux); runs will not be pinned" >&2
echo "bench ready: bench/run.sh"
