"""Launch a campaign at most once per ``campaign_key``, whatever crashes, timeouts or re-runs happen.

The contract is ``docs/sync-semantics.md`` §8. Per ledger status:

* ``sent``: return the stored campaign, post nothing.
* ``failed``: a definite refusal, so nothing went out. A quota refusal (e.g. SendPulse's 4-per-hour cap,
  error 791) goes back to ``planned`` and this launch proceeds; anything else waits for an operator.
* ``posting`` / ``unknown``: a POST may have taken effect. Look the key up at the provider (the name ends with
  ``ck-<key>``); if found, adopt it (finishing a draft left behind) and record ``sent``; if not, stay
  ``unknown`` and raise :class:`LaunchOutcomeUnknown`: only an operator may decide to post again.
* ``planned``: look the key up first (a ledger write may have been lost); if absent, commit ``posting``, then
  POST once (HTTP retries are off for it): 2xx → ``sent``; definite 4xx → ``failed`` (quota → ``planned``);
  timeout, 5xx or dropped connection → ``unknown`` and raise.

``hook`` is called at each step boundary (tests raise from it to simulate a killed process).
"""

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from espcore.campaigns.ledger import Ledger, LedgerConflict, LedgerRow
from espcore.campaigns.spec import LaunchSpec, key_suffix
from espcore.errors import EspError, OutcomeUnknownError, QuotaError, RateLimitError, TransportError
from espcore.providers.base import (
    Campaign,
    CampaignState,
    CampaignStats,
    DraftLauncher,
    EspProvider,
    TestMessage,
    TestSender,
)
from espcore.providers.registry import title

log = logging.getLogger("espcore.campaigns")

#: step names passed to ``hook``, in order
STEPS = ("start", "planned", "looked_up", "posting", "posted", "recorded", "poll")

Hook = Callable[[str], None]


class LaunchError(EspError):
    """A launch did not complete; ``status`` is the ledger status it left."""

    def __init__(self, message: str, *, key: str, status: str, **kwargs: Any) -> None:
        self.key = key
        self.status = status
        super().__init__(message, **kwargs)


class LaunchOutcomeUnknown(LaunchError):
    """The POST may or may not have taken effect and the provider does not list it: an operator decides."""


class LaunchRefused(LaunchError):
    """The provider refused the campaign (definite 4xx); nothing went out; an operator decides."""


class LaunchDeferred(LaunchError):
    """A quota refusal (hourly cap, balance, sending quota): nothing went out; the key is ``planned`` again."""


class LaunchConcurrent(LaunchError):
    """Another run claimed this key between our look-up and our ``posting`` write; we posted nothing."""


class LaunchDraftStuck(LaunchError):
    """A draft with this key exists but this provider has no way to finish it through the API."""


@dataclass
class LaunchResult:
    key: str
    status: str
    campaign: Campaign
    #: what this call did: ``created`` (posted now), ``adopted`` (found at the provider), ``noop`` (ledger sent)
    action: str
    ledger: LedgerRow | None = None
    notes: list[str] = field(default_factory=list)


def _is_quota(exc: BaseException) -> bool:
    return isinstance(exc, QuotaError | RateLimitError)


def _ambiguous(exc: BaseException) -> bool:
    return isinstance(exc, OutcomeUnknownError | TransportError) or (
        isinstance(exc, EspError) and exc.status is not None and exc.status >= 500
    )


def finish_draft(provider: EspProvider, campaign: Campaign) -> Campaign:
    """Launch a draft left behind by an interrupted two-call launch (the adapter's :class:`DraftLauncher`
    capability); a provider that sends on create has no draft to finish."""
    if isinstance(provider, DraftLauncher):
        provider.launch_draft(campaign)
        return provider.get_campaign(campaign.id)
    raise LaunchDraftStuck(
        f"{provider.name}: campaign {campaign.id} ({campaign.name}) is a draft and this adapter cannot launch a "
        "draft; launch or delete it in the provider's UI, then re-run",
        key="",
        status="unknown",
        provider=provider.name,
    )


