"""The warehouse the segments live in, and where sync state is kept.

Two engines: DuckDB (a file, the embedded default) and PostgreSQL (a DSN/URL). The sync engine talks to a
:class:`WarehouseConnection`, a thin dialect-aware wrapper, so one SQL text runs on both: parameters are written
``?``, upserts use ``INSERT ... ON CONFLICT``, and the few engine-specific expressions come from :class:`Dialect`
(DuckDB) or :class:`PostgresDialect`. :func:`warehouse_from_url` picks the engine from a URL.
"""

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, LiteralString, cast

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader

from espcore.errors import ConfigurationError

# -- dialects ---------------------------------------------------------------------------------------------------


_log = logging.getLogger("espcore.warehouse")


class Dialect:
    """SQL that differs between engines. This base class is DuckDB's."""

    name = "duckdb"
    #: the schema of this session's temporary tables
    temp_schema = "temp"

    def temp(self, table: str) -> str:
        """A temporary table's name, qualified by the session's temporary schema: never a user's table."""
        return f"{self.temp_schema}.{quote_ident(table)}"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        """A JSON text object from (key, SQL expression) pairs."""
        if not pairs:
            return "'{}'"
        inner = ", ".join(f"'{_lit(k)}': {expr}" for k, expr in pairs)
        return f"CAST(to_json({{{inner}}}) AS VARCHAR)"

    def email_syntax_ok(self, expr: str) -> str:
        """A cheap, pushed-down syntax filter: one ``@``, a dotted domain, no spaces (LIKE is several times
        faster than a regular expression over millions of keys). The full check runs in Python on the rows
        about to be sent."""
        return f"({expr} LIKE '%_@_%._%' AND {expr} NOT LIKE '%@%@%' AND {expr} NOT LIKE '% %')"

    def any_value(self, expr: str) -> str:
        """Any one value of a group (DuckDB's cheapest aggregate for it)."""
        return f"any_value({expr})"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def md5(self, expr: str) -> str:
        return f"md5({expr})"

    #: appended to a subquery whose computed columns are read several times above it, so that they are computed
    #: once per row: DuckDB eliminates common subexpressions itself; PostgreSQL inlines a CTE's expressions at
    #: every use unless ``OFFSET 0`` keeps the subquery whole
    fence = ""


class PostgresDialect(Dialect):
    """PostgreSQL: ``json_build_object``, POSIX regular expressions, ``text``."""

    name = "postgres"
    temp_schema = "pg_temp"
    #: json_build_object takes at most 100 arguments, i.e. 50 key/value pairs
    _PAIRS_PER_CALL = 50

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        if not pairs:
            return "'{}'"
        args = [f"'{_lit(k)}', {expr}" for k, expr in pairs]
        if len(args) <= self._PAIRS_PER_CALL:
            return f"CAST(json_build_object({', '.join(args)}) AS TEXT)"
        chunks = [args[i : i + self._PAIRS_PER_CALL] for i in range(0, len(args), self._PAIRS_PER_CALL)]
        return "CAST(" + " || ".join(f"jsonb_build_object({', '.join(c)})" for c in chunks) + " AS TEXT)"

    def email_syntax_ok(self, expr: str) -> str:
        return f"({expr} ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')"

    def any_value(self, expr: str) -> str:
        return f"min({expr})"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS TEXT)"

    fence = " OFFSET 0"


def _lit(text: str) -> str:
    return text.replace("'", "''")


#: how ``information_schema`` names a timestamp without a time zone (DuckDB, PostgreSQL)
_NAIVE_TIMESTAMP = frozenset({"timestamp", "timestamp without time zone"})

#: the schema of the product's own tables unless configured otherwise
DEFAULT_OWN_SCHEMA = "esp"
_OWN_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_own_schema(name: str) -> str:
    """A valid own-schema name (lower-case letters, digits and underscores), or a ConfigurationError."""
    if not isinstance(name, str) or not _OWN_SCHEMA_RE.fullmatch(name):
        raise ConfigurationError(
            f"invalid schema name {name!r} for the product's own tables: use lower-case letters, digits and "
            "underscores (e.g. esp)"
        )
    return name


def quote_ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
        return '"' + name.replace('"', '""') + '"'
    return f'"{name}"'


# -- connections ------------------------------------------------------------------------------------------------


