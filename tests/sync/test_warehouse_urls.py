"""Warehouse URLs: libpq key/value DSNs are PostgreSQL, a string that is not a path never becomes a DuckDB file, and
no password reaches a message, a ``repr``, a location or any object an error carries (chained errors, arguments,
attributes such as psycopg's ``pgconn``) — checked against the real test server and through Dagster."""

import os
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg import sql as pgsql

from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.errors import ConfigurationError
from espcore.warehouse import PostgresWarehouse, Warehouse, redact_dsn, warehouse_from_url
from tests.pg import DB_USER, PgServer
from tests.providers.test_secrets_in_errors import chain

SECRET = "hunter2-DO-NOT-LEAK"
#: attributes that may hold connection details without being in ``vars()`` (properties, C objects)
_PEEK = ("pgconn", "password", "info", "dsn", "conninfo", "host", "user", "db", "diag", "val", "value")


def graph_texts(obj: Any, seen: set[int] | None = None, depth: int = 0) -> Iterator[str]:
    """Every text an object graph holds: an exception's message, repr and arguments, its ``__cause__``,
    ``__context__`` and notes, its attributes (``vars()``, slots, and properties such as ``pgconn``), recursively."""
    seen = set() if seen is None else seen
    if obj is None or isinstance(obj, (bool, int, float)) or id(obj) in seen or depth > 12:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
        return
    if isinstance(obj, (bytes, bytearray, memoryview)):
        yield bytes(obj).decode("utf-8", "replace")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from graph_texts(k, seen, depth + 1)
            yield from graph_texts(v, seen, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            yield from graph_texts(item, seen, depth + 1)
        return
    try:
        yield repr(obj)
        yield str(obj)
    except Exception:  # noqa: S110  # a C object in a bad state: its attributes are still looked at
        pass
    if isinstance(obj, BaseException):
        for part in (obj.args, obj.__cause__, obj.__context__, getattr(obj, "__notes__", None)):
            yield from graph_texts(part, seen, depth + 1)
    if hasattr(obj, "__dict__"):
        yield from graph_texts(dict(vars(obj)), seen, depth + 1)
    for slot in getattr(type(obj), "__slots__", ()):
        if isinstance(slot, str) and hasattr(obj, slot):
            yield from graph_texts(getattr(obj, slot), seen, depth + 1)
    if type(obj).__module__.startswith(("psycopg", "builtins")) or isinstance(obj, BaseException):
        for name in _PEEK:
            try:
                value = getattr(obj, name)
            except Exception:  # noqa: S112
                continue
            if not callable(value):
                yield from graph_texts(value, seen, depth + 1)


def assert_nowhere(secret: str, *objs: Any) -> None:
    for obj in objs:
        for text in graph_texts(obj):
            assert secret not in text, f"{secret!r} found in {type(obj).__name__}: {text[:300]!r}"
        if isinstance(obj, BaseException):
            shown = "".join(traceback.format_exception(obj))
            assert secret not in shown
            for e in chain(obj):
                assert getattr(e, "pgconn", None) is None, f"{type(e).__name__} keeps the connection"


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory that must still be empty when the test ends (no DuckDB file made of a bad URL)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield cwd
    assert sorted(p.name for p in cwd.rglob("*")) == []


# -- refused strings --------------------------------------------------------------------------------------------------

REFUSED = [
    pytest.param(f"host=127.0.0.1 pasword={SECRET}", id="kv-unknown-keyword"),
    pytest.param(f"hostname=db.internal user=esp password={SECRET}", id="kv-unknown-first-keyword"),
    pytest.param(f"Server=db;User Id=esp;Password={SECRET};Database=wh", id="ado-net-style"),
    pytest.param(f"host=db.internal;password={SECRET};dbname=wh", id="kv-glued-with-semicolons"),
    pytest.param(f"user=esp,password={SECRET} host=db.internal", id="kv-glued-with-commas"),
    pytest.param(f"host=x password={SECRET} trailing", id="kv-then-a-word"),
    pytest.param(f"host=x password='{SECRET}", id="kv-unterminated-quote"),
    pytest.param(f"host=x password={SECRET}'", id="kv-stray-quote"),
    pytest.param(f"host = x password == {SECRET}", id="kv-double-equals"),
    pytest.param(f"the password is {SECRET}", id="sentence-with-password"),
    pytest.param(f"my warehouse at db.internal {SECRET}", id="sentence"),
    pytest.param(f"Password: {SECRET}", id="password-colon"),
    pytest.param(SECRET, id="bare-secret"),
    pytest.param(f"{SECRET}.duckdb password", id="path-then-password"),
    pytest.param(f"data/{SECRET}\nwh.duckdb", id="line-break"),
    pytest.param(f"mysql://esp:{SECRET}@db.internal/wh", id="mysql-url"),
    pytest.param(f"https://esp:{SECRET}@db.internal/wh", id="https-url"),
    pytest.param(f"jdbc:postgresql://db.internal/wh?user=esp&password={SECRET}", id="jdbc-url"),
    pytest.param(f"password={SECRET} host=x://y", id="scheme-holding-the-password"),
    pytest.param(f"{SECRET}://db.internal/wh", id="secret-as-scheme"),
    pytest.param(f"postgresql:/esp:{SECRET}@db.internal/wh", id="postgresql-one-slash"),
    pytest.param(f"esp:{SECRET}@db.internal:5432/wh", id="url-without-scheme"),
    pytest.param(f"postgresql://esp:{SECRET}@db.internal/wh?nonsense=1", id="unknown-url-parameter"),
    pytest.param("people.txt", id="not-a-duckdb-suffix"),
    pytest.param("my warehouse.duckdb", id="path-with-spaces"),
    pytest.param("duckdb:///:memory:", id="memory"),
]


@pytest.mark.parametrize("url", REFUSED)
def test_strings_that_are_neither_postgres_nor_a_duckdb_path_are_refused_without_the_secret(url, empty_cwd):
    with pytest.raises(ConfigurationError) as info:
        warehouse_from_url(url)
    err = info.value
    assert_nowhere(SECRET, err)
    assert err.__cause__ is None


@pytest.mark.parametrize(
    "url",
    [
        f"host=x password={SECRET}",
        f"host=x  password = {SECRET}",
        f"host = x password= {SECRET}",
        f" host=x\tpassword={SECRET} ",
        f"host=x\npassword={SECRET}",
        f"password='{SECRET} with spaces' host=x",
        f"host=x password='it\\'s {SECRET}'",
        f"host=x port=5433 dbname='my db' user=esp password={SECRET} sslmode=prefer",
        f"postgresql://esp:{SECRET}@db.internal:5432/wh?sslmode=require",
        f"postgres://esp@db.internal/wh?password={SECRET}",
        f"postgresql://db.internal/wh?user=esp:{SECRET}",
        f"postgresql://esp:{SECRET}@db.internal/wh?sslpassword={SECRET}",
    ],
)
def test_key_value_dsns_and_urls_are_postgres_and_never_show_the_password(url, empty_cwd):
    wh = warehouse_from_url(url)
    assert isinstance(wh, PostgresWarehouse)
    for text in (repr(wh), str(wh), wh.location):
        assert SECRET not in text
    assert wh.location.startswith("postgresql://")
    assert "x" in wh.location or "db.internal" in wh.location


def test_the_location_of_a_key_value_dsn_names_user_host_port_and_database():
    wh = warehouse_from_url(f"host=db.internal port=5433 dbname='my db' user=esp password='{SECRET} x'")
    assert wh.location == "postgresql://esp@db.internal:5433/my db"
    assert repr(wh) == "PostgresWarehouse(postgresql://esp@db.internal:5433/my db)"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("wh.duckdb", "wh.duckdb"),
        ("data/wh.db", "data/wh.db"),
        ("data/wh.ddb", "data/wh.ddb"),
        ("duckdb:///rel/wh.duckdb", "rel/wh.duckdb"),
        ("duckdb:///people.txt", "people.txt"),  # explicit: any file name
        ("duckdb:///my warehouse.duckdb", "my warehouse.duckdb"),
    ],
)
def test_duckdb_paths_and_urls_open_a_file(url, path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wh = warehouse_from_url(url)
    assert isinstance(wh, Warehouse)
    assert wh.path == Path(path)
    assert wh.query_arrow("SELECT 41 + 1 AS x").to_pylist() == [{"x": 42}]
    assert (tmp_path / path).is_file()


def test_an_absolute_duckdb_url(tmp_path):
    target = tmp_path / "abs" / "wh.duckdb"
    wh = warehouse_from_url(f"duckdb:///{target}")  # duckdb:////abs/...
    assert isinstance(wh, Warehouse)
    assert wh.path == target
    assert wh.query_arrow("SELECT 1 AS x").num_rows == 1
    assert target.is_file()
    assert warehouse_from_url(str(target)).location == f"duckdb:{target}"


# -- redact_dsn -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://esp:s3cret@db:5432/wh", "postgresql://esp:***@db:5432/wh"),
        ("postgresql://:s3cret@db/wh", "postgresql://:***@db/wh"),
        ("postgresql://esp:s3%40cret@db/wh", "postgresql://esp:***@db/wh"),
        ("postgresql://esp:s3@cret@db/wh", "postgresql://esp:***@db/wh"),  # an unencoded @
        ("postgresql://esp:s3?cret@db/wh", "postgresql://esp:***@db/wh"),  # libpq reads up to the @
        ("postgresql://esp:s3#cret@db/wh", "postgresql://esp:***@db/wh"),
        ("failed: postgres://esp:s3cret@db/wh (timeout)", "failed: postgres://esp:***@db/wh (timeout)"),
        ("postgresql://esp@db/wh", "postgresql://esp@db/wh"),  # nothing to hide
        ("postgresql://db:5432/wh", "postgresql://db:5432/wh"),
        ("host=db password=s3cret user=esp", "host=db password=*** user=esp"),
        ("host=db password = s3cret user=esp", "host=db password = *** user=esp"),
        ("host=db password='s3 cret' user=esp", "host=db password=*** user=esp"),
        ("host=db password='it\\'s s3cret' user=esp", "host=db password=*** user=esp"),
        ("host=db PASSWORD=s3cret", "host=db PASSWORD=***"),
        ("host=db sslpassword=s3cret sslmode=verify-full", "host=db sslpassword=*** sslmode=verify-full"),
        ("postgresql://db/wh?sslmode=require&password=s3cret", "postgresql://db/wh?sslmode=require&password=***"),
        ("postgresql://db/wh?password=s3cret&user=esp", "postgresql://db/wh?password=***&user=esp"),
        ("postgresql://esp:a@db/wh?sslpassword=b", "postgresql://esp:***@db/wh?sslpassword=***"),
        ("user=esp dbname=wh", "user=esp dbname=wh"),
    ],
)
def test_redact_dsn_masks_every_form(text, expected):
    assert redact_dsn(text) == expected
    assert "s3" not in redact_dsn(text)


