"""DuckDB views over the landed Parquet, created idempotently (``CREATE OR REPLACE VIEW``) in the product's own
schema (``esp`` unless configured otherwise).

``lake_<dataset>`` reads every file of a dataset with pinned hive types. ``lake_<dataset>_latest`` is what the
dataset says now (:data:`LATEST`): for a snapshot dataset (``campaigns``, ``blacklist``, ``balances``,
``book_members``) the newest ``date`` per provider; for ``campaign_stats`` each campaign's newest counters; for
``delivery_events`` each message's newest record (a message delivered one day and bounced the next is landed on
both days, with the same ``event_id``); for ``erasures`` each request's last action per account (``completed``
once it is done). ``sync_rejects`` has none: a sync run that rejects nothing lands no file,
so its newest file can describe an older run. A dataset with no file yet gets an empty view with the same
columns (DuckDB refuses a glob that matches nothing), so queries never break on a fresh lake; running this again
after landing switches it to the real files.

Over an object-store lake (``s3://…``) DuckDB reads through its ``httpfs`` extension, with the credentials the
DuckDB user configures (``CREATE SECRET``); where that extension is not installed, :class:`ViewsUnavailable`
says so instead of creating views that would read nothing.
"""

import os
from collections.abc import Iterable

import duckdb
import pyarrow as pa

from espcore.landing.schemas import DATASETS, SNAPSHOT_DATASETS, DatasetSchema
from espcore.landing.store import Lake, RemoteLake, open_lake
from espcore.warehouse import DEFAULT_OWN_SCHEMA, check_own_schema, quote_ident


def duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"  # type: ignore[attr-defined]
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"  # type: ignore[attr-defined]
    raise TypeError(f"no DuckDB type for {t}")


#: the row filter of each dataset's ``lake_<dataset>_latest`` view, over its ``lake_<dataset>`` view
LATEST: dict[str, str] = {
    **{name: "QUALIFY date = max(date) OVER (PARTITION BY provider)" for name in SNAPSHOT_DATASETS},
    "campaign_stats": "QUALIFY row_number() OVER (PARTITION BY provider, campaign_id "
    "ORDER BY date DESC, snapshot_at DESC) = 1",
    "delivery_events": "QUALIFY row_number() OVER (PARTITION BY provider, event_id "
    "ORDER BY occurred_at DESC NULLS LAST, date DESC, landed_at DESC) = 1",
    "erasures": "QUALIFY row_number() OVER (PARTITION BY provider, request_id, email_hash "
    "ORDER BY acted_at DESC, (action = 'completed') DESC, landed_at DESC) = 1",
}


def _lit(text: str) -> str:
    return text.replace("'", "''")


class ViewsUnavailable(RuntimeError):
    """DuckDB cannot read this lake here (an object store without the httpfs extension)."""


def _dataset_files(lake: Lake, dataset: str) -> tuple[str, bool]:
    """The glob DuckDB reads a dataset with, and whether it matches a file yet."""
    folder = lake.path(f"dataset={dataset}")
    local = lake.local_path(folder)
    prefix = str(local.resolve()) if local is not None else lake.location(folder)
    has_files = any("/provider=" in f and "/date=" in f for f in lake.files(folder))
    return f"{prefix}/provider=*/date=*/*.parquet", has_files


def _source_sql(lake: Lake, spec: DatasetSchema) -> str:
    glob, has_files = _dataset_files(lake, spec.name)
    if has_files:
        return (
            f"SELECT * EXCLUDE (dataset) FROM read_parquet('{_lit(glob)}', "
            "hive_partitioning = true, union_by_name = true, "
            "hive_types = {'provider': VARCHAR, 'date': DATE, 'dataset': VARCHAR})"
        )
    cols = ", ".join(f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in spec.schema)
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS provider, CAST(NULL AS DATE) AS date WHERE false"


def create_lake_views(
    target: str | os.PathLike[str] | duckdb.DuckDBPyConnection,
    lake_root: "str | os.PathLike[str] | Lake",
    datasets: Iterable[str] | None = None,
    *,
    schema: str = DEFAULT_OWN_SCHEMA,
) -> list[str]:
    """(Re)create ``<schema>.lake_<d>`` (and ``<schema>.lake_<d>_latest``, see :data:`LATEST`) for each dataset; return
    the qualified view names. The views live in the product's own schema (created when missing), so they can
    never replace a view of the user's.

    ``target`` is a DuckDB file path or an open connection (left open)."""
    schema = check_own_schema(schema)
    lake = open_lake(lake_root)
    con = target if isinstance(target, duckdb.DuckDBPyConnection) else duckdb.connect(str(target))
    names: list[str] = []
    try:
        if isinstance(lake, RemoteLake):
            try:
                con.execute("LOAD httpfs")
            except duckdb.Error as exc:
                raise ViewsUnavailable(
                    f"DuckDB needs its httpfs extension to read {lake.scheme}:// files "
                    f"(INSTALL httpfs once where extensions can be downloaded): {exc}"
                ) from None
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        for name in datasets or DATASETS:
            spec = DATASETS[name]
            view = f"{schema}.lake_{name}"
            qualified = f"{quote_ident(schema)}.{quote_ident('lake_' + name)}"
            con.execute(f"CREATE OR REPLACE VIEW {qualified} AS {_source_sql(lake, spec)}")
            names.append(view)
            if name in LATEST:
                latest = f"{quote_ident(schema)}.{quote_ident('lake_' + name + '_latest')}"
                con.execute(f"CREATE OR REPLACE VIEW {latest} AS SELECT * FROM {qualified} {LATEST[name]}")
                names.append(f"{view}_latest")
    finally:
        if con is not target:
            con.close()
    return names
