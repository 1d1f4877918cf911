"""Run the main job on the embedded default (demo DuckDB warehouse + sandbox providers) and print a summary.

    uv run python -m pipelines.demo

Runs are recorded in ``data/dagster_home`` so the Dagster UI (``dg dev``) shows them; sandbox accounts persist
in ``data/sandbox``, so a second run reports zero changes.
"""

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ESP_DATA_DIR", ROOT / "data"))
DAGSTER_HOME = DATA / "dagster_home"

INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def prepare_home() -> None:
    DAGSTER_HOME.mkdir(parents=True, exist_ok=True)
    cfg = DAGSTER_HOME / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(INSTANCE_YAML)
    os.environ.setdefault("DAGSTER_HOME", str(DAGSTER_HOME))


def main() -> int:
    prepare_home()
    import dagster as dg

    from pipelines.automation import landing_day
    from pipelines.definitions import defs

    job = defs.resolve_job_def("main")
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
        print(f"  check   {'/'.join(check.asset_key.path)}:{check.check_name} FAILED ({check.severity.value})")
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_key:
                print(f"  failed step {event.step_key}: {event.message}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
