"""The README's first command, as a user runs it: the printed summary matches what landed on disk."""

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
LANDED = re.compile(r"^\s+landed\s+(\S+)\s+(\d+) rows -> (\S+)$")
SYNC = re.compile(r"^\s+sync\s+(\S+)\s+planned \+(\d+) .*book rows (\d+)$")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run_demo(data: Path) -> str:
    env = {**os.environ, "ESP_DATA_DIR": str(data)}
    for var in ("SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET", "PAKAT_API_KEY", "LITESTARTUP_API_KEY"):
        env.pop(var, None)
    env.pop("ESP_WAREHOUSE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=800
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_demo_summary_matches_the_landed_files_and_reruns_change_nothing(tmp_path):
    out = run_demo(tmp_path)
    landed = [LANDED.match(line) for line in out.splitlines()]
    landed = [m for m in landed if m]
    datasets = {m.group(1) for m in landed}
    for provider in ("sendpulse", "pakat", "litestartup"):
        for dataset in ("campaigns", "campaign_stats", "blacklist", "balances", "book_members"):
            assert f"lake/{provider}/{dataset}" in datasets, (provider, dataset)
    for provider in ("pakat", "litestartup"):  # the providers that expose delivery logs
        assert f"lake/{provider}/delivery_events" in datasets
    for m in landed:
        path = Path(m.group(3))
        assert path.is_file(), path
        assert path.is_relative_to(tmp_path), path
        count = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
        assert count == [(int(m.group(2)),)]
    syncs = {m.group(1): int(m.group(3)) for m in (SYNC.match(line) for line in out.splitlines()) if m}
    assert len(syncs) == 3
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        for key, rows in syncs.items():
            provider = key.split("/")[0]
            synced = con.execute(
                "SELECT count(*) FROM sync_state WHERE provider = ? AND status = 'synced'", [provider]
            ).fetchall()
            assert synced == [(rows,)], key
    assert "created campaign" in out
    again = run_demo(tmp_path)
    for m in (SYNC.match(line) for line in again.splitlines()):
        if m:
            assert m.group(2) == "0", m.group(0)
    assert "created campaign" not in again
    assert again.count("noop campaign") == out.count("created campaign")
