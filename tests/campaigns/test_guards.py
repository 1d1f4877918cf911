"""Guards are pure functions with readable reasons; facts come from the warehouse, the ledger and the provider."""

import json
from datetime import datetime, timedelta

import pytest

from espcore.campaigns.guards import (
    CostInfo,
    GuardPolicy,
    SyncRunInfo,
    balance_covers,
    book_size,
    evaluate,
    gather_facts,
    hourly_cap,
    rejected_share,
    required_test_send,
    sync_fresh,
)
from espcore.campaigns.launch import launch
from espcore.providers.base import (
    CampaignRateLimited,
    CostEstimator,
    DeliveryEventSource,
    DraftLauncher,
    MemberCounter,
)
from espcore.providers.base import (
    TestSender as SendsTests,  # (a name pytest would take for a test class)
)
from espcore.providers.registry import names, plugin
from espcore.providers.sendpulse import CAMPAIGN_RATE_CAP
from espcore.sync.tables import ensure_tables
from tests.campaigns.conftest import Env

NOW = datetime(2026, 3, 2, 9, 0)
FRESH = SyncRunInfo("r1", "42", NOW - timedelta(minutes=20), rejected_pct=1.5)


def test_sync_freshness():
    assert sync_fresh(FRESH, now=NOW, max_age_minutes=60, sync_name="s").passed
    stale = sync_fresh(FRESH, now=NOW, max_age_minutes=10, sync_name="s")
    assert not stale.passed
    assert "20 min ago" in stale.reason
    assert "older than the 10 min allowed" in stale.reason
    never = sync_fresh(None, now=NOW, max_age_minutes=10, sync_name="s")
    assert (never.passed, "no successful run" in never.reason) == (False, True)


def test_rejected_share():
    assert rejected_share(FRESH, max_pct=2, sync_name="s").passed
    bad = rejected_share(FRESH, max_pct=1, sync_name="s")
    assert not bad.passed
    assert "1.50% of rows rejected" in bad.reason


def test_book_size():
    assert book_size(12, max_recipients=None, book="B").passed
    assert "no active recipients" in book_size(0, max_recipients=None, book="B").reason
    capped = book_size(12, max_recipients=10, book="B")
    assert not capped.passed
    assert "above the declared cap of 10" in capped.reason
    assert not book_size(None, max_recipients=None, book="B").passed


def test_balance():
    assert balance_covers(CostInfo("litestartup", None, "not exposed"), recipients=5) == (True, "not exposed")
    passed, reason = balance_covers(CostInfo("pakat", False, "pakat quota: 9990 of 10000 used"), recipients=50)
    assert not passed
    assert "9990" in reason


def test_hourly_cap():
    cap = CAMPAIGN_RATE_CAP  # SendPulse's, the provider that has one
    assert hourly_cap(provider="Pakat", posts_last_hour=10, oldest_post=None, cap=None).passed
    assert hourly_cap(provider="SendPulse", posts_last_hour=3, oldest_post=None, cap=cap).passed
    blocked = hourly_cap(provider="SendPulse", posts_last_hour=4, oldest_post=NOW - timedelta(minutes=50), cap=cap)
    assert not blocked.passed
    assert "SendPulse allows 4 API campaigns per rolling hour" in blocked.reason
    assert "09:10 UTC" in blocked.reason
    assert "(error 791)" in blocked.reason


def test_capabilities_are_declared_by_the_adapters_that_have_them():
    """What only some providers can do is an optional protocol the adapter implements, never a name test."""
    expected = {
        "sendpulse": {SendsTests, CostEstimator, CampaignRateLimited},
        "pakat": {SendsTests, DraftLauncher, MemberCounter, DeliveryEventSource},
        "litestartup": {SendsTests, DraftLauncher, DeliveryEventSource},
    }
    optional = (SendsTests, CostEstimator, CampaignRateLimited, DraftLauncher, MemberCounter, DeliveryEventSource)
    assert set(expected) == set(names())
    for name, capabilities in expected.items():
        adapter = plugin(name).adapter_class()
        assert {c for c in optional if issubclass(adapter, c)} == capabilities, name


def test_test_send_required():
    assert required_test_send(required=False, test_sent_at=None, recipients=[]).passed
    missing = required_test_send(required=True, test_sent_at=None, recipients=["qa@example.org"])
    assert not missing.passed
    assert "test_only=true" in missing.reason
    assert "qa@example.org" in missing.reason
    assert required_test_send(required=True, test_sent_at=NOW, recipients=["qa@example.org"]).passed


def record_sync(env: Env, finished: datetime, rejected_pct: float = 0.0) -> None:
    with env.wh.connect() as con:
        ensure_tables(con)
        con.execute(
            "INSERT INTO esp.sync_runs (run_id, sync_name, provider, book_id, started_at, finished_at, dry_run, "
            "status, counts) VALUES (?, 'readers', ?, ?, ?, ?, false, 'success', ?)",
            [
                f"run-{finished.isoformat()}",
                env.h.name,
                env.book_id,
                finished,
                finished,
                json.dumps({"rejected_pct": rejected_pct}),
            ],
        )


