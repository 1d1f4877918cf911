"""Collect what a provider knows through :class:`EspProvider` and land it as Parquet (no Dagster here).

One function per dataset turns the provider's answers into rows of the dataset's fixed schema
(:mod:`espcore.landing.schemas`) and lands them with :func:`espcore.landing.writer.land`:

* ``balances``, ``campaigns``, ``blacklist``, ``book_members``: dated snapshots, one file per provider and day;
* ``campaign_stats``: one file per day holding every campaign's cumulative counters at that time;
* ``delivery_events``: per-message records dated in the day, where the provider exposes them
  (:class:`DeliveryEventSource`: Pakat delivery logs, LiteStartup ``GET /emails``; SendPulse has none).

**Incremental.** A small landing state per (provider, dataset) lives in ``<lake_root>/_state/provider=<p>/``
(JSON, replaced atomically after the Parquet file is in place, outside every ``dataset=`` glob). A campaign is
*settled* once it is terminal (sent or failed) and either was sent more than ``settle_after`` ago (default a day:
its counters have stopped moving much) or came back with counters identical to the previous fetch: later runs
carry its counters forward without calling the provider, until ``recheck_after`` has passed (late opens are
picked up weekly). Likewise the details of a terminal campaign that a listing leaves out (Pakat) are read once
and reused, and the stats landing reuses the campaign listing the ``campaigns`` landing made moments before
(within ``listing_max_age``) instead of paging through it again. Every result reports the HTTP calls it made,
read from the client's :class:`espcore.http.CallStats`.
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from espcore.landing.store import Lake, open_lake
from espcore.landing.writer import Landed, land
from espcore.providers.base import (
    Campaign,
    CampaignState,
    CampaignStats,
    DeliveryEventSource,
    EspProvider,
)
from espcore.providers.registry import plugin

STATE_DIR = "_state"
STATS_COUNTERS = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "spam", "errors", "queued")
DEFAULT_RECHECK = timedelta(days=7)
DEFAULT_SETTLE_AFTER = timedelta(days=1)
LISTING_MAX_AGE = timedelta(minutes=15)
STATS_CONCURRENCY = 4


class NotExposedError(LookupError):
    """The provider exposes no such data (e.g. SendPulse has no delivery log listing)."""


@dataclass(frozen=True)
class LandingResult:
    """What one landing wrote, and what it cost."""

    landed: Landed
    rows: list[dict[str, Any]]
    http_calls: int | None  # None when the adapter's client does not count calls
    counters: Mapping[str, int] = field(default_factory=dict)  # dataset-specific: fetched, carried_forward...

    @property
    def path(self) -> Path:
        """The local file (see ``location`` for object stores)."""
        return self.landed.file

    @property
    def location(self) -> str:
        return self.landed.location


# -- helpers ------------------------------------------------------------------------------------------------


def http_calls(adapter: object) -> int | None:
    """HTTP requests the adapter's client has sent so far (``client.http.stats.requests``), if it counts them."""
    stats = getattr(getattr(getattr(adapter, "client", None), "http", None), "stats", None)
    requests = getattr(stats, "requests", None)
    return requests if isinstance(requests, int) else None


def _calls_since(adapter: object, before: int | None) -> int | None:
    after = http_calls(adapter)
    return after - before if after is not None and before is not None else None


def to_json(value: Mapping[str, Any] | None) -> str | None:
    """Provider extras as JSON text (sorted keys, non-JSON values as strings); None when empty."""
    return json.dumps(dict(value), default=str, sort_keys=True) if value else None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def mask_email(value: str) -> str:
    """``zoe@example.org`` -> ``z***@example.org``: previews never show a full address."""
    local, at, domain = value.partition("@")
    if not at:
        return value[:1] + "***" if value else value
    return f"{local[:1]}***@{domain}"


# -- landing state -------------------------------------------------------------------------------------------