def launch(
    spec: LaunchSpec,
    provider: EspProvider,
    ledger: Ledger,
    *,
    book_id: str,
    run_id: str | None = None,
    hook: Hook | None = None,
) -> LaunchResult:
    """Launch ``spec`` once (see the module docstring); raises a :class:`LaunchError` when it cannot."""
    step = hook or (lambda _name: None)
    key = spec.key
    suffix = key_suffix(key)
    name = provider.account  # ledger rows and errors name the account (the provider by default)
    step("start")
    row = ledger.plan(
        key,
        provider=name,
        book_id=book_id,
        campaign_name=spec.name,
        occurrence=spec.occurrence,
        provider_name=spec.provider_name,
        run_id=run_id,
    )
    step("planned")

    if row.status == "sent" and row.provider_campaign_id:
        campaign = provider.get_campaign(row.provider_campaign_id)
        return LaunchResult(key, "sent", campaign, "noop", row, ["already launched; nothing posted"])

    if row.status == "failed":
        if row.error_kind == "quota":
            row = ledger.transition(key, "planned", expect=("failed",), last_error=row.last_error, error_kind="quota")
        else:
            raise LaunchRefused(
                f"campaign {key} was refused earlier ({row.last_error}); nothing went out. Fix the cause and "
                "reset the ledger row to 'planned' to try again",
                key=key,
                status="failed",
                provider=name,
            )

    # posting / unknown / planned: the provider is the truth; look the key up first.
    found = provider.find_campaign(suffix)
    step("looked_up")
    if found is not None:
        return _adopt(spec, provider, ledger, found, row, run_id, step)
    if row.status in ("posting", "unknown"):
        ledger.transition(
            key,
            "unknown",
            error_kind="unknown_outcome",
            last_error=row.last_error or "run stopped after 'posting'; the campaign is not listed",
        )
        raise LaunchOutcomeUnknown(
            f"campaign {key} ({spec.provider_name}) may have been posted (ledger: {row.status}, last error: "
            f"{row.last_error or 'none'}) but {name} lists no campaign ending '{suffix}'. Not resending "
            "automatically: check the provider, then set the ledger row to 'planned' to post again or "
            "'failed' to give up",
            key=key,
            status="unknown",
            provider=name,
        )

    # planned and absent: commit 'posting', then POST exactly once.
    try:
        ledger.transition(key, "posting", expect=("planned",), run_id=run_id, book_id=book_id)
    except LedgerConflict as exc:
        raise LaunchConcurrent(
            f"campaign {key} was claimed by another run while this one was checking ({exc}); nothing posted here",
            key=key,
            status="posting",
            provider=name,
        ) from exc
    step("posting")
    try:
        created = provider.create_campaign(spec.draft(book_id))
    except EspError as exc:
        _record_failure(key, ledger, exc)
        if _ambiguous(exc):
            raise LaunchOutcomeUnknown(
                f"the outcome of posting campaign {key} ({spec.provider_name}) is unknown: {exc}. It is recorded "
                "'unknown'; the next launch looks it up and never resends blindly",
                key=key,
                status="unknown",
                provider=name,
            ) from exc
        if _is_quota(exc):
            raise LaunchDeferred(
                f"{name} refused campaign {key} for quota: {exc}. Nothing was sent; the key is 'planned' again "
                "and a later tick will launch it",
                key=key,
                status="planned",
                provider=name,
            ) from exc
        raise LaunchRefused(
            f"{name} refused campaign {key}: {exc}. Nothing was sent; recorded 'failed' for an operator",
            key=key,
            status="failed",
            provider=name,
        ) from exc
    # a crash or kill (BaseException) mid-call leaves 'posting': the next launch resolves it by look-up
    step("posted")
    row = ledger.transition(
        key,
        "sent",
        provider_campaign_id=created.id,
        provider_status=created.provider_status,
        recipients=created.recipients,
    )
    step("recorded")
    return LaunchResult(key, "sent", created, "created", row)


def _record_failure(key: str, ledger: Ledger, exc: EspError) -> None:
    if _ambiguous(exc):
        ledger.transition(key, "unknown", error_kind="unknown_outcome", last_error=str(exc)[:2000])
    elif _is_quota(exc):
        ledger.transition(key, "planned", error_kind="quota", last_error=str(exc)[:2000])
    else:
        ledger.transition(key, "failed", error_kind="rejected", last_error=str(exc)[:2000])


