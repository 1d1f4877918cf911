""" ""The sync engine's tables in the warehouse's own schema: their DDL, the columns added since, and the tables an
earlier release kept in the default schema (copied over once by :func:`ensure_tables`).

Every timestamp in the product's own tables is ``TIMESTAMP WITH TIME ZONE`` and written as an aware UTC value
(:func:`now_utc`, :func:`as_utc`), so it means the same instant whatever the session's time zone; an earlier
release's naive UTC columns are converted once (:meth:`WarehouseConnection.convert_naive_timestamps`)."""

from datetime import UTC, datetime
from typing import overload

from espcore.warehouse import WarehouseConnection

__all__ = ["ADDED_COLUMNS", "DDL", "LEGACY_COLUMNS", "TABLES", "as_utc", "ensure_tables", "now_utc"]

#: the engine's tables, in the own schema
TABLES = ("sync_state", "sync_plan", "sync_changelog", "sync_runs", "sync_lock", "suppression", "sync_suppression_read")

# ``{t}`` is the schema-qualified table name
DDL: list[tuple[str, str]] = [
    (
        "sync_state",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL, pk VARCHAR NOT NULL,
        synced_fp VARCHAR, status VARCHAR NOT NULL, pending_op VARCHAR, pending_fp VARCHAR,
        provider_status VARCHAR, provider_id VARCHAR, attempts INTEGER NOT NULL DEFAULT 0,
        last_error VARCHAR, last_attempt_at TIMESTAMPTZ, last_synced_at TIMESTAMPTZ, run_id VARCHAR,
        rejected_fp VARCHAR,
        PRIMARY KEY (provider, book_id, pk))""",
    ),
    (
        "sync_plan",
        """CREATE TABLE IF NOT EXISTS {t} (
        run_id VARCHAR NOT NULL, sync_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL,
        pk VARCHAR NOT NULL, action VARCHAR NOT NULL, op VARCHAR NOT NULL, fp VARCHAR, payload VARCHAR,
        reason VARCHAR, n BIGINT, page_after VARCHAR)""",
    ),
    (
        "sync_changelog",
        """CREATE TABLE IF NOT EXISTS {t} (
        run_id VARCHAR NOT NULL, sync_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL,
        pk VARCHAR NOT NULL, op VARCHAR NOT NULL, result VARCHAR NOT NULL, error VARCHAR,
        logged_at TIMESTAMPTZ NOT NULL, provider_id VARCHAR)""",
    ),
    (
        "sync_runs",
        """CREATE TABLE IF NOT EXISTS {t} (
        run_id VARCHAR NOT NULL, sync_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, book_id VARCHAR,
        started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, dry_run BOOLEAN NOT NULL, status VARCHAR NOT NULL,
        counts VARCHAR, PRIMARY KEY (run_id, sync_name))""",
    ),
    (
        # one row per locked book: who holds it. On PostgreSQL the advisory lock is the lock and this row only
        # names the holder; on DuckDB the row is the lock.
        "sync_lock",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, book VARCHAR NOT NULL, book_id VARCHAR, run_id VARCHAR NOT NULL,
        sync_name VARCHAR, host VARCHAR, pid INTEGER, proc_start VARCHAR, boot_id VARCHAR, pid_ns VARCHAR,
        acquired_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ, PRIMARY KEY (provider, book))""",
    ),
    (
        "suppression",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, email VARCHAR NOT NULL, reason VARCHAR NOT NULL, added_at TIMESTAMPTZ)""",
    ),
    (
        # the provider's suppression signature when a run last read every suppression of the book and wrote
        # nothing after: a later run that finds the same signature skips that read
        "sync_suppression_read",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL, signature VARCHAR NOT NULL, read_at TIMESTAMPTZ,
        run_id VARCHAR, PRIMARY KEY (provider, book_id))""",
    ),
]

#: columns added after a table's first release: (table, column, type), added when missing
ADDED_COLUMNS: list[tuple[str, str, str]] = [
    ("sync_plan", "n", "BIGINT"),  # the key's row count in the segment; plans are per run, so no backfill
    ("sync_plan", "page_after", "VARCHAR"),  # where a page written ahead starts (pipeline.PAGE)
    ("sync_state", "rejected_fp", "VARCHAR"),  # the fingerprint the provider rejected for good
    ("sync_changelog", "provider_id", "VARCHAR"),  # the journal folds the provider's id into sync_state
]

#: the tables (and their columns) an earlier release kept unqualified, in the connection's default schema: their
#: rows are copied into the own schema when its table is created (the plan and the locks are per run: not kept)
LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sync_state": (
        *("provider", "book_id", "pk", "synced_fp", "status", "pending_op", "pending_fp", "provider_status"),
        *("provider_id", "attempts", "last_error", "last_attempt_at", "last_synced_at", "run_id"),
    ),
    "sync_changelog": ("run_id", "sync_name", "provider", "book_id", "pk", "op", "result", "error", "logged_at"),
    "sync_runs": ("run_id", "sync_name", "provider", "book_id", "started_at", "finished_at", "dry_run", "status"),
    "suppression": ("provider", "email", "reason", "added_at"),
}


def now_utc() -> datetime:
    """Now, as an aware UTC datetime (what the tables' ``TIMESTAMP WITH TIME ZONE`` columns are written with)."""
    return datetime.now(UTC)


@overload
def as_utc(when: datetime) -> datetime: ...
@overload
def as_utc(when: None) -> None: ...
def as_utc(when: datetime | None) -> datetime | None:
    """``when`` as an aware UTC datetime: an aware value is converted (a warehouse returns ``TIMESTAMP WITH TIME
    ZONE`` values in its session's time zone), a naive one is taken to be UTC already."""
    if when is None:
        return None
    return when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)


def ensure_tables(con: WarehouseConnection) -> None:
    """Create the own schema and the engine's tables where missing (idempotent)."""
    con.ensure_own_schema()
    # Serialised: concurrent CREATE TABLE IF NOT EXISTS of one table fails on PostgreSQL (and conflicts on DuckDB).
    with con.transaction(lock="espcore.sync.ddl"):
        before = con.column_types(con.own_schema)  # one catalog query: the tables and columns that exist already
        for table, ddl in DDL:
            con.execute(ddl.format(t=con.own(table)))
        for table, column, typ in ADDED_COLUMNS:
            # only a table of an earlier release lacks it (the DDL has it); checked first: ALTER TABLE takes an
            # exclusive table lock on PostgreSQL even when it changes nothing
            if table in before and column not in before[table]:
                con.execute(f"ALTER TABLE {con.own(table)} ADD COLUMN IF NOT EXISTS {column} {typ}")
        converted = con.convert_naive_timestamps([table for table, _ in DDL if table in before], before)
        fresh = [table for table in LEGACY_COLUMNS if table not in before]
        for table in fresh:  # state an earlier release kept outside the own schema is carried over, once
            con.adopt_legacy_table(table, LEGACY_COLUMNS[table])
    if converted:
        con.checkpoint()
