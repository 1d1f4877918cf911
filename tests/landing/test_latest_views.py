"""Every dataset a provider lands has a ``lake_<dataset>_latest`` view that says what the dataset says now: the
newest snapshot per provider, each campaign's newest counters, each message's newest delivery record."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from espcore.landing.collect import DAILY_LANDERS, SNAPSHOT_LANDERS
from espcore.landing.schemas import DATASETS
from espcore.landing.views import LATEST, create_lake_views
from espcore.landing.writer import land

DAY1 = date(2026, 3, 2)
DAY2 = date(2026, 3, 3)
T1 = datetime(2026, 3, 2, 9, tzinfo=UTC)
T2 = datetime(2026, 3, 3, 9, tzinfo=UTC)


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def test_every_provider_dataset_has_a_latest_view_and_sync_rejects_none(tmp_path: Path) -> None:
    landed = {*SNAPSHOT_LANDERS, *DAILY_LANDERS, "erasures"}
    assert set(LATEST) == landed
    assert set(DATASETS) - landed == {"sync_rejects"}
    with duckdb.connect() as con:
        names = create_lake_views(con, tmp_path / "empty-lake")
        for dataset in landed:
            assert f"esp.lake_{dataset}_latest" in names
            # a fresh lake: the view exists, is empty, and has the columns of the dataset's view
            assert rows(con, f"SELECT count(*) FROM esp.lake_{dataset}_latest") == [(0,)]
            assert rows(con, f"DESCRIBE esp.lake_{dataset}_latest") == rows(con, f"DESCRIBE esp.lake_{dataset}")
        assert "esp.lake_sync_rejects_latest" not in names


def test_snapshot_latest_is_the_newest_day_of_each_provider(tmp_path: Path) -> None:
    def blacklist(provider: str, day: date, emails: list[str]) -> None:
        at = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        data = [{"email": e, "reason": "blacklisted", "snapshot_at": at} for e in emails]
        land(tmp_path, "blacklist", provider, day, data, run_id=f"{provider}-{day}")

    blacklist("pakat", DAY1, [])
    blacklist("pakat", DAY2, ["a@example.com", "b@example.com"])  # the campaign's hard bounces, blacklisted
    blacklist("sendpulse", DAY1, ["c@example.com"])  # not landed on day 2: its newest day is day 1
    with duckdb.connect() as con:
        create_lake_views(con, tmp_path, ["blacklist"])
        got = rows(con, "SELECT provider, date, email FROM esp.lake_blacklist_latest ORDER BY ALL")
        assert got == [
            ("pakat", DAY2, "a@example.com"),
            ("pakat", DAY2, "b@example.com"),
            ("sendpulse", DAY1, "c@example.com"),
        ]
        assert rows(con, "SELECT count(*) FROM esp.lake_blacklist") == [(3,)]


def stats(campaign_id: str, at: datetime, opened: int) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "state": "sent",
        "sent": 58,
        "opened": opened,
        "fetched_at": at,
        "carried_forward": False,
        "snapshot_at": at,
    }


def test_campaign_stats_latest_is_each_campaigns_newest_counters(tmp_path: Path) -> None:
    land(tmp_path, "campaign_stats", "pakat", DAY1, [stats("c1", T1, 3), stats("c2", T1, 7)], run_id="r1")
    # day 2 lists c1 only (c2 is gone from the listing): c2's newest counters are still day 1's
    land(tmp_path, "campaign_stats", "pakat", DAY2, [stats("c1", T2, 11)], run_id="r2")
    # another provider's campaign with the same id is another campaign
    land(tmp_path, "campaign_stats", "sendpulse", DAY1, [stats("c1", T1, 1)], run_id="r3")
    with duckdb.connect() as con:
        create_lake_views(con, tmp_path, ["campaign_stats"])
        got = rows(con, "SELECT provider, campaign_id, date, opened FROM esp.lake_campaign_stats_latest ORDER BY ALL")
        assert got == [("pakat", "c1", DAY2, 11), ("pakat", "c2", DAY1, 7), ("sendpulse", "c1", DAY1, 1)]
        # a day re-landed later in the day: the newest snapshot of that day wins, once
        land(tmp_path, "campaign_stats", "pakat", DAY2, [stats("c1", T2 + timedelta(hours=5), 12)], run_id="r4")
        got = rows(con, "SELECT opened, run_id FROM esp.lake_campaign_stats_latest WHERE campaign_id = 'c1' ORDER BY 1")
        assert got == [(1, "r3"), (12, "r4")]


def event(event_id: str, status: str, at: datetime, email: str = "a@example.com") -> dict[str, Any]:
    return {"event_id": event_id, "campaign_id": "c1", "email": email, "status": status, "occurred_at": at}


def test_delivery_events_latest_is_each_messages_newest_record(tmp_path: Path) -> None:
    # m1 was delivered on day 1 and bounced on day 2: Pakat dates the message by its bounce, so day 2 lands it as
    # "bounced" while day 1's file (landed before the bounce) still says "delivered"
    land(
        tmp_path,
        "delivery_events",
        "pakat",
        DAY1,
        [event("m1", "delivered", T1), event("m2", "delivered", T1, "b@example.com")],
        run_id="r1",
    )
    land(tmp_path, "delivery_events", "pakat", DAY2, [event("m1", "bounced", T2)], run_id="r2")
    land(tmp_path, "delivery_events", "litestartup", DAY1, [event("m1", "sent", T1)], run_id="r3")
    with duckdb.connect() as con:
        create_lake_views(con, tmp_path, ["delivery_events"])
        assert rows(con, "SELECT count(*) FROM esp.lake_delivery_events") == [(4,)]
        got = rows(con, "SELECT provider, event_id, status, date FROM esp.lake_delivery_events_latest ORDER BY ALL")
        assert got == [
            ("litestartup", "m1", "sent", DAY1),
            ("pakat", "m1", "bounced", DAY2),
            ("pakat", "m2", "delivered", DAY1),
        ]


@pytest.mark.parametrize("dataset", sorted(LATEST))
def test_latest_views_are_recreated_idempotently(tmp_path: Path, dataset: str) -> None:
    db = tmp_path / "wh.duckdb"
    first = create_lake_views(db, tmp_path / "lake", [dataset])
    assert (
        create_lake_views(db, tmp_path / "lake", [dataset])
        == first
        == [f"esp.lake_{dataset}", f"esp.lake_{dataset}_latest"]
    )


def test_erasures_latest_is_each_requests_last_action_per_account(tmp_path: Path) -> None:
    def row(request: str, action: str, at: datetime, ok: bool = True) -> dict[str, Any]:
        return {"request_id": request, "email_hash": "h" + request, "action": action, "ok": ok, "acted_at": at}

    later = T1 + timedelta(minutes=1)
    land(tmp_path, "erasures", "pakat", DAY1, [row("r1", "suppressed", T1), row("r1", "failed", later, ok=False)],
         run_id="a", file_stem="run-a")  # fmt: skip
    land(tmp_path, "erasures", "pakat", DAY2, [row("r1", "removed", T2), row("r1", "completed", T2)],
         run_id="b", file_stem="run-b")  # fmt: skip
    land(tmp_path, "erasures", "sendpulse", DAY1, [row("r1", "deleted", T1), row("r1", "completed", T1)],
         run_id="c", file_stem="run-c")  # fmt: skip
    with duckdb.connect() as con:
        create_lake_views(con, tmp_path, ["erasures"])
        got = rows(con, "SELECT provider, request_id, action FROM esp.lake_erasures_latest ORDER BY provider")
    assert got == [("pakat", "r1", "completed"), ("sendpulse", "r1", "completed")]
