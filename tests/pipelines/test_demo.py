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


#: what a production environment may hold: the demo ignores all of it (and says so)
PRODUCTION_ENV = {
    "SENDPULSE_CLIENT_ID": "real-id",
    "SENDPULSE_CLIENT_SECRET": "real-secret",
    "PAKAT_API_KEY": "real-pakat-key",
    "ESP_WAREHOUSE_URL": "postgresql://nobody@db.invalid/warehouse",
}


def run_demo(data: Path) -> str:
    env = {**os.environ, "ESP_DATA_DIR": str(data), **PRODUCTION_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=800
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_demo_summary_matches_the_landed_files_and_reruns_change_nothing(tmp_path):
    out = run_demo(tmp_path)
    ignoring = [line for line in out.splitlines() if line.startswith("demo: ignoring")]
    assert len(ignoring) == 1, out[:2000]
    assert "SENDPULSE_CLIENT_ID" in ignoring[0]
    assert "ESP_WAREHOUSE_URL" in ignoring[0]
    assert "real-secret" not in out
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
                "SELECT count(*) FROM esp.sync_state WHERE provider = ? AND status = 'synced'", [provider]
            ).fetchall()
            assert synced == [(rows,)], key
    assert "created campaign" in out
    again = run_demo(tmp_path)
    for m in (SYNC.match(line) for line in again.splitlines()):
        if m:
            assert m.group(2) == "0", m.group(0)
    assert "created campaign" not in again
    assert again.count("noop campaign") == out.count("created campaign")


def test_demo_help_prints_help_and_runs_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.demo", "--help"],
        cwd=ROOT,
        env={**os.environ, "ESP_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert "--data-dir" in proc.stdout
    assert not (tmp_path / "data").exists()  # nothing ran: no warehouse, no sandbox, no Dagster home
