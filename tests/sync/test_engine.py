"""The plan/apply engine against an in-memory provider, on a real DuckDB and a real PostgreSQL warehouse."""

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import pytest

from espcore.sync.engine import run_sync
from espcore.sync.errors import MassRemoveError, SyncError, SyncLockedError
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.warehouse import BaseWarehouse
from tests.sync.fakes import FakeProvider, HoldAfterFirstBatch

#: every test runs with the fake provider as it is and as a PreparedWriter (``tests/sync/conftest.py``)
pytestmark = pytest.mark.usefixtures("writer")

ROWS = [
    ("a@example.com", "Ann", "DE"),
    ("b@example.com", "Bob", "FR"),
    ("c@example.com", "Cid", "NL"),
    ("d@example.com", "Dee", "PL"),
    ("e@example.com", "Eve", "ES"),
]

WarehouseFactory = Callable[[], BaseWarehouse]


def make_wh(new_wh: WarehouseFactory, rows=ROWS) -> BaseWarehouse:
    wh = new_wh()
    with wh.connect() as con:
        con.execute("DROP TABLE IF EXISTS people")
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR, country VARCHAR)")
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


def execute(wh: BaseWarehouse, sql: str) -> None:
    with wh.connect() as con:
        con.execute(sql)


def own(wh: BaseWarehouse, table: str) -> str:
    """One of the engine's tables, in the warehouse's own schema."""
    return f"{wh.own_schema}.{table}"


def test_first_sync_adds_everything_and_resync_writes_nothing(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
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


def test_invalid_rows_are_rejected_with_reasons_and_never_block_valid_rows(new_wh):
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
    wh, p = make_wh(new_wh, rows), FakeProvider()
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


def test_duplicates_of_synced_keys_identical_copies_change_nothing_conflicting_ones_are_rejected(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p, s=spec(mode="mirror", max_remove_pct=50))
    execute(wh, "INSERT INTO people VALUES ('A@example.com', 'Ann', 'DE')")  # same values as the synced a@
    p.write_calls.clear()
    m = sync(wh, p, s=spec(mode="mirror", max_remove_pct=50), run="r2").metadata()
    assert p.write_calls == []  # an identical copy of a synced key is nothing to do
    assert (m["invalid"], m["query_size"]) == (0, 6)
    # one copy still matches the synced values, the other differs: neither is sent nor removed; both rejected
    execute(wh, "INSERT INTO people VALUES (' b@EXAMPLE.com', 'Robert', 'FR')")
    execute(wh, "INSERT INTO people VALUES ('new@example.com', 'New', 'IT'), ('NEW@example.com', 'New', 'IT')")
    execute(wh, "INSERT INTO people VALUES ('bad@', 'X', 'IT'), ('bad@', 'X', 'IT')")
    r = sync(wh, p, s=spec(mode="mirror", max_remove_pct=50), run="r3")
    m = r.metadata()
    assert p.write_calls == [("upsert", ["new@example.com"])]  # the identical new pair is one add
    assert (m["planned_add"], m["planned_change"], m["planned_remove"]) == (1, 0, 0)
    assert (m["invalid"], m["query_size"]) == (4, 11)
    reasons = sorted((x["raw_email"], x["reason"].split(":")[0]) for x in r.rejects)
    assert reasons == [
        (" b@EXAMPLE.com", "duplicate key with conflicting values"),
        ("b@example.com", "duplicate key with conflicting values"),
        ("bad@", "invalid email syntax"),
        ("bad@", "invalid email syntax"),
    ]
    assert p.members["100"]["b@example.com"] == {"country": "FR", "name": "Bob"}


def test_changed_row_is_one_change_call(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p)
    execute(wh, "UPDATE people SET country = 'IT' WHERE email = 'b@example.com'")
    p.write_calls.clear()
    m = sync(wh, p, run="r2").metadata()
    assert (m["planned_change"], m["successful_change"]) == (1, 1)
    assert p.write_calls == [("upsert", ["b@example.com"])]
    assert p.members["100"]["b@example.com"]["country"] == "IT"


def test_full_resync_resends_everything_but_suppressed(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p)
    p.blacklist.add("c@example.com")
    m = sync(wh, p, run="r2", full_resync=True).metadata()
    assert m["planned_change"] == 4
    assert m["suppressed"] == 1


def test_mirror_removes_rows_that_left_but_never_suppressed_ones(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    s = spec(mode="mirror", max_remove_pct=50)
    sync(wh, p, s)
    p.statuses[("100", "e@example.com")] = __import__("espcore.providers.base").providers.base.MemberState.UNSUBSCRIBED
    execute(wh, "DELETE FROM people WHERE email IN ('d@example.com', 'e@example.com')")
    m = sync(wh, p, s, run="r2").metadata()
    assert (m["planned_remove"], m["successful_remove"]) == (1, 1)
    assert "d@example.com" not in p.members["100"]
    assert "e@example.com" in p.members["100"]  # suppressed members are never deleted


def test_a_removal_refused_for_good_is_not_tried_again_while_the_key_stays_out(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(reject_removal={"d@example.com"})
    s = spec(mode="mirror", max_remove_pct=50)
    sync(wh, p, s)
    execute(wh, "DELETE FROM people WHERE email IN ('d@example.com', 'e@example.com')")
    m = sync(wh, p, s, run="r2").metadata()
    assert (m["planned_remove"], m["successful_remove"], m["failed_remove"]) == (2, 1, 1)
    # the refused removal is remembered with the key's provider status untouched: not sent again
    p.write_calls.clear()
    m = sync(wh, p, s, run="r3").metadata()
    assert (p.write_calls, m["planned_remove"], m["rejected_unchanged"]) == ([], 0, 1)
    # a full resync tries it again (and resends the segment's rows)
    p.reject_removal.clear()
    m = sync(wh, p, s, run="r4", full_resync=True).metadata()
    assert [c for c in p.write_calls if c[0] == "remove"] == [("remove", ["d@example.com"])]
    assert (m["successful_remove"], m["successful_change"]) == (1, 3)
    assert "d@example.com" not in p.members["100"]


def test_upsert_with_unsubscribe_removal(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
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


def test_upsert_without_delete_behavior_never_removes(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p)
    execute(wh, "DELETE FROM people WHERE email = 'a@example.com'")
    p.write_calls.clear()
    m = sync(wh, p, run="r2").metadata()
    assert m["planned_remove"] == 0
    assert p.write_calls == []


def test_insert_mode_skips_changes_and_update_mode_skips_adds(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    sync(wh, p, spec(mode="insert"))
    execute(wh, "UPDATE people SET country = 'IT'")
    m = sync(wh, p, spec(mode="insert"), run="r2").metadata()
    assert (m["planned_change"], m["skipped"]) == (0, 5)
    wh2, p2 = make_wh(new_wh), FakeProvider()
    m2 = sync(wh2, p2, spec(mode="update")).metadata()
    assert (m2["planned_add"], m2["skipped"]) == (0, 5)
    assert p2.write_calls == []


def test_provider_blacklist_wins_and_is_never_sent(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(blacklist={"b@example.com"})
    m = sync(wh, p).metadata()
    assert m["suppressed"] == 1
    assert all("b@example.com" not in emails for _, emails in p.write_calls)


def test_local_suppression_table_wins(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    with wh.connect() as con:
        from espcore.sync.tables import ensure_tables

        ensure_tables(con)
        con.execute(f"INSERT INTO {own(wh, 'suppression')} VALUES ('*', 'C@example.com', 'complaint', NULL)")
    m = sync(wh, p).metadata()
    assert m["suppressed"] == 1
    assert "c@example.com" not in p.members["100"]


def test_dry_run_sends_nothing_and_writes_no_state(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    r = sync(wh, p, dry_run=True)
    assert r.metadata()["planned_add"] == 5
    assert r.dry_run
    assert p.write_calls == []
    assert p.books == {}
    with wh.connect() as con:
        assert con.fetchone(f"SELECT count(*) FROM {own(wh, 'sync_state')}") == (0,)
        assert con.fetchone(f"SELECT count(*) FROM {own(wh, 'sync_plan')} WHERE run_id = 'r1'") == (5,)
    assert r.samples["add"][0] == "a***@example.com"
    # the dry run is the planner: the real run does what it showed
    assert sync(wh, p, run="r2").metadata()["successful_add"] == 5


def test_permanent_rejects_are_resent_only_when_changed_or_on_full_resync(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(reject={"c@example.com", "d@example.com"})
    r1 = sync(wh, p)
    m = r1.metadata()
    assert (m["successful_add"], m["failed_add"], m["pending"], m["outcome"]) == (3, 2, 0, "partial")
    # unchanged segment: the rejected rows are not sent again, only reported as still rejected
    p.write_calls.clear()
    m2 = sync(wh, p, run="r2").metadata()
    assert p.write_calls == []
    assert (m2["write_calls"], m2["planned_add"], m2["planned_retry"], m2["rejected_unchanged"]) == (0, 0, 0, 2)
    assert (m2["failed_add"], m2["outcome"]) == (0, "success")
    # one rejected row changes its mapped values: that row alone is re-sent
    p.reject.discard("c@example.com")
    execute(wh, "UPDATE people SET first_name = 'Cyd' WHERE email = 'c@example.com'")
    m3 = sync(wh, p, run="r3").metadata()
    assert p.write_calls == [("upsert", ["c@example.com"])]
    assert (m3["planned_retry"], m3["successful_add"], m3["rejected_unchanged"]) == (1, 1, 1)
    # a change of an unmapped column is no change
    execute(wh, "ALTER TABLE people ADD COLUMN note VARCHAR")
    execute(wh, "UPDATE people SET note = 'x' WHERE email = 'd@example.com'")
    p.write_calls.clear()
    assert sync(wh, p, run="r4").metadata()["rejected_unchanged"] == 1
    assert p.write_calls == []
    # an explicit full resync sends everything again, rejected rows included
    p.reject.clear()
    m5 = sync(wh, p, run="r5", full_resync=True).metadata()
    assert (m5["planned_change"], m5["planned_add"], m5["rejected_unchanged"]) == (4, 1, 0)
    assert m5["successful_add"] == 1
    assert sorted(e for _, es in p.write_calls for e in es) == sorted(e for e, _, _ in ROWS)
    assert sync(wh, p, run="r6").synced_rows == 5


def test_a_rejected_row_that_leaves_and_comes_back_unchanged_is_not_resent(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(reject={"e@example.com"})
    sync(wh, p)
    execute(wh, "DELETE FROM people WHERE email = 'e@example.com'")
    assert sync(wh, p, run="r2").metadata()["rejected_unchanged"] == 0  # never synced: its state is forgotten
    execute(wh, "INSERT INTO people VALUES ('e@example.com', 'Eve', 'ES')")
    p.write_calls.clear()
    m = sync(wh, p, run="r3").metadata()
    assert p.write_calls == [("upsert", ["e@example.com"])]  # a new add: the provider decides again
    assert m["failed_add"] == 1


def test_transient_row_results_leave_rows_pending_and_the_run_partial(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(transient={"b@example.com", "d@example.com"}, reject={"e@example.com"})
    r = sync(wh, p)
    m = r.metadata()
    assert (m["successful_add"], m["failed_add"], m["transient"], m["pending"]) == (2, 1, 2, 2)
    assert m["outcome"] == "partial"
    with wh.connect() as con:
        assert con.fetchall(f"SELECT run_id, status FROM {own(wh, 'sync_runs')}") == [("r1", "partial")]
        counts = con.fetchone(f"SELECT counts FROM {own(wh, 'sync_runs')}")
    assert counts is not None
    assert json.loads(counts[0])["pending"] == 2
    # pending rows are always retried (unlike the permanent reject), and the run is a success once all is done
    p.transient.clear()
    p.write_calls.clear()
    m2 = sync(wh, p, run="r2").metadata()
    assert p.write_calls == [("upsert", ["b@example.com", "d@example.com"])]
    assert (m2["planned_retry"], m2["successful_add"], m2["pending"], m2["rejected_unchanged"]) == (2, 2, 0, 1)
    assert m2["outcome"] == "success"


def test_a_bulk_write_failing_past_its_retries_is_reported_pending(new_wh):
    """An adapter that gives up on a batch after its retries answers every row as transient: no exception, but
    the rows wait for the next run, and the run says so instead of a plain success with nothing counted."""
    wh, p = make_wh(new_wh), FakeProvider(batch_size=10)
    p.transient = {e for e, _, _ in ROWS}
    m = sync(wh, p).metadata()
    assert (m["successful_add"], m["failed_add"], m["transient"], m["pending"]) == (0, 0, 5, 5)
    assert m["outcome"] == "partial"
    p.transient.clear()
    assert sync(wh, p, run="r2").metadata()["outcome"] == "success"


class Crash(BaseException):
    pass


def crash_after(n: int) -> Callable[[str, int], None]:
    seen = {"n": 0}

    def hook(op: str, size: int) -> None:
        seen["n"] += 1
        if seen["n"] == n:
            raise Crash()

    return hook


def test_crash_between_batches_resumes_without_loss_or_resend(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(batch_size=2)
    with pytest.raises(Crash):
        run_sync(spec(), p, wh, run_id="r1", after_batch=crash_after(1))
    first = [e for _, emails in p.write_calls for e in emails]
    assert len(first) == 2
    p.write_calls.clear()
    r = sync(wh, p, run="r2")
    second = [e for _, emails in p.write_calls for e in emails]
    assert sorted(first + second) == sorted(e for e, _, _ in ROWS)  # nothing lost, nothing resent
    assert r.synced_rows == 5


def test_crash_after_send_before_ack_resends_only_that_batch(new_wh):
    """Killed between the send and the acknowledgement: the rows stay pending and are resent (an upsert). The rest
    of the page was written ahead but never sent: pending too, and sent for the first time by the next run."""
    wh, p = make_wh(new_wh), FakeProvider(batch_size=2)
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
        journaled = con.fetchall(f"SELECT pk, result FROM {own(wh, 'sync_changelog')} ORDER BY pk")
        pending = con.fetchall(f"SELECT pk FROM {own(wh, 'sync_state')} WHERE status = 'pending' ORDER BY pk")
    # the first call was acknowledged (journaled) before the kill; the kill came before the page was folded
    assert journaled == [("a@example.com", "ok"), ("b@example.com", "ok")]
    assert [r[0] for r in pending] == [e for e, _, _ in ROWS]
    assert "e@example.com" not in [e for _, es in p.write_calls for e in es]
    p.upsert_members = original  # type: ignore[method-assign]
    p.write_calls.clear()
    m = sync(wh, p, run="r2").metadata()
    assert m["planned_retry"] == 3  # the journal decided a and b; c and d were in flight, e never sent
    assert sorted(e for _, es in p.write_calls for e in es) == ["c@example.com", "d@example.com", "e@example.com"]


def test_transient_failure_keeps_rows_pending_and_fails_the_step(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(batch_size=2)
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


def test_mass_remove_guard(new_wh):
    wh, p = make_wh(new_wh), FakeProvider()
    s = spec(mode="mirror", max_remove_pct=10)
    sync(wh, p, s)
    execute(wh, "DELETE FROM people WHERE email <> 'a@example.com'")
    with pytest.raises(MassRemoveError):
        sync(wh, p, s, run="r2")
    dry = sync(wh, p, s, run="r3", dry_run=True)
    assert dry.removal_guard_tripped
    m = sync(wh, p, s, run="r4", allow_mass_remove=True).metadata()
    assert m["successful_remove"] == 4


# -- concurrency: runs on different books proceed side by side, runs on one book are serialised ---------------------


def _table(wh: BaseWarehouse, name: str, rows) -> None:
    with wh.connect() as con:
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute(f"CREATE TABLE {name} (email VARCHAR, first_name VARCHAR, country VARCHAR)")
        for r in rows:
            con.execute(f"INSERT INTO {name} VALUES (?, ?, ?)", list(r))


def _in_lockstep(*jobs: Callable[[Callable[[str, int], None]], object]) -> list[object]:
    """Run jobs in threads; each gets an after-batch hook that waits for the others, so batches interleave."""
    barrier = threading.Barrier(len(jobs), timeout=20)

    def hook(op: str, size: int) -> None:
        barrier.wait()

    def run(job: Callable[[Callable[[str, int], None]], object]) -> object:
        try:
            return job(hook)
        except BaseException:
            barrier.abort()  # do not leave the other job waiting for this one
            raise

    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        return [f.result(timeout=60) for f in futures]


def test_concurrent_syncs_to_different_books_do_not_interleave(new_wh):
    wh = new_wh()  # empty: the two runs also race to create the sync tables
    rows_b = [(e, n.upper(), "SE") for e, n, _ in ROWS]  # same keys, other values: any mix-up would show
    _table(wh, "people", ROWS)
    _table(wh, "people_b", rows_b)
    p = FakeProvider(batch_size=2)  # 5 rows: 3 batches per run
    book_a, book_b = p.ensure_book("Book A").id, p.ensure_book("Book B").id  # up front: the fake is not thread-safe
    spec_a = spec(name="sync_a", book="Book A", mode="mirror", max_remove_pct=100)
    spec_b = spec(name="sync_b", book="Book B", source_sql="SELECT * FROM people_b", mode="mirror", max_remove_pct=100)

    def job(s: SyncSpec, run: str):
        return lambda hook: run_sync(s, p, wh, run_id=run, after_batch=hook)

    ra, rb = _in_lockstep(job(spec_a, "ra1"), job(spec_b, "rb1"))
    assert [r.metadata()["successful_add"] for r in (ra, rb)] == [5, 5]  # type: ignore[attr-defined]
    assert p.members[book_a] == {e: {"name": n, "country": c} for e, n, c in ROWS}
    assert p.members[book_b] == {e: {"name": n, "country": c} for e, n, c in rows_b}
    with wh.connect() as con:
        state = con.fetchall(
            f"SELECT book_id, run_id, status, count(*) FROM {own(wh, 'sync_state')} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        log = con.fetchall(
            f"SELECT run_id, book_id, count(*) FROM {own(wh, 'sync_changelog')} GROUP BY 1, 2 ORDER BY 1, 2"
        )
        assert con.fetchall(f"SELECT * FROM {own(wh, 'sync_lock')}") == []
    assert state == [(book_a, "ra1", "synced", 5), (book_b, "rb1", "synced", 5)]
    assert log == [("ra1", book_a, 5), ("rb1", book_b, 5)]

    # second round, again side by side: one change and one remove in each book (2 batches each)
    execute(wh, "UPDATE people SET country = 'IT' WHERE email = 'a@example.com'")
    execute(wh, "DELETE FROM people WHERE email = 'e@example.com'")
    execute(wh, "UPDATE people_b SET country = 'NO' WHERE email = 'b@example.com'")
    execute(wh, "DELETE FROM people_b WHERE email = 'd@example.com'")
    p.write_calls.clear()
    ra, rb = _in_lockstep(job(spec_a, "ra2"), job(spec_b, "rb2"))
    for r in (ra, rb):
        m = r.metadata()  # type: ignore[attr-defined]
        assert (m["successful_change"], m["successful_remove"]) == (1, 1)
    assert sorted(p.write_calls) == [
        ("remove", ["d@example.com"]),
        ("remove", ["e@example.com"]),
        ("upsert", ["a@example.com"]),
        ("upsert", ["b@example.com"]),
    ]
    assert p.members[book_a]["a@example.com"]["country"] == "IT"
    assert "e@example.com" not in p.members[book_a]
    assert "d@example.com" in p.members[book_a]
    assert p.members[book_b]["b@example.com"] == {"name": "BOB", "country": "NO"}
    assert "d@example.com" not in p.members[book_b]
    assert "e@example.com" in p.members[book_b]
    # the state of each book is exactly its own segment: a third (serial) run of each has nothing to do
    p.write_calls.clear()
    for s, run in ((spec_a, "ra3"), (spec_b, "rb3")):
        m = sync(wh, p, s, run=run).metadata()
        assert m["planned_add"] == m["planned_change"] == m["planned_remove"] == 0
    assert p.write_calls == []


def test_second_run_on_a_book_fails_fast_while_the_first_holds_it(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(batch_size=2)
    p.ensure_book("People")
    hold = HoldAfterFirstBatch()

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(run_sync, spec(), p, wh, run_id="r1", after_batch=hold)
        try:
            assert hold.holding.wait(30), first.exception(timeout=0) if first.done() else "first run never got going"
            sent_by_first = list(p.write_calls)
            started = time.monotonic()
            with pytest.raises(SyncLockedError, match="run r1"):
                sync(wh, p, run="r2")
            assert time.monotonic() - started < 10  # it does not wait for the holder
            assert p.write_calls == sent_by_first  # and it sent nothing
            with wh.connect() as con:
                # the holder's lock is intact
                assert con.fetchall(f"SELECT run_id FROM {own(wh, 'sync_lock')}") == [("r1",)]
        finally:
            hold.release()
        r1 = first.result(timeout=60)
    assert r1.synced_rows == 5
    with wh.connect() as con:
        assert con.fetchall(f"SELECT run_id, status FROM {own(wh, 'sync_runs')} ORDER BY run_id") == [
            ("r1", "success"),
            ("r2", "failed"),
        ]
    assert sync(wh, p, run="r3").metadata()["planned_add"] == 0  # the lock went with the first run


def test_two_runs_starting_together_on_one_book_take_turns(new_wh):
    wh, p = make_wh(new_wh), FakeProvider(batch_size=2)
    p.ensure_book("People")
    start = threading.Barrier(2, timeout=20)
    holding, release = threading.Event(), threading.Event()

    def hold(op: str, size: int) -> None:
        holding.set()
        assert release.wait(30)

    def go(run: str):
        start.wait()
        return run_sync(spec(), p, wh, run_id=run, after_batch=hold)

    with ThreadPoolExecutor(2) as pool:
        futures: list[Future] = [pool.submit(go, run) for run in ("r1", "r2")]
        try:
            # the loser fails at once, while the winner is still holding the book; if both had taken the lock,
            # neither would finish here
            done, _ = wait(futures, timeout=20, return_when=FIRST_COMPLETED)
            assert len(done) == 1, "both runs took the book"
            (loser,) = done
            with pytest.raises(SyncLockedError):
                loser.result()
            assert holding.wait(20)
        finally:
            release.set()
        (winner,) = [f for f in futures if f is not loser]
        assert winner.result(timeout=60).synced_rows == 5
    assert sorted(e for _, emails in p.write_calls for e in emails) == sorted(e for e, _, _ in ROWS)
