"""Upgrading from the release that kept its tables in the warehouse's default schema: the sync state, the run
history and the campaign ledger are carried into the own schema once, so nothing is resent and no launch
forgotten; the old tables are left in place, and a user's table of the same name is never read."""

from espcore.campaigns.ledger import Ledger, ensure_ledger
from espcore.sync.engine import run_sync
from espcore.sync.tables import ensure_tables
from espcore.warehouse import BaseWarehouse, PostgresWarehouse, Warehouse
from tests.sync.fakes import FakeProvider
from tests.sync.test_engine import ROWS, make_wh, spec


def earlier_release(wh: BaseWarehouse) -> BaseWarehouse:
    """The same warehouse as the earlier release used it: its tables in the connection's default schema."""
    if isinstance(wh, PostgresWarehouse):
        assert wh.schema is not None
        return PostgresWarehouse(wh._url, schema=wh.schema, own_schema=wh.schema)
    assert isinstance(wh, Warehouse)
    return Warehouse(wh.path, own_schema="main")


def default_schema(wh: BaseWarehouse) -> str:
    with wh.connect() as con:
        row = con.fetchone("SELECT current_schema()")
    assert row is not None
    return str(row[0])


def test_state_runs_and_ledger_of_an_earlier_release_are_carried_over(new_wh):
    wh = make_wh(new_wh)
    old = earlier_release(wh)
    p = FakeProvider(batch_size=2)
    first = run_sync(spec(), p, old, run_id="r1")
    assert first.synced_rows == len(ROWS)
    with old.connect() as con:
        con.execute(f"ALTER TABLE {con.own('sync_state')} DROP COLUMN rejected_fp")  # as that release had it
        ensure_ledger(con)
    Ledger(old).plan(
        "k1", provider="fake", book_id=first.book_id, campaign_name="c", occurrence="once", provider_name="c ck-k1"
    )
    schema = default_schema(wh)
    assert schema != wh.own_schema
    p.write_calls.clear()

    again = run_sync(spec(), p, wh, run_id="r2")  # the new release, with its own schema

    m = again.metadata()
    assert (m["planned_add"], m["planned_change"], m["write_calls"]) == (0, 0, 0)
    assert p.write_calls == []  # nothing resent
    assert again.synced_rows == len(ROWS)
    with wh.connect() as con:
        ensure_ledger(con)
        runs = con.fetchall(f"SELECT run_id, status FROM {con.own('sync_runs')} ORDER BY run_id")
        kept = con.fetchone(f"SELECT count(*) FROM {schema}.sync_state")
    assert runs == [("r1", "success"), ("r2", "success")]
    assert kept == (len(ROWS),)  # the old table is left as it was
    row = Ledger(wh).get("k1")
    assert row is not None
    assert row.status == "planned"


def test_a_users_table_of_the_same_name_is_never_read(new_wh):
    wh = new_wh()
    schema = default_schema(wh)
    with wh.connect() as con:
        con.execute(f"CREATE TABLE {schema}.sync_state (provider VARCHAR, note VARCHAR)")
        con.execute(f"INSERT INTO {schema}.sync_state VALUES ('fake', 'the user''s own')")
        con.execute(f"CREATE TABLE {schema}.campaign_ledger (campaign_key VARCHAR)")
        con.execute(f"INSERT INTO {schema}.campaign_ledger VALUES ('mine')")
        ensure_tables(con)
        ensure_ledger(con)
        assert con.fetchone(f"SELECT count(*) FROM {con.own('sync_state')}") == (0,)
        assert con.fetchone(f"SELECT count(*) FROM {con.own('campaign_ledger')}") == (0,)
        assert con.fetchall(f"SELECT note FROM {schema}.sync_state") == [("the user's own",)]