class LandingState:
    """A small JSON document per (provider, dataset): what was last landed, for incremental re-runs. Kept in the
    lake (``_state/``), written atomically like the Parquet files."""

    def __init__(self, lake: Lake, key: str, data: dict[str, Any]) -> None:
        self.lake = lake
        self.key = key
        self.data = data

    @property
    def path(self) -> Path | None:
        """The state file on this machine's disk, or None in an object store."""
        return self.lake.local_path(self.key)

    @classmethod
    def load(cls, lake_root: "str | os.PathLike[str] | Lake", provider: str, dataset: str) -> "LandingState":
        lake = open_lake(lake_root)
        key = lake.path(STATE_DIR, f"provider={provider}", f"{dataset}.json")
        try:
            raw = lake.read_bytes(key)
            data = json.loads(raw.decode("utf-8")) if raw is not None else {}
        except (json.JSONDecodeError, UnicodeDecodeError):  # unreadable: start over
            data = {}
        if not isinstance(data, dict) or data.get("version") != 1:
            data = {}
        data.setdefault("version", 1)
        data.setdefault("campaigns", {})
        return cls(lake, key, data)

    @property
    def campaigns(self) -> dict[str, Any]:
        return self.data["campaigns"]

    def save(self) -> None:
        """Atomic replace (temp file, fsync, rename; one object upload in an object store)."""
        body = json.dumps(self.data, sort_keys=True, default=str).encode("utf-8")
        self.lake.write(self.key, lambda out: out.write(body))


# -- rows per dataset ----------------------------------------------------------------------------------------


def balance_rows(adapter: EspProvider, now: datetime) -> list[dict[str, Any]]:
    b = adapter.balance()
    return [
        {
            "snapshot_at": now,
            "currency": b.currency,
            "amount": b.amount,
            "bonus": b.bonus,
            "emails_left": b.emails_left,
            "quota_used": b.quota_used,
            "quota_allowed": b.quota_allowed,
            "unlimited": b.unlimited,
            "not_exposed_reason": b.not_exposed_reason,
            "extra": to_json(b.extra),
        }
    ]


def _campaign_detail(c: Campaign) -> dict[str, Any]:
    return {
        "name": c.name,
        "book_id": c.book_id,
        "subject": c.subject,
        "sender_email": c.sender_email,
        "created_at": c.created_at.isoformat() if c.created_at else None,
        "send_at": c.send_at.isoformat() if c.send_at else None,
        "recipients": c.recipients,
        "extra": to_json(c.extra),
    }


def _listing_entry(c: Campaign) -> dict[str, Any]:
    """A listed campaign as JSON-safe values (:func:`_from_listing_entry` reads it back)."""
    return {
        **_campaign_detail(c),
        "id": c.id,
        "state": str(c.state),
        "provider_status": c.provider_status,
        "extra": json.loads(json.dumps(dict(c.extra), default=str)),
    }


def _from_listing_entry(e: Mapping[str, Any]) -> Campaign:
    return Campaign(
        id=e["id"],
        name=e["name"],
        state=CampaignState(e["state"]),
        provider_status=e["provider_status"],
        book_id=e["book_id"],
        subject=e["subject"],
        sender_email=e["sender_email"],
        created_at=_parse(e["created_at"]),
        send_at=_parse(e["send_at"]),
        recipients=e["recipients"],
        extra=e["extra"] or {},
    )


def recent_listing(state: LandingState, now: datetime, max_age: timedelta = LISTING_MAX_AGE) -> list[Campaign] | None:
    """The campaign listing the ``campaigns`` landing saved, if it is at most ``max_age`` old (else None)."""
    listing = state.data.get("listing")
    if not isinstance(listing, dict) or "fetched_at" not in listing:
        return None
    age = now - datetime.fromisoformat(listing["fetched_at"])
    if age < timedelta(0) or age > max_age:
        return None
    try:
        return [_from_listing_entry(e) for e in listing["campaigns"]]
    except (KeyError, TypeError, ValueError):  # a listing from another version: list again
        return None


def _needs_detail(c: Campaign) -> bool:
    """A listing that leaves the book out (Pakat: the list, subject and sender; LiteStartup's current dialect: the
    audience) needs one ``get_campaign`` per campaign."""
    return c.book_id is None


