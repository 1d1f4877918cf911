"""Fingerprints across releases and engines: a stored fingerprint made another way never re-sends a row.

DuckDB stores ``<md5>:<fast hash>``; an earlier release (and PostgreSQL) stored the plain md5. A row whose stored
fast hash is missing or differs is settled by its md5: unchanged values are not sent, and a real run rewrites
the fingerprint in the current form."""

import re

import pytest

from espcore.sync import engine as engine_module
from espcore.sync.tables import ensure_tables
from espcore.warehouse import BaseWarehouse, Warehouse
from tests.sync import test_engine
from tests.sync.fakes import FakeProvider
from tests.sync.test_engine import ROWS, execute, make_wh, own, spec, sync

new_wh = test_engine.new_wh  # the fixture: each test on DuckDB and on PostgreSQL

CURRENT = re.compile(r"[0-9a-f]{32}:[0-9A-F]+")


def engine_of(wh: BaseWarehouse) -> str:
    with wh.connect() as con:
        return con.dialect.name


def fingerprints(wh: BaseWarehouse) -> dict[str, str]:
    with wh.connect() as con:
        return dict(con.fetchall(f"SELECT pk, synced_fp FROM {own(wh, 'sync_state')}"))


def test_duckdb_stores_the_md5_then_a_fast_hash_postgres_the_md5(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p)
    fps = fingerprints(wh)
    assert len(fps) == len(ROWS)
    if engine_of(wh) == "duckdb":
        assert all(CURRENT.fullmatch(fp) for fp in fps.values()), fps
    else:
        assert all(re.fullmatch(r"[0-9a-f]{32}", fp) for fp in fps.values()), fps


@pytest.mark.parametrize("stored", ["md5", "stale"])
def test_a_fingerprint_made_another_way_is_settled_by_its_md5_and_rewritten_once(new_wh, stored):
    """``md5``: an earlier release's plain md5 (or PostgreSQL's); ``stale``: a fast hash this DuckDB does not make
    (another DuckDB release's ``hash``, or a column whose type changed). Unchanged rows are not sent; the changed
    one is; a real run rewrites the others' fingerprints in the current form."""
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p)
    new = "left(synced_fp, 32)" if stored == "md5" else "left(synced_fp, 32) || ':' || 'ABCDEF0123'"
    execute(wh, f"UPDATE {own(wh, 'sync_state')} SET synced_fp = {new}")
    execute(wh, "UPDATE people SET country = 'AT' WHERE email = 'e@example.com'")
    p.write_calls.clear()
    dry = sync(wh, p, run="dry", dry_run=True).metadata()
    assert (dry["planned_add"], dry["planned_change"], dry["planned_remove"]) == (0, 1, 0)
    assert fingerprints(wh)["a@example.com"] == fingerprints(wh)["a@example.com"]  # a dry run writes nothing
    m = sync(wh, p, run="r2").metadata()
    assert p.write_calls == [("upsert", ["e@example.com"])]
    assert (m["planned_add"], m["planned_change"], m["successful_change"]) == (0, 1, 1)
    if engine_of(wh) == "duckdb":
        assert all(CURRENT.fullmatch(fp) for fp in fingerprints(wh).values())
    p.write_calls.clear()
    again = sync(wh, p, run="r3").metadata()
    assert p.write_calls == []
    assert again["planned_change"] == 0


def test_a_dry_run_leaves_old_fingerprints_as_they_are(tmp_path):
    wh, p = make_wh(lambda: Warehouse(tmp_path / "d.duckdb")), FakeProvider()
    sync(wh, p)
    execute(wh, f"UPDATE {own(wh, 'sync_state')} SET synced_fp = left(synced_fp, 32)")
    before = fingerprints(wh)
    sync(wh, p, run="dry", dry_run=True)
    assert fingerprints(wh) == before


