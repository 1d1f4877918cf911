"""Limits benchmark: a first sync into each provider's sandbox at the provider's real limits, on a simulated clock.

    uv run --locked python bench/limits_bench.py                      # 1,000,000 rows (LiteStartup: see below)
    uv run --locked python bench/limits_bench.py --rows 20000 --transport loopback

Each provider gets a DuckDB table of new contacts and one first sync through the engine (``run_sync``), against
its sandbox enforcing the provider's real limits: SendPulse 10 requests/s per account, LiteStartup's free plan
(60/min and 1,000/h per key in the seed's doc set; 60/min in the current one, which documents no hourly cap),
Pakat none documented (MailWizz answers no 429; a bulk call keeps 10,000 rows).

The clock is simulated. The client's rate limiter and retry waits sleep on :class:`SimClock`, which moves its
time on at once instead of sleeping; the sandbox's own clock (and SendPulse's rate window) follows it. So a run
that would take a real account hours ends in minutes, and its simulated time does not depend on how loaded this
machine is: it counts only what the provider's limits make a client wait (plus ``--rtt-ms`` per call when given;
the engine makes one call at a time, so a round trip longer than a pacing interval is what then binds).

Every call is counted on the sandbox's side (an ASGI wrapper around the app), by kind: member writes (the calls
that carry rows), other writes (book and field set-up), reads before the first member write, reads after it
(inside the write loop), and refusals (429). The bound of a provider is its documented request rate times the
rows one member write carries; the result is rows per simulated second as a fraction of it.

LiteStartup writes one contact per call, so its sync of N rows takes N calls: a million would take about 1,000
hours at the free plan's 1,000 calls an hour, and the seed sandbox finds a contact by address with a scan of the
account (a million creates would scan 5·10^11 contacts). Its row is measured on ``--litestartup-rows`` (more than
the hourly cap, so the hour window is crossed) and the time for 1,000,000 rows is extrapolated at the measured
rate; the table says so.
"""

import argparse
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from espcore.http import HttpPolicy, RateLimiter  # noqa: E402
from espcore.providers.base import EspProvider  # noqa: E402
from espcore.sandbox.base import ProviderSandbox  # noqa: E402
from espcore.sandbox.server import serve  # noqa: E402
from espcore.sandbox.transport import InProcessTransport  # noqa: E402
from espcore.sync.engine import run_sync  # noqa: E402
from espcore.sync.spec import SyncSpec  # noqa: E402
from espcore.warehouse import Warehouse  # noqa: E402

#: where every sandbox clock starts: the top of an hour, so LiteStartup's fixed windows start with the run
SANDBOX_START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
MILLION = 1_000_000
#: simulated seconds between a run the provider stopped (retryable) and the next one
RERUN_AFTER_S = 60.0


# -- the simulated clock ---------------------------------------------------------------------------------------


class SimClock:
    """Monotonic seconds that move only when something sleeps on them.

    Time is kept as a whole number of ticks of 2**-20 s (about a microsecond), and a sleep is rounded up to a
    tick: every instant is then exact in binary floating point, so a client paced at exactly a provider's rate
    meets a sliding window's edge exactly instead of a rounding error away on either side. Followers (the
    sandboxes' clocks) are moved on after every sleep.
    """

    TICK = 2.0**-20

    def __init__(self) -> None:
        self._ticks = 0
        self._followers: list[Callable[[float], None]] = []

    def monotonic(self) -> float:
        return self._ticks * self.TICK

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._ticks += max(1, math.ceil(seconds / self.TICK))
        now = self.monotonic()
        for follow in self._followers:
            follow(now)

    def follow(self, fn: Callable[[float], None]) -> None:
        self._followers.append(fn)

    def drive(self, sandbox: ProviderSandbox) -> None:
        """Freeze ``sandbox``'s clock at :data:`SANDBOX_START` and move it on with this clock, in whole
        microseconds (the sandbox clock's resolution), never behind this clock by more than a rounding."""
        sandbox.freeze_clock(SANDBOX_START)
        done_us = 0

        def advance(now: float) -> None:
            nonlocal done_us
            us = math.ceil(round(now * 1_000_000, 3))
            if us > done_us:
                sandbox.advance((us - done_us) / 1_000_000)
                done_us = us

        self.follow(advance)


