"""Pre-launch guards. Each guard is a pure function of facts gathered beforehand and returns
``GuardResult(passed, reason)``; :func:`gather_facts` reads those facts from the warehouse, the ledger and the
provider, and :func:`evaluate` runs every guard a campaign declares.

Guards: the upstream sync is fresh and its rejected share is under the threshold; the book is non-empty (and
under an optional cap); the balance or quota covers the send; a provider's cap on API campaigns per rolling hour
(SendPulse: 4); an optional required test send.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from espcore.campaigns.ledger import Ledger, WarehouseLike
from espcore.providers.base import (
    CampaignRateCap,
    CampaignRateLimited,
    CostEstimator,
    CostInfo,
    EspProvider,
    MemberCounter,
)
from espcore.providers.registry import title
from espcore.sync.tables import as_utc, ensure_tables


class GuardResult(NamedTuple):
    passed: bool
    reason: str


@dataclass(frozen=True)
class SyncRunInfo:
    run_id: str
    book_id: str | None
    finished_at: datetime  # aware, UTC
    rejected_pct: float
    synced_rows: int | None = None


# -- pure guards ----------------------------------------------------------------------------------------------


def sync_fresh(last: SyncRunInfo | None, *, now: datetime, max_age_minutes: float, sync_name: str) -> GuardResult:
    if last is None:
        return GuardResult(
            False,
            f"sync {sync_name} has no successful run yet (one that left no row pending): the book is not known to "
            "be current",
        )
    age = (as_utc(now) - as_utc(last.finished_at)).total_seconds() / 60.0
    if age > max_age_minutes:
        return GuardResult(
            False,
            f"last successful run of sync {sync_name} finished {age:.0f} min ago "
            f"(at {last.finished_at:%Y-%m-%d %H:%M} UTC), older than the {max_age_minutes:g} min allowed: "
            "run the sync first",
        )
    return GuardResult(True, f"sync {sync_name} succeeded {age:.0f} min ago (limit {max_age_minutes:g} min)")


def rejected_share(last: SyncRunInfo | None, *, max_pct: float, sync_name: str) -> GuardResult:
    if last is None:
        return GuardResult(False, f"sync {sync_name} has no successful run: no rejected share to check")
    if last.rejected_pct > max_pct:
        return GuardResult(
            False,
            f"the last run of sync {sync_name} had {last.rejected_pct:.2f}% of rows rejected by the provider, "
            f"above the {max_pct:g}% limit: the book may be incomplete",
        )
    return GuardResult(True, f"{last.rejected_pct:.2f}% rejected in the last sync (limit {max_pct:g}%)")


def book_size(recipients: int | None, *, max_recipients: int | None, book: str) -> GuardResult:
    if recipients is None:
        return GuardResult(False, f"book '{book}' was not found or its size is unknown: nothing to send to")
    if recipients <= 0:
        return GuardResult(False, f"book '{book}' has no active recipients: refusing to launch to an empty book")
    if max_recipients is not None and recipients > max_recipients:
        return GuardResult(
            False,
            f"book '{book}' has {recipients} recipients, above the declared cap of {max_recipients}: "
            "a segment may have gone wrong",
        )
    cap = f" (cap {max_recipients})" if max_recipients is not None else ""
    return GuardResult(True, f"book '{book}' has {recipients} recipients{cap}")


def balance_covers(cost: CostInfo, *, recipients: int | None) -> GuardResult:
    if cost.enough is None:
        return GuardResult(True, cost.note or f"{cost.provider} does not expose a balance or quota: not checked")
    if not cost.enough:
        return GuardResult(False, cost.note or f"{cost.provider}: the balance/quota does not cover the send")
    return GuardResult(True, cost.note or f"{cost.provider}: the balance/quota covers {recipients} recipients")


def hourly_cap(
    *, provider: str, posts_last_hour: int, oldest_post: datetime | None, cap: CampaignRateCap | None
) -> GuardResult:
    """``provider``: the provider's title; ``cap``: its cap on API campaigns per rolling hour (None: it has none)."""
    if cap is None:
        return GuardResult(True, f"{provider} has no per-hour campaign cap")
    if posts_last_hour >= cap.per_hour:
        when = f"; the next slot opens at {oldest_post + timedelta(hours=1):%H:%M} UTC" if oldest_post else ""
        return GuardResult(
            False,
            f"{provider} allows {cap.per_hour} API campaigns per rolling hour and {posts_last_hour} were created "
            f"in the last hour{when}: launching now would be refused ({cap.refusal})",
        )
    return GuardResult(True, f"{posts_last_hour} of {cap.per_hour} {provider} API campaigns used in the last hour")