def test_redact_dsn_masks_literal_secrets_wherever_they_are_quoted():
    message = 'invalid sslmode value: "s3 cret!" (and again: s3 cret!)'
    assert redact_dsn(message, secrets=["s3 cret!", ""]) == 'invalid sslmode value: "***" (and again: ***)'
    # the longer secret first, so a secret containing another one is masked whole
    assert redact_dsn("x abcdef y", secrets=["abc", "abcdef"]) == "x *** y"


# -- the real server --------------------------------------------------------------------------------------------------


@pytest.fixture
def kv_account(pg_server: PgServer) -> Iterator[tuple[str, str, str]]:
    """A role and a database whose names hold a space, and a password holding spaces and a quote."""
    suffix = uuid.uuid4().hex[:8]
    user, dbname, password = f"kv user {suffix}", f"kv db {suffix}", f"it's a {SECRET} phrase"
    with pg_server.admin() as con:
        con.execute(
            pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(pgsql.Identifier(user), pgsql.Literal(password))
        )
        con.execute(pgsql.SQL("CREATE DATABASE {} OWNER {}").format(pgsql.Identifier(dbname), pgsql.Identifier(user)))
    try:
        yield user, dbname, password
    finally:
        with pg_server.admin() as con:
            con.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(dbname)))
            con.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(user)))


