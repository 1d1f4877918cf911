"""Schedules and sensors around the syncs: the main job on a schedule, a sync re-run when its segment
changes (cheap change detection in the warehouse: row count, newest updated_at, checksum), and a stats landing
when a launched campaign completes at its provider."""

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from esp_warehouse.assets.landing import DAILY, landing_key
from esp_warehouse.assets.subscribers import sync_key, to_spec
from esp_warehouse.config import SyncDecl
from esp_warehouse.resources.base import ProviderResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.campaigns.ledger import Ledger, LedgerRow
from espcore.providers.base import EspProvider
from espcore.sync.signature import segment_signature
from espcore.sync.source import check_segment_sql
from espcore.sync.spec import SyncSpec
from espcore.sync.tables import as_utc
from espcore.warehouse import BaseWarehouse, Dialect, WarehouseConnection


class _GuardedSegmentReads:
    """The warehouse as :func:`segment_signature` sees it: each connection first passes the segment's run-time
    guard (:func:`check_segment_sql`), then reads in a read-only transaction (a write in it fails)."""

    def __init__(self, warehouse: BaseWarehouse, segment_sql: str) -> None:
        self.warehouse = warehouse
        self.dialect: Dialect = warehouse.dialect
        self.segment_sql = segment_sql

    @contextmanager
    def connect(self) -> Iterator[WarehouseConnection]:
        with self.warehouse.connect() as con:
            check_segment_sql(con, self.segment_sql)
            with con.read_only():
                yield con


def read_segment_signature(spec: SyncSpec, warehouse: BaseWarehouse) -> str:
    """A segment's change signature, read only after the segment passed the run-time guard, in a read-only
    transaction."""
    return segment_signature(spec, _GuardedSegmentReads(warehouse, spec.source_sql))


def build_segment_change_sensor(
    decls: Sequence[SyncDecl],
    minimum_interval_seconds: int = 300,
    sync_keys: Mapping[str, dg.AssetKey] | None = None,
) -> dg.SensorDefinition:
    """One sensor for every sync: when a segment's signature moves, request a run of that sync's book asset.

    The cursor holds each segment's last signature; ``run_key`` = sync name + signature, so one change gives
    one run even if the sensor is evaluated twice. The first evaluation only records signatures.
    """
    specs = {d.name: to_spec(d) for d in decls}
    keys = {d.name: sync_key(d, sync_keys) for d in decls}
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
                current[name] = read_segment_signature(spec, wh)
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


def build_day_schedule(
    name: str, job: Any, cron: str, timezone: str = "UTC", description: str | None = None
) -> dg.ScheduleDefinition:
    """Run a ``DAILY``-partitioned job at ``cron`` in ``timezone``, for the partition of the tick's UTC date
    (today's: ``DAILY`` has it). One run per tick: ``run_key`` = the partition."""

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(UTC)
        day = landing_day(when)
        return dg.RunRequest(run_key=day, partition_key=day)

    return _schedule


def build_main_schedule(job: Any, cron: str = "0 6 * * *", timezone: str = "UTC") -> dg.ScheduleDefinition:
    """The main job (syncs, launches, then landing) every day; the main job is partitioned by ``DAILY`` through
    its daily landing assets, so each tick runs today's partition (today's snapshots, stats and events)."""
    return build_day_schedule(
        "main_daily",
        job,
        cron,
        timezone,
        "Sync every book, launch due campaigns, then land today's snapshots, stats and events.",
    )


def landing_day(when: datetime, partitions_def: dg.DailyPartitionsDefinition = DAILY) -> str:
    """The ``DAILY`` partition that holds what is landed at ``when``: its UTC date (``DAILY`` has today's)."""
    moment = when.astimezone(UTC) if when.tzinfo else when
    day = moment.strftime("%Y-%m-%d")
    first = partitions_def.get_first_partition_key()
    return max(day, first) if first else day


