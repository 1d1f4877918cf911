"""The code location loads, declares what the YAML says, and explains configuration mistakes."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from esp_warehouse.config import ConfigError, load_declarations

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_and_list_every_asset():
    from pipelines.definitions import DECLARATIONS, defs

    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for decl in DECLARATIONS.syncs:
        assert any(k.startswith(f"{decl.provider}/books/") for k in keys)
    for provider in ("sendpulse", "pakat", "litestartup"):
        assert f"lake/{provider}/balances" in keys
    job = defs.resolve_job_def("main")
    assert job is not None
    # production never builds the demo's tables: the segments are external assets it only reads
    assert "warehouse/customers" not in keys
    assert "demo_warehouse" not in {n.name for n in job.graph.node_defs}
    externals = {k.to_user_string() for k in defs.resolve_asset_graph().external_asset_keys}
    assert {"warehouse/segment_active_eu", "warehouse/litestartup_enterprise_segment"} <= externals
    # the segments' blocking source checks run in the main job before the syncs
    assert any(n.endswith("_source_ok") for n in job.graph.node_dict)


def test_the_demo_location_adds_the_demo_warehouse_on_sandboxes(monkeypatch, tmp_path):
    from pipelines.demo_location import build_demo_location

    monkeypatch.setenv("PAKAT_API_KEY", "real-looking-key")  # ignored by the demo
    location = build_demo_location(tmp_path)
    dg.Definitions.validate_loadable(location.defs)
    keys = {k.to_user_string() for k in location.defs.resolve_asset_graph().get_all_asset_keys()}
    assert "warehouse/customers" in keys
    for provider in ("sendpulse", "pakat", "litestartup"):
        resources = location.defs.resources
        assert resources is not None
        resource = resources[provider]
        assert resource.sandbox_state is not None  # type: ignore[attr-defined]
        assert Path(resource.sandbox_state).is_relative_to(tmp_path)  # type: ignore[attr-defined]


def _load_production(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    return subprocess.run(
        [sys.executable, "-c", "import pipelines.definitions"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


CONFIG_VARS = (
    "SENDPULSE_CLIENT_ID",
    "SENDPULSE_CLIENT_SECRET",
    "PAKAT_API_KEY",
    "LITESTARTUP_API_KEY",
    "ESP_SANDBOX_DIR",
)


def test_production_without_credentials_fails_at_load_and_says_what_to_set():
    """A forgotten variable never turns a real deployment into a silent no-op against an embedded sandbox."""
    proc = _load_production({"SENDPULSE_CLIENT_ID": "id", "SENDPULSE_CLIENT_SECRET": "secret", "PAKAT_API_KEY": "k"})
    assert proc.returncode != 0
    assert "MissingCredentialsError" in proc.stderr
    assert "litestartup is used by sync litestartup_enterprise" in proc.stderr
    assert "LITESTARTUP_API_KEY" in proc.stderr
    assert "ESP_SANDBOX_DIR" in proc.stderr
    assert "secret" not in proc.stderr.replace("SENDPULSE_CLIENT_SECRET", "")


def test_production_loads_with_credentials_or_an_explicit_sandbox(tmp_path):
    real = {
        "SENDPULSE_CLIENT_ID": "i",
        "SENDPULSE_CLIENT_SECRET": "s",
        "PAKAT_API_KEY": "k",
        "LITESTARTUP_API_KEY": "l",
    }
    assert _load_production(real).returncode == 0
    assert _load_production({"ESP_SANDBOX_DIR": str(tmp_path)}).returncode == 0
    mixed = _load_production({"ESP_SANDBOX_DIR": str(tmp_path), "PAKAT_API_KEY": "k"})
    assert mixed.returncode != 0
    assert "never mixes a real account with an emulator" in mixed.stderr


def test_the_deployment_chooses_its_declarations_file(tmp_path):
    """ESP_DECLARATIONS names a file outside the package: only what it declares is loaded, and a provider it does
    not use needs no credentials."""
    (tmp_path / "ours.yaml").write_text(
        "syncs:\n"
        "  - name: crm_people\n"
        "    provider: pakat\n"
        "    book: CRM people\n"
        "    source: {table: crm.people}\n"
        "    fields: {FNAME: first_name}\n",
        encoding="utf-8",
    )
    probe = "import pipelines.definitions as d; print(sorted(d.PROVIDERS_IN_USE), list(d.SEGMENT_KEYS))"
    env = {**{k: v for k, v in os.environ.items() if k not in CONFIG_VARS}, "PAKAT_API_KEY": "k"}
    env["ESP_DECLARATIONS"] = str(tmp_path / "ours.yaml")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "['pakat'] ['crm_people']"


def test_an_explicit_sandbox_is_the_only_way_to_a_sandbox(monkeypatch, tmp_path):
    from esp_warehouse.environment import MissingCredentialsError, provider_resource

    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentialsError, match="PAKAT_API_KEY"):
        provider_resource("pakat", ["sync x"])
    monkeypatch.setenv("ESP_SANDBOX_DIR", str(tmp_path))
    resource = provider_resource("pakat")
    assert resource.sandbox_state == str(tmp_path.resolve() / "pakat.json")


def test_definitions_load_without_deprecation_warnings():
    # every deprecation is an error, except the one Dagster's own defs.yaml reader raises (pydantic's parse_obj_as)
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning); "
        "warnings.filterwarnings('ignore', '`parse_obj_as` is deprecated', DeprecationWarning, 'dagster'); "
        "import pipelines.definitions"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "syncs:\n  - name: a\n    provider: mailchimp\n    book: B\n    source: {view: v}\n",
            "syncs[0] (a) field provider",
        ),
        ("syncs:\n  - name: a\n    provider: pakat\n    book: B\n    source: {view: v, sql: x}\n", "exactly one"),
        ("syncs:\n  - name: a\n    provider: pakat\n    book: B\n    source: {view: v}\n    mdoe: mirror\n", "mdoe"),
        ("syncs: [\n", "not valid YAML"),
        (
            "syncs:\n  - {name: a, provider: pakat, book: B, source: {view: v}}\n"
            "  - {name: a, provider: pakat, book: C, source: {view: v}}\n",
            "declared twice",
        ),
    ],
)
def test_yaml_mistakes_name_the_file_entry_and_field(tmp_path, yaml_text, expected):
    path = tmp_path / "syncs.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_declarations(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_half_configured_provider_is_an_error(monkeypatch):
    from esp_warehouse.environment import MissingCredentialsError, provider_resource

    monkeypatch.setenv("SENDPULSE_CLIENT_ID", "abc")
    monkeypatch.delenv("SENDPULSE_CLIENT_SECRET", raising=False)
    with pytest.raises(MissingCredentialsError, match="SENDPULSE_CLIENT_SECRET"):
        provider_resource("sendpulse")


def test_real_credentials_select_the_real_api(monkeypatch):
    from esp_warehouse.environment import provider_resource

    monkeypatch.delenv("ESP_SANDBOX_DIR", raising=False)
    monkeypatch.setenv("SENDPULSE_CLIENT_ID", "abc")
    monkeypatch.setenv("SENDPULSE_CLIENT_SECRET", "def")
    monkeypatch.setenv("PAKAT_API_KEY", "k")
    for res in (provider_resource("sendpulse"), provider_resource("pakat")):
        assert res.sandbox_state is None
        assert res.target_url().startswith("https://")


def test_a_sync_carries_its_lineage_ownership_and_the_warehouse_engine(monkeypatch, tmp_path):
    """deps (e.g. the dbt model behind the segment), owners, tags and group from the YAML; the kind is the engine
    the warehouse resource names; the provider's job still holds a sync in a group of its own."""
    from esp_warehouse import Declarations, build_location, build_resources, providers_in_use

    decls = Declarations.model_validate(
        {
            "syncs": [
                {
                    "name": "crm_people",
                    "provider": "pakat",
                    "book": "CRM people",
                    "source": {"view": "analytics.active_people"},
                    "deps": ["dbt/analytics/active_people"],
                    "owners": ["team:crm", "ana@example.com"],
                    "tags": {"domain": "crm"},
                    "group_name": "crm_syncs",
                }
            ]
        }
    )
    monkeypatch.setenv("ESP_SANDBOX_DIR", str(tmp_path / "sandbox"))
    for url, kind in (("postgresql://esp:pw@db.internal:5432/wh", "postgres"), (None, "duckdb")):
        if url is None:
            monkeypatch.delenv("ESP_WAREHOUSE_URL", raising=False)
        else:
            monkeypatch.setenv("ESP_WAREHOUSE_URL", url)
        defs = build_location(decls, build_resources(providers_in_use(decls))).defs
        graph = defs.resolve_asset_graph()
        key = dg.AssetKey(["pakat", "books", "crm_people"])
        node = graph.get(key)
        assert node.kinds == {"pakat", kind}
        assert node.owners == ["team:crm", "ana@example.com"]
        assert node.tags.get("domain") == "crm"
        assert node.group_name == "crm_syncs"
        assert dg.AssetKey(["dbt", "analytics", "active_people"]) in node.parent_keys
        assert dg.AssetKey(["warehouse", "analytics__active_people"]) in node.parent_keys
        assert key in defs.resolve_job_def("pakat_sync_and_land").asset_layer.selected_asset_keys
    with pytest.raises(ValueError, match="'/'-separated"):
        Declarations.model_validate({"syncs": [{**decls.syncs[0].model_dump(), "deps": ["a//b"]}]})
