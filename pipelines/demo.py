"""The demo: the main job on its own DuckDB warehouse and the three providers' sandboxes, then a summary.

    uv run python -m pipelines.demo [--data-dir DIR]

The demo is its own code path. It builds its demo warehouse (customers and segment views) in its own data
folder (``--data-dir``, else ``ESP_DATA_DIR``, else ``data/``) and always runs every provider on its embedded
loopback sandbox; provider credentials, ``ESP_WAREHOUSE_URL`` and the other production variables in the
environment are ignored (it says so in one line). Runs are recorded in ``<data>/dagster_home`` so the Dagster
UI shows them; sandbox accounts persist in ``<data>/sandbox``, so a second run writes nothing and launches nothing.

The terminal gets a summary only: every Dagster event of the run (DEBUG included) goes to
``<data>/logs/<run id>.log``, whose path is printed before the run starts. The summary is computed from the run's
materialisations and check results, and from the second run on it compares them with the previous run of the
job in the same data folder and explains each number that moved, with facts read from the warehouse's sync state
and the landed files.
"""

import argparse
import logging
import os
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""

#: production settings the demo never uses
IGNORED_ENV = (
    "SENDPULSE_CLIENT_ID",
    "SENDPULSE_CLIENT_SECRET",
    "PAKAT_API_KEY",
    "LITESTARTUP_API_KEY",
    "ESP_WAREHOUSE_URL",
    "ESP_WAREHOUSE_SCHEMA",
    "ESP_LAKE_ROOT",
    "ESP_SANDBOX_DIR",
    "ESP_DECLARATIONS",
)

JOB = "main"
#: the format of Dagster's own console log, without its colours
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
#: landed datasets in the order the summary lists them (snapshots, then the daily datasets)
DATASET_ORDER = ("balances", "campaigns", "blacklist", "book_members", "campaign_stats", "delivery_events")
#: the column a moved row count of a landed file is broken down by
BREAKDOWN = {
    "blacklist": "reason",
    "book_members": "state",
    "campaigns": "state",
    "campaign_stats": "state",
    "delivery_events": "status",
}
WIDTH = 116  # explanation lines wrap here


def default_data_dir() -> Path:
    return Path(os.environ.get("ESP_DATA_DIR") or ROOT / "data")


def prepare_home(data: Path) -> Path:
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.demo",
        description="Run the main job on the demo: a DuckDB warehouse built in the demo's own data folder and the "
        "three providers' sandboxes (emulators on 127.0.0.1; no real provider is contacted, whatever credentials "
        "the environment holds). Prints a summary (the run's full event log goes to a file under the data "
        "folder); a second run writes nothing and launches nothing, and explains every number that moved.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the demo's data folder (default: $ESP_DATA_DIR, else data/ in the project)",
    )
    return parser.parse_args(argv)


def shown(path: Path | str, folder: bool = False) -> str:
    """A path as the summary prints it: relative to the working directory when inside it."""
    p = Path(path)
    try:
        text = str(p.relative_to(Path.cwd()))
    except ValueError:
        text = str(p)
    return text + "/" if folder else text


