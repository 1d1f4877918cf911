"""A 200 that did no work never counts as synced: the rows stay pending and the next run sends them all.

Twenty rows are synced through the real engine into each provider's sandbox while the add-members endpoint
(SendPulse ``POST /addressbooks/{id}/emails``, Pakat ``POST /lists/{L}/subscribers/bulk``, LiteStartup
``POST /contacts``) answers 200 with an HTML page, or 200 with the provider's own error envelope. The run fails
with :class:`UnexpectedResponseError`, no row is ``synced`` in ``sync_state``, the book holds none of them, and a
dry run plans all twenty again. Once the fault clears, the next run sends the twenty rows and the book holds them.
A third case has the provider do the work before the odd answer: the rows stay pending all the same, and the
resend (adds are upserts) leaves exactly twenty members.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from espcore.errors import UnexpectedOutcomeError, UnexpectedResponseError
from espcore.providers.base import MemberState
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.warehouse import BaseWarehouse, Warehouse
from tests.providers.test_interface import PROVIDERS, Harness, build

ROWS = 20
PEOPLE = [(f"person{i:02d}@example.com", f"First{i}", f"Last{i}", "DE" if i % 2 else "FR") for i in range(ROWS)]

#: provider -> the add-members endpoint (a regex on the sandbox's path)
ADD_MEMBERS = {
    "sendpulse": r"^/addressbooks/\d+/emails$",
    "pakat": r"/lists/[a-z0-9]+/subscribers/bulk$",
    "litestartup": r"/contacts$",
}
#: provider -> its error envelope's message and code, sent with 200
ENVELOPE: dict[str, dict[str, Any]] = {
    "sendpulse": {"message": "Book not found", "code": 213},
    "pakat": {"message": "Unable to save the subscriber!"},
    "litestartup": {"message": "Invalid API key", "code": "INVALID_API_KEY"},
}
FAULTS = {
    "html": lambda provider: {"html": True},
    "error_envelope": lambda provider: ENVELOPE[provider],
    "html_after_the_work": lambda provider: {"html": True, "after_handler": True},
}


@pytest.fixture(params=PROVIDERS)
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with build(request.param) as harness:
        yield harness


def warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    with wh.connect() as con:
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR, last_name VARCHAR, country VARCHAR)")
        for row in PEOPLE:
            con.execute("INSERT INTO people VALUES (?, ?, ?, ?)", list(row))
    return wh


def spec(h: Harness) -> SyncSpec:
    return SyncSpec(
        name=f"{h.name}_unexpected",
        provider=h.name,
        book="Unexpected answers",
        source_sql="SELECT * FROM people",
        fields={h.mapping[c]: c for c in ("first_name", "last_name", "country")},
        mode="upsert",
    )


def state_counts(wh: BaseWarehouse, provider: str) -> dict[str, int]:
    """``sync_state`` rows per status (the engine's tables may live in the warehouse's own schema)."""
    with wh.connect() as con:
        own = getattr(con, "own", None)
        table = own("sync_state") if callable(own) else "sync_state"
        rows = con.fetchall(f"SELECT status, count(*) FROM {table} WHERE provider = ? GROUP BY status", [provider])
    return {str(status): int(n) for status, n in rows}


def members(h: Harness, book_id: str) -> dict[str, MemberState]:
    return {m.email.lower(): m.state for m in h.adapter.list_members(book_id)}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_200_that_did_no_work_leaves_the_rows_pending(h: Harness, tmp_path, fault: str) -> None:
    wh, s = warehouse(tmp_path), spec(h)
    rule = h.sandbox.faults.add("status", status=200, method="POST", path=ADD_MEMBERS[h.name], **FAULTS[fault](h.name))

    with pytest.raises(UnexpectedResponseError) as info:
        run_sync(s, h.adapter, wh, run_id="r1")
    err = info.value
    assert isinstance(err, UnexpectedOutcomeError)  # an add may have taken effect: resent, never trusted
    assert (err.provider, err.status, err.method) == (h.name, 200, "POST")
    assert rule.fired >= 1

    states = state_counts(wh, h.name)
    assert states.get("synced", 0) == 0
    assert set(states) <= {"pending"}
    assert states.get("pending", 0) >= 1  # the batch that got the answer was written ahead, never acknowledged
    book = h.adapter.ensure_book(s.book)
    if fault != "html_after_the_work":
        assert members(h, book.id) == {}  # the provider holds none of them
    plan = run_sync(s, h.adapter, wh, run_id="dry", options=SyncOptions(dry_run=True))
    assert plan.synced_rows == 0
    assert plan.metadata()["planned_add"] == ROWS

    h.sandbox.faults.clear()
    second = run_sync(s, h.adapter, wh, run_id="r2")
    m = second.metadata()
    assert (m["planned_add"], m["successful_add"], m["failed_add"]) == (ROWS, ROWS, 0)
    assert second.synced_rows == ROWS
    assert state_counts(wh, h.name) == {"synced": ROWS}
    held = members(h, second.book_id)
    assert held == {p[0]: MemberState.ACTIVE for p in PEOPLE}

    third = run_sync(s, h.adapter, wh, run_id="r3").metadata()
    assert third["write_calls"] == 0  # nothing left to send
