"""Schedules run today's partition (time-zone aware); declarative automation is a working alternative."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from esp_warehouse.assets.landing import DAILY, LANDING_FRESHNESS, landing_condition
from esp_warehouse.assets.subscribers import SYNC_AUTOMATION
from esp_warehouse.automation import build_day_schedule, landing_day


def run_request(schedule: dg.ScheduleDefinition, when: datetime, defs: dg.Definitions) -> dg.RunRequest:
    repo = defs.get_repository_def()
    with dg.build_schedule_context(scheduled_execution_time=when, repository_def=repo) as ctx:
        result = schedule.evaluate_tick(ctx)
    (request,) = result.run_requests or []
    return request


def test_main_and_land_daily_schedules_run_todays_partition_once_per_tick() -> None:
    from pipelines.definitions import defs

    for name in ("main_daily", "land_daily_schedule"):
        schedule = defs.resolve_schedule_def(name)
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
        request = run_request(schedule, datetime(2026, 11, 23, 6, 0, tzinfo=UTC), defs)
        assert request.partition_key == "2026-11-23"
        assert request.run_key == "2026-11-23"
        with dg.partition_loading_context(effective_dt=datetime(2026, 11, 23, 6, 0, tzinfo=UTC)):
            assert DAILY.get_last_partition_key() == "2026-11-23"  # today's partition exists (end_offset=1)
    assert defs.resolve_job_def("main").partitions_def == DAILY


def test_day_schedule_is_time_zone_aware_and_partitions_by_utc_date() -> None:
    @dg.asset(partitions_def=DAILY)
    def x() -> None: ...

    job = dg.define_asset_job("j", selection=[x])
    schedule = build_day_schedule("s", job, "0 6 * * *", "Pacific/Auckland")
    defs = dg.Definitions(assets=[x], jobs=[job], schedules=[schedule])
    assert schedule.execution_timezone == "Pacific/Auckland"
    # 06:00 in Auckland on the 24th is 17:00 UTC on the 23rd: the UTC day's partition
    request = run_request(schedule, datetime(2026, 11, 24, 6, 0, tzinfo=ZoneInfo("Pacific/Auckland")), defs)
    assert request.partition_key == "2026-11-23"
    assert landing_day(datetime(2025, 6, 1, tzinfo=UTC)) == "2026-01-01"  # before the first partition


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # raised inside Dagster's own condition tester
def test_declarative_automation_syncs_on_segment_update_and_lands_on_cron() -> None:
    @dg.asset
    def segment() -> None: ...

    @dg.asset(deps=[segment], automation_condition=SYNC_AUTOMATION)
    def book() -> None: ...

    @dg.asset(deps=[book], automation_condition=landing_condition("15 5 * * *"))
    def snapshot() -> None: ...

    @dg.asset(partitions_def=DAILY, automation_condition=landing_condition("15 5 * * *"))
    def stats() -> None: ...

    defs = dg.Definitions(assets=[segment, book, snapshot, stats])
    day1 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=day1)
        assert first.total_requested == 0  # nothing updated, no cron tick yet

        assert dg.materialize([segment], instance=instance).success
        after_segment = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor, evaluation_time=day1
        )
        assert after_segment.get_num_requested(book.key) == 1  # eager: the segment changed
        assert after_segment.get_num_requested(snapshot.key) == 0

        tick = datetime(2026, 11, 23, 5, 20, tzinfo=UTC)
        landed = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=after_segment.cursor, evaluation_time=tick
        )
        assert landed.get_num_requested(snapshot.key) == 1
        assert landed.get_requested_partitions(stats.key) == {"2026-11-23"}  # today's partition only

        again = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=landed.cursor, evaluation_time=tick.replace(minute=40)
        )
        assert again.total_requested == 0  # once per tick


def test_definitions_carry_the_conditions_and_a_stopped_automation_sensor() -> None:
    from pipelines.definitions import DAILY_LANDING_KEYS, LANDING_ASSETS, SYNC_ASSETS, defs

    sensor = defs.resolve_sensor_def("declarative_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    graph = defs.resolve_asset_graph()
    for assets_def in SYNC_ASSETS:
        for key in assets_def.keys:
            assert graph.get(key).automation_condition == SYNC_AUTOMATION
    for assets_def in LANDING_ASSETS:
        for key in assets_def.keys:
            assert graph.get(key).automation_condition is not None
            assert assets_def.specs_by_key[key].freshness_policy == LANDING_FRESHNESS
    assert set(DAILY_LANDING_KEYS) <= {k for a in LANDING_ASSETS for k in a.keys}
    for key in graph.get_all_asset_keys():
        if key.path[1:2] == ["campaigns"]:
            assert graph.get(key).automation_condition is None, key  # launches only on their own schedules


def test_landing_freshness_warns_after_a_missed_day_and_fails_after_two() -> None:
    # Dagster's daemon evaluates freshness with this evaluator; run it directly at chosen times.
    import asyncio
    from datetime import timedelta

    from dagster._core.definitions.freshness import FreshnessState
    from dagster._core.definitions.freshness_evaluator import TimeWindowFreshnessPolicyEvaluator
    from dagster._core.test_utils import freeze_time

    @dg.asset(freshness_policy=LANDING_FRESHNESS)
    def balances() -> None: ...

    defs = dg.Definitions(assets=[balances])
    node = defs.resolve_asset_graph().get(balances.key)
    landed_at = datetime(2026, 11, 23, 5, 15, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        with freeze_time(landed_at):
            assert dg.materialize([balances], instance=instance).success

        def state_at(when: datetime) -> FreshnessState:
            from dagster._core.loader import LoadingContextForTest

            with freeze_time(when):
                ctx = LoadingContextForTest(instance)
                return asyncio.run(TimeWindowFreshnessPolicyEvaluator().evaluate_freshness(ctx, node))

        assert state_at(landed_at + timedelta(hours=24)) == FreshnessState.PASS
        assert state_at(landed_at + timedelta(hours=26)) == FreshnessState.WARN
        assert state_at(landed_at + timedelta(hours=50)) == FreshnessState.FAIL
