"""Calls in flight: with a provider whose member writes may run at once (``ConcurrentWriter``), a sync keeps
several write calls out together; every answer is journaled, in the order the calls were made, and when the run
stops on a failed call, the answers of the calls still in flight count as made: the next run sends only what
no call answered (both engines)."""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from espcore.errors import ServerError
from espcore.providers.base import ConcurrentWriter, MemberInput, RowResult, calls_in_flight
from espcore.sync.engine import run_sync
from espcore.sync.errors import SyncError
from tests.sync.fakes import FakeProvider
from tests.sync.test_engine import make_wh, spec

ROWS = [(f"p{i:03d}@example.com", f"Name{i}", "DE") for i in range(40)]


@dataclass
class SlowConcurrentProvider(FakeProvider):
    """Each write call takes a while; records how many were in flight at once, and can fail one call."""

    calls_in_flight: int = 3
    delay_s: float = 0.03
    fail_call: int | None = None  # the n-th write call (1-based) fails with a 503
    active: int = 0
    most_active: int = 0
    calls: int = 0
    answered: list[str] = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        with self.guard:
            self.calls += 1
            n = self.calls
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.delay_s * (3 if n == self.fail_call else 1))  # the failing call answers last
            if n == self.fail_call:
                raise ServerError("injected 503", provider=self.name, status=503)
            with self.guard:
                out = super().upsert_members(book_id, rows)
                self.answered += [r.email for r in rows]
            return out
        finally:
            with self.guard:
                self.active -= 1


def test_the_capability_is_read_from_the_adapter() -> None:
    assert isinstance(SlowConcurrentProvider(), ConcurrentWriter)
    assert calls_in_flight(SlowConcurrentProvider(calls_in_flight=0)) == 1
    assert calls_in_flight(FakeProvider()) == 1  # without it, one call at a time


def test_calls_go_out_together_and_every_answer_is_journaled(new_wh) -> None:
    wh, p = make_wh(new_wh, ROWS), SlowConcurrentProvider(batch_size=2)
    result = run_sync(spec(), p, wh, run_id="r1")
    assert result.outcome == "success"
    assert result.synced_rows == len(ROWS)
    assert result.counts["write_calls"] == len(ROWS) // 2
    assert p.most_active == 3  # never more than the adapter allows, and that many at once
    with wh.connect() as con:
        journaled = con.fetchall(f"SELECT count(*) FROM {con.own('sync_changelog')} WHERE result = 'ok'")
    assert journaled == [(len(ROWS),)]
    p.write_calls.clear()
    assert run_sync(spec(), p, wh, run_id="r2").counts["write_calls"] == 0
    assert p.write_calls == []


def test_a_failed_call_stops_the_run_and_the_calls_beside_it_count_as_made(new_wh) -> None:
    wh, p = make_wh(new_wh, ROWS), SlowConcurrentProvider(batch_size=2, fail_call=5)
    with pytest.raises(SyncError, match="pending"):
        run_sync(spec(), p, wh, run_id="r1")
    first = list(p.answered)
    assert len(first) > 8  # the calls made before the failure, and those in flight beside it, answered
    with wh.connect() as con:
        ok = {pk for (pk,) in con.fetchall(f"SELECT pk FROM {con.own('sync_state')} WHERE status = 'synced'")}
    assert ok == set(first)  # every answer received was journaled and folded, those in flight included

    p.fail_call, p.answered = None, []
    again = run_sync(spec(), p, wh, run_id="r2")
    assert again.outcome == "success"
    assert again.synced_rows == len(ROWS)
    assert sorted(p.answered) == sorted({e for e, _, _ in ROWS} - set(first))  # only what no call answered
