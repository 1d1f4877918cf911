"""The plan/apply engine against an in-memory provider and a real DuckDB warehouse."""

from collections.abc import Callable

import pytest

from espcore.sync.engine import MassRemoveError, SyncError, SyncLockedError, now_utc, run_sync
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.warehouse import Warehouse
from tests.sync.fakes import FakeProvider

ROWS = [
    ("a@example.com", "Ann", "DE"),
    ("b@example.com", "Bob", "FR"),
    ("c@example.com", "Cid", "NL"),
    ("d@example.com", "Dee", "PL"),
    ("e@example.com", "Eve", "ES"),
]


def make_wh(tmp_path, rows=ROWS) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute("CREATE OR REPLACE TABLE people (email VARCHAR, first_name VARCHAR, country VARCHAR)")
        for r in rows:
            con.execute("INSERT INTO people VALUES (?, ?, ?)", list(r))
    return wh


def spec(**kw) -> SyncSpec:
    base = dict(
        name="people_sync",
        provider="fake",
        book="People",
        source_sql="SELECT * FROM people",
        fields={"name": "first_name", "country": "country"},
    )
    base.update(kw)
    return SyncSpec(**base)  # type: ignore[arg-type]


def sync(wh, provider, s=None, run="r1", **opts):
    return run_sync(s or spec(), provider, wh, run_id=run, options=SyncOptions(**opts))


def execute(wh: Warehouse, sql: str) -> None:
    with wh.connect() as con:
        con.execute(sql)


