"""The erasure asset as a user declares it in ``defs.yaml``: one per account, run before the account's syncs,
landing its audit trail in the lake, with a check that fails on a request overdue on any account."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster.components.testing import DefsFolderSandbox

from esp_warehouse import ConfigError, Declarations
from espcore.erasure import email_hash

TYPE = "esp_warehouse.component.EspWarehouseComponent"

DEFS_YAML = f"""\
type: {TYPE}
attributes:
  sandbox_dir: {{sandbox}}
  syncs:
    - {{{{name: people, provider: sendpulse, book: People, source: {{{{table: crm.people}}}}}}}}
    - {{{{name: buyers, provider: pakat, book: Buyers, source: {{{{table: crm.people}}}}}}}}
  erasure:
    source: {{{{table: gdpr.requests}}}}
    max_age_days: {{max_age}}
"""
ERASED = "ann@example.com"


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute("CREATE TABLE crm.people (email VARCHAR, first_name VARCHAR)")
        con.execute(f"INSERT INTO crm.people VALUES ('{ERASED}', 'Ann'), ('bob@example.com', 'Bob')")
        con.execute("CREATE SCHEMA gdpr")
        con.execute("CREATE TABLE gdpr.requests (request_id VARCHAR, email VARCHAR, requested_at TIMESTAMP)")
        con.execute(f"INSERT INTO gdpr.requests VALUES ('r-1', '{ERASED}', TIMESTAMP '2026-01-05 10:00:00')")
    monkeypatch.delenv("ESP_SANDBOX_DIR", raising=False)
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"duckdb:///{path}")
    monkeypatch.setenv("ESP_DATA_DIR", str(tmp_path / "data"))
    return path


def test_erasure_runs_before_the_syncs_and_lands_an_audit_trail(
    warehouse: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    folder = defs_folder.defs_folder_path / "esp"
    folder.mkdir()
    (folder / "defs.yaml").write_text(DEFS_YAML.format(sandbox=tmp_path / "s", max_age=100000), encoding="utf-8")
    erase = {a: dg.AssetKey([a, "erasure"]) for a in ("sendpulse", "pakat")}
    books = {
        "sendpulse": dg.AssetKey(["sendpulse", "books", "people"]),
        "pakat": dg.AssetKey(["pakat", "books", "buyers"]),
    }
    with defs_folder.load_component_and_build_defs(defs_path=folder) as (_, defs):
        graph = defs.resolve_asset_graph()
        for account, key in erase.items():
            assert graph.get(key).group_name == "erasure"
            assert dg.AssetKey(["warehouse", "gdpr__requests"]) in graph.get(key).parent_keys
            assert key in graph.get(books[account]).parent_keys  # erased before the account's sync runs
            assert key in defs.resolve_job_def(f"{account}_sync_and_land").asset_layer.selected_asset_keys
        with dg.instance_for_test() as instance:
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, asset_selection=[*erase.values(), *books.values()]
            )
        assert result.success
        checks = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
        assert checks[(erase["sendpulse"], "erasure_complete")] is True
        meta = result.asset_materializations_for_node("sendpulse_erasure")[0].metadata
        assert meta["completed"].value == 1

    with duckdb.connect(str(warehouse), read_only=True) as con:
        # the syncs ran after the erasure: the person is suppressed, everyone else synced
        rows = con.execute("SELECT provider, pk, status FROM esp.sync_state ORDER BY provider, pk").fetchall()
        assert [(p, pk) for p, pk, status in rows if status == "synced"] == [
            ("pakat", "bob@example.com"),
            ("sendpulse", "bob@example.com"),
        ]
        lake = tmp_path / "data" / "lake" / "dataset=erasures"
        trail = con.execute(
            f"SELECT provider, email_hash, action FROM read_parquet('{lake}/*/*/*.parquet', hive_partitioning = true)"
        ).fetchall()
    assert {(p, a) for p, _, a in trail} >= {("sendpulse", "completed"), ("pakat", "completed")}
    assert {h for _, h, _ in trail} == {email_hash(ERASED)}
    for path in lake.rglob("*.parquet"):  # the address is nowhere in the landed files
        assert ERASED.encode() not in path.read_bytes()


def test_a_request_past_its_deadline_and_not_done_fails_the_check(
    warehouse: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    folder = defs_folder.defs_folder_path / "esp"
    folder.mkdir()
    (folder / "defs.yaml").write_text(DEFS_YAML.format(sandbox=tmp_path / "s", max_age=30), encoding="utf-8")
    with defs_folder.load_component_and_build_defs(defs_path=folder) as (_, defs), dg.instance_for_test() as instance:
        job = defs.resolve_implicit_global_asset_job_def()
        # the check evaluates after the run: done requests are never overdue
        done = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(["pakat", "erasure"])])
        assert [e.passed for e in done.get_asset_check_evaluations()] == [True]
    with duckdb.connect(str(warehouse)) as con:  # a new request, months old, that the provider keeps failing
        con.execute("INSERT INTO gdpr.requests VALUES ('r-2', 'x@example.com', TIMESTAMP '2026-01-01 00:00:00')")
        con.execute("UPDATE esp.erasure_state SET status = 'pending'")
    from espcore import erasure as core

    def fails(provider, emails):
        return [core.ErasureStep(e, "failed", False, detail="HTTP 500 from the provider") for e in emails]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "_erase_at_provider", fails)
        with (
            defs_folder.load_component_and_build_defs(defs_path=folder) as (_, defs),
            dg.instance_for_test() as instance,
        ):
            run = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(["pakat", "erasure"])], raise_on_error=False
            )
    (evaluation,) = run.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["overdue"].value == 2


def test_erasure_names_only_known_accounts() -> None:
    with pytest.raises(ValueError, match="erasure field accounts: no provider or account 'sendpulse_eu'"):
        Declarations.model_validate({"erasure": {"source": {"table": "gdpr.requests"}, "accounts": ["sendpulse_eu"]}})
    decls = Declarations.model_validate(
        {"erasure": {"source": {"table": "gdpr.requests"}, "accounts": ["litestartup"]}}
    )
    assert decls.erasure_accounts() == ["litestartup"]
    assert issubclass(ConfigError, ValueError)
