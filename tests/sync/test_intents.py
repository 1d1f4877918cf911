"""Write-ahead by page (issue #16): a page is written ahead as one row naming its key range in the run's plan
(with a row per key the pre-send checks refused), and the state is written once per row, when the page is folded.

* **One write per row.** The fold of a page whose every row was answered writes each row's state in one upsert;
  it leaves every row exactly as the write-ahead into ``sync_state`` followed by the fold of its answer did, for
  every operation, answer and prior state, on both engines, whether the page was written ahead as a page row or
  as an earlier release's intents (a row per key).
* **A kill between write-ahead and fold** (no handler runs) leaves the state untouched; the next run's recovery
  makes each row of the page without an answer ``pending`` exactly as a write-ahead did (operation,
  fingerprint, one more attempt, the page's time, the run), folds the answers journaled, and is not repeated by
  a later run. Nothing journaled is sent again; a refused key is not made pending; an erasure of a key that
  bounds a page leaves the page's other rows recovered.
* **DuckDB settings** of the apply (one thread, a bigger checkpoint threshold) hold while a run applies and are
  set back after.
"""

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from espcore.providers.base import RowResult
from espcore.sync import engine as engine_module
from espcore.sync.engine import SyncEngine, _fold_page_sql, _fold_sql, _pages_table, _settle_sql, run_sync
from espcore.sync.pipeline import APPLY_DUCKDB_SETTINGS, FOLDED, INTENT, PAGE, REFUSED, from_micros
from espcore.sync.spec import SyncSpec
from espcore.sync.tables import ensure_tables
from espcore.warehouse import BaseWarehouse, Warehouse
from tests.sync.fakes import FakeProvider
from tests.sync.test_pipeline import fill_people, people

#: every test runs with the fake provider as it is and as a PreparedWriter (``tests/sync/conftest.py``)
pytestmark = pytest.mark.usefixtures("writer")

WarehouseFactory = Callable[[], BaseWarehouse]

STATE_COLUMNS = (
    "pk, status, synced_fp, provider_status, provider_id, pending_op, pending_fp, last_error, last_synced_at, "
    "rejected_fp, attempts, last_attempt_at, run_id"
)


def spec(**kw: Any) -> SyncSpec:
    base: dict[str, Any] = dict(
        name="intent_sync",
        provider="fake",
        book="Intents",
        source_sql="SELECT * FROM people",
        fields={"name": "first_name"},
    )
    base.update(kw)
    return SyncSpec(**base)


