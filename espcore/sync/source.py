"""Where a segment comes from, turned into SQL that can only read.

A sync's segment is declared as a ``table``, a ``view`` or a ``sql`` query, and the engine embeds it as a
subquery (``... FROM (<segment sql>) AS seg``) in its plan and health queries. This module is the one place that
turns a declaration into that SQL, and refuses anything that could do more than read the warehouse's tables:

* ``table``/``view``: an identifier (``people``, ``crm.people``, ``"My Schema"."My Table"``, at most
  ``catalog.schema.name``), rendered fully quoted; unquoted parts are folded to lower case, as both engines
  resolve them.
* ``sql``: exactly one query (``SELECT``, ``WITH ... SELECT``, ``UNION``/``INTERSECT``/``EXCEPT``, ``VALUES``),
  parsed with sqlglot. Refused anywhere in the tree: DML and DDL (also in a CTE), ``COPY``, ``ATTACH``,
  ``PRAGMA``, ``SET``, ``CALL`` and other commands, ``SELECT ... INTO``, locking clauses, query parameters; in
  ``FROM``/``JOIN`` only tables, views, subqueries, CTE names, ``VALUES`` and the pure ``unnest``/``generate_series``
  are allowed (no table functions such as ``read_csv`` or ``dblink``, no string or file-like names that DuckDB
  would read as files); and no function that reads or writes files, the network, the environment or server
  state (:data:`DENIED_FUNCTIONS`, :data:`DENIED_FUNCTION_PREFIXES`).

:func:`segment_sql` validates where the engine is not known yet (a declaration file): the query must parse in at
least one of the two dialects, and every dialect that parses it must find it safe. :func:`check_segment_sql` is
the run-time guard, on an open connection: the precise dialect's static check, then the database's own parser
and planner (DuckDB: one ``SELECT`` statement, and no scan in its ``EXPLAIN`` plan but catalog tables and views;
PostgreSQL: ``EXPLAIN`` in a read-only transaction over the extended protocol, which takes one statement only,
and no ``ModifyTable``, ``LockRows`` or function scan in the plan). See ``docs/security.md``.
"""

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Literal, get_args

import duckdb
import psycopg
import sqlglot
from psycopg.pq import TransactionStatus
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokenizer_core import TokenType

from espcore.warehouse import DuckDBConnection, PostgresConnection, WarehouseConnection

SourceKind = Literal["table", "view", "sql"]
SqlDialect = Literal["duckdb", "postgres"]
DIALECTS: tuple[SqlDialect, ...] = get_args(SqlDialect)


class SegmentSourceError(ValueError):
    """A segment source that is not one read-only query over tables and views; the message names the problem."""


# -- names ------------------------------------------------------------------------------------------------------

_NAME_PART = re.compile(r'\s*(?:(?P<bare>[A-Za-z_][A-Za-z0-9_$]*)|"(?P<quoted>(?:[^"]|"")+)")\s*')
#: what a quoted table name must not hold: DuckDB reads a missing table whose name looks like a file or URL as
#: that file ("replacement scan"), so no dots, slashes, colons or glob characters, and nothing unprintable
_FILE_LIKE = re.compile(r"[./\\:*?\[\]{}]|[\x00-\x1f\x7f]")


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def parse_relation(text: str, *, what: str = "segment table") -> tuple[str, ...]:
    """The parts of a table or view name: ``people`` -> ``("people",)``, ``crm.People`` -> ``("crm", "people")``,
    ``"My Schema"."My Table"`` -> ``("My Schema", "My Table")``. Unquoted parts are folded to lower case."""
    parts: list[str] = []
    pos = 0
    while True:
        m = _NAME_PART.match(text, pos)
        if m is None:
            break
        quoted = m.group("quoted")
        parts.append(m.group("bare").lower() if quoted is None else quoted.replace('""', '"'))
        pos = m.end()
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        break
    if not parts or pos != len(text) or len(parts) > 3:
        raise SegmentSourceError(
            f'{what} must be a name (people, crm.people or "My Schema"."My Table"), not SQL: found {_short(text)}'
        )
    for part in parts:
        if _FILE_LIKE.search(part):
            raise SegmentSourceError(
                f"{what} {_short(text)}: a name may not hold '.', '/', '\\\\', ':', glob characters or control "
                "characters inside quotes (DuckDB would read such a name as a file)"
            )
    return tuple(parts)


