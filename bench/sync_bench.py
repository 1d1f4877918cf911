"""Sync benchmark: write calls against a per-row loop, and throughput against the provider's rate limit.

    uv run python bench/sync_bench.py

1. Write calls (SendPulse sandbox, in-process): a 5,000-row segment is synced; then k rows change and the
   engine's write calls are compared with a per-row loop (k calls); an unchanged re-sync must make 0.
2. Throughput over real loopback HTTP at SendPulse's documented 10 requests/s (enforced by the sandbox):
   calls per second achieved by the sync, as a ratio of the rate-limit bound (target >= 0.9). Then every add
   call is delayed 150 ms (a long round trip): the rate of add calls with three calls in flight and with one,
   as a ratio of the client's pace.
3. Reads of an unchanged re-sync (SendPulse sandbox, in-process) at growing book sizes: with the provider's
   suppression signature, against a full read of every suppression in the same run (the baseline).
"""

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# pandas, which DuckDB loads the first time it takes an Arrow table, is in any Dagster process already: import
# it here, so that no run below pays its import (a second, uncompiled) inside its timing
import pandas  # noqa: E402, F401

from espcore.http import HttpPolicy  # noqa: E402
from espcore.providers.sendpulse import SendPulseClient, SendPulseProvider  # noqa: E402
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseSandbox  # noqa: E402
from espcore.sandbox.server import serve  # noqa: E402
from espcore.sandbox.transport import InProcessTransport  # noqa: E402
from espcore.sync.engine import run_sync  # noqa: E402
from espcore.sync.spec import SyncSpec  # noqa: E402
from espcore.warehouse import Warehouse  # noqa: E402

SPEC = SyncSpec(
    name="bench", provider="sendpulse", book="Bench", source_sql="SELECT * FROM people", fields={"name": "name"}
)


def people(wh: Warehouse, n: int) -> None:
    with wh.connect() as con:
        con.execute(
            f"CREATE OR REPLACE TABLE people AS SELECT 'p' || i || '@example.com' AS email, 'N' || i AS name "
            f"FROM range({n}) t(i)"
        )