def query(wh: BaseWarehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with wh.connect() as con:
        return con.fetchall(sql.replace("{own}", wh.own_schema), params)


def utc(value: Any) -> Any:
    """A time read back from either engine, as an aware UTC datetime (other values as they are)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value


def state(wh: BaseWarehouse, where: str = "TRUE") -> dict[str, tuple[Any, ...]]:
    rows = query(wh, f"SELECT {STATE_COLUMNS} FROM {{own}}.sync_state WHERE {where} ORDER BY pk")
    return {r[0]: tuple(utc(v) for v in r[1:]) for r in rows}


# -- one write per row -------------------------------------------------------------------------------------------

OPS = ("add", "change", "remove", "unsubscribe")
RESULTS = ("ok", "rejected", "suppressed", "transient")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PRIOR: dict[str, dict[str, Any] | None] = {
    "none": None,
    "synced": dict(
        status="synced",
        synced_fp="fp-old",
        provider_status="active",
        provider_id="id-old",
        last_error=None,
        last_synced_at=T0,
        rejected_fp=None,
        attempts=2,
        last_attempt_at=T0,
        run_id="earlier",
    ),
    "rejected": dict(
        status="rejected",
        synced_fp=None,
        provider_status="unsubscribed",
        provider_id=None,
        last_error="was bad",
        last_synced_at=None,
        rejected_fp="fp-rejected",
        attempts=5,
        last_attempt_at=T0,
        run_id="earlier",
    ),
    "pending": dict(
        status="pending",
        synced_fp="fp-older",
        provider_status=None,
        provider_id="id-old",
        last_error="try later",
        last_synced_at=T0,
        rejected_fp="fp-rejected",
        attempts=1,
        last_attempt_at=T0,
        run_id="earlier",
        pending_op="change",
        pending_fp="fp-pending",
    ),
}


def _cases() -> list[dict[str, Any]]:
    out = []
    for i, (prior, op, res, pid, err) in enumerate(
        itertools.product(PRIOR, OPS, RESULTS, (None, "id-new"), (None, "the provider's message"))
    ):
        out.append(
            dict(
                pk=f"k{i:03d}@example.com",
                prior=prior,
                op=op,
                result=res,
                provider_id=pid,
                error=None if res == "ok" else err,
                fp=None if op in ("remove", "unsubscribe") else f"fp-{i}",
            )
        )
    return out


def _prepare_state(wh: BaseWarehouse, cases: list[dict[str, Any]], page_id: int, *, pages: bool = False) -> None:
    """Each case's prior state, and its key written ahead under ``page_id``: as a page (the run's plan rows of
    each operation and a :data:`PAGE` row naming their key range) or, ``pages`` false, as an earlier release's
    intents (a row per key)."""
    with wh.connect() as con:
        ensure_tables(con)
        for c in cases:
            prior = PRIOR[c["prior"]]
            if prior is not None:
                cols = ["provider", "book_id", "pk", *prior]
                con.execute(
                    f"INSERT INTO {con.own('sync_state')} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    ["fake", "B", c["pk"], *prior.values()],
                )
        con.load_temp(
            "intents",
            pa.table(
                {
                    "pk": pa.array([c["pk"] for c in cases], pa.string()),
                    "action": pa.array([c["op"] for c in cases], pa.string()),
                    "fp": pa.array([c["fp"] for c in cases], pa.string()),
                }
            ),
        )
        plan = con.own("sync_plan")
        if pages:
            con.execute(
                f"""INSERT INTO {plan} (run_id, sync_name, provider, book_id, pk, action, op, fp)
                   SELECT 'now', 's', 'fake', 'B', pk, action, action, fp FROM intents"""
            )
            con.execute(
                f"""INSERT INTO {plan} (run_id, sync_name, provider, book_id, pk, action, op, page_after, n)
                   SELECT 'now', 's', 'fake', 'B', max(pk), action, '{PAGE}', '', ? FROM intents GROUP BY action""",
                [page_id],
            )
        else:
            con.execute(
                f"""INSERT INTO {plan} (run_id, sync_name, provider, book_id, pk, action, op, fp, n)
                   SELECT 'now', 's', 'fake', 'B', pk, action, '{INTENT}', fp, ? FROM intents""",
                [page_id],
            )
        con.drop_temp("intents")


def _answers(cases: list[dict[str, Any]], logged_at: datetime, *, with_fp: bool) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "pk": pa.array([c["pk"] for c in cases], pa.string()),
        "op": pa.array([c["op"] for c in cases], pa.string()),
        "result": pa.array([c["result"] for c in cases], pa.string()),
        "error": pa.array([c["error"] for c in cases], pa.string()),
        "provider_id": pa.array([c["provider_id"] for c in cases], pa.string()),
        "logged_at": pa.array([logged_at] * len(cases), pa.timestamp("us", tz="UTC")),
    }
    if with_fp:
        columns["fp"] = pa.array([c["fp"] for c in cases], pa.string())
    return pa.table(columns)


@pytest.mark.parametrize("written_ahead", ["page", "intents"])
def test_the_fold_in_one_go_leaves_each_row_as_the_write_ahead_and_the_fold_did(new_wh, written_ahead) -> None:
    """Against the two steps a page took before (made pending from what was written ahead, then its answers
    folded): from a page row, and from an earlier release's intents."""
    cases = _cases()
    page_id = 1_780_000_000_123_456
    logged_at = from_micros(page_id) + timedelta(seconds=3)
    two_steps, one_go = new_wh(), new_wh()
    for wh in (two_steps, one_go):
        _prepare_state(wh, cases, page_id, pages=written_ahead == "page")
    with two_steps.connect() as con:  # what a page went through before intents: pending first, then its answers
        con.load_temp("wa_pages", _pages_table([("now", "s", page_id)]))
        con.load_temp("ack_page", _answers(cases, logged_at, with_fp=False))
        with con.transaction():
            con.execute(_settle_sql(con.own("sync_state"), con.own("sync_plan")), ["fake", "B"] * 2)
            con.execute(_fold_sql(con.own("sync_state"), "ack_page"), ["fake", "B"])
    with one_go.connect() as con:
        con.load_temp("ack_page", _answers(cases, logged_at, with_fp=True))
        with con.transaction():
            con.execute(_fold_page_sql(con.own("sync_state"), "ack_page"), ["fake", "B", from_micros(page_id), "now"])
    expected, got = state(two_steps), state(one_go)
    assert len(got) == len(cases)
    for c in cases:  # one assertion per case, so a difference names its operation, answer and prior state
        assert got[c["pk"]] == expected[c["pk"]], c
    # and the two-step path is what a write-ahead then a fold did: a spot check of its meaning
    ok_new = next(c for c in cases if (c["prior"], c["op"], c["result"]) == ("none", "add", "ok"))
    assert got[ok_new["pk"]][:3] == ("synced", ok_new["fp"], "active")
    assert got[ok_new["pk"]][-3:] == (1, from_micros(page_id), "now")
    kept = next(c for c in cases if (c["prior"], c["op"], c["result"]) == ("rejected", "change", "transient"))
    assert got[kept["pk"]][0] == "pending"
    assert got[kept["pk"]][8] == "fp-rejected"
    assert got[kept["pk"]][9] == 6


