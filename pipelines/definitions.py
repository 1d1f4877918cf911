"""The code location: every asset, check, job and resource, assembled from the YAML declarations."""

import dagster as dg

from assets import warehouse as warehouse_assets
from assets.checks import build_checks
from assets.landing import build_balance_asset
from assets.subscribers import build_sync_asset
from pipelines.config import SyncDecl, load_declarations
from pipelines.resources_setup import build_resources

DECLARATIONS = load_declarations()


def segment_key(decl: SyncDecl) -> dg.AssetKey:
    """The demo's segment assets by view name; anything else becomes an external warehouse asset."""
    relation = decl.source.relation
    if relation and relation in warehouse_assets.SEGMENT_KEYS:
        return warehouse_assets.SEGMENT_KEYS[relation]
    return dg.AssetKey(["warehouse", relation or f"{decl.name}_segment"])


SEGMENT_KEYS = {d.name: segment_key(d) for d in DECLARATIONS.syncs}
EXTERNAL_SEGMENTS = [
    dg.AssetSpec(key, group_name="warehouse", kinds={"duckdb"}, description="A warehouse table, view or query.")
    for key in dict.fromkeys(SEGMENT_KEYS.values())
    if key not in warehouse_assets.SEGMENT_KEYS.values()
]
SYNC_ASSETS = [build_sync_asset(d, SEGMENT_KEYS[d.name]) for d in DECLARATIONS.syncs]
PROVIDERS_IN_USE = sorted({d.provider for d in DECLARATIONS.syncs})
BALANCE_ASSETS = [build_balance_asset(p) for p in PROVIDERS_IN_USE]
CHECKS = build_checks(DECLARATIONS.syncs, SEGMENT_KEYS)

main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.all(),
    description="Build the warehouse segments, sync every book, then land balances.",
)

defs = dg.Definitions.merge(
    warehouse_assets.defs,
    dg.Definitions(
        assets=[*EXTERNAL_SEGMENTS, *SYNC_ASSETS, *BALANCE_ASSETS],
        asset_checks=CHECKS,
        jobs=[main_job],
        resources=build_resources(),
    ),
)
