"""Subscriber syncs: one asset per declared sync (warehouse segment -> provider book).

The asset is thin: planning, batching, state and HTTP live in ``espcore.sync``. A real run yields a
``MaterializeResult`` with the Hightouch-style counts; a dry run yields an ``AssetObservation`` so that the last
materialization always means "the provider has this data".
"""

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from esp_warehouse.assets.failures import TRANSIENT_RETRY, as_failure
from esp_warehouse.config import SyncDecl
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.landing.writer import land
from espcore.sync.engine import run_sync
from espcore.sync.errors import SyncError
from espcore.sync.result import SyncResult
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.sync.validate import mask_email

SYNC_RETRY = TRANSIENT_RETRY  # transient faults only: run_sync's errors go through as_failure()


class SyncRunConfig(dg.Config):
    """Run-time switches of a sync (set them in the launchpad or ``run_config``)."""

    dry_run: bool = Field(default=False, description="Plan only: report what would be sent, send nothing.")
    full_resync: bool = Field(default=False, description="Resend every row, not only changed ones.")
    allow_mass_remove: bool = Field(default=False, description="Allow removing more than max_remove_pct.")
    full_suppression_read: bool = Field(
        default=False,
        description="Read every suppression of the book even when the provider's suppression signature is "
        "unchanged (the suppression_reconcile job sets it).",
    )


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def to_spec(decl: SyncDecl) -> SyncSpec:
    """The core's spec of a declared sync: every field of :class:`SyncSpec` is one of the declaration's (the
    segment, declared as table, view or sql, becomes ``source_sql``)."""
    values = {f.name: getattr(decl, f.name) for f in dataclasses.fields(SyncSpec) if f.name != "source_sql"}
    return SyncSpec(source_sql=decl.source.as_sql(), **values)


def book_key(decl: SyncDecl) -> dg.AssetKey:
    """A sync asset's default key, ``<provider>/books/<book>`` (a translation may give it another)."""
    return dg.AssetKey([decl.provider, "books", slug(decl.book)])


def sync_key(decl: SyncDecl, keys: Mapping[str, dg.AssetKey] | None = None) -> dg.AssetKey:
    """The key of a sync's asset: from ``keys`` (sync name → key, as a translation made them), else the default."""
    return keys[decl.name] if keys and decl.name in keys else book_key(decl)


# Declarative alternative to the schedules and the segment sensor (evaluated only while the automation sensor
# runs): re-sync as soon as the segment asset is updated, once its blocking checks have passed.
SYNC_AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


class SyncTranslator:
    """The one override point for how a sync becomes an asset: subclass, call super(), replace attributes
    (``spec.replace_attributes(...)``, the key included); pass it to ``build_location``, which gives every
    dependent (checks, campaign guards, jobs, sensors, landing) the key it returns. The component's
    ``translation`` attribute is one.

    ``warehouse_kind`` is the engine the segment is read from (``duckdb`` or ``postgres``), shown as a kind."""

    def get_asset_spec(self, decl: SyncDecl, segment_key: dg.AssetKey, warehouse_kind: str = "duckdb") -> dg.AssetSpec:
        mapping = json.dumps([sorted(decl.fields.items()), decl.mode, decl.primary_key, decl.book]).encode()
        return dg.AssetSpec(
            key=book_key(decl),
            deps=[segment_key, *(dg.AssetKey.from_user_string(d) for d in decl.deps)],
            kinds={decl.provider_kind, warehouse_kind},
            group_name=decl.group_name or f"{decl.provider}_sync",
            owners=list(decl.owners),
            tags=dict(decl.tags),
            code_version=hashlib.sha256(mapping).hexdigest()[:12],
            description=decl.description
            or f"{decl.mode} of `{decl.source.as_sql()}` into {decl.provider} book '{decl.book}'",
            metadata={"esp/sync": decl.name, "esp/book": decl.book, "esp/mode": decl.mode},
            skippable=True,  # a dry run observes instead of materializing
            automation_condition=SYNC_AUTOMATION,
        )


def land_rejects(lake_root: Any, decl: SyncDecl, result: SyncResult, *, run_id: str) -> str | None:
    """The run's rejected rows in the ``sync_rejects`` dataset (one file per sync and day, kept so nothing is
    silently lost); their location, or None when nothing was rejected."""
    if not result.rejects:
        return None
    landed = land(
        lake_root, "sync_rejects", decl.provider, datetime.now(UTC).date(), result.rejects, run_id=run_id,
        file_stem=decl.name,
    )  # fmt: skip
    return landed.location