def render_relation(parts: tuple[str, ...]) -> str:
    """A parsed name, every part double-quoted (``"crm"."people"``)."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


# -- the static check -------------------------------------------------------------------------------------------

#: functions that read or write files, the network, the environment or server state (lower case)
DENIED_FUNCTIONS: frozenset[str] = frozenset(
    {
        # DuckDB
        "read_text",
        "read_blob",
        "glob",
        "sniff_csv",
        "getenv",
        "getvariable",
        "current_setting",
        "query",
        "query_table",
        "which_secret",
        "sql_auto_complete",
        "checkpoint",
        "force_checkpoint",
        "st_read",
        "st_read_meta",
        "load_aws_credentials",
        "nextval",
        "currval",
        "setval",
        "lastval",
        "txid_current",
        # PostgreSQL
        "set_config",
        "loread",
        "lowrite",
        "lo_import",
        "lo_export",
        "dblink",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "inet_server_addr",
        "inet_server_port",
        "inet_client_addr",
        "inet_client_port",
        "version",
    }
)
#: name prefixes of denied functions: every ``pg_`` function (file access, sleeps, advisory locks, backend
#: signals, replication, configuration, statistics resets ...), DuckDB's file readers and catalog/settings
#: table functions, large objects, dblink, and the scanners of other databases
DENIED_FUNCTION_PREFIXES: tuple[str, ...] = (
    "pg_",
    "lo_",
    "dblink",
    "txid_",
    "read_",
    "parquet_",
    "iceberg_",
    "delta_",
    "duckdb_",
    "pragma_",
    "postgres_",
    "mysql_",
    "sqlite_",
    "http",
    "file_",
    "write_",
    "export_",
    "import_",
    "install_",
    "load_",
)
#: table functions allowed in FROM: pure, they read nothing
PURE_TABLE_FUNCTIONS: frozenset[str] = frozenset({"unnest", "generate_series", "generate_subscripts", "range"})


def _classes(*names: str) -> tuple[type[exp.Expr], ...]:
    """The sqlglot expression classes of these names that this sqlglot version has."""
    found = [getattr(exp, name, None) for name in names]
    return tuple(c for c in found if isinstance(c, type) and issubclass(c, exp.Expr))


_DENIED_NODES = _classes(
    "DML",
    "DDL",
    "Insert",
    "Update",
    "Delete",
    "Merge",
    "Create",
    "Drop",
    "Alter",
    "TruncateTable",
    "Copy",
    "Attach",
    "Detach",
    "Pragma",
    "Set",
    "Command",
    "Use",
    "Transaction",
    "Commit",
    "Rollback",
    "Describe",
    "Show",
    "Into",
    "Lock",
    "Pivot",
    "Cache",
    "Uncache",
    "LoadData",
    "Grant",
    "Revoke",
    "Analyze",
    "Summarize",
    "Install",
    "Export",
    "Refresh",
    "Kill",
    "Comment",
    "Declare",
    "Execute",
    "UserDefinedFunction",
)
_PARAMETER_NODES = _classes("Placeholder", "Parameter", "SessionParameter")
_PURE_TABLE_NODES = _classes("Unnest", "GenerateSeries", "ExplodingGenerateSeries")
_QUERY_ROOTS: tuple[type[exp.Expr], ...] = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery)
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_UNICODE_ESCAPE = re.compile(r"(?i)(?<![A-Za-z0-9_$])U&['\"]")
_LOCK_WORDS = {"UPDATE", "SHARE", "NO", "KEY"}


def _statement_name(node: exp.Expr | None) -> str:
    """How a refused statement is named in an error: ``DROP TABLE``, ``INSERT``, ``COPY``, ``CALL`` ..."""
    if node is None:
        return "an empty statement"
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    kind = node.args.get("kind")
    key = node.key.upper().replace("_", " ")
    if isinstance(kind, str) and kind:
        return f"{key} {kind.upper()}"
    if isinstance(node, exp.Semicolon):
        return "';' followed by more text"
    return key


def _function_names(node: exp.Func) -> set[str]:
    """The names a function call may be known by (what was written, for a function sqlglot does not know)."""
    if isinstance(node, exp.Anonymous):
        return {str(node.name).lower()}
    names = {n.lower() for n in type(node).sql_names()}
    return names | {type(node).__name__.lower()}


def _denied_function(names: set[str]) -> str | None:
    for name in sorted(names):
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
            return name
    return None


def _is_from_item(node: exp.Expr) -> bool:
    """Whether ``node`` stands where a relation is read: a FROM/JOIN item (possibly under LATERAL or a table)."""
    parent = node.parent
    return isinstance(parent, exp.From | exp.Join | exp.Lateral) or (
        isinstance(parent, exp.Table) and node.arg_key == "this"
    )


def _parse(sql: str, dialect: SqlDialect) -> list[exp.Expr | None]:
    try:
        return list(sqlglot.parse(sql, read=dialect))
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first.get("line") else ""
        detail = str(first.get("description") or "syntax error")
        raise SegmentSourceError(f"segment sql does not parse as {dialect} SQL{where}: {detail}") from None
    except SqlglotError as exc:
        raise SegmentSourceError(f"segment sql does not parse as {dialect} SQL: {str(exc)[:200]}") from None


def _check_tokens(sql: str, dialect: SqlDialect) -> None:
    if _UNICODE_ESCAPE.search(sql):
        raise SegmentSourceError("segment sql may not use U&'...' or U&\"...\" escapes (write the text itself)")
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        raise SegmentSourceError(
            f"segment sql does not parse as {dialect} SQL (unterminated string, quote or comment)"
        ) from None
    for i, token in enumerate(tokens[:-1]):
        if token.token_type == TokenType.FOR and tokens[i + 1].text.upper() in _LOCK_WORDS:
            words = [t.text.upper() for t in tokens[i : i + 4]]
            end = next((j for j, w in enumerate(words) if w in ("UPDATE", "SHARE")), 1)
            shown = " ".join(words[: end + 1])
            raise SegmentSourceError(f"segment sql may not lock rows: found {shown}")


def _check_tree(root: exp.Expr, dialect: SqlDialect) -> None:
    if not isinstance(root, _QUERY_ROOTS):
        raise SegmentSourceError(f"segment sql must be a single SELECT: found {_statement_name(root)}")
    for node in root.walk():
        if isinstance(node, _DENIED_NODES):
            if isinstance(node, exp.Into):
                raise SegmentSourceError("segment sql must be a single SELECT: found SELECT ... INTO")
            if isinstance(node, exp.Lock):
                raise SegmentSourceError("segment sql may not lock rows: found FOR UPDATE/SHARE")
            raise SegmentSourceError(f"segment sql must be a single SELECT: found {_statement_name(node)}")
        if isinstance(node, _PARAMETER_NODES):
            raise SegmentSourceError(
                f"segment sql may not hold query parameters: found {node.sql(dialect)} "
                "(on PostgreSQL write jsonb '?' operators as functions, e.g. jsonb_exists)"
            )
        if isinstance(node, exp.Table):
            _check_table(node, dialect)
        elif isinstance(node, exp.Func):
            _check_function(node, dialect)


def _check_table(node: exp.Table, dialect: SqlDialect) -> None:
    if node.args.get("rows_from") is not None:
        raise SegmentSourceError(
            "segment sql may only read tables, views, subqueries, CTEs and VALUES: found ROWS FROM"
        )
    this = node.this
    if isinstance(this, exp.Func):
        return  # a table function: judged as a function in FROM
    parts = [node.args.get(k) for k in ("catalog", "db", "this")]
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, exp.Identifier):
            raise SegmentSourceError(
                "segment sql may only read tables, views, subqueries, CTEs and VALUES: "
                f"found {node.sql(dialect)[:80]!r}"
            )
        if part.quoted and _FILE_LIKE.search(part.name):
            raise SegmentSourceError(
                f"segment sql reads a file: FROM {part.sql(dialect)} (a quoted or string name holding '.', '/', "
                "':' or a glob character is read by DuckDB as a file; only tables and views may be read)"
            )


def _check_function(node: exp.Func, dialect: SqlDialect) -> None:
    names = _function_names(node)
    if isinstance(node, exp.Anonymous) and not _FUNCTION_NAME.fullmatch(str(node.name)):
        raise SegmentSourceError(f"segment sql calls a function with an unusual name: {str(node.name)[:60]!r}")
    denied = _denied_function(names)
    if denied is not None:
        raise SegmentSourceError(
            f"segment sql may not call {denied}(): it reads or writes files, the network, the environment or "
            "server state"
        )
    if _is_from_item(node) and not (names & PURE_TABLE_FUNCTIONS or isinstance(node, _PURE_TABLE_NODES)):
        shown = sorted(names)[0] if isinstance(node, exp.Anonymous) else node.sql_name().lower()
        raise SegmentSourceError(
            f"segment sql may only read tables, views, subqueries, CTEs and VALUES: found table function {shown}()"
        )


def _normalise(sql: str) -> str:
    """Trimmed, without trailing semicolons; a final line comment gets a newline, so that the engine's
    ``FROM (<sql>) AS seg`` is never commented out."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    last_line = text.rsplit("\n", 1)[-1]
    if "--" in last_line:
        text += "\n"
    return text