def test_a_column_type_change_that_keeps_the_text_sends_nothing(tmp_path):
    """The fast hash covers the typed values, so a new type changes it; the md5 of the text does not."""
    wh = Warehouse(tmp_path / "t.duckdb")
    execute(wh, "CREATE TABLE people AS SELECT 'a@example.com' AS email, 42 AS score")
    p = FakeProvider()
    s = spec(fields={"score": "score"})
    sync(wh, p, s=s)
    execute(wh, "CREATE OR REPLACE TABLE people AS SELECT 'a@example.com' AS email, '42' AS score")
    p.write_calls.clear()
    m = sync(wh, p, s=s, run="r2").metadata()
    assert p.write_calls == []
    assert m["planned_change"] == 0
    execute(wh, "CREATE OR REPLACE TABLE people AS SELECT 'a@example.com' AS email, '43' AS score")
    assert sync(wh, p, s=s, run="r3").metadata()["successful_change"] == 1


def test_a_rejected_row_with_an_old_fingerprint_is_not_resent(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p)
    execute(wh, "UPDATE people SET first_name = 'Bobby' WHERE email = 'b@example.com'")
    execute(wh, f"UPDATE {own(wh, 'sync_state')} SET status = 'rejected', rejected_fp = NULL")
    with wh.connect() as con:  # rejected for good with the values it has now, fingerprinted as a plain md5
        fp = con.fetchall(
            "SELECT md5(coalesce(CAST(country AS VARCHAR), '\\N') || chr(31) || coalesce(CAST(first_name AS VARCHAR),"
            " '\\N')) FROM people WHERE email = 'b@example.com'"
        )[0][0]
    execute(wh, f"UPDATE {own(wh, 'sync_state')} SET rejected_fp = '{fp}' WHERE pk = 'b@example.com'")
    m = sync(wh, p, run="r2", dry_run=True).metadata()
    assert m["rejected_unchanged"] == 1


def test_state_moves_between_engines_without_a_resend(tmp_path, pg_warehouses):
    """Fingerprints written on DuckDB plan as unchanged on PostgreSQL (its md5 part), and the reverse."""
    duck, pg = make_wh(lambda: Warehouse(tmp_path / "m.duckdb")), make_wh(pg_warehouses)
    for source, target in ((duck, pg), (pg, duck)):
        p = FakeProvider()
        sync(source, p)
        rows = []
        with source.connect() as con:
            rows = con.fetchall(f"SELECT provider, book_id, pk, synced_fp, status FROM {own(source, 'sync_state')}")
        with target.connect() as con:
            ensure_tables(con)
            con.execute(f"DELETE FROM {own(target, 'sync_state')}")
            for r in rows:
                con.execute(
                    f"INSERT INTO {own(target, 'sync_state')} (provider, book_id, pk, synced_fp, status, attempts) "
                    "VALUES (?, ?, ?, ?, ?, 1)",
                    list(r),
                )
        p.write_calls.clear()
        m = sync(target, p, run=f"moved-{engine_of(target)}").metadata()
        assert p.write_calls == []
        assert m["planned_change"] == m["planned_add"] == 0, m


def test_many_old_fingerprints_are_settled_a_slice_of_keys_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "VERIFY_SLICE", 2)
    wh, p = make_wh(lambda: Warehouse(tmp_path / "s.duckdb")), FakeProvider()
    sync(wh, p)
    execute(wh, f"UPDATE {own(wh, 'sync_state')} SET synced_fp = left(synced_fp, 32)")
    execute(wh, "UPDATE people SET country = 'AT' WHERE email IN ('a@example.com', 'd@example.com')")
    p.write_calls.clear()
    m = sync(wh, p, run="r2").metadata()
    assert sorted(p.write_calls[0][1]) == ["a@example.com", "d@example.com"]
    assert (m["planned_change"], m["successful_change"]) == (2, 2)
    assert all(CURRENT.fullmatch(fp) for fp in fingerprints(wh).values())
