"""Apply benchmark: the engine's apply at wire speed, against a plain batched loop making the same HTTP calls.

    uv run --locked python bench/apply_bench.py                  # 100,000 new subscribers (issue #16, goal 1)
    uv run --locked python bench/apply_bench.py --quick          # 10,000
    uv run --locked python bench/apply_bench.py --rows 20000 --profile /tmp/engine.prof

**Setup.** A DuckDB warehouse (a temp file) holds ``people``: ``--rows`` new addresses with one mapped column
(``name``). The SendPulse sandbox (the project's emulator, in memory) is served over real HTTP by uvicorn on
127.0.0.1 in a process of its own, a fresh one per measurement, so its CPU is never the client's. Unthrottled:
the sandbox is built with its documented ``rate_limit=False`` (no 10 requests/s window) and
``activation_delay=0`` (new members turn active at once instead of queueing), and the client's token bucket is
off (``requests_per_second=None``). Nothing else about the sandbox changes: every call is validated and stored
as it is served.

**The two sides**, each in a subprocess of its own (its CPU is its own, the sandbox's is not in it), both with
the project's :class:`SendPulseClient` and the same calls of 100 addresses (the adapter's ``batch_size``) to
``POST /addressbooks/{id}/emails``:

* baseline: a plain loop: read the table (one query), then ``client.add_emails`` per 100 rows; no state;
* engine: ``run_sync`` of a new book: plan, then apply (write-ahead, one send per call, the journal, the fold
  into ``sync_state``, the lock check), i.e. everything a real run does.

Each side is timed from its first warehouse read to the last call answered (the client is built, and the
token fetched, before the clock starts on both sides); the engine's apply phase (after its plan) is also
timed alone. Client CPU is ``time.process_time()`` of the side's own
process, so DuckDB's threads and the engine's background threads count. Prints wall seconds, rows/s, CPU
seconds and CPU per row for both, and the ratios against the goals (CPU per row <= 2.0x the baseline's,
throughput >= 0.8x). ``--repeat`` runs each side that many times (alternating which goes first) and reports
the median. Asserts that every row reached the book on both sides; no timing is asserted.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_CPU = 2.0
GOAL_THROUGHPUT = 0.8
BOOK_SIZE = 100  # SendPulse's add call: the adapter's batch_size


def build(path: Path, n: int) -> None:
    from espcore.warehouse import Warehouse

    wh = Warehouse(path)
    with wh.connect() as con:
        con.execute(
            "CREATE OR REPLACE TABLE people AS SELECT 'user' || i || '@example.com' AS email, 'Name ' || i AS name "
            f"FROM range({n}) t(i)"
        )
        con.execute("CHECKPOINT")


# -- the sandbox, in its own process ------------------------------------------------------------------------


def serve_sandbox() -> None:
    """Child: serve an unthrottled SendPulse sandbox on a free loopback port; print its URL; run until stdin
    closes."""
    from espcore.sandbox.sendpulse import SendPulseSandbox
    from espcore.sandbox.server import serve

    sandbox = SendPulseSandbox(rate_limit=False, activation_delay=0)
    with serve(sandbox.app) as server:
        print(server.url, flush=True)
        sys.stdin.read()


class Sandbox:
    """A sandbox process: ``url``; ``cpu_seconds()`` reads its CPU so far from ``/proc`` (Linux)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-sandbox"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"the sandbox did not start: {self.url!r}")

    def cpu_seconds(self) -> float | None:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)


# -- the two sides, each in its own process -------------------------------------------------------------------


def client(url: str) -> Any:
    from espcore.http import HttpPolicy
    from espcore.providers.sendpulse import SendPulseClient
    from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    c = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, url, policy=HttpPolicy(requests_per_second=None))
    list(c.list_books())  # both sides start with a token and an open connection
    return c


