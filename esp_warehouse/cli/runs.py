"""``esp-warehouse plan``, ``sync`` and ``land``: the work of the Dagster assets, for cron or another orchestrator.

Each calls what the asset calls, on the resources the code location would build from the same environment:
:func:`espcore.sync.engine.run_sync` with the spec of :func:`esp_warehouse.assets.subscribers.to_spec` (``plan``
is its dry run: the book is looked up, never created, and nothing is sent to the provider), the rejects landed
like the asset lands them, and the landers of :mod:`espcore.landing.collect` for the datasets the account's
landing assets hold, then the lake views.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from esp_warehouse.assets.landing import views_database
from esp_warehouse.assets.subscribers import land_rejects, to_spec
from esp_warehouse.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CommandError,
    account_resource,
    explain,
    failure_code,
    initialised,
    new_run_id,
    target_kind,
)
from esp_warehouse.environment import lake_resource, warehouse_resource
from espcore.landing.collect import DAILY_LANDERS, SNAPSHOT_LANDERS, provider_datasets
from espcore.landing.views import ViewsUnavailable, create_lake_views
from espcore.sync.engine import run_sync
from espcore.sync.spec import SyncOptions
from espcore.sync.validate import mask_email

Progress = Callable[[str], None]


def _sync_decl(decls: Any, name: str) -> Any:
    found = next((s for s in decls.syncs if s.name == name), None)
    if found is None:
        known = ", ".join(s.name for s in decls.syncs) or "none"
        raise CommandError(f"no sync named {name!r} (declared syncs: {known})", EXIT_USAGE)
    return found


def _run_document(decl: Any, run_id: str, *, dry_run: bool) -> dict[str, Any]:
    """The head of a ``plan`` or ``sync`` document: which sync, book and account, which run."""
    return {
        "sync": decl.name,
        "account": decl.provider,
        "provider": decl.provider_kind,
        "book": decl.book,
        "mode": decl.mode,
        "run_id": run_id,
        "dry_run": dry_run,
    }


def _stopped(payload: dict[str, Any], exc: BaseException) -> tuple[dict[str, Any], int]:
    code = failure_code(exc)
    payload.update(ok=False, error=explain(exc), exit_code=code)
    counts = getattr(exc, "counts", None)
    if counts:
        payload["counts"] = dict(counts)
    return payload, code


# -- plan -----------------------------------------------------------------------------------------------------


def _group(count: int, sample: Sequence[Any]) -> dict[str, Any]:
    return {"count": count, "sample": list(sample)}


def plan_document(result: Any, wh: Any, sample_size: int) -> dict[str, Any]:
    """What a dry run would do: adds, changes, removes, suppressed and rejected rows, each with a masked sample;
    suppressed and rejected with their reasons."""
    counts = result.counts
    samples = result.samples
    suppressed_reasons: dict[str, int] = {}
    with wh.connect() as con:
        for reason, n in con.fetchall(
            f"SELECT coalesce(reason, 'suppressed'), count(*) FROM {con.own('sync_plan')} "
            "WHERE run_id = ? AND sync_name = ? AND op = 'suppressed' GROUP BY 1 ORDER BY 2 DESC, 1",
            [result.run_id, result.spec.name],
        ):
            suppressed_reasons[str(reason)] = int(n)
    rejects = result.rejects
    reasons = Counter(str(r["reason"]) for r in rejects)
    removes = [*samples.get("remove", []), *samples.get("unsubscribe", [])]
    return {
        "adds": _group(int(counts["planned_add"]), samples.get("add", [])),
        "changes": _group(int(counts["planned_change"]), samples.get("change", [])),
        "removes": {
            **_group(int(counts["planned_remove"]), removes[:sample_size]),
            "as": result.spec.removal if result.spec.removes else None,
        },
        "suppressed": {
            **_group(int(counts["suppressed"]), samples.get("suppressed", [])),
            "reasons": suppressed_reasons,
        },
        "rejected": {
            "count": len(rejects),
            "sample": [
                {"email": mask_email(r.get("pk") or r.get("raw_email")), "reason": r["reason"], "stage": r["stage"]}
                for r in rejects[:sample_size]
            ],
            "reasons": dict(reasons.most_common()),
            "unchanged_since_rejected": int(counts["rejected_unchanged"]),
        },
        "skipped": _group(int(counts["skipped"]), samples.get("skipped", [])),
        "retries": int(counts["planned_retry"]),
        "pending": int(counts["pending"]),
        "removal_guard_tripped": result.removal_guard_tripped,
    }


def plan_one(decls: Any, name: str, *, full_resync: bool, sample_size: int, progress: Progress) -> tuple[dict, int]:
    """A dry run of one sync: planned in the warehouse (in the engine's own tables, as a Dagster dry run plans),
    nothing written to the provider or to the sync state."""
    decl = _sync_decl(decls, name)
    run_id = new_run_id()
    payload = _run_document(decl, run_id, dry_run=True)
    spec = to_spec(decl)
    provider = account_resource(decls, decl.provider)
    try:
        with initialised(provider) as account, initialised(warehouse_resource()) as warehouse:
            payload["target"] = target_kind(account)
            wh = warehouse.get_warehouse()
            options = SyncOptions(dry_run=True, full_resync=full_resync, sample_size=sample_size)
            result = run_sync(spec, account.get_provider(), wh, run_id=run_id, options=options, progress=progress)
            payload.update(book_id=result.book_id, outcome=result.outcome, counts=result.metadata())
            payload["plan"] = plan_document(result, wh, sample_size)
    except Exception as exc:
        return _stopped(payload, exc)
    payload.update(ok=True, exit_code=EXIT_OK)
    return payload, EXIT_OK


def render_plan(payload: dict[str, Any]) -> list[str]:
    head = f"plan of {payload['sync']}: {payload['mode']} into {payload['account']} book {payload['book']!r}"
    lines = [head + (f" ({payload['target']})" if payload.get("target") else "")]
    if "error" in payload:
        return lines
    p = payload["plan"]
    counts = payload["counts"]
    lines.append(f"book: {payload['book_id']}; segment rows: {counts['query_size']}; dry run, nothing sent")
    for label, key in (("adds", "adds"), ("changes", "changes"), ("removes", "removes"), ("skipped", "skipped")):
        group = p[key]
        extra = f" (as {group['as']})" if key == "removes" and group.get("as") else ""
        lines.append(f"  {label}: {group['count']}{extra}" + _sample(group["sample"]))
    sup = p["suppressed"]
    lines.append(f"  suppressed: {sup['count']}" + _reasons(sup["reasons"]) + _sample(sup["sample"]))
    rej = p["rejected"]
    lines.append(
        f"  rejected: {rej['count']}"
        + _reasons(rej["reasons"])
        + _sample([f"{r['email']} ({r['reason']})" for r in rej["sample"]])
    )
    if rej["unchanged_since_rejected"]:
        lines.append(f"  not resent (rejected before, unchanged): {rej['unchanged_since_rejected']}")
    if p["retries"] or p["pending"]:
        lines.append(f"  retries of undecided rows: {p['retries']}; pending in the book now: {p['pending']}")
    if p["removal_guard_tripped"]:
        lines.append("  warning: the plan removes more than max_remove_pct: a real run stops (--allow-mass-remove)")
    return lines


def _sample(items: Sequence[str], limit: int = 5) -> str:
    if not items:
        return ""
    more = f", … ({len(items) - limit} more in the sample)" if len(items) > limit else ""
    return f"; e.g. {', '.join(items[:limit])}{more}"


def _reasons(reasons: dict[str, int]) -> str:
    return f" ({', '.join(f'{k}: {v}' for k, v in reasons.items())})" if reasons else ""


# -- sync -----------------------------------------------------------------------------------------------------


def sync_one(
    decls: Any, name: str, *, full_resync: bool, allow_mass_remove: bool, progress: Progress
) -> tuple[dict[str, Any], int]:
    """One real run of a sync, as its asset runs it: planned, applied, its rejects landed in the lake."""
    decl = _sync_decl(decls, name)
    run_id = new_run_id()
    payload = _run_document(decl, run_id, dry_run=False)
    spec = to_spec(decl)
    provider = account_resource(decls, decl.provider)
    try:
        with (
            initialised(provider) as account,
            initialised(warehouse_resource()) as warehouse,
            initialised(lake_resource()) as lake,
        ):
            payload["target"] = target_kind(account)
            options = SyncOptions(full_resync=full_resync, allow_mass_remove=allow_mass_remove)
            result = run_sync(
                spec, account.get_provider(), warehouse.get_warehouse(), run_id=run_id, options=options,
                progress=progress,
            )  # fmt: skip
            payload.update(book_id=result.book_id, outcome=result.outcome, counts=result.metadata())
            payload["synced_rows"] = result.synced_rows
            payload["samples"] = result.samples
            landed = land_rejects(lake.root, decl, result, run_id=run_id)
            if landed is not None:
                payload["rejects_path"] = landed
            payload["rejected"] = len(result.rejects)
    except Exception as exc:
        return _stopped(payload, exc)
    code = EXIT_PARTIAL if payload["outcome"] == "partial" else EXIT_OK
    payload.update(ok=code == EXIT_OK, exit_code=code)
    return payload, code


def render_sync(payload: dict[str, Any]) -> list[str]:
    head = f"sync {payload['sync']}: {payload['mode']} into {payload['account']} book {payload['book']!r}"
    lines = [head + (f" ({payload['target']})" if payload.get("target") else "")]
    counts = payload.get("counts")
    if counts and "outcome" in payload:
        lines.append(
            f"{payload['outcome']}: +{counts['successful_add']} ~{counts['successful_change']} "
            f"-{counts['successful_remove']} sent, {counts['suppressed']} suppressed, "
            f"{payload['rejected']} rejected, {counts['pending']} pending; {payload['synced_rows']} rows synced "
            f"in the book; {counts['elapsed_seconds']}s"
        )
        if payload.get("rejects_path"):
            lines.append(f"rejects: {payload['rejects_path']}")
        if payload["outcome"] == "partial":
            lines.append("partial: the next run retries the pending rows; rejected rows wait for changed values")
    return lines


# -- land -----------------------------------------------------------------------------------------------------


def land_account(
    decls: Any,
    name: str,
    *,
    datasets: Sequence[str],
    day: date | None,
    full_refresh: bool,
    recheck_after_days: float,
    settle_after_days: float,
    views: bool,
    progress: Progress,
) -> tuple[dict[str, Any], int]:
    """Land what one account knows, as its landing assets do: the snapshots (balances, campaigns, blacklist,
    book members) dated today, the daily datasets (campaign stats, delivery events where the provider logs
    them) for ``day`` (default today, UTC); then the lake views."""
    provider = account_resource(decls, name)
    kind = decls.kind(name)
    snapshots, daily = provider_datasets(kind)
    unknown = sorted(set(datasets) - set(snapshots) - set(daily))
    if unknown:
        raise CommandError(
            f"{name} ({kind}) lands no {', '.join(unknown)} (its datasets: {', '.join(snapshots + daily)})",
            EXIT_USAGE,
        )
    chosen = set(datasets) or set(snapshots + daily)
    run_id = new_run_id()
    now = datetime.now(UTC)
    day_s = (day or now.date()).isoformat()
    payload: dict[str, Any] = {"account": name, "provider": kind, "run_id": run_id, "day": day_s, "landed": []}
    try:
        with initialised(provider) as account, initialised(lake_resource()) as lake:
            payload["target"] = target_kind(account)
            adapter = account.get_provider()
            for dataset in [d for d in snapshots if d in chosen]:
                extra: dict[str, Any] = {"full_refresh": full_refresh} if dataset == "campaigns" else {}
                result = SNAPSHOT_LANDERS[dataset](lake.root, adapter, run_id=run_id, now=now, **extra)
                payload["landed"].append(_landed(dataset, result, progress))
            for dataset in [d for d in daily if d in chosen]:
                extra = {}
                if dataset == "campaign_stats":
                    extra = {
                        "full_refresh": full_refresh,
                        "recheck_after": timedelta(days=recheck_after_days),
                        "settle_after": timedelta(days=settle_after_days),
                    }
                result = DAILY_LANDERS[dataset](lake.root, adapter, day_s, run_id=run_id, now=now, **extra)
                payload["landed"].append(_landed(dataset, result, progress))
            if views:
                with initialised(warehouse_resource()) as warehouse:
                    try:
                        payload["views"] = create_lake_views(
                            views_database(warehouse), lake.root, schema=warehouse.own_schema
                        )
                    except ViewsUnavailable as exc:  # an object store DuckDB cannot read here: say so, as the asset
                        payload["views"] = []
                        payload["views_skipped"] = str(exc)
    except Exception as exc:
        return _stopped(payload, exc)
    payload.update(ok=True, exit_code=EXIT_OK)
    return payload, EXIT_OK


def _landed(dataset: str, result: Any, progress: Progress) -> dict[str, Any]:
    progress(f"{dataset} {result.landed.day}: {result.landed.rows} rows, {result.http_calls} HTTP calls")
    return {
        "dataset": dataset,
        "date": result.landed.day,
        "rows": result.landed.rows,
        "http_calls": result.http_calls,
        "location": result.location,
        **{k: int(v) for k, v in result.counters.items()},
    }


def render_land(payload: dict[str, Any]) -> list[str]:
    target = f" ({payload['target']})" if payload.get("target") else ""
    lines = [f"land {payload['account']}{target}, day {payload['day']}:"]
    for item in payload["landed"]:
        lines.append(f"  {item['dataset']} {item['date']}: {item['rows']} rows -> {item['location']}")
    if "views" in payload:
        skipped = payload.get("views_skipped")
        lines.append(f"  lake views: {len(payload['views'])}" + (f" (not created: {skipped})" if skipped else ""))
    return lines
