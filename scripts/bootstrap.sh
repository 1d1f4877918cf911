#!/usr/bin/env bash
# Make sure uv is available (installed with pip when missing) and the locked environment is in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --user "uv>=0.9" || python3 -m pip install --quiet "uv>=0.9"
    export PATH="$HOME/.local/bin:$PATH"
fi
uv sync --locked --quiet
