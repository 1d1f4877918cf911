"""Landing benchmark: our incremental landing against dlt's REST API source, on one SendPulse sandbox.

    uv run --group bench python bench/landing_bench.py                               # 1,000 campaigns (issue #7)
    uv run --group bench python bench/landing_bench.py --campaigns 200 --trials 1    # quicker

dlt is a bench-only dependency (the ``bench`` dependency group, which ``uv sync`` does not install); it is
imported dynamically, so the type check passes without it.

**Setup.** A SendPulse sandbox (the project's emulator, in memory: nothing touches ``data/sandbox``) is seeded
through its own API and test clock (frozen, advanced by the bench): ``--campaigns`` sent campaigns, one every
43 minutes of sandbox time over the past month, each to an address book kept at 12 active readers (new
sign-ups replace those who bounce or unsubscribe); the last ones are still collecting opens. It is served over
real HTTP by uvicorn on 127.0.0.1 (a free port) in this process, behind an ASGI middleware that counts every
request and the time the sandbox spends answering: both sides are counted the same way, on the server. Rate
limits are off on both sides: the sandbox's 10 requests/s, our client's token bucket (``requests_per_second=0``);
dlt has no client-side limiter.

**The two sides**, each in its own subprocess, land ``campaigns`` and ``campaign_stats`` as Parquet into their
own temp dir:

* ours: :func:`espcore.landing.collect.land_campaigns` and ``land_campaign_stats`` with the project's
  :class:`SendPulseClient` (sandbox credentials, OAuth client credentials, limit/offset pages of 100; its
  defaults: up to 4 stats reads in flight, the listing shared between the two landings);
* dlt: a ``dlt.sources.rest_api`` source configured as a dlt user would for this API: the built-in
  ``oauth2_client_credentials`` auth on ``POST /oauth/access_token``, an ``offset`` paginator (limit 100, no
  total: stop on an empty page) on ``GET /campaigns``, and ``campaign_stats`` as a dependent resource on
  ``GET /campaigns/{id}``; a pipeline with ``destination="filesystem"`` and ``loader_file_format="parquet"``.
  The API has no server-side filter, so the fair incremental set-up is client-side: ``incremental`` on the
  list's ``send_date`` with a one-day ``lag`` (campaigns sent within a day of the newest one seen are re-read,
  since their stats still move), which also restricts the dependent stats calls to them; ``append``. dlt's
  ``lag`` does not parse SendPulse's ``YYYY-MM-DD HH:MM:SS`` (TypeError), so a ``map`` step makes it ISO 8601.

**Runs** (state kept across runs, like the daily schedule):

1. full: nothing landed before; ``--trials`` times from scratch (sides alternating first), median reported;
2. next day: the clock moves a day and 3 campaigns go out in the hour before the run;
3. the day after: another day, 5 new campaigns; the 3 from day 2 have collected opens since.

Per run and side: seconds (inside the subprocess, from creating the client or pipeline to the last file
written; both import pyarrow and pandas first), of which the sandbox spent answering, the whole subprocess's
seconds, HTTP calls (token + list pages + per-campaign stats), rows landed, stats fetched, landed stats that
are stale against the sandbox at that moment (read in-process, not counted) and peak RSS. Asserts that both
sides landed the same campaigns; no timing is asserted.
"""

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from espcore.http import HttpPolicy  # noqa: E402
from espcore.providers.sendpulse import EmailToAdd, SendPulseClient, SendPulseProvider  # noqa: E402
from espcore.sandbox.sendpulse import (  # noqa: E402
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_SENDER_EMAIL,
    DEMO_SENDER_NAME,
    SendPulseSandbox,
)
from espcore.sandbox.server import serve  # noqa: E402
from espcore.sandbox.transport import InProcessTransport  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
READERS = 12  # under SendPulse's moderation threshold (20): campaigns go out after the 5 s copy step
SPACING = timedelta(minutes=43)
DLT_LAG_S = 86400
NO_LIMITER = HttpPolicy(requests_per_second=0)
HTML = "<html><body><p>News</p><a href='https://example.com/news'>Read</a></body></html>"


# -- the server side: sandbox, counting middleware, seeding ----------------------------------------------------


