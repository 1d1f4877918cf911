"""The segment-change sensor: one run per change, none without a change, cursor carried between ticks."""

import json

import dagster as dg

from esp_warehouse.automation import build_segment_change_sensor
from esp_warehouse.config import Declarations
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.demo import build_demo_warehouse
from espcore.warehouse import Warehouse
from pipelines import PIPELINES_DIR

TEMPLATES = {"root": PIPELINES_DIR}  # the repository's declarations folder: its templates

DECLS = Declarations.model_validate(
    {
        "syncs": [
            {"name": "eu", "provider": "sendpulse", "book": "EU", "source": {"view": "segment_active_eu"}},
            {"name": "trial", "provider": "pakat", "book": "Trial", "source": {"view": "segment_trial_users"}},
        ]
    },
    context=TEMPLATES,
)


def tick(sensor, wh_path, cursor):
    with dg.build_sensor_context(
        cursor=cursor, resources={"warehouse": WarehouseResource(duckdb_path=str(wh_path))}
    ) as ctx:
        result = sensor(ctx)
    return result.run_requests or [], result.cursor


def test_segment_change_requests_one_run_for_the_changed_sync(tmp_path):
    path = tmp_path / "wh.duckdb"
    wh = Warehouse(path)
    build_demo_warehouse(wh)
    sensor = build_segment_change_sensor(DECLS.syncs)
    requests, cursor = tick(sensor, path, None)
    assert requests == []  # the first tick only records signatures
    requests, cursor = tick(sensor, path, cursor)
    assert requests == []
    with wh.connect() as con:
        con.execute("UPDATE customers SET plan = 'trial' WHERE customer_id = 3 AND plan <> 'trial'")
        con.execute("UPDATE customers SET plan = 'pro' WHERE customer_id = 4")
    requests, cursor2 = tick(sensor, path, cursor)
    selected = {"/".join(k.path) for r in requests for k in (r.asset_selection or [])}
    assert "pakat/books/trial" in selected
    assert selected <= {"pakat/books/trial", "sendpulse/books/eu"}
    assert all(r.run_key for r in requests)
    again, _ = tick(sensor, path, cursor2)
    assert again == []


# -- the campaign-completed sensor ----------------------------------------------------------------------------


def completed_tick(sensor, res, cursor, instance):
    with dg.build_sensor_context(instance=instance, resources=res, cursor=cursor) as ctx:
        result = sensor(ctx)
    return list(result.run_requests or []), result.cursor


def test_campaign_completed_sensor_requests_one_stats_landing_per_completion(tmp_path):
    from datetime import UTC, datetime, time

    from esp_warehouse.assets.landing import DAILY, landing_key
    from esp_warehouse.automation import build_campaign_completed_sensor
    from espcore.campaigns.ledger import Ledger
    from espcore.sandbox.embedded import build_sandbox
    from tests.assets.test_campaigns import CAMPAIGNS, SYNCS, all_assets
    from tests.assets.test_subscribers import resources

    sandbox = build_sandbox("sendpulse", tmp_path / "sp.json")  # the file the resource's sandbox shares
    sandbox.freeze_clock()  # the campaign stays pending until the clock is advanced
    decls = Declarations.model_validate({"syncs": SYNCS[:1], "campaigns": CAMPAIGNS[:1]}, context=TEMPLATES)
    res = resources(tmp_path)
    with dg.instance_for_test() as instance:
        assert dg.materialize(all_assets(decls), resources=res, instance=instance).success
        (row,) = Ledger(Warehouse(tmp_path / "wh.duckdb")).rows()
        assert row.status == "sent"
        assert row.provider_campaign_id
        assert row.sent_at is not None
        launch_day = row.sent_at.date()
        clock = [datetime.combine(launch_day, time(23, 0), tzinfo=UTC)]
        job = dg.define_asset_job("land_daily", selection=[landing_key("sendpulse", "campaign_stats")])
        sensor = build_campaign_completed_sensor(job, ["sendpulse"], clock=lambda: clock[0])
        sensor_res = {"warehouse": res["warehouse"], "sendpulse": res["sendpulse"]}

        requests, cursor = completed_tick(sensor, sensor_res, None, instance)
        assert requests == []  # pending at the provider

        sandbox.advance(3600)  # moderation, copy and send are done
        requests, cursor = completed_tick(sensor, sensor_res, cursor, instance)
        assert len(requests) == 1
        (request,) = requests
        assert request.run_key == f"stats:sendpulse:{row.provider_campaign_id}:sent"
        assert request.partition_key == launch_day.isoformat()  # the day the completion is seen: today's
        with dg.partition_loading_context(effective_dt=clock[0]):
            assert DAILY.has_partition_key(launch_day.isoformat())  # valid for the land_daily job right now
        assert list(request.asset_selection or []) == [landing_key("sendpulse", "campaign_stats")]
        assert "waiting" not in json.loads(cursor or "{}")

        again, _ = completed_tick(sensor, sensor_res, cursor, instance)
        assert again == []  # reported once; not asked about again


