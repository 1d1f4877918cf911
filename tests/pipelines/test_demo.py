"""The README's first command, as a user runs it: a summary without Dagster's event lines (those go to the run's
log file), every printed number matching what landed and what the warehouse holds, a second run a minute later
that writes and launches nothing and explains every number that moved, and the README quoting both summaries
exactly as the demo prints them."""

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from espcore.sandbox.__main__ import main as sandbox_command

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

RUN = re.compile(r"^run (\S+) \(job main, partition (\S+)\): (SUCCESS|FAILED)$")
LOG = re.compile(r"\(the full event log: (\S+)\)$")
SYNC = re.compile(
    r"^  (\S+/books/\S+)\s+\+(\d+) ~(\d+) -(\d+)\s+\+(\d+) ~(\d+) -(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$"
)
CAMPAIGN = re.compile(r"^  (\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+|-)\s+(\S+)$")
FILES = re.compile(r"^  files: (\S+)$")
DAGSTER_LINE = re.compile(r" - dagster - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2})?")
#: the sync table's columns after the key, and how a move of each is written
SYNC_COLUMNS = ("planned", "synced", "write calls", "rejected", "suppressed", "book rows")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


#: what a production environment may hold: the demo ignores all of it (and says so)
PRODUCTION_ENV = {
    "SENDPULSE_CLIENT_ID": "real-id",
    "SENDPULSE_CLIENT_SECRET": "real-secret",
    "PAKAT_API_KEY": "real-pakat-key",
    "ESP_WAREHOUSE_URL": "postgresql://nobody@db.invalid/warehouse",
}


