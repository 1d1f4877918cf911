"""The code location: every asset, job and resource, assembled from the YAML declarations."""

import dagster as dg

from assets import warehouse as warehouse_assets
from assets.landing import build_balance_asset
from assets.subscribers import build_sync_asset
from pipelines.config import load_declarations
from pipelines.resources_setup import build_resources

DECLARATIONS = load_declarations()
SYNC_ASSETS = [
    build_sync_asset(s, warehouse_assets.SEGMENT_KEYS.get(s.source.relation or "", dg.AssetKey(["warehouse", s.name])))
    for s in DECLARATIONS.syncs
]
PROVIDERS_IN_USE = sorted({s.provider for s in DECLARATIONS.syncs} | {"sendpulse"})
BALANCE_ASSETS = [build_balance_asset(p) for p in PROVIDERS_IN_USE]

main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.all(),
    description="Build the warehouse segments, sync every book, then land balances.",
)

defs = dg.Definitions.merge(
    warehouse_assets.defs,
    dg.Definitions(assets=[*SYNC_ASSETS, *BALANCE_ASSETS], jobs=[main_job], resources=build_resources()),
)