def required_test_send(*, required: bool, test_sent_at: datetime | None, recipients: list[str]) -> GuardResult:
    if not required:
        return GuardResult(True, "no test send required")
    if test_sent_at is None:
        where = ", ".join(recipients) if recipients else "(no test_recipients declared!)"
        return GuardResult(
            False,
            f"a test send is required before the real send and none is recorded for this launch key: run the "
            f"launch with test_only=true (sends to {where}), check the inbox, then launch again",
        )
    return GuardResult(True, f"test sent at {test_sent_at:%Y-%m-%d %H:%M} UTC")


# -- facts ----------------------------------------------------------------------------------------------------


def last_sync(warehouse: WarehouseLike, sync_name: str) -> SyncRunInfo | None:
    """The latest complete (not dry) run of a sync, from the engine's ``sync_runs`` table: ``success``, or
    ``partial`` because the provider rejected rows (the rejected-rows guard judges those) but with no row left
    pending. A run that left rows pending did not bring the book up to date: it does not count."""
    with warehouse.connect() as con:
        ensure_tables(con)
        rows = con.fetchall(
            f"SELECT run_id, book_id, finished_at, counts FROM {con.own('sync_runs')} WHERE sync_name = ? "
            "AND status IN ('success', 'partial') AND NOT dry_run AND finished_at IS NOT NULL "
            "ORDER BY finished_at DESC LIMIT 50",
            [sync_name],
        )
    row, counts = None, {}
    for candidate in rows:
        parsed: dict[str, Any] = json.loads(candidate[3]) if candidate[3] else {}
        if not int(parsed.get("pending") or 0):
            row, counts = candidate, parsed
            break
    if row is None:
        return None
    return SyncRunInfo(
        run_id=str(row[0]),
        book_id=str(row[1]) if row[1] is not None else None,
        finished_at=as_utc(row[2]),
        rejected_pct=float(counts.get("rejected_pct") or 0.0),
    )


def synced_rows(warehouse: WarehouseLike, provider: str, book_id: str) -> int:
    with warehouse.connect() as con:
        ensure_tables(con)
        row = con.fetchone(
            f"SELECT count(*) FROM {con.own('sync_state')} WHERE provider = ? AND book_id = ? AND status = 'synced'",
            [provider, book_id],
        )
    return int(row[0]) if row else 0


def cost_info(provider: EspProvider, book_id: str, recipients: int | None) -> CostInfo:
    """The provider's own price of the send where it has one (:class:`CostEstimator`), else its balance or quota
    against the recipients."""
    name = provider.name
    if isinstance(provider, CostEstimator):
        return provider.estimate_cost(book_id, recipients or 0)
    bal = provider.balance()
    if bal.not_exposed_reason:
        return CostInfo(
            name, None, f"{name} does not expose a balance or quota ({bal.not_exposed_reason}): not checked"
        )
    if bal.unlimited:
        return CostInfo(name, True, f"{name}: unlimited sending quota")
    if bal.quota_allowed is not None and bal.quota_used is not None:
        left = max(0, bal.quota_allowed - bal.quota_used)
        need = recipients or 0
        enough = left >= need
        note = f"{name} quota: {bal.quota_used} of {bal.quota_allowed} used, {left} left, the send needs {need}" + (
            "" if enough else ": NOT enough"
        )
        return CostInfo(name, enough, note, None, left)
    if bal.emails_left is not None:
        enough = bal.emails_left >= (recipients or 0)
        return CostInfo(name, enough, f"{name}: {bal.emails_left} emails left, the send needs {recipients}", None)
    return CostInfo(name, None, f"{name} reports no usable balance figure: not checked")