def campaign_rows(
    adapter: EspProvider, now: datetime, state: LandingState | None = None, *, full_refresh: bool = False
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every listed campaign; missing details are read once per campaign and reused while it stays terminal."""
    rows: list[dict[str, Any]] = []
    fetched = reused = 0
    known = state.campaigns if state is not None else {}
    listing = list(adapter.list_campaigns())
    if state is not None:  # for the stats landing that follows (see recent_listing)
        state.data["listing"] = {"fetched_at": now.isoformat(), "campaigns": [_listing_entry(c) for c in listing]}
    for c in listing:
        detail = _campaign_detail(c)
        if _needs_detail(c):
            cached = known.get(c.id)
            if (
                not full_refresh
                and cached is not None
                and cached.get("provider_status") == c.provider_status
                and c.state.terminal
            ):
                detail = cached["detail"]
                reused += 1
            else:
                full = adapter.get_campaign(c.id)
                detail = {k: v if v is not None else detail.get(k) for k, v in _campaign_detail(full).items()}
                fetched += 1
            if state is not None:
                known[c.id] = {"provider_status": c.provider_status, "detail": detail}
        send_at = _utc(_parse(detail["send_at"]))
        rows.append(
            {
                "campaign_id": c.id,
                "name": detail["name"] or c.name,
                "book_id": detail["book_id"],
                "subject": detail["subject"],
                "sender_email": detail["sender_email"],
                "state": str(c.state),
                "provider_status": c.provider_status,
                "created_at": _utc(_parse(detail["created_at"])),
                "send_at": send_at,
                "sent_at": send_at if c.state is CampaignState.SENT else None,
                "recipients": detail["recipients"],
                "extra": detail["extra"],
                "snapshot_at": now,
            }
        )
    return rows, {"campaigns": len(rows), "details_fetched": fetched, "details_reused": reused}


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def stats_fingerprint(s: CampaignStats) -> str:
    payload = {**{k: getattr(s, k) for k in STATS_COUNTERS}, "extra": dict(s.extra)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fetch_stats(adapter: EspProvider, ids: Sequence[str], concurrency: int) -> dict[str, CampaignStats]:
    """Each campaign's stats, ``concurrency`` reads at a time (GETs: safe to overlap and to retry). Latency,
    not the API, bounds a one-at-a-time loop; the shared client's limiter keeps the provider's rate."""
    if concurrency <= 1 or len(ids) <= 1:
        return {cid: adapter.campaign_stats(cid) for cid in ids}
    with ThreadPoolExecutor(max_workers=min(concurrency, len(ids)), thread_name_prefix="esp-stats") as pool:
        return dict(zip(ids, pool.map(adapter.campaign_stats, ids), strict=True))


def campaign_stats_rows(
    adapter: EspProvider,
    now: datetime,
    state: LandingState,
    *,
    until: datetime | None = None,
    recheck_after: timedelta = DEFAULT_RECHECK,
    settle_after: timedelta = DEFAULT_SETTLE_AFTER,
    full_refresh: bool = False,
    details: Mapping[str, Mapping[str, Any]] | None = None,
    listing: Sequence[Campaign] | None = None,
    concurrency: int = STATS_CONCURRENCY,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Cumulative counters of every non-draft campaign created before ``until``.

    A settled campaign (terminal, and sent more than ``settle_after`` before its last fetch or with counters
    identical on two fetches in a row) is carried forward from ``state`` without an API call until
    ``recheck_after`` has passed since its last fetch; anything else is fetched. ``details`` fills the book id
    and send time a listing leaves out (campaign id -> detail, from the campaigns landing state); ``listing``
    is a recent campaign listing to use instead of listing again. Up to ``concurrency`` stats reads are in
    flight at once (reads only; the client's rate limiter still paces them).
    """
    chosen: list[tuple[Campaign, dict[str, Any] | None]] = []  # (campaign, settled state entry to carry or None)
    for c in listing if listing is not None else adapter.list_campaigns():
        if c.state in (CampaignState.DRAFT, CampaignState.TEST):
            continue  # nothing sent, nothing counted
        born = c.created_at or c.send_at
        if until is not None and born is not None and born >= until:
            continue  # created after the partition's day
        entry = state.campaigns.get(c.id)
        fresh_enough = entry is not None and now - datetime.fromisoformat(entry["fetched_at"]) < recheck_after
        carry = (
            not full_refresh
            and entry is not None
            and entry.get("settled")
            and c.state.terminal
            and entry.get("provider_status") == c.provider_status
            and fresh_enough
        )
        chosen.append((c, entry if carry else None))
    stats = _fetch_stats(adapter, [c.id for c, carried_entry in chosen if carried_entry is None], concurrency)

    rows: list[dict[str, Any]] = []
    fetched = carried = 0
    for c, carried_entry in chosen:
        known: Mapping[str, Any] = (details or {}).get(c.id) or {}
        if carried_entry is not None:
            counters: dict[str, Any] = dict(carried_entry["counters"])
            extra = carried_entry.get("extra") or {}
            fetched_at = datetime.fromisoformat(carried_entry["fetched_at"])
            carried += 1
        else:
            s = stats[c.id]
            entry = state.campaigns.get(c.id)
            fingerprint = stats_fingerprint(s)
            sent_at = _utc(c.send_at or c.created_at or _parse(known.get("send_at") or known.get("created_at")))
            settled = c.state.terminal and (
                (sent_at is not None and now - sent_at > settle_after)
                or (
                    entry is not None
                    and entry.get("fingerprint") == fingerprint
                    and entry.get("provider_status") == c.provider_status
                )
            )
            counters = {k: getattr(s, k) for k in STATS_COUNTERS}
            extra = dict(s.extra)
            fetched_at = now
            fetched += 1
            state.campaigns[c.id] = {
                "fingerprint": fingerprint,
                "counters": counters,
                "extra": json.loads(json.dumps(extra, default=str)),
                "fetched_at": now.isoformat(),
                "provider_status": c.provider_status,
                "settled": settled,
            }
        rows.append(
            {
                "campaign_id": c.id,
                "campaign_name": c.name,
                "book_id": c.book_id or known.get("book_id"),
                "state": str(c.state),
                "provider_status": c.provider_status,
                **counters,
                "extra": to_json(extra),
                "fetched_at": fetched_at,
                "carried_forward": fetched_at != now,
                "snapshot_at": now,
            }
        )
    counters = {"campaigns": len(rows), "stats_fetched": fetched, "stats_carried_forward": carried}
    counters["listing_reused"] = int(listing is not None)
    return rows, counters


def blacklist_rows(adapter: EspProvider, now: datetime) -> list[dict[str, Any]]:
    """Every suppression the provider reports, account-wide ones with ``book_id`` null; duplicates dropped."""
    seen: set[tuple[str, str, str | None]] = set()
    rows: list[dict[str, Any]] = []
    for s in adapter.suppressions(None):
        key = (s.email.strip().lower(), s.reason, s.book_id)
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "email": s.email.strip().lower(),
                "reason": s.reason,
                "book_id": s.book_id,
                "since": _utc(s.since),
                "detail": s.detail,
                "snapshot_at": now,
            }
        )
    return rows