def kv_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.mark.postgres
def test_a_key_value_dsn_connects_and_round_trips(pg_server: PgServer, kv_account, empty_cwd):
    user, dbname, password = kv_account
    dsn = (
        f"host=127.0.0.1 port={pg_server.port} dbname={kv_quote(dbname)} user={kv_quote(user)} "
        f"password={kv_quote(password)} connect_timeout=10 sslmode=disable"
    )
    wh = warehouse_from_url(dsn)
    assert isinstance(wh, PostgresWarehouse)
    with wh:
        got = wh.query_arrow("SELECT current_user AS u, current_database() AS d, ? || '!' AS x", ["round trip"])
        assert got.to_pylist() == [{"u": user, "d": dbname, "x": "round trip!"}]
        with wh.connect() as con:
            con.execute("CREATE TABLE kv_t (email text PRIMARY KEY)")
            con.execute("INSERT INTO kv_t VALUES (?), (?)", ["a@x.example", "b@x.example"])
            assert con.fetchone("SELECT count(*) FROM kv_t") == (2,)
        assert wh.location == f"postgresql://{user}@127.0.0.1:{pg_server.port}/{dbname}"
        assert SECRET not in repr(wh)


def wrong_password_urls(server: PgServer, password: str) -> list[str]:
    port = server.port
    return [
        f"postgresql://{DB_USER}:{password.replace(' ', '%20')}@127.0.0.1:{port}/postgres",
        f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres?password={password.replace(' ', '%20')}",
        f"host=127.0.0.1 port={port} dbname=postgres user={DB_USER} password={kv_quote(password)}",
        f"host = 127.0.0.1   port = {port} user = {DB_USER}   password = {kv_quote(password)}",
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("form", range(4), ids=["url", "url-query", "key-value", "key-value-spaced"])
def test_a_wrong_password_error_carries_no_password(pg_server: PgServer, form, empty_cwd):
    password = f"wrong {SECRET}"
    url = wrong_password_urls(pg_server, password)[form]
    wh = warehouse_from_url(url)
    assert isinstance(wh, PostgresWarehouse)
    for text in (repr(wh), wh.location):
        assert SECRET not in text
    with pytest.raises(psycopg.OperationalError) as info:
        wh.query_arrow("SELECT 1")
    err = info.value
    assert "password authentication failed" in str(err)
    assert_nowhere(SECRET, err)
    assert err.__cause__ is None
    assert err.__context__ is None
    with pytest.raises(psycopg.OperationalError) as again, wh.connect():  # the pool kept nothing half-open
        pass
    assert_nowhere(SECRET, again.value)


@pytest.mark.postgres
def test_a_refused_connection_and_an_invalid_parameter_carry_no_password(pg_server: PgServer, tmp_path):
    closed = tmp_path / "nothing-listens-here"
    for url in (
        f"host={closed} port=1 user=esp password={SECRET}",  # no such socket
        f"host=127.0.0.1 port={pg_server.port} user=esp password={SECRET} sslmode={SECRET}",  # quoted back by libpq
        f"postgresql://esp:{SECRET}@127.0.0.1:{pg_server.port}/postgres?target_session_attrs={SECRET}",
    ):
        wh = warehouse_from_url(url)
        with pytest.raises(psycopg.Error) as info:
            wh.query_arrow("SELECT 1")
        assert_nowhere(SECRET, info.value, wh.location, repr(wh))


# -- through Dagster ------------------------------------------------------------------------------------------------


@dg.asset
def touch_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get_warehouse()
    (value,) = wh.query_arrow("SELECT 7 AS x").column("x").to_pylist()
    context.log.info(f"read {value} from {wh.location}")
    return dg.MaterializeResult(metadata={"x": value, "location": wh.location})


@pytest.mark.postgres
def test_esp_warehouse_url_as_a_key_value_dsn_through_dagster(pg_server: PgServer, kv_account, monkeypatch, empty_cwd):
    from esp_warehouse.environment import warehouse_resource

    user, dbname, password = kv_account
    monkeypatch.setenv("ESP_DATA_DIR", str(empty_cwd.parent / "data"))
    monkeypatch.setenv(
        "ESP_WAREHOUSE_URL",
        f"host=127.0.0.1 port={pg_server.port} dbname={kv_quote(dbname)} user={kv_quote(user)} "
        f"password={kv_quote(password)}",
    )
    res = warehouse_resource()
    with dg.build_resources({"warehouse": res}) as built:
        wh = built.warehouse.get_warehouse()
        assert isinstance(wh, PostgresWarehouse)
        assert wh.location == f"postgresql://{user}@127.0.0.1:{pg_server.port}/{dbname}"
        for text in (repr(res), repr(built.warehouse), repr(wh)):
            assert SECRET not in text
    with dg.instance_for_test() as instance:
        result = dg.materialize([touch_warehouse], resources={"warehouse": res}, instance=instance)
        assert result.success
        logs = [dg.serialize_value(r) for r in instance.all_logs(result.run_id)]
        assert any(f"postgresql://{user}@127.0.0.1" in line for line in logs)
        assert not any(SECRET in line for line in logs)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"host=db.internal pasword={SECRET}", id="unknown-keyword"),
        pytest.param(f"mysql://esp:{SECRET}@db.internal/wh", id="mysql"),
    ],
)
def test_a_bad_esp_warehouse_url_fails_the_run_without_the_password(url, monkeypatch, empty_cwd):
    from esp_warehouse.environment import warehouse_resource

    monkeypatch.setenv("ESP_DATA_DIR", str(empty_cwd.parent / "data"))
    monkeypatch.setenv("ESP_WAREHOUSE_URL", url)
    res = warehouse_resource()
    assert SECRET not in repr(res)
    with pytest.raises(Exception) as info, dg.build_resources({"warehouse": res}):  # noqa: PT011  # wrapped by Dagster
        pass
    assert any(isinstance(e, ConfigurationError) for e in chain(info.value))
    assert_nowhere(SECRET, info.value)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [touch_warehouse], resources={"warehouse": res}, instance=instance, raise_on_error=False
        )
        assert not result.success
        records = instance.all_logs(result.run_id)
        assert any("warehouse URL" in str(r) or "scheme" in str(r) for r in records)
        for r in records:  # the event log as stored, error chains included
            assert SECRET not in dg.serialize_value(r)
    assert not os.listdir(empty_cwd)
