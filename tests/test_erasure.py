"""Right to erasure on every provider's sandbox: deleted from every book (blacklisted where the provider has an
account blacklist), suppressed before the provider is asked, recorded with the address only as a hash, resumed
after a kill, idempotent (a re-run makes no call), and never synced again."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from espcore import erasure
from espcore.erasure import ErasureSource, email_hash, overdue, run_erasure
from espcore.providers.base import Eraser, MemberInput, MemberState
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncSpec
from espcore.warehouse import BaseWarehouse, Warehouse
from tests.providers.test_interface import HARNESSES, PEOPLE, Harness, build
from tests.sync.fakes import FakeProvider

ERASED = PEOPLE[0]  # asked to be forgotten
KEPT = PEOPLE[1]
SOURCE = ErasureSource("SELECT * FROM gdpr_requests")


class Killed(BaseException):
    """The process dies here (not an Exception: nothing may catch it)."""


@pytest.fixture(params=HARNESSES)
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with build(str(request.param)) as harness:
        yield harness


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> BaseWarehouse:
    """A warehouse with the people and the requests: a DuckDB file, or a schema of the session's PostgreSQL."""
    if request.param == "postgres":
        wh: BaseWarehouse = request.getfixturevalue("pg_warehouses")()
    else:
        wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR, last_name VARCHAR, country VARCHAR)")
        for p in PEOPLE:
            con.execute("INSERT INTO people VALUES (?, ?, ?, ?)", [p.email, p.first_name, p.last_name, p.country])
        con.execute("CREATE TABLE gdpr_requests (request_id VARCHAR, email VARCHAR, requested_at TIMESTAMP)")
        con.execute(
            "INSERT INTO gdpr_requests VALUES ('req-1', ?, ?)", [f"  {ERASED.email.upper()} ", datetime(2026, 3, 1)]
        )
    return wh


def two_books(h: Harness) -> list[str]:
    """The erased and the kept person in two books of the account."""
    ids = []
    for name in ("Newsletter", "Customers"):
        book = h.adapter.ensure_book(name)
        assert all(r.ok for r in h.adapter.upsert_members(book.id, [h.row(ERASED), h.row(KEPT)]))
        ids.append(book.id)
    return ids


def present(h: Harness, book_id: str) -> set[str]:
    return {m.email for m in h.adapter.list_members(book_id) if m.state is not MemberState.REMOVED}


def requests_to_sandbox(h: Harness) -> int:
    return len(h.sandbox.request_log)


def test_an_erased_address_leaves_every_book_and_is_never_synced_again(h: Harness, wh: BaseWarehouse) -> None:
    assert isinstance(h.adapter, Eraser)
    books = two_books(h)
    result = run_erasure(wh, h.adapter, SOURCE, run_id="run-1")
    assert (result.requests, result.completed, result.pending) == (1, 1, 0)
    for book_id in books:
        assert ERASED.email not in present(h, book_id)
        assert KEPT.email in present(h, book_id)  # nobody else is touched
    if h.name == "sendpulse":  # the only one with an account blacklist its API can add to
        assert ERASED.email in {s.email for s in h.adapter.suppressions(None)}

    # the audit trail: every row carries the hash, never the address
    actions = {r.action for r in result.rows}
    assert {"suppressed", "completed"} <= actions
    assert actions & {"deleted", "removed"}
    for row in result.rows:
        assert row.email_hash == email_hash(ERASED.email)
        assert ERASED.email not in str(row.as_dict()).lower()

    # a sync of a segment that still holds the person never adds them back
    fields = {h.mapping[c]: c for c in ("first_name", "last_name", "country")}
    spec = SyncSpec(name="people", provider=h.name, book="Newsletter", source_sql="SELECT * FROM people", fields=fields)
    synced = run_sync(spec, h.adapter, wh, run_id="sync-1")
    assert synced.counts["suppressed"] >= 1
    assert ERASED.email not in present(h, books[0])
    with wh.connect() as con:
        assert con.fetchall(f"SELECT reason FROM {con.own('suppression')} WHERE email = ?", [ERASED.email]) == [
            ("erased",)
        ]
        assert con.fetchall(f"SELECT status FROM {con.own('erasure_state')}") == [("done",)]


def test_a_rerun_makes_no_call_at_all(h: Harness, wh: BaseWarehouse) -> None:
    two_books(h)
    start = requests_to_sandbox(h)
    run_erasure(wh, h.adapter, SOURCE, run_id="run-1")
    before = requests_to_sandbox(h)
    assert before > start  # the sandbox counts the calls the first run made
    again = run_erasure(wh, h.adapter, SOURCE, run_id="run-2")
    assert (again.already_done, again.completed, again.rows) == (1, 0, [])
    assert requests_to_sandbox(h) == before


