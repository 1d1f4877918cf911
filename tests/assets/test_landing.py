"""Landing assets in Dagster, against the embedded sandboxes: snapshots, one daily partition, subsetting, the
balance check and the DuckDB views over what was landed."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from esp_warehouse.assets.landing import (
    DAILY,
    build_balance_check,
    build_landing_assets,
    build_views_asset,
    daily_landing_keys,
    landing_key,
)
from esp_warehouse.resources.litestartup import LiteStartupResource
from esp_warehouse.resources.pakat import PakatResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from espcore.providers.base import CampaignDraft, MemberInput
from espcore.sandbox.embedded import build_sandbox
from espcore.sandbox.litestartup import DEMO_DOMAIN as LS_DOMAIN
from espcore.sandbox.pakat import DEMO_SENDING_DOMAIN as PAKAT_DOMAIN
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SENDER_EMAIL
from tests.assets.test_subscribers import materialized, resources

PROVIDERS = ("sendpulse", "pakat", "litestartup")
STATE_FILES = {"sendpulse": "sp.json", "pakat": "pk.json", "litestartup": "ls.json"}
SENDERS = {"sendpulse": DEMO_SENDER_EMAIL, "pakat": f"news@{PAKAT_DOMAIN}", "litestartup": f"news@{LS_DOMAIN}"}
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEND_DAY = "2026-03-02"
READERS = [f"reader{i}@example.org" for i in range(4)]


def seed(tmp_path: Path, res: dict[str, Any]) -> None:
    """Each sandbox account: frozen at T0, one book of readers, one campaign sent, then two days pass."""
    for provider in PROVIDERS:
        sandbox = build_sandbox(provider, tmp_path / STATE_FILES[provider])
        sandbox.freeze_clock(T0)
        adapter = res[provider].get_provider()  # type: ignore[attr-defined]
        try:
            book = adapter.ensure_book("Readers")
            assert all(r.ok for r in adapter.upsert_members(book.id, [MemberInput(e) for e in READERS]))
            adapter.remove_members(book.id, READERS[:1], unsubscribe=True)
            sandbox.advance(1)
            adapter.create_campaign(
                CampaignDraft(
                    name="Spring ck-0123456789abcdef",
                    book_id=book.id,
                    subject="Spring",
                    sender_name="Demo",
                    sender_email=SENDERS[provider],
                    html="<html><body><p>Hello</p></body></html>",
                    send_at=T0 + timedelta(minutes=1),
                )
            )
            if provider == "litestartup":
                adapter.client.send_email("solo@example.org", SENDERS[provider], "Receipt", html="<p>x</p>")  # type: ignore[attr-defined]
        finally:
            adapter.close()
        for _ in range(8):
            sandbox.advance(6 * 3600)


def fast_resources(tmp_path: Path) -> dict[str, Any]:
    """The embedded-sandbox resources of the sync tests, without client-side pacing (LiteStartup's free plan
    would pace at one call a second; the sandbox's own per-minute limit stays on)."""
    return {
        **resources(tmp_path),
        "sendpulse": SendPulseResource(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            sandbox_state=str(tmp_path / "sp.json"),
            requests_per_second=1000.0,
        ),
        "pakat": PakatResource(
            api_key="sandbox-demo-pakat-key", sandbox_state=str(tmp_path / "pk.json"), requests_per_second=1000.0
        ),
        "litestartup": LiteStartupResource(
            api_key="sk_live_sandbox_demo", sandbox_state=str(tmp_path / "ls.json"), requests_per_second=1000.0
        ),
    }


@pytest.fixture
def landed(tmp_path: Path) -> dict[str, Any]:
    res = fast_resources(tmp_path)
    seed(tmp_path, res)
    return res


def all_landing_assets() -> tuple[list[dg.AssetsDefinition], list[dg.AssetsDefinition], list[Any]]:
    snapshots, daily = [], []
    for p in PROVIDERS:
        snap, day = build_landing_assets(p)
        snapshots.append(snap)
        daily.append(day)
    return snapshots, daily, [build_balance_check(p) for p in PROVIDERS]


def test_snapshots_checks_views_and_a_daily_partition(tmp_path: Path, landed: dict[str, Any]) -> None:
    snapshots, daily, checks = all_landing_assets()
    views = build_views_asset([k for a in [*snapshots, *daily] for k in a.keys])
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*snapshots, *checks, views, *daily],
            selection=[*[k for a in snapshots for k in a.keys], views.key],
            resources=landed,
            instance=instance,
        )
        assert result.success
        mats = materialized(result)
        for p in PROVIDERS:
            for dataset in ("campaigns", "blacklist", "balances", "book_members"):
                md = mats[f"lake/{p}/{dataset}"]
                assert md["dagster/row_count"] > 0, (p, dataset)
                assert Path(md["path"]).exists()
                assert f"dataset={dataset}/provider={p}/date=" in md["path"]
                assert md["schema_version"] == 1
                assert [c.name for c in md["dagster/column_schema"].columns][-2:] == ["landed_at", "run_id"]
                assert md["http_calls"] >= 0
            preview = mats[f"lake/{p}/book_members"]["preview"]
            assert "r***@example.org" in preview
            assert "reader1@example.org" not in preview  # addresses are masked
        evals = {c.asset_key.path[1]: c for c in result.get_asset_check_evaluations()}
        assert set(evals) == set(PROVIDERS)
        assert all(e.passed for e in evals.values())
        assert "exposes no balance" in (evals["litestartup"].description or "")

        partitioned = dg.materialize(daily, partition_key=SEND_DAY, resources=landed, instance=instance)
        assert partitioned.success
        mats = materialized(partitioned)
        for p in PROVIDERS:
            stats = mats[f"lake/{p}/campaign_stats"]
            assert stats["dagster/row_count"] == 1
            assert f"date={SEND_DAY}" in stats["path"]
        assert mats["lake/pakat/delivery_events"]["dagster/row_count"] == len(READERS) - 1
        assert mats["lake/litestartup/delivery_events"]["dagster/row_count"] == 1
        assert "lake/sendpulse/delivery_events" not in mats  # SendPulse exposes no delivery log

        again = dg.materialize([*snapshots, *daily, views], selection=[views.key], resources=landed, instance=instance)
        assert again.success
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT provider) FROM esp.lake_balances_latest").fetchone() == (3,)
        rows = con.execute("SELECT provider, date, sent FROM esp.lake_campaign_stats ORDER BY provider").fetchall()
        assert rows == [(p, date.fromisoformat(SEND_DAY), len(READERS) - 1) for p in sorted(PROVIDERS)]
        unsub = con.execute("SELECT DISTINCT provider FROM esp.lake_blacklist WHERE email = ?", [READERS[0]]).fetchall()
        assert {r[0] for r in unsub} == set(PROVIDERS)


