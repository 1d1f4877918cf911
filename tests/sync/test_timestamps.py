"""The product's own tables keep time as ``TIMESTAMP WITH TIME ZONE``: what a run writes is the same instant
whatever the session's time zone (a DuckDB process in Tokyo, a PostgreSQL role set to New York), and an earlier
release's naive UTC columns are converted once, each value kept as the UTC instant it meant."""

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from espcore.campaigns.ledger import TABLE as LEDGER
from espcore.campaigns.ledger import Ledger, ensure_ledger
from espcore.erasure import STATE_TABLE as ERASURE_STATE
from espcore.erasure import ensure_erasure_tables
from espcore.sync.engine import run_sync
from espcore.sync.tables import TABLES, as_utc, ensure_tables
from espcore.warehouse import BaseWarehouse, PostgresWarehouse, WarehouseConnection
from tests.sync.fakes import FakeProvider
from tests.sync.test_engine import ROWS, make_wh, spec

ROOT = Path(__file__).resolve().parents[2]
OWN_TABLES = (*TABLES, LEDGER, ERASURE_STATE)
THEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def timestamp_columns(con: WarehouseConnection) -> dict[str, str]:
    """``table.column`` -> its data type, for every timestamp column of the product's own tables."""
    rows = con.fetchall(
        "SELECT table_name, column_name, lower(data_type) FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = ? AND lower(data_type) LIKE 'timestamp%'",
        [con.own_schema],
    )
    return {f"{t}.{c}": typ for t, c, typ in rows if t in OWN_TABLES}


def as_earlier_release(con: WarehouseConnection) -> list[str]:
    """Turn every own timestamp column back into the naive UTC ``TIMESTAMP`` an earlier release had."""
    columns = sorted(timestamp_columns(con))
    for name in columns:
        table, column = name.split(".")
        con.execute(
            f"ALTER TABLE {con.own(table)} ALTER COLUMN {column} TYPE TIMESTAMP USING {column} AT TIME ZONE 'UTC'"
        )
    return columns


def test_every_own_timestamp_column_has_a_time_zone(new_wh):
    wh = make_wh(new_wh)
    run_sync(spec(), FakeProvider(), wh, run_id="r1")
    with wh.connect() as con:
        ensure_ledger(con)
        ensure_erasure_tables(con)
        types = timestamp_columns(con)
    assert len(types) == 17  # every one of them: a new table's timestamp column must be added here
    assert set(types.values()) == {"timestamp with time zone"}, types


def test_an_earlier_releases_naive_utc_columns_are_converted_once_keeping_each_instant(new_wh):
    wh = make_wh(new_wh)
    p = FakeProvider()
    run_sync(spec(), p, wh, run_id="r1")
    ledger = Ledger(wh, now=lambda: THEN)
    ledger.plan("k1", provider="fake", book_id="1", campaign_name="c", occurrence="once", provider_name="c")
    with wh.connect() as con:
        ensure_erasure_tables(con)
        naive = as_earlier_release(con)
        assert len(naive) == 17
        con.execute(
            f"UPDATE {con.own('sync_runs')} SET started_at = ? WHERE run_id = 'r1'", [THEN.replace(tzinfo=None)]
        )

    run_sync(spec(), p, wh, run_id="r2")  # the new release: converts, then runs
    ledger = Ledger(wh)  # the ledger and the erasure state are converted where they are opened
    with wh.connect() as con:
        ensure_erasure_tables(con)
        assert set(timestamp_columns(con).values()) == {"timestamp with time zone"}
        started = con.fetchone(f"SELECT started_at FROM {con.own('sync_runs')} WHERE run_id = 'r1'")
        ensure_tables(con)
        assert con.convert_naive_timestamps(OWN_TABLES) == []  # once only
    assert started is not None
    assert as_utc(started[0]) == THEN
    row = ledger.get("k1")
    assert row is not None
    assert row.planned_at == THEN
    assert row.planned_at.tzinfo == UTC


def _assert_recent(wh: BaseWarehouse, before: datetime) -> None:
    after = datetime.now(UTC) + timedelta(seconds=1)
    with wh.connect() as con:
        run = con.fetchone(f"SELECT started_at, finished_at FROM {con.own('sync_runs')} WHERE run_id = 'r1'")
        logged = con.fetchall(f"SELECT logged_at FROM {con.own('sync_changelog')}")
        synced = con.fetchall(f"SELECT last_synced_at FROM {con.own('sync_state')}")
    assert run is not None
    assert len(logged) == len(synced) == len(ROWS)
    for value in (*run, *(v for (v,) in logged), *(v for (v,) in synced)):
        assert value.tzinfo is not None
        assert before <= as_utc(value) <= after, value  # not shifted by the session's offset


def test_a_duckdb_process_in_another_time_zone_writes_the_same_instants(tmp_path):
    path = tmp_path / "wh.duckdb"
    script = textwrap.dedent(
        f"""
        from espcore.sync.engine import run_sync
        from espcore.warehouse import Warehouse
        from tests.sync.fakes import FakeProvider
        from tests.sync.test_engine import make_wh, spec

        wh = make_wh(lambda: Warehouse({str(path)!r}))
        with wh.connect() as con:
            assert con.fetchone("SELECT current_setting('TimeZone')") == ("Asia/Tokyo",)
        run_sync(spec(), FakeProvider(), wh, run_id="r1")
        """
    )
    before = datetime.now(UTC) - timedelta(seconds=1)
    env = {**os.environ, "TZ": "Asia/Tokyo"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    from espcore.warehouse import Warehouse

    _assert_recent(Warehouse(path), before)


@pytest.mark.postgres
def test_a_postgresql_session_in_another_time_zone_writes_the_same_instants(pg_warehouses, monkeypatch):
    monkeypatch.setenv("PGTZ", "America/New_York")  # libpq sets the session's time zone from it
    wh = make_wh(pg_warehouses)
    assert isinstance(wh, PostgresWarehouse)
    with wh.connect() as con:
        assert con.fetchone("SELECT current_setting('TimeZone')") == ("America/New_York",)
    before = datetime.now(UTC) - timedelta(seconds=1)
    run_sync(spec(), FakeProvider(), wh, run_id="r1")
    _assert_recent(wh, before)
