"""Landing what the providers know into Parquet, as Dagster assets over :mod:`espcore.landing`.

Per provider, ``build_landing_assets(provider)`` returns:

* a subsettable multi-asset of dated snapshots — ``lake/<p>/campaigns``, ``blacklist``, ``balances``,
  ``book_members`` (unpartitioned: each run writes today's file);
* a subsettable multi-asset on ``DAILY`` partitions (today's included) — ``lake/<p>/campaign_stats`` and, where
  the provider logs deliveries, ``lake/<p>/delivery_events`` (partitioned and unpartitioned assets cannot share a
  multi-asset);
* the ``balance_threshold`` check on ``lake/<p>/balances``.

``build_views_asset`` (re)creates the DuckDB ``lake_*`` views after landing. The HTTP, state and Parquet work
lives in ``espcore.landing``; this module only declares assets and turns results into events.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from esp_warehouse.assets.failures import TRANSIENT_RETRY, failures_explained
from esp_warehouse.resources.lake import LakeResource
from espcore.landing.collect import (
    DAILY_LANDERS,
    SNAPSHOT_LANDERS,
    LandingResult,
    balance_rows,
    mask_email,
    provider_datasets,
)
from espcore.landing.schemas import DATASETS
from espcore.landing.store import read_table
from espcore.landing.views import ViewsUnavailable, create_lake_views
from espcore.landing.writer import land

LANDING_RETRY = TRANSIENT_RETRY  # transient faults only: every landing body runs under failures_explained()
# end_offset=1: today's partition exists. A day's campaign_stats file holds every campaign's counters as of that
# day's latest landing (each landing during the day replaces it), so the history is one snapshot per day; a day's
# delivery_events file holds the events that occurred in it (today's grows until the day ends).
DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC", end_offset=1)
VIEWS_KEY = dg.AssetKey(["lake", "views"])
# Every dataset is landed at least daily (main_daily, land_daily_schedule or automation): WARN when a day's landing
# is an hour late, FAIL when two days were missed. Shown in the UI; evaluated by the Dagster daemon.
LANDING_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=49), warn_window=timedelta(hours=25))
PREVIEW_ROWS = 5
PREVIEW_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "balances": ("currency", "amount", "emails_left", "quota_used", "quota_allowed", "not_exposed_reason"),
    "campaigns": ("campaign_id", "name", "state", "provider_status", "book_id", "send_at"),
    "campaign_stats": ("campaign_id", "state", "sent", "delivered", "opened", "clicked", "carried_forward"),
    "blacklist": ("email", "reason", "book_id", "since"),
    "book_members": ("book_id", "email", "state", "provider_status"),
    "delivery_events": ("event_id", "campaign_id", "email", "status", "occurred_at"),
}


class LandingConfig(dg.Config):
    full_refresh: bool = Field(
        default=False, description="Fetch everything again, ignoring the landing state (settled campaigns too)."
    )
    recheck_after_days: float = Field(
        default=7.0, description="Re-fetch a settled campaign's stats once its last fetch is this old."
    )
    settle_after_days: float = Field(
        default=1.0,
        description="A finished campaign sent longer ago than this is settled by one fetch (else by two identical).",
    )


def landing_condition(cron: str = "15 5 * * *", timezone: str = "UTC") -> dg.AutomationCondition:
    """Declarative alternative to the landing schedules (evaluated only while the automation sensor runs): land
    once per ``cron`` tick (daily assets: the latest partition, today's), when neither the asset nor any of its
    upstream syncs and launches is running. Landing is idempotent per day, so a second trigger costs calls only."""
    return (
        dg.AutomationCondition.in_latest_time_window()
        & dg.AutomationCondition.cron_tick_passed(cron, timezone).since_last_handled()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
    )


def landing_key(provider: str, dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", provider, dataset])


# -- metadata ------------------------------------------------------------------------------------------------


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    text = mask_email(str(value)) if column == "email" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:60]


def preview_markdown(dataset: str, rows: Sequence[Mapping[str, Any]], limit: int = PREVIEW_ROWS) -> str:
    """A small Markdown table of the first rows; addresses are masked."""
    cols = PREVIEW_COLUMNS.get(dataset) or tuple(DATASETS[dataset].schema.names[:6])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(c, r.get(c)) for c in cols) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n{len(rows) - limit} more rows")
    return "\n".join(lines)


def landing_metadata(dataset: str, result: LandingResult) -> dict[str, Any]:
    spec = DATASETS[dataset]
    md: dict[str, Any] = {
        "path": dg.MetadataValue.path(result.location),
        "dagster/row_count": result.landed.rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in result.landed.schema]
        ),
        "schema_version": spec.version,
        "date": result.landed.day,
        "http_calls": result.http_calls if result.http_calls is not None else -1,
        "preview": dg.MetadataValue.md(preview_markdown(dataset, result.rows)),
        **dict(result.counters),
    }
    if dataset == "balances" and result.rows:
        row = result.rows[0]
        md["currency"] = row["currency"] or ""
        md["amount"] = str(row["amount"]) if row["amount"] is not None else "not exposed"
        md["emails_left"] = row["emails_left"] if row["emails_left"] is not None else -1
    return md


# -- assets -------------------------------------------------------------------------------------------------------


def _spec(
    provider: str,
    dataset: str,
    deps: Sequence[dg.AssetKey] = (),
    automation: dg.AutomationCondition | None = None,
    kind: str | None = None,
) -> dg.AssetSpec:
    spec = DATASETS[dataset]
    return dg.AssetSpec(
        key=landing_key(provider, dataset),
        deps=list(deps),
        kinds={kind or provider, "parquet"},
        group_name="landing",
        description=f"{spec.description} ({provider})",
        metadata={"email_sync/dataset": dataset, "email_sync/schema_version": spec.version},
        skippable=True,
        automation_condition=automation,
        freshness_policy=LANDING_FRESHNESS,
    )


def _selected(context: dg.AssetExecutionContext, datasets: Sequence[str]) -> Iterator[str]:
    chosen = {k.path[-1] for k in context.selected_asset_keys}
    for d in datasets:
        if d in chosen:
            yield d


def build_snapshot_assets(
    provider: str,
    after: Sequence[dg.AssetKey] = (),
    automation: dg.AutomationCondition | None = None,
    kind: str | None = None,
) -> dg.AssetsDefinition:
    """``after``: assets that change what the provider reports (its books and launches), landed after them.
    ``provider`` is the account (resource key, key prefix, lake partition); ``kind`` its provider, if another."""
    snapshots, _ = provider_datasets(kind or provider)

    @dg.multi_asset(
        name=f"{provider}_landing_snapshots",
        specs=[_spec(provider, d, deps=after, automation=automation, kind=kind) for d in snapshots],
        can_subset=True,
        pool=f"{provider}_api",
        retry_policy=LANDING_RETRY,
        required_resource_keys={provider, "lake"},
    )
    def _snapshots(context: dg.AssetExecutionContext, config: LandingConfig) -> Iterator[dg.MaterializeResult]:
        with failures_explained():
            lake: LakeResource = context.resources.lake
            adapter = getattr(context.resources, provider).get_provider()
            now = datetime.now(UTC)
            for dataset in _selected(context, snapshots):
                extra: dict[str, Any] = {"full_refresh": config.full_refresh} if dataset == "campaigns" else {}
                result = SNAPSHOT_LANDERS[dataset](lake.root, adapter, run_id=context.run.run_id, now=now, **extra)
                context.log.info(f"{provider} {dataset}: {result.landed.rows} rows, {result.http_calls} HTTP calls")
                yield dg.MaterializeResult(
                    asset_key=landing_key(provider, dataset), metadata=landing_metadata(dataset, result)
                )

    return _snapshots


def build_daily_assets(
    provider: str, automation: dg.AutomationCondition | None = None, kind: str | None = None
) -> dg.AssetsDefinition:
    _, daily = provider_datasets(kind or provider)
    campaigns = landing_key(provider, "campaigns")

    @dg.multi_asset(
        name=f"{provider}_landing_daily",
        specs=[
            _spec(provider, d, deps=[campaigns] if d == "campaign_stats" else [], automation=automation, kind=kind)
            for d in daily
        ],
        partitions_def=DAILY,
        can_subset=True,
        pool=f"{provider}_api",
        retry_policy=LANDING_RETRY,
        required_resource_keys={provider, "lake"},
    )
    def _daily(context: dg.AssetExecutionContext, config: LandingConfig) -> Iterator[dg.MaterializeResult]:
        with failures_explained():
            lake: LakeResource = context.resources.lake
            adapter = getattr(context.resources, provider).get_provider()
            day = context.partition_key
            now = datetime.now(UTC)
            for dataset in _selected(context, daily):
                extra: dict[str, Any] = {}
                if dataset == "campaign_stats":
                    extra = {
                        "full_refresh": config.full_refresh,
                        "recheck_after": timedelta(days=config.recheck_after_days),
                        "settle_after": timedelta(days=config.settle_after_days),
                    }
                result = DAILY_LANDERS[dataset](lake.root, adapter, day, run_id=context.run.run_id, now=now, **extra)
                context.log.info(
                    f"{provider} {dataset} {day}: {result.landed.rows} rows, {result.http_calls} HTTP calls"
                )
                yield dg.MaterializeResult(
                    asset_key=landing_key(provider, dataset), metadata=landing_metadata(dataset, result)
                )

    return _daily


class BalanceThresholdConfig(dg.Config):
    min_emails_left: int = Field(default=1000, description="Warn when fewer letters/quota than this remain.")
    min_amount: float = Field(default=0.0, description="Warn when the money balance is below this (if exposed).")


def build_balance_check(provider: str) -> dg.AssetChecksDefinition:
    key = landing_key(provider, "balances")

    @dg.asset_check(
        asset=key,
        name="balance_threshold",
        description="WARN when the balance or sending quota is below the configured threshold.",
    )
    def _balance_threshold(
        context: dg.AssetCheckExecutionContext, config: BalanceThresholdConfig, lake: LakeResource
    ) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(key)
        mat = event.asset_materialization if event is not None else None
        path_value = mat.metadata.get("path") if mat is not None else None
        if mat is None or path_value is None:
            return dg.AssetCheckResult(
                passed=False, severity=dg.AssetCheckSeverity.WARN, description="no balance landed yet"
            )
        path = str(path_value.value)
        row = read_table(lake.root, path).to_pylist()[0]
        md: dict[str, Any] = {
            "path": dg.MetadataValue.path(path),
            "min_emails_left": config.min_emails_left,
            "min_amount": config.min_amount,
            "emails_left": row["emails_left"] if row["emails_left"] is not None else -1,
            "amount": str(row["amount"]) if row["amount"] is not None else "not exposed",
        }
        if row["not_exposed_reason"]:
            return dg.AssetCheckResult(
                passed=True,
                metadata=md,
                description=f"{provider} exposes no balance or quota ({row['not_exposed_reason']}): nothing to check",
            )
        if row["unlimited"]:
            return dg.AssetCheckResult(passed=True, metadata=md, description="unlimited quota")
        low: list[str] = []
        if row["emails_left"] is not None and row["emails_left"] < config.min_emails_left:
            low.append(f"emails_left {row['emails_left']} < {config.min_emails_left}")
        if row["amount"] is not None and float(row["amount"]) < config.min_amount:
            low.append(f"amount {row['amount']} {row['currency'] or ''} < {config.min_amount}".replace("  ", " "))
        if row["emails_left"] is None and row["amount"] is None:
            return dg.AssetCheckResult(passed=True, metadata=md, description="no letters or money figure exposed")
        return dg.AssetCheckResult(
            passed=not low,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=md,
            description="; ".join(low) if low else "balance above the threshold",
        )

    return _balance_threshold


def build_landing_assets(
    provider: str,
    after: Sequence[dg.AssetKey] = (),
    automation: dg.AutomationCondition | None = None,
    kind: str | None = None,
) -> list[dg.AssetsDefinition]:
    """The snapshot multi-asset (landed after ``after``: the account's syncs and launches) and the daily one;
    ``automation`` (e.g. :func:`landing_condition`) is set on every landing asset. ``provider`` is the account
    (``sendpulse``, or a named one such as ``sendpulse_eu``); ``kind`` its provider when the names differ."""
    return [build_snapshot_assets(provider, after, automation, kind), build_daily_assets(provider, automation, kind)]


def daily_landing_keys(provider: str, kind: str | None = None) -> list[dg.AssetKey]:
    return [landing_key(provider, d) for d in provider_datasets(kind or provider)[1]]


def views_database(warehouse: Any) -> str:
    """The DuckDB file the lake views go to: the warehouse's own when it is DuckDB (``duckdb_path`` or a
    ``duckdb:///`` URL). A PostgreSQL warehouse cannot read Parquet, so the views then live in ``duckdb_path``."""
    url = getattr(warehouse, "url", None)
    if isinstance(url, str) and url.startswith("duckdb:///"):
        return url.removeprefix("duckdb:///")
    return str(warehouse.duckdb_path)


def build_views_asset(deps: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=VIEWS_KEY,
        deps=list(deps),
        kinds={"duckdb"},
        group_name="landing",
        retry_policy=LANDING_RETRY,
        required_resource_keys={"lake", "warehouse"},
        automation_condition=dg.AutomationCondition.eager(),
        description="(Re)creates the DuckDB views esp.lake_<dataset> and esp.lake_<dataset>_latest over the Parquet "
        "lake, in the product's own schema.",
    )
    def lake_views(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake
        db = views_database(context.resources.warehouse)
        with failures_explained():
            try:
                names = create_lake_views(db, lake.root, schema=context.resources.warehouse.own_schema)
            except ViewsUnavailable as exc:  # an object-store lake where DuckDB cannot read it: say so, land on
                context.log.warning(f"lake views not created: {exc}")
                return dg.MaterializeResult(
                    metadata={"views": dg.MetadataValue.json([]), "duckdb_path": db, "skipped": str(exc)}
                )
        return dg.MaterializeResult(
            metadata={"views": dg.MetadataValue.json(names), "duckdb_path": db, "dagster/row_count": len(names)}
        )

    return lake_views


# -- kept for callers of the first landing asset -------------------------------------------------------------


def build_balance_asset(provider: str) -> dg.AssetsDefinition:
    """A standalone balance asset (same key as the snapshot multi-asset's: use one or the other)."""

    @dg.asset(
        key=landing_key(provider, "balances"),
        kinds={provider, "parquet"},
        group_name="landing",
        pool=f"{provider}_api",
        retry_policy=LANDING_RETRY,
        required_resource_keys={provider, "lake"},
        description=f"Snapshot of the {provider} balance / quota, one Parquet file per day.",
    )
    def _balance(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake
        adapter = getattr(context.resources, provider).get_provider()
        now = datetime.now(UTC)
        with failures_explained():
            rows = balance_rows(adapter, now)
            landed = land(lake.root, "balances", provider, now.date(), rows, run_id=context.run.run_id, landed_at=now)
        return dg.MaterializeResult(metadata=landing_metadata("balances", LandingResult(landed, rows, None)))

    return _balance
