"""End to end on PostgreSQL: the code location's real ``main`` job on a PostgreSQL warehouse, and on a Dagster
instance whose run and event-log storage is PostgreSQL (``docs/dagster.prod.yaml``).

Each test gets its own database on the session's throwaway server (``tests/pg.py``), so ``pytest -n 2`` runs
them side by side. The resources are the ones ``esp_warehouse.environment.build_resources()`` makes for the
environment (sandboxes under a temporary ``ESP_DATA_DIR``), passed to the job as overrides; only LiteStartup's
free-plan pace (client 1 request/s, sandbox 60 requests/min) is lifted so a full run fits in seconds.
"""

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, LiteralString

import dagster as dg
import duckdb
import psycopg
import pytest
from psycopg import sql as pgsql

from esp_warehouse import environment as resources_setup
from esp_warehouse.assets.campaigns import launch_key
from esp_warehouse.assets.landing import VIEWS_KEY
from esp_warehouse.assets.subscribers import book_key
from esp_warehouse.config import providers_in_use
from esp_warehouse.resources.litestartup import LiteStartupResource
from espcore.demo import build_demo_warehouse
from espcore.sandbox.embedded import build_sandbox
from espcore.sandbox.server import SandboxServer
from espcore.warehouse import PostgresWarehouse, Warehouse
from pipelines.definitions import DECLARATIONS, PROVIDER_SNAPSHOT_KEYS, defs
from tests.pg import DB_USER, PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROD_INSTANCE_YAML = ROOT / "docs" / "dagster.prod.yaml"
WAREHOUSE_SCHEMA: Final = "analytics"  # the user's schema, through the URL's search_path
OWN_SCHEMA: Final = "esp"  # the product's own tables
REAL_CREDENTIALS = ("SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET", "PAKAT_API_KEY", "LITESTARTUP_API_KEY")
SYNC_KEYS = {d.name: book_key(d) for d in DECLARATIONS.syncs}
LAUNCH_KEYS = {c.name: launch_key(c) for c in DECLARATIONS.campaigns}
SNAPSHOT_KEYS = [k for keys in PROVIDER_SNAPSHOT_KEYS.values() for k in keys]


# -- helpers ---------------------------------------------------------------------------------------------------


@contextmanager
def fresh_database(server: PgServer, prefix: str) -> Iterator[str]:
    """A new, uniquely named database on the server; dropped (connections and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with server.admin() as con:
        con.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        yield name
    finally:
        with server.admin() as con:
            con.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


@contextmanager
def code_location_resources(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, warehouse_url: str | None
) -> Iterator[dict[str, object]]:
    """The resources the production code location makes for ``ESP_DATA_DIR=data_dir`` and
    ``ESP_SANDBOX_DIR=data_dir/sandbox`` (the explicit sandbox configuration; and ``ESP_WAREHOUSE_URL`` when
    given), except that LiteStartup's free-plan pace (client 1 request/s, sandbox 60/min) is lifted: its sandbox
    account, on the same state file, is served by a loopback server without the rate limit and the client is
    unpaced."""
    for name in REAL_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ESP_SANDBOX_DIR", str(data_dir / "sandbox"))
    monkeypatch.delenv("ESP_LAKE_ROOT", raising=False)
    if warehouse_url is None:
        monkeypatch.delenv("ESP_WAREHOUSE_URL", raising=False)
    else:
        monkeypatch.setenv("ESP_WAREHOUSE_URL", warehouse_url)
    resources = resources_setup.build_resources(providers_in_use(DECLARATIONS))
    litestartup = resources["litestartup"]
    assert isinstance(litestartup, LiteStartupResource)
    assert litestartup.sandbox_state is not None
    assert Path(litestartup.sandbox_state).is_relative_to(data_dir)
    Path(litestartup.sandbox_state).parent.mkdir(parents=True, exist_ok=True)
    sandbox = build_sandbox("litestartup", litestartup.sandbox_state, rate_limit=False)
    with SandboxServer(sandbox.app) as server:
        resources["litestartup"] = LiteStartupResource(
            api_key=litestartup.api_key,
            plan=litestartup.plan,
            base_url=server.url + LiteStartupResource.sandbox_path,
            requests_per_second=1000.0,
        )
        yield resources


def today_partition() -> str:
    from datetime import UTC, datetime

    from esp_warehouse.automation import landing_day

    return landing_day(datetime.now(UTC))


def run_main(instance: dg.DagsterInstance, resources: Mapping[str, object]) -> dg.ExecuteInProcessResult:
    """The code location's ``main`` job definition, run in-process with the given resources."""
    result = defs.resolve_job_def("main").execute_in_process(
        instance=instance, resources=resources, raise_on_error=False, partition_key=today_partition()
    )
    failures = [f"{e.step_key}: {e.message}" for e in result.all_events if e.is_failure]
    assert result.success, "main failed:\n" + "\n".join(failures)
    return result


