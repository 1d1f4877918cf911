"""The figures of a segment the blocking source check judges: :func:`segment_health`."""

from dataclasses import dataclass

from espcore.sync.source import check_segment_sql
from espcore.sync.spec import SyncSpec
from espcore.sync.tables import ensure_tables
from espcore.warehouse import BaseWarehouse, quote_ident

__all__ = ["SegmentHealth", "segment_health"]


@dataclass(frozen=True)
class SegmentHealth:
    """What the blocking source check looks at."""

    rows: int
    invalid: int
    duplicate_keys: int
    missing_columns: tuple[str, ...]
    synced_rows: int

    @property
    def invalid_pct(self) -> float:
        return 100.0 * self.invalid / self.rows if self.rows else 0.0


def segment_health(spec: SyncSpec, warehouse: BaseWarehouse, book_id: str | None = None) -> SegmentHealth:
    """Row count, invalid keys, duplicated keys and missing mapped columns of a segment, computed in SQL, after
    the segment passed its run-time guard and in a read-only transaction."""
    with warehouse.connect() as con:
        ensure_tables(con)
        check_segment_sql(con, spec.source_sql)  # a refused segment: SegmentSourceError, nothing read
        with con.read_only():
            columns = set(con.arrow(f"SELECT * FROM ({spec.source_sql}) AS seg LIMIT 0").column_names)
            needed = [spec.primary_key, *spec.fields.values()]
            missing = tuple(c for c in dict.fromkeys(needed) if c not in columns)
            if book_id is None:
                last = con.fetchone(
                    f"SELECT book_id FROM {con.own('sync_runs')} WHERE sync_name = ? "
                    "AND status IN ('success', 'partial') AND book_id IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
                    [spec.name],
                )
                book_id = str(last[0]) if last else None
            row = con.fetchone(
                f"SELECT count(*) FROM {con.own('sync_state')} "
                "WHERE provider = ? AND book_id = ? AND status = 'synced'",
                [spec.provider, book_id or ""],
            )
            synced = int(row[0]) if row else 0
            if missing:
                return SegmentHealth(0, 0, 0, missing, synced)
            d = con.dialect
            pk = f"lower(trim({d.text('seg.' + quote_ident(spec.primary_key))}))"
            row = con.fetchone(
                f"""WITH raw AS (SELECT {pk} AS pk FROM ({spec.source_sql}) AS seg)
                SELECT (SELECT count(*) FROM raw),
                       (SELECT count(*) FROM raw WHERE pk IS NULL OR pk = '' OR NOT {d.email_syntax_ok("pk")}),
                       (SELECT count(*) FROM (SELECT pk FROM raw WHERE pk IS NOT NULL AND pk <> ''
                                              GROUP BY pk HAVING count(*) > 1) AS dup)"""
            )
    rows, invalid, dups = (int(x or 0) for x in (row or (0, 0, 0)))
    return SegmentHealth(rows, invalid, dups, (), synced)
