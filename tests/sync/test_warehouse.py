"""The warehouse layer on both engines: parameters, Arrow in and out, transactions and locks, URLs, the demo."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from espcore import demo
from espcore.demo import build_demo_warehouse
from espcore.errors import ConfigurationError
from espcore.sync.engine import run_sync
from espcore.sync.health import segment_health
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.warehouse import (
    BaseWarehouse,
    PostgresWarehouse,
    Warehouse,
    qmark_to_pyformat,
    warehouse_from_url,
)
from tests.sync.fakes import FakeProvider


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def wh(request: pytest.FixtureRequest, tmp_path) -> BaseWarehouse:
    if request.param == "postgres":
        return request.getfixturevalue("pg_warehouses")()
    return Warehouse(tmp_path / "wh.duckdb")


# -- pure ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ?", "SELECT %s"),
        ("SELECT * FROM t WHERE a = ? AND b LIKE 'x%'", "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%'"),
        ("SELECT '?', \"col?\", ? -- why?\n", "SELECT '?', \"col?\", %s -- why?\n"),
        ("SELECT 'it''s ?' || ?", "SELECT 'it''s ?' || %s"),
        ("SELECT E'a\\'?' , ?", "SELECT E'a\\'?' , %s"),
        ("SELECT $$ ? $$, $q$ '? $q$, ? /* ? */", "SELECT $$ ? $$, $q$ '? $q$, %s /* ? */"),
        ("SELECT 5 % 3, ?", "SELECT 5 %% 3, %s"),
    ],
)
def test_qmark_to_pyformat(sql, expected):
    assert qmark_to_pyformat(sql) == expected


@pytest.mark.parametrize(
    ("url", "kind", "where"),
    [
        ("data/wh.duckdb", Warehouse, "duckdb:data/wh.duckdb"),
        ("/abs/wh.duckdb", Warehouse, "duckdb:/abs/wh.duckdb"),
        ("duckdb:///data/wh.duckdb", Warehouse, "duckdb:data/wh.duckdb"),
        ("duckdb:////abs/wh.duckdb", Warehouse, "duckdb:/abs/wh.duckdb"),
        ("duckdb:/abs/wh.duckdb", Warehouse, "duckdb:/abs/wh.duckdb"),  # what Warehouse.location gives
        (
            "postgresql://u:s3cret@db.example:6432/wh?sslmode=require",
            PostgresWarehouse,
            "postgresql://u@db.example:6432/wh",
        ),
        ("postgres://db.example/wh", PostgresWarehouse, "postgresql://db.example/wh"),
    ],
)
def test_warehouse_from_url(url, kind, where):
    w = warehouse_from_url(url)
    assert isinstance(w, kind)
    assert w.location == where
    assert "s3cret" not in repr(w)


@pytest.mark.parametrize("url", ["duckdb:///:memory:", "duckdb:", "mysql://u:p@h/db", ""])
def test_unusable_urls_are_refused(url):
    with pytest.raises(ConfigurationError):
        warehouse_from_url(url)


def test_a_bad_dsn_error_does_not_echo_the_password():
    with pytest.raises(ConfigurationError) as err:
        PostgresWarehouse("postgresql://u:s3cret@h/db?nonsense=1")
    assert "s3cret" not in str(err.value)
    assert err.value.__cause__ is None


# -- both engines -------------------------------------------------------------------------------------------------


def test_parameters_next_to_literal_percent_and_question_marks(wh):
    with wh.connect() as con:
        row = con.fetchone("SELECT 'x%' || ?, '?' AS q, ? LIKE 'a%', 7 % 4", ["y", "abc"])
        assert row == ("x%y", "?", True, 3)
        assert con.fetchone("SELECT '100%'") == ("100%",)  # no parameters: sent as written


def test_load_temp_round_trips_common_types_and_replaces(wh):
    table = pa.table(
        {
            "i": pa.array([1, None, 2**40], pa.int64()),
            "f": pa.array([1.5, None, -0.25], pa.float64()),
            "b": pa.array([True, False, None]),
            "s": pa.array(["plain", None, "tab\t nl\n quote' dq\" bs\\ ünï ✓ \x01 %s ?"]),
            "d": pa.array([date(2025, 6, 1), None, date(1999, 12, 31)]),
            "ts": pa.array([datetime(2026, 1, 1, 10, 11, 12, 500000), None, datetime(2000, 1, 1)], pa.timestamp("ns")),
            "tz": pa.array([datetime(2026, 1, 1, tzinfo=UTC), None, None], pa.timestamp("us", tz="UTC")),
            "n": pa.array([Decimal("12.30"), None, Decimal("-1.05")], pa.decimal128(10, 2)),
            "cat": pa.array(["x", "y", "x"]).dictionary_encode(),
            "all_null": pa.nulls(3),
        }
    )
    with wh.connect() as con:
        con.load_temp("tmp_types", table)
        out = con.arrow("SELECT * FROM tmp_types ORDER BY i NULLS LAST")
        assert out.column_names == table.column_names
        got = out.to_pydict()
        assert got["i"] == [1, 2**40, None]
        assert got["f"] == [1.5, -0.25, None]
        assert got["b"] == [True, None, False]
        assert got["s"] == ["plain", table["s"][2].as_py(), None]
        assert got["d"] == [date(2025, 6, 1), date(1999, 12, 31), None]
        assert got["ts"] == [datetime(2026, 1, 1, 10, 11, 12, 500000), datetime(2000, 1, 1), None]
        assert got["tz"][0] == datetime(2026, 1, 1, tzinfo=UTC)
        assert got["n"] == [Decimal("12.30"), Decimal("-1.05"), None]
        assert got["cat"] == ["x", "x", "y"]
        assert got["all_null"] == [None, None, None]
        # loading the name again replaces it, with another shape
        con.load_temp("tmp_types", pa.table({"v": ["a", "b"]}))
        assert con.fetchall("SELECT v FROM tmp_types ORDER BY 1") == [("a",), ("b",)]
        empty = con.arrow("SELECT v AS kept_name FROM tmp_types WHERE false")
        assert (empty.num_rows, empty.column_names) == (0, ["kept_name"])
        con.drop_temp("tmp_types")
        con.load_temp("tmp_empty", pa.table({"pk": pa.array([], pa.string())}))
        assert con.fetchone("SELECT count(*) FROM tmp_empty") == (0,)


def test_transaction_rolls_back_on_error(wh):
    with wh.connect() as con:
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")

        def failing_block() -> None:
            with con.transaction():
                con.execute("INSERT INTO t VALUES (1)")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            failing_block()
        con.execute("INSERT INTO t VALUES (2)")  # autocommit outside a block
    with wh.connect() as con:
        assert con.fetchall("SELECT k FROM t") == [(2,)]


def test_a_named_lock_serialises_read_modify_write_across_connections(wh):
    with wh.connect() as con:
        con.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
        con.execute("INSERT INTO counter VALUES (0)")

    def bump(times: int) -> None:
        for _ in range(times):
            with wh.connect() as con, con.transaction(lock="counter"):
                row = con.fetchone("SELECT n FROM counter")
                assert row is not None
                con.execute("UPDATE counter SET n = ?", [int(row[0]) + 1])

    with ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(bump, 5) for _ in range(3)]:
            f.result(timeout=60)
    with wh.connect() as con:
        assert con.fetchone("SELECT n FROM counter") == (15,)


def test_demo_warehouse_and_segment_health(wh):
    rows = demo.customers()
    eu = Counter(r["active"] and r["country"] in demo.EU for r in rows)[True]
    expected = {
        "customers": len(rows),
        "segment_active_eu": eu,
        "segment_trial_users": sum(r["plan"] == "trial" for r in rows),
        "segment_all_active": sum(bool(r["active"]) for r in rows),
    }
    assert build_demo_warehouse(wh) == expected
    assert build_demo_warehouse(wh) == expected  # rebuilding replaces
    spec = SyncSpec(
        name="h", provider="fake", book="B", source_sql="SELECT * FROM segment_active_eu", fields={"n": "first_name"}
    )
    health = segment_health(spec, wh)
    assert (health.rows, health.missing_columns) == (eu, ())
    assert health.invalid >= 1  # the demo's bad rows
    assert health.duplicate_keys >= 1
    missing = segment_health(
        SyncSpec(name="m", provider="fake", book="B", source_sql=spec.source_sql, fields={"x": "nope"}), wh
    )
    assert missing.missing_columns == ("nope",)


def test_fingerprints_agree_between_duckdb_and_postgres(tmp_path, pg_warehouses):
    """State written by one engine plans as unchanged on the other (for text, integer, boolean, date, timestamp)."""
    spec = SyncSpec(
        name="fp",
        provider="fake",
        book="B",
        source_sql="SELECT * FROM seg",
        fields={"s": "s", "i": "i", "b": "b", "d": "d", "ts": "ts", "none": "none"},
    )
    plans = []
    for w in (Warehouse(tmp_path / "fp.duckdb"), pg_warehouses()):
        with w.connect() as con:
            con.execute(
                "CREATE TABLE seg (email VARCHAR, s VARCHAR, i INTEGER, b BOOLEAN, d DATE, ts TIMESTAMP, none VARCHAR)"
            )
            con.execute(
                "INSERT INTO seg VALUES (?, ?, ?, ?, ?, ?, ?)",
                ["a@example.com", "Ann ✓", 42, True, date(2025, 6, 1), datetime(2026, 1, 1, 10, 11, 12, 500000), None],
            )
        run_sync(spec, FakeProvider(), w, run_id="dry", options=SyncOptions(dry_run=True))
        with w.connect() as con:
            plans.append(con.fetchall(f"SELECT pk, fp FROM {w.own_schema}.sync_plan"))
    assert plans[0] == plans[1]
    assert len(plans[0]) == 1


def test_many_mapped_fields_build_a_payload_on_postgres(pg_warehouses):
    """json_build_object takes at most 50 pairs: wider payloads are built in chunks."""
    w = pg_warehouses()
    cols = [f"c{i}" for i in range(60)]
    with w.connect() as con:
        con.execute(f"CREATE TABLE wide (email VARCHAR, {', '.join(f'{c} INTEGER' for c in cols)})")
        con.execute(f"INSERT INTO wide VALUES ('a@example.com', {', '.join(str(i) for i in range(60))})")
    p = FakeProvider()
    spec = SyncSpec(
        name="wide", provider="fake", book="W", source_sql="SELECT * FROM wide", fields={c: c for c in cols}
    )
    assert run_sync(spec, p, w, run_id="r1").metadata()["successful_add"] == 1
    assert p.members["100"]["a@example.com"] == {c: i for i, c in enumerate(cols)}


def test_postgres_temp_tables_are_analyzed_even_when_empty(pg_warehouses):
    """A temp table never analyzed is planned as some 900 rows, whatever it holds (the plan of a 1M-row sync
    sorted its whole join to merge it with an empty suppression list). Loaded, every temp table has statistics."""
    w: PostgresWarehouse = pg_warehouses()
    with w.connect() as con:
        for name, rows in (("empty_list", []), ("short_list", ["k1", "k2"])):
            con.load_temp(name, pa.table({"pk": pa.array(rows, pa.string()), "reason": pa.array(rows, pa.string())}))
            analyzed = con.fetchone("SELECT reltuples FROM pg_class WHERE oid = ?::regclass", [f"pg_temp.{name}"])
            assert analyzed is not None
            assert analyzed[0] == len(rows), (name, analyzed)  # -1: never analyzed


def test_pooled_connections_are_reused_and_left_clean(pg_warehouses):
    w: PostgresWarehouse = pg_warehouses()
    with w.connect() as con:
        first = con.fetchone("SELECT pg_backend_pid()")
        con.load_temp("leftover", pa.table({"a": [1]}))  # not dropped: released with DISCARD TEMP
    with w.connect() as con:
        assert con.fetchone("SELECT pg_backend_pid()") == first
        assert con.fetchone("SELECT to_regclass('pg_temp.leftover') IS NULL") == (True,)
        with pytest.raises(Exception, match="division by zero"), con.transaction():
            con.execute("SELECT 1 / 0")
    seen: set[object] = set()
    barrier = threading.Barrier(3, timeout=20)

    def hold() -> None:
        with w.connect() as con:
            seen.add(con.fetchone("SELECT pg_backend_pid()"))
            barrier.wait()

    with ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(hold) for _ in range(3)]:
            f.result(timeout=30)
    assert len(seen) == 3  # concurrent users never share a connection
    w.close()
    with w.connect() as con:  # still usable after close
        assert con.fetchone("SELECT 1") == (1,)
