"""One builder for a code location: every asset, check, job, schedule and sensor the declarations ask for.

The production definitions (:mod:`pipelines.definitions`) and the demo (:mod:`pipelines.demo`) are both built
here, from their own declarations and resources. Segments are external warehouse assets (the product reads them
and never builds them); only the demo passes ``segment_assets`` that build its own demo tables.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from esp_warehouse.assets.campaigns import build_campaign_defs
from esp_warehouse.assets.checks import build_checks
from esp_warehouse.assets.erasure import build_erasure_asset, erasure_key
from esp_warehouse.assets.landing import (
    build_balance_check,
    build_landing_assets,
    build_views_asset,
    daily_landing_keys,
    landing_condition,
)
from esp_warehouse.assets.subscribers import SyncTranslator, build_sync_asset
from esp_warehouse.automation import (
    build_automation_sensor,
    build_campaign_completed_sensor,
    build_day_schedule,
    build_main_schedule,
    build_segment_change_sensor,
)
from esp_warehouse.config import ConfigError, Declarations, SourceDecl, SyncDecl
from esp_warehouse.resources.warehouse import WarehouseResource


def segment_key(decl: SyncDecl) -> dg.AssetKey:
    """``warehouse/<relation>`` for a table or view (a schema-qualified name keeps its schema as a prefix),
    ``warehouse/<sync>_segment`` for SQL."""
    return source_key(decl.source, f"{decl.name}_segment")


def source_key(source: SourceDecl, query_name: str) -> dg.AssetKey:
    """``warehouse/<relation>`` for a table or view, ``warehouse/<query_name>`` for SQL."""
    relation = source.relation
    if not relation:
        return dg.AssetKey(["warehouse", query_name])
    parts = [re.sub(r"[^A-Za-z0-9_]+", "_", p.strip('"')).strip("_") or "_" for p in _split_name(relation)]
    return dg.AssetKey(["warehouse", "__".join(parts)])


def _split_name(name: str) -> list[str]:
    """``a.b`` / ``"A b"."c"`` into its parts (dots inside double quotes do not split)."""
    return [m.group(0) for m in re.finditer(r'"(?:[^"]|"")*"|[^.]+', name)]


def _refuse_clashing_keys(sync_keys: Mapping[str, dg.AssetKey], segment_keys: set[dg.AssetKey]) -> None:
    """Two syncs on one key, or a sync on a segment's key, is a declaration mistake: say which, before Dagster's
    own duplicate-key error does without naming the syncs."""
    seen: dict[dg.AssetKey, str] = {}
    for name, key in sync_keys.items():
        if key in seen:
            raise ConfigError(
                f"syncs {seen[key]} and {name} have one asset key, {key.to_user_string()}: give each its own book "
                "(or its own key in the translation)"
            )
        if key in segment_keys:
            raise ConfigError(f"sync {name}'s asset key {key.to_user_string()} is a segment's key")
        seen[key] = name


@dataclass
class Location:
    """What :func:`build_location` made, by kind, plus the merged ``defs``."""

    declarations: Declarations
    defs: dg.Definitions
    providers: list[str]
    segment_keys: dict[str, dg.AssetKey]
    sync_keys: dict[str, dg.AssetKey]
    sync_assets: list[dg.AssetsDefinition]
    landing_assets: list[dg.AssetsDefinition]
    provider_snapshot_keys: dict[str, list[dg.AssetKey]]
    daily_landing_keys: list[dg.AssetKey]
    jobs: list[Any] = field(default_factory=list)


def build_location(
    decls: Declarations,
    resources: Mapping[str, object],
    *,
    segment_assets: Sequence[dg.AssetsDefinition] = (),
    translator: SyncTranslator | None = None,
) -> Location:
    """Assemble the definitions. ``segment_assets`` (the demo's) build some segment keys; every other segment
    is an external asset of the user's warehouse. ``translator`` shapes each sync's asset spec (its key too:
    every check, guard, job and sensor is built on the keys it returns); the sync assets' warehouse kind is the
    engine of ``resources["warehouse"]``."""
    when = decls.automation
    built = {k for a in segment_assets for k in a.keys}
    segment_keys = {d.name: segment_key(d) for d in decls.syncs}
    erasure_source = source_key(decls.erasure.source, "erasure_requests") if decls.erasure else None
    external_segments = [
        dg.AssetSpec(key, group_name="warehouse", description="A warehouse table, view or query (read only).")
        for key in dict.fromkeys([*segment_keys.values(), *filter(None, [erasure_source])])
        if key not in built
    ]
    warehouse = resources.get("warehouse")
    kind = warehouse.engine_kind() if isinstance(warehouse, WarehouseResource) else "duckdb"
    translator = translator or SyncTranslator()
    specs = {d.name: translator.get_asset_spec(d, segment_keys[d.name], kind) for d in decls.syncs}
    # an account's erasure runs before its syncs in any run that holds both (its suppression wins either way)
    erasures = {a: erasure_key(a) for a in decls.erasure_accounts()}
    specs = {
        d.name: specs[d.name].merge_attributes(deps=[erasures[d.provider]]) if d.provider in erasures else specs[d.name]
        for d in decls.syncs
    }
    sync_keys = {name: spec.key for name, spec in specs.items()}
    _refuse_clashing_keys(sync_keys, set(segment_keys.values()))
    sync_assets = [build_sync_asset(d, segment_keys[d.name], spec=specs[d.name]) for d in decls.syncs]
    providers = sorted({d.provider for d in decls.syncs} | {c.provider for c in decls.campaigns} | set(erasures))
    # the main job lands each provider's snapshots after that provider's syncs and launches
    writes = {
        p: [sync_keys[d.name] for d in decls.syncs if d.provider == p]
        + [dg.AssetKey([c.provider, "campaigns", c.name]) for c in decls.campaigns if c.provider == p]
        for p in providers
    }
    automation = landing_condition(when.landing_cron, when.timezone)
    kinds = {p: decls.kind(p) for p in providers}
    landing_assets = [
        a for p in providers for a in build_landing_assets(p, after=writes[p], automation=automation, kind=kinds[p])
    ]
    snapshot_keys = {
        p: [k for a in landing_assets for k in a.keys if k.path[1] == p and k not in daily_landing_keys(p, kinds[p])]
        for p in providers
    }
    daily_keys = [k for p in providers for k in daily_landing_keys(p, kinds[p])]
    erasure_assets = [
        build_erasure_asset(decls.erasure, a, kind=decls.kind(a), source_key=erasure_source)
        for a in erasures
        if decls.erasure is not None and erasure_source is not None
    ]
    views = build_views_asset([k for a in landing_assets for k in a.keys])
    checks = build_checks(decls.syncs, segment_keys, sync_keys)

    main_job = dg.define_asset_job(
        "main",
        # partitioned by DAILY through the daily landing assets; the segments' blocking source checks run first
        selection=dg.AssetSelection.all() | dg.AssetSelection.checks_for_assets(*segment_keys.values()),
        description="Sync every book, launch due campaigns, then land the provider snapshots and the day's stats "
        "and events (run it for today's partition).",
    )
    land_daily_job = dg.define_asset_job(
        "land_daily",
        selection=dg.AssetSelection.assets(*daily_keys),  # partitioned by DAILY, inferred from the assets
        description="Land each provider's daily campaign stats and delivery events for one day.",
    )
    provider_jobs = [
        dg.define_asset_job(
            f"{p}_sync_and_land",
            selection=dg.AssetSelection.groups("warehouse")
            | dg.AssetSelection.assets(*(sync_keys[d.name] for d in decls.syncs if d.provider == p))
            | dg.AssetSelection.checks_for_assets(*(segment_keys[d.name] for d in decls.syncs if d.provider == p))
            | dg.AssetSelection.assets(*snapshot_keys[p], *([erasures[p]] if p in erasures else [])),
            description=f"{p}: its erasure requests and syncs, then its landed snapshots (no campaign launch).",
        )
        for p in providers
    ]
    reconcile_jobs = []
    if when.suppression_read_cron is not None and decls.syncs:
        # opt-in: every book re-synced with a full read of its suppressions (its own runs, its own metadata)
        reconcile_jobs.append(
            dg.define_asset_job(
                "suppression_reconcile",
                selection=dg.AssetSelection.assets(*sync_keys.values()),
                config={"ops": {d.name: {"config": {"full_suppression_read": True}} for d in decls.syncs}},
                description="Every sync, reading all the suppressions of its book even where the provider's "
                "suppression signature has not moved (the other runs skip that read).",
            )
        )
    schedules = [
        build_day_schedule(
            "land_daily_schedule",
            land_daily_job,
            when.landing_cron,
            when.timezone,
            "Land today's campaign stats and delivery events (each provider's daily partition).",
        ),
        build_main_schedule(main_job, when.main_cron, when.timezone),
        *(
            dg.ScheduleDefinition(
                name="suppression_reconcile_schedule",
                job=job,
                cron_schedule=when.suppression_read_cron or "",
                execution_timezone=when.timezone,
                description="The opt-in full read of every book's suppressions.",
            )
            for job in reconcile_jobs
        ),
    ]
    sensors = [
        build_segment_change_sensor(decls.syncs, sync_keys=sync_keys),
        build_campaign_completed_sensor(land_daily_job, providers),
        build_automation_sensor(),
    ]
    defs = dg.Definitions.merge(
        build_campaign_defs(decls, sync_keys),  # guard + launch assets, a job per campaign, schedules
        dg.Definitions(
            assets=[*segment_assets, *external_segments, *erasure_assets, *sync_assets, *landing_assets, views],
            asset_checks=[*checks, *(build_balance_check(p) for p in providers)],
            jobs=[main_job, land_daily_job, *provider_jobs, *reconcile_jobs],
            schedules=schedules,
            sensors=sensors,
            resources=dict(resources),
        ),
    )
    return Location(
        declarations=decls,
        defs=defs,
        providers=providers,
        segment_keys=segment_keys,
        sync_keys=sync_keys,
        sync_assets=sync_assets,
        landing_assets=landing_assets,
        provider_snapshot_keys=snapshot_keys,
        daily_landing_keys=daily_keys,
        jobs=[main_job, land_daily_job, *provider_jobs, *reconcile_jobs],
    )
