"""Fixed, explicit pyarrow schemas of the landed datasets. A schema change is a conscious, tested change:
columns may be added (bump ``version``), never retyped or removed."""

from dataclasses import dataclass

import pyarrow as pa

MONEY = pa.decimal128(20, 6)
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    version: int
    schema: pa.Schema
    description: str

    def schema_with_metadata(self) -> pa.Schema:
        return self.schema.with_metadata(
            {b"schema_version": str(self.version).encode(), b"dataset": self.name.encode()}
        )


BALANCES = DatasetSchema(
    "balances",
    1,
    pa.schema(
        [
            pa.field("snapshot_at", TS, nullable=False),
            pa.field("currency", pa.string()),
            pa.field("amount", MONEY),
            pa.field("bonus", MONEY),
            pa.field("emails_left", pa.int64()),
            pa.field("quota_used", pa.int64()),
            pa.field("quota_allowed", pa.int64()),
            pa.field("unlimited", pa.bool_()),
            pa.field("not_exposed_reason", pa.string()),
            pa.field("extra", pa.string()),  # provider-specific fields as JSON text
            pa.field("landed_at", TS, nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
        ]
    ),
    "Account balance, plan letters or sending quota per provider; nulls where the provider exposes nothing.",
)

SYNC_REJECTS = DatasetSchema(
    "sync_rejects",
    1,
    pa.schema(
        [
            pa.field("sync_name", pa.string(), nullable=False),
            pa.field("raw_email", pa.string()),
            pa.field("pk", pa.string()),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("stage", pa.string(), nullable=False),  # validate | provider
            pa.field("values", pa.string()),  # the mapped values as JSON text
            pa.field("landed_at", TS, nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
        ]
    ),
    "Rows a sync refused, with the reason; one file per sync and day, kept so nothing is silently lost.",
)

DATASETS: dict[str, DatasetSchema] = {d.name: d for d in (BALANCES, SYNC_REJECTS)}