class CountingApp:
    """ASGI middleware: counts the API requests that reach the sandbox (admin calls excluded), and the seconds
    the sandbox spent answering them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()
        self.busy = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/__sandbox"):
            await self.app(scope, receive, send)
            return
        self.calls[kind_of(scope["method"], scope["path"])] += 1
        t = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.busy += time.perf_counter() - t

    def take(self) -> tuple[Counter[str], float]:
        out = self.calls, self.busy
        self.calls, self.busy = Counter(), 0.0
        return out


def kind_of(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if method == "POST" and parts == ["oauth", "access_token"]:
        return "token"
    if method == "GET" and parts == ["campaigns"]:
        return "list"
    if method == "GET" and len(parts) == 2 and parts[0] == "campaigns" and parts[1].isdigit():
        return "stats"
    return "other"


class Account:
    """The sandbox account the bench drives through the API (in-process, so it is never counted)."""

    def __init__(self) -> None:
        # rate limit off (both clients run unpaced); the 4-API-campaigns-an-hour rule lifted for seeding
        self.sandbox = SendPulseSandbox(seed=7, rate_limit=False, campaigns_per_hour=1_000_000)
        self.sandbox.freeze_clock(T0)
        self.sandbox.hook("set_plan", emails_left=10_000_000, maximum_subscribers=10_000)
        self.client = SendPulseClient(
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            "http://127.0.0.1",
            policy=NO_LIMITER,
            transport=InProcessTransport(self.sandbox.app),
        )
        self.book_id = self.client.create_book("Bench readers")
        self.readers = self.sent = 0

    @property
    def now(self) -> datetime:
        return self.sandbox.advance(0)  # the frozen sandbox clock, unchanged

    def top_up(self) -> None:
        """Keep ``READERS`` active readers: new sign-ups replace those who bounced, unsubscribed or complained
        (else, after a few hundred campaigns, nobody is left to mail)."""
        missing = READERS - self.client.get_book(self.book_id).active_email_qty
        if missing > 0:
            fresh = [EmailToAdd(f"reader{self.readers + i}@example.org") for i in range(missing)]
            self.readers += missing
            self.client.add_emails(self.book_id, fresh)
            self.sandbox.advance(1)  # single opt-in: New -> Active

    def send(self, n: int, spacing: timedelta) -> None:
        """``n`` campaigns, one every ``spacing`` of sandbox time (the clock moves on after each)."""
        for _ in range(n):
            self.top_up()
            self.sent += 1
            self.client.create_campaign(
                sender_name=DEMO_SENDER_NAME,
                sender_email=DEMO_SENDER_EMAIL,
                subject=f"Newsletter {self.sent}",
                book_id=self.book_id,
                body_html=HTML,
                name=f"Newsletter {self.sent}",
            )
            self.sandbox.advance(spacing.total_seconds())

    def truth(self) -> dict[str, dict[int, int]]:
        """Every campaign's statistics right now ({code: count}), read in-process."""
        return {
            str(c.id): {s.code: s.count for s in self.client.get_campaign(c.id).statistics}
            for c in self.client.list_campaigns()
        }


# -- the two sides (subprocesses) ------------------------------------------------------------------------------


def run_ours(url: str, root: Path, now: datetime, run_id: str) -> dict[str, Any]:
    from espcore.landing import collect

    t = time.perf_counter()
    provider = SendPulseProvider(SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, url, policy=NO_LIMITER))
    try:
        campaigns = collect.land_campaigns(root, provider, run_id=run_id, now=now)
        stats = collect.land_campaign_stats(root, provider, now.date(), run_id=run_id, now=now)
    finally:
        provider.close()
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "rows": {"campaigns": campaigns.landed.rows, "campaign_stats": stats.landed.rows},
        "stats_fetched": stats.counters["stats_fetched"],
        "client_calls": (campaigns.http_calls or 0) + (stats.http_calls or 0),
    }


def iso_send_date(item: dict[str, Any]) -> dict[str, Any]:
    """SendPulse's ``2026-03-01 09:00:00`` as ``2026-03-01T09:00:00``: dlt's ``lag`` only parses the latter."""
    return {**item, "send_date": str(item["send_date"]).replace(" ", "T")}


def dlt_config(url: str) -> dict[str, Any]:
    """The ``rest_api`` source a dlt user would write for SendPulse's campaigns and their statistics."""
    return {
        "client": {
            "base_url": f"{url}/",
            "auth": {
                "type": "oauth2_client_credentials",
                "access_token_url": f"{url}/oauth/access_token",
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
            },
        },
        "resource_defaults": {"write_disposition": "append", "primary_key": "id"},
        "resources": [
            {
                "name": "campaigns",
                "endpoint": {
                    "path": "campaigns",
                    "data_selector": "$",
                    # SendPulse pages with limit (<= 100) and offset and gives no total: stop on an empty page
                    "paginator": {"type": "offset", "limit": 100, "total_path": None},
                    "incremental": {
                        "cursor_path": "send_date",
                        "initial_value": "2000-01-01T00:00:00",
                        "lag": DLT_LAG_S,
                    },
                },
                "processing_steps": [{"map": iso_send_date}],
            },
            {
                "name": "campaign_stats",
                "endpoint": {
                    "path": "campaigns/{resources.campaigns.id}",
                    "data_selector": "$",
                    "paginator": "single_page",
                },
            },
        ],
    }


