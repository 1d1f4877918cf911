"""The benchmarks still run against today's code (tiny sizes: a smoke test, not a measurement)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_plan_bench_runs_and_both_plans_agree() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/plan_bench.py", "--rows", "4000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(both agree)" in proc.stdout