def test_the_plain_insert_of_new_keys_leaves_them_as_the_upsert_does(new_wh) -> None:
    cases = [c for c in _cases() if c["prior"] == "none" and c["op"] == "add"]
    page_id = 1_780_000_000_654_321
    logged_at = from_micros(page_id) + timedelta(seconds=1)
    upserted, inserted = new_wh(), new_wh()
    for wh, insert in ((upserted, False), (inserted, True)):
        _prepare_state(wh, cases, page_id)
        with wh.connect() as con:
            con.load_temp("ack_page", _answers(cases, logged_at, with_fp=True))
            with con.transaction():
                con.execute(
                    _fold_page_sql(con.own("sync_state"), "ack_page", insert=insert),
                    ["fake", "B", from_micros(page_id), "now"],
                )
    assert state(inserted) == state(upserted)
    assert len(state(inserted)) == len(cases)


def test_an_add_the_plan_took_for_new_that_has_state_is_folded_by_the_upsert(new_wh, caplog) -> None:
    """A key the plan says the sync never wrote (an add without a provider status) is folded by a plain insert;
    should it have a state row after all (here one an earlier release left ``removed`` without a status), the
    insert fails and the page is journaled and folded again by the upsert."""
    rows = people(5)
    wh, p = fill_people(new_wh(), rows), FakeProvider(batch_size=2)
    book_id = p.ensure_book("Intents").id
    with wh.connect() as con:
        ensure_tables(con)
        con.execute(
            f"INSERT INTO {con.own('sync_state')} (provider, book_id, pk, status, attempts) VALUES (?, ?, ?, ?, ?)",
            ["fake", book_id, rows[2][0], "removed", 4],
        )
    with caplog.at_level(logging.DEBUG, logger="espcore.sync"):
        r = run_sync(spec(), p, wh, run_id="r1")
    assert "folded with the upsert" in caplog.text
    assert r.outcome == "success"
    assert r.synced_rows == 5
    assert query(wh, "SELECT count(*), count(DISTINCT pk) FROM {own}.sync_changelog") == [(5, 5)]  # journaled once
    after = state(wh)
    assert after[rows[2][0]][0] == "synced"
    assert after[rows[2][0]][9] == 5  # the row it had, one more attempt
    assert {after[e][9] for e, _ in rows if e != rows[2][0]} == {1}