def test_first_sync_adds_everything_and_resync_writes_nothing(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    r = sync(wh, p)
    m = r.metadata()
    assert (m["planned_add"], m["successful_add"], m["failed_add"]) == (5, 5, 0)
    assert p.members["100"]["a@example.com"] == {"country": "DE", "name": "Ann"}
    assert m["batches"] == 2  # batch size 3
    assert r.synced_rows == 5
    p.write_calls.clear()
    again = sync(wh, p, run="r2").metadata()
    assert p.write_calls == []
    assert again["planned_add"] == again["planned_change"] == again["planned_remove"] == 0
    assert again["query_size"] == 5


def test_invalid_rows_are_rejected_with_reasons_and_never_block_valid_rows(tmp_path):
    rows = [
        *ROWS,
        (None, "Nul", "DE"),
        ("not-an-email", "Bad", "DE"),
        ("A@Example.com ", "Ann", "DE"),  # identical duplicate of a@example.com: collapsed
        ("x@example.com", "Xi", "DE"),
        (" X@EXAMPLE.COM", "Other", "FR"),  # conflicting duplicate: both rejected
        ("ctl@example.com", "bad\x01name", "DE"),
        ("dots..@example.com", "Dots", "DE"),  # passes the SQL pre-filter, fails the full check
    ]
    wh, p = make_wh(tmp_path, rows), FakeProvider()
    r = sync(wh, p)
    m = r.metadata()
    reasons = {(x["raw_email"], x["reason"].split(":")[0]) for x in r.rejects}
    assert (None, "missing email") in reasons
    assert ("not-an-email", "invalid email syntax") in reasons
    assert ("x@example.com", "duplicate key with conflicting values") in reasons
    assert (" X@EXAMPLE.COM", "duplicate key with conflicting values") in reasons
    assert ("ctl@example.com", "field name contains control characters") in reasons
    assert ("dots..@example.com", "invalid email") in reasons
    assert m["invalid"] == 6
    assert set(p.members["100"]) == {e for e, _, _ in ROWS}
    assert m["successful_add"] == 5


def test_changed_row_is_one_change_call(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    sync(wh, p)
    execute(wh, "UPDATE people SET country = 'IT' WHERE email = 'b@example.com'")
    p.write_calls.clear()
    m = sync(wh, p, run="r2").metadata()
    assert (m["planned_change"], m["successful_change"]) == (1, 1)
    assert p.write_calls == [("upsert", ["b@example.com"])]
    assert p.members["100"]["b@example.com"]["country"] == "IT"


def test_full_resync_resends_everything_but_suppressed(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    sync(wh, p)
    p.blacklist.add("c@example.com")
    m = sync(wh, p, run="r2", full_resync=True).metadata()
    assert m["planned_change"] == 4
    assert m["suppressed"] == 1


def test_mirror_removes_rows_that_left_but_never_suppressed_ones(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    s = spec(mode="mirror", max_remove_pct=50)
    sync(wh, p, s)
    p.statuses[("100", "e@example.com")] = __import__("espcore.providers.base").providers.base.MemberState.UNSUBSCRIBED
    execute(wh, "DELETE FROM people WHERE email IN ('d@example.com', 'e@example.com')")
    m = sync(wh, p, s, run="r2").metadata()
    assert (m["planned_remove"], m["successful_remove"]) == (1, 1)
    assert "d@example.com" not in p.members["100"]
    assert "e@example.com" in p.members["100"]  # suppressed members are never deleted


def test_upsert_with_unsubscribe_removal(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    s = spec(mode="upsert", delete_behavior="unsubscribe", max_remove_pct=50)
    sync(wh, p, s)
    execute(wh, "DELETE FROM people WHERE email = 'a@example.com'")
    sync(wh, p, s, run="r2")
    assert ("unsubscribe", ["a@example.com"]) in p.write_calls
    # coming back into the segment does not re-subscribe: the provider's status wins
    execute(wh, "INSERT INTO people VALUES ('a@example.com', 'Ann', 'DE')")
    p.write_calls.clear()
    m = sync(wh, p, s, run="r3").metadata()
    assert p.write_calls == []
    assert m["suppressed"] == 1


def test_upsert_without_delete_behavior_never_removes(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    sync(wh, p)
    execute(wh, "DELETE FROM people WHERE email = 'a@example.com'")
    p.write_calls.clear()
    m = sync(wh, p, run="r2").metadata()
    assert m["planned_remove"] == 0
    assert p.write_calls == []


def test_insert_mode_skips_changes_and_update_mode_skips_adds(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    sync(wh, p, spec(mode="insert"))
    execute(wh, "UPDATE people SET country = 'IT'")
    m = sync(wh, p, spec(mode="insert"), run="r2").metadata()
    assert (m["planned_change"], m["skipped"]) == (0, 5)
    wh2, p2 = make_wh(tmp_path / "u"), FakeProvider()
    m2 = sync(wh2, p2, spec(mode="update")).metadata()
    assert (m2["planned_add"], m2["skipped"]) == (0, 5)
    assert p2.write_calls == []


def test_provider_blacklist_wins_and_is_never_sent(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider(blacklist={"b@example.com"})
    m = sync(wh, p).metadata()
    assert m["suppressed"] == 1
    assert all("b@example.com" not in emails for _, emails in p.write_calls)


def test_local_suppression_table_wins(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    with wh.connect() as con:
        from espcore.sync.engine import ensure_tables

        ensure_tables(con)
        con.execute("INSERT INTO suppression VALUES ('*', 'C@example.com', 'complaint', NULL)")
    m = sync(wh, p).metadata()
    assert m["suppressed"] == 1
    assert "c@example.com" not in p.members["100"]


def test_dry_run_sends_nothing_and_writes_no_state(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    r = sync(wh, p, dry_run=True)
    assert r.metadata()["planned_add"] == 5
    assert r.dry_run
    assert p.write_calls == []
    assert p.books == {}
    with wh.connect() as con:
        assert con.fetchone("SELECT count(*) FROM sync_state") == (0,)
        assert con.fetchone("SELECT count(*) FROM sync_plan WHERE run_id = 'r1'") == (5,)
    assert r.samples["add"][0] == "a***@example.com"
    # the dry run is the planner: the real run does what it showed
    assert sync(wh, p, run="r2").metadata()["successful_add"] == 5


def test_provider_rejections_are_retried_next_run(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider(reject={"c@example.com"})
    m = sync(wh, p).metadata()
    assert (m["successful_add"], m["failed_add"]) == (4, 1)
    p.reject.clear()
    p.write_calls.clear()
    m2 = sync(wh, p, run="r2").metadata()
    assert (m2["planned_retry"], m2["successful_add"]) == (1, 1)
    assert p.write_calls == [("upsert", ["c@example.com"])]


class Crash(BaseException):
    pass


def crash_after(n: int) -> Callable[[str, int], None]:
    seen = {"n": 0}

    def hook(op: str, size: int) -> None:
        seen["n"] += 1
        if seen["n"] == n:
            raise Crash()

    return hook


def test_crash_between_batches_resumes_without_loss_or_resend(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider(batch_size=2)
    with pytest.raises(Crash):
        run_sync(spec(), p, wh, run_id="r1", after_batch=crash_after(1))
    first = [e for _, emails in p.write_calls for e in emails]
    assert len(first) == 2
    p.write_calls.clear()
    execute(wh, "DELETE FROM sync_lock")  # a killed run leaves its lock; the next run would break it when stale
    r = sync(wh, p, run="r2")
    second = [e for _, emails in p.write_calls for e in emails]
    assert sorted(first + second) == sorted(e for e, _, _ in ROWS)  # nothing lost, nothing resent
    assert r.synced_rows == 5


def test_crash_after_send_before_ack_resends_only_that_batch(tmp_path):
    """Killed between the send and the acknowledgement: the rows stay pending and are resent (an upsert)."""
    wh, p = make_wh(tmp_path), FakeProvider(batch_size=2)
    original = p.upsert_members
    calls = {"n": 0}

    def dying_upsert(book_id, rows):
        out = original(book_id, rows)
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash()
        return out

    p.upsert_members = dying_upsert  # type: ignore[method-assign]
    with pytest.raises(Crash):
        sync(wh, p)
    with wh.connect() as con:
        pending = con.fetchall("SELECT pk FROM sync_state WHERE status = 'pending' ORDER BY pk")
    assert [r[0] for r in pending] == ["c@example.com", "d@example.com"]
    p.upsert_members = original  # type: ignore[method-assign]
    p.write_calls.clear()
    execute(wh, "DELETE FROM sync_lock")
    m = sync(wh, p, run="r2").metadata()
    assert m["planned_retry"] == 2
    assert sorted(e for _, es in p.write_calls for e in es) == ["c@example.com", "d@example.com", "e@example.com"]


def test_transient_failure_keeps_rows_pending_and_fails_the_step(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider(batch_size=2)
    p.fail_next_writes = 0
    original = p._write
    state = {"n": 0}

    def flaky(kind, emails):
        state["n"] += 1
        if state["n"] == 2:
            p.fail_next_writes = 1
        original(kind, emails)

    p._write = flaky  # type: ignore[method-assign]
    with pytest.raises(SyncError, match="pending"):
        sync(wh, p)
    p._write = original  # type: ignore[method-assign]
    r = sync(wh, p, run="r2")
    assert r.synced_rows == 5


def test_mass_remove_guard(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    s = spec(mode="mirror", max_remove_pct=10)
    sync(wh, p, s)
    execute(wh, "DELETE FROM people WHERE email <> 'a@example.com'")
    with pytest.raises(MassRemoveError):
        sync(wh, p, s, run="r2")
    dry = sync(wh, p, s, run="r3", dry_run=True)
    assert dry.removal_guard_tripped
    m = sync(wh, p, s, run="r4", allow_mass_remove=True).metadata()
    assert m["successful_remove"] == 4


def test_second_run_on_same_book_fails_fast(tmp_path):
    wh, p = make_wh(tmp_path), FakeProvider()
    sync(wh, p)
    with wh.connect() as con:
        con.execute("INSERT INTO sync_lock VALUES ('fake', '100', 'other-run', ?)", [now_utc()])
    with pytest.raises(SyncLockedError, match="other-run"):
        sync(wh, p, run="r2")
