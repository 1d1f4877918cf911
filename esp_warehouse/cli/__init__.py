"""``esp-warehouse``: the project's command line, for cron or any orchestrator, with or without Dagster running.

It reads the same declarations and builds the same resources from the same environment as the code location,
and calls what the Dagster assets call (docs/cli.md)::

    esp-warehouse validate                  # declarations, warehouse and provider accounts: one line per problem
    esp-warehouse plan <sync>               # dry run: what a sync would add, change, remove, suppress, reject
    esp-warehouse sync <sync>               # one real run of a sync
    esp-warehouse land <account>            # land what one account knows into the lake
    esp-warehouse status                    # last runs, pending rows, locks, campaign ledger, last landings
    esp-warehouse sandbox serve|reset|advance|token ...   # the provider sandboxes (python -m espcore.sandbox)
"""

import importlib
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from esp_warehouse.cli import preflight, report, runs
from esp_warehouse.cli.common import (
    EXIT_CODES,
    EXIT_USAGE,
    VERBOSE,
    CommandError,
    Output,
    explain,
    failure_code,
    load,
    scrub,
)

__all__ = ["cli", "main"]

EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."

Render = Callable[[dict[str, Any]], list[str]]


def _finish(out: Output, name: str, work: Callable[[], tuple[dict[str, Any], int]], render: Render) -> None:
    """Run a command's work, print its document (text or JSON) and exit with its code. Work that stops early
    (a usage or configuration error, an unreadable warehouse) prints why and exits with the code its error calls
    for (:func:`failure_code`); work that ran returns its document, an ``error`` in it when it failed."""
    document: dict[str, Any] | None = None
    try:
        document, code = work()
        payload = document
    except CommandError as exc:
        payload, code = {"command": name, "ok": False, "error": exc.message, **exc.details}, exc.code
    except Exception as exc:
        code = failure_code(exc)
        payload = {"command": name, "ok": False, "error": explain(exc)}
        logging.getLogger("esp_warehouse.cli").debug("%s stopped", name, exc_info=True)
    payload.setdefault("exit_code", code)
    if out.as_json:
        out.document(payload)
    else:
        for line in render(document) if document is not None else []:
            out.line(line)
        if "error" in payload:
            out.error(payload["error"])
    raise SystemExit(code)


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--declarations`` and ``--json``, shared by the commands that take them."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout (progress stays on stderr)."
    )(func)
    return click.option(
        "--declarations",
        "-d",
        metavar="PATH",
        help="Declarations file (default: $ESP_DECLARATIONS, else syncs.yaml or pipelines/syncs.yaml here).",
    )(func)