@lru_cache(maxsize=256)
def _check_select(sql: str, dialect: SqlDialect) -> None:
    _check_tokens(sql, dialect)
    statements = [s for s in _parse(sql, dialect) if s is not None]
    if not statements:
        raise SegmentSourceError("segment sql is empty")
    if len(statements) > 1:
        found = ", ".join(_statement_name(s) for s in statements[1:4])
        raise SegmentSourceError(f"segment sql must be a single SELECT: found {len(statements)} statements ({found})")
    _check_tree(statements[0], dialect)


def check_select(sql: str, dialect: SqlDialect | None = None) -> str:
    """``sql`` normalised (trimmed, no trailing ``;``) once it is one read-only query, else
    :class:`SegmentSourceError`.

    With ``dialect`` the query must parse and pass in that dialect. Without (the engine is not known yet), it must
    parse in at least one of DuckDB and PostgreSQL, and pass in every one that parses it: the run-time guard
    (:func:`check_segment_sql`) checks again in the warehouse's own dialect."""
    if not isinstance(sql, str):
        raise SegmentSourceError("segment sql must be text")
    text = _normalise(sql)
    if not text:
        raise SegmentSourceError("segment sql is empty")
    if "\x00" in text:
        raise SegmentSourceError("segment sql holds a NUL character")
    if dialect is not None:
        _check_select(text, dialect)
        return text
    parse_errors: list[SegmentSourceError] = []
    for d in DIALECTS:
        try:
            _check_select(text, d)
        except SegmentSourceError as exc:
            if "does not parse" not in str(exc):
                raise
            parse_errors.append(exc)
    if len(parse_errors) == len(DIALECTS):
        raise parse_errors[0]
    return text