# -- a kill between the intents and the fold ---------------------------------------------------------------------


class Kill(BaseException):
    """A kill no handler sees: the run's wind-down (journal, settle) is skipped as SIGKILL would skip it."""


def test_a_run_killed_after_its_write_ahead_is_recovered_as_a_write_ahead_to_the_state_was(new_wh, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "ACK_GROUP_ROWS", 10)  # a journal group per call of 10
    rows = people(45)
    wh, p = fill_people(new_wh(), rows), FakeProvider(batch_size=10)
    original = p.upsert_members
    calls = {"n": 0}

    def dies_in_the_fourth_call(book_id: str, members: Any) -> list[RowResult]:
        calls["n"] += 1
        if calls["n"] == 4:
            p.write_calls.append(("upsert", [m.email for m in members]))  # it may have reached the provider
            raise Kill()
        return original(book_id, members)

    def killed_before_winding_down(self: SyncEngine, *args: Any, **kwargs: Any) -> None:
        return None

    p.upsert_members = dies_in_the_fourth_call  # type: ignore[method-assign]
    with monkeypatch.context() as m:
        m.setattr(SyncEngine, "_wind_down", killed_before_winding_down)
        with pytest.raises(Kill):
            run_sync(spec(), p, wh, run_id="killed")
    logged = dict(query(wh, "SELECT pk, logged_at FROM {own}.sync_changelog WHERE run_id = 'killed'"))
    assert sorted(logged) == [e for e, _ in rows[:30]]  # a group per call: the three answered calls
    assert state(wh) == {}  # the state is written when a page is folded, and the one page never was
    # one page of 45 keys, written ahead as one row naming its key range in the run's plan
    written = query(
        wh, f"SELECT action, page_after, pk, n FROM {{own}}.sync_plan WHERE run_id = 'killed' AND op = '{PAGE}'"
    )
    assert [r[:3] for r in written] == [("add", "", max(e for e, _ in rows))]
    assert query(wh, "SELECT count(*) FROM {own}.sync_plan WHERE run_id = 'killed' AND op NOT IN ('add', 'page')") == [
        (0,)
    ]
    (page_id,) = {r[3] for r in written}
    fps = dict(query(wh, "SELECT pk, fp FROM {own}.sync_plan WHERE run_id = 'killed' AND op = 'add'"))
    assert sorted(fps) == [e for e, _ in rows]

    # the next run's recovery alone: every intent pending as its write-ahead left it, then the journal folded
    book_id = p.books["Intents"]
    recovering = SyncEngine(spec(), p, wh, run_id="next")
    with wh.session():
        recovering._recover(book_id)
    after = state(wh)
    written = from_micros(page_id)
    for e, _ in rows[:30]:
        synced_at = utc(logged[e])
        assert after[e] == ("synced", fps[e], "active", None, None, None, None, synced_at, None, 1, written, "killed")
    for e, _ in rows[30:]:
        assert after[e] == ("pending", None, None, None, "add", fps[e], None, None, None, 1, written, "killed")
    assert query(wh, f"SELECT n FROM {{own}}.sync_plan WHERE run_id = 'killed' AND op = '{FOLDED}'") == [(page_id,)]
    with wh.session():
        recovering._recover(book_id)  # marked folded: a second recovery settles nothing again
    assert state(wh) == after

    p.upsert_members = original  # type: ignore[method-assign]
    p.write_calls.clear()
    r = run_sync(spec(), p, wh, run_id="next")
    assert sorted(e for _, es in p.write_calls for e in es) == [e for e, _ in rows[30:]]  # nothing journaled again
    assert r.synced_rows == 45
    assert r.outcome == "success"
    final = state(wh)
    assert {final[e][-3] for e, _ in rows[:30]} == {1}
    assert {final[e][-3] for e, _ in rows[30:]} == {2}


