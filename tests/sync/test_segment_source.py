"""Segment sources can only read: a table or view name that smuggles SQL, and ``sql`` that writes, locks or reads
files, the network or server state, are refused when the declarations are loaded and again, on DuckDB and
PostgreSQL, by every path that runs the segment (the engine, dry runs included, the blocking source check and
the change sensor); a ``victim`` table made beforehand survives each attempt, and nothing read from a file ever
reaches the provider. Legitimate segments (names, views, CTEs, unions, window functions, pure table functions,
an owner's DuckDB view over Parquet) sync end to end."""

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from esp_warehouse.assets.checks import build_source_check
from esp_warehouse.assets.subscribers import to_spec
from esp_warehouse.automation import read_segment_signature
from esp_warehouse.config import ConfigError, SyncDecl, load_declarations
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.sync.engine import run_sync
from espcore.sync.health import segment_health
from espcore.sync.result import SyncResult
from espcore.sync.source import SegmentSourceError
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.transient import is_transient
from espcore.warehouse import BaseWarehouse, PostgresWarehouse, Warehouse
from tests.sync.fakes import FakeProvider

WarehouseFactory = Callable[[], BaseWarehouse]

#: the issue's payload: as a table name, embedded as ``FROM (SELECT * FROM <name>) AS seg``, it closed the
#: subquery, dropped a table and reopened one
PAYLOAD = "people) AS seg; DROP TABLE victim; SELECT * FROM (SELECT * FROM people"
#: what a file holds; it must never reach the provider
SECRET = "TOP-SECRET-FILE-CONTENT-7f3a"
PEOPLE = [("a@example.com", "Ann", "DE"), ("b@example.com", "Bob", "FR"), ("c@example.com", "Cid", "PL")]
EMAILS = {e for e, _, _ in PEOPLE}
FIELDS = {"name": "first_name", "country": "country"}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Files a hostile segment would read: text, CSV and Parquet, each holding :data:`SECRET`."""
    text = tmp_path / "secret.txt"
    text.write_text(SECRET + "\n")
    csv = tmp_path / "secret.csv"
    csv.write_text(f"email,first_name,country\nz@example.com,{SECRET},DE\n")
    parquet = tmp_path / "secret.parquet"
    import duckdb

    duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{parquet}' (FORMAT parquet)")
    return {"text": text, "csv": csv, "parquet": parquet}


def make_wh(new_wh: WarehouseFactory) -> BaseWarehouse:
    wh = new_wh()
    with wh.connect() as con:
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR, country VARCHAR)")
        for row in PEOPLE:
            con.execute("INSERT INTO people VALUES (?, ?, ?)", list(row))
        con.execute("CREATE TABLE victim (id INTEGER)")
        con.execute("INSERT INTO victim VALUES (1), (2), (3)")
        con.execute("CREATE SEQUENCE victim_seq")
    return wh


INTACT = [1, 2, 3]


def victim(wh: BaseWarehouse) -> list[int] | str:
    """The ids in the victim table (:data:`INTACT` when untouched), or what became of it."""
    try:
        with wh.connect() as con:
            return [int(r[0]) for r in con.fetchall("SELECT id FROM victim ORDER BY id")]
    except Exception as exc:
        return f"the victim table cannot be read: {type(exc).__name__}: {exc}"


def attempt(fn: Callable[[], object]) -> BaseException | None:
    """Run ``fn``; the error it raised, or None."""
    try:
        fn()
    except Exception as exc:
        return exc
    return None


def refused(outcomes: dict[str, BaseException | None]) -> None:
    """Every path refused the segment with a SegmentSourceError naming the problem, not retried as transient."""
    for path, exc in outcomes.items():
        assert isinstance(exc, SegmentSourceError), f"{path}: {exc!r}"
        assert "segment sql" in str(exc), path
        assert not is_transient(exc), path


def first_draw(wh: BaseWarehouse) -> int:
    """The next value of the victim sequence (1 when nothing drew from it before)."""
    with wh.connect() as con:
        row = con.fetchone("SELECT nextval('victim_seq')")
    assert row is not None
    return int(row[0])


def forced(source_sql: str, **kw: Any) -> SyncSpec:
    """A spec whose segment bypassed every check made when a spec is built (as a hand-made or stale one could)."""
    s = SyncSpec(name="seg_sync", provider="fake", book="People", source_sql="SELECT * FROM people", fields=FIELDS)
    object.__setattr__(s, "source_sql", source_sql)
    for key, value in kw.items():
        object.__setattr__(s, key, value)
    return s


_RUN_IDS = itertools.count()


def sync(s: SyncSpec, provider: FakeProvider, wh: BaseWarehouse, **opts: Any) -> SyncResult:
    return run_sync(s, provider, wh, run_id=f"r{next(_RUN_IDS)}", options=SyncOptions(**opts))


def sent(provider: FakeProvider) -> str:
    """Everything the provider was given: books, members and their fields, write calls."""
    return repr((provider.books, provider.members, provider.write_calls))


def write_yaml(tmp_path: Path, source: dict[str, str], name: str = "seg_sync") -> Path:
    """A declarations file with one sync whose segment is ``source`` (written as YAML flow style, quoted)."""
    (kind, text), *_ = source.items()
    quoted = "'" + text.replace("'", "''") + "'"
    path = tmp_path / "syncs.yaml"
    path.write_text(
        "syncs:\n"
        f"  - name: {name}\n"
        "    provider: sendpulse\n"
        f"    book: {name}\n"
        f"    source: {{{kind}: {quoted}}}\n"
        "    fields: {name: first_name, country: country}\n",
        encoding="utf-8",
    )
    return path


def bad_sql(files: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    """Segment queries that must be refused, by what they try."""
    text, csv, parquet = files["text"], files["csv"], files["parquet"]
    return {
        "read_text": f"SELECT p.email, t.content AS first_name, p.country FROM people AS p, read_text('{text}') AS t",
        "read_csv": f"SELECT * FROM read_csv('{csv}')",
        "read_parquet": f"SELECT * FROM read_parquet('{parquet}')",
        "from_string_path": f"SELECT * FROM '{csv}'",
        "from_etc_hostname": "SELECT * FROM '/etc/hostname'",
        "from_quoted_path": f'SELECT * FROM "{parquet}"',
        "read_csv_in_subquery": f"SELECT * FROM people WHERE email IN (SELECT email FROM read_csv('{csv}'))",
        "copy": f"COPY people TO '{tmp_path / 'out.csv'}'",
        "attach": f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
        "insert_in_cte": "WITH x AS (INSERT INTO victim VALUES (99) RETURNING *) SELECT * FROM people",
        "delete_in_cte": "WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM people",
        "two_statements": "SELECT * FROM people; DROP TABLE victim",
        "select_into": "SELECT * INTO victim_copy FROM people",
        "for_update": "SELECT * FROM people FOR UPDATE",
        "pg_read_file": f"SELECT email, pg_read_file('{text}') AS first_name, country FROM people",
        "lo_import": f"SELECT email, CAST(lo_import('{text}') AS TEXT) AS first_name, country FROM people",
        "dblink": "SELECT * FROM dblink('dbname=postgres', 'DROP TABLE victim') AS t(email TEXT)",
        "set_config": "SELECT email, set_config('search_path', 'pg_catalog', false) AS first_name, country FROM people",
        "nextval": "SELECT email, CAST(nextval('victim_seq') AS VARCHAR) AS first_name, country FROM people",
        "comment_swallows_rest": "SELECT * FROM people) AS seg; DROP TABLE victim; --",
        "open_block_comment": "SELECT * FROM people /*",
        "payload_as_sql": f"SELECT * FROM {PAYLOAD}",
    }


BAD_NAMES = [
    "bad_names",
    [
        pytest.param({"table": PAYLOAD}, id="table-payload"),
        pytest.param({"view": PAYLOAD}, id="view-payload"),
        pytest.param({"table": "people; DROP TABLE victim"}, id="table-two-statements"),
        pytest.param({"table": "people WHERE 1 = 1"}, id="table-with-sql"),
        pytest.param({"view": '"secret.csv"'}, id="view-file-name"),
    ],
]


# -- refused when the declarations are loaded --------------------------------------------------------------------


@pytest.mark.parametrize(*BAD_NAMES)
def test_a_name_that_is_sql_is_refused_at_load(tmp_path, bad_names):
    path = write_yaml(tmp_path, bad_names)
    with pytest.raises(ConfigError) as info:
        load_declarations(path)
    kind = next(iter(bad_names))
    assert str(path) in str(info.value)
    assert f"segment {kind}" in str(info.value)


BAD_SQL = list(bad_sql({"text": Path("t"), "csv": Path("c"), "parquet": Path("p")}, Path("d")))


@pytest.mark.parametrize("name", BAD_SQL)
def test_a_hostile_query_is_refused_at_load_with_its_reason(tmp_path, files, name):
    with pytest.raises(ConfigError) as info:
        load_declarations(write_yaml(tmp_path, {"sql": bad_sql(files, tmp_path)[name]}))
    assert "segment sql" in str(info.value)


# -- refused by the engine, the health check and the sensor, on both engines -------------------------------------


def test_the_payload_forced_past_the_parser_is_refused_and_drops_nothing(new_wh):
    wh, provider = make_wh(new_wh), FakeProvider()
    s = forced(f"SELECT * FROM {PAYLOAD}")  # what `table: <payload>` was turned into before names were parsed
    outcomes = {
        "dry run": attempt(lambda: sync(s, provider, wh, dry_run=True)),
        "sync": attempt(lambda: sync(s, provider, wh)),
        "health check": attempt(lambda: segment_health(s, wh)),
        "change sensor": attempt(lambda: read_segment_signature(s, wh)),
    }
    assert victim(wh) == INTACT
    refused(outcomes)
    assert provider.books == {}  # refused before the book was looked up or created
    assert provider.write_calls == []
    with wh.connect() as con:  # the refusals are on record
        row = con.fetchone(f"SELECT status, count(*) FROM {wh.own_schema}.sync_runs GROUP BY status")
    assert row == ("failed", 2)


@pytest.mark.parametrize("name", BAD_SQL)
def test_a_hostile_query_forced_past_the_parser_is_refused_by_every_path(new_wh, files, tmp_path, name):
    wh, provider = make_wh(new_wh), FakeProvider()
    s = forced(bad_sql(files, tmp_path)[name])
    outcomes = {
        "dry run": attempt(lambda: sync(s, provider, wh, dry_run=True)),
        "sync": attempt(lambda: sync(s, provider, wh)),
        "health check": attempt(lambda: segment_health(s, wh)),
        "change sensor": attempt(lambda: read_segment_signature(s, wh)),
    }
    # nothing read from a file reached the provider, nothing was written, dropped or drawn in the warehouse
    assert SECRET not in sent(provider)
    assert victim(wh) == INTACT
    assert first_draw(wh) == 1
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()
    refused(outcomes)
    assert provider.write_calls == []


def test_a_trailing_comment_forced_past_the_parser_cannot_swallow_the_wrapper(new_wh):
    # through a spec the comment is ended by a newline; raw, the engine's ") AS seg" would be commented out
    wh, provider = make_wh(new_wh), FakeProvider()
    with pytest.raises(SegmentSourceError):
        sync(forced("SELECT * FROM people -- all of them"), provider, wh)
    assert provider.write_calls == []
    legit = SyncSpec(name="seg_sync", provider="fake", book="People", source_sql="SELECT * FROM people -- all")
    result = sync(legit, provider, wh)
    assert set(provider.members[result.book_id]) == EMAILS


def test_a_duckdb_dotted_name_read_as_a_file_is_refused_at_run_time(tmp_path, files, monkeypatch):
    # "FROM secret.csv" parses as schema.table: only DuckDB's planner sees that it would read ./secret.csv
    monkeypatch.chdir(tmp_path)
    wh, provider = make_wh(lambda: Warehouse(tmp_path / "wh.duckdb")), FakeProvider()
    s = SyncSpec(name="seg_sync", provider="fake", book="People", source_sql="SELECT * FROM secret.csv", fields=FIELDS)
    with pytest.raises(SegmentSourceError, match="READ_CSV"):
        sync(s, provider, wh)
    with pytest.raises(SegmentSourceError, match="READ_CSV"):
        segment_health(s, wh)
    assert SECRET not in sent(provider)


def test_the_blocking_source_check_fails_with_the_reason_and_drops_nothing(new_wh, request, monkeypatch):
    wh = make_wh(new_wh)
    if isinstance(wh, PostgresWarehouse):
        url = request.getfixturevalue("pg_server").url() + f"?options=-csearch_path%3D{wh.schema}"
        resource = WarehouseResource(url=url, own_schema=wh.own_schema)
    else:
        assert isinstance(wh, Warehouse)
        resource = WarehouseResource(duckdb_path=str(wh.path))
    decl = SyncDecl.model_validate(
        {"name": "seg_sync", "provider": "sendpulse", "book": "People", "source": {"table": "people"}, "fields": FIELDS}
    )
    monkeypatch.setattr("esp_warehouse.assets.checks.to_spec", lambda d: forced(f"SELECT * FROM {PAYLOAD}"))
    check = build_source_check(decl, dg.AssetKey("people"))
    result = check(warehouse=resource)
    assert isinstance(result, dg.AssetCheckResult)
    assert not result.passed
    assert "SegmentSourceError" in (result.description or "")
    assert "segment sql" in (result.description or "")
    assert victim(wh) == INTACT
    monkeypatch.setattr("esp_warehouse.assets.checks.to_spec", to_spec)
    ok = build_source_check(decl, dg.AssetKey("people"))(warehouse=resource)
    assert isinstance(ok, dg.AssetCheckResult)
    assert ok.passed, ok.description


# -- legitimate segments sync end to end ----------------------------------------------------------------------------


def qualifier(wh: BaseWarehouse) -> str:
    """A schema holding a copy of ``people`` (DuckDB: ``crm``; PostgreSQL: the test's own schema)."""
    return wh.schema if isinstance(wh, PostgresWarehouse) and wh.schema else "crm"


def add_legit_relations(wh: BaseWarehouse) -> None:
    schema = qualifier(wh)
    with wh.connect() as con:
        if schema == "crm":
            con.execute("CREATE SCHEMA crm")
            con.execute("CREATE TABLE crm.people AS SELECT * FROM people")
        con.execute('CREATE TABLE "Mailing List" AS SELECT * FROM people')
        con.execute("CREATE VIEW active_people AS SELECT * FROM people WHERE country <> 'PL'")


LEGIT: list[tuple[str, dict[str, str], set[str]]] = [
    ("table", {"table": "people"}, EMAILS),
    ("quoted_mixed_case_with_spaces", {"table": '"Mailing List"'}, EMAILS),
    ("view", {"view": "active_people"}, {"a@example.com", "b@example.com"}),
    (
        "cte",
        {"sql": "WITH eu AS (SELECT * FROM people WHERE country IN ('DE', 'FR')) SELECT * FROM eu"},
        {"a@example.com", "b@example.com"},
    ),
    (
        "union",
        {"sql": "SELECT * FROM people WHERE country = 'DE' UNION ALL SELECT * FROM active_people WHERE country = 'FR'"},
        {"a@example.com", "b@example.com"},
    ),
    (
        "window",
        {
            "sql": "SELECT email, first_name, country FROM (SELECT *, row_number() OVER "
            "(PARTITION BY country <> 'PL' ORDER BY email) AS rn FROM people) AS r WHERE rn = 1"
        },
        {"a@example.com", "c@example.com"},
    ),
    (
        "unnest",
        {
            "sql": "SELECT e AS email, 'U' AS first_name, 'DE' AS country "
            "FROM unnest(ARRAY['u1@example.com', 'u2@example.com']) AS t(e)"
        },
        {"u1@example.com", "u2@example.com"},
    ),
    (
        "generate_series",
        {
            "sql": "SELECT 'g' || CAST(g AS VARCHAR) || '@example.com' AS email, 'G' AS first_name, "
            "'DE' AS country FROM generate_series(1, 3) AS t(g)"
        },
        {"g1@example.com", "g2@example.com", "g3@example.com"},
    ),
    ("trailing_comment", {"sql": "SELECT * FROM people -- everyone;"}, EMAILS),
]


def check_legit(
    wh: BaseWarehouse, provider: FakeProvider, tmp_path: Path, name: str, source: dict[str, str], expected: set[str]
) -> None:
    """Load ``source`` from a declarations file, dry-run it, sync it (a book of its own), check its health and
    signature."""
    (decl,) = load_declarations(write_yaml(tmp_path, source, name=name)).syncs
    s = to_spec(decl)
    dry: SyncResult = run_sync(s, provider, wh, run_id=f"{name}-dry", options=SyncOptions(dry_run=True))
    assert dry.counts["planned_add"] == len(expected), name
    result = run_sync(s, provider, wh, run_id=name)
    assert result.error is None, name
    assert set(provider.members[result.book_id]) == expected, name
    health = segment_health(s, wh)
    assert (health.rows, health.invalid, health.missing_columns) == (len(expected), 0, ()), name
    assert read_segment_signature(s, wh).startswith(f"{len(expected)}|"), name


@pytest.mark.parametrize("name", [*(n for n, _, _ in LEGIT), "schema_qualified"])
def test_a_legitimate_segment_syncs_end_to_end(new_wh, tmp_path, name):
    wh = make_wh(new_wh)
    add_legit_relations(wh)
    cases = {n: (source, expected) for n, source, expected in LEGIT}
    cases["schema_qualified"] = ({"table": f"{qualifier(wh)}.people"}, EMAILS)
    source, expected = cases[name]
    check_legit(wh, FakeProvider(), tmp_path, name, source, expected)
    assert victim(wh) == INTACT


def test_an_owners_duckdb_view_over_parquet_is_allowed(tmp_path, files):
    # the warehouse owner may read files through a view (the lake views do); a segment may then read the view
    wh = make_wh(lambda: Warehouse(tmp_path / "wh.duckdb"))
    with wh.connect() as con:
        con.execute(f"COPY people TO '{tmp_path / 'people.parquet'}' (FORMAT parquet)")
        con.execute(f"CREATE VIEW lake_people AS SELECT * FROM read_parquet('{tmp_path / 'people.parquet'}')")
    provider = FakeProvider()
    check_legit(wh, provider, tmp_path, "parquet_view", {"view": "lake_people"}, EMAILS)
    check_legit(
        wh,
        provider,
        tmp_path,
        "sql_over_parquet_view",
        {"sql": "SELECT l.* FROM lake_people AS l JOIN people AS p USING (email) WHERE l.country <> 'PL'"},
        {"a@example.com", "b@example.com"},
    )
    # the view's file reads do not cover another file read next to it
    s = forced(f"SELECT * FROM lake_people UNION ALL SELECT * FROM read_parquet('{files['parquet']}')")
    provider = FakeProvider()
    with pytest.raises(SegmentSourceError):
        sync(s, provider, wh)
    assert SECRET not in sent(provider)
