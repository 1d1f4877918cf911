"""Asset checks: a blocking health check on each sync's source segment, and a rejected-share check per book."""

from collections.abc import Mapping, Sequence

import dagster as dg

from esp_warehouse.assets.failures import explain
from esp_warehouse.assets.subscribers import sync_key, to_spec
from esp_warehouse.config import SyncDecl
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.sync.health import segment_health
from espcore.transient import is_transient


def build_source_check(decl: SyncDecl, segment_key: dg.AssetKey) -> dg.AssetChecksDefinition:
    spec = to_spec(decl)

    @dg.asset_check(
        asset=segment_key,
        name=f"{decl.name}_source_ok",
        blocking=True,
        description=f"Segment of sync {decl.name}: readable, mapped columns exist, not empty while rows are synced, "
        f"invalid emails under {decl.max_invalid_pct}%, duplicate keys under {decl.max_duplicate_pct}%.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        try:
            h = segment_health(spec, warehouse.get_warehouse())
        except Exception as exc:
            if is_transient(exc):
                raise
            # the pre-flight: a missing relation or column, or SQL the warehouse refuses, in the database's own
            # words; the check fails (blocking the sync) instead of the sync retrying a query that cannot work
            return dg.AssetCheckResult(
                passed=False,
                description=f"the segment cannot be read: {explain(exc)}",
                metadata={"error": explain(exc)},
            )
        problems = []
        if h.missing_columns:
            problems.append(f"missing mapped columns: {', '.join(h.missing_columns)}")
        if h.rows == 0 and h.synced_rows > 0:
            problems.append(f"segment is empty while {h.synced_rows} rows are synced")
        if h.invalid_pct > decl.max_invalid_pct:
            problems.append(f"{h.invalid_pct:.1f}% invalid emails (limit {decl.max_invalid_pct}%)")
        dup_pct = 100.0 * h.duplicate_keys / h.rows if h.rows else 0.0
        if dup_pct > decl.max_duplicate_pct:
            problems.append(f"{h.duplicate_keys} duplicated keys (limit {decl.max_duplicate_pct}%)")
        return dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems) or "segment is sendable",
            metadata={
                "rows": h.rows,
                "invalid_emails": h.invalid,
                "invalid_pct": round(h.invalid_pct, 2),
                "duplicate_keys": h.duplicate_keys,
                "synced_rows": h.synced_rows,
            },
        )

    return _check


def build_rejected_check(decl: SyncDecl, key: dg.AssetKey) -> dg.AssetChecksDefinition:

    @dg.asset_check(
        asset=key,
        name="rejected_pct",
        blocking=True,
        description=f"Share of rows rejected by the last sync: WARN above {decl.warn_rejected_pct}%, "
        f"ERROR (holds the book's campaign launches) above {decl.error_rejected_pct}%.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(key)
        mat = event.asset_materialization if event else None
        if mat is None:
            return dg.AssetCheckResult(passed=False, description="the book has never been synced")
        raw = mat.metadata.get("rejected_pct")
        pct = float(raw.value) if raw is not None and isinstance(raw.value, int | float) else 0.0
        if pct > decl.error_rejected_pct:
            severity, passed = dg.AssetCheckSeverity.ERROR, False
        elif pct > decl.warn_rejected_pct:
            severity, passed = dg.AssetCheckSeverity.WARN, False
        else:
            severity, passed = dg.AssetCheckSeverity.WARN, True
        return dg.AssetCheckResult(
            passed=passed,
            severity=severity,
            description=f"{pct:.2f}% of attempted rows were rejected",
            metadata={"rejected_pct": pct},
        )

    return _check


def build_checks(
    decls: Sequence[SyncDecl],
    segment_keys: Mapping[str, dg.AssetKey],
    sync_keys: Mapping[str, dg.AssetKey] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """Each sync's blocking source check (on its segment) and rejected-share check (on its asset, whose key is
    ``sync_keys[name]`` when a translation moved it)."""
    out: list[dg.AssetChecksDefinition] = []
    for d in decls:
        out.append(build_source_check(d, segment_keys[d.name]))
        out.append(build_rejected_check(d, sync_key(d, sync_keys)))
    return out
