"""Landing what the providers know into Parquet: balances (more datasets follow)."""

import json
from datetime import UTC, datetime

import dagster as dg

from espcore.landing.writer import land
from resources.lake import LakeResource

LANDING_RETRY = dg.RetryPolicy(max_retries=3, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def build_balance_asset(provider: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["lake", provider, "balances"],
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
        b = adapter.balance()
        row = {
            "snapshot_at": now,
            "currency": b.currency,
            "amount": b.amount,
            "bonus": b.bonus,
            "emails_left": b.emails_left,
            "quota_used": b.quota_used,
            "quota_allowed": b.quota_allowed,
            "unlimited": b.unlimited,
            "not_exposed_reason": b.not_exposed_reason,
            "extra": json.dumps(dict(b.extra), default=str, sort_keys=True) if b.extra else None,
        }
        landed = land(lake.root, "balances", provider, now.date(), [row], run_id=context.run.run_id, landed_at=now)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(landed.path)),
                "dagster/row_count": landed.rows,
                "currency": b.currency or "",
                "amount": str(b.amount) if b.amount is not None else "not exposed",
                "emails_left": b.emails_left if b.emails_left is not None else -1,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(f.name, str(f.type)) for f in landed.schema]
                ),
            }
        )

    return _balance