def _adopt(
    spec: LaunchSpec,
    provider: EspProvider,
    ledger: Ledger,
    found: Campaign,
    row: LedgerRow,
    run_id: str | None,
    step: Hook,
) -> LaunchResult:
    notes = [f"found {found.id} at {provider.name} by its key (ledger was {row.status!r}); not posted again"]
    campaign = found
    if found.state is CampaignState.DRAFT:
        try:
            campaign = finish_draft(provider, found)
        except LaunchDraftStuck as exc:
            exc.key = spec.key
            raise
        except EspError as exc:
            if _ambiguous(exc):  # the launch call itself may have worked; the next look-up will tell
                ledger.transition(spec.key, "unknown", error_kind="unknown_outcome", last_error=str(exc)[:2000])
                raise LaunchOutcomeUnknown(
                    f"finishing draft {found.id} of campaign {spec.key} had an unknown outcome: {exc}",
                    key=spec.key,
                    status="unknown",
                    provider=provider.name,
                ) from exc
            raise
        notes.append(f"it was a draft left by an interrupted launch: launched it ({campaign.provider_status})")
    row = ledger.transition(
        spec.key,
        "sent",
        provider_campaign_id=campaign.id,
        provider_status=campaign.provider_status,
        recipients=campaign.recipients,
        run_id=run_id,
    )
    step("recorded")
    return LaunchResult(spec.key, "sent", campaign, "adopted", row, notes)


# -- polling ------------------------------------------------------------------------------------------------


@dataclass
class PollResult:
    campaign: Campaign
    stats: CampaignStats | None
    terminal: bool
    polls: int
    warnings: list[str] = field(default_factory=list)


def poll(
    provider: EspProvider,
    campaign_id: str,
    *,
    timeout_s: float = 0.0,
    interval_s: float = 10.0,
    sleep: Callable[[float], None] | None = None,
    hook: Hook | None = None,
    warn: Callable[[str], None] | None = None,
) -> PollResult:
    """Read the campaign until a terminal state or ``timeout_s`` (measured in slept intervals, so a test's
    ``sleep`` that advances a sandbox clock is exact); return the last view and the first stats.

    Pending states keep polling; an unknown provider status warns and keeps polling. Stopping (timeout, a
    killed run) never cancels the send."""
    import time

    do_sleep = sleep or time.sleep
    warn_fn = warn or log.warning
    warnings: list[str] = []
    rounds = max(0, math.ceil(timeout_s / interval_s)) if interval_s > 0 else 0
    polls = 0
    while True:
        if hook is not None:
            hook("poll")
        campaign = provider.get_campaign(campaign_id)
        polls += 1
        if campaign.state is CampaignState.UNKNOWN:
            msg = f"{provider.name} campaign {campaign_id}: unmapped status {campaign.provider_status!r}; still polling"
            if msg not in warnings:
                warnings.append(msg)
                warn_fn(msg)
        if campaign.state.terminal or polls > rounds:
            break
        do_sleep(interval_s)
    try:
        stats: CampaignStats | None = provider.campaign_stats(campaign_id)
    except EspError as exc:
        warnings.append(f"stats not available yet: {exc}")
        stats = None
    return PollResult(campaign, stats, campaign.state.terminal, polls, warnings)


# -- test sends -----------------------------------------------------------------------------------------------


def send_test(
    spec: LaunchSpec, provider: EspProvider, ledger: Ledger, *, book_id: str, recipients: Sequence[str]
) -> str:
    """Send the campaign's content to ``recipients`` only (the adapter's :class:`TestSender` capability), record
    it in the ledger, and say what was done."""
    if not recipients:
        raise ValueError("no test recipients declared")
    key = spec.key
    ledger.plan(
        key,
        provider=provider.account,
        book_id=book_id,
        campaign_name=spec.name,
        occurrence=spec.occurrence,
        provider_name=spec.provider_name,
    )
    if not isinstance(provider, TestSender):
        raise ValueError(f"{title(provider.name)} has no test send")
    message = TestMessage(
        name=f"{spec.provider_name} (test)",  # must not end with the key: never adopted as the launch
        subject=f"[TEST] {spec.subject}",
        sender_name=spec.sender_name,
        sender_email=spec.sender_email,
        html=spec.html,
        template_id=spec.template_id,
    )
    provider.send_test(message, list(recipients), book_id=book_id)
    ledger.record_test_send(key, list(recipients))
    return f"test of {key} sent to {', '.join(recipients)}"