def run_log_file_logger() -> Any:
    """A Dagster logger appending every event of the run, DEBUG included, to the file its config names."""
    import dagster as dg

    @dg.logger(config_schema={"path": str}, description="Every event of the run, DEBUG included, to a file.")
    def run_log_file(init_context: Any) -> logging.Logger:
        target = Path(init_context.logger_config["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        log = logging.Logger("dagster", level=logging.DEBUG)  # not registered: the terminal never sees it
        handler = logging.FileHandler(target, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        log.addHandler(handler)
        return log

    return run_log_file


#: each launch reads its campaign until the provider finishes sending, up to this long (one look by default):
#: a sandbox campaign to the demo's books is sent within seconds, so the summary shows where it ended
DEMO_POLL = {"poll_timeout_s": 4.0, "poll_interval_s": 1.0}


def launch_polls(job: Any) -> dict[str, Any]:
    """Run config for the job's campaign launch steps (``<account>__campaigns__<name>``): :data:`DEMO_POLL`."""
    return {name: {"config": dict(DEMO_POLL)} for name in job.graph.node_dict if "__campaigns__" in name}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = (args.data_dir or default_data_dir()).resolve()
    ignored = [name for name in IGNORED_ENV if os.environ.get(name)]
    if ignored:
        print(f"demo: ignoring {', '.join(ignored)} (the demo always uses its own warehouse and the sandboxes)")
    prepare_home(data)
    import dagster as dg

    from esp_warehouse.automation import landing_day
    from pipelines.demo_location import build_demo_location

    location = build_demo_location(data)
    sandboxes = sorted(
        name for name, res in (location.defs.resources or {}).items() if getattr(res, "sandbox_state", None)
    )
    run_id = str(uuid.uuid4())
    log_path = data / "logs" / f"{run_id}.log"
    # the run's only logger is the file: Dagster's console logger is not configured, so the terminal stays quiet
    defs = dg.Definitions.merge(location.defs, dg.Definitions(loggers={"run_log_file": run_log_file_logger()}))
    job = defs.resolve_job_def(JOB)
    day = landing_day(datetime.now(UTC))  # the main job is partitioned by day (the daily stats and events)
    print(f"demo: data folder {shown(data, folder=True)}")
    print(
        f"demo: sandboxes on 127.0.0.1 for {', '.join(sandboxes)} (state in {shown(data / 'sandbox', True)}): "
        "no real provider is contacted"
    )
    print(f"demo: running job {JOB}, partition {day} (the full event log: {shown(log_path)})")
    sys.stdout.flush()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config={"loggers": {"run_log_file": {"config": {"path": str(log_path)}}}, "ops": launch_polls(job)},
            instance=instance,
            raise_on_error=False,
            partition_key=day,
            run_id=run_id,
        )
        now = summary_of(
            result.run_id,
            result.success,
            day,
            [(e.materialization.asset_key, e.materialization.metadata) for e in materializations(result)],
            [(c.asset_key, c.check_name, c.passed, c.severity.value, c.description) for c in checks_of(result)],
        )
        before = previous_summary(instance, run_id)
    print()
    for line in render(now, data):
        print(line)
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_key:
                print(f"  failed step {event.step_key}: {failure_message(event)}")
        print(f"  the run's event log: {shown(log_path)}")
    print()
    for line in render_changes(before, now, Facts(data)):
        print(line)
    return 0 if result.success else 1


def materializations(result: Any) -> list[Any]:
    return [e for e in result.get_asset_materialization_events() if e.materialization is not None]


def checks_of(result: Any) -> list[Any]:
    return list(result.get_asset_check_evaluations())


# -- what a run did ----------------------------------------------------------------------------------------------


@dataclass
class SyncLine:
    key: str
    account: str
    book_id: str
    planned: tuple[int, int, int]
    synced: tuple[int, int, int]
    write_calls: int
    invalid: int
    failed: int
    suppressed: int
    book_rows: int
    pending: int
    outcome: str
    rejects_path: str = ""

    @property
    def rejected(self) -> int:
        return self.invalid + self.failed


@dataclass
class CampaignLine:
    key: str
    account: str
    book_id: str = ""
    occurrence: str = ""
    blocked_by: str = ""
    action: str = ""
    campaign_id: str = ""
    status: str = ""
    provider_status: str = ""
    recipients: int | None = None
    notes: str = ""


@dataclass
class LandedFile:
    account: str
    dataset: str
    rows: int
    path: str


@dataclass
class Check:
    key: str
    name: str
    passed: bool
    severity: str
    description: str


@dataclass
class Summary:
    run_id: str
    success: bool
    partition: str
    started: datetime | None = None
    segments: dict[str, int] = field(default_factory=dict)
    others: dict[str, str] = field(default_factory=dict)  # any other asset: its row count, or "-"
    syncs: dict[str, SyncLine] = field(default_factory=dict)
    campaigns: dict[str, CampaignLine] = field(default_factory=dict)
    landed: dict[tuple[str, str], LandedFile] = field(default_factory=dict)
    views: list[str] | None = None
    views_db: str = ""
    views_skipped: str = ""
    checks: list[Check] = field(default_factory=list)


def plain(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _int(md: Mapping[str, Any], key: str) -> int:
    return int(md.get(key) or 0)


def _campaign_name(key: Sequence[str]) -> str:
    return "/".join([key[0], "campaigns", *key[2:]])  # a guard and its launch share one line


def summary_of(
    run_id: str,
    success: bool,
    partition: str,
    mats: Iterable[tuple[Any, Mapping[str, Any]]],
    checks: Iterable[tuple[Any, str, bool, str, str | None]],
) -> Summary:
    """A run's summary from its materialisations (asset key, metadata) and check evaluations."""
    s = Summary(run_id, success, partition)
    for asset_key, metadata in mats:
        path = list(asset_key.path)
        key = "/".join(path)
        md = plain(metadata)
        if "planned_add" in md:
            s.syncs[key] = SyncLine(
                key=key,
                account=path[0],
                book_id=str(md.get("book_id") or ""),
                planned=(_int(md, "planned_add"), _int(md, "planned_change"), _int(md, "planned_remove")),
                synced=(_int(md, "successful_add"), _int(md, "successful_change"), _int(md, "successful_remove")),
                write_calls=_int(md, "write_calls"),
                invalid=_int(md, "invalid"),
                failed=_int(md, "failed_add") + _int(md, "failed_change") + _int(md, "failed_remove"),
                suppressed=_int(md, "suppressed"),
                book_rows=_int(md, "dagster/row_count"),
                pending=_int(md, "pending"),
                outcome=str(md.get("outcome", "")),
                rejects_path=str(md.get("rejects_path") or ""),
            )
        elif "blocked_by" in md:
            line = s.campaigns.setdefault(_campaign_name(path), CampaignLine(_campaign_name(path), path[0]))
            line.book_id = str(md.get("book_id") or "")
            line.occurrence = str(md.get("occurrence", ""))
            line.blocked_by = str(md["blocked_by"])
        elif "action" in md and "campaign_key" in md:
            line = s.campaigns.setdefault(key, CampaignLine(key, path[0]))
            line.action = str(md["action"])
            line.campaign_id = str(md.get("provider_campaign_id", ""))
            line.status = str(md.get("status", ""))
            line.provider_status = str(md.get("provider_status", ""))
            line.recipients = int(md["recipients"]) if md.get("recipients") is not None else None
            line.notes = str(md.get("notes", ""))
        elif "path" in md and path[0] == "lake" and len(path) == 3:
            s.landed[(path[1], path[2])] = LandedFile(path[1], path[2], _int(md, "dagster/row_count"), str(md["path"]))
        elif "views" in md:
            s.views = [str(v) for v in md["views"] or []]
            s.views_db = str(md.get("duckdb_path", ""))
            s.views_skipped = str(md.get("skipped") or "")
        elif path[0] == "warehouse":
            s.segments[key] = _int(md, "dagster/row_count")
        else:
            s.others[key] = str(md["dagster/row_count"]) if "dagster/row_count" in md else "-"
    for asset_key, name, passed, severity, description in checks:
        s.checks.append(Check("/".join(asset_key.path), name, passed, str(severity), description or ""))
    return s


def previous_summary(instance: Any, current_run_id: str) -> Summary | None:
    """The summary of the newest earlier run of the job in this instance that finished, or None."""
    import dagster as dg

    finished = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
    for record in instance.get_run_records(filters=dg.RunsFilter(job_name=JOB, statuses=finished), limit=5):
        run = record.dagster_run
        if run.run_id == current_run_id:
            continue
        mats = []
        for rec in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
        ).records:
            mat = rec.event_log_entry.asset_materialization
            if mat is not None:
                mats.append((mat.asset_key, mat.metadata))
        checks = []
        for rec in instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
        ).records:
            ev = rec.event_log_entry.dagster_event
            data = ev.event_specific_data if ev is not None else None
            if data is not None:
                checks.append((data.asset_key, data.check_name, data.passed, data.severity.value, data.description))
        s = summary_of(
            run.run_id, run.status == dg.DagsterRunStatus.SUCCESS, run.tags.get("dagster/partition", ""), mats, checks
        )
        s.started = datetime.fromtimestamp(record.start_time, UTC) if record.start_time else None
        return s
    return None


# -- printing ----------------------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """A plain text table: the first column left-aligned under the section title, the others as ``right`` says."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for n, row in enumerate([header, *rows]):
        cells = []
        for i, cell in enumerate(row):
            width = widths[i] + (2 if i == 0 and n == 0 else 0)
            cells.append(str(cell).rjust(widths[i]) if right[i] and i else str(cell).ljust(width))
        first = cells[0] if n == 0 else "  " + cells[0]
        out.append("  ".join([first, *cells[1:]]).rstrip())
    return out


def ops(t: tuple[int, int, int]) -> str:
    return f"+{t[0]} ~{t[1]} -{t[2]}"


def render(s: Summary, data: Path) -> list[str]:
    out = [f"run {s.run_id} (job {JOB}, partition {s.partition}): {'SUCCESS' if s.success else 'FAILED'}"]
    if s.segments:
        out += ["", *table(["demo warehouse", "rows"], [[k, str(v)] for k, v in s.segments.items()], [False, True])]
    if s.others:
        out += ["", *table(["other assets", "rows"], [[k, v] for k, v in sorted(s.others.items())], [False, True])]
    if s.syncs:
        header = ["syncs", "planned", "synced", "write calls", "rejected", "suppressed", "book rows"]
        rows = [
            [
                k,
                ops(v.planned),
                ops(v.synced),
                str(v.write_calls),
                str(v.rejected),
                str(v.suppressed),
                str(v.book_rows),
            ]
            for k, v in sorted(s.syncs.items())
        ]
        out += ["", *table(header, rows, [False, False, False, True, True, True, True])]
        out.append("  +add ~change -remove; write calls: the API calls that wrote to the provider")
        out.append(
            "  suppressed: the provider will not mail them (its status wins); book rows: the rows held as synced"
        )
        for v in sorted(s.syncs.values(), key=lambda v: v.key):
            if v.rejects_path:
                out.append(f"  rejected rows, each with its reason: {shown(Path(v.rejects_path).parent, True)}")
            if v.outcome == "partial":
                out.append(f"  {v.key} PARTIAL: {v.pending} rows pending, retried by the next run")
    if s.campaigns:
        header = ["campaigns", "provider", "launch", "campaign id", "status", "recipients", "occurrence"]
        rows = [
            [
                k.rsplit("/", 1)[-1],
                c.account,
                c.action or "none",
                c.campaign_id or "-",
                c.status or "-",
                str(c.recipients) if c.recipients is not None else "-",
                c.occurrence or "-",
            ]
            for k, c in sorted(s.campaigns.items())
        ]
        out += ["", *table(header, rows, [False, False, False, False, False, True, False])]
        blocked = [(k, c.blocked_by) for k, c in sorted(s.campaigns.items()) if c.blocked_by != "nothing"]
        if not blocked:
            out.append("  guards: all passed; a campaign launches once per occurrence (the launch ledger's key)")
        for k, why in blocked:
            out.append(f"  guards of {k.rsplit('/', 1)[-1]}: {f'blocked by {why}' if why else 'did not run'}")
    if s.landed:
        accounts = sorted({a for a, _ in s.landed})
        datasets = [d for d in DATASET_ORDER if any(d == ds for _, ds in s.landed)]
        datasets += sorted({ds for _, ds in s.landed} - set(datasets))
        rows = [[d, *(str(s.landed[(a, d)].rows) if (a, d) in s.landed else "-" for a in accounts)] for d in datasets]
        out += ["", *table(["landed rows", *accounts], rows, [False, *[True] * len(accounts)])]
        patterns = {
            f.path.replace(f"dataset={f.dataset}", "dataset=<dataset>").replace(
                f"provider={f.account}", "provider=<provider>"
            )
            for f in s.landed.values()
        }
        if "-" in [cell for row in rows for cell in row]:
            out.append("  -: not a dataset of that provider")
        if len(patterns) == 1:
            out.append(f"  files: {shown(patterns.pop())}")
        else:
            out += [f"  {a}/{d}: {shown(f.path)}" for (a, d), f in sorted(s.landed.items())]
    if s.views:
        schema = s.views[0].split(".")[0]
        out.append(f"  views: {schema}.lake_<dataset> and {schema}.lake_<dataset>_latest in {shown(s.views_db)}")
    elif s.views is not None:
        out.append(f"  views: none created{f' ({s.views_skipped})' if s.views_skipped else ''}")
    failed = [c for c in s.checks if not c.passed]
    out += ["", f"checks: {len(s.checks) - len(failed)} passed, {len(failed)} failed"]
    for c in failed:
        why = f": {c.description}" if c.description else ""
        out.append(f"  {c.key}:{c.name} FAILED ({c.severity}){why}")
    return out


# -- what moved, and why -----------------------------------------------------------------------------------------


class Facts:
    """What the warehouse's sync state and the landed files say, to explain a number that moved."""

    def __init__(self, data: Path) -> None:
        self.db = data / "warehouse.duckdb"

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import duckdb

        try:
            with duckdb.connect(str(self.db), read_only=True) as con:
                return con.execute(sql, list(params)).fetchall()
        except duckdb.Error:
            return []  # no warehouse or no lake views (a failed run): the explanation says less

    def suppressed(self, account: str, book_id: str) -> list[tuple[str, int]]:
        """The book's suppressed rows by the provider's status."""
        return [
            (str(status), int(n))
            for status, n in self.query(
                "SELECT coalesce(provider_status, 'unknown'), count(*) FROM esp.sync_state "
                "WHERE provider = ? AND book_id = ? AND status = 'suppressed' GROUP BY 1 ORDER BY 2 DESC, 1",
                [account, book_id],
            )
        ]

    def bounced(self, account: str, emails_sql: str, params: Sequence[Any]) -> list[tuple[str, str, int]]:
        """(campaign, provider status, count) of the landed delivery records that bounced, for the addresses."""
        return [
            (str(c), str(st), int(n))
            for c, st, n in self.query(
                "SELECT coalesce(campaign_id, '-'), coalesce(provider_status, status), count(*) "
                "FROM esp.lake_delivery_events_latest "
                f"WHERE provider = ? AND status = 'bounced' AND lower(email) IN ({emails_sql}) "
                "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
                [account, *params],
            )
        ]

    def suppressed_bounces(self, account: str, book_id: str) -> list[tuple[str, str, int]]:
        emails = "SELECT pk FROM esp.sync_state WHERE provider = ? AND book_id = ? AND status = 'suppressed'"
        return self.bounced(account, emails, [account, book_id])

    def file_breakdown(self, path: str, column: str) -> list[tuple[str, int]]:
        import pyarrow.parquet as pq

        try:
            values = pq.read_table(path, columns=[column]).column(column).to_pylist()
        except (OSError, KeyError, ValueError):
            return []
        return sorted(Counter(str(v) for v in values).items(), key=lambda kv: (-kv[1], kv[0]))

    def blacklist_bounces(self, account: str, path: str) -> list[tuple[str, str, int]]:
        emails = "SELECT lower(email) FROM read_parquet(?)"
        return self.bounced(account, emails, [path])


def counts(items: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {n}" for name, n in items)


def bounces(items: Sequence[tuple[str, str, int]]) -> str:
    """``2 of them bounced in campaign X (bounce:hard 2)`` from (campaign, status, count) rows."""
    by_campaign: dict[str, list[tuple[str, int]]] = {}
    for campaign, status, n in items:
        by_campaign.setdefault(campaign, []).append((status, n))
    where = "; ".join(f"in campaign {c} ({counts(st)})" for c, st in by_campaign.items())
    return f"{sum(n for _, _, n in items)} of them bounced {where}"


def moved(label: str, old: object, new: object) -> str | None:
    return f"{label} {old} → {new}" if old != new else None


def sync_changes(old: SyncLine, new: SyncLine, facts: Facts) -> tuple[list[str], list[str]]:
    provider = new.account
    what = [
        m
        for m in (
            moved("planned", ops(old.planned), ops(new.planned)),
            moved("synced", ops(old.synced), ops(new.synced)),
            moved("write calls", old.write_calls, new.write_calls),
            moved("rejected", old.rejected, new.rejected),
            moved("suppressed", old.suppressed, new.suppressed),
            moved("book rows", old.book_rows, new.book_rows),
        )
        if m
    ]
    why: list[str] = []
    if (old.planned, old.synced, old.write_calls) != (new.planned, new.synced, new.write_calls):
        if not any(new.planned) and not new.write_calls:
            why.append(
                "the book already holds the segment as it is (the sync state remembers what was sent): no write call"
            )
        else:
            why.append(
                f"the plan is what differs between the segment and the book's sync state now: {new.planned[0]} to "
                f"add, {new.planned[1]} to change, {new.planned[2]} to remove; {sum(new.synced)} acknowledged by "
                f"{provider} in {new.write_calls} write calls"
            )
    if old.rejected != new.rejected:
        why.append(
            f"rejected: {new.invalid} rows invalid in the segment and {new.failed} refused by {provider} in this run "
            "(each with its reason in the lake's sync_rejects)"
        )
    if old.suppressed != new.suppressed:
        text = f"{provider} will not mail {new.suppressed} of the segment's addresses now"
        statuses = facts.suppressed(provider, new.book_id)
        if statuses:
            text += f" ({counts(statuses)})"
        bounced = facts.suppressed_bounces(provider, new.book_id)
        if bounced:
            text += f"; {bounces(bounced)}"
        why.append(text + ". The provider's status wins: the sync never subscribes them again")
    if old.book_rows != new.book_rows:
        grew = new.suppressed - old.suppressed
        if grew and new.book_rows - old.book_rows == -grew:
            if grew == 1:
                why.append("the newly suppressed address no longer counts as a synced row of the book")
            else:
                why.append(f"the {grew} newly suppressed addresses no longer count as synced rows of the book")
        else:
            why.append("book rows: the book's rows the sync state holds as synced")
    return what, why


def campaign_changes(
    old: CampaignLine, new: CampaignLine, syncs: tuple[Summary, Summary]
) -> tuple[list[str], list[str]]:
    provider = new.account
    what = [
        m
        for m in (
            moved("occurrence", old.occurrence, new.occurrence),
            moved("guards", old.blocked_by, new.blocked_by),
            moved("launch", old.action or "none", new.action or "none"),
            moved("campaign", old.campaign_id or "-", new.campaign_id or "-"),
            moved("status", old.status or "-", new.status or "-"),
            moved("recipients", old.recipients, new.recipients),
        )
        if m
    ]
    why: list[str] = []
    if old.occurrence != new.occurrence:
        why.append(f"a new occurrence of its schedule ({new.occurrence}): a new launch key")
    if old.blocked_by != new.blocked_by:
        why.append(f"the guards now report: {'all passed' if new.blocked_by == 'nothing' else new.blocked_by}")
    if (old.action, old.campaign_id) != (new.action, new.campaign_id):
        if new.action == "noop" and new.campaign_id == old.campaign_id:
            why.append(f"the launch ledger holds it as sent: nothing posted, the same campaign {new.campaign_id}")
        else:
            why.append(f"the launch {new.action or 'did not run'}" + (f": {new.notes}" if new.notes else ""))
    if old.status != new.status:
        why.append(f"{provider} reports the campaign {new.status} now (its own status: {new.provider_status})")
    if old.recipients != new.recipients:
        text = f"the recipients {provider} reports for the campaign now"
        before, after = syncs
        book = [
            (before.syncs[k], after.syncs[k])
            for k in after.syncs
            if k in before.syncs and after.syncs[k].account == provider and after.syncs[k].book_id == new.book_id
        ]
        for b, a in book:
            if a.book_rows - b.book_rows == (new.recipients or 0) - (old.recipients or 0):
                text += f", like its book's synced rows ({a.key} {b.book_rows} → {a.book_rows})"
        why.append(text)
    return what, why


def landed_changes(old: LandedFile, new: LandedFile, facts: Facts) -> tuple[list[str], list[str]]:
    what = [f"rows {old.rows} → {new.rows}"] if old.rows != new.rows else []
    why: list[str] = []
    if what:
        text = f"{new.account}'s {new.dataset} now holds {new.rows} row{'' if new.rows == 1 else 's'}"
        column = BREAKDOWN.get(new.dataset)
        breakdown = facts.file_breakdown(new.path, column) if column and new.rows else []
        if breakdown:
            text += f" (by {column}: {counts(breakdown)})"
        if new.dataset == "blacklist" and new.rows:
            bounced = facts.blacklist_bounces(new.account, new.path)
            if bounced:
                text += f"; {bounces(bounced)}"
        why.append(text)
    return what, why


def explained(key: str, what: list[str], why: list[str]) -> list[str]:
    if not what:
        return []
    out = [f"  {key}: {what[0]}"]
    for item in what[1:]:  # wrapped between the moves, never inside one
        if len(out[-1]) + len(item) + 2 > WIDTH:
            out[-1] += ","
            out.append(f"      {item}")
        else:
            out[-1] += f", {item}"
    for reason in why:
        out += textwrap.wrap(reason, WIDTH, initial_indent="    ", subsequent_indent="      ")
    return out


def render_changes(before: Summary | None, now: Summary, facts: Facts) -> list[str]:
    if before is None:
        return textwrap.wrap(
            f"first run of job {JOB} in this data folder: nothing to compare with yet. Run it again: it writes and "
            "launches nothing, and says which numbers moved and why.",
            WIDTH,
        )
    started = f" (started {before.started:%Y-%m-%d %H:%M} UTC)" if before.started else ""
    lines: list[str] = []
    for key in now.segments:
        if key in before.segments:
            lines += explained(
                key,
                [m for m in [moved("rows", before.segments[key], now.segments[key])] if m],
                ["the demo warehouse is rebuilt by every run; this is its row count now"],
            )
    for key in sorted(now.others):
        if key in before.others:
            lines += explained(
                key,
                [m for m in [moved("rows", before.others[key], now.others[key])] if m],
                ["the row count the asset reported in this run"],
            )
    for key in sorted(now.syncs):
        if key in before.syncs:
            lines += explained(key, *sync_changes(before.syncs[key], now.syncs[key], facts))
    for key in sorted(now.campaigns):
        if key in before.campaigns:
            lines += explained(key, *campaign_changes(before.campaigns[key], now.campaigns[key], (before, now)))
    for key in sorted(now.landed):
        if key in before.landed:
            lines += explained(f"lake/{key[0]}/{key[1]}", *landed_changes(before.landed[key], now.landed[key], facts))
    if before.views is not None and now.views is not None:
        added = sorted(set(now.views) - set(before.views))
        gone = sorted(set(before.views) - set(now.views))
        changes = [f"new {v}" for v in added] + [f"no more {v}" for v in gone]
        lines += explained("lake/views", [m for m in [moved("views", len(before.views), len(now.views))] if m], changes)
    failed_before = sum(not c.passed for c in before.checks)
    failed_now = sum(not c.passed for c in now.checks)
    if (len(before.checks), failed_before) != (len(now.checks), failed_now):
        lines += explained(
            "checks",
            [
                f"{len(before.checks) - failed_before} passed, {failed_before} failed → {len(now.checks) - failed_now} "
                f"passed, {failed_now} failed"
            ],
            ["the failed checks are listed above" if failed_now else "every check of this run passed"],
        )
    partition = f", partition {before.partition}" if before.partition != now.partition else ""
    head = f"what moved since run {before.run_id}{partition}{started}, and why:"
    if not lines:
        return [head.removesuffix(", and why:") + ": nothing"]
    return [head, *lines]


def failure_message(event: Any) -> str:
    """The underlying error of a failed step (the database's or provider's own words), not Dagster's wrapper."""
    data = getattr(event, "event_specific_data", None)
    error = getattr(data, "error", None)
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None:
        error = error.cause  # Dagster's wrapper around what the step raised
    if error is None:
        return str(event.message)
    message = error.message.strip()
    if error.cls_name == "Failure":  # raised by our assets: its description already names the underlying error
        return message.removeprefix("dagster._core.definitions.events.Failure: ")
    return message if message.startswith(f"{error.cls_name}:") else f"{error.cls_name}: {message}"


if __name__ == "__main__":
    sys.exit(main())