def build_campaign_completed_sensor(
    job: Any,
    providers: Sequence[str],
    *,
    minimum_interval_seconds: int = 300,
    max_checks_per_tick: int = 20,
    lookback_days: int = 30,
    clock: Callable[[], datetime] | None = None,
) -> dg.SensorDefinition:
    """Land a provider's ``campaign_stats`` once a launched campaign reaches a terminal state.

    Every ``minimum_interval_seconds`` the sensor reads the ledger for ``sent`` launches of ``providers`` (sent in
    the last ``lookback_days``), asks the provider for the state of at most ``max_checks_per_tick`` of those not
    yet reported (round-robin across ticks, so none starves), and requests one run of ``job`` (the ``land_daily``
    job) per campaign that became terminal: that provider's ``lake/<p>/campaign_stats`` asset, partition = the day
    the completion is seen (:func:`landing_day`; today's file holds every campaign's counters as of now, and past
    days' snapshots are left as they were), ``run_key = stats:<provider>:<campaign id>:<terminal state>``.

    The cursor (JSON) holds the completions already requested (``reported``: never asked about again) and the
    round-robin position (cursors of earlier versions may also hold ``waiting`` completions: they are requested on
    the next tick). It starts STOPPED: turn it on once the landing pools are set. ``clock`` is for
    tests.
    """
    providers = sorted(set(providers))
    now_fn = clock or (lambda: datetime.now(UTC))

    @dg.sensor(
        name="campaign_completed_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={"warehouse", *providers},
        description="Land a provider's campaign stats (today's campaign_stats partition) once a launched campaign "
        "reaches a terminal state; one run per completion (run_key).",
    )
    def _sensor(context: dg.SensorEvaluationContext, **_resources: Any) -> dg.SensorResult:
        # the resources (a key per provider) are read from context.resources; direct invocation also passes
        # them as keyword arguments, hence **_resources
        state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        reported: dict[str, str] = dict(state.get("reported", {}))
        # completions seen on this tick; a cursor written by an earlier version may hold some still to request
        completed: dict[str, dict[str, str]] = dict(state.get("waiting", {}))
        position = int(state.get("position", 0))
        now = now_fn()
        since = as_utc(now) - timedelta(days=lookback_days)

        warehouse: WarehouseResource = context.resources.warehouse
        watched: dict[str, LedgerRow] = {}
        for row in Ledger(warehouse.get_warehouse()).rows():
            if row.status != "sent" or not row.provider_campaign_id or row.provider not in providers:
                continue
            if (row.sent_at or row.updated_at) < since:
                continue
            watched[f"{row.provider}:{row.provider_campaign_id}"] = row
        # forget campaigns that left the window (keeps the cursor bounded)
        reported = {k: v for k, v in reported.items() if k in watched}
        completed = {k: v for k, v in completed.items() if k in watched and k not in reported}

        unknown = sorted(
            (k for k in watched if k not in reported and k not in completed),
            key=lambda k: (watched[k].sent_at or watched[k].updated_at, k),
        )
        start = position % len(unknown) if unknown else 0
        to_check = (unknown[start:] + unknown[:start])[:max_checks_per_tick]
        adapters: dict[str, EspProvider] = {}
        try:
            for key in to_check:
                row = watched[key]
                campaign_id = str(row.provider_campaign_id)
                try:
                    if row.provider not in adapters:
                        resource: ProviderResource = getattr(context.resources, row.provider)
                        adapters[row.provider] = resource.get_provider()
                    campaign = adapters[row.provider].get_campaign(campaign_id)
                except Exception as exc:  # one provider or campaign failing must not stop the others
                    context.log.warning(f"{key} ({row.campaign_key}): cannot read the campaign state: {exc}")
                    continue
                if campaign.state.terminal:
                    completed[key] = {"state": str(campaign.state)}
                    context.log.info(f"{key} ({row.campaign_key}) reached {campaign.state}")
        finally:
            for adapter in adapters.values():
                adapter.close()

        requests: list[dg.RunRequest] = []
        partition = landing_day(now)
        for key in sorted(completed):
            entry = completed[key]
            row = watched[key]
            requests.append(
                dg.RunRequest(
                    run_key=f"stats:{row.provider}:{row.provider_campaign_id}:{entry['state']}",
                    asset_selection=[landing_key(row.provider, "campaign_stats")],
                    partition_key=partition,
                    tags={"esp/campaign_key": row.campaign_key, "esp/provider": row.provider},
                )
            )
            reported[key] = entry["state"]

        cursor = json.dumps({"reported": reported, "position": start + len(to_check)}, sort_keys=True)
        if not requests:
            return dg.SensorResult(
                skip_reason=f"checked {len(to_check)} of {len(unknown)} launched campaigns; none completed",
                cursor=cursor,
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


def build_automation_sensor(minimum_interval_seconds: int = 60) -> dg.AutomationConditionSensorDefinition:
    """Declarative automation, the alternative to the schedules and the segment sensor: evaluates the assets'
    conditions (syncs: eager once the segment's blocking checks pass; landing: on the landing cron; lake views:
    eager). Campaign launches carry no condition: they run on their own schedules only. Starts STOPPED: turn on
    either this sensor or the schedules (running both only lands some days twice, which is harmless)."""
    return dg.AutomationConditionSensorDefinition(
        "declarative_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.STOPPED,
        minimum_interval_seconds=minimum_interval_seconds,
        description="Runs syncs when their segment updates and landing on its cron (AutomationCondition).",
    )