@pytest.mark.parametrize("where", ["before the provider call", "after the provider call"])
def test_a_run_killed_midway_is_finished_by_the_next(
    h: Harness, wh: BaseWarehouse, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    books = two_books(h)
    real = erasure._erase_at_provider

    def dies(provider, emails):
        if where == "after the provider call":
            real(provider, emails)
        raise Killed

    monkeypatch.setattr(erasure, "_erase_at_provider", dies)
    with pytest.raises(Killed):
        run_erasure(wh, h.adapter, SOURCE, run_id="run-1")
    with wh.connect() as con:  # suppressed before the provider was asked: no sync can add the address back
        assert con.fetchall(f"SELECT reason FROM {con.own('suppression')} WHERE email = ?", [ERASED.email]) == [
            ("erased",)
        ]
        assert con.fetchall(f"SELECT status FROM {con.own('erasure_state')}") == [("pending",)]
    monkeypatch.setattr(erasure, "_erase_at_provider", real)

    result = run_erasure(wh, h.adapter, SOURCE, run_id="run-2")
    assert (result.completed, result.pending) == (1, 0)
    for book_id in books:
        assert ERASED.email not in present(h, book_id)
    with wh.connect() as con:
        assert con.fetchall(f"SELECT status, attempts FROM {con.own('erasure_state')}") == [("done", 1)]
        assert con.fetchone(f"SELECT count(*) FROM {con.own('suppression')} WHERE email = ?", [ERASED.email]) == (1,)


def test_an_address_the_provider_never_had_is_done_at_once(h: Harness, wh: BaseWarehouse) -> None:
    result = run_erasure(wh, h.adapter, SOURCE, run_id="run-1")
    assert (result.completed, result.pending) == (1, 0)
    assert "not_present" in {r.action for r in result.rows} or h.name == "sendpulse"


def test_overdue_requests_are_those_past_the_deadline_and_not_done(h: Harness, wh: BaseWarehouse) -> None:
    requests, _ = erasure.read_requests(wh, SOURCE)
    assert [r.request_id for r in overdue(wh, h.adapter.account, requests, timedelta(days=30))] == ["req-1"]
    assert overdue(wh, h.adapter.account, requests, timedelta(days=36500)) == []  # not old enough yet
    run_erasure(wh, h.adapter, SOURCE, run_id="run-1")
    assert overdue(wh, h.adapter.account, requests, timedelta(days=30)) == []


def test_rows_without_an_id_or_an_address_are_reported_not_guessed(wh: BaseWarehouse) -> None:
    with wh.connect() as con:
        con.execute("INSERT INTO gdpr_requests VALUES (NULL, 'x@example.org', NULL), ('req-2', 'not-an-address', NULL)")
    requests, problems = erasure.read_requests(wh, SOURCE)
    assert [r.request_id for r in requests] == ["req-1"]
    assert len(problems) == 2


def test_request_times_are_utc_instants_whatever_their_column_type(wh: BaseWarehouse) -> None:
    with wh.connect() as con:
        con.execute(
            "CREATE TABLE gdpr_typed (request_id VARCHAR, email VARCHAR, on_day DATE, at_zone TIMESTAMPTZ, "
            "label VARCHAR)"
        )
        con.execute(
            "INSERT INTO gdpr_typed VALUES ('req-9', 'z@example.org', DATE '2026-03-01', "
            "TIMESTAMPTZ '2026-03-01 10:00:00+02:00', 'soon')"
        )
    by_day, _ = erasure.read_requests(wh, ErasureSource("SELECT * FROM gdpr_typed", requested_at_column="on_day"))
    in_zone, _ = erasure.read_requests(wh, ErasureSource("SELECT * FROM gdpr_typed", requested_at_column="at_zone"))
    text, _ = erasure.read_requests(wh, ErasureSource("SELECT * FROM gdpr_typed", requested_at_column="label"))
    naive, _ = erasure.read_requests(wh, SOURCE)  # a TIMESTAMP without zone is taken as UTC
    assert by_day[0].requested_at == datetime(2026, 3, 1, tzinfo=UTC)  # a date: its midnight in UTC
    assert in_zone[0].requested_at == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert text[0].requested_at is None  # undated: counts from when the product first saw it
    assert naive[0].requested_at == datetime(2026, 3, 1, tzinfo=UTC)


def test_the_request_source_is_only_ever_read(wh: BaseWarehouse) -> None:
    with pytest.raises(ValueError, match=r"(?i)read|select|statement"):
        erasure.read_requests(wh, ErasureSource("DELETE FROM gdpr_requests"))
    with wh.connect() as con:
        assert con.fetchone("SELECT count(*) FROM gdpr_requests") == (1,)


def test_a_provider_without_its_own_erasure_is_erased_book_by_book(wh: BaseWarehouse) -> None:
    provider = FakeProvider()
    assert not isinstance(provider, Eraser)
    books = [provider.ensure_book(name).id for name in ("A", "B", "C")]
    for book_id in books[:2]:
        provider.upsert_members(book_id, [MemberInput(ERASED.email), MemberInput(KEPT.email)])
    result = run_erasure(wh, provider, SOURCE, run_id="run-1")
    assert (result.completed, result.pending) == (1, 0)
    assert {(r.action, r.book_id) for r in result.rows if r.action == "removed"} >= {
        ("removed", books[0]),
        ("removed", books[1]),
    }
    for book_id in books:
        assert ERASED.email not in provider.members[book_id]
    assert KEPT.email in provider.members[books[0]]