def _progress(out: Output, verbose: bool) -> Callable[[str], None]:
    return out.progress if verbose or not out.as_json else (lambda _msg: None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Log what the engine and Dagster's resources do (stderr).")
@click.version_option(package_name="esp-warehouse", prog_name="esp-warehouse")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Sync warehouse segments into email providers' books, land the providers' data, and check it all, from the
    declarations (syncs.yaml) and the environment the Dagster code location uses.

    Credentials come only from the environment (SENDPULSE_CLIENT_ID and SENDPULSE_CLIENT_SECRET, PAKAT_API_KEY,
    LITESTARTUP_API_KEY, or an account's own prefix), or ESP_SANDBOX_DIR puts every provider on its embedded
    sandbox; the warehouse is ESP_WAREHOUSE_URL, else warehouse.duckdb in ESP_DATA_DIR; the lake ESP_LAKE_ROOT.
    Secrets are never printed.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    VERBOSE["on"] = verbose
    _log_to_stderr(logging.INFO if verbose else logging.WARNING)


class _ScrubbingFormatter(logging.Formatter):
    """Log lines pass the same secret check as the command's output."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _log_to_stderr(level: int) -> None:
    """Log records of ``level`` and above to stderr, through :class:`_ScrubbingFormatter` (one handler however
    many times the command runs in a process)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "esp_warehouse_cli", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.esp_warehouse_cli = True  # type: ignore[attr-defined]
        handler.setFormatter(_ScrubbingFormatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    handler.setLevel(level)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)


def _verbose(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("verbose"))


@cli.command(epilog=EXIT_CODES_HELP)
@_options
@click.option("--no-warehouse", is_flag=True, help="Skip the pre-flight against the warehouse.")
@click.option("--no-providers", is_flag=True, help="Skip the pre-flight against the provider accounts.")
def validate(declarations: str | None, as_json: bool, no_warehouse: bool, no_providers: bool) -> None:
    """Check the declarations, then each sync's segment in the warehouse (relation, primary key and mapped
    columns: planned and read with LIMIT 0) and each account's credentials (its cheapest authenticated read, on
    the sandbox or the real API). One line per problem, naming the file, the entry and the field; exit 1 when
    there is one. Nothing is written anywhere."""

    out = Output(as_json)
    _finish(
        out,
        "validate",
        lambda: preflight.validate(declarations, warehouse=not no_warehouse, providers=not no_providers),
        preflight.render,
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("sync_name", metavar="SYNC")
@_options
@click.option("--full-resync", is_flag=True, help="Plan as if every row were resent, not only changed ones.")
@click.option("--sample", default=20, show_default=True, type=click.IntRange(1, 1000), help="Rows per sample.")
@click.pass_context
def plan(
    ctx: click.Context, sync_name: str, declarations: str | None, as_json: bool, full_resync: bool, sample: int
) -> None:
    """Dry run of SYNC: what it would add, change, remove, and which rows are suppressed or rejected (with the
    reasons), each with a sample (addresses masked). The book is looked up, never created; nothing is written
    to the provider or to the sync state (the plan is kept in the engine's own tables, as a Dagster dry run's)."""

    out = Output(as_json)

    def work() -> tuple[dict[str, Any], int]:
        _, decls = load(declarations)
        progress = _progress(out, _verbose(ctx))
        return runs.plan_one(decls, sync_name, full_resync=full_resync, sample_size=sample, progress=progress)

    _finish(out, "plan", work, runs.render_plan)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("sync_name", metavar="SYNC")
@_options
@click.option("--full-resync", is_flag=True, help="Resend every row, not only changed ones.")
@click.option("--allow-mass-remove", is_flag=True, help="Allow removing more than the sync's max_remove_pct.")
@click.pass_context
def sync(
    ctx: click.Context,
    sync_name: str,
    declarations: str | None,
    as_json: bool,
    full_resync: bool,
    allow_mass_remove: bool,
) -> None:
    """Run SYNC once, as its Dagster asset does: plan, apply to the provider book, land the rejects in the lake.
    Exit 3 when another live run holds the book or a transient fault stopped it (run it again later; nothing
    acknowledged is resent), 4 when rows were left pending or rejected."""

    out = Output(as_json)

    def work() -> tuple[dict[str, Any], int]:
        _, decls = load(declarations)
        progress = _progress(out, _verbose(ctx))
        return runs.sync_one(
            decls, sync_name, full_resync=full_resync, allow_mass_remove=allow_mass_remove, progress=progress
        )

    _finish(out, "sync", work, runs.render_sync)


def _day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("account")
@_options
@click.option("--dataset", "datasets", multiple=True, metavar="NAME", help="Only this dataset (repeatable).")
@click.option(
    "--day", callback=_day, metavar="YYYY-MM-DD", help="Partition of the daily datasets (default today, UTC)."
)
@click.option("--full-refresh", is_flag=True, help="Fetch everything again, ignoring the landing state.")
@click.option("--recheck-after-days", default=7.0, show_default=True, help="Re-fetch a settled campaign after this.")
@click.option("--settle-after-days", default=1.0, show_default=True, help="A campaign sent this long ago settles.")
@click.option("--no-views", is_flag=True, help="Do not (re)create the lake views afterwards.")
@click.pass_context
def land(
    ctx: click.Context,
    account: str,
    declarations: str | None,
    as_json: bool,
    datasets: tuple[str, ...],
    day: date | None,
    full_refresh: bool,
    recheck_after_days: float,
    settle_after_days: float,
    no_views: bool,
) -> None:
    """Land what ACCOUNT (a provider's default account, or a declared one) knows into the lake, as its landing
    assets do: balances, campaigns, blacklist and book members dated today; campaign stats (and delivery events
    where the provider logs them) for --day; then the lake views."""

    out = Output(as_json)

    def work() -> tuple[dict[str, Any], int]:
        _, decls = load(declarations)
        return runs.land_account(
            decls,
            account,
            datasets=datasets,
            day=day,
            full_refresh=full_refresh,
            recheck_after_days=recheck_after_days,
            settle_after_days=settle_after_days,
            views=not no_views,
            progress=_progress(out, _verbose(ctx)),
        )

    _finish(out, "land", work, runs.render_land)


@cli.command(epilog=EXIT_CODES_HELP)
@_options
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 1000), help="Last runs per sync.")
@click.option("--campaigns", default=20, show_default=True, type=click.IntRange(0), help="Ledger entries shown.")
def status(declarations: str | None, as_json: bool, runs: int, campaigns: int) -> None:
    """Last runs per sync (outcome, counts), the book's pending rows, locks held, the last row error; the latest
    campaign ledger entries; the last landing per dataset and account. Read only, from the product's own tables
    in the warehouse and the lake (the declarations, when readable, add the syncs that never ran)."""

    out = Output(as_json)
    _finish(out, "status", lambda: report.status(declarations, runs=runs, campaigns=campaigns), report.render)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sandbox(args: tuple[str, ...]) -> None:
    """The provider sandboxes: serve|reset|advance|token PROVIDER [--state FILE] ... (as python -m
    espcore.sandbox; `esp-warehouse sandbox --help` for its options)."""
    # The sandboxes load only when this command runs. Imported by name: the layer contract keeps production code
    # from importing the emulators, and this command exists to run them.
    sandbox_main = importlib.import_module("espcore.sandbox.__main__").main
    try:
        code = sandbox_main(list(args), prog="esp-warehouse sandbox")
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """The ``esp-warehouse`` console script."""
    cli.main(args=argv, prog_name="esp-warehouse")