@dataclass
class GuardFacts:
    now: datetime
    last_sync: SyncRunInfo | None
    book_id: str | None
    recipients: int | None
    cost: CostInfo
    posts_last_hour: int
    oldest_post: datetime | None
    test_sent_at: datetime | None
    notes: list[str] = field(default_factory=list)
    rate_cap: CampaignRateCap | None = None  # the provider's cap on API campaigns per hour, if it has one


def gather_facts(
    *,
    warehouse: WarehouseLike,
    ledger: Ledger,
    provider: EspProvider,
    sync_name: str,
    book: str,
    key: str,
    now: datetime,
) -> GuardFacts:
    """Read everything the guards need: the sync's last run, the book and its size, the cost, the hour's count."""
    last = last_sync(warehouse, sync_name)
    notes: list[str] = []
    book_id = last.book_id if last else None
    recipients: int | None = None
    found = provider.find_book(book)
    if found is not None:
        book_id = book_id or found.id
        recipients = found.active_count if found.active_count is not None else found.member_count
    if recipients is None and found is not None and isinstance(provider, MemberCounter):
        recipients = provider.count_active_members(found.id)
    if recipients is None and book_id is not None:
        recipients = synced_rows(warehouse, provider.account, book_id)
        notes.append(f"recipients counted from sync_state ({provider.name} reports no book size)")
    if found is None and book_id is None:
        cost = CostInfo(provider.name, None, "no book yet: cost not checked")
    elif book_id is not None and recipients:
        cost = cost_info(provider, book_id, recipients)
    else:
        cost = CostInfo(provider.name, None, "empty book: cost not checked")
    since = as_utc(now) - timedelta(hours=1)
    posts, oldest = ledger.posts_since(provider.account, since)
    cap: CampaignRateCap | None = None
    listed = 0
    if isinstance(provider, CampaignRateLimited):
        cap = provider.campaign_rate_cap()
        # campaigns created by other tools count too, when the provider dates them
        listed = provider.campaigns_created_since(since)
    row = ledger.get(key)
    return GuardFacts(
        now=now,
        last_sync=last,
        book_id=book_id,
        recipients=recipients,
        cost=cost,
        posts_last_hour=max(posts, listed),
        rate_cap=cap,
        oldest_post=oldest,
        test_sent_at=row.test_sent_at if row else None,
        notes=notes,
    )


@dataclass(frozen=True)
class GuardPolicy:
    sync_name: str
    book: str
    max_sync_age_minutes: float = 24 * 60
    max_rejected_pct: float = 10.0
    max_recipients: int | None = None
    require_test_send: bool = False
    test_recipients: tuple[str, ...] = ()


GUARD_NAMES = ("sync_fresh", "rejected_share", "book_size", "balance_covers", "hourly_cap", "test_send")


def evaluate(facts: GuardFacts, policy: GuardPolicy, provider: str) -> dict[str, GuardResult]:
    """Every guard, by name (see :data:`GUARD_NAMES`)."""
    return {
        "sync_fresh": sync_fresh(
            facts.last_sync, now=facts.now, max_age_minutes=policy.max_sync_age_minutes, sync_name=policy.sync_name
        ),
        "rejected_share": rejected_share(facts.last_sync, max_pct=policy.max_rejected_pct, sync_name=policy.sync_name),
        "book_size": book_size(facts.recipients, max_recipients=policy.max_recipients, book=policy.book),
        "balance_covers": balance_covers(facts.cost, recipients=facts.recipients),
        "hourly_cap": hourly_cap(
            provider=title(provider),
            posts_last_hour=facts.posts_last_hour,
            oldest_post=facts.oldest_post,
            cap=facts.rate_cap,
        ),
        "test_send": required_test_send(
            required=policy.require_test_send, test_sent_at=facts.test_sent_at, recipients=list(policy.test_recipients)
        ),
    }