def test_one_dataset_can_be_landed_alone(tmp_path: Path) -> None:
    landed = fast_resources(tmp_path)
    snap, _ = build_landing_assets("pakat")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [snap], selection=[landing_key("pakat", "balances")], resources=landed, instance=instance
        )
        assert result.success
        assert list(materialized(result)) == ["lake/pakat/balances"]
    assert not (tmp_path / "lake" / "dataset=campaigns").exists()


def test_balance_check_warns_below_the_threshold(tmp_path: Path) -> None:
    landed = fast_resources(tmp_path)
    snap, _ = build_landing_assets("sendpulse")
    check = build_balance_check("sendpulse")
    config = dg.RunConfig(ops={check.node_def.name: {"config": {"min_emails_left": 1_000_000}}})
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [snap, check],
            selection=[landing_key("sendpulse", "balances")],
            resources=landed,
            instance=instance,
            run_config=config,
        )
        assert result.success  # a WARN does not fail the run
        (evaluation,) = result.get_asset_check_evaluations()
        assert not evaluation.passed
        assert evaluation.severity is dg.AssetCheckSeverity.WARN
        assert "emails_left" in (evaluation.description or "")


def test_daily_keys_and_partitions() -> None:
    assert DAILY.start.date() == date(2026, 1, 1)
    assert daily_landing_keys("sendpulse") == [landing_key("sendpulse", "campaign_stats")]
    assert daily_landing_keys("pakat")[-1] == landing_key("pakat", "delivery_events")
    snap, day = build_landing_assets("litestartup")
    assert snap.partitions_def is None
    assert day.partitions_def == DAILY
    assert snap.can_subset
    assert day.can_subset
    for a in (snap, day):
        for spec in a.specs:
            assert spec.group_name == "landing"
            assert set(spec.kinds) == {"litestartup", "parquet"}
        assert a.op.pool == "litestartup_api"


def test_definitions_wire_main_land_daily_and_its_schedule() -> None:
    from pipelines.definitions import DAILY_LANDING_KEYS, PROVIDERS_IN_USE, defs

    main = defs.resolve_job_def("main")
    daily = defs.resolve_job_def("land_daily")
    main_keys = main.asset_layer.selected_asset_keys
    assert daily.partitions_def == DAILY
    assert set(daily.asset_layer.selected_asset_keys) == set(DAILY_LANDING_KEYS)
    assert set(DAILY_LANDING_KEYS) <= set(main_keys)  # the main job lands the day's stats and events too
    assert main.partitions_def == DAILY
    for p in PROVIDERS_IN_USE:
        assert landing_key(p, "campaigns") in main_keys
        assert landing_key(p, "campaign_stats") in DAILY_LANDING_KEYS
    assert dg.AssetKey(["lake", "views"]) in main_keys
    schedule = defs.resolve_schedule_def("land_daily_schedule")
    assert schedule.job_name == "land_daily"
