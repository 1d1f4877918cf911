#!/usr/bin/env bash
# The test command: lint, format check, type check, Dagster definitions check, then the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
# The UI test renders the Dagster UI in Debian's headless Chromium: install it when missing.
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium (Debian package) for the UI test"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "== ruff check";  uv run --locked ruff check .
echo "== ruff format"; uv run --locked ruff format --check .
echo "== pyright";     uv run --locked pyright
echo "== import contracts"; uv run --locked lint-imports --no-cache
# the production location loads only with credentials or an explicit sandbox: check it on the sandboxes, and
# check the demo's location too
echo "== dg check defs"; ESP_SANDBOX_DIR="$(mktemp -d)" uv run --locked dg check defs
echo "== demo location"; uv run --locked dagster definitions validate -m pipelines.demo_location
echo "== pytest";      uv run --locked pytest -n 2 "$@"
