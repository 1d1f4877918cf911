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


def _landing(*fields: pa.Field) -> pa.Schema:
    """A dataset's columns followed by the two every landed file carries."""
    return pa.schema(
        [*fields, pa.field("landed_at", TS, nullable=False), pa.field("run_id", pa.string(), nullable=False)]
    )


CAMPAIGNS = DatasetSchema(
    "campaigns",
    1,
    _landing(
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("book_id", pa.string()),
        pa.field("subject", pa.string()),
        pa.field("sender_email", pa.string()),
        pa.field("state", pa.string(), nullable=False),  # normalised CampaignState
        pa.field("provider_status", pa.string()),  # the provider's raw status
        pa.field("created_at", TS),
        pa.field("send_at", TS),  # scheduled (or actual) send time as the provider reports it
        pa.field("sent_at", TS),  # send time of a campaign in state ``sent``; null otherwise
        pa.field("recipients", pa.int64()),
        pa.field("extra", pa.string()),
        pa.field("snapshot_at", TS, nullable=False),
    ),
    "Every campaign the provider lists, normalised state next to the raw status; a dated snapshot per day.",
)

CAMPAIGN_STATS = DatasetSchema(
    "campaign_stats",
    1,
    _landing(
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("campaign_name", pa.string()),
        pa.field("book_id", pa.string()),
        pa.field("state", pa.string(), nullable=False),
        pa.field("provider_status", pa.string()),
        pa.field("sent", pa.int64()),
        pa.field("delivered", pa.int64()),
        pa.field("opened", pa.int64()),
        pa.field("clicked", pa.int64()),
        pa.field("bounced", pa.int64()),
        pa.field("unsubscribed", pa.int64()),
        pa.field("spam", pa.int64()),
        pa.field("errors", pa.int64()),
        pa.field("queued", pa.int64()),
        pa.field("extra", pa.string()),  # every provider-specific counter and rate, as JSON text
        pa.field("fetched_at", TS, nullable=False),  # when the counters were read from the provider
        pa.field("carried_forward", pa.bool_(), nullable=False),  # settled campaign: counters from landing state
        pa.field("snapshot_at", TS, nullable=False),
    ),
    "Cumulative counters per campaign, one snapshot per day (totals, not increments); extras never dropped.",
)

BLACKLIST = DatasetSchema(
    "blacklist",
    1,
    _landing(
        pa.field("email", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # blacklisted | unsubscribed | bounced | blocked | ...
        pa.field("book_id", pa.string()),  # null = account-wide
        pa.field("since", TS),
        pa.field("detail", pa.string()),
        pa.field("snapshot_at", TS, nullable=False),
    ),
    "Every address the provider will not mail (blacklisted, unsubscribed, bounced), with reason and scope.",
)

BOOK_MEMBERS = DatasetSchema(
    "book_members",
    1,
    _landing(
        pa.field("book_id", pa.string(), nullable=False),
        pa.field("book_name", pa.string()),
        pa.field("email", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # normalised MemberState
        pa.field("provider_status", pa.string()),
        pa.field("provider_id", pa.string()),
        pa.field("added_at", TS),
        pa.field("fields", pa.string()),  # the member's provider fields as JSON text
        pa.field("snapshot_at", TS, nullable=False),
    ),
    "Current membership of every book and each member's status as the provider reports it.",
)

DELIVERY_EVENTS = DatasetSchema(
    "delivery_events",
    1,
    _landing(
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string()),
        pa.field("email", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # normalised
        pa.field("provider_status", pa.string()),
        pa.field("occurred_at", TS),
        pa.field("detail", pa.string()),
        pa.field("extra", pa.string()),
    ),
    "Per-message delivery records where the provider logs them (Pakat delivery logs, LiteStartup emails).",
)

ERASURES = DatasetSchema(
    "erasures",
    1,
    _landing(
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("email_hash", pa.string(), nullable=False),  # SHA-256 of the trimmed, lower-cased address
        # suppressed | deleted | removed | blacklisted | not_present | failed | completed
        pa.field("action", pa.string(), nullable=False),
        pa.field("ok", pa.bool_(), nullable=False),
        pa.field("book_id", pa.string()),
        pa.field("detail", pa.string()),  # the provider's answer, the address replaced by its hash
        pa.field("acted_at", TS, nullable=False),
    ),
    "What each erasure request did on each provider account, for the audit trail; the address only as its hash.",
)

DATASETS: dict[str, DatasetSchema] = {
    d.name: d
    for d in (BALANCES, SYNC_REJECTS, CAMPAIGNS, CAMPAIGN_STATS, BLACKLIST, BOOK_MEMBERS, DELIVERY_EVENTS, ERASURES)
}
#: datasets landed as one dated snapshot per run day (their ``lake_<d>_latest`` view keeps the newest date)
SNAPSHOT_DATASETS: tuple[str, ...] = ("campaigns", "blacklist", "balances", "book_members")
#: datasets partitioned by day in Dagster
DAILY_DATASETS: tuple[str, ...] = ("campaign_stats", "delivery_events")