def run_demo(data: Path) -> str:
    env = {**os.environ, "ESP_DATA_DIR": str(data), **PRODUCTION_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=800
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the terminal gets the summary only: no Dagster event line on either stream
    assert not DAGSTER_LINE.search(proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[:3000]
    return proc.stdout


def normalised(text: str, data: Path) -> list[str]:
    """The summary's lines with what differs from run to run by nature (the data folder's path, run ids, dates,
    clock times) replaced by placeholders, and without the line naming the ignored production settings."""
    text = text.replace(str(data.resolve()), "data").replace(str(data), "data")
    text = TIME.sub("<time>", DAY.sub("<day>", UUID.sub("<run>", text)))
    return [line.rstrip() for line in text.splitlines() if not line.startswith("demo: ignoring")]


def readme_block(marker: str) -> list[str]:
    """The ``text`` block right after ``<!-- demo-output: <marker> -->`` in the README."""
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"<!-- demo-output: {re.escape(marker)} -->\n```text\n(.*?)\n```", text, re.S)
    assert m, f"README.md has no demo-output block {marker!r}"
    return m.group(1).splitlines()


def assert_readme_quotes(marker: str, out: str, data: Path) -> None:
    """The README's excerpt is a run of consecutive lines of the demo's output, character for character (after
    :func:`normalised`)."""
    real = normalised(out, data)
    expected = normalised("\n".join(readme_block(marker)), Path("data"))
    n = len(expected)
    if any(real[i : i + n] == expected for i in range(len(real) - n + 1)):
        return
    start = real.index(expected[0]) if expected[0] in real else 0
    diff = "\n".join(difflib.unified_diff(expected, real[start:], "README.md", "demo output", lineterm=""))
    raise AssertionError(f"the README's {marker!r} excerpt is not what the demo prints:\n{diff}")


def section(out: str, title: str) -> list[str]:
    """The indented lines under a section's header line (the line starting with ``title``)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        body.append(line)
    return [lines[start], *body]


def parse(out: str) -> dict[str, dict[str, str]]:
    """Every number of the summary by its key: the syncs' columns, the campaigns' and the landed rows."""
    found: dict[str, dict[str, str]] = {}
    for line in section(out, "syncs"):
        if m := SYNC.match(line):
            g = m.groups()
            values = [f"+{g[1]} ~{g[2]} -{g[3]}", f"+{g[4]} ~{g[5]} -{g[6]}", *g[7:]]
            found[g[0]] = dict(zip(SYNC_COLUMNS, values, strict=True))
    for line in section(out, "campaigns")[1:]:
        if m := CAMPAIGN.match(line):
            name, provider, launch, campaign, status, recipients, occurrence = m.groups()
            found[f"{provider}/campaigns/{name}"] = {
                "launch": launch,
                "campaign": campaign,
                "status": status,
                "recipients": recipients,
                "occurrence": occurrence,
            }
    landed = section(out, "landed rows")
    providers = landed[0].split()[2:]
    for line in landed[1:]:
        cells = line.split()
        if len(cells) == len(providers) + 1 and cells[0] != "-:":
            for provider, rows in zip(providers, cells[1:], strict=True):
                if rows != "-":
                    found[f"lake/{provider}/{cells[0]}"] = {"rows": rows}
    return found


def moved_section(out: str) -> dict[str, tuple[str, list[str]]]:
    """``what moved since …`` by key: (the moves, the explanation lines)."""
    lines = section(out, "what moved since run")[1:]
    found: dict[str, tuple[str, list[str]]] = {}
    key = ""
    for line in lines:
        if line.startswith("  ") and not line.startswith("   "):
            key, _, moves = line.strip().partition(": ")
            found[key] = (moves, [])
        elif line.startswith("      ") and not found[key][1]:
            found[key] = (f"{found[key][0]} {line.strip()}", [])  # the moves, wrapped
        elif line.startswith("    "):
            found[key][1].append(line.strip())
    return found


def test_demo_summary_matches_the_landed_files_and_a_rerun_explains_what_moved(tmp_path):
    out = run_demo(tmp_path)
    ignoring = [line for line in out.splitlines() if line.startswith("demo: ignoring")]
    assert len(ignoring) == 1, out[:2000]
    assert "SENDPULSE_CLIENT_ID" in ignoring[0]
    assert "ESP_WAREHOUSE_URL" in ignoring[0]
    assert "real-secret" not in out
    run = next(m for m in map(RUN.match, out.splitlines()) if m)
    run_id, day = run.group(1), run.group(2)
    assert run.group(3) == "SUCCESS"

    # the event log is in the file the demo named, not on the terminal
    log = Path(next(m for m in (LOG.search(line) for line in out.splitlines()) if m).group(1))
    assert log == tmp_path / "logs" / f"{run_id}.log"
    events = log.read_text(encoding="utf-8")
    assert len(events.splitlines()) > 100
    assert " - DEBUG - " in events
    assert "RUN_SUCCESS" in events
    assert "SANDBOX at http://127.0.0.1:" in events

    # landed rows: each number is the row count of the file it stands for
    first = parse(out)
    pattern = next(m for m in map(FILES.match, out.splitlines()) if m).group(1)
    for provider in ("sendpulse", "pakat", "litestartup"):
        for dataset in ("campaigns", "campaign_stats", "blacklist", "balances", "book_members"):
            assert f"lake/{provider}/{dataset}" in first, (provider, dataset)
    for provider in ("pakat", "litestartup"):  # the providers that expose delivery logs
        assert f"lake/{provider}/delivery_events" in first
    assert "lake/sendpulse/delivery_events" not in first
    for key, values in first.items():
        if not key.startswith("lake/"):
            continue
        _, provider, dataset = key.split("/")
        path = Path(pattern.replace("<dataset>", dataset).replace("<provider>", provider))
        assert path.is_file(), path
        assert path.is_relative_to(tmp_path), path
        assert day in str(path)
        count = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
        assert count == [(int(values["rows"]),)], key

    # syncs: book rows as the sync state holds them, write calls as the run recorded them
    syncs = {k: v for k, v in first.items() if "/books/" in k}
    assert len(syncs) == 3
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        for key, values in syncs.items():
            provider = key.split("/")[0]
            synced = con.execute(
                "SELECT count(*) FROM esp.sync_state WHERE provider = ? AND status = 'synced'", [provider]
            ).fetchall()
            assert synced == [(int(values["book rows"]),)], key
            (counts,) = con.execute(
                "SELECT counts FROM esp.sync_runs WHERE run_id = ? AND provider = ?", [run_id, provider]
            ).fetchone() or (None,)
            assert counts is not None, key
            assert int(values["write calls"]) == json.loads(counts)["write_calls"] > 0, key
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'esp'").fetchall()}
    assert "views: esp.lake_<dataset> and esp.lake_<dataset>_latest in" in out
    for dataset in ("campaigns", "campaign_stats", "blacklist", "balances", "book_members", "delivery_events"):
        assert f"lake_{dataset}_latest" in views
    campaigns = {k: v for k, v in first.items() if "/campaigns/" in k}
    assert len(campaigns) == 3
    assert {v["launch"] for v in campaigns.values()} == {"created"}
    assert "first run of job main in this data folder" in out
    assert_readme_quotes("first run", out, tmp_path)

    # a minute later, as in the README: the Pakat campaign has sent and its hard bounces are blacklisted. The
    # sandboxes' own clocks move the minute (what the providers do happens in their time), not a sleep
    for state in sorted((tmp_path / "sandbox").glob("*.json")):
        assert sandbox_command(["advance", state.stem, "--state", str(state), "--seconds", "60"]) == 0
    again = run_demo(tmp_path)
    second = parse(again)
    assert second.keys() == first.keys()
    for key in syncs:
        assert second[key]["planned"] == second[key]["synced"] == "+0 ~0 -0", key
        assert second[key]["write calls"] == "0", key
    for key, values in campaigns.items():
        assert second[key]["launch"] == "noop", key
        assert second[key]["campaign"] == values["campaign"], key

    # every number that moved is in "what moved", with at least one line saying why
    explained = moved_section(again)
    for key, values in first.items():
        for column, old in values.items():
            new = second[key][column]
            if new != old:
                assert key in explained, (key, column, old, new)
                moves, why = explained[key]
                assert f"{column} {old} → {new}" in moves, (key, column, moves)
                assert why, key
    assert set(explained) <= set(first), set(explained) - set(first)
    moves, why = explained["pakat/books/trial_users"]
    assert "suppressed 0 → 2" in moves
    assert any("bounced" in line for line in why), why
    assert_readme_quotes("run again", again, tmp_path)


def test_demo_help_prints_help_and_runs_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.demo", "--help"],
        cwd=ROOT,
        env={**os.environ, "ESP_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    assert "--data-dir" in proc.stdout
    assert not (tmp_path / "data").exists()  # nothing ran: no warehouse, no sandbox, no Dagster home


def test_the_readme_quotes_both_demo_summaries():
    first, again = readme_block("first run"), readme_block("run again")
    assert any(RUN.match(line) for line in first)
    assert any(line.startswith("what moved since run") for line in again)
