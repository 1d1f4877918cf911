"""The demo: the main job on its own DuckDB warehouse and the three providers' sandboxes, then a summary.

    uv run python -m pipelines.demo [--data-dir DIR]

The demo is its own code path. It builds its demo warehouse (customers and segment views) in its own data
folder (``--data-dir``, else ``ESP_DATA_DIR``, else ``data/``) and always runs every provider on its embedded
loopback sandbox; provider credentials, ``ESP_WAREHOUSE_URL`` and the other production variables in the
environment are ignored (it says so in one line). Runs are recorded in ``<data>/dagster_home`` so the Dagster
UI shows them; sandbox accounts persist in ``<data>/sandbox``, so a second run reports zero changes.
"""

import argparse
import os
import sys
from collections.abc import Sequence
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
        "the environment holds). Prints a summary; a second run changes and launches nothing.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the demo's data folder (default: $ESP_DATA_DIR, else data/ in the project)",
    )
    return parser.parse_args(argv)


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

    job = build_demo_location(data).defs.resolve_job_def("main")
    day = landing_day(datetime.now(UTC))  # the main job is partitioned by day (the daily stats and events)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, partition_key=day)
    print()
    print(f"run {result.run_id} (main, partition {day}): {'SUCCESS' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat is None:
            continue
        key = "/".join(mat.asset_key.path)
        md: dict[str, Any] = {k: v.value for k, v in mat.metadata.items()}
        if "planned_add" in md:
            print(
                f"  sync    {key:<40} planned +{md['planned_add']} ~{md['planned_change']} -{md['planned_remove']}"
                f"  synced +{md['successful_add']} ~{md['successful_change']} -{md['successful_remove']}"
                f"  rejected {md['invalid'] + md['failed_add'] + md['failed_change']}  suppressed {md['suppressed']}"
                f"  book rows {md.get('dagster/row_count')}"
                + (f"  PARTIAL: {md.get('pending', 0)} rows pending" if md.get("outcome") == "partial" else "")
            )
        elif "action" in md and "campaign_key" in md:
            print(
                f"  launch  {key:<40} {md['action']} campaign {md['provider_campaign_id']} ({md['status']}) "
                f"to {md['recipients']} recipients, key {md['campaign_key']}"
            )
        elif "blocked_by" in md:
            print(f"  guard   {key:<40} key {md['campaign_key']} ({md['occurrence']}), blocked by: {md['blocked_by']}")
        elif "path" in md:
            print(f"  landed  {key:<40} {md.get('dagster/row_count')} rows -> {md['path']}")
        else:
            print(f"  built   {key:<40} {md.get('dagster/row_count', '')} rows")
    checks = result.get_asset_check_evaluations()
    failed = [c for c in checks if not c.passed]
    print(f"  checks  {len(checks) - len(failed)} passed, {len(failed)} failed")
    for check in failed:
        why = f": {check.description}" if check.description else ""
        print(f"  check   {'/'.join(check.asset_key.path)}:{check.check_name} FAILED ({check.severity.value}){why}")
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_key:
                print(f"  failed step {event.step_key}: {failure_message(event)}")
    return 0 if result.success else 1


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
