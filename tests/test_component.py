"""``EspWarehouseComponent``: the declarations in a ``defs.yaml``, loaded as Dagster loads a defs folder; listed and
scaffolded by ``dg``; a scaffolded project passes ``dg check defs`` as it is."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster.components.testing import DefsFolderSandbox

from esp_warehouse import EspWarehouseComponent

ROOT = Path(__file__).resolve().parents[1]
DG = str(Path(sys.executable).parent / "dg")
TYPE = "esp_warehouse.component.EspWarehouseComponent"


DEFS_YAML = f"""\
type: {TYPE}
attributes:
  sandbox_dir: {{sandbox}}
  syncs:
    - name: team_people
      provider: sendpulse
      book: Team people
      source: {{{{table: crm.people}}}}
      fields: {{{{first_name: first_name}}}}
  campaigns:
    - name: welcome
      provider: sendpulse
      sync: team_people
      subject: Welcome {{{{{{{{ first_name }}}}}}}}  # the provider's placeholder, kept as written
      sender_name: Team
      sender_email: team@example.com
      html_file: mail/welcome.html  # beside defs.yaml, whatever the working directory
      send_at: "2030-01-01T09:00:00"
  automation: {{{{main_cron: "0 7 * * *"}}}}
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A DuckDB warehouse holding the team's table, named by ESP_WAREHOUSE_URL; no ESP_SANDBOX_DIR."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute("CREATE TABLE crm.people (email VARCHAR, first_name VARCHAR)")
        con.execute("INSERT INTO crm.people VALUES ('ann@example.com', 'Ann'), ('bob@example.com', 'Bob')")
    monkeypatch.delenv("ESP_SANDBOX_DIR", raising=False)  # the component's sandbox_dir alone decides
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    monkeypatch.setenv("ESP_DATA_DIR", str(tmp_path / "data"))
    return warehouse


def write_component(box: DefsFolderSandbox, text: str, name: str = "esp") -> Path:
    folder = box.defs_folder_path / name
    (folder / "mail").mkdir(parents=True)
    (folder / "mail" / "welcome.html").write_text("<p>Hello {{ first_name }}</p>", encoding="utf-8")
    (folder / "defs.yaml").write_text(text, encoding="utf-8")
    return folder


def test_inline_declarations_load_and_a_sync_runs_on_the_sandbox_of_sandbox_dir(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "sandbox_state"
    folder = write_component(defs_folder, DEFS_YAML.format(sandbox=state))
    with defs_folder.load_component_and_build_defs(defs_path=folder) as (component, defs):
        assert isinstance(component, EspWarehouseComponent)
        keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
        assert {"warehouse/crm__people", "sendpulse/books/team_people", "lake/sendpulse/book_members"} <= keys
        assert any(k.startswith("sendpulse/campaigns/welcome") for k in keys), keys
        decls = component.declarations(folder)
        assert decls.automation.main_cron == "0 7 * * *"
        assert decls.campaigns[0].subject == "Welcome {{ first_name }}"

        job = defs.resolve_implicit_global_asset_job_def()
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(["sendpulse", "books", "team_people"])]
            )
        assert result.success
    assert (state / "sendpulse.json").is_file()  # the sandbox account's state is where defs.yaml says
    with duckdb.connect(str(env), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM esp.sync_state WHERE status = 'synced'").fetchone() == (2,)


def test_sandbox_dir_with_real_credentials_in_the_environment_refuses_to_load(
    env: Path, defs_folder: DefsFolderSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SENDPULSE_CLIENT_ID", "id")
    monkeypatch.setenv("SENDPULSE_CLIENT_SECRET", "secret")
    folder = write_component(defs_folder, DEFS_YAML.format(sandbox=tmp_path / "s"))
    with pytest.raises(Exception, match=BUILD_ERROR) as caught, defs_folder.load_component_and_build_defs(folder):
        pass
    assert "sandbox_dir in defs.yaml asks for the sandboxes but SENDPULSE_CLIENT_ID" in chain(caught.value)


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        ("      colour: red\n", "syncs[0] (team_people) field colour: Extra inputs are not permitted"),
        ("      mode: mirrors\n", "syncs[0] (team_people) field mode: Input should be 'insert'"),
    ],
    ids=["unknown field", "bad mode"],
)
def test_a_yaml_mistake_names_the_file_the_entry_and_the_field(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path, mistake: str, expected: str
) -> None:
    text = DEFS_YAML.format(sandbox=tmp_path / "s").replace(
        "      fields: {first_name: first_name}\n", f"      fields: {{first_name: first_name}}\n{mistake}"
    )
    folder = write_component(defs_folder, text)
    with pytest.raises(Exception, match=BUILD_ERROR) as caught, defs_folder.load_component_and_build_defs(folder):
        pass
    message = chain(caught.value)
    assert f"{folder / 'defs.yaml'}: {expected}" in message, message


