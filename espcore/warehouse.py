"""The warehouse the segments live in, and where sync state is kept.

DuckDB (a file) is the embedded default. The sync engine talks to a :class:`WarehouseConnection`, a thin
dialect-aware wrapper, so the same SQL runs on DuckDB and PostgreSQL: parameters are written ``?``, upserts use
``INSERT ... ON CONFLICT``, and the few dialect-specific expressions come from :class:`Dialect`.
"""

import os
import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from espcore import demo


class Dialect:
    """SQL that differs between engines."""

    name = "duckdb"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        """A JSON text object from (key, SQL expression) pairs."""
        if not pairs:
            return "'{}'"
        inner = ", ".join(f"'{_lit(k)}': {expr}" for k, expr in pairs)
        return f"CAST(to_json({{{inner}}}) AS VARCHAR)"

    def email_syntax_ok(self, expr: str) -> str:
        """A cheap, pushed-down syntax filter (the full check runs in Python on rows about to be sent)."""
        return f"regexp_full_match({expr}, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+')"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def md5(self, expr: str) -> str:
        return f"md5({expr})"


def _lit(text: str) -> str:
    return text.replace("'", "''")


def quote_ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
        return '"' + name.replace('"', '""') + '"'
    return f'"{name}"'


class WarehouseConnection:
    """One open connection; ``?`` parameters; commit per ``transaction()`` block."""

    def __init__(self, raw: duckdb.DuckDBPyConnection, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.raw.execute(sql, list(params or []))

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.raw.execute(sql, list(params or [])).fetchall()

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        return self.raw.execute(sql, list(params or [])).fetchone()

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        if params:
            return self.raw.sql(sql, params=list(params)).to_arrow_table()
        return self.raw.sql(sql).to_arrow_table()

    def load_temp(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` for this connection (replacing any previous one)."""
        self.raw.register(name, table)

    def drop_temp(self, name: str) -> None:
        self.raw.unregister(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.raw.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")


class Warehouse:
    """A DuckDB database file. Connections are short-lived so that several processes can take turns: DuckDB
    allows one process per file at a time, so opening waits (bounded) while another process holds it."""

    dialect = Dialect()

    def __init__(self, path: str | os.PathLike[str], *, lock_wait_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s

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
                con = duckdb.connect(str(self.path), config={"checkpoint_threshold": "8MB"})
                # Short connections: leave checkpoints to the WAL size threshold instead of every close.
                con.execute("PRAGMA disable_checkpoint_on_shutdown")
                return con
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    @contextmanager
    def connect(self) -> Iterator[WarehouseConnection]:
        raw = self._open()
        try:
            yield WarehouseConnection(raw, self.dialect)
        finally:
            raw.close()

    def query_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self.connect() as con:
            return con.arrow(sql, params)


def build_demo_warehouse(wh: Warehouse, *, n: int = 200, seed: int = 7) -> dict[str, int]:
    """Create (or replace) the deterministic demo tables and segment views; returns row counts."""
    rows = demo.customers(n, seed)
    with wh.connect() as con:
        con.load_temp("demo_rows", pa.Table.from_pylist(rows))
        con.execute("CREATE OR REPLACE TABLE customers AS SELECT * FROM demo_rows")
        con.drop_temp("demo_rows")
        for name, sql in demo.SEGMENT_VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        counts = {"customers": len(rows)}
        for name in demo.SEGMENT_VIEWS:
            row = con.fetchone(f"SELECT count(*) FROM {name}")
            counts[name] = int(row[0]) if row else 0
    return counts
