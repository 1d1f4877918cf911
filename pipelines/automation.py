"""Schedules and sensors around the syncs: the main job on a schedule, a sync re-run when its segment
changes (cheap change detection in the warehouse: row count, newest updated_at, checksum), and a stats landing
when a launched campaign completes at its provider."""

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from assets.landing import DAILY, landing_key
from assets.subscribers import book_key, to_spec
from espcore.campaigns.ledger import Ledger, LedgerRow
from espcore.providers.base import EspProvider
from espcore.sync.signature import segment_signature
from pipelines.config import SyncDecl
from resources.base import ProviderResource
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


def stats_partition(
    launched_on: date, now: datetime, partitions_def: dg.DailyPartitionsDefinition = DAILY
) -> str | None:
    """The daily partition that lands a campaign launched on ``launched_on`` (UTC): that day's, once it exists.

    A day's ``campaign_stats`` file holds every campaign created before the day ends, so the launch day is the
    first partition that includes the campaign. ``DAILY`` has no partition for the current day (its last one is
    yesterday until midnight UTC), so a campaign launched today is landed once its day has closed; ``None`` means
    "not yet". A launch before the first partition maps to the first partition.
    """
    with dg.partition_loading_context(effective_dt=now):
        last = partitions_def.get_last_partition_key()
        first = partitions_def.get_first_partition_key()
    if last is None:
        return None
    key = launched_on.strftime("%Y-%m-%d")
    if key > last:  # ISO dates compare as strings
        return None
    return max(key, first or key)


def _launched_on(row: LedgerRow) -> date:
    when = row.sent_at or row.posting_at or row.updated_at  # naive UTC in the ledger
    return when.date()


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
    job) per campaign that became terminal: that provider's ``lake/<p>/campaign_stats`` asset, partition = the
    launch day (see :func:`stats_partition`), ``run_key = stats:<provider>:<campaign id>:<terminal state>``.

    The cursor (JSON) holds the completions already requested (``reported``: never asked about again),
    completions waiting for their day's partition (``waiting``: no provider call needed), and the round-robin
    position. It starts STOPPED (design §7): turn it on once the landing pools are set. ``clock`` is for tests.
    """
    providers = sorted(set(providers))
    now_fn = clock or (lambda: datetime.now(UTC))

    @dg.sensor(
        name="campaign_completed_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={"warehouse", *providers},
        description="Land a provider's campaign stats (its daily campaign_stats partition of the launch day) once "
        "a launched campaign reaches a terminal state; one run per completion (run_key).",
    )
    def _sensor(context: dg.SensorEvaluationContext, **_resources: Any) -> dg.SensorResult:
        # the resources (a key per provider) are read from context.resources; direct invocation also passes
        # them as keyword arguments, hence **_resources
        state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        reported: dict[str, str] = dict(state.get("reported", {}))
        waiting: dict[str, dict[str, str]] = dict(state.get("waiting", {}))
        position = int(state.get("position", 0))
        now = now_fn()
        since = now.astimezone(UTC).replace(tzinfo=None) - timedelta(days=lookback_days)

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
        waiting = {k: v for k, v in waiting.items() if k in watched and k not in reported}

        unknown = sorted(
            (k for k in watched if k not in reported and k not in waiting),
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
                    waiting[key] = {"state": str(campaign.state), "day": _launched_on(row).isoformat()}
                    context.log.info(f"{key} ({row.campaign_key}) reached {campaign.state}")
        finally:
            for adapter in adapters.values():
                adapter.close()

        requests: list[dg.RunRequest] = []
        for key in sorted(waiting):
            entry = waiting[key]
            partition = stats_partition(date.fromisoformat(entry["day"]), now)
            if partition is None:
                continue  # the launch day's partition does not exist yet (before midnight UTC)
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
            del waiting[key]

        cursor = json.dumps(
            {"reported": reported, "waiting": waiting, "position": start + len(to_check)}, sort_keys=True
        )
        if not requests:
            return dg.SensorResult(
                skip_reason=f"checked {len(to_check)} of {len(unknown)} launched campaigns; "
                f"{len(waiting)} completed, waiting for their day's partition",
                cursor=cursor,
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor
