"""The ``esp-warehouse`` command line: every command on a temporary DuckDB warehouse and the providers' embedded
sandboxes (``ESP_SANDBOX_DIR``), its exit codes and ``--json`` documents, and no secret in its output."""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql as pgsql

from esp_warehouse.cli import cli
from esp_warehouse.cli.common import EXIT_OK, EXIT_PARTIAL, EXIT_PROBLEMS, EXIT_RETRY, EXIT_USAGE
from esp_warehouse.environment import provider_resource
from espcore.campaigns.ledger import Ledger
from espcore.providers.base import EspProvider
from espcore.sync.locks import LockRequest, book_lock
from espcore.warehouse import Warehouse
from tests.pg import PgServer

DECLARATIONS = """\
syncs:
  - name: team_people
    provider: sendpulse
    book: Team people
    source: {table: crm.people}
    fields: {first_name: first_name}
"""
CREDENTIALS = ("SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET", "PAKAT_API_KEY", "LITESTARTUP_API_KEY")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A DuckDB warehouse holding crm.people (two addresses and a malformed one), the declarations naming it, the
    sandboxes in a folder of their own; no credentials. Returns the declarations file."""
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA crm")
        con.execute("CREATE TABLE crm.people (email VARCHAR, first_name VARCHAR)")
        con.execute(
            "INSERT INTO crm.people VALUES ('ann@example.com', 'Ann'), ('bob@example.com', 'Bob'), ('no-at', 'X')"
        )
    declarations = tmp_path / "syncs.yaml"
    declarations.write_text(DECLARATIONS, encoding="utf-8")
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESP_SANDBOX_DIR", str(tmp_path / "sandbox"))
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    monkeypatch.setenv("ESP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ESP_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("ESP_DECLARATIONS", str(declarations))
    return declarations


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def document(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


@pytest.fixture
def sendpulse(env: Path) -> Iterator[EspProvider]:
    """The sandbox account the commands use, seen through a client of its own."""
    adapter = provider_resource("sendpulse").get_provider()
    try:
        yield adapter
    finally:
        adapter.close()


def test_help_everywhere_documents_the_exit_codes() -> None:
    top = run("--help")
    assert top.exit_code == 0
    for command in ("validate", "plan", "sync", "land", "status", "sandbox"):
        assert command in top.stdout
    assert "3 try again later" in " ".join(top.stdout.split())
    for command in ("validate", "plan", "sync", "land", "status"):
        result = run(command, "--help")
        assert result.exit_code == 0, result.output
        assert "--json" in result.stdout
        assert "Exit codes" in result.stdout
    sandbox = run("sandbox", "--help")  # the sandbox command line's own help, under this program name
    assert sandbox.exit_code == 0
    assert "esp-warehouse sandbox" in sandbox.stdout
    assert "serve" in sandbox.stdout


def test_validate_passes_on_the_sandboxes(env: Path) -> None:
    result = run("validate", "--json")
    assert result.exit_code == EXIT_OK, result.output
    doc = document(result)
    assert doc["ok"] is True
    assert doc["problems"] == []
    assert doc["exit_code"] == 0
    assert doc["declarations"] == str(env)
    assert doc["warehouse"]["segments_checked"] == 1
    (account,) = doc["accounts"]
    assert {"account": "sendpulse", "provider": "sendpulse", "target": "sandbox", "ok": True}.items() <= account.items()
    assert "emails left" in account["detail"]  # the balance was read: the credentials work
    text = run("validate")
    assert text.exit_code == 0
    assert "no problems" in text.stdout
    assert "sendpulse (sendpulse): sandbox" in text.stdout


def test_validate_names_file_entry_and_field_of_a_missing_column(env: Path) -> None:
    env.write_text(
        DECLARATIONS.replace("{first_name: first_name}", "{first_name: first_name, country: country}")
        + "    primary_key: mail\n",
        encoding="utf-8",
    )
    result = run("validate", "--json", "--no-providers")
    assert result.exit_code == EXIT_PROBLEMS
    problems = document(result)["problems"]
    assert [(p["file"], p["entry"], p["field"]) for p in problems] == [
        (str(env), "syncs[0] (team_people)", "primary_key"),
        (str(env), "syncs[0] (team_people)", "fields.country"),
    ]
    assert "did you mean 'email'" in problems[0]["message"]
    text = run("validate", "--no-providers")
    assert text.exit_code == EXIT_PROBLEMS
    assert f"{env}: syncs[0] (team_people) field fields.country: column 'country' is not in the segment" in text.stdout


def test_validate_lists_each_declaration_problem_on_its_line(env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "syncs:\n  - {name: a, provider: sendpulse, source: {table: t}}\n"
        "  - {name: b, provider: pakat, book: B, source: {view: v}, mode: sideways}\n",
        encoding="utf-8",
    )
    result = run("validate", "--declarations", str(bad))
    assert result.exit_code == EXIT_PROBLEMS
    lines = result.stdout.splitlines()
    assert f"{bad}: syncs[0] (a) field book: Field required" in lines
    assert any(line.startswith(f"{bad}: syncs[1] (b) field mode: Input should be") for line in lines)
    missing = run("validate", "--json", "-d", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == EXIT_PROBLEMS
    assert document(missing)["problems"][0]["line"] == f"{tmp_path / 'nope.yaml'}: file not found"
    # the other commands cannot start on such a file: a configuration error
    assert run("plan", "a", "-d", str(bad)).exit_code == EXIT_USAGE


def test_plan_is_a_dry_run_that_writes_nothing_at_the_provider(env: Path, sendpulse: EspProvider) -> None:
    result = run("plan", "team_people", "--json")
    assert result.exit_code == EXIT_OK, result.output
    doc = document(result)
    assert doc["dry_run"] is True
    assert doc["outcome"] == "dry_run"
    assert doc["target"] == "sandbox"
    plan = doc["plan"]
    assert plan["adds"] == {"count": 2, "sample": ["a***@example.com", "b***@example.com"]}
    assert plan["changes"]["count"] == plan["removes"]["count"] == plan["suppressed"]["count"] == 0
    assert plan["rejected"]["count"] == 1
    assert plan["rejected"]["reasons"] == {"invalid email syntax": 1}
    assert plan["rejected"]["sample"] == [{"email": "***", "reason": "invalid email syntax", "stage": "validate"}]
    assert sendpulse.find_book("Team people") is None  # not even created
    text = run("plan", "team_people")
    assert text.exit_code == EXIT_OK
    assert "adds: 2; e.g. a***@example.com, b***@example.com" in text.stdout
    assert "rejected: 1 (invalid email syntax: 1)" in text.stdout
    assert "ann@example.com" not in text.output


def test_sync_then_status(env: Path, sendpulse: EspProvider) -> None:
    result = run("sync", "team_people", "--json")
    assert result.exit_code == EXIT_OK, result.output
    doc = document(result)
    assert doc["outcome"] == "success"
    assert doc["counts"]["successful_add"] == 2
    assert doc["rejected"] == 1
    assert Path(doc["rejects_path"]).is_file()  # landed as the asset lands them
    book = sendpulse.find_book("Team people")
    assert book is not None
    assert book.id == doc["book_id"]
    assert sorted(m.email for m in sendpulse.list_members(book.id)) == ["ann@example.com", "bob@example.com"]
    again = document(run("sync", "team_people", "--json"))
    assert again["counts"]["planned_add"] == 0
    assert again["outcome"] == "success"

    ledger = Ledger(Warehouse(str(env.parent / "warehouse.duckdb")))
    ledger.plan(
        "ck-1", provider="sendpulse", book_id=book.id, campaign_name="welcome", occurrence="once", provider_name="w"
    )
    status = run("status", "--json")
    assert status.exit_code == EXIT_OK, status.output
    (campaign,) = document(status)["campaigns"]
    assert {"campaign_name": "welcome", "provider": "sendpulse", "status": "planned"}.items() <= campaign.items()
    (entry,) = document(status)["syncs"]
    assert entry["sync"] == "team_people"
    assert entry["declared"] is True
    assert [r["outcome"] for r in entry["runs"]] == ["success", "success"]
    assert entry["runs"][0]["run_id"] == again["run_id"]
    assert entry["pending"] == 0
    assert entry["rows"] == {"synced": 2}
    assert entry["lock"] is None
    assert any(d["dataset"] == "sync_rejects" for d in document(status)["landing"])
    text = run("status")
    assert "team_people (sendpulse):" in text.stdout
    assert f"book {book.id}: synced 2" in text.stdout
    assert "welcome once (sendpulse): planned" in text.stdout


def test_sync_exits_3_while_another_live_run_holds_the_book(env: Path) -> None:
    assert run("plan", "team_people").exit_code == EXIT_OK  # creates the engine's tables
    wh = Warehouse(str(env.parent / "warehouse.duckdb"))
    lock = book_lock(wh, LockRequest("sendpulse", "Team people", "team_people", "another-run"))
    lock.acquire()
    try:
        result = run("sync", "team_people", "--json")
        assert result.exit_code == EXIT_RETRY, result.output
        doc = document(result)
        assert doc["ok"] is False
        assert "SyncLockedError" in doc["error"]
        assert doc["exit_code"] == EXIT_RETRY
        (entry,) = document(run("status", "--json"))["syncs"]
        assert entry["lock"]["run_id"] == "another-run"
        assert entry["runs"][0]["outcome"] == "failed"
    finally:
        lock.release()
    assert run("sync", "team_people").exit_code == EXIT_OK


def test_sync_exits_4_when_rows_are_left_pending_or_rejected(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from espcore.sync import engine

    def partial(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        result.counts["failed_add"] += 1  # as if the provider had refused a row
        return result

    real = engine.run_sync
    monkeypatch.setattr("esp_warehouse.cli.runs.run_sync", partial)
    result = run("sync", "team_people", "--json")
    assert result.exit_code == EXIT_PARTIAL
    assert document(result)["outcome"] == "partial"


def test_land_an_account(env: Path) -> None:
    result = run("land", "sendpulse", "--json")
    assert result.exit_code == EXIT_OK, result.output
    doc = document(result)
    assert doc["target"] == "sandbox"
    assert [d["dataset"] for d in doc["landed"]] == [
        "balances",
        "campaigns",
        "blacklist",
        "book_members",
        "campaign_stats",
    ]
    assert all(Path(d["location"]).is_file() for d in doc["landed"])
    assert "esp.lake_balances" in doc["views"]
    only = document(run("land", "sendpulse", "--dataset", "balances", "--day", "2026-01-02", "--no-views", "--json"))
    assert [d["dataset"] for d in only["landed"]] == ["balances"]
    assert "views" not in only
    status = document(run("status", "--json"))
    balances = [d for d in status["landing"] if d["dataset"] == "balances"]
    assert balances == [{**balances[0], "account": "sendpulse", "dates": 1, "last_date": doc["day"]}]  # a snapshot
    state = {(s["dataset"], s["account"]): s for s in status["landing_state"]}
    assert state["campaigns", "sendpulse"]["listing_fetched_at"] is not None
    assert run("land", "sendpulse", "--dataset", "delivery_events").exit_code == EXIT_USAGE  # SendPulse logs none
    assert run("land", "sendpulse", "--day", "yesterday").exit_code == EXIT_USAGE


def test_usage_errors_exit_2(env: Path) -> None:
    unknown = run("plan", "nope", "--json")
    assert unknown.exit_code == EXIT_USAGE
    assert document(unknown) == {
        "command": "plan",
        "ok": False,
        "error": "no sync named 'nope' (declared syncs: team_people)",
        "exit_code": EXIT_USAGE,
    }
    assert run("land", "mailchimp").exit_code == EXIT_USAGE
    assert run("sync").exit_code == EXIT_USAGE  # click: missing argument
    assert run("frobnicate").exit_code == EXIT_USAGE


def test_sandbox_commands_are_the_sandbox_command_line(tmp_path: Path) -> None:
    state = tmp_path / "pakat.json"
    reset = run("sandbox", "reset", "pakat", "--state", str(state), "--empty")
    assert reset.exit_code == 0
    assert "pakat: account reset (empty)" in reset.stdout
    assert json.loads(state.read_text())["__initialised__"] is True
    token = run("sandbox", "token", "pakat", "--state", str(state))
    assert token.exit_code == 0
    assert token.stdout.strip()
    assert run("sandbox", "token", "pakat").exit_code == EXIT_USAGE  # argparse's own usage error
    assert run("sandbox").exit_code == EXIT_USAGE


def test_secrets_never_appear_in_the_output(env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret, client_id = "sp-secret-3b1f9c0e7d", "sp-client-9a8b7c6d5e"
    monkeypatch.setenv("SENDPULSE_CLIENT_ID", client_id)
    monkeypatch.setenv("SENDPULSE_CLIENT_SECRET", secret)
    outputs = []
    # real credentials beside ESP_SANDBOX_DIR: refused, naming the variables, never their values
    validate = run("validate", "--json")
    assert validate.exit_code == EXIT_PROBLEMS
    assert "SENDPULSE_CLIENT_SECRET" in validate.stdout
    outputs.append(validate.output)
    plan = run("plan", "team_people")
    assert plan.exit_code == EXIT_USAGE
    outputs.append(plan.output)
    # a warehouse URL with a password, on a port nothing listens on
    password = "wh-pass-5e6f7a8b9c"
    monkeypatch.delenv("SENDPULSE_CLIENT_ID")
    monkeypatch.delenv("SENDPULSE_CLIENT_SECRET")
    monkeypatch.setenv("ESP_WAREHOUSE_URL", f"postgresql://esp:{password}@127.0.0.1:9/esp?connect_timeout=2")
    wh = run("validate", "--json", "--no-providers")
    assert wh.exit_code == EXIT_PROBLEMS
    (problem,) = document(wh)["problems"]
    assert (problem["file"], problem["entry"], problem["field"]) == ("environment", "warehouse", "ESP_WAREHOUSE_URL")
    outputs.append(wh.output)
    status = run("status")
    assert status.exit_code == EXIT_RETRY  # the connection was refused: try again later
    outputs += [status.output, run("sync", "team_people", "--json").output]
    for text in outputs:
        assert secret not in text
        assert client_id not in text
        assert password not in text


@pytest.mark.postgres
def test_validate_sync_and_status_on_a_postgres_warehouse(
    env: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Column names are exact on PostgreSQL; the password of the URL is never shown."""
    name = f"cli_{uuid.uuid4().hex[:12]}"
    with pg_server.admin() as con:
        con.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        with psycopg.connect(pg_server.url(name), autocommit=True) as con:
            con.execute("CREATE SCHEMA crm")
            con.execute('CREATE TABLE crm.people (email text, "First_Name" text)')
            con.execute("INSERT INTO crm.people VALUES ('ann@example.com', 'Ann'), ('bob@example.com', 'Bob')")
        monkeypatch.setenv("ESP_WAREHOUSE_URL", pg_server.url(name))
        problems = document(run("validate", "--json", "--no-providers"))["problems"]
        assert [(p["field"], p["message"]) for p in problems] == [
            (
                "fields.first_name",
                "column 'first_name' is not in the segment (its columns: email, First_Name); "
                "did you mean 'First_Name'?",
            )
        ]
        env.write_text(DECLARATIONS.replace("{first_name: first_name}", "{first_name: First_Name}"), encoding="utf-8")
        assert run("validate").exit_code == EXIT_OK
        synced = run("sync", "team_people", "--json")
        assert synced.exit_code == EXIT_OK, synced.output
        (entry,) = document(run("status", "--json"))["syncs"]
        assert entry["runs"][0]["outcome"] == "success"
        assert entry["rows"] == {"synced": 2}
        for result in (synced, run("status"), run("validate")):
            assert pg_server.password not in result.output
    finally:
        with pg_server.admin() as con:
            con.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


def test_the_installed_entry_point() -> None:
    script = Path(sys.executable).parent / "esp-warehouse"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "validate" in proc.stdout
    assert "Exit codes" in proc.stdout