def paced_on(client: Any, clock: SimClock, rate: float | None) -> None:
    """The client's rate limiter, on the simulated clock (the limiter is the client's ``http.limiter``)."""
    client.http.limiter = RateLimiter(rate, client.http.policy.burst, clock=clock.monotonic, sleep=clock.sleep)


class LatencyTransport(httpx.BaseTransport):
    """Each call takes ``rtt`` simulated seconds (half out, half back) on top of what the sandbox takes, and its
    way out up to ``jitter`` seconds more (uniform, seeded): the sandbox sees it arrive that much later."""

    def __init__(self, inner: httpx.BaseTransport, clock: SimClock, rtt: float, jitter: float = 0.0) -> None:
        self.inner, self.clock, self.half, self.jitter = inner, clock, rtt / 2, jitter
        self._rng = random.Random(1)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.sleep(self.half + (self._rng.uniform(0, self.jitter) if self.jitter else 0.0))
        response = self.inner.handle_request(request)
        response.read()
        self.clock.sleep(self.half)
        return response

    def close(self) -> None:
        self.inner.close()


# -- counting calls on the sandbox's side ---------------------------------------------------------------------


_ID_SEGMENT = re.compile(r"^(?!v\d+$)(?=.*\d)[\w.@%+-]+$")


def path_template(path: str) -> str:
    """``/addressbooks/123/emails`` → ``/addressbooks/{id}/emails`` (a segment holding a digit is an id, but for a
    version such as ``v2``)."""
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


@dataclass
class CallCounts:
    """The calls one sandbox answered, by kind."""

    member_write: re.Pattern[str]
    auth_paths: frozenset[str] = frozenset()
    by_route: Counter[str] = field(default_factory=Counter)
    member_writes: int = 0
    other_writes: int = 0
    auth: int = 0
    reads_before: int = 0
    reads_in_loop: int = 0
    refused_429: int = 0
    first_write_at: float | None = None  # real perf_counter() of the first member write

    def record(self, method: str, path: str, status: int) -> None:
        route = f"{method} {path_template(path)}"
        self.by_route[route] += 1
        if status == 429:  # refused for rate before it was acted on: counted apart from what it asked
            self.refused_429 += 1
        elif path in self.auth_paths:
            self.auth += 1
        elif method in ("GET", "HEAD"):
            if self.first_write_at is None:
                self.reads_before += 1
            else:
                self.reads_in_loop += 1
        elif self.member_write.fullmatch(route):
            self.member_writes += 1
            if self.first_write_at is None:
                self.first_write_at = time.perf_counter()
        else:
            self.other_writes += 1

    @property
    def reads(self) -> int:
        return self.reads_before + self.reads_in_loop


class CountingApp:
    """An ASGI wrapper that records every answered call in a :class:`CallCounts`."""

    def __init__(self, app: Any, counts: CallCounts) -> None:
        self.app, self.counts = app, counts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def recorded(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, recorded)
        self.counts.record(scope["method"].upper(), scope["path"], status)


