"""Plan benchmark: the engine's pushed-down diff against a pandas ``merge`` doing the same diff.

    uv run python bench/plan_bench.py --rows 1000000 10000000

For each size: a segment of N rows and a state of N rows with 1% churn (0.5% changed, 0.25% new, 0.25% gone)
in a DuckDB file; then, each in its own process so peak RSS is its own, (a) the engine's dry-run plan and (b) a
pandas baseline that loads segment and previous snapshot and merges them, and (c) the floor: one pass that
cleans each key and fingerprints each row (goal: the engine within 1.5x of it). Prints times, peak RSS and
ratios measured in the same run.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = {"first_name": "first_name", "country": "country", "plan": "plan"}


def build(path: Path, n: int) -> None:
    from espcore.sync.tables import ensure_tables
    from espcore.warehouse import Warehouse

    wh = Warehouse(path)
    with wh.connect() as con:
        con.execute(
            f"""CREATE OR REPLACE TABLE segment AS
            SELECT 'user' || i || '@example.com' AS email, 'Name' || (i % 997) AS first_name,
                   ['DE','FR','NL','PL'][1 + (i % 4)] AS country,
                   CASE WHEN i % 200 = 0 THEN 'churned' ELSE ['trial','pro'][1 + (i % 2)] END AS plan
            FROM range({int(n * 0.9975)}) t(i)"""
        )
        # the previous snapshot: same people, minus the 0.25% that are new, plus 0.25% that have left
        con.execute(
            f"""CREATE OR REPLACE TABLE snapshot AS
            SELECT 'user' || i || '@example.com' AS email, 'Name' || (i % 997) AS first_name,
                   ['DE','FR','NL','PL'][1 + (i % 4)] AS country, ['trial','pro'][1 + (i % 2)] AS plan
            FROM range({int(n * 0.0025)}, {n}) t(i)"""
        )
        ensure_tables(con)
        parts = " || chr(31) || ".join(f"coalesce(CAST({c} AS VARCHAR), '\\N')" for _, c in sorted(FIELDS.items()))
        con.execute(
            f"""INSERT INTO {con.own("sync_state")} (provider, book_id, pk, synced_fp, status, attempts)
            SELECT 'fake', '100', lower(trim(email)), md5({parts}), 'synced', 1 FROM snapshot"""
        )
        con.execute("CHECKPOINT")


def run_engine(path: str) -> dict:
    import pandas  # noqa: F401  (loaded in any Dagster process; the baseline imports it before its clock too)
    import pyarrow  # noqa: F401

    from espcore.sync.engine import run_sync
    from espcore.sync.spec import SyncOptions, SyncSpec
    from espcore.warehouse import Warehouse
    from tests.sync.fakes import FakeProvider

    provider = FakeProvider()
    provider.books["Bench"] = "100"
    provider.members["100"] = {}
    spec = SyncSpec(
        name="bench",
        provider="fake",
        book="Bench",
        source_sql="SELECT * FROM segment",
        fields=FIELDS,
        mode="mirror",
        max_remove_pct=100,
    )
    t = time.perf_counter()
    r = run_sync(spec, provider, Warehouse(path), run_id="bench", options=SyncOptions(dry_run=True))
    return {"seconds": time.perf_counter() - t, "counts": r.metadata()}


def run_pandas(path: str) -> dict:
    import duckdb
    import pandas as pd

    t = time.perf_counter()
    con = duckdb.connect(path, read_only=True)
    seg = con.sql("SELECT * FROM segment").df()
    prev = con.sql("SELECT * FROM snapshot").df()
    con.close()
    for df in (seg, prev):
        df["pk"] = df["email"].str.strip().str.lower()
    cols = sorted(FIELDS.values())
    m = seg.merge(prev, on="pk", how="outer", suffixes=("", "_prev"), indicator=True)
    added = int((m["_merge"] == "left_only").sum())
    removed = int((m["_merge"] == "right_only").sum())
    both = m[m["_merge"] == "both"]
    changed_mask = pd.Series(False, index=both.index)
    for c in cols:
        changed_mask |= both[c].ne(both[f"{c}_prev"])
    changed = int(changed_mask.sum())
    return {"seconds": time.perf_counter() - t, "counts": {"add": added, "change": changed, "remove": removed}}


def run_floor(path: str) -> dict:
    """The physical floor of a plan: one pass over the segment that cleans each key and fingerprints each row
    (the same md5 of the mapped values the engine stores), materialised, nothing joined."""
    import duckdb

    parts = " || chr(31) || ".join(f"coalesce(CAST({c} AS VARCHAR), '\\N')" for _, c in sorted(FIELDS.items()))
    t = time.perf_counter()
    con = duckdb.connect(path, read_only=True)
    con.execute(f"CREATE TEMP TABLE keyed AS SELECT lower(trim(email)) AS pk, md5({parts}) AS fp FROM segment")
    rows = con.execute("SELECT count(*) FROM keyed").fetchone()
    con.close()
    return {"seconds": time.perf_counter() - t, "counts": {"rows": rows[0] if rows else 0}}


def child(kind: str, path: str) -> None:
    out = {"engine": run_engine, "pandas": run_pandas, "floor": run_floor}[kind](path)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, default=str))


def measure(kind: str, path: Path, memory_limit: str) -> dict:
    env = {**os.environ, "ESP_DUCKDB_MEMORY_LIMIT": memory_limit}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--duckdb-memory", default="1536MB", help="DuckDB memory_limit for the engine (spills beyond)")
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"engine: DuckDB memory_limit {args.duckdb_memory}; baseline: pandas {__import__('pandas').__version__}")
    print(
        f"{'rows':>12} {'engine s':>9} {'pandas s':>9} {'speed-up':>9} {'engine MiB':>11} {'pandas MiB':>11} "
        f"{'floor s':>8} {'vs floor':>9}"
    )
    for n in args.rows:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "bench.duckdb"
            build(path, n)
            e = measure("engine", path, args.duckdb_memory)
            p = measure("pandas", path, args.duckdb_memory)
            f = measure("floor", path, args.duckdb_memory)
        c = e["counts"]
        assert c["planned_add"] == p["counts"]["add"], (c, p["counts"])
        assert c["planned_remove"] == p["counts"]["remove"], (c, p["counts"])
        assert c["planned_change"] == p["counts"]["change"], (c, p["counts"])
        print(
            f"{n:>12,} {e['seconds']:>9.2f} {p['seconds']:>9.2f} {p['seconds'] / e['seconds']:>8.1f}x "
            f"{e['peak_rss_mib']:>11.0f} {p['peak_rss_mib']:>11.0f} {f['seconds']:>8.2f} "
            f"{e['seconds'] / f['seconds']:>8.2f}x"
        )
        print(f"{'':>12} plan: +{c['planned_add']} ~{c['planned_change']} -{c['planned_remove']} (both agree)")


if __name__ == "__main__":
    main()
