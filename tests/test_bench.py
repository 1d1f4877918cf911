"""The benchmarks still run against today's code (tiny sizes: a smoke test, not a measurement)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> str:
    """Run a benchmark script from the project root in a process of its own; its output, once it succeeded."""
    proc = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_plan_bench_runs_and_both_plans_agree() -> None:
    out = run_bench("bench/plan_bench.py", "--rows", "4000")
    assert "(both agree)" in out


@pytest.mark.slow
@pytest.mark.postgres
def test_plan_bench_plans_on_postgres(pg_server) -> None:
    """``--postgres``: the plan on a throwaway server of its own (``pg_server`` only skips the test where
    PostgreSQL is not installed)."""
    out = run_bench("bench/plan_bench.py", "--rows", "3000", "--postgres", "3000")
    assert "PostgreSQL 3,000 rows" in out


@pytest.mark.slow
@pytest.mark.network
def test_apply_bench_runs_and_every_row_reaches_the_book_on_both_sides() -> None:
    out = run_bench("bench/apply_bench.py", "--rows", "1500")
    assert "every row in the book on both sides (1,500; 15 add calls each)" in out
    assert "CPU per row, engine/baseline" in out


def test_sync_bench_unchanged_reads_do_not_grow_with_the_book(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import sync_bench  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    sync_bench.unchanged_reads((300, 1500))
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith(("300", "1,500"))]
    (small_sig, small_full), (big_sig, big_full) = ((int(r[1]), int(r[2])) for r in rows)
    assert small_sig == big_sig  # O(1): the same calls whatever the size
    assert big_full > small_full > small_sig  # the full read grows with the book