def book_member_rows(adapter: EspProvider, now: datetime) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for b in adapter.list_books():
        for m in adapter.list_members(b.id):
            rows.append(
                {
                    "book_id": b.id,
                    "book_name": b.name,
                    "email": m.email,
                    "state": str(m.state),
                    "provider_status": m.provider_status,
                    "provider_id": m.provider_id,
                    "added_at": _utc(m.added_at),
                    "fields": to_json(m.fields),
                    "snapshot_at": now,
                }
            )
    return rows


def supports_delivery_events(adapter: object) -> bool:
    return isinstance(adapter, DeliveryEventSource)


def delivery_event_rows(adapter: object, since: datetime, until: datetime) -> list[dict[str, Any]]:
    if not isinstance(adapter, DeliveryEventSource):
        raise NotExposedError(f"{getattr(adapter, 'name', adapter)!r} exposes no delivery log")
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for e in adapter.delivery_events(since, until):
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        rows.append(
            {
                "event_id": e.event_id,
                "campaign_id": e.campaign_id,
                "email": e.email,
                "status": e.status,
                "provider_status": e.provider_status,
                "occurred_at": _utc(e.occurred_at),
                "detail": e.detail,
                "extra": to_json(e.extra),
            }
        )
    return rows


# -- landing ---------------------------------------------------------------------------------------------------


