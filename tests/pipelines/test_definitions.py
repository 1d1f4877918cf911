"""The code location loads, declares what the YAML says, and explains configuration mistakes."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.config import ConfigError, load_declarations

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load_and_list_every_asset():
    from pipelines.definitions import DECLARATIONS, defs

    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for decl in DECLARATIONS.syncs:
        assert any(k.startswith(f"{decl.provider}/books/") for k in keys)
    for provider in ("sendpulse", "pakat", "litestartup"):
        assert f"lake/{provider}/balances" in keys
    assert "warehouse/customers" in keys
    job = defs.resolve_job_def("main")
    assert job is not None


def test_definitions_load_without_deprecation_warnings():
    code = "import warnings; warnings.simplefilter('error', DeprecationWarning); import pipelines.definitions"
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
    from pipelines.resources_setup import MissingCredentialsError, sendpulse_resource

    monkeypatch.setenv("SENDPULSE_CLIENT_ID", "abc")
    monkeypatch.delenv("SENDPULSE_CLIENT_SECRET", raising=False)
    with pytest.raises(MissingCredentialsError, match="SENDPULSE_CLIENT_SECRET"):
        sendpulse_resource()


def test_real_credentials_select_the_real_api(monkeypatch):
    from pipelines.resources_setup import pakat_resource, sendpulse_resource

    monkeypatch.setenv("SENDPULSE_CLIENT_ID", "abc")
    monkeypatch.setenv("SENDPULSE_CLIENT_SECRET", "def")
    monkeypatch.setenv("PAKAT_API_KEY", "k")
    for res in (sendpulse_resource(), pakat_resource()):
        assert res.sandbox_state is None
        assert res.target_url().startswith("https://")
