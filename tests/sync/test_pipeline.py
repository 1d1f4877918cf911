"""Apply at wire speed (issue #16): the calls go out while a second thread of the run reads and writes ahead the
next page, journals the answers a group of calls at a time and folds each page into the state.

* **Pipelined stops.** Without a hook the run does not wait for each acknowledgement; stopped by an error or
  an interrupt in the middle of a page, it still journals every answer it received, so nothing answered is
  sent again; killed with SIGKILL (no handler runs), the next run sends again exactly what the killed run had
  not journaled, once, and the book ends complete.
* **Pages and groups.** The plan is read in pages of whole provider batches (a bulk call is never split by a
  page), each written ahead in one statement; the journal takes a group of calls per statement.
* **The quick pre-send checks** vouch only for rows the full checks accept.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pytest

from espcore.http import HttpPolicy
from espcore.providers.base import AddressRules, MemberInput, PreparedUpsert, RowResult
from espcore.providers.sendpulse import SendPulseClient, SendPulseProvider
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseSandbox
from espcore.sandbox.server import SandboxServer
from espcore.sandbox.transport import InProcessTransport
from espcore.sync import engine as engine_module
from espcore.sync.engine import run_sync
from espcore.sync.errors import SyncError
from espcore.sync.pipeline import Bookkeeper, ack_tables, quick_checks, row_problems
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.sync.validate import email_problem
from espcore.warehouse import BaseWarehouse, Warehouse
from tests.sync.fakes import FakeProvider
from tests.sync.test_email_rules import CORPUS, _generated_addresses
from tests.sync.test_locks import RecordingApp, sendpulse_provider

ROOT = Path(__file__).resolve().parents[2]


W = TypeVar("W", bound=BaseWarehouse)


def people(n: int) -> list[tuple[str, str]]:
    return [(f"p{i:04d}@example.com", f"Name{i}") for i in range(n)]


def fill_people(wh: W, rows: list[tuple[str, str]]) -> W:
    """``wh`` with a ``people`` table of ``rows`` (email, first name), replacing any earlier one (both engines)."""
    with wh.connect() as con:
        con.execute("DROP TABLE IF EXISTS people")
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR)")
        con.load_temp("src", pa.table({"email": [e for e, _ in rows], "first_name": [n for _, n in rows]}))
        con.execute("INSERT INTO people SELECT * FROM src")
        con.drop_temp("src")
    return wh


def filled(tmp_path: Path, rows: list[tuple[str, str]], name: str = "wh.duckdb") -> Warehouse:
    return fill_people(Warehouse(tmp_path / name), rows)


def spec(**kw: Any) -> SyncSpec:
    base: dict[str, Any] = dict(
        name="pipe_sync", provider="fake", book="Pipe", source_sql="SELECT * FROM people", fields={"name": "first_name"}
    )
    base.update(kw)
    return SyncSpec(**base)


def query(wh: BaseWarehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with wh.connect() as con:
        return con.fetchall(sql.format(own=wh.own_schema), params)


def sent(p: FakeProvider) -> list[str]:
    return [e for _, emails in p.write_calls for e in emails]


class Interrupt(BaseException):
    """Stands for a kill that lets the process unwind (KeyboardInterrupt, a terminated step)."""


# -- pipelined stops -----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
@pytest.mark.parametrize("stop", [Interrupt, SyncError])
def test_a_run_stopped_mid_page_journals_every_answer_it_received(tmp_path, stop) -> None:
    rows = people(95)
    wh, p = filled(tmp_path, rows), FakeProvider(batch_size=10)
    original = p.upsert_members
    calls = {"n": 0}

    def fourth_call_fails(book_id, members):
        calls["n"] += 1
        if calls["n"] == 4:
            p.write_calls.append(("upsert", [m.email for m in members]))  # it may have reached the provider
            raise stop("stopped in the 4th call")
        return original(book_id, members)

    p.upsert_members = fourth_call_fails  # type: ignore[method-assign]
    with pytest.raises(stop):
        run_sync(spec(), p, wh, run_id="r1")
    first = sent(p)
    assert len(first) == 40
    journaled = query(wh, "SELECT pk, result FROM {own}.sync_changelog WHERE run_id = 'r1' ORDER BY pk")
    assert journaled == [(e, "ok") for e in first[:30]]  # the three answered calls, though no group was full
    pending = query(wh, "SELECT count(*) FROM {own}.sync_state WHERE status = 'pending'")[0][0]
    if stop is SyncError:  # an error folds what was journaled: 30 synced, the rest of the page pending
        assert pending == 65
    else:  # an interrupt leaves the fold to the next run's recovery: the whole page is pending
        assert pending == 95

    p.upsert_members = original  # type: ignore[method-assign]
    p.write_calls.clear()
    r = run_sync(spec(), p, wh, run_id="r2")
    assert sorted(sent(p)) == [e for e, _ in rows[30:]]  # the 4th call's rows again, the rest for the first time
    assert r.synced_rows == 95
    assert r.outcome == "success"


def child_main(config_json: str) -> None:
    """Run in a child process: a pipelined sync into the sandbox at ``url``, its provider slowed so that the
    journal takes several groups; inside call ``hang_at`` it says so in ``marker`` and waits to be killed."""
    cfg = json.loads(config_json)
    wh = Warehouse(cfg["path"])
    provider = sendpulse_provider(cfg["url"])
    marker = Path(cfg["marker"])
    original = provider.send_prepared  # how a sync sends SendPulse's adds
    calls = {"n": 0}

    def slow_send(prepared: PreparedUpsert) -> Sequence[RowResult]:
        calls["n"] += 1
        if calls["n"] == cfg["hang_at"]:
            marker.write_text(str(os.getpid()))
            time.sleep(600)
        time.sleep(0.15)  # three calls in flight: 20 per second, so the journal still takes several groups
        return original(prepared)

    provider.send_prepared = slow_send  # type: ignore[method-assign]
    run_sync(spec(provider="sendpulse"), provider, wh, run_id="killed")
    raise SystemExit("the child run finished: it should have been killed in the middle")


CHILD = "import sys; from tests.sync.test_pipeline import child_main; child_main(sys.argv[1])"


@pytest.fixture
def recording_sandbox() -> Iterator[tuple[RecordingApp, str]]:
    sandbox = SendPulseSandbox(seed=3, rate_limit=False)
    sandbox.reset(demo=True)
    app = RecordingApp(sandbox.app)
    with SandboxServer(app) as server:
        yield app, server.url


@pytest.mark.slow
@pytest.mark.network
def test_a_killed_pipelined_run_is_resumed_sending_again_only_what_it_had_not_journaled(
    tmp_path, recording_sandbox
) -> None:
    recording, url = recording_sandbox
    rows = people(60)  # calls of 2 (sendpulse_provider's batch): 30 calls
    wh = filled(tmp_path, rows)
    marker = tmp_path / "hanging"
    cfg = {"path": str(wh.path), "url": url, "marker": str(marker), "hang_at": 26}
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=ROOT, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the child never reached its 26th call"
            time.sleep(0.05)
        time.sleep(1.0)  # whatever the bookkeeper was given is committed by now; the rest is in the killed memory
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    by_killed = recording.sent()
    # 25 answered calls before the 26th hung (before it sent anything), and the calls in flight beside it: they
    # answered too, and the run, waiting for the hung call's answer first, never journaled them
    # (threads may enter their calls out of order, so up to 2 x (width - 1) more calls of 2 rows)
    extra = 2 * 2 * (SendPulseProvider.calls_in_flight - 1)
    assert 50 <= sum(by_killed.values()) <= 50 + extra
    journaled = {
        pk for (pk,) in query(wh, "SELECT pk FROM {own}.sync_changelog WHERE run_id = 'killed' AND result = 'ok'")
    }
    assert journaled, "the killed run journaled nothing: the test does not exercise the journal"
    assert journaled <= set(by_killed)

    provider = sendpulse_provider(url)
    resent: list[str] = []
    original = provider.send_prepared

    def counting(prepared: PreparedUpsert) -> Sequence[RowResult]:
        resent.extend(prepared.batch.emails)
        return original(prepared)

    provider.send_prepared = counting  # type: ignore[method-assign]
    result = run_sync(spec(provider="sendpulse"), provider, wh, run_id="after")
    assert result.outcome == "success"
    assert result.synced_rows == 60
    assert sorted(resent) == sorted({e for e, _ in rows} - journaled)  # exactly what was not acknowledged
    total = recording.sent()
    assert set(total) == {e for e, _ in rows}
    assert max(total.values()) <= 2  # answered-but-unjournaled rows once more, the others once
    assert sorted(m.email for m in provider.list_members(result.book_id)) == sorted(e for e, _ in rows)
    provider.close()


# -- pages and groups ------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
def test_pages_are_whole_batches_each_written_ahead_once_and_the_journal_takes_groups(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "FIRST_PAGE", 25)  # rounded up to 30: whole batches of 6
    monkeypatch.setattr(engine_module, "READ_PAGE", 50)  # rounded up to 54
    monkeypatch.setattr(engine_module, "ACK_GROUP_ROWS", 20)  # a group closes at 24 rows (4 calls)
    monkeypatch.setattr(engine_module, "ACK_GROUP_S", 3600.0)
    statements: Counter[str] = Counter()
    original_prepare = engine_module.SyncEngine._prepare
    original_record = engine_module.SyncEngine._record_answers
    pages: list[int] = []

    def prepare(self, *args: Any, **kwargs: Any) -> Any:
        page = original_prepare(self, *args, **kwargs)
        if page is not None:
            pages.append(len(page.pks))
        return page

    def record(self, book_id: str, calls: list[Any], *, page: Any) -> None:
        statements["journal" if calls else "fold only"] += 1
        statements["fold"] += page is not None
        original_record(self, book_id, calls, page=page)

    monkeypatch.setattr(engine_module.SyncEngine, "_prepare", prepare)
    monkeypatch.setattr(engine_module.SyncEngine, "_record_answers", record)
    rows = people(100)
    wh, p = filled(tmp_path, rows), FakeProvider(batch_size=6)
    r = run_sync(spec(), p, wh, run_id="r1")
    assert r.synced_rows == 100
    assert pages == [30, 54, 16]
    assert [len(emails) for _, emails in p.write_calls] == [6] * 16 + [4]  # no call split by a page
    # page 1: 5 calls -> one full group (4 calls), then the last call with the fold; page 2: 9 calls -> two
    # groups, then the last with the fold; page 3: 3 calls, with the fold
    assert statements == Counter({"journal": 6, "fold": 3})
    assert query(wh, "SELECT count(*), count(DISTINCT pk) FROM {own}.sync_changelog") == [(100, 100)]
    # each page written ahead once, as one row naming its key range (the keys it read after and up to, under the
    # page's id), and each page folded once
    written = query(
        wh,
        """SELECT g.n, g.page_after, g.pk, count(r.pk) FROM {own}.sync_plan AS g
           JOIN {own}.sync_plan AS r ON r.run_id = g.run_id AND r.op = 'add' AND r.pk > g.page_after AND r.pk <= g.pk
           WHERE g.op = 'page' GROUP BY g.n, g.page_after, g.pk ORDER BY g.n""",
    )
    assert [keys for *_, keys in written] == [30, 54, 16]
    assert [after for _, after, _, _ in written] == ["", written[0][2], written[1][2]]  # each after the one before
    assert written[-1][2] == max(e for e, _ in rows)
    folded = query(wh, "SELECT n FROM {own}.sync_plan WHERE op = 'folded' ORDER BY n")
    assert [n for (n,) in folded] == [n for n, *_ in written]


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
def test_a_big_operation_is_read_in_bigger_pages_sorted_once(tmp_path, monkeypatch) -> None:
    """Past READ_PAGES pages of READ_PAGE rows, pages grow (up to MAX_READ_PAGE) so that the plan is scanned a
    bounded number of times; the page ends are found in one sorted pass, not by a sort per page."""
    monkeypatch.setattr(engine_module, "FIRST_PAGE", 10)
    monkeypatch.setattr(engine_module, "READ_PAGE", 10)
    monkeypatch.setattr(engine_module, "READ_PAGES", 5)
    monkeypatch.setattr(engine_module, "MAX_READ_PAGE", 40)
    reads: list[int] = []
    original = engine_module.SyncEngine._read_page

    def read_page(self, con: Any, op: str, after: str, size: int) -> Any:
        table, more = original(self, con, op, after, size)
        reads.append(table.num_rows)
        return table, more

    monkeypatch.setattr(engine_module.SyncEngine, "_read_page", read_page)
    rows = people(150)
    wh, p = filled(tmp_path, rows), FakeProvider(batch_size=10)
    r = run_sync(spec(), p, wh, run_id="r1")
    assert r.synced_rows == 150
    # removes, unsubscribes and changes: nothing; adds: 10, then pages of min(40, max(10, 150 / 5)) = 30
    assert reads == [0, 0, 0, 10, 30, 30, 30, 30, 20]
    assert sorted(sent(p)) == [e for e, _ in rows]


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
def test_answers_naming_other_addresses_are_journaled_but_fold_only_the_keys_sent(tmp_path) -> None:
    class Shouting(FakeProvider):
        """Answers with the address upper-cased, once more for the first row, and once for a stranger."""

        def upsert_members(self, book_id: str, rows: Any) -> list[RowResult]:
            out = super().upsert_members(book_id, rows)
            loud = [RowResult(r.email.upper(), r.ok, r.provider_id, r.error) for r in out]
            return [*loud, loud[0], RowResult("stranger@example.com", ok=True)]

    rows = people(7)
    wh, p = filled(tmp_path, rows), Shouting(batch_size=3)
    r = run_sync(spec(), p, wh, run_id="r1")
    assert r.synced_rows == 7
    assert query(wh, "SELECT count(*) FROM {own}.sync_changelog") == [(7 + 3 + 3,)]
    assert query(wh, "SELECT count(*) FROM {own}.sync_state WHERE pk = 'stranger@example.com'") == [(0,)]


def test_ack_tables_keep_the_keys_sent_when_the_answer_names_them() -> None:
    when = engine_module.now_utc()
    ok = [RowResult("a@x.io", ok=True), RowResult("b@x.io", ok=True, provider_id="7")]
    mixed = [RowResult("C@X.IO ", ok=False, error="bad"), RowResult("d@x.io", ok=False, transient=True)]
    journal, fold = ack_tables(
        [("add", ["a@x.io", "b@x.io"], ok, True), ("change", ["c@x.io", "d@x.io"], mixed, False)], when
    )
    assert journal.to_pydict() == {
        "pk": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"],
        "op": ["add", "add", "change", "change"],
        "result": ["ok", "ok", "rejected", "transient"],
        "error": [None, None, "bad", None],
        "provider_id": [None, "7", None, None],
        "logged_at": [when] * 4,
    }
    assert fold.equals(journal)


# -- the bookkeeper ------------------------------------------------------------------------------------------------


def test_the_bookkeeper_runs_in_order_skips_after_a_failure_and_drops_cancelled_work(tmp_path) -> None:
    wh = Warehouse(tmp_path / "bk.duckdb")
    done: list[int] = []
    with Bookkeeper(wh, backlog=2) as bk:
        futures = [bk.submit(lambda i=i: done.append(i)) for i in range(5)]
        for f in futures:
            f.result(timeout=10)
    assert done == [0, 1, 2, 3, 4]

    class Broken(Exception):
        pass

    def broken() -> None:
        raise Broken()

    with Bookkeeper(wh) as bk:
        first = bk.submit(broken)
        with pytest.raises(Broken):
            first.result(timeout=10)
        with pytest.raises(Broken):
            bk.submit(lambda: done.append(99))
    assert 99 not in done

    import threading

    gate = threading.Event()
    with Bookkeeper(wh, backlog=3) as bk:
        bk.submit(lambda: gate.wait(10))
        later = bk.submit(lambda: done.append(100))
        assert later.cancel()
        gate.set()
    assert 100 not in done


# -- the quick pre-send checks -------------------------------------------------------------------------------------


RULES = [
    AddressRules(),
    AddressRules(max_length=100, unicode_local=False, source="Pakat"),
    AddressRules(unicode_local=False, unicode_domain=False, source="SendPulse"),
]


@pytest.mark.parametrize("rules", RULES, ids=["rfc", "pakat", "sendpulse"])
def test_quick_checks_never_vouch_for_an_address_the_full_check_refuses(rules: AddressRules) -> None:
    emails = [
        "plain@example.com",
        "a.b-c+d_e@sub.example.co",
        "x@example.test",
        "x@example.localhost",
        "x@localhost",
        ("l" * 64) + "@example.com",
        ("l" * 65) + "@example.com",
        "u@" + "d" * 63 + ".com",
        "u@" + ("d" * 60 + ".") * 4 + "com",
        "UPPER@example.com",
        "ünï@example.com",
        "a@ex_ample.com",
        "a..b@example.com",
        "a@-example.com",
        "a@example.c",
        "a@example.123",
        "@example.com",
        "a@",
        "",
        *(c.email for c in CORPUS),
        *_generated_addresses(3000),
    ]
    quick = quick_checks(
        pa.array(emails, pa.string()), pa.array(['{"n": "x"}'] * len(emails)), rules, max_length=1000
    ).to_pylist()
    for email, fine in zip(emails, quick, strict=True):
        if fine:
            assert email_problem(email, rules) is None, email
    assert quick[:2] == [True, True]  # the common shapes are vouched for
    assert sum(quick) > 50  # and the generated ones that have it


@pytest.mark.parametrize(
    ("values", "vouched"),
    [
        ({"name": "Ann"}, True),
        ({"name": "tab\tand\nnewline\r"}, True),  # allowed whitespace
        ({"name": "bell\x07"}, False),
        ({"name": "back\x08space"}, False),
        ({"name": "form\x0cfeed"}, False),
        ({"name": "del\x7f"}, False),
        ({"name": "esc\x1b"}, False),
        ({"name": "x" * 990}, False),  # the payload text is over 1000 characters long
        ({"name": "x" * 900, "n": 1}, True),
        ({"name": None, "n": 3.5, "ok": True}, True),
        ({"score": float("nan")}, False),  # NaN and infinities: JSON cannot carry them
        ({"score": float("-inf")}, False),
        ({"scores": [1.0, float("inf")]}, False),
        ({"name": "NaN bread"}, False),  # (a text that only looks like one is checked in full, and passes)
    ],
)
def test_quick_checks_of_values_vouch_only_for_what_value_problem_accepts(values: dict[str, Any], vouched) -> None:
    text = json.dumps(values)
    quick = quick_checks(pa.array(["ok@example.com"]), pa.array([text]), AddressRules(), max_length=1000).to_pylist()[0]
    assert quick == vouched
    if quick:
        assert row_problems("ok@example.com", values, AddressRules(), required=(), max_length=1000) is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), [1.0, float("nan")], {"x": float("inf")}])
def test_a_number_that_is_not_finite_is_a_row_problem(value: Any) -> None:
    problem = row_problems("ok@example.com", {"score": value}, AddressRules(), required=(), max_length=1000)
    assert problem == "field score holds a number that is not finite (NaN or infinity), which JSON cannot carry"
    assert row_problems("ok@example.com", {"score": 1e308}, AddressRules(), required=(), max_length=1000) is None


def test_a_row_with_nan_is_rejected_alone_and_the_others_reach_sendpulse(tmp_path) -> None:
    """DuckDB writes a NaN or infinite double as a bare ``NaN``/``Infinity`` in the row's JSON, which no JSON body
    may carry: the row is rejected with the reason before anything is sent, and its neighbours go through (it
    used to fail the whole run when the add call's body was encoded)."""
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute(
            """CREATE TABLE people AS SELECT * FROM (VALUES ('a@example.com', 1.5::DOUBLE),
               ('b@example.com', 'nan'::DOUBLE), ('c@example.com', '-inf'::DOUBLE), ('d@example.com', NULL))
               AS t(email, score)"""
        )
    sandbox = SendPulseSandbox(rate_limit=False)
    client = SendPulseClient(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        "https://api.sendpulse.com",
        policy=HttpPolicy(requests_per_second=None),
        transport=InProcessTransport(sandbox.app),
    )
    provider = SendPulseProvider(client)
    nan_spec = SyncSpec(
        name="scores", provider="sendpulse", book="Scores", source_sql="SELECT * FROM people", fields={"score": "score"}
    )
    r = run_sync(nan_spec, provider, wh, run_id="r1")
    assert r.outcome == "success"
    assert r.counts["successful_add"] == 2
    reasons = {x["pk"]: x["reason"] for x in r.rejects}
    assert sorted(reasons) == ["b@example.com", "c@example.com"]
    assert all("not finite" in why for why in reasons.values())
    listed = {c.email: c.variables for c in client.book_emails(int(r.book_id))}
    assert listed == {"a@example.com": {"score": 1.5}, "d@example.com": {}}


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
def test_rows_the_quick_checks_do_not_vouch_for_are_checked_in_full_and_rejected_with_the_reason(tmp_path) -> None:
    rows = [*people(5), ("bad..dots@example.com", "Bad"), ("ctl@example.com", "Bell\x07")]
    wh, p = filled(tmp_path, rows), FakeProvider(batch_size=100)
    r = run_sync(spec(), p, wh, run_id="r1", options=SyncOptions())
    assert sorted(sent(p)) == [e for e, _ in people(5)]
    reasons = {x["pk"]: x["reason"] for x in r.rejects}
    assert reasons["bad..dots@example.com"].startswith("invalid email")
    assert reasons["ctl@example.com"] == "field name contains control characters"
    assert r.counts["invalid"] == 2
    assert query(
        wh, "SELECT count(*) FROM {own}.sync_state WHERE pk IN ('bad..dots@example.com', 'ctl@example.com')"
    ) == [(0,)]


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
def test_member_inputs_carry_the_parsed_values(tmp_path) -> None:
    seen: list[MemberInput] = []

    class Keeping(FakeProvider):
        def upsert_members(self, book_id: str, rows: Any) -> list[RowResult]:
            seen.extend(rows)
            return super().upsert_members(book_id, rows)

    wh = filled(tmp_path, [("ann@example.com", 'Ann "the" \\ one')])
    run_sync(spec(fields={"name": "first_name", "mail": "email"}), Keeping(), wh, run_id="r1")
    values = {"mail": "ann@example.com", "name": 'Ann "the" \\ one'}
    assert seen == [MemberInput("ann@example.com", values, exists=False)]


@pytest.mark.usefixtures("writer")  # the fake as it is and as a PreparedWriter
def test_members_say_whether_the_sync_has_written_them_to_the_book_before(tmp_path) -> None:
    """``MemberInput.exists``: False for a key the sync never wrote, True for a change, None when it cannot say
    (a retry of a row never acknowledged, an add after a removal)."""
    seen: dict[str, bool | None] = {}

    class Keeping(FakeProvider):
        def upsert_members(self, book_id: str, rows: Any) -> list[RowResult]:
            seen.update({r.email: r.exists for r in rows})
            return super().upsert_members(book_id, rows)

    rows = people(4)
    wh, p = filled(tmp_path, rows), Keeping(batch_size=10, transient={"p0003@example.com"})
    mirror = spec(mode="mirror", max_remove_pct=100)
    run_sync(mirror, p, wh, run_id="r1")
    assert seen == {e: False for e, _ in rows}
    with wh.connect() as con:
        con.execute("UPDATE people SET first_name = 'Changed' WHERE email = 'p0000@example.com'")
        con.execute("DELETE FROM people WHERE email = 'p0001@example.com'")
    p.transient.clear()
    seen.clear()
    run_sync(mirror, p, wh, run_id="r2")  # p0001 removed
    assert seen == {"p0000@example.com": True, "p0003@example.com": None}
    with wh.connect() as con:
        con.execute("INSERT INTO people VALUES ('p0001@example.com', 'Back')")
    seen.clear()
    run_sync(mirror, p, wh, run_id="r3")
    assert seen == {"p0001@example.com": None}