def rejects_markdown(result: SyncResult, limit: int = 20) -> str:
    lines = ["| email | reason | stage |", "|---|---|---|"]
    for r in result.rejects[:limit]:
        reason = str(r["reason"]).replace("|", "/")[:120]
        lines.append(f"| {mask_email(r.get('pk') or r.get('raw_email'))} | {reason} | {r['stage']} |")
    if len(result.rejects) > limit:
        lines.append(f"| … | {len(result.rejects) - limit} more in the rejects dataset | |")
    return "\n".join(lines)


PENDING_CHECK = "no_pending_rows"


def pending_check_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        PENDING_CHECK,
        asset=key,
        description="Every planned row was decided by the provider: none left pending (undecided after a transient "
        "fault) for the next run. WARN otherwise; the run's outcome is then partial.",
    )


def pending_check_result(key: dg.AssetKey, pending: int, *, dry_run: bool = False) -> dg.AssetCheckResult:
    """The pending-rows check of one sync run (a dry run reports what earlier runs left)."""
    if pending:
        description = f"{pending} rows are pending: the provider has not confirmed them; the next run retries them"
    else:
        description = "no row is pending"
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=PENDING_CHECK,
        passed=pending == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=description + (" (dry run: nothing was sent)" if dry_run else ""),
        metadata={"pending": pending},
    )


def build_sync_asset(
    decl: SyncDecl,
    segment_key: dg.AssetKey,
    translator: SyncTranslator | None = None,
    *,
    warehouse_kind: str = "duckdb",
    spec: dg.AssetSpec | None = None,
) -> dg.AssetsDefinition:
    """A sync's asset, with ``spec`` if given (``build_location`` translates first), else the translator's."""
    if spec is None:
        spec = (translator or SyncTranslator()).get_asset_spec(decl, segment_key, warehouse_kind)
    sync_spec = to_spec(decl)

    @dg.multi_asset(
        name=decl.name,
        specs=[spec],
        check_specs=[pending_check_spec(spec.key)],
        pool=f"{decl.provider}_api",
        retry_policy=SYNC_RETRY,
        required_resource_keys={decl.provider, "warehouse", "lake"},
    )
    def _sync(context: dg.AssetExecutionContext, config: SyncRunConfig):
        warehouse: WarehouseResource = context.resources.warehouse
        lake: LakeResource = context.resources.lake
        adapter = getattr(context.resources, decl.provider).get_provider()
        run_id = context.run.run_id
        options = SyncOptions(
            dry_run=config.dry_run,
            full_resync=config.full_resync,
            allow_mass_remove=config.allow_mass_remove,
            full_suppression_read=config.full_suppression_read,
        )
        try:
            result = run_sync(
                sync_spec, adapter, warehouse.get_warehouse(), run_id=run_id, options=options, progress=context.log.info
            )
        except Exception as exc:  # the underlying message; retried only when transient
            raise as_failure(exc, exc.counts if isinstance(exc, SyncError) else None) from exc
        metadata: dict[str, Any] = dict(result.metadata())
        metadata["dagster/row_count"] = result.synced_rows
        metadata["rejects_sample"] = dg.MetadataValue.md(rejects_markdown(result))
        for action, sample in result.samples.items():
            metadata[f"sample_{action}"] = ", ".join(sample)
        landed = land_rejects(lake.root, decl, result, run_id=run_id)
        if landed is not None:
            metadata["rejects_path"] = dg.MetadataValue.path(landed)
        context.log.info(
            f"{decl.name}: planned +{result.counts['planned_add']} ~{result.counts['planned_change']} "
            f"-{result.counts['planned_remove']}, rejected {len(result.rejects)}, "
            f"suppressed {result.counts['suppressed']}, {result.elapsed_seconds:.1f}s"
        )
        pending = int(result.counts.get("pending", 0))
        if result.outcome == "partial":
            context.log.warning(
                f"{decl.name}: partial: {pending} rows left pending (the next run retries them), "
                f"{result.failed} rejected by {decl.provider} in this run"
            )
        if config.dry_run:
            yield dg.AssetObservation(asset_key=spec.key, metadata=metadata)
        else:
            yield dg.MaterializeResult(asset_key=spec.key, metadata=metadata)
        yield pending_check_result(spec.key, pending, dry_run=config.dry_run)

    return _sync
