"""An unchanged re-sync reads nothing it does not need: once a run has read every suppression of a book and
written nothing, later runs compare the provider's suppression signature (SendPulse: the book's counts and a
digest of the account blacklist, two calls) and read the members again only when it moved."""

from collections.abc import Iterator

import pyarrow as pa
import pytest

from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.warehouse import Warehouse
from tests.providers.test_interface import Harness, build

ROWS = 250
SPEC = SyncSpec(name="people", provider="sendpulse", book="Signature", source_sql="SELECT * FROM people")


@pytest.fixture
def h() -> Iterator[Harness]:
    with build("sendpulse") as harness:
        yield harness


@pytest.fixture
def wh(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.load_temp("src", pa.table({"email": [f"p{i:04d}@example.com" for i in range(ROWS)]}))
        con.execute("CREATE TABLE people AS SELECT * FROM src")
    return wh


def member_reads(h: Harness, start: int) -> int:
    """Reads of a book's member listing since request ``start`` of the sandbox's log."""
    return sum(1 for m, p, _ in list(h.sandbox.request_log)[start:] if m == "GET" and p.endswith("/emails"))


def test_unchanged_resyncs_skip_the_member_read_until_the_provider_changes(h: Harness, wh: Warehouse) -> None:
    first = run_sync(SPEC, h.adapter, wh, run_id="r1")
    assert (first.suppressions_read, first.synced_rows) == ("full", ROWS)
    book_id = first.book_id
    h.blacklist(book_id, "p0007@example.com")  # the provider changes: a complaint

    second = run_sync(SPEC, h.adapter, wh, run_id="r2")  # reads every suppression, writes nothing: stores it
    assert second.suppressions_read == "full"
    assert second.counts["write_calls"] == 0
    assert second.counts["suppressed"] == 1

    mark = len(h.sandbox.request_log)
    third = run_sync(SPEC, h.adapter, wh, run_id="r3")
    assert third.suppressions_read == "unchanged"
    assert member_reads(h, mark) == 0  # no read of the book's members
    assert len(h.sandbox.request_log) - mark <= 4  # the book, its counts, the blacklist: O(1) whatever the size
    assert (third.counts["write_calls"], third.synced_rows) == (0, ROWS - 1)
    assert third.metadata()["suppressions_read"] == "unchanged"

    h.blacklist(book_id, "p0011@example.com")  # the signature moves: read again, and the suppression is seen
    fourth = run_sync(SPEC, h.adapter, wh, run_id="r4")
    assert fourth.suppressions_read == "full"
    assert fourth.synced_rows == ROWS - 2


def test_a_full_read_can_be_asked_for(h: Harness, wh: Warehouse) -> None:
    run_sync(SPEC, h.adapter, wh, run_id="r1")
    run_sync(SPEC, h.adapter, wh, run_id="r2")
    assert run_sync(SPEC, h.adapter, wh, run_id="r3").suppressions_read == "unchanged"
    mark = len(h.sandbox.request_log)
    forced = run_sync(SPEC, h.adapter, wh, run_id="r4", options=SyncOptions(full_suppression_read=True))
    assert forced.suppressions_read == "full"
    assert member_reads(h, mark) >= 1


def test_a_run_that_writes_does_not_vouch_for_the_next(h: Harness, wh: Warehouse) -> None:
    run_sync(SPEC, h.adapter, wh, run_id="r1")
    run_sync(SPEC, h.adapter, wh, run_id="r2")
    with wh.connect() as con:
        con.execute("INSERT INTO people VALUES ('new@example.com')")
    wrote = run_sync(SPEC, h.adapter, wh, run_id="r3")
    assert wrote.suppressions_read == "unchanged"
    assert wrote.counts["write_calls"] == 1
    assert run_sync(SPEC, h.adapter, wh, run_id="r4").suppressions_read == "full"  # the counts moved