def test_a_change_killed_after_its_write_ahead_is_pending_with_the_values_sent(new_wh, monkeypatch) -> None:
    rows = people(6)
    wh, p = fill_people(new_wh(), rows), FakeProvider(batch_size=2)
    run_sync(spec(), p, wh, run_id="r1")
    before = state(wh)
    with wh.connect() as con:
        con.execute("UPDATE people SET first_name = first_name || '!'")
    original = p.upsert_members
    calls = {"n": 0}

    def dies_in_the_second_call(book_id: str, members: Any) -> list[RowResult]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Kill()
        return original(book_id, members)

    p.upsert_members = dies_in_the_second_call  # type: ignore[method-assign]
    with monkeypatch.context() as m:
        m.setattr(SyncEngine, "_wind_down", lambda self, *a, **k: None)
        with pytest.raises(Kill):
            run_sync(spec(), p, wh, run_id="killed")
    assert state(wh) == before  # nothing of the killed run in the state yet
    with wh.session():
        SyncEngine(spec(), p, wh, run_id="next")._recover(p.books["Intents"])
    after = state(wh)
    for e, _ in rows[2:]:  # never answered: pending, the old acknowledged values kept, one more attempt
        old = before[e]
        assert after[e][0] == "pending"
        assert after[e][4] == "change"
        assert after[e][5] != old[1]
        assert after[e][1] == old[1]
        assert after[e][9] == old[9] + 1
        assert after[e][-1] == "killed"
    p.upsert_members = original  # type: ignore[method-assign]
    r = run_sync(spec(), p, wh, run_id="next")
    assert r.outcome == "success"
    assert r.synced_rows == 6
    assert p.members[p.books["Intents"]] == {e: {"name": n + "!"} for e, n in rows}


# -- DuckDB settings while a run applies -------------------------------------------------------------------------


def test_duckdb_settings_hold_while_a_run_applies_and_are_set_back(tmp_path) -> None:
    wh = fill_people(Warehouse(tmp_path / "settings.duckdb"), people(4))
    seen: list[tuple[Any, ...]] = []
    names = list(APPLY_DUCKDB_SETTINGS)
    read = "SELECT " + ", ".join(f"current_setting('{n}')" for n in names)

    def hook(op: str, rows: int) -> None:
        with wh.connect() as con:
            row = con.fetchone(read)
            assert row is not None
            seen.append(tuple(row))

    with wh.session():
        before = query(wh, read)[0]
        run_sync(spec(), FakeProvider(batch_size=2), wh, run_id="r1", after_batch=hook)
        after = query(wh, read)[0]
    assert len(seen) == 2
    assert {s[names.index("threads")] for s in seen} == {1}
    threshold = names.index("checkpoint_threshold")
    assert all(s[threshold] != before[threshold] for s in seen)
    assert after == before