def day_window(day: date | str) -> tuple[datetime, datetime]:
    """``[00:00, next 00:00)`` UTC of a day."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _land(
    lake_root: str | os.PathLike[str],
    dataset: str,
    adapter: EspProvider,
    day: date | str,
    collect: Callable[[], tuple[list[dict[str, Any]], Mapping[str, int]]],
    *,
    run_id: str,
    now: datetime,
    after: Callable[[], None] | None = None,
) -> LandingResult:
    before = http_calls(adapter)
    rows, counters = collect()
    landed = land(lake_root, dataset, adapter.account, day, rows, run_id=run_id, landed_at=now)
    if after is not None:
        after()  # the landing state follows the file, never runs ahead of it
    return LandingResult(landed, rows, _calls_since(adapter, before), counters)


def _plain(rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    out = list(rows)
    return out, {}


def land_balances(
    lake_root: str | os.PathLike[str], adapter: EspProvider, *, run_id: str, now: datetime | None = None
) -> LandingResult:
    now = now or datetime.now(UTC)
    return _land(
        lake_root, "balances", adapter, now.date(), lambda: _plain(balance_rows(adapter, now)), run_id=run_id, now=now
    )


def land_campaigns(
    lake_root: str | os.PathLike[str],
    adapter: EspProvider,
    *,
    run_id: str,
    now: datetime | None = None,
    full_refresh: bool = False,
) -> LandingResult:
    now = now or datetime.now(UTC)
    state = LandingState.load(lake_root, adapter.account, "campaigns")
    return _land(
        lake_root,
        "campaigns",
        adapter,
        now.date(),
        lambda: campaign_rows(adapter, now, state, full_refresh=full_refresh),
        run_id=run_id,
        now=now,
        after=state.save,
    )


def land_blacklist(
    lake_root: str | os.PathLike[str], adapter: EspProvider, *, run_id: str, now: datetime | None = None
) -> LandingResult:
    now = now or datetime.now(UTC)
    return _land(
        lake_root,
        "blacklist",
        adapter,
        now.date(),
        lambda: _plain(blacklist_rows(adapter, now)),
        run_id=run_id,
        now=now,
    )


def land_book_members(
    lake_root: str | os.PathLike[str], adapter: EspProvider, *, run_id: str, now: datetime | None = None
) -> LandingResult:
    now = now or datetime.now(UTC)
    return _land(
        lake_root,
        "book_members",
        adapter,
        now.date(),
        lambda: _plain(book_member_rows(adapter, now)),
        run_id=run_id,
        now=now,
    )


def land_campaign_stats(
    lake_root: str | os.PathLike[str],
    adapter: EspProvider,
    day: date | str,
    *,
    run_id: str,
    now: datetime | None = None,
    recheck_after: timedelta = DEFAULT_RECHECK,
    settle_after: timedelta = DEFAULT_SETTLE_AFTER,
    listing_max_age: timedelta = LISTING_MAX_AGE,
    full_refresh: bool = False,
    concurrency: int = STATS_CONCURRENCY,
) -> LandingResult:
    """The day's snapshot of every campaign's cumulative counters (re-landing a day replaces its file)."""
    now = now or datetime.now(UTC)
    _, until = day_window(day)
    state = LandingState.load(lake_root, adapter.account, "campaign_stats")
    campaigns_state = LandingState.load(lake_root, adapter.account, "campaigns")
    details = {cid: entry.get("detail") or {} for cid, entry in campaigns_state.campaigns.items()}
    listing = None if full_refresh else recent_listing(campaigns_state, now, listing_max_age)
    return _land(
        lake_root,
        "campaign_stats",
        adapter,
        day,
        lambda: campaign_stats_rows(
            adapter,
            now,
            state,
            until=until,
            recheck_after=recheck_after,
            settle_after=settle_after,
            full_refresh=full_refresh,
            details=details,
            listing=listing,
            concurrency=concurrency,
        ),
        run_id=run_id,
        now=now,
        after=state.save,
    )


def land_delivery_events(
    lake_root: str | os.PathLike[str],
    adapter: EspProvider,
    day: date | str,
    *,
    run_id: str,
    now: datetime | None = None,
) -> LandingResult:
    """Delivery records dated in the day; raises :class:`NotExposedError` where the provider has none."""
    now = now or datetime.now(UTC)
    since, until = day_window(day)
    return _land(
        lake_root,
        "delivery_events",
        adapter,
        day,
        lambda: _plain(delivery_event_rows(adapter, since, until)),
        run_id=run_id,
        now=now,
    )


SNAPSHOT_LANDERS: dict[str, Callable[..., LandingResult]] = {
    "balances": land_balances,
    "campaigns": land_campaigns,
    "blacklist": land_blacklist,
    "book_members": land_book_members,
}
DAILY_LANDERS: dict[str, Callable[..., LandingResult]] = {
    "campaign_stats": land_campaign_stats,
    "delivery_events": land_delivery_events,
}


def provider_datasets(provider: str) -> tuple[list[str], list[str]]:
    """(snapshot datasets, daily datasets) a provider lands: delivery events only where its adapter exposes
    them. Decided from the adapter class, so it is safe at definition time (no network)."""
    cls = plugin(provider).adapter_class()
    daily = ["campaign_stats", *(["delivery_events"] if issubclass(cls, DeliveryEventSource) else [])]
    return list(SNAPSHOT_LANDERS), daily
