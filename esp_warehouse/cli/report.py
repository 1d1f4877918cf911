"""``esp-warehouse status``: what the product's own tables and the lake say, read only.

Per sync (declared, or found in ``sync_runs``): its last runs with their outcome and counts, the book's rows per
state (``pending`` ones are retried by the next run), the lock on its book (with whether the holder still
lives) and the last row-level error; the latest campaign ledger entries; per account and dataset, the latest
landed date and the landing state (``_state``) of the incremental datasets. Nothing is created: a warehouse, a
schema or a table that does not exist yet is reported as such.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any

from esp_warehouse.cli.common import EXIT_OK, CommandError, declarations_file, explain, failure_code, initialised
from esp_warehouse.config import ConfigError, load_declarations
from esp_warehouse.environment import lake_resource, warehouse_resource
from espcore.campaigns.ledger import TABLE, LedgerRow
from espcore.landing.collect import STATE_DIR
from espcore.landing.schemas import DATASETS
from espcore.landing.store import open_lake
from espcore.sync.locks import LOCK_STALE_S, LockHolder, holder_is_alive
from espcore.sync.tables import as_utc, now_utc
from espcore.warehouse import Warehouse

_PARTITION = re.compile(r"/provider=(?P<provider>[^/]+)/date=(?P<date>[^/]+)/[^/]+\.parquet$")
_STATE = re.compile(r"/provider=(?P<provider>[^/]+)/(?P<dataset>[^/]+)\.json$")
_COUNT_KEYS = (
    *("planned_add", "planned_change", "planned_remove", "successful_add", "successful_change"),
    *("successful_remove", "failed_add", "failed_change", "failed_remove", "suppressed", "invalid", "pending"),
)


def _declared(given: str | None) -> tuple[dict[str, Any], Any]:
    """The declarations, when they can be read (status works without them)."""
    try:
        path = declarations_file(given)
        return {"declarations": str(path)}, load_declarations(path)
    except CommandError as exc:
        return {"declarations": None, "declarations_error": exc.message}, None
    except ConfigError as exc:
        return {"declarations": None, "declarations_error": str(exc)}, None


def _iso(value: Any) -> Any:
    """A timestamp as ISO 8601 text in UTC (the warehouse returns them in its session's time zone)."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value.isoformat() if hasattr(value, "isoformat") else value


def _counts(text: Any) -> dict[str, Any]:
    try:
        counts = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {k: counts[k] for k in ("outcome", *_COUNT_KEYS, "elapsed_seconds") if k in counts}


def sync_status(con: Any, tables: Iterable[str], declared: list[Any], runs: int) -> list[dict[str, Any]]:
    tables = set(tables)
    found: dict[str, dict[str, Any]] = {
        d.name: {"sync": d.name, "account": d.provider, "book": d.book, "declared": True, "runs": []} for d in declared
    }
    if "sync_runs" in tables:
        rows = con.fetchall(
            f"""SELECT run_id, sync_name, provider, book_id, started_at, finished_at, dry_run, status, counts FROM (
                   SELECT r.*, row_number() OVER (PARTITION BY sync_name ORDER BY started_at DESC) AS rn
                   FROM {con.own("sync_runs")} AS r) AS ranked
               WHERE rn <= ? ORDER BY sync_name, started_at DESC""",
            [runs],
        )
        for run_id, name, provider, book_id, started, finished, dry_run, status, counts in rows:
            entry = found.setdefault(name, {"sync": name, "account": provider, "declared": False, "runs": []})
            entry["runs"].append(
                {
                    "run_id": run_id,
                    "book_id": book_id,
                    "started_at": _iso(started),
                    "finished_at": _iso(finished),
                    "dry_run": bool(dry_run),
                    "outcome": status,
                    "counts": _counts(counts),
                }
            )
    state: dict[tuple[str, str], dict[str, int]] = {}
    errors: dict[tuple[str, str], dict[str, Any]] = {}
    if "sync_state" in tables:
        own = con.own("sync_state")
        for provider, book_id, status, n in con.fetchall(
            f"SELECT provider, book_id, status, count(*) FROM {own} GROUP BY provider, book_id, status"
        ):
            state.setdefault((provider, book_id), {})[status] = int(n)
        for provider, book_id, error, at in con.fetchall(
            f"""SELECT provider, book_id, last_error, last_attempt_at FROM (
                   SELECT provider, book_id, last_error, last_attempt_at, row_number() OVER (
                       PARTITION BY provider, book_id ORDER BY last_attempt_at DESC NULLS LAST) AS rn
                   FROM {own} WHERE last_error IS NOT NULL) AS ranked WHERE rn = 1"""
        ):
            errors[(provider, book_id)] = {"error": error, "at": _iso(at)}
    locks: dict[str, dict[str, Any]] = {}
    if "sync_lock" in tables:
        now = now_utc()
        for row in con.fetchall(f"SELECT provider, book, book_id, {LockHolder.COLUMNS} FROM {con.own('sync_lock')}"):
            provider, book, book_id, *rest = row
            holder = LockHolder(*rest)
            alive, why = holder_is_alive(holder, held_here=False, stale_s=LOCK_STALE_S, now=now)
            lock = {
                "account": provider,
                "book": book,
                "book_id": book_id,
                "run_id": holder.run_id,
                "host": holder.host,
                "pid": holder.pid,
                "acquired_at": _iso(holder.acquired_at),
                "heartbeat_at": _iso(holder.heartbeat_at),
                "holder_alive": alive,
                "why": why,
            }
            name = holder.sync_name or f"{provider}/{book}"
            locks[name] = lock
            found.setdefault(name, {"sync": name, "account": provider, "book": book, "declared": False, "runs": []})
    for name, entry in found.items():
        book_id = next((r["book_id"] for r in entry["runs"] if r["book_id"] and not r["dry_run"]), None)
        key = (entry["account"], book_id or "")
        entry["book_id"] = book_id
        entry["rows"] = state.get(key, {})
        entry["pending"] = int(state.get(key, {}).get("pending", 0))
        entry["last_error"] = errors.get(key)
        entry["lock"] = locks.get(name)
    return sorted(found.values(), key=lambda e: (not e["declared"], e["sync"]))


def ledger_status(con: Any, tables: Iterable[str], limit: int) -> list[dict[str, Any]]:
    if TABLE not in set(tables):
        return []
    columns = [f.name for f in fields(LedgerRow)]
    shown = (
        *("campaign_name", "provider", "occurrence", "status", "provider_campaign_id", "provider_status"),
        *("recipients", "attempts", "error_kind", "last_error", "planned_at", "sent_at", "updated_at"),
    )
    rows = con.fetchall(
        f"SELECT {', '.join(columns)} FROM {con.own(TABLE)} ORDER BY updated_at DESC LIMIT ?", [int(limit)]
    )
    out = []
    for row in rows:
        entry = LedgerRow(*row)
        out.append({name: _iso(getattr(entry, name)) for name in shown})
    return out


def lake_status(root: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The latest landed date per dataset and account, and the landing state files."""
    lake = open_lake(root)
    landed: list[dict[str, Any]] = []
    for dataset in DATASETS:
        latest: dict[str, dict[str, Any]] = {}
        for path in lake.files(lake.path(f"dataset={dataset}")):
            match = _PARTITION.search(path.replace("\\", "/"))
            if match is None:
                continue
            seen = latest.setdefault(match["provider"], {"dates": 0, "last_date": "", "location": ""})
            seen["dates"] += 1
            if match["date"] >= seen["last_date"]:
                seen.update(last_date=match["date"], location=lake.location(path))
        landed += [{"dataset": dataset, "account": account, **seen} for account, seen in sorted(latest.items())]
    states: list[dict[str, Any]] = []
    for path in lake.files(lake.path(STATE_DIR), suffix=".json"):
        match = _STATE.search(path.replace("\\", "/"))
        if match is None:
            continue
        try:
            data = json.loads((lake.read_bytes(path) or b"{}").decode("utf-8"))
        except ValueError:
            data = {}
        listing = data.get("listing") if isinstance(data, dict) else None
        campaigns = data.get("campaigns") if isinstance(data, dict) else None
        states.append(
            {
                "account": match["provider"],
                "dataset": match["dataset"],
                "campaigns_tracked": len(campaigns) if isinstance(campaigns, dict) else 0,
                "listing_fetched_at": listing.get("fetched_at") if isinstance(listing, dict) else None,
            }
        )
    return landed, states


def status(given: str | None, *, runs: int, campaigns: int) -> tuple[dict[str, Any], int]:
    payload, decls = _declared(given)
    payload.update(syncs=[], campaigns=[], landing=[], landing_state=[])
    declared = list(decls.syncs) if decls is not None else []
    with initialised(warehouse_resource()) as warehouse:
        wh = warehouse.get_warehouse()
        payload["warehouse"] = wh.location
        if isinstance(wh, Warehouse) and not wh.path.exists():
            payload["warehouse_note"] = f"the DuckDB file {wh.path} does not exist yet: nothing has run"
            tables: set[str] = set()
            payload["syncs"] = sync_status(None, tables, declared, runs)
        else:
            try:
                with wh.connect() as con:
                    tables = set(con.columns(con.own_schema)) if con.own_schema_exists() else set()
                    payload["own_schema"] = con.own_schema
                    payload["syncs"] = sync_status(con, tables, declared, runs)
                    payload["campaigns"] = ledger_status(con, tables, campaigns)
            except Exception as exc:
                raise CommandError(f"warehouse {wh.location}: {explain(exc)}", failure_code(exc)) from exc
    with initialised(lake_resource()) as lake:
        payload["lake"] = lake.root
        payload["landing"], payload["landing_state"] = lake_status(lake.root)
    payload.update(ok=True, exit_code=EXIT_OK)
    return payload, EXIT_OK


def _signed(counts: dict[str, Any], prefix: str) -> str:
    """``+adds ~changes -removes`` of one kind of count (``planned``, ``successful``)."""
    return " ".join(
        f"{sign}{counts.get(f'{prefix}_{op}', 0)}" for sign, op in (("+", "add"), ("~", "change"), ("-", "remove"))
    )


def render(payload: dict[str, Any]) -> list[str]:
    lines = [
        f"warehouse: {payload['warehouse']}"
        + (f" ({payload['warehouse_note']})" if "warehouse_note" in payload else "")
    ]
    if payload.get("declarations_error"):
        lines.append(f"declarations: not read ({payload['declarations_error']})")
    lines.append("syncs:" if payload["syncs"] else "syncs: none declared or run")
    for s in payload["syncs"]:
        lines.append(f"  {s['sync']} ({s['account']}{'' if s['declared'] else ', not declared'}):")
        if not s["runs"]:
            lines.append("    never run")
        for r in s["runs"]:
            c = r["counts"]
            planned = f"planned +{c.get('planned_add', 0)} ~{c.get('planned_change', 0)} -{c.get('planned_remove', 0)}"
            sent = (
                f"+{c.get('successful_add', 0)} ~{c.get('successful_change', 0)} -{c.get('successful_remove', 0)} sent"
            )
            detail = f" ({planned})" if r["dry_run"] else f" ({sent}, {planned}, {c.get('pending', 0)} pending)"
            kind = "dry run" if r["dry_run"] else "run"
            lines.append(f"    {kind} {r['run_id']} {r['started_at']}: {r['outcome']}" + (detail if c else ""))
        if s["rows"]:
            lines.append(f"    book {s['book_id']}: " + ", ".join(f"{k} {v}" for k, v in sorted(s["rows"].items())))
        if s["lock"]:
            lk = s["lock"]
            state = "alive" if lk["holder_alive"] else f"holder gone: {lk['why']}"
            lines.append(f"    locked by run {lk['run_id']} (pid {lk['pid']} on {lk['host']}, {state})")
        if s["last_error"]:
            lines.append(f"    last row error ({s['last_error']['at']}): {s['last_error']['error']}")
    lines.append("campaign ledger:" if payload["campaigns"] else "campaign ledger: empty")
    for c in payload["campaigns"]:
        error = f"; {c['error_kind'] or 'error'}: {c['last_error']}" if c["last_error"] else ""
        lines.append(
            f"  {c['campaign_name']} {c['occurrence']} ({c['provider']}): {c['status']}"
            + (f", campaign {c['provider_campaign_id']}" if c["provider_campaign_id"] else "")
            + f", updated {c['updated_at']}{error}"
        )
    lines.append(f"lake: {payload.get('lake')}" + ("" if payload["landing"] else " (nothing landed)"))
    for d in payload["landing"]:
        lines.append(f"  {d['dataset']} {d['account']}: last {d['last_date']} ({d['dates']} dates)")
    for st in payload["landing_state"]:
        fetched = f", listing fetched {st['listing_fetched_at']}" if st["listing_fetched_at"] else ""
        lines.append(f"  state {st['dataset']} {st['account']}: {st['campaigns_tracked']} campaigns{fetched}")
    return lines