@contextmanager
def transport_for(
    app: Any, kind: str, clock: SimClock, rtt: float = 0.0, jitter: float = 0.0
) -> Iterator[tuple[str, httpx.BaseTransport]]:
    """(base URL, transport) reaching ``app``: in-process, or real HTTP over a loopback server."""

    def timed(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        return LatencyTransport(inner, clock, rtt, jitter) if rtt or jitter else inner

    if kind == "loopback":
        with serve(app) as server:
            yield server.url, timed(httpx.HTTPTransport())
        return
    inner = InProcessTransport(app)
    try:
        yield "http://127.0.0.1", timed(inner)
    finally:
        inner.close()


# -- the providers at their limits ---------------------------------------------------------------------------------


#: (clock, base URL, transport, pace or None for the client's default) -> (adapter, client to close)
Builder = Callable[[SimClock, str, httpx.BaseTransport, float | None], tuple[EspProvider, Any]]


def bound_seconds(calls: int, windows: tuple[tuple[float, int], ...]) -> float:
    """The least time ``calls`` calls take under a provider's windows (``(seconds, calls allowed)``, longest first),
    starting at the top of every window: the finest window's rate paces the calls evenly, and each longer one,
    once full, holds the next call until it starts again. 0 without windows."""
    if not windows or calls <= 0:
        return 0.0

    def start(k: int, rest: tuple[tuple[float, int], ...]) -> float:
        (seconds, allowed), finer = rest[0], rest[1:]
        if not finer:
            return k * seconds / allowed
        full, k = divmod(k, allowed)
        return full * seconds + start(k, finer)

    finest_seconds, finest_allowed = windows[-1]
    return start(calls - 1, windows) + finest_seconds / finest_allowed


@dataclass(frozen=True)
class Case:
    """One provider at its real limits: what bounds it and how to build its sandbox and adapter."""

    provider: str
    limit: str  # the documented limit, as the table prints it
    windows: tuple[tuple[float, int], ...]  # (seconds, calls allowed), longest first; () when none is documented
    rows_per_write: int
    member_write: str  # regex over "METHOD /path/{id}" of the calls that carry rows
    build: Builder
    sandbox: Callable[[SimClock], ProviderSandbox]
    auth_paths: frozenset[str] = frozenset()
    label: str = ""  # how the table names it (default: the provider)

    @property
    def title(self) -> str:
        return self.label or self.provider

    def writes(self, rows: int) -> int:
        """Member writes the bound allows for: ⌈rows / rows per write⌉."""
        return math.ceil(rows / self.rows_per_write)

    def bound_seconds(self, rows: int) -> float:
        """The least time the provider's limits allow for the member writes of ``rows`` rows."""
        return bound_seconds(self.writes(rows), self.windows)

    @property
    def sustained_rows_per_s(self) -> float | None:
        """Rate times rows per write for a long sync: the tightest window's rate."""
        if not self.windows:
            return None
        return min(allowed / seconds for seconds, allowed in self.windows) * self.rows_per_write


def _sendpulse_sandbox(clock: SimClock) -> ProviderSandbox:
    from espcore.sandbox.sendpulse import SendPulseSandbox

    return SendPulseSandbox(rate_clock=clock.monotonic)  # 10 requests/s, as the service enforces


def _sendpulse(
    clock: SimClock, url: str, transport: httpx.BaseTransport, pace: float | None
) -> tuple[EspProvider, Any]:
    from espcore.providers.sendpulse import SendPulseClient, SendPulseProvider
    from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    client = SendPulseClient(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        url,
        transport=transport,
        policy=HttpPolicy(requests_per_second=pace or 10.0),
        sleep=clock.sleep,
        clock=clock.monotonic,
    )
    paced_on(client, clock, pace or 10.0)  # the client's own default: the documented 10 requests/s
    provider = SendPulseProvider(client)
    # one call at a time: the simulated clock is one timeline, and threads sleeping on it at once would each move
    # it for all; with no round trip, calls in flight add nothing (their effect is measured in real time)
    provider.calls_in_flight = 1
    return provider, client


def _pakat_sandbox(clock: SimClock) -> ProviderSandbox:
    from espcore.sandbox.pakat import PakatSandbox

    sandbox = PakatSandbox()
    sandbox.reset(demo=True)
    return sandbox


def _pakat(clock: SimClock, url: str, transport: httpx.BaseTransport, pace: float | None) -> tuple[EspProvider, Any]:
    from espcore.providers.pakat import PakatClient, PakatProvider
    from espcore.sandbox.pakat import DEMO_API_KEY

    client = PakatClient(DEMO_API_KEY, url + "/api", transport=transport, sleep=clock.sleep)
    paced_on(client, clock, pace)  # by default the client does not pace: Pakat documents no limit
    return PakatProvider(client), client


def _litestartup_sandbox(dialect: str) -> Callable[[SimClock], ProviderSandbox]:
    def build(clock: SimClock) -> ProviderSandbox:
        from espcore.sandbox.litestartup import LiteStartupSandbox

        # the demo key is on the free plan: 60/min and 1,000/h (the current doc set documents the minute only)
        return LiteStartupSandbox(dialect=dialect)

    return build


def _litestartup(
    dialect: Literal["seed", "current"],
) -> Callable[[SimClock, str, httpx.BaseTransport, float | None], tuple[EspProvider, Any]]:
    def build(clock: SimClock, url: str, transport: httpx.BaseTransport, pace: float | None) -> tuple[EspProvider, Any]:
        from espcore.providers.litestartup import LiteStartupClient, LiteStartupProvider
        from espcore.sandbox.litestartup import DEMO_API_KEY

        client = LiteStartupClient(
            DEMO_API_KEY, url + "/client/v2", plan="free", transport=transport, sleep=clock.sleep, dialect=dialect
        )
        paced_on(client, clock, pace or client.policy.requests_per_second)  # by default the plan's pace: 60/min
        # the hourly cap's 429 names the seconds left in the hour: the adapter waits them out on the simulated clock
        return LiteStartupProvider(client, sleep=clock.sleep), client

    return build


CASES: dict[str, Case] = {
    "sendpulse": Case(
        "sendpulse",
        "10 req/s",
        ((1.0, 10),),
        100,
        r"POST /addressbooks/\{id\}/emails",
        _sendpulse,
        _sendpulse_sandbox,
        frozenset({"/oauth/access_token"}),
    ),
    "pakat": Case(
        "pakat",
        "none documented",
        (),
        10_000,
        r"POST /api/lists/\{id\}/subscribers/bulk",
        _pakat,
        _pakat_sandbox,
    ),
    "litestartup": Case(
        "litestartup",
        "60/min, 1,000/h",
        ((3600.0, 1_000), (60.0, 60)),
        1,
        r"(POST /client/v2/contacts|PUT /client/v2/contacts/\{id\})",
        _litestartup("seed"),
        _litestartup_sandbox("seed"),
    ),
    # LiteStartup's newer doc set: the minute window only; its CSV import is not what the adapter writes with
    "litestartup-current": Case(
        "litestartup",
        "60/min",
        ((60.0, 60),),
        1,
        r"(POST /client/v2/contacts/add|PUT /client/v2/contacts/update)",
        _litestartup("current"),
        _litestartup_sandbox("current"),
        label="litestartup (current)",
    ),
}


# -- one run ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    rows: int
    counts: CallCounts
    sim_s: float
    real_s: float
    real_before_write_s: float
    runs: int
    added: int

    @property
    def rows_per_s(self) -> float:
        return self.added / self.sim_s if self.sim_s else math.inf

    @property
    def bound_s(self) -> float:
        return self.case.bound_seconds(self.rows)

    @property
    def of_bound(self) -> float:
        """The bound's time over the simulated time; without a documented rate, the bound's calls over the calls
        made (⌈rows / rows per write⌉ member writes)."""
        if not self.case.windows:
            return self.case.writes(self.rows) / max(1, self.counts.member_writes)
        return self.bound_s / self.sim_s if self.sim_s else 0.0


def people(wh: Warehouse, n: int) -> None:
    with wh.connect() as con:
        con.execute(
            "CREATE OR REPLACE TABLE people AS SELECT 'p' || i || '@example.com' AS email, 'N' || i AS name "
            f"FROM range({n}) t(i)"
        )


def run_case(
    case: Case,
    rows: int,
    *,
    transport: str = "inprocess",
    rtt_ms: float = 0.0,
    jitter_ms: float = 0.0,
    pace: float | None = None,
    max_runs: int = 50,
) -> Outcome:
    """Sync ``rows`` new contacts through the engine into a fresh sandbox of ``case`` on a simulated clock.

    A run the provider stops (the engine ends it retryable, rows left pending) is followed by another
    :data:`RERUN_AFTER_S` later on the simulated clock, as a schedule would run it again (at most ``max_runs``
    runs; the table's ``runs``). ``pace``: the client's requests/s instead of its default; ``rtt_ms``/``jitter_ms``: see
    :class:`LatencyTransport`."""
    from espcore.sync.errors import SyncError

    random.seed(0)  # the HTTP policy's backoff jitter: the same waits every time
    clock = SimClock()
    sandbox = case.sandbox(clock)
    clock.drive(sandbox)
    counts = CallCounts(re.compile(case.member_write), case.auth_paths)
    spec = SyncSpec(
        name="limits", provider=case.provider, book="Bench", source_sql="SELECT * FROM people", fields={"name": "name"}
    )
    added = runs = 0
    with tempfile.TemporaryDirectory() as d:
        wh = Warehouse(Path(d) / "wh.duckdb")
        people(wh, rows)
        app = CountingApp(sandbox.app, counts)
        with transport_for(app, transport, clock, rtt_ms / 1000, jitter_ms / 1000) as (url, tr):
            provider, client = case.build(clock, url, tr, pace)
            start_sim, start = clock.monotonic(), time.perf_counter()
            try:
                while runs < max_runs:
                    runs += 1
                    try:
                        r = run_sync(spec, provider, wh, run_id=f"run{runs}").metadata()
                    except SyncError as exc:
                        if not exc.retryable:
                            raise
                        r = exc.counts or {}
                        added += int(r.get("successful_add", 0))
                        clock.sleep(RERUN_AFTER_S)
                        continue
                    added += int(r["successful_add"])
                    break
            finally:
                real = time.perf_counter() - start
                client.close()
    before = (counts.first_write_at - start) if counts.first_write_at is not None else real
    return Outcome(case, rows, counts, clock.monotonic() - start_sim, real, before, runs, added)


# -- report ------------------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


HEADER = (
    f"{'provider':<21} {'limit':<16} {'rows':>9} {'member writes':>13} {'other writes':>12} "
    f"{'reads before/in loop':>20} {'auth':>4} {'429':>4} {'runs':>4} {'bound':>9} {'simulated':>9} {'of bound':>8} "
    f"{'rows/s':>9} {'real':>8}"
)


def line(o: Outcome) -> str:
    c = o.counts
    rate = "-" if math.isinf(o.rows_per_s) else f"{o.rows_per_s:,.2f}"
    return (
        f"{o.case.title:<21} {o.case.limit:<16} {o.rows:>9,} {c.member_writes:>13,} {c.other_writes:>12,} "
        f"{f'{c.reads_before} / {c.reads_in_loop}':>20} {c.auth:>4} {c.refused_429:>4} {o.runs:>4} "
        f"{(duration(o.bound_s) if o.case.windows else '-'):>9} {duration(o.sim_s):>9} {o.of_bound:>8.3f} "
        f"{rate:>9} {duration(o.real_s):>8}"
    )


def million_line(o: Outcome) -> str:
    """What a real account needs for 1,000,000 new rows: measured at 1M, or the measured run plus the bound's time
    for the rows it did not have (a run's set-up calls are made once, whatever its size)."""
    case, name = o.case, o.case.title
    if not case.windows:
        return (
            f"   {name}: {case.writes(MILLION):,} bulk calls of {case.rows_per_write:,} rows; no documented rate, so "
            f"the time is the server's processing of those calls (this sandbox: {duration(o.real_s)} real for "
            f"{o.rows:,} rows, {o.counts.member_writes} bulk calls)"
        )
    if o.rows == MILLION:
        return (
            f"   {name}: {duration(o.sim_s)} ({case.limit}; bound {duration(o.bound_s)}, "
            f"{case.sustained_rows_per_s:,.0f} rows/s sustained)"
        )
    rest = case.bound_seconds(MILLION) - o.bound_s
    return (
        f"   {name}: about {duration(o.sim_s + rest)} ({case.limit}: {o.rows:,} rows measured in {duration(o.sim_s)}, "
        f"the other {MILLION - o.rows:,} at the bound, {case.sustained_rows_per_s:,.3f} rows/s sustained)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=MILLION, help="rows of the SendPulse and Pakat syncs")
    parser.add_argument("--litestartup-rows", type=int, default=2_500, help="rows of the LiteStartup sync")
    parser.add_argument("--providers", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--transport", choices=("inprocess", "loopback"), default="inprocess")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="simulated round trip added to every call")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="up to this much more on a call's way out")
    parser.add_argument("--pace", type=float, default=None, help="the clients' requests/s instead of their default")
    parser.add_argument("--routes", action="store_true", help="also print the calls of each run by route")
    args = parser.parse_args(argv)
    names = [p.strip() for p in args.providers.split(",") if p.strip()]
    print(
        f"First sync of new rows through the engine (run_sync, DuckDB) into each sandbox at the provider's real "
        f"limits; simulated clock, {args.transport} transport, round trip {args.rtt_ms:g} ms + up to "
        f"{args.jitter_ms:g} ms, client pace {'default' if args.pace is None else f'{args.pace:g} requests/s'}"
    )
    print(HEADER)
    outcomes = []
    for name in names:
        case = CASES[name]
        rows = args.litestartup_rows if name.startswith("litestartup") else args.rows
        o = run_case(case, rows, transport=args.transport, rtt_ms=args.rtt_ms, jitter_ms=args.jitter_ms, pace=args.pace)
        outcomes.append(o)
        print(line(o), flush=True)
        if args.routes:
            for route, n in sorted(o.counts.by_route.items()):
                print(f"{'':<21} {n:>9,}  {route}")
    print("\nA first sync of 1,000,000 new rows for a real account (the simulated time: the provider's limits only):")
    for o in outcomes:
        print(million_line(o))


if __name__ == "__main__":
    main()
