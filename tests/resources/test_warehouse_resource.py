"""The warehouse resource: DuckDB by default, PostgreSQL from a URL whose password never shows."""

import time
from typing import Any

import dagster as dg
import pytest

from assets.warehouse import SEGMENT_KEYS, demo_warehouse
from esp_warehouse.assets.checks import build_checks
from esp_warehouse.assets.subscribers import build_sync_asset
from esp_warehouse.config import Declarations
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from espcore.warehouse import PostgresWarehouse, Warehouse
from tests.pg import PgServer

PASSWORD = "pg-pass-DO-NOT-LEAK-77"


def metadata(result: Any, key: str) -> dict[str, Any]:
    """Plain metadata values of one asset's materialization in a run result."""
    for e in result.get_asset_materialization_events():
        if "/".join(e.asset_key.path) == key:
            return {k: v.value for k, v in e.materialization.metadata.items()}
    raise AssertionError(f"{key} was not materialized")


def test_defaults_to_the_duckdb_file(tmp_path):
    wh = WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb")).get_warehouse()
    assert isinstance(wh, Warehouse)
    assert wh.location == f"duckdb:{tmp_path / 'w.duckdb'}"
    assert isinstance(WarehouseResource(url="duckdb:///data/x.duckdb").get_warehouse(), Warehouse)


def test_postgres_url_is_hidden_from_repr_and_location(monkeypatch):
    url = f"postgresql://esp:{PASSWORD}@db.internal:5432/warehouse?sslmode=require"
    for res in (WarehouseResource(url=url), WarehouseResource(url=dg.EnvVar("TEST_WH_URL"))):
        monkeypatch.setenv("TEST_WH_URL", url)
        with dg.build_resources({"warehouse": res}) as built:
            wh = built.warehouse.get_warehouse()
            assert isinstance(wh, PostgresWarehouse)
            assert wh.location == "postgresql://esp@db.internal:5432/warehouse"
            for text in (repr(res), str(res), repr(built.warehouse), repr(wh), wh.location):
                assert PASSWORD not in text


@pytest.mark.postgres
def test_demo_and_a_sync_materialize_on_postgres(tmp_path, monkeypatch, pg_server: PgServer):
    """The Dagster assets on a PostgreSQL warehouse given as an EnvVar: the password never reaches the event log."""
    with pg_server.admin() as con:
        con.execute("DROP ROLE IF EXISTS esp_dagster")
        con.execute(f"CREATE ROLE esp_dagster LOGIN PASSWORD '{PASSWORD}'")
        con.execute("DROP DATABASE IF EXISTS esp_dagster")
        con.execute("CREATE DATABASE esp_dagster OWNER esp_dagster")
    monkeypatch.setenv("TEST_WH_URL", f"postgresql://esp_dagster:{PASSWORD}@127.0.0.1:{pg_server.port}/esp_dagster")
    decls = Declarations.model_validate(
        {
            "syncs": [
                {
                    "name": "sp_eu",
                    "provider": "sendpulse",
                    "book": "EU",
                    "source": {"view": "segment_active_eu"},
                    "fields": {"first_name": "first_name", "country": "country"},
                }
            ]
        }
    )
    seg = {d.name: SEGMENT_KEYS[d.source.relation or ""] for d in decls.syncs}
    syncs = [build_sync_asset(d, seg[d.name]) for d in decls.syncs]
    checks = build_checks(decls.syncs, seg)
    resources = {
        "sendpulse": SendPulseResource(
            client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, sandbox_state=str(tmp_path / "sp.json")
        ),
        "warehouse": WarehouseResource(url=dg.EnvVar("TEST_WH_URL")),
        "lake": LakeResource(root=str(tmp_path / "lake")),
    }
    with dg.instance_for_test() as instance:
        first = dg.materialize([demo_warehouse, *syncs, *checks], resources=resources, instance=instance)
        assert first.success
        eu = metadata(first, "sendpulse/books/eu")
        assert eu["successful_add"] == eu["planned_add"] > 0
        assert eu["invalid"] >= 1
        assert all(c.passed for c in first.get_asset_check_evaluations() if c.check_name == "sp_eu_source_ok")
        again = dg.materialize([demo_warehouse, *syncs], resources=resources, instance=instance)
        eu2 = metadata(again, "sendpulse/books/eu")
        assert eu2["planned_add"] == eu2["planned_change"] == eu2["planned_remove"] == eu2["write_calls"] == 0
        logs = [str(r) for r in instance.all_logs(first.run_id)] + [str(r) for r in instance.all_logs(again.run_id)]
        assert any("postgresql://esp_dagster@127.0.0.1" in line for line in logs)  # the run log names the target
        assert not any(PASSWORD in line for line in logs)
    # the resource closed its pooled connections after each run (a closed backend leaves pg_stat_activity soon after)
    deadline = time.monotonic() + 10
    with pg_server.admin() as con:
        while True:
            row = con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'esp_dagster'").fetchone()
            if row == (0,):
                break
            assert time.monotonic() < deadline, f"{row} connections left open"
            time.sleep(0.05)


def test_a_postgres_warehouse_keeps_the_lake_views_in_the_data_directory(tmp_path, monkeypatch):
    """With ``ESP_WAREHOUSE_URL`` the lake views still go to the data directory's DuckDB file, not to a path
    relative to wherever the process happens to run."""
    from esp_warehouse import environment as resources_setup
    from esp_warehouse.assets.landing import views_database

    monkeypatch.setenv("ESP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"postgresql://esp:{PASSWORD}@db.internal:5432/warehouse")
    res = resources_setup.warehouse_resource()
    assert res.url is not None
    assert views_database(res) == str(tmp_path / "warehouse.duckdb")
