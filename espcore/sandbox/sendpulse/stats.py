"""Seeded, deterministic recipient walks for campaign statistics.

Each recipient gets a list of ``[code, unix_ts]`` steps at send start: ``1`` sent, ``2`` delivered, ``3`` opened,
``4`` clicked, optionally ending in a failure or opt-out code. A step counts once the sandbox clock passes its
time, so statistics grow as the clock is advanced and are cumulative (sent ⊇ delivered ⊇ opened ⊇ clicked).
"""

import random
from collections.abc import Iterable, Mapping
from typing import Any

from espcore.sandbox.sendpulse.constants import RECIPIENT_STATUS

PROGRESS = (1, 2, 3, 4)
NOT_SENT = frozenset({13, 17, 18})
BOUNCES = (6, 14, 16, 9, 10, 7, 8, 12)
AFTER_OPEN = frozenset({5, 11, 15})
COUNTRIES = ("UA", "US", "DE", "PL", "KZ", "GB")

DELIVERY_S = 30.0
FORCED_OPEN_S = 60.0


def _forced_steps(code: int, sent_at: float) -> list[list[float]]:
    delivered = sent_at + DELIVERY_S
    opened = delivered + FORCED_OPEN_S
    if code in NOT_SENT:
        return [[code, sent_at]]
    if code == 0:
        return []
    if code == 1:
        return [[1, sent_at]]
    if code in BOUNCES:
        return [[1, sent_at], [code, delivered]]
    steps = [[1, sent_at], [2, delivered]]
    if code >= 3:
        steps.append([3, opened])
    if code == 4:
        steps.append([4, opened + 60])
    if code in AFTER_OPEN:
        steps.append([code, opened + 60])
    return steps


def plan_recipient(
    seed: int, campaign_id: int, email: str, sent_at: float, links: list[str], forced: int | None = None
) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{campaign_id}:{email}")
    if forced is not None:
        steps = _forced_steps(forced, sent_at)
    else:
        r = rng.random()
        if r < 0.004:
            steps = [[18, sent_at]]
        elif r < 0.008:
            steps = [[13, sent_at]]
        elif r < 0.02:
            steps = [[1, sent_at], [rng.choice(BOUNCES[:5]), sent_at + DELIVERY_S]]
        else:
            delivered = sent_at + DELIVERY_S
            steps = [[1, sent_at], [2, delivered]]
            if rng.random() < 0.4:
                opened = delivered + rng.uniform(300, 6 * 3600)
                steps.append([3, opened])
                last = opened
                if rng.random() < 0.5:
                    last = opened + rng.uniform(60, 3600)
                    steps.append([4, last])
                tail = rng.random()
                if tail < 0.02:
                    steps.append([5, last + rng.uniform(60, 3600)])
                elif tail < 0.03:
                    steps.append([11, last + rng.uniform(60, 3600)])
                elif tail < 0.04:
                    steps.append([15, last + rng.uniform(60, 3600)])
    out: dict[str, Any] = {"email": email, "steps": steps}
    if any(int(c) == 3 for c, _ in steps):
        out["country"] = rng.choice(COUNTRIES)
    if any(int(c) == 4 for c, _ in steps):
        out["link"] = rng.choice(links) if links else "https://example.com/"
    return out


def current_code(recipient: Mapping[str, Any], now: float) -> int:
    code = 0
    for c, ts in recipient["steps"]:
        if ts <= now:
            code = int(c)
    return code


def reached(recipient: Mapping[str, Any], code: int, now: float) -> bool:
    return any(int(c) == code and ts <= now for c, ts in recipient["steps"])


def sent_at(recipient: Mapping[str, Any], now: float) -> float | None:
    for c, ts in recipient["steps"]:
        if int(c) == 1 and ts <= now:
            return float(ts)
    return None


def statistics(plan: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """``[{code, count, explain}]``: progress codes cumulative, other codes by current state."""
    counts: dict[int, int] = {}
    for rec in plan:
        cur = current_code(rec, now)
        for code in PROGRESS:
            if reached(rec, code, now):
                counts[code] = counts.get(code, 0) + 1
        if cur not in PROGRESS:
            counts[cur] = counts.get(cur, 0) + 1
    return [{"code": c, "count": n, "explain": RECIPIENT_STATUS.get(c, "")} for c, n in sorted(counts.items()) if n]


def countries(plan: Iterable[Mapping[str, Any]], now: float) -> dict[str, int]:
    out: dict[str, int] = {}
    for rec in plan:
        if "country" in rec and reached(rec, 3, now):
            out[rec["country"]] = out.get(rec["country"], 0) + 1
    return out


def referrals(plan: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    out: dict[str, int] = {}
    for rec in plan:
        if "link" in rec and reached(rec, 4, now):
            out[rec["link"]] = out.get(rec["link"], 0) + 1
    return [{"link": link, "count": n} for link, n in out.items()]
