"""Several named accounts of one provider (two SendPulse accounts): declared under ``accounts``, each with its own
credentials, resource, assets, sandbox account, sync state, campaign ledger rows and lake partitions."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster.components.testing import DefsFolderSandbox

from esp_warehouse import AccountDecl, ConfigError, Declarations, EspWarehouseComponent
from esp_warehouse.environment import MissingCredentialsError, build_resources, provider_resource

TYPE = "esp_warehouse.component.EspWarehouseComponent"

DEFS_YAML = f"""\
type: {TYPE}
attributes:
  sandbox_dir: {{sandbox}}
  accounts:
    sendpulse_eu: {{{{provider: sendpulse}}}}
    sendpulse_us: {{{{provider: sendpulse, requests_per_second: 5}}}}
  syncs:
    - {{{{name: eu_people, provider: sendpulse_eu, book: People, source: {{{{table: crm.people}}}}}}}}
    - {{{{name: us_people, provider: sendpulse_us, book: People, source: {{{{view: crm.us_people}}}}}}}}
    - {{{{name: all_people, provider: sendpulse, book: People, source: {{{{table: crm.people}}}}}}}}
"""

CREDENTIALS = ("SENDPULSE", "SENDPULSE_EU", "SENDPULSE_US", "EU")


@pytest.fixture
def warehouse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute("CREATE TABLE crm.people (email VARCHAR, region VARCHAR)")
        con.execute(
            "INSERT INTO crm.people VALUES ('ann@example.com', 'eu'), ('bob@example.com', 'eu'), "
            "('cy@example.com', 'us')"
        )
        con.execute("CREATE VIEW crm.us_people AS SELECT * FROM crm.people WHERE region = 'us'")
    for prefix in CREDENTIALS:
        for suffix in ("CLIENT_ID", "CLIENT_SECRET"):
            monkeypatch.delenv(f"{prefix}_{suffix}", raising=False)
    monkeypatch.delenv("ESP_SANDBOX_DIR", raising=False)
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"duckdb:///{path}")
    monkeypatch.setenv("ESP_DATA_DIR", str(tmp_path / "data"))
    return path


def test_two_accounts_of_one_provider_keep_everything_apart(
    warehouse: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "sandbox_state"
    folder = defs_folder.defs_folder_path / "esp"
    folder.mkdir()
    (folder / "defs.yaml").write_text(DEFS_YAML.format(sandbox=state), encoding="utf-8")
    books = {name: dg.AssetKey([name, "books", "people"]) for name in ("sendpulse_eu", "sendpulse_us", "sendpulse")}
    with defs_folder.load_component_and_build_defs(defs_path=folder) as (component, defs):
        assert isinstance(component, EspWarehouseComponent)
        graph = defs.resolve_asset_graph()
        for account, key in books.items():
            assert graph.get(key).kinds >= {"sendpulse", "duckdb"}  # the provider, whatever the account's name
            assert account not in graph.get(key).kinds or account == "sendpulse"
            assert dg.AssetKey(["lake", account, "book_members"]) in graph.get_all_asset_keys()
        assert graph.get(dg.AssetKey(["lake", "sendpulse_eu", "balances"])).kinds == {"sendpulse", "parquet"}
        assert defs.resolve_job_def("sendpulse_eu_sync_and_land") is not None
        resources = defs.resources or {}
        us, eu = resources["sendpulse_us"], resources["sendpulse_eu"]
        assert (us.account, us.requests_per_second) == ("sendpulse_us", 5)
        # what the run log says when the resource starts
        assert eu.describe_target("http://127.0.0.1:1").startswith("sendpulse_eu (sendpulse): SANDBOX")

        job = defs.resolve_implicit_global_asset_job_def()
        landing = [dg.AssetKey(["lake", a, "book_members"]) for a in books]
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(instance=instance, asset_selection=[*books.values(), *landing])
        assert result.success

    # each account is its own sandbox account, holding only what its sync sent
    assert sorted(p.name for p in state.glob("*.json")) == ["sendpulse.json", "sendpulse_eu.json", "sendpulse_us.json"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT provider, count(*) FROM esp.sync_state WHERE status = 'synced' GROUP BY provider ORDER BY 1"
        ).fetchall()
        assert rows == [("sendpulse", 3), ("sendpulse_eu", 3), ("sendpulse_us", 1)]
        lake = tmp_path / "data" / "lake" / "dataset=book_members"
        members = con.execute(
            f"SELECT provider, count(*) FROM read_parquet('{lake}/*/*/data.parquet', hive_partitioning = true) "
            "GROUP BY provider ORDER BY 1"
        ).fetchall()
    assert members == [("sendpulse", 3), ("sendpulse_eu", 3), ("sendpulse_us", 1)]


def test_each_account_reads_its_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for prefix in CREDENTIALS:
        for suffix in ("CLIENT_ID", "CLIENT_SECRET"):
            monkeypatch.delenv(f"{prefix}_{suffix}", raising=False)
    monkeypatch.delenv("ESP_SANDBOX_DIR", raising=False)
    eu = AccountDecl(provider="sendpulse")
    with pytest.raises(MissingCredentialsError, match="SENDPULSE_EU_CLIENT_ID and SENDPULSE_EU_CLIENT_SECRET"):
        provider_resource("sendpulse_eu", ["sync eu_people"], account=eu)
    monkeypatch.setenv("SENDPULSE_EU_CLIENT_ID", "id")
    with pytest.raises(MissingCredentialsError, match="SENDPULSE_EU_CLIENT_SECRET missing"):
        provider_resource("sendpulse_eu", account=eu)
    monkeypatch.setenv("SENDPULSE_EU_CLIENT_SECRET", "secret")
    resource = provider_resource("sendpulse_eu", account=eu)
    assert resource.account_name == "sendpulse_eu"
    assert not resource.is_sandbox
    # the default account is not configured by another account's variables
    with pytest.raises(MissingCredentialsError, match="SENDPULSE_CLIENT_ID"):
        provider_resource("sendpulse")
    # env_prefix names the variables explicitly
    monkeypatch.setenv("EU_CLIENT_ID", "id2")
    monkeypatch.setenv("EU_CLIENT_SECRET", "secret2")
    decls = Declarations.model_validate(
        {
            "accounts": {"sendpulse_eu": {"provider": "sendpulse", "env_prefix": "EU"}},
            "syncs": [{"name": "a", "provider": "sendpulse_eu", "book": "A", "source": {"table": "t"}}],
        }
    )
    built = build_resources(decls)
    assert set(built) == {"sendpulse_eu", "warehouse", "lake"}
    assert built["sendpulse_eu"].client_id.env_var_name == "EU_CLIENT_ID"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"syncs": [{"name": "a", "provider": "sendpulse_eu", "book": "A", "source": {"table": "t"}}]},
            "syncs[0] (a) field provider: no provider or account 'sendpulse_eu' (providers: sendpulse, pakat, "
            "litestartup)",
        ),
        (
            {"accounts": {"pakat": {"provider": "sendpulse"}}},
            "accounts.pakat: an account named like a provider is that provider's account",
        ),
        ({"accounts": {"EU": {"provider": "sendpulse"}}}, "accounts.EU.[key]"),
        ({"accounts": {"eu": {"provider": "mailchimp"}}}, "accounts.eu.provider"),
    ],
    ids=["undeclared account", "account named like another provider", "bad name", "unknown provider"],
)
def test_account_mistakes_are_named(data: dict, expected: str) -> None:
    from esp_warehouse.config import describe_validation_error

    with pytest.raises(Exception) as info:  # noqa: PT011  # pydantic's ValidationError, described below
        Declarations.model_validate(data)
    assert expected in describe_validation_error(info.value, data)  # type: ignore[arg-type]


def test_a_provider_name_that_is_no_account_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no provider or account 'mailchimp'"):
        Declarations().account("mailchimp")
