"""Schedules and sensors around the syncs: the main job on a schedule, and a sync re-run when its segment
changes (cheap change detection in the warehouse: row count, newest updated_at, checksum)."""

import json
from collections.abc import Sequence
from typing import Any

import dagster as dg

from assets.subscribers import book_key, to_spec
from espcore.sync.signature import segment_signature
from pipelines.config import SyncDecl
from resources.warehouse import WarehouseResource


def build_segment_change_sensor(decls: Sequence[SyncDecl], minimum_interval_seconds: int = 300) -> dg.SensorDefinition:
    """One sensor for every sync: when a segment's signature moves, request a run of that sync's book asset.

    The cursor holds each segment's last signature; ``run_key`` = sync name + signature, so one change gives
    one run even if the sensor is evaluated twice. The first evaluation only records signatures.
    """
    specs = {d.name: to_spec(d) for d in decls}
    keys = {d.name: book_key(d) for d in decls}
    job = dg.define_asset_job(
        "sync_on_segment_change",
        selection=dg.AssetSelection.assets(*keys.values()),
        description="Sync books whose warehouse segment changed (launched by the segment-change sensor).",
    )

    @dg.sensor(
        name="segment_change_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Re-sync a book when its warehouse segment changes (count, newest updated_at, checksum).",
    )
    def _sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource) -> dg.SensorResult:
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current: dict[str, str] = {}
        requests: list[dg.RunRequest] = []
        wh = warehouse.get_warehouse()
        for name, spec in specs.items():
            try:
                current[name] = segment_signature(spec, wh)
            except Exception as exc:  # a broken segment must not stop the other syncs' detection
                context.log.warning(f"{name}: cannot read the segment: {exc}")
                if name in previous:
                    current[name] = previous[name]
                continue
            if name in previous and previous[name] != current[name]:
                requests.append(
                    dg.RunRequest(
                        run_key=f"{name}:{current[name]}", asset_selection=[keys[name]], tags={"esp/sync": name}
                    )
                )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return _sensor


def build_main_schedule(job: Any, cron: str = "0 6 * * *", timezone: str = "UTC") -> dg.ScheduleDefinition:
    """The main job (syncs, then landing) every day, time-zone aware."""
    return dg.ScheduleDefinition(
        name="main_daily",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Sync every book, then land balances and the other snapshots.",
    )
