"""Plan benchmark: the engine's pushed-down diff against the floor, a naive full outer join and a pandas ``merge``.

    uv run python bench/plan_bench.py --rows 1000000 10000000 [--postgres 1000000]

For each size: a segment of N rows and a state of N rows with 1% churn (0.5% changed, 0.25% new, 0.25% gone)
in a DuckDB file, the state's fingerprints as the engine writes them. Then, each in its own process (peak RSS is
the process's own high-water mark, ``VmHWM``, not ``ru_maxrss``, which counts the parent's peak in a child):

* the engine's dry-run plan (DuckDB ``memory_limit`` as given; it spills beyond);
* the floor: one pass that cleans each key (``lower(trim(key))``) and fingerprints each row (the md5 of the
  mapped values, as the engine stores it), materialised, nothing joined;
* a naive full outer join of the cleaned, md5-fingerprinted segment with the state (the rows that differ,
  materialised);
* a pandas baseline that loads segment and previous snapshot and merges them.

``--postgres N`` runs the engine's plan, the floor and the naive join on a
throwaway PostgreSQL server (as the tests start one) at N rows. Prints times, peak RSS and same-run ratios.
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

BUILD_MEMORY = "4GB"  # building the data is not measured
FIELDS = {"first_name": "first_name", "country": "country", "plan": "plan"}


def spec():
    from espcore.sync.spec import SyncSpec

    return SyncSpec(
        name="bench",
        provider="fake",
        book="Bench",
        source_sql="SELECT * FROM segment",
        fields=FIELDS,
        mode="mirror",
        max_remove_pct=100,
    )


def _md5_text(alias: str, text: str = "CAST({} AS VARCHAR)") -> str:
    return " || chr(31) || ".join(f"coalesce({text.format(alias + '.' + c)}, '\\N')" for _, c in sorted(FIELDS.items()))


def build_sql(n: int) -> tuple[str, str]:
    """The segment and the previous snapshot (same people, minus the 0.25% that are new, plus 0.25% that have left,
    0.5% on another plan), for DuckDB and PostgreSQL alike."""
    segment = f"""SELECT 'user' || i || '@example.com' AS email, 'Name' || (i % 997) AS first_name,
                   (ARRAY['DE','FR','NL','PL'])[1 + (i % 4)] AS country,
                   CASE WHEN i % 200 = 0 THEN 'churned' ELSE (ARRAY['trial','pro'])[1 + (i % 2)] END AS plan
            FROM generate_series(0, {int(n * 0.9975) - 1}) AS t(i)"""
    snapshot = f"""SELECT 'user' || i || '@example.com' AS email, 'Name' || (i % 997) AS first_name,
                   (ARRAY['DE','FR','NL','PL'])[1 + (i % 4)] AS country, (ARRAY['trial','pro'])[1 + (i % 2)] AS plan
            FROM generate_series({int(n * 0.0025)}, {n - 1}) AS t(i)"""
    return segment, snapshot


def fill(wh, n: int) -> None:
    """Segment, snapshot and the book's state, its fingerprints as the engine writes them."""
    from espcore.sync.engine import SyncEngine
    from espcore.sync.tables import ensure_tables
    from tests.sync.fakes import FakeProvider

    segment, snapshot = build_sql(n)
    with wh.connect() as con:
        con.execute("DROP TABLE IF EXISTS segment")
        con.execute("DROP TABLE IF EXISTS snapshot")
        con.execute(f"CREATE TABLE segment AS {segment}")
        con.execute(f"CREATE TABLE snapshot AS {snapshot}")
        ensure_tables(con)
        engine = SyncEngine(spec(), FakeProvider(), wh, run_id="build")
        fp = engine._fingerprint(con, "s")
        con.execute(f"DELETE FROM {con.own('sync_state')}")
        con.execute(
            f"""INSERT INTO {con.own("sync_state")} (provider, book_id, pk, synced_fp, status, attempts)
            SELECT 'fake', '100', lower(trim(s.email)), {fp}, 'synced', 1 FROM snapshot AS s"""
        )
        if con.dialect.name == "duckdb":
            con.execute("CHECKPOINT")
        else:
            con.execute("ANALYZE")


def _warehouse(target: str):
    from espcore.warehouse import PostgresWarehouse, Warehouse

    if target.startswith("postgresql://"):
        url, _, schema = target.partition("#")
        return PostgresWarehouse(url, schema=schema, own_schema=f"{schema}_esp")
    return Warehouse(target)


def run_build(target: str, n: str) -> dict:
    t = time.perf_counter()
    fill(_warehouse(target), int(n))
    return {"seconds": time.perf_counter() - t, "counts": {}}


def run_engine(target: str) -> dict:
    import pandas  # noqa: F401  (loaded in any Dagster process; the baseline imports it before its clock too)
    import pyarrow  # noqa: F401

    from espcore.sync.engine import run_sync
    from espcore.sync.spec import SyncOptions
    from tests.sync.fakes import FakeProvider

    provider = FakeProvider()
    provider.books["Bench"] = "100"
    provider.members["100"] = {}
    wh = _warehouse(target)
    t = time.perf_counter()
    r = run_sync(spec(), provider, wh, run_id="bench", options=SyncOptions(dry_run=True))
    return {"seconds": time.perf_counter() - t, "counts": r.metadata()}


def _one_pass(target: str, sql: str) -> dict:
    wh = _warehouse(target)
    t = time.perf_counter()
    with wh.connect() as con:
        con.execute(f"CREATE TEMP TABLE bench_pass AS {sql}")
        row = con.fetchone("SELECT count(*) FROM bench_pass")
        con.execute("DROP TABLE bench_pass")
    return {"seconds": time.perf_counter() - t, "counts": {"rows": int(row[0]) if row else 0}}


