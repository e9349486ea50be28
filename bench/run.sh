#!/usr/bin/env bash
# Run every scenario against every target (3 runs each) and print the table.
# Extra arguments go to `python -m bench` (e.g. --runs 5, --scenarios echo, --plugin, --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench "$@"
