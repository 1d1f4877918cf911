"""The production definitions pointed at a user's own warehouse never harm it.

A DuckDB file and a PostgreSQL database that already hold the user's ``customers`` table, the segment views the
declarations read, a view of the user's own and even a user table named like one of the product's
(``sync_state``). The production code location is loaded with ``ESP_WAREHOUSE_URL`` naming that warehouse (and
the sandboxes configured explicitly), and every job it defines runs once. Afterwards every relation outside the
product's own schema is exactly as it was — same set of relations, same definitions, same contents — and the
product's tables are all in its own schema.
"""

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg
import pytest

from esp_warehouse.automation import landing_day
from esp_warehouse.config import load_declarations, providers_in_use
from esp_warehouse.location import build_location
from espcore.demo import build_demo_warehouse
from espcore.warehouse import BaseWarehouse, PostgresWarehouse, Warehouse
from pipelines import DEFAULT_DECLARATIONS
from tests.pg import PgServer
from tests.pipelines.test_postgres_e2e import code_location_resources, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OWN = "esp"
USER_SQL = [
    "CREATE VIEW v_user_summary AS SELECT country, count(*) AS n FROM customers GROUP BY country",
    "CREATE TABLE sync_state (note VARCHAR)",  # a user table that shares a name with one of the product's
    "INSERT INTO sync_state VALUES ('the user''s own table')",
    # and tables named like the engine's and the ledger's work tables and the lake views
    "CREATE TABLE esp_sync_rows (note VARCHAR)",
    "INSERT INTO esp_sync_rows VALUES ('not a work table')",
    "CREATE TABLE campaign_ledger (note VARCHAR)",
    "CREATE TABLE lake_blacklist (note VARCHAR)",
]

Snapshot = dict[tuple[str, str], tuple[str, str]]


def duckdb_snapshot(path: Path) -> Snapshot:
    """(schema, name) -> (definition, contents digest) of every table and view outside the own schema."""
    out: Snapshot = {}
    with duckdb.connect(str(path), read_only=True) as con:
        rels = con.execute(
            "SELECT schema_name, table_name, sql FROM duckdb_tables() WHERE schema_name <> ? AND NOT temporary "
            "UNION ALL SELECT schema_name, view_name, sql FROM duckdb_views() WHERE schema_name <> ? "
            "AND NOT internal AND NOT temporary",
            [OWN, OWN],
        ).fetchall()
        for schema, name, sql in rels:
            rows = con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
            out[(schema, name)] = (sql, _digest(rows))
    return out


def pg_snapshot(url: str) -> Snapshot:
    out: Snapshot = {}
    with psycopg.connect(url, autocommit=True) as con:
        rels = con.execute(
            """SELECT n.nspname, c.relname, c.relkind,
                      CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid)
                           ELSE (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                                                   ORDER BY a.attnum)
                                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
                      END
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'v', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s)
                 AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'""",
            [OWN],
        ).fetchall()
        for schema, name, kind, definition in rels:
            rows = con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()  # type: ignore[arg-type]
            out[(schema, name)] = (f"{kind}: {definition}", _digest(rows))
    return out


def _digest(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256("\n".join(sorted(repr(r) for r in rows)).encode()).hexdigest()


def prepare_user_warehouse(wh: BaseWarehouse) -> None:
    build_demo_warehouse(wh)  # the user's customers and segment views (here: the demo's rows)
    with wh.connect() as con:
        for sql in USER_SQL:
            con.execute(sql)


def run_every_job(defs: dg.Definitions) -> list[str]:
    """Run every job of the location once (today's partition where it is partitioned); return their names."""
    ran: list[str] = []
    day = landing_day(datetime.now(UTC))
    with dg.instance_for_test() as instance:
        jobs = sorted(defs.resolve_all_job_defs(), key=lambda j: (j.name != "main", j.name))  # main first
        for job_def in jobs:
            if job_def.name.startswith("__"):
                continue
            partitioned = job_def.partitions_def is not None
            result = job_def.execute_in_process(
                instance=instance, raise_on_error=False, partition_key=day if partitioned else None
            )
            failures = [f"{e.step_key}: {e.message}" for e in result.all_events if e.is_failure]
            assert result.success, f"{job_def.name} failed:\n" + "\n".join(failures)
            ran.append(job_def.name)
    return ran


def check_location(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, url: str, snapshot: Callable[[], Snapshot]
) -> set[str]:
    before = snapshot()
    with code_location_resources(monkeypatch, data_dir, url) as resources:
        decls = load_declarations(default=DEFAULT_DECLARATIONS)
        assert set(providers_in_use(decls)) == {"sendpulse", "pakat", "litestartup"}
        location = build_location(decls, resources)  # what pipelines.definitions builds, with these resources
        ran = run_every_job(location.defs)
    assert {"main", "land_daily", "sendpulse_sync_and_land", "launch_sendpulse_welcome"} <= set(ran), ran
    after = snapshot()
    assert after == before  # same relations, definitions and contents outside the product's own schema
    return set(ran)


def test_every_job_leaves_a_duckdb_users_relations_untouched(tmp_path, monkeypatch):
    path = tmp_path / "user.duckdb"
    prepare_user_warehouse(Warehouse(path))
    check_location(monkeypatch, tmp_path / "data", f"duckdb:///{path}", lambda: duckdb_snapshot(path))
    with duckdb.connect(str(path), read_only=True) as con:
        own = {
            r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [OWN]).fetchall()
        }
        views = {
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = ?", [OWN]).fetchall()
        }
    assert {"sync_state", "sync_plan", "sync_runs", "sync_lock", "sync_changelog", "campaign_ledger"} <= own
    assert "lake_blacklist_latest" in views  # the lake views too live in the own schema


@pytest.mark.postgres
def test_every_job_leaves_a_postgres_users_relations_untouched(tmp_path, monkeypatch, pg_server: PgServer):
    with fresh_database(pg_server, "user_wh") as db:
        url = pg_server.url(db)
        with PostgresWarehouse(url) as wh:
            prepare_user_warehouse(wh)
        check_location(monkeypatch, tmp_path / "data", url, lambda: pg_snapshot(url))
        with psycopg.connect(url) as con:
            own = {
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [OWN]
                ).fetchall()
            }
        assert {"sync_state", "sync_plan", "sync_runs", "sync_lock", "sync_changelog", "campaign_ledger"} <= own
