"""bench/limits_bench.py at tiny sizes (a smoke test, not a measurement): each provider's first sync through the
engine, at its real limits on the simulated clock, makes only the calls its bound counts and keeps to the bound."""

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from espcore.errors import RateLimitError
from espcore.providers.base import MemberInput
from espcore.providers.litestartup import LiteStartupClient, LiteStartupProvider
from espcore.sandbox.litestartup import DEMO_API_KEY, LiteStartupSandbox
from espcore.sandbox.transport import InProcessTransport

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import limits_bench  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return limits_bench


def test_bound_of_nested_windows(bench: ModuleType) -> None:
    assert bench.bound_seconds(10_000, ((1.0, 10),)) == pytest.approx(1_000.0)
    # LiteStartup free: 1,000 in the first hour at 1/s, the next hour starts at 3,600 s
    assert bench.bound_seconds(1_000, ((3600.0, 1_000), (60.0, 60))) == pytest.approx(1_000.0)
    assert bench.bound_seconds(1_001, ((3600.0, 1_000), (60.0, 60))) == pytest.approx(3_601.0)
    assert bench.bound_seconds(5, ()) == 0.0


def test_sendpulse_at_ten_requests_a_second(bench: ModuleType) -> None:
    o = bench.run_case(bench.CASES["sendpulse"], 3_000)
    c = o.counts
    assert o.added == 3_000
    assert (c.member_writes, c.reads_in_loop, c.refused_429) == (30, 0, 0)
    calls = c.member_writes + c.other_writes + c.reads + c.auth
    # every call after the first waits one pacing slot of 0.1 s of the simulated clock, and nothing else waits
    assert o.sim_s == pytest.approx((calls - 1) / 10, abs=0.01)
    assert o.bound_s == pytest.approx(3.0)


def test_pakat_one_bulk_call_per_10000_rows(bench: ModuleType) -> None:
    o = bench.run_case(bench.CASES["pakat"], 10_001)
    c = o.counts
    assert o.added == 10_001
    assert (c.member_writes, c.reads_in_loop, c.refused_429) == (2, 0, 0)
    assert o.of_bound == 1.0


def test_litestartup_waits_out_the_hourly_cap_in_one_run(bench: ModuleType) -> None:
    o = bench.run_case(bench.CASES["litestartup"], 1_003)
    c = o.counts
    assert (o.added, o.runs) == (1_003, 1)
    assert (c.member_writes, c.reads_in_loop) == (1_003, 0)
    assert c.refused_429 == 1  # one refusal when the hour's 1,000 calls are used up, then its Retry-After
    assert o.bound_s == pytest.approx(3_603.0)
    assert o.of_bound >= 0.99


def test_litestartup_current_dialect_at_sixty_a_minute(bench: ModuleType) -> None:
    o = bench.run_case(bench.CASES["litestartup-current"], 70)
    c = o.counts
    assert o.added == 70
    assert (c.member_writes, c.reads_in_loop, c.refused_429) == (70, 0, 0)
    assert o.of_bound >= 0.9  # 70 s for the writes; the book's tag and two reads take a pacing slot each


def test_litestartup_rate_refusal_without_retry_after_stops_instead_of_refusing_every_row() -> None:
    sandbox = LiteStartupSandbox(dialect="seed")
    client = LiteStartupClient(
        DEMO_API_KEY,
        "http://127.0.0.1/client/v2",
        transport=InProcessTransport(sandbox.app),
        requests_per_minute=0,
        sleep=lambda s: None,
    )
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        sandbox.advance(seconds)

    provider = LiteStartupProvider(client, sleep=wait, max_rate_wait_s=10.0)
    sandbox.freeze_clock(datetime(2030, 1, 7, 9, 0, tzinfo=UTC))  # the top of a minute: 60 s left when it is full
    rows = [MemberInput(f"r{i}@example.com", {}, exists=False) for i in range(61)]
    with pytest.raises(RateLimitError):  # the 61st call of the minute: its Retry-After (60 s) is over 10 s
        provider.upsert_members("Book", rows)
    assert waits == []
    provider.max_rate_wait_s = 60.0
    assert provider.upsert_members("Book", rows[60:])[0].ok  # now waited out
    assert waits == [60]
    assert provider.rate_waits == 1
    client.close()