def test_declarations_file_is_read_relative_to_the_defs_yaml_folder(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    folder = defs_folder.defs_folder_path / "esp"
    folder.mkdir()
    (folder / "esp.yaml").write_text(
        "syncs:\n  - {name: a, provider: pakat, book: A, source: {table: crm.people}}\n", encoding="utf-8"
    )
    (folder / "defs.yaml").write_text(
        f"type: {TYPE}\nattributes:\n  declarations_file: esp.yaml\n  sandbox_dir: {tmp_path / 's'}\n",
        encoding="utf-8",
    )
    with defs_folder.load_component_and_build_defs(defs_path=folder) as (_, defs):
        assert dg.AssetKey(["pakat", "books", "a"]) in set(defs.resolve_all_asset_keys())


TRANSLATED = """\
  translation:
    key: "crm/{{ sync.name }}"
    group_name: crm_syncs
    tags: {team: growth}
    description: "{{ sync.book }} from {{ spec.deps[0].asset_key.to_user_string() }}"
post_processing:
  assets:
    - target: "*"
      attributes:
        metadata: {oncall: data-platform}
"""


def test_translation_moves_a_sync_asset_and_everything_follows_it(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    folder = write_component(defs_folder, DEFS_YAML.format(sandbox=tmp_path / "s") + TRANSLATED)
    key = dg.AssetKey(["crm", "team_people"])
    with defs_folder.load_component_and_build_defs(defs_path=folder) as (component, defs):
        assert isinstance(component, EspWarehouseComponent)
        graph = defs.resolve_asset_graph()
        assert dg.AssetKey(["sendpulse", "books", "team_people"]) not in graph.get_all_asset_keys()
        node = graph.get(key)
        assert node.group_name == "crm_syncs"
        assert node.tags["team"] == "growth"
        assert node.description == "Team people from warehouse/crm__people"
        assert node.metadata["esp/sync"] == "team_people"  # the default spec's own attributes stay
        assert node.metadata["oncall"] == "data-platform"  # Dagster's post_processing of defs.yaml
        guard = dg.AssetKey(["sendpulse", "campaign_guards", "welcome"])
        assert key in graph.get(guard).parent_keys  # the campaign's guards wait for the moved sync
        assert {c.name for c in graph.asset_check_keys if c.asset_key == key} >= {"rejected_pct", "no_pending_rows"}
        assert key in defs.resolve_job_def("sendpulse_sync_and_land").asset_layer.selected_asset_keys
        assert component.location.sync_keys == {"team_people": key}
        with dg.instance_for_test() as instance:
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, asset_selection=[key]
            )
        assert result.success
        assert result.asset_materializations_for_node("team_people")[0].asset_key == key


def test_a_translation_that_gives_two_syncs_one_key_names_them(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    text = DEFS_YAML.format(sandbox=tmp_path / "s").replace(
        "  campaigns:",
        "    - {name: more_people, provider: pakat, book: More, source: {table: crm.people}}\n  campaigns:",
    )
    folder = write_component(defs_folder, text + '  translation: {key: "crm/all"}\n')
    with pytest.raises(Exception, match=BUILD_ERROR) as caught, defs_folder.load_component_and_build_defs(folder):
        pass
    assert "syncs team_people and more_people have one asset key, crm/all" in chain(caught.value)


TEAM_B = f"""\
type: {TYPE}
attributes:
  syncs:
    - name: vip_people
      provider: sendpulse
      book: VIP people
      source: {{sql: "SELECT * FROM crm.people WHERE first_name = 'Ann'"}}
  translation: {{group_name: team_b}}
"""


def test_entries_of_one_defs_folder_make_one_location_each_with_its_own_translation(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    write_component(defs_folder, DEFS_YAML.format(sandbox=state), name="team_a")
    (defs_folder.defs_folder_path / "team_b").mkdir()
    (defs_folder.defs_folder_path / "team_b" / "defs.yaml").write_text(TEAM_B, encoding="utf-8")
    with defs_folder.build_all_defs() as defs:
        graph = defs.resolve_asset_graph()
        vip = dg.AssetKey(["sendpulse", "books", "vip_people"])
        team = dg.AssetKey(["sendpulse", "books", "team_people"])
        assert graph.get(vip).group_name == "team_b"  # team_b's translation, on team_b's sync only
        assert graph.get(team).group_name != "team_b"
        # one job per provider account, over the syncs of both entries; one resource per account
        assert {vip, team} <= defs.resolve_job_def("sendpulse_sync_and_land").asset_layer.selected_asset_keys
        with dg.instance_for_test() as instance:
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                instance=instance, asset_selection=[vip, team]
            )
        assert result.success
    assert (state / "sendpulse.json").is_file()  # team_a's sandbox_dir is the location's
    with duckdb.connect(str(env), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM esp.sync_state GROUP BY book_id ORDER BY 1").fetchall()
    assert rows == [(1,), (2,)]  # VIP people: Ann; Team people: Ann and Bob


def _with(text: str, attribute: str) -> str:
    return text.replace("attributes:", f"attributes:\n  {attribute}", 1)


RATE = "accounts: {{sendpulse: {{provider: sendpulse, requests_per_second: {}}}}}"


@pytest.mark.parametrize(
    ("team_a", "team_b", "expected"),
    [
        (DEFS_YAML, DEFS_YAML.format(sandbox="other"), "sync name 'team_people' is declared twice"),
        (DEFS_YAML, _with(TEAM_B, "sandbox_dir: elsewhere"), "sandbox_dir differs between"),
        (DEFS_YAML, _with(TEAM_B, "automation: {main_cron: '0 9 * * *'}"), "automation is given differently in"),
        (
            _with(DEFS_YAML, RATE.format(2).replace("{", "{{").replace("}", "}}")),
            _with(TEAM_B, RATE.format(1)),
            "declare account 'sendpulse' differently",
        ),
    ],
)
def test_entries_that_contradict_each_other_are_refused_naming_both_files(
    env: Path, defs_folder: DefsFolderSandbox, tmp_path: Path, team_a: str, team_b: str, expected: str
) -> None:
    write_component(defs_folder, team_a.format(sandbox=tmp_path / "s"), name="team_a")
    write_component(defs_folder, team_b, name="team_b")
    with pytest.raises(Exception, match=BUILD_ERROR) as caught, defs_folder.build_all_defs():
        pass
    message = chain(caught.value)
    assert expected in message
    assert "team_b" in message


BUILD_ERROR = "Error while building definitions"


def chain(exc: BaseException | None) -> str:
    """Every message of an exception and its causes (Dagster wraps a component's error in its own, which names
    the defs.yaml in the tree of the defs folder)."""
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def dg_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESP_", "SENDPULSE_", "PAKAT_", "LITESTARTUP_"))}
    env.update({"ESP_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path), "COLUMNS": "200"})
    return env


def run_dg(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([DG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"dg {' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_dg_lists_the_component(tmp_path: Path) -> None:
    assert TYPE in run_dg(["list", "components", "--json"], ROOT, dg_env(tmp_path))


PROJECT = """\
[project]
name = "team-project"
version = "0.0.1"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "team_project"
"""

DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


@pytest.mark.slow
def test_a_scaffolded_defs_yaml_passes_dg_check_defs_as_it_is(tmp_path: Path) -> None:
    project = tmp_path / "team_project"
    (project / "team_project" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PROJECT, encoding="utf-8")
    (project / "team_project" / "__init__.py").write_text("", encoding="utf-8")
    (project / "team_project" / "defs" / "__init__.py").write_text("", encoding="utf-8")
    (project / "team_project" / "definitions.py").write_text(DEFINITIONS, encoding="utf-8")
    env = dg_env(tmp_path)

    run_dg(["scaffold", "defs", TYPE, "esp"], project, env)
    text = (project / "team_project" / "defs" / "esp" / "defs.yaml").read_text(encoding="utf-8")
    assert f"type: {TYPE}" in text
    assert "sandbox_dir: .esp/sandbox" in text
    assert "# Remove sandbox_dir once real credentials are set" in text

    out = run_dg(["check", "defs"], project, env)
    assert "All definitions loaded successfully" in out

    # a second entry (another team's syncs) joins the same code location as it is
    run_dg(["scaffold", "defs", TYPE, "crm-team"], project, env)
    assert "name: crm_team_people" in (project / "team_project" / "defs" / "crm-team" / "defs.yaml").read_text()
    assert "All definitions loaded successfully" in run_dg(["check", "defs"], project, env)