def run_floor(target: str) -> dict:
    """The reference floor: one pass that cleans each key (``lower(trim())``) and md5-fingerprints each row."""
    wh = _warehouse(target)
    with wh.connect() as con:
        d = con.dialect
    text = _md5_text("s", "CAST({} AS " + ("VARCHAR" if d.name == "duckdb" else "TEXT") + ")")
    return _one_pass(target, f"SELECT lower(trim(s.email)) AS pk, md5({text}) AS fp FROM segment AS s")


def run_naive(target: str) -> dict:
    """A naive plan: the cleaned, md5-fingerprinted segment in a full outer join with the book's state; the rows
    that differ materialised."""
    wh = _warehouse(target)
    with wh.connect() as con:
        d = con.dialect
        state = con.own("sync_state")
    text = _md5_text("s", "CAST({} AS " + ("VARCHAR" if d.name == "duckdb" else "TEXT") + ")")
    return _one_pass(
        target,
        f"""SELECT coalesce(src.pk, st.pk) AS pk, CASE WHEN st.pk IS NULL THEN 'add' WHEN src.pk IS NULL THEN 'remove'
                   ELSE 'change' END AS action, src.fp
            FROM (SELECT lower(trim(s.email)) AS pk, md5({text}) AS fp FROM segment AS s) AS src
            FULL OUTER JOIN (SELECT pk, left(synced_fp, 32) AS fp FROM {state}
                             WHERE provider = 'fake' AND book_id = '100') AS st ON src.pk = st.pk
            WHERE src.fp IS DISTINCT FROM st.fp""",
    )


def run_pandas(target: str) -> dict:
    import duckdb
    import pandas as pd

    t = time.perf_counter()
    con = duckdb.connect(target, read_only=True)
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


def peak_rss_mib() -> float:
    """This process's own peak RSS. ``ru_maxrss`` would not do: in a child it starts at the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


KINDS = {
    "build": run_build,
    "engine": run_engine,
    "floor": run_floor,
    "naive": run_naive,
    "pandas": run_pandas,
}


def child(kind: str, args: list[str]) -> None:
    out = KINDS[kind](*args)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out, default=str))


def measure(kind: str, *args: str, memory_limit: str) -> dict:
    env = {**os.environ, "ESP_DUCKDB_MEMORY_LIMIT": memory_limit}
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args], capture_output=True, text=True, cwd=ROOT, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_plan(c: dict, expected: dict) -> None:
    for op in ("add", "change", "remove"):
        assert c[f"planned_{op}"] == expected[op], (c, expected)


def duckdb_rows(n: int, memory: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "bench.duckdb")
        measure("build", path, str(n), memory_limit=BUILD_MEMORY)
        e = measure("engine", path, memory_limit=memory)
        f = measure("floor", path, memory_limit=memory)
        j = measure("naive", path, memory_limit=memory)
        p = measure("pandas", path, memory_limit=memory)
        c = e["counts"]
        check_plan(c, p["counts"])
        assert j["counts"]["rows"] == sum(p["counts"].values()), (j, p)
        print(
            f"{n:>12,} {e['seconds']:>9.2f} {f['seconds']:>8.2f} {e['seconds'] / f['seconds']:>8.2f}x "
            f"{j['seconds']:>8.2f} "
            f"{j['seconds'] / e['seconds']:>7.1f}x {p['seconds']:>8.2f} {p['seconds'] / e['seconds']:>7.1f}x "
            f"{e['peak_rss_mib']:>11.0f} {j['peak_rss_mib']:>10.0f} {p['peak_rss_mib']:>11.0f}"
        )
        print(f"{'':>12} plan: +{c['planned_add']} ~{c['planned_change']} -{c['planned_remove']} (both agree)")


def postgres_rows(n: int) -> None:
    from tests.pg import postgres_server

    with postgres_server() as server:
        with server.admin() as admin:
            admin.execute("ALTER SYSTEM SET work_mem = '64MB'")
            admin.execute("SELECT pg_reload_conf()")
        with server.schemas() as make:
            wh = make()
            target = f"{server.url()}#{wh.schema}"
            wh.close()
            b = measure("build", target, str(n), memory_limit="")
            e = measure("engine", target, memory_limit="")
            f = measure("floor", target, memory_limit="")
            j = measure("naive", target, memory_limit="")
    c = e["counts"]
    print(
        f"PostgreSQL {n:,} rows (work_mem 64MB; built in {b['seconds']:.0f} s): engine {e['seconds']:.2f} s, "
        f"floor {f['seconds']:.2f} s ({e['seconds'] / f['seconds']:.2f}x), naive join {j['seconds']:.2f} s "
        f"({j['seconds'] / e['seconds']:.1f}x the engine); client peak RSS {e['peak_rss_mib']:.0f} MiB; "
        f"plan +{c['planned_add']} ~{c['planned_change']} -{c['planned_remove']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--child", nargs="+")
    ap.add_argument("--duckdb-memory", default="700MB", help="DuckDB memory_limit (spills beyond)")
    ap.add_argument("--postgres", type=int, nargs="*", default=[], help="also plan on PostgreSQL at these sizes")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1:])
        return
    print(f"DuckDB memory_limit {args.duckdb_memory}; baseline: pandas {__import__('pandas').__version__}")
    print(
        f"{'rows':>12} {'engine s':>9} {'floor s':>8} {'vs floor':>9} "
        f"{'naive s':>8} {'vs naive':>8} {'pandas s':>8} {'vs pd':>8} {'engine MiB':>11} {'naive MiB':>10} "
        f"{'pandas MiB':>11}"
    )
    for n in args.rows:
        duckdb_rows(n, args.duckdb_memory)
    for n in args.postgres:
        postgres_rows(n)


if __name__ == "__main__":
    main()
