"""Erasure assets: one per provider account, deleting the addresses of the declared erasure requests from every
book of the account (see :mod:`espcore.erasure`), with a check that no request stays undone past its deadline."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from esp_warehouse.assets.failures import TRANSIENT_RETRY, failures_explained
from esp_warehouse.config import ErasureDecl
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.erasure import ErasureSource, overdue, run_erasure
from espcore.landing.writer import land

ERASURE_CHECK = "erasure_complete"


def erasure_key(account: str) -> dg.AssetKey:
    return dg.AssetKey([account, "erasure"])


def erasure_source(decl: ErasureDecl) -> ErasureSource:
    return ErasureSource(
        decl.source.as_sql(),
        email_column=decl.email_column,
        request_id_column=decl.request_id_column,
        requested_at_column=decl.requested_at_column,
    )


def build_erasure_asset(decl: ErasureDecl, account: str, *, kind: str, source_key: dg.AssetKey) -> dg.AssetsDefinition:
    """The account's erasure asset: every open request erased, what was done landed in the ``erasures`` dataset,
    and the ``erasure_complete`` check (fails when a request older than ``max_age_days`` is not done here)."""
    key = erasure_key(account)
    source = erasure_source(decl)
    max_age = timedelta(days=decl.max_age_days)
    check = dg.AssetCheckSpec(
        ERASURE_CHECK,
        asset=key,
        description=f"Every erasure request older than {decl.max_age_days:g} days is done on {account}.",
    )

    @dg.multi_asset(
        name=f"{account}_erasure",
        specs=[
            dg.AssetSpec(
                key,
                deps=[source_key],
                kinds={kind},
                group_name="erasure",
                description=f"Erasure requests of `{decl.source.as_sql()}` carried out on {account}: the addresses "
                "deleted from every book (and blacklisted where the provider has an account blacklist); an erased "
                "address is never synced again.",
                metadata={"esp/account": account},
            )
        ],
        check_specs=[check],
        pool=f"{account}_api",
        retry_policy=TRANSIENT_RETRY,
        required_resource_keys={account, "warehouse", "lake"},
    )
    def _erase(context: dg.AssetExecutionContext):
        warehouse: WarehouseResource = context.resources.warehouse
        lake: LakeResource = context.resources.lake
        wh = warehouse.get_warehouse()
        run_id = context.run.run_id
        with failures_explained():
            adapter = getattr(context.resources, account).get_provider()
            result = run_erasure(wh, adapter, source, run_id=run_id, log=context.log.info)
            late = overdue(wh, account, result.read, max_age)  # the requests the run just read
        metadata: dict[str, Any] = dict(result.metadata())
        for problem in result.problems[:20]:
            context.log.warning(f"erasure source: {problem}")
        if result.rows:
            landed = land(
                lake.root,
                "erasures",
                account,
                datetime.now(UTC).date(),
                [r.as_dict() for r in result.rows],
                run_id=run_id,
                file_stem="run_" + re.sub(r"[^A-Za-z0-9_-]", "", run_id),
            )
            metadata["erasures_path"] = dg.MetadataValue.path(landed.location)
        if result.pending:
            context.log.warning(
                f"{account}: {result.pending} erasure requests are not done (the provider failed for them); the "
                "next run retries them"
            )
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        oldest = min((r.requested_at for r in late if r.requested_at is not None), default=None)
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=ERASURE_CHECK,
            passed=not late,
            description=(
                f"{len(late)} requests older than {decl.max_age_days:g} days are not done on {account}"
                if late
                else f"no request older than {decl.max_age_days:g} days is open on {account}"
            ),
            metadata={
                "overdue": len(late),
                "overdue_request_ids": ", ".join(sorted(r.request_id for r in late)[:50]),
                "oldest_requested_at": oldest.isoformat() if oldest else None,
            },
        )

    return _erase