def run_baseline(url: str, path: str) -> dict[str, Any]:
    import duckdb

    from espcore.providers.sendpulse import EmailToAdd

    c = client(url)
    book_id = c.create_book("Baseline")
    wall, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(path, read_only=True)
    rows = con.execute("SELECT email, name FROM people").fetchall()
    con.close()
    calls = 0
    for start in range(0, len(rows), BOOK_SIZE):
        c.add_emails(book_id, [EmailToAdd(e, {"name": n}) for e, n in rows[start : start + BOOK_SIZE]])
        calls += 1
    out = {"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "calls": calls}
    out["in_book"] = c.book_email_total(book_id)
    c.close()
    return out


def run_engine(url: str, path: str, profile: str | None = None) -> dict[str, Any]:
    from espcore.providers.sendpulse import SendPulseProvider
    from espcore.sync.engine import SyncEngine, run_sync
    from espcore.sync.spec import SyncSpec
    from espcore.warehouse import Warehouse

    c = client(url)
    provider = SendPulseProvider(c)
    # calls in flight (a sync keeps SendPulseProvider.calls_in_flight = 3, to reach the rate limit at long round
    # trips); one by default here, like the loop: the sandbox answers at once and shares the machine's cores
    provider.calls_in_flight = int(os.environ.get("APPLY_BENCH_IN_FLIGHT", "1"))
    assert provider.batch_size == BOOK_SIZE, provider.batch_size
    spec = SyncSpec(
        name="bench", provider="sendpulse", book="Engine", source_sql="SELECT * FROM people", fields={"name": "name"}
    )
    wh = Warehouse(path)
    phase: dict[str, float] = {}
    apply = SyncEngine._apply

    def timed_apply(self: Any, result: Any) -> None:  # the apply phase alone (after the plan), for the report
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            apply(self, result)
        finally:
            phase.update(apply_seconds=time.perf_counter() - wall, apply_cpu=time.process_time() - cpu)

    setattr(SyncEngine, "_apply", timed_apply)  # noqa: B010
    requests_before = c.http.stats.requests
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    r = run_sync(spec, provider, wh, run_id="bench")
    out = {"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu, **phase}
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    m = r.metadata()
    out["calls"] = m["write_calls"]
    out["requests"] = c.http.stats.requests - requests_before
    out["successful_add"] = m["successful_add"]
    book = provider.find_book("Engine")
    assert book is not None
    out["in_book"] = c.book_email_total(int(book.id))
    c.close()
    return out


def child(kind: str, url: str, path: str, profile: str | None) -> None:
    # both sides import what they use before their clock starts (pandas, which DuckDB's Arrow registration
    # loads, is there in any Dagster process)
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    out = run_baseline(url, path) if kind == "baseline" else run_engine(url, path, profile)
    print(json.dumps(out))


def measure(kind: str, path: Path, profile: str | None) -> dict[str, Any]:
    sandbox = Sandbox()
    try:
        before = sandbox.cpu_seconds()
        cmd = [sys.executable, __file__, "--child", kind, sandbox.url, str(path)]
        if profile and kind == "engine":
            cmd += ["--profile", profile]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        after = sandbox.cpu_seconds()
    finally:
        sandbox.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["sandbox_cpu"] = after - before if before is not None and after is not None else None
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 rows")
    ap.add_argument("--repeat", type=int, default=1, help="runs per side (median reported)")
    ap.add_argument("--profile", help="write the engine side's cProfile stats to this file")
    ap.add_argument("--in-flight", type=int, default=1, help="the engine's calls in flight (a sync's default: 3)")
    ap.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "URL", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_sandbox:
        serve_sandbox()
        return
    if args.child:
        kind, url, path = args.child
        child(kind, url, path, args.profile)
        return
    n = 10_000 if args.quick and args.rows == ap.get_default("rows") else args.rows
    os.environ["APPLY_BENCH_IN_FLIGHT"] = str(max(1, args.in_flight))  # read by the engine's child process
    import duckdb

    print(f"machine: {machine()}; DuckDB {duckdb.__version__}")
    print(
        f"{n:,} new SendPulse subscribers, calls of {BOOK_SIZE}, sandbox unthrottled in its own process; "
        f"engine calls in flight: {max(1, args.in_flight)}"
    )
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "engine": []}
    with tempfile.TemporaryDirectory() as d:
        for i in range(max(1, args.repeat)):
            for kind in ("baseline", "engine") if i % 2 == 0 else ("engine", "baseline"):
                path = Path(d) / f"{kind}{i}.duckdb"  # a fresh warehouse per run: the engine's state starts empty
                build(path, n)
                out = measure(kind, path, args.profile)
                assert out["in_book"] == n, (kind, out)
                runs[kind].append(out)
    expected_calls = -(-n // BOOK_SIZE)
    assert all(r["calls"] == expected_calls for r in runs["baseline"] + runs["engine"]), runs

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    print(f"{'':>9} {'wall s':>8} {'rows/s':>8} {'CPU s':>7} {'CPU µs/row':>11} {'sandbox CPU s':>14} {'calls':>6}")
    for kind in ("baseline", "engine"):
        wall, cpu = med(kind, "seconds"), med(kind, "cpu")
        sb = [r["sandbox_cpu"] for r in runs[kind] if r["sandbox_cpu"] is not None]
        sb_text = f"{statistics.median(sb):.1f}" if sb else "-"
        print(
            f"{kind:>9} {wall:>8.2f} {n / wall:>8.0f} {cpu:>7.2f} {1e6 * cpu / n:>11.1f} {sb_text:>14} "
            f"{int(med(kind, 'calls')):>6}"
        )
    wall, cpu = med("engine", "apply_seconds"), med("engine", "apply_cpu")
    print(f"{'of which':>9} {wall:>8.2f} {n / wall:>8.0f} {cpu:>7.2f} {1e6 * cpu / n:>11.1f}   (the engine's apply)")
    cpu_ratio = med("engine", "cpu") / med("baseline", "cpu")
    tp_ratio = med("baseline", "seconds") / med("engine", "seconds")
    print(f"CPU per row, engine/baseline: {cpu_ratio:.2f}x (goal <= {GOAL_CPU:.1f}x: {_ok(cpu_ratio <= GOAL_CPU)})")
    print(
        f"throughput, engine/baseline: {tp_ratio:.2f}x (goal >= {GOAL_THROUGHPUT:.1f}x: "
        f"{_ok(tp_ratio >= GOAL_THROUGHPUT)})"
    )
    print(
        f"apply phase alone: CPU per row {med('engine', 'apply_cpu') / med('baseline', 'cpu'):.2f}x, "
        f"throughput {med('baseline', 'seconds') / med('engine', 'apply_seconds'):.2f}x"
    )
    print(f"every row in the book on both sides ({n:,}; {expected_calls:,} add calls each)")


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT met"


if __name__ == "__main__":
    main()
