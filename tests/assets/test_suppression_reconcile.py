"""The opt-in full suppression read: a job (and its schedule) that re-syncs every book reading all suppressions,
while the other runs skip that read when the provider's signature has not moved."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from esp_warehouse import Declarations, build_location, build_resources

DECLS = {
    "syncs": [{"name": "people", "provider": "sendpulse", "book": "People", "source": {"table": "people"}}],
    "automation": {"suppression_read_cron": "0 3 * * 0"},
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE people AS SELECT 'p' || i || '@example.com' AS email FROM range(20) t(i)")
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"duckdb:///{path}")
    monkeypatch.setenv("ESP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ESP_SANDBOX_DIR", raising=False)
    return path


def test_the_reconcile_job_reads_every_suppression_where_the_others_skip_it(env: Path, tmp_path: Path) -> None:
    decls = Declarations.model_validate(DECLS)
    defs = build_location(decls, build_resources(decls, sandbox=tmp_path / "sandbox")).defs
    schedule = defs.resolve_schedule_def("suppression_reconcile_schedule")
    assert schedule.cron_schedule == "0 3 * * 0"
    key = dg.AssetKey(["sendpulse", "books", "people"])
    reads = []
    with dg.instance_for_test() as instance:
        for job in ("sendpulse_sync_and_land", "sendpulse_sync_and_land", "sendpulse_sync_and_land"):
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, asset_selection=[key])
            reads.append(result.asset_materializations_for_node("people")[0].metadata["suppressions_read"].value)
        reconcile = defs.resolve_job_def("suppression_reconcile").execute_in_process(instance=instance)
        reads.append(reconcile.asset_materializations_for_node("people")[0].metadata["suppressions_read"].value)
    # first run writes; the second reads in full and writes nothing; the third skips; the reconcile reads
    assert reads == ["full", "full", "unchanged", "full"]


def test_without_the_cron_there_is_no_reconcile_job(env: Path, tmp_path: Path) -> None:
    decls = Declarations.model_validate({"syncs": DECLS["syncs"]})
    defs = build_location(decls, build_resources(decls, sandbox=tmp_path / "sandbox")).defs
    with pytest.raises(Exception, match="suppression_reconcile"):
        defs.resolve_job_def("suppression_reconcile")
