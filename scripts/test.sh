#!/usr/bin/env bash
# The test command: lint, format check, type check, Dagster definitions check, then the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
echo "== ruff check";  uv run --locked ruff check .
echo "== ruff format"; uv run --locked ruff format --check .
echo "== pyright";     uv run --locked pyright
echo "== dg check defs"; uv run --locked dg check defs
echo "== pytest";      uv run --locked pytest -n 2 "$@"