def write_calls() -> None:
    print("1. write calls for k changed rows (5,000-row book, SendPulse batches of 100)")
    print(f"{'k':>6} {'engine':>7} {'per-row loop':>13} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as d:
        wh = Warehouse(Path(d) / "wh.duckdb")
        people(wh, 5000)
        sandbox = SendPulseSandbox(rate_limit=False)
        client = SendPulseClient(
            DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "http://127.0.0.1", transport=InProcessTransport(sandbox.app)
        )
        provider = SendPulseProvider(client)
        run_sync(SPEC, provider, wh, run_id="initial")
        r = run_sync(SPEC, provider, wh, run_id="unchanged").metadata()
        print(f"{0:>6} {r['write_calls']:>7} {0:>13} {'-':>7}   (unchanged re-sync)")
        for i, k in enumerate((1, 10, 100, 1000)):
            with wh.connect() as con:
                con.execute(f"UPDATE people SET name = name || 'x' WHERE email IN (SELECT email FROM people LIMIT {k})")
            r = run_sync(SPEC, provider, wh, run_id=f"k{i}").metadata()
            assert r["successful_change"] == k
            print(f"{k:>6} {r['write_calls']:>7} {k:>13} {k / r['write_calls']:>6.0f}x")
        client.close()


def throughput(n: int = 3000, rate: float = 10.0, pace: float = 9.5) -> None:
    print(f"\n2. throughput over loopback HTTP, limit {rate:.0f} requests/s, client paced at {pace} ({n} new rows)")
    with tempfile.TemporaryDirectory() as d:
        wh = Warehouse(Path(d) / "wh.duckdb")
        people(wh, n)
        sandbox = SendPulseSandbox()  # enforces 10 requests/s like the real service
        with serve(sandbox.app) as server:
            client = SendPulseClient(
                DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, server.url, policy=HttpPolicy(requests_per_second=pace)
            )
            provider = SendPulseProvider(client)
            t = time.perf_counter()
            r = run_sync(SPEC, provider, wh, run_id="tp").metadata()
            elapsed = time.perf_counter() - t
            calls = client.http.stats.requests
            client.close()
    assert r["successful_add"] == n
    achieved = calls / elapsed
    print(f"   {calls} HTTP calls in {elapsed:.1f}s: {achieved:.2f} calls/s = {achieved / rate:.2f} of the bound")
    print(f"   {n / elapsed:.0f} rows/s (bound: {rate * 100:.0f} rows/s for add calls of 100)")


def in_flight(n: int = 10_000, delay: float = 0.15, pace: float = 9.5) -> None:
    """Calls in flight: every add call delayed ``delay`` seconds by the sandbox (a long round trip), the client
    paced at ``pace``; the same sync with three calls in flight (a SendPulse sync's default) and with one."""
    print(f"\n2b. calls in flight, every add call delayed {delay * 1000:.0f} ms, client paced at {pace} ({n} new rows)")
    for width in (3, 1):
        with tempfile.TemporaryDirectory() as d:
            wh = Warehouse(Path(d) / "wh.duckdb")
            people(wh, n)
            sandbox = SendPulseSandbox()  # enforces 10 requests/s like the real service
            sandbox.faults.add("latency", method="POST", path=r"/addressbooks/\d+/emails$", seconds=delay)
            with serve(sandbox.app) as server:
                client = SendPulseClient(
                    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, server.url, policy=HttpPolicy(requests_per_second=pace)
                )
                provider = SendPulseProvider(client)
                provider.calls_in_flight = width
                calls: list[float] = []
                send = provider.send_prepared  # how a sync sends SendPulse's adds

                def timed(prepared: Any, send: Any = send, calls: list[float] = calls) -> Any:
                    out = send(prepared)
                    calls.append(time.perf_counter())
                    return out

                provider.send_prepared = timed  # type: ignore[method-assign]
                t = time.perf_counter()
                r = run_sync(SPEC, provider, wh, run_id=f"w{width}").metadata()
                client.close()
            assert r["successful_add"] == n
            rate = (len(calls) - 1) / (calls[-1] - calls[0]) if len(calls) > 1 else 0.0
            print(
                f"   {width} in flight: {len(calls)} add calls, {rate:.2f} calls/s between the first and the last "
                f"answer = {rate / pace:.2f} of the pace (whole run {time.perf_counter() - t:.1f} s)"
            )


def unchanged_reads(sizes: tuple[int, ...] = (5_000, 50_000)) -> None:
    from espcore.sync.spec import SyncOptions

    print("\n3. HTTP calls of an unchanged re-sync (0 writes), signature vs full suppression read")
    print(f"{'rows':>8} {'signature':>10} {'full read':>10} {'ratio':>7}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            wh = Warehouse(Path(d) / "wh.duckdb")
            people(wh, n)
            sandbox = SendPulseSandbox(rate_limit=False)
            client = SendPulseClient(
                DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "http://127.0.0.1", transport=InProcessTransport(sandbox.app)
            )
            provider = SendPulseProvider(client)
            run_sync(SPEC, provider, wh, run_id="initial")
            run_sync(SPEC, provider, wh, run_id="first-unchanged")  # reads in full, writes nothing: stores it
            calls = {}
            for label, options in (("signature", SyncOptions()), ("full", SyncOptions(full_suppression_read=True))):
                before = client.http.stats.requests
                r = run_sync(SPEC, provider, wh, run_id=label, options=options).metadata()
                assert r["write_calls"] == 0
                calls[label] = client.http.stats.requests - before
            client.close()
        print(f"{n:>8,} {calls['signature']:>10} {calls['full']:>10} {calls['full'] / calls['signature']:>6.0f}x")


if __name__ == "__main__":
    write_calls()
    throughput()
    in_flight()
    unchanged_reads()
