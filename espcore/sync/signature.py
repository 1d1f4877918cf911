"""Cheap change detection for a segment: row count, newest ``updated_at`` (when the segment has one) and an
order-independent checksum of keys and mapped values, computed in the warehouse in one scan."""

from espcore.sync.spec import SyncSpec
from espcore.warehouse import quote_ident


def segment_signature(spec: SyncSpec, warehouse: object, *, updated_at_column: str = "updated_at") -> str:
    """A string that changes when the segment's rows, keys or mapped values change."""
    wh = warehouse
    with wh.connect() as con:  # type: ignore[attr-defined]
        d = con.dialect
        columns = set(con.arrow(f"SELECT * FROM ({spec.source_sql}) AS seg LIMIT 0").column_names)
        parts = [d.text("seg." + quote_ident(spec.primary_key))]
        parts += [f"coalesce({d.text('seg.' + quote_ident(c))}, '')" for _, c in sorted(spec.fields.items())]
        row_text = " || chr(31) || ".join(parts)
        if getattr(d, "name", "duckdb") == "duckdb":
            checksum = f"bit_xor(hash({row_text}))"
        else:  # PostgreSQL: 60 bits of each row's md5, summed (order-independent)
            checksum = f"sum(('x' || substr(md5({row_text}), 1, 15))::bit(60)::bigint)"
        newest = f"max(seg.{quote_ident(updated_at_column)})" if updated_at_column in columns else "NULL"
        row = con.fetchone(f"SELECT count(*), {d.text(newest)}, {d.text(checksum)} FROM ({spec.source_sql}) AS seg")
    count, latest, check = row if row else (0, None, None)
    return f"{count}|{latest or ''}|{check or ''}"