def run_dlt(url: str, root: Path, run_id: str) -> dict[str, Any]:
    dlt: Any = importlib.import_module("dlt")
    rest_api: Any = importlib.import_module("dlt.sources.rest_api")

    t = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name="sendpulse_bench",
        pipelines_dir=str(root / "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=str(root / "lake")),
        dataset_name="sendpulse",
    )
    pipeline.run(rest_api.rest_api_source(dlt_config(url), name="sendpulse"), loader_file_format="parquet")
    seconds = time.perf_counter() - t
    counts: dict[str, int] = dict(pipeline.last_trace.last_normalize_info.row_counts)
    return {
        "seconds": seconds,
        "rows": {k: v for k, v in counts.items() if not k.startswith("_dlt")},
        "stats_fetched": counts.get("campaign_stats", 0),
    }


def peak_rss_mib() -> float:
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss``, not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(side: str, url: str, root: str, now: str, run_id: str) -> None:
    # Both sides write Parquet with pyarrow, which pulls pandas in lazily for timestamps: import both before the
    # clock starts, so neither side is timed for them. Anything else a side imports while it runs is timed.
    importlib.import_module("pyarrow.parquet")
    importlib.import_module("pandas")
    if side == "ours":
        out = run_ours(url, Path(root), datetime.fromisoformat(now), run_id)
    else:
        out = run_dlt(url, Path(root), run_id)
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


# -- reading what each side landed -----------------------------------------------------------------------------


def landed_ours(root: Path, day: str) -> dict[str, dict[int, int]]:
    """Our ``campaign_stats`` file of the day: campaign id -> {code: count} (from the ``extra`` column)."""
    import pyarrow.parquet as pq

    path = root / "dataset=campaign_stats" / "provider=sendpulse" / f"date={day}" / "data.parquet"
    rows = pq.read_table(path, columns=["campaign_id", "extra"]).to_pylist()
    return {
        r["campaign_id"]: {int(k.removeprefix("code_")): v for k, v in json.loads(r["extra"] or "{}").items()}
        for r in rows
    }


def landed_dlt(root: Path) -> dict[str, dict[int, int]]:
    """dlt's newest ``campaign_stats`` row per campaign, with its nested ``statistics`` rows."""
    import duckdb

    base = root / "lake" / "sendpulse"
    parents = f"read_parquet('{base}/campaign_stats/*.parquet')"
    children = f"read_parquet('{base}/campaign_stats__statistics/*.parquet')"
    sql = f"""
        WITH latest AS (
            SELECT id, _dlt_id FROM {parents}
            QUALIFY row_number() OVER (PARTITION BY id ORDER BY _dlt_load_id DESC) = 1
        )
        SELECT latest.id, s.code, s.count FROM latest LEFT JOIN {children} s ON s._dlt_parent_id = latest._dlt_id
    """
    out: dict[str, dict[int, int]] = {}
    with duckdb.connect() as con:
        for cid, code, count in con.execute(sql).fetchall():
            stats = out.setdefault(str(cid), {})
            if code is not None:
                stats[int(code)] = int(count)
    return out


def stale(landed: dict[str, dict[int, int]], truth: dict[str, dict[int, int]]) -> int:
    """Campaigns whose landed statistics differ from the sandbox's (a missing campaign counts as stale)."""
    return sum(1 for cid, stats in truth.items() if landed.get(cid) != stats)


# -- the benchmark ---------------------------------------------------------------------------------------------


def measure(side: str, url: str, root: Path, now: datetime, run_id: str, counter: CountingApp) -> dict[str, Any]:
    """One side's run in a fresh subprocess; the HTTP calls are what the server counted meanwhile."""
    counter.take()
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(root / "dlt_home")}
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", side, url, str(root), now.isoformat(), run_id],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"{side} failed (exit {proc.returncode})")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    calls, busy = counter.take()
    out.update(process_seconds=wall, calls=dict(calls), server_seconds=busy)
    return out


@contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="landing_bench-"))
    try:
        yield base
    finally:
        if keep:
            print(f"\nkept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def median_of(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The last trial, with the median of each timing over all trials (and the seconds of each)."""
    out = dict(trials[-1])
    for key in ("seconds", "server_seconds", "process_seconds"):
        out[key] = statistics.median(r[key] for r in trials)
    out["trials"] = [r["seconds"] for r in trials]
    return out


def warm_up(url: str) -> None:
    """One pass over every campaign, so that no side meets a cold server (not counted: each measurement
    starts from a reset counter)."""
    client = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, url, policy=NO_LIMITER)
    try:
        for c in client.list_campaigns():
            client.get_campaign(c.id)
    finally:
        client.close()


def calls(r: dict[str, Any], kind: str | None = None) -> int:
    return sum(r["calls"].values()) if kind is None else r["calls"].get(kind, 0)


def rows(r: dict[str, Any]) -> int:
    return r["rows"].get("campaigns", 0) + r["rows"].get("campaign_stats", 0)


Run = tuple[str, dict[str, Any], dict[str, Any], int, dict[str, int]]


def report(runs: list[Run]) -> None:
    print()
    cols = f"{'run':<15} {'side':<5} {'seconds':>8} {'server s':>8} {'process s':>9} {'HTTP calls':>10}"
    cols += f" {'= token + pages + stats':>24}"
    print(f"{cols} {'rows landed':>11} {'stats fetched':>13} {'stale':>5} {'peak MiB':>8}")
    for label, ours, theirs, _, _ in runs:
        for side, r in (("ours", ours), ("dlt", theirs)):
            split = f"{calls(r, 'token')} + {calls(r, 'list')} + {calls(r, 'stats'):,}"
            if calls(r, "other"):
                split += f" + {calls(r, 'other')} other"
            print(
                f"{label:<15} {side:<5} {r['seconds']:>8.2f} {r['server_seconds']:>8.2f} {r['process_seconds']:>9.2f}"
                f" {calls(r):>10,} {split:>24}"
                f" {rows(r):>11,} {r['stats_fetched']:>13,} {r['stale']:>5} {r['peak_rss_mib']:>8.0f}"
            )
        print(
            f"{'':<15} ratio dlt/ours: {theirs['seconds'] / ours['seconds']:.2f}x seconds, "
            f"{calls(theirs) / max(calls(ours), 1):.2f}x HTTP calls"
        )
    (_, o1, d1, n1, _), (_, o2, _, _, _), (_, o3, d3, _, changed) = runs
    ratio = d1["seconds"] / o1["seconds"]
    spread = ", ".join(f"{d / o:.2f}" for o, d in zip(o1["trials"], d1["trials"], strict=True))
    print(
        f"\nfull run, {n1:,} campaigns with stats (median of {len(o1['trials'])} trials): ours {o1['seconds']:.2f} s, "
        f"dlt {d1['seconds']:.2f} s: ours {ratio:.2f}x faster (target >= 2x: {'met' if ratio >= 2 else 'NOT met'}; "
        f"per trial {spread}); HTTP calls {calls(o1):,} vs {calls(d1):,}"
    )
    print(
        f"incremental re-run (day 3): {changed['new'] + changed['moved']} campaigns changed since day 2 "
        f"({changed['new']} new, {changed['moved']} with stats that moved); ours {calls(o3)} calls = "
        f"{calls(o3, 'token')} token + {calls(o3, 'list')} list pages + {calls(o3, 'stats')} stats, "
        f"dlt {calls(d3)} calls = {calls(d3, 'token')} + {calls(d3, 'list')} + {calls(d3, 'stats')}"
    )
    print("\nnotes:")
    print(
        "- seconds: in the side's subprocess, client/pipeline creation to last file written (imports excluded); "
        "server s: of which the sandbox spent answering (same server for both); process s: the whole "
        "subprocess, interpreter start and imports included. HTTP calls counted on the server. stale: landed "
        "stats that differ "
        "from the sandbox's at that moment (dlt: its newest row per campaign)."
    )
    print(
        f"- ours lists the campaigns once per run ({calls(o1, 'list')} pages): the stats landing reuses the listing "
        "the campaigns landing made moments before. A finished campaign sent more than a day before a fetch is "
        "settled by that fetch (else by two identical fetches in a row) and carried forward without a call until "
        f"a weekly re-check; so each re-run reads the new campaigns and those sent within the last day "
        f"(day 2: {calls(o2, 'stats'):,} stats calls; day 3: {calls(o3, 'stats'):,})."
    )
    print(
        f"- dlt (configured incremental): cursor send_date with lag {DLT_LAG_S // 3600} h, so campaigns sent "
        f"within a day of the newest seen are re-read; SendPulse's 'YYYY-MM-DD HH:MM:SS' is mapped to ISO 8601 "
        f"first (dlt's lag does not parse it). The dependent stats resource follows the filtered list. "
        f"2 tokens a run (one OAuth client per resource); pages until an empty page; nested statistics land in "
        f"campaign_stats__statistics ({d1['rows'].get('campaign_stats__statistics', 0):,} rows in the full run)."
    )
    print(
        "- rows landed: ours writes a full snapshot each run (unchanged stats carried forward without a call); "
        "dlt appends the rows it re-read."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--campaigns", type=int, default=1000, help="sent campaigns in the seeded account")
    ap.add_argument("--trials", type=int, default=5, help="full-run trials per side (median reported)")
    ap.add_argument("--keep", action="store_true", help="keep the landed files (temp dir) for a look")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    try:
        dlt_version = importlib.metadata.version("dlt")  # not imported here: this process serves the sandbox
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("dlt is not installed: uv run --group bench python bench/landing_bench.py") from None

    t = time.perf_counter()
    account = Account()
    account.send(args.campaigns, SPACING)
    print(
        f"seeded {args.campaigns:,} sent campaigns of {READERS} recipients in {time.perf_counter() - t:.1f} s; "
        f"sandbox clock {account.now:%Y-%m-%d %H:%M} UTC"
    )
    counter = CountingApp(account.sandbox.app)
    days: list[tuple[str, Callable[[], object]]] = [
        ("1 full", lambda: None),
        ("2 next day", lambda: (account.sandbox.advance(86400 - 3600), account.send(3, timedelta(minutes=20)))),
        ("3 day after", lambda: (account.sandbox.advance(86400 - 3600), account.send(5, timedelta(minutes=12)))),
    ]
    runs: list[Run] = []
    before: dict[str, dict[int, int]] = {}
    with serve(counter) as server, workdir(args.keep) as base:
        print(
            f"sandbox on {server.url} (in memory, requests counted in front of it); dlt {dlt_version}; "
            "rate limits off on both sides (sandbox rate_limit=False, ours requests_per_second=0, dlt has none)"
        )
        warm_up(server.url)
        gc.freeze()  # the seeded account is long-lived: keep the server's collections short and even
        ours_root, dlt_root = base / "ours", base / "dlt"
        for i, (label, change) in enumerate(days):
            change()
            now = account.now
            truth = account.truth()
            if i == 0:  # the full run: several trials from scratch, sides alternating first; the last one stays
                trials: dict[str, list[dict[str, Any]]] = {"ours": [], "dlt": []}
                for k in range(args.trials):
                    last = k == args.trials - 1
                    for side in ("ours", "dlt") if k % 2 == 0 else ("dlt", "ours"):
                        root = base / side if last else base / f"trial{k}-{side}"
                        root.mkdir()
                        trials[side].append(measure(side, server.url, root, now, f"run-{i}", counter))
                        if not last:
                            shutil.rmtree(root)
                    assert trials["ours"][-1]["calls"] == trials["ours"][0]["calls"]
                ours, theirs = median_of(trials["ours"]), median_of(trials["dlt"])
            else:
                ours = measure("ours", server.url, ours_root, now, f"run-{i}", counter)
                theirs = measure("dlt", server.url, dlt_root, now, f"run-{i}", counter)
            got_ours = landed_ours(ours_root, now.date().isoformat())
            got_dlt = landed_dlt(dlt_root)
            # both sides hold every campaign, the same ones
            assert set(got_ours) == set(got_dlt) == set(truth), (len(got_ours), len(got_dlt), len(truth))
            ours["stale"], theirs["stale"] = stale(got_ours, truth), stale(got_dlt, truth)
            changed = {
                "new": sum(1 for cid in truth if cid not in before),
                "moved": sum(1 for cid, s in truth.items() if cid in before and before[cid] != s),
            }
            runs.append((label, ours, theirs, len(truth), changed))
            before = truth
    _, ours, theirs, n, _ = runs[0]
    for dataset in ("campaigns", "campaign_stats"):  # the full run: the same number of rows on both sides
        assert ours["rows"][dataset] == theirs["rows"][dataset] == n, (dataset, ours["rows"], theirs["rows"])
    report(runs)


if __name__ == "__main__":
    main()