def materialized(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict[str, Any]]:
    """Plain metadata values of every asset materialized in the run, by key."""
    out: dict[dg.AssetKey, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        out[mat.asset_key] = {k: v.value for k, v in mat.metadata.items()}
    return out


def pg_rows(url: str, query: LiteralString, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=10) as con:
        return con.execute(query, params).fetchall()


# -- the main job on a PostgreSQL warehouse ---------------------------------------------------------------------


def test_main_job_on_a_postgres_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_server: PgServer):
    """Segments, syncs, guards, launches, landing and views of the real ``main`` job on PostgreSQL; a second run
    changes nothing and sends nothing."""
    with fresh_database(pg_server, "e2e_wh") as db:
        db_url = pg_server.url(db)
        with psycopg.connect(db_url, autocommit=True) as con:
            con.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(WAREHOUSE_SCHEMA)))
        # the schema through libpq options, as documented in warehouse_from_url
        warehouse_url = f"{db_url}?options=-csearch_path%3D{WAREHOUSE_SCHEMA}"
        data_dir = tmp_path / "data"
        # the user's own data: the customers table and segment views the declarations read
        with PostgresWarehouse(warehouse_url) as user_wh:
            build_demo_warehouse(user_wh)
        with (
            code_location_resources(monkeypatch, data_dir, warehouse_url) as resources,
            dg.instance_for_test() as instance,
        ):
            first = run_main(instance, resources)
            second = run_main(instance, resources)

        # -- first run: every sync added contacts, every campaign was posted once
        mats = materialized(first)
        for name, key in SYNC_KEYS.items():
            md = mats[key]
            assert md["successful_add"] > 0, (name, md)
            assert md["successful_add"] == md["planned_add"], (name, md)
        first_ids: dict[str, str] = {}
        for name, key in LAUNCH_KEYS.items():
            md = mats[key]
            assert md["action"] == "created", (name, md)
            first_ids[name] = str(md["provider_campaign_id"])

        # -- the product's tables live in PostgreSQL, in its own schema; the user's schema holds only the user's
        def tables_of(schema: str) -> set[str]:
            query = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            return {r[0] for r in pg_rows(db_url, query, (schema,))}

        tables = tables_of(OWN_SCHEMA)
        assert {"sync_state", "sync_runs", "sync_lock", "campaign_ledger"} <= tables, tables
        user = tables_of(WAREHOUSE_SCHEMA)
        assert user == {"customers", "segment_active_eu", "segment_trial_users", "segment_all_active"}, user
        assert tables_of("public") == set()
        state = dict(pg_rows(db_url, f"SELECT provider, count(*) FROM {OWN_SCHEMA}.sync_state GROUP BY provider"))
        for decl in DECLARATIONS.syncs:
            assert state.get(decl.provider, 0) > 0, (decl.provider, state)
        runs = pg_rows(db_url, f"SELECT run_id, sync_name, status FROM {OWN_SCHEMA}.sync_runs")
        for run in (first, second):
            assert sorted((n, st) for r, n, st in runs if r == run.run_id) == [
                (n, "success") for n in sorted(SYNC_KEYS)
            ]
        assert len(runs) == 2 * len(SYNC_KEYS), runs
        ledger = pg_rows(
            db_url,
            f"SELECT campaign_name, status, provider_campaign_id, attempts FROM {OWN_SCHEMA}.campaign_ledger",
        )
        assert sorted(r[0] for r in ledger) == sorted(LAUNCH_KEYS), ledger  # one row per campaign: launched once
        for name, status, campaign_id, attempts in ledger:
            assert (status, campaign_id, attempts) == ("sent", first_ids[name], 1), ledger

        # -- second run: nothing to sync, every launch a no-op returning the same provider campaign
        again = materialized(second)
        for name, key in SYNC_KEYS.items():
            md = again[key]
            planned = (md["planned_add"], md["planned_change"], md["planned_remove"], md["write_calls"])
            assert planned == (0, 0, 0, 0), (name, md)
        for name, key in LAUNCH_KEYS.items():
            md = again[key]
            assert (md["action"], str(md["provider_campaign_id"])) == ("noop", first_ids[name]), (name, md)

        # -- landing: today's Parquet files, and the lake views in the data directory's DuckDB file
        for key in SNAPSHOT_KEYS:
            assert key in mats, key
            path = Path(str(mats[key]["path"]))
            assert path.is_file(), (key, path)
            assert path.is_relative_to(data_dir / "lake"), (key, path)
        views_db = Path(str(mats[VIEWS_KEY]["duckdb_path"]))
        assert views_db == data_dir / "warehouse.duckdb"
        with duckdb.connect(str(views_db), read_only=True) as con:
            members = con.execute(
                "SELECT provider, count(*) FROM esp.lake_book_members_latest GROUP BY provider"
            ).fetchall()
            relations = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {p for p, n in members if n > 0} == {d.provider for d in DECLARATIONS.syncs}, members
        assert not relations & tables, relations  # only the lake views: the warehouse itself is PostgreSQL