def _killed_in_the_second_call(wh: BaseWarehouse, p: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the sync as ``killed``, killed (no wind-down) in its second call, which may have reached the provider."""
    original = p.upsert_members

    def dies_in_the_second_call(book_id: str, members: Any) -> list[RowResult]:
        if len(p.write_calls) == 1:
            p.write_calls.append(("upsert", [m.email for m in members]))
            raise Kill()
        return original(book_id, members)

    with monkeypatch.context() as m:
        m.setattr(p, "upsert_members", dies_in_the_second_call)
        m.setattr(SyncEngine, "_wind_down", lambda self, *args, **kwargs: None)
        with pytest.raises(Kill):
            run_sync(spec(), p, wh, run_id="killed")


def test_a_key_a_page_refused_is_not_made_pending_by_the_recovery(new_wh, monkeypatch) -> None:
    """A page is written ahead as its key range; the keys of that range the pre-send checks refused are written
    with it (never sent), so recovering a killed run makes pending only what the page could have sent."""
    monkeypatch.setattr(engine_module, "ACK_GROUP_ROWS", 3)  # a journal group per call of 3
    rows = [*people(8), ("p0003x@site.invalid", "Bad")]  # passes the plan's cheap check, not the full one
    wh, p = fill_people(new_wh(), rows), FakeProvider(batch_size=3)
    _killed_in_the_second_call(wh, p, monkeypatch)
    refused = query(wh, f"SELECT pk, action FROM {{own}}.sync_plan WHERE run_id = 'killed' AND op = '{REFUSED}'")
    assert refused == [("p0003x@site.invalid", "add")]
    (page,) = query(wh, f"SELECT page_after, pk FROM {{own}}.sync_plan WHERE run_id = 'killed' AND op = '{PAGE}'")
    assert page == ("", "p0007@example.com")  # the range holds the refused key: p0003 < p0003x < p0004

    recovering = SyncEngine(spec(), p, wh, run_id="next")
    with wh.session():
        recovering._recover(p.books["Intents"])
    after = state(wh)
    assert "p0003x@site.invalid" not in after  # never sent: nothing to retry
    assert {pk: s[0] for pk, s in after.items()} == {e: "pending" for e, _ in rows[3:8]} | {
        e: "synced" for e, _ in rows[:3]
    }


def test_an_erased_key_that_bounds_a_page_leaves_the_page_recovered_whole_without_it(new_wh, monkeypatch) -> None:
    """A page names its key range by keys. An erasure of such a key moves the bound to the key before it, so no
    row of the plan keeps the address and a killed run's pages are still recovered with every other key."""
    from espcore.erasure import _suppress_and_forget

    for name in ("FIRST_PAGE", "READ_PAGE"):
        monkeypatch.setattr(engine_module, name, 3)  # pages of one call each
    monkeypatch.setattr(engine_module, "ACK_GROUP_ROWS", 3)
    rows = people(9)
    wh, p = fill_people(new_wh(), rows), FakeProvider(batch_size=3)
    _killed_in_the_second_call(wh, p, monkeypatch)
    pages = query(wh, f"SELECT page_after, pk FROM {{own}}.sync_plan WHERE op = '{PAGE}' ORDER BY n")
    assert pages[:2] == [("", rows[2][0]), (rows[2][0], rows[5][0])]  # the second page, unfolded, after p0002

    erased = [rows[2][0], rows[4][0]]  # the bound of two pages, and a key inside the unfolded one
    with wh.connect() as con, con.transaction():
        _suppress_and_forget(con, "fake", erased)
    for e in erased:
        assert query(wh, "SELECT count(*) FROM {own}.sync_plan WHERE pk = ? OR page_after = ?", [e, e]) == [(0,)]
    assert query(wh, f"SELECT page_after, pk FROM {{own}}.sync_plan WHERE op = '{PAGE}' ORDER BY n")[:2] == [
        ("", rows[1][0]),
        (rows[1][0], rows[5][0]),
    ]

    recovering = SyncEngine(spec(), p, wh, run_id="next")
    with wh.session():
        recovering._recover(p.books["Intents"])
    after = {pk: s[0] for pk, s in state(wh).items()}
    assert not set(erased) & set(after)
    assert {pk: after[pk] for pk in (rows[0][0], rows[1][0], rows[3][0], rows[5][0])} == {
        rows[0][0]: "synced",
        rows[1][0]: "synced",
        rows[3][0]: "pending",  # sent in the call that died, never answered
        rows[5][0]: "pending",
    }
