"""The code location: every asset, check, job and resource, assembled from the YAML declarations."""

import dagster as dg

from assets import warehouse as warehouse_assets
from assets.campaigns import build_campaign_defs
from assets.checks import build_checks
from assets.landing import (
    build_balance_check,
    build_landing_assets,
    build_views_asset,
    daily_landing_keys,
    landing_condition,
)
from assets.subscribers import book_key, build_sync_asset
from pipelines.automation import (
    build_automation_sensor,
    build_campaign_completed_sensor,
    build_day_schedule,
    build_main_schedule,
    build_segment_change_sensor,
)
from pipelines.config import SyncDecl, load_declarations
from pipelines.resources_setup import build_resources

DECLARATIONS = load_declarations()
WHEN = DECLARATIONS.automation


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
# the main job lands each provider's snapshots after that provider's syncs and launches
PROVIDER_WRITES = {
    p: [book_key(d) for d in DECLARATIONS.syncs if d.provider == p]
    + [dg.AssetKey([c.provider, "campaigns", c.name]) for c in DECLARATIONS.campaigns if c.provider == p]
    for p in PROVIDERS_IN_USE
}
LANDING_AUTOMATION = landing_condition(WHEN.landing_cron, WHEN.timezone)
LANDING_ASSETS = [
    a
    for p in PROVIDERS_IN_USE
    for a in build_landing_assets(p, after=PROVIDER_WRITES[p], automation=LANDING_AUTOMATION)
]
PROVIDER_SNAPSHOT_KEYS = {
    p: [k for a in LANDING_ASSETS for k in a.keys if k.path[1] == p and k not in daily_landing_keys(p)]
    for p in PROVIDERS_IN_USE
}
LANDING_CHECKS = [build_balance_check(p) for p in PROVIDERS_IN_USE]
DAILY_LANDING_KEYS = [k for p in PROVIDERS_IN_USE for k in daily_landing_keys(p)]
LAKE_VIEWS = build_views_asset([k for a in LANDING_ASSETS for k in a.keys])
CHECKS = build_checks(DECLARATIONS.syncs, SEGMENT_KEYS)

main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.all(),  # partitioned by DAILY through the daily landing assets
    description="Build the warehouse segments, sync every book, launch due campaigns, then land the provider "
    "snapshots and the day's stats and events (run it for today's partition).",
)
land_daily_job = dg.define_asset_job(
    "land_daily",
    selection=dg.AssetSelection.assets(*DAILY_LANDING_KEYS),  # partitioned by DAILY, inferred from the assets
    description="Land each provider's daily campaign stats and delivery events for one day.",
)
land_daily_schedule = build_day_schedule(
    "land_daily_schedule",
    land_daily_job,
    WHEN.landing_cron,
    WHEN.timezone,
    "Land today's campaign stats and delivery events (each provider's daily partition).",
)
main_schedule = build_main_schedule(main_job, WHEN.main_cron, WHEN.timezone)
provider_jobs = [
    dg.define_asset_job(
        f"{p}_sync_and_land",
        selection=dg.AssetSelection.groups("warehouse", f"{p}_sync")
        | dg.AssetSelection.assets(*[landing_key for landing_key in PROVIDER_SNAPSHOT_KEYS[p]]),
        description=f"{p}: the warehouse segments, its syncs, then its landed snapshots (no campaign launch).",
    )
    for p in PROVIDERS_IN_USE
]
segment_sensor = build_segment_change_sensor(DECLARATIONS.syncs)
campaign_completed_sensor = build_campaign_completed_sensor(land_daily_job, PROVIDERS_IN_USE)
automation_sensor = build_automation_sensor()

defs = dg.Definitions.merge(
    warehouse_assets.defs,
    build_campaign_defs(DECLARATIONS),  # guard + launch assets, a job per campaign, schedules
    dg.Definitions(
        assets=[*EXTERNAL_SEGMENTS, *SYNC_ASSETS, *LANDING_ASSETS, LAKE_VIEWS],
        asset_checks=[*CHECKS, *LANDING_CHECKS],
        jobs=[main_job, land_daily_job, *provider_jobs],
        schedules=[land_daily_schedule, main_schedule],
        sensors=[segment_sensor, campaign_completed_sensor, automation_sensor],
        resources=build_resources(),
    ),
)