def test_campaign_completed_sensor_is_in_the_definitions():
    from pipelines.definitions import defs

    sensor = defs.resolve_sensor_def("campaign_completed_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == "land_daily"


class FakeProvider:
    """Answers get_campaign from a dict; counts calls; one id always fails."""

    def __init__(self, states, calls):
        self.states = states
        self.calls = calls

    def get_campaign(self, campaign_id):
        from espcore.providers.base import Campaign

        self.calls.append(campaign_id)
        if campaign_id == "broken":
            raise RuntimeError("HTTP 500")
        return Campaign(campaign_id, f"c{campaign_id}", self.states[campaign_id], "x")

    def close(self):
        pass


class FakeResource:
    def __init__(self, states, calls):
        self.states = states
        self.calls = calls

    def get_provider(self):
        return FakeProvider(self.states, self.calls)


def test_campaign_completed_sensor_bounds_calls_per_tick_and_survives_a_failing_campaign(tmp_path):
    from datetime import UTC, datetime, timedelta

    from esp_warehouse.assets.landing import landing_key
    from esp_warehouse.automation import build_campaign_completed_sensor
    from espcore.campaigns.ledger import Ledger
    from espcore.providers.base import CampaignState

    wh = Warehouse(tmp_path / "wh.duckdb")
    ledger = Ledger(wh)
    ids = ["broken", "1", "2", "3", "4"]
    for cid in ids:
        key = f"k{cid}"
        ledger.plan(key, provider="sendpulse", book_id="b", campaign_name=key, occurrence="once", provider_name=key)
        ledger.transition(key, "posting")
        ledger.transition(key, "sent", provider_campaign_id=cid)
    states = {cid: CampaignState.PENDING for cid in ids}
    calls: list[str] = []
    res = {
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "wh.duckdb")),
        "sendpulse": FakeResource(states, calls),
    }
    tomorrow = datetime.now(UTC) + timedelta(days=1, hours=1)
    sensor = build_campaign_completed_sensor(
        dg.define_asset_job("land_daily", selection=[landing_key("sendpulse", "campaign_stats")]),
        ["sendpulse"],
        max_checks_per_tick=2,
        clock=lambda: tomorrow,
    )
    with dg.instance_for_test() as instance:
        requests, cursor = completed_tick(sensor, res, None, instance)
        assert requests == []
        assert len(calls) == 2
        states["4"] = CampaignState.FAILED
        seen: set[str] = set()
        for _ in range(3):  # round-robin: every campaign is looked at within ceil(5 / 2) ticks
            calls.clear()
            requests, cursor = completed_tick(sensor, res, cursor, instance)
            assert len(calls) <= 2
            seen.update(r.run_key or "" for r in requests)
        assert seen == {"stats:sendpulse:4:failed"}
        calls.clear()
        for _ in range(3):
            requests, cursor = completed_tick(sensor, res, cursor, instance)
            assert requests == []
        assert "4" not in calls  # reported completions are not asked about again