def segment_sql(kind: SourceKind, text: str, dialect: SqlDialect | None = None) -> str:
    """The SQL of a segment declared as ``table``, ``view`` or ``sql``: ``SELECT * FROM "schema"."name"`` for a
    name, the checked query for ``sql``; :class:`SegmentSourceError` when it is not a safe read."""
    if kind in ("table", "view"):
        return f"SELECT * FROM {render_relation(parse_relation(text, what=f'segment {kind}'))}"
    if kind == "sql":
        return check_select(text, dialect)
    raise SegmentSourceError(f"unknown segment source kind {kind!r} (table, view or sql)")


# -- the run-time guard -----------------------------------------------------------------------------------------


def wrap_segment(sql: str) -> str:
    """How the engine embeds a segment: ``SELECT * FROM (<sql>) AS seg``."""
    return f"SELECT * FROM ({sql}) AS seg"


def _relations(sql: str, dialect: SqlDialect) -> list[exp.Table]:
    """The tables and views a (checked) query names, without its CTE names."""
    root = sqlglot.parse_one(sql, read=dialect)
    ctes = {str(c.alias_or_name).lower() for c in root.find_all(exp.CTE)}
    out: list[exp.Table] = []
    for table in root.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue
        if not table.args.get("db") and table.name.lower() in ctes:
            continue
        out.append(table)
    return out


