"""Adopting the package as a user would: build the wheel and install it into a fresh virtual environment outside the
repository, then both ways a team adopts it, with Dagster's own command lines:

* a minimal ``dg`` project: ``dg list components`` shows the component, ``dg scaffold defs`` writes its
  ``defs.yaml``, ``dg check defs`` passes, and the scaffolded sync materialises against a sandbox;
* a declarations file plus a three-line definitions module on the library's public surface: a sync and the
  landing snapshots materialise against a sandbox."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from tests.test_component import DEFINITIONS as DG_DEFINITIONS
from tests.test_component import PROJECT as DG_PYPROJECT
from tests.test_component import TYPE

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DECLARATIONS = """\
syncs:
  - name: team_people
    provider: sendpulse
    book: Team people
    source: {table: crm.people}
    fields: {first_name: first_name}
"""

DEFINITIONS = """\
from esp_warehouse import build_location, build_resources, load_declarations

declarations = load_declarations()  # the file ESP_DECLARATIONS names
defs = build_location(declarations, build_resources(declarations)).defs
"""


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(found).exists(), "uv is installed by the test command's bootstrap"
    return found


def component_project(venv: Path, project: Path, warehouse: Path, env: dict[str, str]) -> None:
    """A dg project in the fresh environment: list, scaffold, check, then materialise the scaffolded sync."""
    package = project / "team_project"
    (package / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(DG_PYPROJECT, encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "defs" / "__init__.py").write_text("", encoding="utf-8")
    (package / "definitions.py").write_text(DG_DEFINITIONS, encoding="utf-8")
    here = {**env, "PYTHONPATH": str(project)}
    here.pop("ESP_SANDBOX_DIR")  # the scaffolded defs.yaml says sandbox_dir itself
    dg_cli = str(venv / "bin" / "dg")
    assert TYPE in run([dg_cli, "list", "components"], cwd=project, env=here).stdout
    run([dg_cli, "scaffold", "defs", TYPE, "esp"], cwd=project, env=here)
    assert "sandbox_dir:" in (package / "defs" / "esp" / "defs.yaml").read_text(encoding="utf-8")
    run([dg_cli, "check", "defs"], cwd=project, env=here)
    dagster = str(venv / "bin" / "dagster")
    run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "team_project.definitions",
            "--select",
            "sendpulse/books/esp_people",
        ],
        cwd=project,
        env=here,
    )
    assert (project / ".esp" / "sandbox").is_dir()  # the sandbox state went where defs.yaml said


def test_the_wheel_installs_alone_and_runs_a_sync_and_a_landing_in_a_fresh_project(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([uv(), "build", "--wheel", "--out-dir", str(dist), str(ROOT)])
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"espcore", "esp_warehouse"}  # nothing generic

    project = tmp_path / "team_project"  # outside the repository
    project.mkdir()
    venv = project / ".venv"
    run([uv(), "venv", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    run([uv(), "pip", "install", "--python", str(python), str(wheel)])
    (project / "esp.yaml").write_text(DECLARATIONS, encoding="utf-8")
    (project / "definitions.py").write_text(DEFINITIONS, encoding="utf-8")

    warehouse = project / "warehouse.duckdb"  # the team's warehouse, with its own schema and table
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute("CREATE TABLE crm.people (email VARCHAR, first_name VARCHAR)")
        con.execute("INSERT INTO crm.people VALUES ('ann@example.com', 'Ann'), ('bob@example.com', 'Bob')")
        con.execute("CREATE TABLE people (email VARCHAR, name VARCHAR)")  # what the scaffolded example reads
        con.execute("INSERT INTO people VALUES ('cid@example.com', 'Cid')")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESP_", "SENDPULSE_", "PAKAT_", "LITESTARTUP_"))}
    env.update(
        {
            "ESP_DECLARATIONS": str(project / "esp.yaml"),
            "ESP_WAREHOUSE_URL": f"duckdb:///{warehouse}",
            "ESP_SANDBOX_DIR": str(project / "sandbox"),  # explicitly on the sandboxes
            "ESP_DATA_DIR": str(project / "data"),
            "DAGSTER_HOME": str(project / "dagster_home"),
            "PYTHONPATH": "",
        }
    )
    (project / "dagster_home").mkdir()
    dagster = str(venv / "bin" / "dagster")
    component_project(venv, project / "dg_project", warehouse, env)

    listing = run([dagster, "asset", "list", "-f", "definitions.py"], cwd=project, env=env).stdout
    assert "sendpulse/books/team_people" in listing
    snapshots = ",".join(f"lake/sendpulse/{d}" for d in ("balances", "campaigns", "blacklist", "book_members"))
    for selection in ("sendpulse/books/team_people", snapshots):
        run([dagster, "asset", "materialize", "-f", "definitions.py", "--select", selection], cwd=project, env=env)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        synced = con.execute("SELECT count(*) FROM esp.sync_state WHERE status = 'synced'").fetchone()
        people = con.execute("SELECT count(*) FROM crm.people").fetchone()
    assert synced == (3,)  # the component's example sync (1) and the definitions module's (2)
    assert people == (2,)  # the team's table untouched
    landed = list((project / "data" / "lake").glob("dataset=book_members/provider=sendpulse/date=*/*.parquet"))
    assert len(landed) == 1
