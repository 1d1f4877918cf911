#!/usr/bin/env bash
# Quick start, command 1: run the main job on the embedded default (demo DuckDB + sandbox providers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
exec uv run --locked python -m pipelines.demo "$@"