# -- Dagster's own storage on PostgreSQL -------------------------------------------------------------------------


def test_main_job_on_a_postgres_dagster_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_server: PgServer):
    """``docs/dagster.prod.yaml`` as the instance: the run and its events are stored in PostgreSQL, where a new
    instance (and plain SQL) reads them back."""
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with fresh_database(pg_server, "e2e_dagster") as db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(PROD_INSTANCE_YAML.read_text())
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        for name, value in {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(pg_server.port),
            "DAGSTER_PG_USER": DB_USER,
            "DAGSTER_PG_PASSWORD": pg_server.password,
            "DAGSTER_PG_DB": db,
        }.items():
            monkeypatch.setenv(name, value)

        build_demo_warehouse(Warehouse(tmp_path / "data" / "warehouse.duckdb"))  # the user's data, in DuckDB
        with (
            code_location_resources(monkeypatch, tmp_path / "data", None) as resources,
            dg.DagsterInstance.get() as instance,
        ):
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            result = run_main(instance, resources)
        mats = materialized(result)
        for key in [*SYNC_KEYS.values(), *LAUNCH_KEYS.values()]:
            assert key in mats, key

        # a new instance from the same dagster.yaml reads the run and its materialisations back from PostgreSQL
        with dg.DagsterInstance.from_config(str(home)) as reader:
            run = reader.get_run_by_id(result.run_id)
            assert run is not None
            assert run.job_name == "main"
            assert run.status == dg.DagsterRunStatus.SUCCESS
            for name, key in SYNC_KEYS.items():
                records = reader.fetch_materializations(key, limit=5).records
                assert [r.run_id for r in records] == [result.run_id], (name, records)
                stored = records[0].asset_materialization
                assert stored is not None
                assert stored.metadata["successful_add"].value == mats[key]["successful_add"] > 0, name
            for name, key in LAUNCH_KEYS.items():
                event = reader.get_latest_materialization_event(key)
                assert event is not None, name
                assert event.run_id == result.run_id
                stored = event.asset_materialization
                assert stored is not None
                assert stored.metadata["provider_campaign_id"].value == mats[key]["provider_campaign_id"], name

        # and plain SQL sees Dagster's tables in that database
        db_url = pg_server.url(db)
        assert pg_rows(db_url, "SELECT pipeline_name, status FROM runs WHERE run_id = %s", (result.run_id,)) == [
            ("main", "SUCCESS")
        ]
        stored_mats = pg_rows(
            db_url,
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        )
        assert stored_mats == [(len(result.get_asset_materialization_events()),)]