class WarehouseConnection(ABC):
    """One open connection; ``?`` parameters; autocommit outside a ``transaction()`` block.

    ``own_schema`` is the schema holding the product's own tables (sync state, plan, changelog, runs, locks,
    campaign ledger, lake views); :meth:`own` names one of them, schema-qualified and quoted. Nothing else in the
    warehouse is ever created, replaced or dropped."""

    dialect: Dialect
    own_schema: str = DEFAULT_OWN_SCHEMA

    def own(self, table: str) -> str:
        """``"<own schema>"."<table>"``: one of the product's own tables."""
        return f"{quote_ident(self.own_schema)}.{quote_ident(table)}"

    def ensure_own_schema(self) -> None:
        """Create the own schema when it is missing (idempotent; a schema that exists is left as it is, so a
        database user without CREATE on the database works once an administrator has created it)."""
        if self.own_schema_exists():
            return
        with self.transaction(lock="espcore.own_schema"):
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.own_schema)}")

    def own_schema_exists(self) -> bool:
        row = self.fetchone("SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?", [self.own_schema])
        return bool(row and row[0])

    def column_types(self, schema: str, table: str | None = None) -> dict[str, dict[str, str]]:
        """The tables of ``schema`` in this database (or only ``table``), each with its lower-cased columns in
        order and their lower-cased ``information_schema`` data types: one catalog query."""
        sql = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = ?"
        )
        params = [schema]
        if table is not None:
            sql += " AND table_name = ?"
            params.append(table)
        out: dict[str, dict[str, str]] = {}
        for name, column, typ in self.fetchall(sql + " ORDER BY table_name, ordinal_position", params):
            out.setdefault(str(name), {})[str(column).lower()] = str(typ).lower()
        return out

    def columns(self, schema: str, table: str | None = None) -> dict[str, list[str]]:
        """The tables of ``schema`` in this database (or only ``table``), each with its lower-cased columns in
        order: one catalog query."""
        return {name: list(cols) for name, cols in self.column_types(schema, table).items()}

    def own_table_exists(self, table: str) -> bool:
        return table in self.columns(self.own_schema, table)

    def convert_naive_timestamps(
        self, tables: Sequence[str], catalog: Mapping[str, Mapping[str, str]] | None = None
    ) -> list[str]:
        """Convert, once, the own ``tables``' timestamp columns an earlier release typed ``TIMESTAMP`` (naive, UTC
        by convention) to ``TIMESTAMP WITH TIME ZONE``, each value read as UTC; return the columns converted
        (``table.column``). ``catalog``: the own schema's :meth:`column_types`, when the caller has just read
        them; else one catalog query. Call it inside the transaction that creates the tables (PostgreSQL
        rewrites each converted table under an exclusive lock), and :meth:`checkpoint` after that transaction
        when something was converted."""
        types = catalog if catalog is not None else self.column_types(self.own_schema)
        done: list[str] = []
        for table in sorted(set(tables)):
            for column in [c for c, typ in types.get(table, {}).items() if typ in _NAIVE_TIMESTAMP]:
                col = quote_ident(column)
                self.execute(
                    f"ALTER TABLE {self.own(table)} ALTER COLUMN {col} TYPE TIMESTAMPTZ USING {col} AT TIME ZONE 'UTC'"
                )
                done.append(f"{table}.{column}")
        if done:
            _log.warning("converted %s to TIMESTAMP WITH TIME ZONE (values read as UTC)", ", ".join(done))
        return done

    def adopt_legacy_table(self, table: str, legacy_columns: Sequence[str]) -> int:
        """Copy into the own schema's (new, empty) ``table`` the rows an earlier release kept in a table of the
        same name in the connection's default schema (before the product had a schema of its own), and return
        how many. Only a table with every one of ``legacy_columns`` counts as that release's: a user's table of
        the same name is never read. The old table is left as it is (nothing outside the own schema is ever
        dropped); call this inside the transaction that created the own table."""
        row = self.fetchone("SELECT current_schema()")
        schema = str(row[0]) if row and row[0] else ""
        if not schema or schema == self.own_schema:
            return 0
        found = self.column_types(schema, table).get(table, {})
        if not found or not set(legacy_columns) <= set(found):
            return 0
        own = set(self.columns(self.own_schema, table).get(table, []))
        naive = {c for c, typ in found.items() if typ in _NAIVE_TIMESTAMP}  # UTC by that release's convention
        cols = [c for c in found if c in own]
        values = ", ".join(f"{quote_ident(c)} AT TIME ZONE 'UTC'" if c in naive else quote_ident(c) for c in cols)
        self.execute(
            f"INSERT INTO {self.own(table)} ({', '.join(quote_ident(c) for c in cols)}) "
            f"SELECT {values} FROM {quote_ident(schema)}.{quote_ident(table)}"
        )
        copied = self.fetchone(f"SELECT count(*) FROM {self.own(table)}")
        n = int(copied[0]) if copied else 0
        _log.warning(
            "copied %d rows of %s.%s (kept by an earlier release) into %s; the old table is left in place and can "
            "be dropped once this release runs",
            n,
            schema,
            table,
            self.own(table),
        )
        return n

    def checkpoint(self) -> None:
        """Write the database's log into its file (DuckDB; nothing to do on PostgreSQL). After a conversion: a
        DuckDB log that holds a time-zone conversion needs the ICU extension loaded to be replayed, which a
        DuckDB that may download extensions tries to download first (and fails to, offline)."""
        return None  # PostgreSQL: its log is its own business

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None: ...

    @abstractmethod
    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table: ...

    @abstractmethod
    def load_temp(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` for this connection (replacing any previous one)."""

    @abstractmethod
    def drop_temp(self, name: str) -> None: ...

    @abstractmethod
    def transaction(self, *, lock: str | None = None) -> AbstractContextManager[None]:
        """Commit the block's statements together, or none of them.

        With ``lock``, the block also runs alone among the blocks holding the same lock name on this warehouse,
        whatever the connection (PostgreSQL: an advisory transaction lock, so across processes too; DuckDB: a
        process-wide lock, as only one process can open a DuckDB file for writing)."""

    @abstractmethod
    def read_only(self) -> AbstractContextManager[None]:
        """Run the block in a read-only transaction, rolled back at its end: any write in it (a stray DML or DDL,
        ``nextval``, ``COPY ... FROM``) fails instead of changing the warehouse. For reads that must not write,
        such as a segment's health or change signature. It opens its own transaction: not inside another one
        (PostgreSQL: ``BEGIN; SET TRANSACTION READ ONLY``; DuckDB: ``BEGIN TRANSACTION READ ONLY``)."""


class DuckDBConnection(WarehouseConnection):
    """A DuckDB connection. ``load_temp`` registers the Arrow table as a view of this connection."""

    def __init__(
        self,
        raw: duckdb.DuckDBPyConnection,
        dialect: Dialect,
        *,
        scope: str = "",
        own_schema: str = DEFAULT_OWN_SCHEMA,
    ) -> None:
        self.raw = raw
        self.dialect = dialect
        self._scope = scope
        self.own_schema = own_schema

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.raw.execute(sql, list(params or []))

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.raw.execute(sql, list(params or [])).fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        # drain the result: DuckDB refuses new work on a connection with an unfinished one
        rows = self.raw.execute(sql, list(params or [])).fetchall()
        return rows[0] if rows else None

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        if params:
            return self.raw.sql(sql, params=list(params)).to_arrow_table()
        return self.raw.sql(sql).to_arrow_table()

    def load_temp(self, name: str, table: pa.Table) -> None:
        self.raw.register(name, table)

    def checkpoint(self) -> None:
        try:
            self.raw.execute("CHECKPOINT")
        except duckdb.Error as exc:  # another connection's transaction is open: DuckDB checkpoints later itself
            _log.info("checkpoint deferred: %s", exc)

    def drop_temp(self, name: str) -> None:
        self.raw.unregister(name)

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[None]:
        with _named_lock(f"{self._scope}\0{lock}") if lock else nullcontext():
            self.raw.execute("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            self.raw.execute("COMMIT")

    @contextmanager
    def read_only(self) -> Iterator[None]:
        self.raw.execute("BEGIN TRANSACTION READ ONLY")
        try:
            yield
        finally:
            self.raw.execute("ROLLBACK")


_NAMED_LOCKS: dict[str, threading.Lock] = {}
_NAMED_LOCKS_GUARD = threading.Lock()


def _named_lock(key: str) -> threading.Lock:
    with _NAMED_LOCKS_GUARD:
        return _NAMED_LOCKS.setdefault(key, threading.Lock())


_PG_SPECIAL = re.compile(
    r"""(?<![A-Za-z0-9_$])[Ee]'(?:[^'\\]|\\.|'')*'  # E'...' escape string
    | '(?:[^']|'')*'                                  # string literal
    | "(?:[^"]|"")*"                                  # quoted identifier
    | --[^\n]*                                        # line comment
    | /\*.*?\*/                                       # block comment
    | (?<![A-Za-z0-9_$])\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?\$(?P=tag)\$  # dollar-quoted string
    | \?                                              # a parameter
    """,
    re.S | re.X,
)


@lru_cache(maxsize=512)
def qmark_to_pyformat(sql: str) -> str:
    """``?`` parameters to psycopg's ``%s``, for a query that is sent with parameters.

    Every literal ``%`` is doubled (psycopg reads ``%`` everywhere, even in string literals and comments); a ``?``
    inside a string literal, quoted identifier, comment or dollar-quoted string is left alone. A query sent
    without parameters is passed through untouched. Write PostgreSQL's ``?`` jsonb operators as functions
    (``jsonb_exists``) in queries that have parameters.
    """
    escaped = sql.replace("%", "%%")
    return _PG_SPECIAL.sub(lambda m: "%s" if m.group(0) == "?" else m.group(0), escaped)


#: Arrow types of PostgreSQL result columns, by type OID (anything else is inferred from the values)
_ARROW_BY_OID: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    18: pa.string(),
    19: pa.string(),
    25: pa.string(),
    114: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
    2950: pa.string(),
    3802: pa.string(),
    17: pa.binary(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1186: pa.duration("us"),
}


def _arrow_column(values: Sequence[Any], oid: int) -> pa.Array:
    typ = _ARROW_BY_OID.get(oid)
    if typ is not None:
        if pa.types.is_string(typ):
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        return pa.array(values, typ)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        try:
            return pa.array([None if v is None else float(v) for v in values], pa.float64())
        except (TypeError, ValueError):
            return pa.array([None if v is None else str(v) for v in values], pa.string())


def _pg_column_type(typ: pa.DataType) -> str:
    """The PostgreSQL column type an Arrow column is loaded into by :meth:`PostgresConnection.load_temp`."""
    t = pa.types
    if t.is_dictionary(typ):
        return _pg_column_type(cast(pa.DictionaryType, typ).value_type)
    if t.is_boolean(typ):
        return "boolean"
    if t.is_int8(typ) or t.is_int16(typ) or t.is_uint8(typ):
        return "smallint"
    if t.is_int32(typ) or t.is_uint16(typ):
        return "integer"
    if t.is_int64(typ) or t.is_uint32(typ):
        return "bigint"
    if t.is_uint64(typ) or t.is_decimal(typ):
        return "numeric"
    if t.is_float16(typ) or t.is_float32(typ):
        return "real"
    if t.is_float64(typ):
        return "double precision"
    if t.is_binary(typ) or t.is_large_binary(typ) or t.is_fixed_size_binary(typ):
        return "bytea"
    if t.is_date(typ):
        return "date"
    if t.is_timestamp(typ):
        return "timestamptz" if cast(pa.TimestampType, typ).tz else "timestamp"
    if t.is_time(typ):
        return "time"
    if t.is_duration(typ):
        return "interval"
    if t.is_nested(typ):
        return "jsonb"
    return "text"  # strings, nulls, and anything else as its text


def _copy_column(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """One Arrow column as Python values psycopg's COPY writer accepts."""
    typ = col.type
    if pa.types.is_dictionary(typ):
        typ = cast(pa.DictionaryType, typ).value_type
        col = pc.cast(col, typ)
    if pa.types.is_timestamp(typ) and cast(pa.TimestampType, typ).unit == "ns":
        col = pc.cast(col, pa.timestamp("us", cast(pa.TimestampType, typ).tz), safe=False)
    elif pa.types.is_duration(typ) and cast(pa.DurationType, typ).unit == "ns":
        col = pc.cast(col, pa.duration("us"), safe=False)
    elif pa.types.is_time64(typ) and cast(pa.Time64Type, typ).unit == "ns":
        col = pc.cast(col, pa.time64("us"), safe=False)
    values = col.to_pylist()
    if pa.types.is_nested(typ):
        return [None if v is None else json.dumps(v, default=str) for v in values]
    return values


def _copy_rows(table: pa.Table) -> Iterator[tuple[Any, ...]]:
    """Rows of an Arrow table for COPY, one record batch at a time."""
    for batch in table.to_batches(max_chunksize=65_536):
        yield from zip(*(_copy_column(col) for col in batch.columns), strict=True)


class PostgresConnection(WarehouseConnection):
    """A PostgreSQL connection (psycopg 3, autocommit). ``?`` becomes ``%s``; ``load_temp`` is a TEMP table
    filled with COPY; json/jsonb results come back as text, as on DuckDB."""

    def __init__(
        self, raw: psycopg.Connection[tuple[Any, ...]], dialect: Dialect, *, own_schema: str = DEFAULT_OWN_SCHEMA
    ) -> None:
        self.raw = raw
        self.dialect = dialect
        self.own_schema = own_schema
        self.temps: set[str] = set()

    def _cursor(self, sql: str, params: Sequence[Any] | None) -> psycopg.Cursor[tuple[Any, ...]]:
        cur = self.raw.cursor()
        try:
            if params:
                cur.execute(cast(LiteralString, qmark_to_pyformat(sql)), list(params))
            else:
                cur.execute(cast(LiteralString, sql))
        except BaseException:
            cur.close()
            raise
        return cur

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self._cursor(sql, params).close()

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._cursor(sql, params) as cur:
            return cur.fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        with self._cursor(sql, params) as cur:
            return cur.fetchone()

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self._cursor(sql, params) as cur:
            if cur.description is None:
                return pa.table({})
            rows = cur.fetchall()
            names = [d.name for d in cur.description]
            oids = [d.type_code for d in cur.description]
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrays = [_arrow_column(col, oid) for col, oid in zip(columns, oids, strict=True)]
        return pa.Table.from_arrays(arrays, names=names)

    def load_temp(self, name: str, table: pa.Table) -> None:
        ident = pgsql.Identifier(name)
        cols = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(f.name), pgsql.SQL(cast(LiteralString, _pg_column_type(f.type))))
            for f in table.schema
        )
        names = pgsql.SQL(", ").join(pgsql.Identifier(f.name) for f in table.schema)
        with self.raw.transaction(), self.raw.cursor() as cur:
            cur.execute(pgsql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(ident))
            cur.execute(pgsql.SQL("CREATE TEMP TABLE {} ({})").format(ident, cols))
            self.temps.add(name)
            if table.num_rows:
                with cur.copy(pgsql.SQL("COPY {} ({}) FROM STDIN").format(ident, names)) as copy:
                    for row in _copy_rows(table):
                        copy.write_row(row)
            # temp tables are never auto-analyzed; never analyzed, even an empty one is planned as some 900 rows,
            # which can turn a join with it into a sort of the other side
            cur.execute(pgsql.SQL("ANALYZE {}").format(ident))

    def drop_temp(self, name: str) -> None:
        self.raw.execute(pgsql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(pgsql.Identifier(name)))
        self.temps.discard(name)

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[None]:
        with self.raw.transaction():
            if lock:
                self.raw.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(lock)])
            yield

    @contextmanager
    def read_only(self) -> Iterator[None]:
        if self.raw.info.transaction_status != TransactionStatus.IDLE:
            raise RuntimeError("read_only() opens its own transaction: call it outside transaction()")
        with self.raw.transaction(force_rollback=True):
            self.raw.execute("SET TRANSACTION READ ONLY")
            yield


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a lock name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


# -- warehouses ------------------------------------------------------------------------------------------------


class BaseWarehouse(ABC):
    """What the sync engine needs from a warehouse: short-lived connections and a dialect."""

    dialect: ClassVar[Dialect]
    #: the schema of the product's own tables (see :class:`WarehouseConnection`)
    own_schema: str = DEFAULT_OWN_SCHEMA

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the warehouse is, safe to log (never a password)."""

    @abstractmethod
    def connect(self) -> AbstractContextManager[WarehouseConnection]: ...

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self.connect() as con:
            return con.arrow(sql, params)

    def close(self) -> None:
        """Release pooled resources (a no-op where there are none); the warehouse stays usable."""
        return None

    def session(self) -> AbstractContextManager[None]:
        """Hold one connection for a burst of work in this thread (``connect()`` reuses it); a no-op where
        connections are cheap (pooled)."""
        return nullcontext()


class Warehouse(BaseWarehouse):
    """A DuckDB database file. Connections are short-lived so that several processes can take turns: DuckDB
    allows one process per file at a time, so opening waits (bounded) while another process holds it."""

    dialect: ClassVar[Dialect] = Dialect()

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_wait_s: float = 1800.0,
        memory_limit: str | None = None,
        own_schema: str = DEFAULT_OWN_SCHEMA,
    ) -> None:
        """``memory_limit`` (e.g. ``"1GB"``) caps DuckDB's memory: big plans spill to disk instead.
        ``own_schema``: where the product's own tables live inside the file."""
        self.own_schema = check_own_schema(own_schema)
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s
        self.memory_limit = memory_limit or os.environ.get("ESP_DUCKDB_MEMORY_LIMIT")
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Warehouse(duckdb:{self.path})"

    @property
    def location(self) -> str:
        return f"duckdb:{self.path}"

    def _open(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.02
        while True:
            try:
                # never download an extension at run time (offline hosts, reproducible runs): DuckDB's own ICU,
                # which time-zone arithmetic and a log holding it need, loads from the installed package
                config = {
                    "checkpoint_threshold": "8MB",
                    "preserve_insertion_order": False,
                    "autoinstall_known_extensions": False,
                }
                if self.memory_limit:
                    config["memory_limit"] = self.memory_limit
                con = duckdb.connect(str(self.path), config=config)
                # Short connections: leave checkpoints to the WAL size threshold instead of every close.
                con.execute("PRAGMA disable_checkpoint_on_shutdown")
                con.execute("SET enable_progress_bar = false")  # long plans must not draw bars into run logs
                return con
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                if delay >= 1.0 and not getattr(self._local, "warned", False):
                    self._local.warned = True
                    _log.info("waiting for %s: another process holds the DuckDB file", self.path)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one connection open in this thread until the block ends: opening a DuckDB file costs tens of
        milliseconds (and replays its log), so a sync run holds one. Another *process* wanting the file waits
        (up to ``lock_wait_s``) until the session ends: DuckDB has one writing process per file; PostgreSQL has
        no such limit."""
        if getattr(self._local, "raw", None) is not None:
            yield  # re-entrant
            return
        scope = str(self.path.resolve())
        with _named_lock(f"{scope}\0open"):
            raw = self._open()
        self._local.raw = raw
        try:
            yield
        finally:
            self._local.raw = None
            with _named_lock(f"{scope}\0open"):
                raw.close()

    @contextmanager
    def connect(self) -> Iterator[DuckDBConnection]:
        scope = str(self.path.resolve())
        held = getattr(self._local, "raw", None)
        if held is not None:
            yield DuckDBConnection(held, self.dialect, scope=scope, own_schema=self.own_schema)
            return
        # Threads of one process share one DuckDB instance per file (duckdb's instance cache); opening and
        # closing connections concurrently races in that cache (a fresh connection can miss the Arrow scan
        # function), so open and close take turns. Work on open connections still runs concurrently.
        with _named_lock(f"{scope}\0open"):
            raw = self._open()
        try:
            yield DuckDBConnection(raw, self.dialect, scope=scope, own_schema=self.own_schema)
        finally:
            with _named_lock(f"{scope}\0open"):
                raw.close()


DuckDBWarehouse = Warehouse

#: connections inherited over a fork: never used or closed by the child (that would end the parent's session)
_FORK_ORPHANS: list[psycopg.Connection[tuple[Any, ...]]] = []


class PostgresWarehouse(BaseWarehouse):
    """A PostgreSQL database, from a libpq URL (``postgresql://user:password@host:5432/db?sslmode=require``) or
    key/value DSN. The URL may hold a password: it is never part of ``repr`` or ``location``.

    Connections are autocommit and pooled (a few idle ones are kept, per warehouse object, for ``max_idle_s``);
    ``schema`` sets the ``search_path``, so the sync tables and TEMP tables live there. Close with
    :meth:`close` (or ``with``) to drop the idle connections early.
    """

    dialect: ClassVar[Dialect] = PostgresDialect()

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout_s: int = 10,
        max_idle: int = 4,
        max_idle_s: float = 30.0,
        application_name: str = "espcore",
        own_schema: str = DEFAULT_OWN_SCHEMA,
    ) -> None:
        self.own_schema = check_own_schema(own_schema)
        self._url = url
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self.max_idle_s = max_idle_s
        self.application_name = application_name
        self._idle: list[tuple[psycopg.Connection[tuple[Any, ...]], float]] = []
        self._pool_lock = threading.Lock()
        self._pid = os.getpid()
        parts: dict[str, Any] | None = None
        with suppress(psycopg.ProgrammingError):  # raised below, outside the handler: libpq may quote the string
            parts = conninfo_to_dict(url)
        if parts is None:
            raise ConfigurationError("invalid PostgreSQL connection string (not shown: it may hold a password)")
        self._parts = parts

    def __repr__(self) -> str:
        return f"PostgresWarehouse({self.location})"

    @property
    def location(self) -> str:
        p = self._parts
        user = f"{p['user']}@" if p.get("user") else ""
        host = str(p.get("host") or "")
        port = f":{p['port']}" if p.get("port") else ""
        loc = f"postgresql://{user}{host}{port}/{p.get('dbname') or ''}"
        # a value that swallowed a password (``host=x;password=...``, a user with a colon) is masked; the
        # password itself is not searched for (that would mask, and so reveal, a user named like it)
        loc = redact_dsn(loc)
        return f"{loc} (schema {self.schema})" if self.schema else loc

    def _secrets(self) -> list[str]:
        return [str(self._parts.get(k) or "") for k in ("password", "sslpassword", "oauth_client_secret")]

    # -- pool ------------------------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """``psycopg.connect``, whose errors carry the connection string (with its password) in their ``pgconn``
        attribute and may quote it in their message: such an error is replaced by one of the same class with
        the message redacted and nothing attached, raised outside the ``except`` block so that it chains to
        nothing."""
        scrubbed: psycopg.Error | None = None
        try:
            return psycopg.connect(
                self._url,
                autocommit=True,
                prepare_threshold=None,  # pooled sessions see tables dropped and re-created: no stale plans
                connect_timeout=self.connect_timeout_s,
                application_name=self.application_name,
            )
        except psycopg.Error as exc:
            scrubbed = _scrubbed_error(exc, redact_dsn(str(exc), secrets=self._secrets()))
        raise scrubbed

    def _new_raw(self) -> psycopg.Connection[tuple[Any, ...]]:
        raw = self._connect()
        try:
            for json_type in ("json", "jsonb"):
                raw.adapters.register_loader(json_type, TextLoader)
            if self.schema:
                raw.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        except BaseException:
            raw.close()
            raise
        return raw

    def _acquire(self) -> psycopg.Connection[tuple[Any, ...]]:
        now = time.monotonic()
        with self._pool_lock:
            if os.getpid() != self._pid:  # forked: the parent's sockets are not ours to use or close
                _FORK_ORPHANS.extend(raw for raw, _ in self._idle)
                self._idle.clear()
                self._pid = os.getpid()
            while self._idle:
                raw, since = self._idle.pop()
                if now - since <= self.max_idle_s and not raw.closed:
                    return raw
                raw.close()
        return self._new_raw()

    def _release(self, raw: psycopg.Connection[tuple[Any, ...]], *, temps: bool) -> None:
        reusable = (
            not raw.closed
            and not raw.broken
            and raw.info.transaction_status == TransactionStatus.IDLE
            and os.getpid() == self._pid
        )
        if reusable and temps:
            try:
                raw.execute("DISCARD TEMP")
            except psycopg.Error:
                reusable = False
        if reusable:
            with self._pool_lock:
                if len(self._idle) < self.max_idle:
                    self._idle.append((raw, time.monotonic()))
                    return
        raw.close()

    def close(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
            forked = os.getpid() != self._pid
        for raw, _ in idle:
            if forked:
                _FORK_ORPHANS.append(raw)
            else:
                raw.close()

    def __enter__(self) -> "PostgresWarehouse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with suppress(Exception):  # at interpreter shutdown there is nothing left to do
            self.close()

    @contextmanager
    def connect(self) -> Iterator[PostgresConnection]:
        raw = self._acquire()
        con = PostgresConnection(raw, self.dialect, own_schema=self.own_schema)
        try:
            yield con
        finally:
            self._release(raw, temps=bool(con.temps))

    @contextmanager
    def dedicated(self) -> Iterator[PostgresConnection]:
        """A connection of its own, never pooled and closed when the block ends: for session state that must
        end with its holder (a session-level advisory lock is released when this connection drops, so by a
        killed process at once)."""
        raw = self._new_raw()
        try:
            yield PostgresConnection(raw, self.dialect, own_schema=self.own_schema)
        finally:
            raw.close()


def _scrubbed_error(exc: psycopg.Error, message: str) -> psycopg.Error:
    """A fresh error of ``exc``'s class with ``message`` only: no ``pgconn``, diagnostics, cause or context."""
    try:
        fresh = type(exc)(message)
    except Exception:  # a subclass with another constructor
        fresh = psycopg.OperationalError(message)
    return fresh


_SECRET_KEYS = r"password|sslpassword|passwd|pwd|pass|secret|token|oauth_client_secret|api_key|apikey"  # noqa: S105
#: ``password=...`` in a key/value DSN (quoted values may hold spaces and escaped quotes) or a URL query string
_SECRET_PAIR = re.compile(
    rf"""(?i)(?<![A-Za-z0-9_])({_SECRET_KEYS})(\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&;]*)"""
)
#: what follows ``scheme://`` up to the path: libpq takes user:password up to an ``@`` before the first ``/``, so an
#: unencoded ``?`` or ``#`` in the password is still part of it
_URL_AUTHORITY = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)([^/\s]*)")


def _mask_userinfo(m: re.Match[str]) -> str:
    authority = m.group(2)
    if "@" not in authority:
        return m.group(0)
    userinfo, host = authority.rsplit("@", 1)
    if ":" not in userinfo:
        return m.group(0)
    user = userinfo.split(":", 1)[0]
    return f"{m.group(1)}{user}:***@{host}"


def redact_dsn(text: str, *, secrets: Sequence[str] = ()) -> str:
    """``text`` with every password masked (``***``), whatever the form: ``scheme://user:password@host`` URLs,
    ``password=`` (and other secret keys) in key/value DSNs and query strings, and any literal ``secrets``
    (e.g. the password itself, where an error message quotes it). For messages and logs."""
    out = _URL_AUTHORITY.sub(_mask_userinfo, text)
    out = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}***", out)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out


_DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
#: ``keyword = value`` of a libpq key/value connection string (a value is a word or a quoted string)
_DSN_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)(?=\s|$)")
#: a ``;keyword=`` or ``,keyword=`` inside an unquoted value: pairs glued together in another driver's style
_GLUED_PAIR = re.compile(r"[;,]\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
_LIBPQ_FALLBACK = frozenset(
    {
        *("host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "service"),
        *("connect_timeout", "client_encoding", "options", "application_name", "fallback_application_name"),
        *("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"),
        *("replication", "gssencmode", "krbsrvname", "gsslib", "gssdelegation", "target_session_attrs"),
        *("sslmode", "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode"),
        *("sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "require_auth", "sslnegotiation"),
        *("ssl_min_protocol_version", "ssl_max_protocol_version", "load_balance_hosts"),
    }
)


@lru_cache(maxsize=1)
def _libpq_keywords() -> frozenset[str]:
    """The connection keywords of the libpq psycopg runs on (a built-in list if it cannot say)."""
    try:
        found = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults() if o.keyword}
    except Exception:
        return _LIBPQ_FALLBACK
    return frozenset(found) or _LIBPQ_FALLBACK


def keyword_dsn_keys(text: str) -> list[str] | None:
    """The keywords of ``text`` when it is a sequence of libpq-style ``keyword=value`` pairs, else None."""
    keys: list[str] = []
    pos = 0
    while pos < len(text):
        m = _DSN_PAIR.match(text, pos)
        if m is None or m.end() == pos:
            return None
        keys.append(m.group(1).lower())
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return keys or None


def _refuse_path(reason: str) -> ConfigurationError:
    return ConfigurationError(
        f"warehouse URL is not usable: {reason}. Give postgresql://user:password@host/db, a libpq key=value "
        "string (host=... dbname=... user=...), duckdb:///path/to/file.duckdb, or a DuckDB file path ending in "
        ".duckdb, .db or .ddb (the value is not shown: it may hold a password)"
    )


def _duckdb_path(path: str, *, explicit: bool) -> str:
    """``path`` if it can name a DuckDB file; never a connection string, a sentence or a password."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise _refuse_path("it holds a line break or control character")
    if "password" in path.lower() or _SECRET_PAIR.search(path):
        raise _refuse_path("it mentions a password")
    if re.search(r"[A-Za-z_][A-Za-z0-9_]*\s*=", path):
        raise _refuse_path("it holds key=value pairs but is not a PostgreSQL connection string")
    if not explicit:
        if re.search(r"\s", path):
            raise _refuse_path("a plain path with spaces (write it as duckdb:///path if that is really a file)")
        if not path.lower().endswith(_DUCKDB_SUFFIXES):
            raise _refuse_path("a plain DuckDB path must end in .duckdb, .db or .ddb")
    return path


_KNOWN_SCHEMES = frozenset(
    {
        *("mysql", "mariadb", "sqlite", "mssql", "sqlserver", "oracle", "redshift", "snowflake", "bigquery"),
        *("clickhouse", "trino", "presto", "databricks", "motherduck", "md", "jdbc", "odbc", "mongodb", "redis"),
        *("postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg", "postgis", "pgsql", "psql"),
        *("http", "https", "file", "s3", "gs", "gcs", "az", "abfs", "ftp", "sftp", "ssh"),
    }
)


def warehouse_from_url(url: str | os.PathLike[str]) -> BaseWarehouse:
    """The warehouse a URL names.

    * ``postgresql://user:password@host:5432/db`` (or ``postgres://``): PostgreSQL; libpq parameters such as
      ``sslmode`` or ``options=-csearch_path%3Dmy_schema`` go in the query string.
    * a libpq key/value string (``host=db.internal dbname=wh user=esp password=...``, every keyword one libpq
      knows): PostgreSQL.
    * ``duckdb:///relative/path.duckdb`` and ``duckdb:////absolute/path.duckdb`` (the SQLAlchemy convention),
      ``duckdb:<path>`` (what :attr:`Warehouse.location` gives), or a plain path ending in ``.duckdb``, ``.db`` or
      ``.ddb``: a DuckDB file.

    Anything else is a :class:`ConfigurationError` that does not repeat the value (it may hold a password): a
    string that is not plausibly a path never becomes a file.
    """
    text = os.fspath(url).strip()
    lowered = text.lower()
    if not text:
        raise ConfigurationError("empty warehouse URL")
    if lowered.startswith(("postgresql://", "postgres://")):
        return PostgresWarehouse(text)
    if lowered.startswith("duckdb:"):
        path = text[len("duckdb:") :]
        if path.startswith("//"):
            path = path[2:]
            if path.startswith("/"):  # duckdb:///rel -> rel; duckdb:////abs -> /abs
                path = path[1:]
        if not path or path == ":memory:":
            raise ConfigurationError("a DuckDB warehouse is a file: give its path, e.g. duckdb:///data/wh.duckdb")
        return Warehouse(_duckdb_path(path, explicit=True))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        # only a well-known scheme is repeated: whatever precedes :// could be a password pasted in the wrong place
        shown = scheme if scheme.lower() in _KNOWN_SCHEMES else "(not shown)"
        raise ConfigurationError(f"unsupported warehouse URL scheme {shown!r}: use postgresql:// or duckdb:///")
    keys = keyword_dsn_keys(text)
    if keys is not None:
        unknown = sorted(set(keys) - _libpq_keywords())
        if unknown:
            raise _refuse_path(
                f"it looks like a key=value connection string, but libpq knows no keyword {', '.join(unknown)}"
            )
        values = [m.group(2) for m in _DSN_PAIR.finditer(text)]
        if any(not v.startswith("'") and _GLUED_PAIR.search(v) for v in values):
            # host=x;password=...;dbname=y would be one host name holding the password
            raise _refuse_path("libpq separates keyword=value pairs with spaces, not ';' or ','")
        return PostgresWarehouse(text)
    return Warehouse(_duckdb_path(text, explicit=False))