#: DuckDB plan leaves that read no file: catalog tables, VALUES, CTEs and the planner's own buffers
_DUCKDB_LEAVES = frozenset(
    {
        "SEQ_SCAN",
        "TABLE_SCAN",
        "INDEX_SCAN",
        "COLUMN_DATA_SCAN",
        "DUMMY_SCAN",
        "EMPTY_RESULT",
        "CTE_SCAN",
        "DELIM_SCAN",
        "CHUNK_SCAN",
        "RECURSIVE_CTE_SCAN",
        "RECURSIVE_RECURRING_CTE_SCAN",
        "EXPRESSION_SCAN",
    }
)
_DUCKDB_PURE = frozenset(n.upper() for n in PURE_TABLE_FUNCTIONS)


def _duckdb_nodes(plan: Any) -> Iterator[dict[str, Any]]:
    stack = list(plan) if isinstance(plan, list) else [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.get("children") or [])


def _duckdb_foreign_scans(con: DuckDBConnection, sql: str) -> set[str]:
    """The scans of a DuckDB plan that are not catalog tables, VALUES or CTEs (table functions, files)."""
    rows = con.raw.execute("EXPLAIN (FORMAT json) " + sql).fetchall()
    found: set[str] = set()
    for row in rows:
        for node in _duckdb_nodes(json.loads(row[-1])):
            info = node.get("extra_info") or {}
            name = str(node.get("name") or "").strip().upper()
            function = info.get("Function") if isinstance(info, dict) else None
            if function:
                found.add(str(function).upper())
            elif not node.get("children") and name not in _DUCKDB_LEAVES:
                found.add(name or "?")
    return found - _DUCKDB_PURE


def _duckdb_is_view(con: DuckDBConnection, table: exp.Table) -> bool:
    parts = [table.args.get(k) for k in ("catalog", "db")]
    conditions = ["lower(view_name) = lower(?)"]
    params: list[Any] = [table.name]
    for column, part in zip(("database_name", "schema_name"), parts, strict=True):
        if isinstance(part, exp.Identifier):
            conditions.append(f"lower({column}) = lower(?)")
            params.append(part.name)
    row = con.fetchone(f"SELECT count(*) FROM duckdb_views() WHERE {' AND '.join(conditions)}", params)
    return bool(row and row[0])


