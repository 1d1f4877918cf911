"""Subscriber syncs: one asset per declared sync (warehouse segment -> provider book)."""

import hashlib
import json
import re
import time

import dagster as dg

from espcore.providers.base import MemberInput
from pipelines.config import SyncDecl
from resources.warehouse import WarehouseResource

SYNC_RETRY = dg.RetryPolicy(max_retries=3, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class SyncTranslator:
    """The one override point for how a sync becomes an asset: subclass, call super(), replace attributes."""

    def get_asset_spec(self, sync: SyncDecl, segment_key: dg.AssetKey) -> dg.AssetSpec:
        mapping = json.dumps([sorted(sync.fields.items()), sync.mode, sync.primary_key, sync.book]).encode()
        return dg.AssetSpec(
            key=dg.AssetKey([sync.provider, "books", slug(sync.book)]),
            deps=[segment_key],
            kinds={sync.provider, "duckdb"},
            group_name=f"{sync.provider}_sync",
            code_version=hashlib.sha256(mapping).hexdigest()[:12],
            description=sync.description or f"{sync.mode} of {sync.source.as_sql()} into {sync.provider} '{sync.book}'",
            metadata={"esp/sync": sync.name, "esp/book": sync.book, "esp/mode": sync.mode},
        )


def build_sync_asset(
    sync: SyncDecl, segment_key: dg.AssetKey, translator: SyncTranslator | None = None
) -> dg.AssetsDefinition:
    spec = (translator or SyncTranslator()).get_asset_spec(sync, segment_key)

    @dg.multi_asset(
        name=sync.name,
        specs=[spec],
        pool=f"{sync.provider}_api",
        retry_policy=SYNC_RETRY,
        required_resource_keys={sync.provider, "warehouse"},
    )
    def _sync(context: dg.AssetExecutionContext):
        warehouse: WarehouseResource = context.resources.warehouse
        adapter = getattr(context.resources, sync.provider).get_provider()
        started = time.monotonic()
        columns = [sync.primary_key, *dict.fromkeys(sync.fields.values())]
        select = ", ".join(f'"{c}"' for c in columns)
        rows = warehouse.get_warehouse().query_arrow(f"SELECT {select} FROM ({sync.source.as_sql()}) AS s").to_pylist()
        book = adapter.ensure_book(sync.book)
        members: dict[str, MemberInput] = {}
        rejected = 0
        for row in rows:
            email = (row[sync.primary_key] or "").strip().lower()
            if not _EMAIL.match(email) or email in members:
                rejected += 1
                continue
            members[email] = MemberInput(email, {k: row[v] for k, v in sync.fields.items()})
        results = adapter.upsert_members(book.id, list(members.values()))
        ok = sum(r.ok for r in results)
        yield dg.MaterializeResult(
            asset_key=spec.key,
            metadata={
                "book_id": book.id,
                "query_size": len(rows),
                "successful_add": ok,
                "failed_add": len(results) - ok,
                "rejected": rejected,
                "elapsed_seconds": round(time.monotonic() - started, 3),
                "dagster/row_count": ok,
            },
        )

    return _sync