def facts(env: Env, key: str = "0" * 16):
    return gather_facts(
        warehouse=env.wh,
        ledger=env.ledger,
        provider=env.h.adapter,
        sync_name="readers",
        book="Readers",
        key=key,
        now=env.h.now,
    )


def test_all_guards_pass_on_a_fresh_healthy_book(env: Env):
    record_sync(env, env.h.now.replace(tzinfo=None) - timedelta(minutes=5))
    f = facts(env)
    assert f.recipients == 12
    assert f.book_id == env.book_id
    results = evaluate(f, GuardPolicy("readers", "Readers", max_sync_age_minutes=60), env.h.name)
    assert all(r.passed for r in results.values()), results
    if env.h.name == "litestartup":
        assert "does not expose" in results["balance_covers"].reason


def test_guards_explain_what_blocks(env: Env):
    f = facts(env)  # never synced
    results = evaluate(f, GuardPolicy("readers", "Readers", max_recipients=5, require_test_send=True), env.h.name)
    assert "no successful run" in results["sync_fresh"].reason
    assert "above the declared cap of 5" in results["book_size"].reason
    assert not results["test_send"].passed


@pytest.mark.parametrize("quota", ["pakat"])
def test_pakat_quota_guard(tmp_path, quota):
    from tests.campaigns.conftest import make_env

    with make_env("pakat", tmp_path) as env:
        env.h.sandbox.hook("set_quota", allowed=100, used=95)
        results = evaluate(facts(env), GuardPolicy("readers", "Readers"), "pakat")
        assert not results["balance_covers"].passed
        assert "95 of 100 used, 5 left, the send needs 12" in results["balance_covers"].reason


def test_sendpulse_balance_and_hourly_cap_guards(sp_env: Env):
    env = sp_env
    record_sync(env, env.h.now.replace(tzinfo=None))
    for day in range(4):
        launch(env.spec(f"2026-03-0{day + 2}"), env.h.adapter, env.ledger, book_id=env.book_id)
    results = evaluate(facts(env), GuardPolicy("readers", "Readers"), "sendpulse")
    assert not results["hourly_cap"].passed
    assert "4 were created in the last hour" in results["hourly_cap"].reason
    assert results["balance_covers"].passed
    assert "covered" in results["balance_covers"].reason
    env.h.advance(3601)
    assert evaluate(facts(env), GuardPolicy("readers", "Readers"), "sendpulse")["hourly_cap"].passed
    env.h.sandbox.hook("set_balance", amount=0)
    env.h.sandbox.hook("set_plan", emails_left=0)
    blocked = evaluate(facts(env), GuardPolicy("readers", "Readers"), "sendpulse")["balance_covers"]
    assert not blocked.passed
    assert "NOT covered" in blocked.reason


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_run_that_left_rows_pending_does_not_make_the_book_current(engine, request, tmp_path):
    """``last_sync`` counts ``success`` runs, and ``partial`` ones whose only shortfall was rows the provider
    rejected (the rejected-share guard judges those); a run that left rows pending did not bring the book up to
    date, so a launch keeps waiting for one that did."""
    from espcore.campaigns.guards import last_sync
    from espcore.warehouse import Warehouse

    wh = request.getfixturevalue("pg_warehouses")() if engine == "postgres" else Warehouse(tmp_path / "wh.duckdb")

    def record(run: str, minute: int, status: str, counts: dict[str, float]) -> None:
        at = NOW + timedelta(minutes=minute)
        with wh.connect() as con:
            con.execute(
                f"INSERT INTO {con.own('sync_runs')} (run_id, sync_name, provider, book_id, started_at, finished_at, "
                "dry_run, status, counts) VALUES (?, 'readers', 'fake', '42', ?, ?, false, ?, ?)",
                [run, at, at, status, json.dumps(counts)],
            )

    with wh.connect() as con:
        ensure_tables(con)
    assert last_sync(wh, "readers") is None
    record("r1", 0, "success", {"pending": 0, "rejected_pct": 0.0})
    record("r2", 5, "partial", {"pending": 0, "rejected_pct": 2.5})  # two rows rejected: complete
    record("r3", 10, "partial", {"pending": 7, "rejected_pct": 0.0})  # rows left pending: not complete
    record("r4", 15, "failed", {"pending": 0})
    last = last_sync(wh, "readers")
    assert last is not None
    assert (last.run_id, last.rejected_pct) == ("r2", 2.5)
    never = sync_fresh(None, now=NOW, max_age_minutes=10, sync_name="readers")
    assert "left no row pending" in never.reason