def _check_duckdb(con: DuckDBConnection, sql: str) -> None:
    wrapped = wrap_segment(sql)
    try:
        statements = con.raw.extract_statements(wrapped)
    except duckdb.Error as exc:
        raise SegmentSourceError(f"segment sql does not parse in DuckDB: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(str(s.type.name) for s in statements)
        raise SegmentSourceError(f"segment sql must be a single SELECT: DuckDB reads it as {kinds or 'nothing'}")
    scans = _duckdb_foreign_scans(con, wrapped)
    if scans:
        # a catalog view may itself read files (the lake views read Parquet): what the views the query names read
        # is allowed, anything else is not
        allowed: set[str] = set()
        for table in _relations(sql, "duckdb"):
            if _duckdb_is_view(con, table):
                allowed |= _duckdb_foreign_scans(con, "SELECT * FROM " + table.sql("duckdb"))
        extra = scans - allowed
        if extra:
            raise SegmentSourceError(
                "segment sql reads something other than tables and views (DuckDB plan: "
                f"{', '.join(sorted(extra))}); read files through a view the warehouse owner created"
            )


_PG_REFUSED_NODES = {"ModifyTable": "a data-modifying statement", "LockRows": "a row-locking clause"}
_PG_FUNCTION_NODES = ("Function Scan", "Table Function Scan")


def _pg_plan(con: PostgresConnection, sql: str) -> list[dict[str, Any]]:
    """The EXPLAIN plan nodes of ``sql``: extended protocol (one statement only), nothing executed."""
    with con.raw.cursor(binary=True) as cur:
        cur.execute("EXPLAIN (FORMAT JSON) " + sql)  # type: ignore[arg-type]  # checked text, no parameters
        row = cur.fetchone()
    doc = row[0] if row else []
    if isinstance(doc, bytes | str):
        doc = json.loads(doc)
    nodes: list[dict[str, Any]] = []
    stack = [entry.get("Plan") for entry in doc if isinstance(entry, dict)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            nodes.append(node)
            stack.extend(node.get("Plans") or [])
    return nodes


def _pg_foreign_scans(nodes: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        kind = str(node.get("Node Type") or "")
        if kind in _PG_REFUSED_NODES:
            raise SegmentSourceError(f"segment sql must only read: the plan holds {_PG_REFUSED_NODES[kind]} ({kind})")
        if kind in _PG_FUNCTION_NODES:
            found.add(str(node.get("Function Name") or kind).lower())
    return found - PURE_TABLE_FUNCTIONS


def _check_postgres(con: PostgresConnection, sql: str) -> None:
    wrapped = wrap_segment(sql)
    # a read-only transaction of its own; inside the caller's transaction, a savepoint (nothing is executed)
    idle = con.raw.info.transaction_status == TransactionStatus.IDLE
    try:
        with con.read_only() if idle else con.raw.transaction():
            scans = _pg_foreign_scans(_pg_plan(con, wrapped))
            if scans:
                allowed: set[str] = set()
                for table in _relations(sql, "postgres"):
                    allowed |= _pg_foreign_scans(_pg_plan(con, "SELECT * FROM " + table.sql("postgres")))
                extra = scans - allowed
                if extra:
                    raise SegmentSourceError(
                        "segment sql reads something other than tables and views (PostgreSQL plan: function scan "
                        f"of {', '.join(sorted(extra))}); read it through a view the warehouse owner created"
                    )
    except psycopg.errors.SyntaxError as exc:
        raise SegmentSourceError(f"segment sql is not one PostgreSQL query: {str(exc).splitlines()[0]}") from None


def check_segment_sql(con: WarehouseConnection, sql: str) -> None:
    """The run-time guard: refuse ``sql`` unless, in this connection's dialect, it is one read-only query over
    tables and views. Runs the static check in the precise dialect, then asks the database: DuckDB's parser must
    see one SELECT and its ``EXPLAIN`` plan no scan but catalog tables/views (file reads are allowed only where a
    view the query names holds them); PostgreSQL plans it with ``EXPLAIN`` in a read-only transaction over the
    extended protocol (a second statement is an error there) and its plan may hold no data-modifying node, no
    row lock and no function scan beyond the views'. Nothing is executed. Raises :class:`SegmentSourceError`;
    a query the database cannot plan (a missing table) raises the database's own error."""
    dialect = con.dialect.name
    if dialect not in DIALECTS:
        raise SegmentSourceError(f"no segment check for warehouse dialect {dialect!r}")
    check_select(sql, dialect)  # type: ignore[arg-type]
    # the database sees exactly what the engine will embed: ``sql`` as given, not its normalised form
    if isinstance(con, DuckDBConnection):
        _check_duckdb(con, sql)
    elif isinstance(con, PostgresConnection):
        _check_postgres(con, sql)
