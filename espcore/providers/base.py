"""The provider-neutral interface the sync, campaign and landing layers use.

Every provider client exposes its full API in its own terms (``SendPulseClient``, ``PakatClient``,
``LiteStartupClient``); an *adapter* per provider implements :class:`EspProvider` on top of it, so the upper
layers treat all providers alike. How each concept maps onto each provider is tabled in ``docs/providers.md``.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, overload, runtime_checkable

from espcore.errors import AuthError, ConfigurationError, EspError, NotFoundError, PermissionDeniedError


class MemberState(StrEnum):
    """A contact's state in a book, normalised across providers."""

    ACTIVE = "active"  # receives campaigns
    PENDING = "pending"  # awaiting opt-in confirmation or activation
    UNSUBSCRIBED = "unsubscribed"
    BLACKLISTED = "blacklisted"
    BOUNCED = "bounced"
    BLOCKED = "blocked"  # refused or disabled by the provider
    REMOVED = "removed"
    UNKNOWN = "unknown"

    @property
    def suppressed(self) -> bool:
        return self in (MemberState.UNSUBSCRIBED, MemberState.BLACKLISTED)


class CampaignState(StrEnum):
    """A campaign's lifecycle, normalised across providers."""

    DRAFT = "draft"
    PENDING = "pending"  # scheduled, queued, moderated or sending
    SENT = "sent"
    FAILED = "failed"  # blocked, cancelled, rejected
    TEST = "test"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in (CampaignState.SENT, CampaignState.FAILED)


@dataclass(frozen=True)
class Book:
    """A subscriber container: SendPulse address book, Pakat list, LiteStartup tag."""

    id: str
    name: str
    member_count: int | None = None
    active_count: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class MemberInput:
    """One contact to add or update: a normalised email and provider field values (already mapped).

    ``exists`` is what the caller knows: False when the sync has never written the address to this book and the
    provider's suppressions, read at the start of the run, do not hold it (an adapter that must otherwise look
    each contact up may then try the create first and fall back on the provider's conflict answer); True when
    the sync has written it; None when it cannot say."""

    email: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    exists: bool | None = None


@dataclass(frozen=True)
class AddressRules:
    """What a provider accepts as a contact address beyond RFC 5321/5322, checked locally before anything is
    sent (:func:`espcore.sync.validate.email_problem`). An adapter may expose one as ``address_rules``; without
    it only the RFC rules apply.

    ``max_length`` counts characters as the provider stores them (a longer address may be cut silently);
    ``unicode_local`` and ``unicode_domain`` say whether non-ASCII local parts (SMTPUTF8) and domains written in
    Unicode (IDN) are accepted; ``source`` says where the rule comes from."""

    max_length: int | None = None
    unicode_local: bool = True
    unicode_domain: bool = True
    source: str = ""


@dataclass(frozen=True)
class Member:
    """A contact as the provider reports it."""

    email: str
    state: MemberState
    provider_status: str
    provider_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    added_at: datetime | None = None


@dataclass(frozen=True)
class RowResult:
    """The provider's answer for one row of a batch."""

    email: str
    ok: bool
    provider_id: str | None = None
    error: str | None = None
    suppressed: bool = False  # refused because the provider has the address blacklisted/unsubscribed
    transient: bool = False  # not decided (e.g. the batch hit a transient fault): retry later


class Accepted(Sequence[RowResult]):
    """The answer of a member-write call that the provider took for every row, in the order sent: a plain
    success (:class:`RowResult` with ``ok``) per address, made only when one is read. A sync reads the whole
    answer from ``emails`` at once (a call of 100 rows would otherwise build 100 objects to say "all done")."""

    __slots__ = ("emails",)

    def __init__(self, emails: Sequence[str]) -> None:
        self.emails = emails

    def __len__(self) -> int:
        return len(self.emails)

    @overload
    def __getitem__(self, index: int) -> RowResult: ...
    @overload
    def __getitem__(self, index: slice) -> "Accepted": ...
    def __getitem__(self, index: int | slice) -> "RowResult | Accepted":
        if isinstance(index, slice):
            return Accepted(self.emails[index])
        return RowResult(self.emails[index], ok=True)

    def __iter__(self) -> Iterator[RowResult]:
        return (RowResult(e, ok=True) for e in self.emails)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Accepted):
            return list(self.emails) == list(other.emails)
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # equal to lists, like them unhashable

    def __repr__(self) -> str:
        return f"Accepted({list(self.emails)!r})"


@dataclass(frozen=True)
class Suppression:
    """An address the provider will not mail."""

    email: str
    reason: str  # blacklisted | unsubscribed | bounced | complaint | blocked
    book_id: str | None = None  # None = account-wide
    since: datetime | None = None
    detail: str | None = None


@dataclass(frozen=True)
class CampaignDraft:
    """What the launch layer asks a provider to create. ``name`` ends with ``ck-<campaign_key>``."""

    name: str
    book_id: str
    subject: str
    sender_name: str
    sender_email: str
    html: str | None = None
    template_id: str | None = None
    send_at: datetime | None = None  # aware datetime; None = now
    attachments: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    state: CampaignState
    provider_status: str
    book_id: str | None = None
    subject: str | None = None
    sender_email: str | None = None
    created_at: datetime | None = None
    send_at: datetime | None = None
    recipients: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CampaignStats:
    """Cumulative counters of one campaign; ``extra`` keeps provider-specific counters, never dropped."""

    campaign_id: str
    sent: int | None = None
    delivered: int | None = None
    opened: int | None = None
    clicked: int | None = None
    bounced: int | None = None
    unsubscribed: int | None = None
    spam: int | None = None
    errors: int | None = None
    queued: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Balance:
    """Money, plan letters or sending quota. Fields a provider does not expose stay None (never invented)."""

    currency: str | None = None
    amount: Decimal | None = None
    bonus: Decimal | None = None
    emails_left: int | None = None
    quota_used: int | None = None
    quota_allowed: int | None = None
    unlimited: bool = False
    not_exposed_reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryEvent:
    """One delivery record as the provider logs it (Pakat delivery log, LiteStartup sent email)."""

    event_id: str  # the provider's message id (or log id): unique per provider
    email: str
    status: str  # normalised: queued | sent | delivered | bounced | failed | blacklisted | opened | clicked | ...
    provider_status: str
    occurred_at: datetime | None = None  # aware, UTC
    campaign_id: str | None = None  # None for transactional mail
    detail: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class ConcurrentWriter(Protocol):
    """Optional capability: the adapter's member writes (``upsert_members``, ``remove_members``) may be called
    from several threads at once, up to ``calls_in_flight`` (its client and its counters are thread-safe). The
    sync then keeps that many write calls in flight behind the client's shared rate limiter, so a provider's
    request rate is reached even when one call's round trip is longer than the gap the limit allows between
    calls (SendPulse: 10 requests/s is one every 100 ms). Without it, one call at a time."""

    calls_in_flight: int


def calls_in_flight(provider: object) -> int:
    """How many member-write calls the sync may have in flight with ``provider`` (1 unless it says more)."""
    if isinstance(provider, ConcurrentWriter):
        return max(1, int(provider.calls_in_flight))
    return 1


@dataclass(frozen=True)
class MemberBatch:
    """The rows of one member-write call, column by column, as a sync hands them to a :class:`PreparedWriter`:
    normalised addresses, their mapped values, and what the sync knows of each (:attr:`MemberInput.exists`)."""

    emails: Sequence[str]
    fields: Sequence[Mapping[str, Any]]
    exists: Sequence[bool | None]

    def __len__(self) -> int:
        return len(self.emails)

    def members(self) -> list[MemberInput]:
        """The rows as :class:`MemberInput` (what :meth:`EspProvider.upsert_members` takes)."""
        return list(map(MemberInput, self.emails, self.fields, self.exists))


@dataclass(frozen=True)
class PreparedUpsert:
    """An upsert call built ahead of sending (:meth:`PreparedWriter.prepare_upsert`): the book, the rows, and the
    request as the adapter will send it (its own form: SendPulse, the encoded JSON body)."""

    book_id: str
    batch: MemberBatch
    request: Any


@runtime_checkable
class PreparedWriter(Protocol):
    """Optional capability: build an upsert call's request before the call. A sync prepares the calls of a page
    on its bookkeeper thread, while the calls of the page before go out, so its calling thread only sends; the
    rows then never become :class:`MemberInput` objects. ``send_prepared(prepare_upsert(book, batch))`` must
    send what ``upsert_members(book, batch.members())`` sends (``batch``: at most ``batch_size`` rows) and
    answer the same."""

    def prepare_upsert(self, book_id: str, batch: MemberBatch) -> PreparedUpsert: ...
    def send_prepared(self, prepared: PreparedUpsert) -> Sequence[RowResult]: ...


@runtime_checkable
class DeliveryEventSource(Protocol):
    """Optional capability, kept out of :class:`EspProvider`: providers exposing per-message delivery logs.

    Pakat (campaign delivery logs) and LiteStartup (``GET /emails``) implement it; SendPulse has no such
    listing (only a per-address look-up), so it does not.
    """

    def delivery_events(self, since: datetime, until: datetime) -> Iterator[DeliveryEvent]:
        """Events that happened in ``[since, until)`` (aware datetimes)."""
        ...


@dataclass(frozen=True)
class ErasureStep:
    """What a provider did for one address of an erasure request."""

    email: str
    #: ``deleted`` (from every book), ``removed`` (from ``book_id``), ``blacklisted``, ``not_present``, ``failed``
    action: str
    ok: bool
    book_id: str | None = None
    detail: str | None = None  # the provider's answer, for the audit trail


@runtime_checkable
class Eraser(Protocol):
    """Optional capability: delete addresses from every book of the account, the provider's own way (one call
    where it has one), and put them on the account's blacklist where it has one. Idempotent: an address already
    gone is ``not_present``. A provider without it is erased book by book with ``remove_members``."""

    def erase(self, emails: Sequence[str]) -> list[ErasureStep]:
        """Steps per address; a failure for one address is a ``failed`` step (retried by the next run), while an
        error of the account itself (credentials, permissions) raises."""
        ...


def erase_each(emails: Sequence[str], erase_one: Callable[[str], list[ErasureStep]]) -> list[ErasureStep]:
    """:meth:`Eraser.erase` address by address: a provider's not-found is ``not_present``; any other error about
    the address is a ``failed`` step with the provider's message; an error of the account (authentication,
    permission, configuration) propagates and fails the run."""
    steps: list[ErasureStep] = []
    for email in emails:
        try:
            steps.extend(erase_one(email))
        except NotFoundError:
            steps.append(ErasureStep(email, "not_present", True))
        except (AuthError, PermissionDeniedError, ConfigurationError):
            raise
        except EspError as exc:
            steps.append(ErasureStep(email, "failed", False, detail=str(exc)))
    return steps


@runtime_checkable
class SuppressionSignature(Protocol):
    """Optional capability: a cheap fingerprint of everything :meth:`EspProvider.suppressions` would list for a
    book (a few calls, whatever the book's size). A sync that finds it unchanged since its last full read skips
    reading every member again."""

    def suppression_signature(self, book_id: str) -> str: ...


@runtime_checkable
class DraftLauncher(Protocol):
    """Optional capability of providers that create a campaign and launch it in two calls (a crash between them
    leaves a draft): launch such a draft. A provider that sends on create has no draft to finish."""

    def launch_draft(self, campaign: Campaign) -> None: ...


@dataclass(frozen=True)
class TestMessage:
    """A campaign's content sent to test recipients only (never the book): see :class:`TestSender`."""

    __test__ = False  # not a pytest test class

    name: str
    subject: str
    sender_name: str
    sender_email: str
    html: str | None = None
    template_id: str | None = None


@runtime_checkable
class TestSender(Protocol):
    """Optional capability: send a campaign's content to a few test addresses, outside any book's statistics."""

    def send_test(self, message: TestMessage, recipients: Sequence[str], *, book_id: str) -> None: ...


@dataclass(frozen=True)
class CostInfo:
    """What the provider says about affording a send."""

    provider: str
    enough: bool | None  # None: the provider does not expose it
    note: str = ""
    estimated_cost: str | None = None
    quota_left: int | None = None


@runtime_checkable
class CostEstimator(Protocol):
    """Optional capability: the provider prices a send to a book itself (else the balance or quota is read)."""

    def estimate_cost(self, book_id: str, recipients: int) -> CostInfo: ...


@dataclass(frozen=True)
class CampaignRateCap:
    """A cap on campaigns created through the API per rolling hour, and how the provider refuses one more."""

    per_hour: int
    refusal: str  # e.g. "error 791"


@runtime_checkable
class CampaignRateLimited(Protocol):
    """Optional capability: providers that cap API campaigns per rolling hour."""

    def campaign_rate_cap(self) -> CampaignRateCap: ...

    def campaigns_created_since(self, since: datetime) -> int:
        """Campaigns created (by any tool, where the provider dates them) after ``since`` (naive UTC)."""
        ...


@runtime_checkable
class MemberCounter(Protocol):
    """Optional capability: count a book's active members where :class:`Book` carries no counts (Pakat)."""

    def count_active_members(self, book_id: str) -> int: ...


@runtime_checkable
class EspProvider(Protocol):
    """What the sync, campaign and landing layers need from any provider."""

    #: the provider (what the adapter speaks): behaviour is chosen by it
    name: str
    #: the named account (``sendpulse`` unless a deployment declares several, e.g. ``sendpulse_eu``): state, locks,
    #: ledger rows and lake partitions are kept per account
    account: str
    #: rows per write call the adapter handles best (SendPulse 100, Pakat 10,000, LiteStartup 1)
    batch_size: int

    def list_books(self) -> Iterator[Book]: ...
    def find_book(self, name: str) -> Book | None: ...
    def ensure_book(self, name: str) -> Book: ...
    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> Sequence[RowResult]: ...
    def remove_members(self, book_id: str, emails: Sequence[str], *, unsubscribe: bool) -> Sequence[RowResult]: ...
    def list_members(self, book_id: str) -> Iterator[Member]: ...
    def suppressions(self, book_id: str | None = None) -> Iterator[Suppression]: ...
    def create_campaign(self, draft: CampaignDraft) -> Campaign: ...
    def find_campaign(self, name_suffix: str) -> Campaign | None: ...
    def get_campaign(self, campaign_id: str) -> Campaign: ...
    def list_campaigns(self) -> Iterator[Campaign]: ...
    def campaign_stats(self, campaign_id: str) -> CampaignStats: ...
    def balance(self) -> Balance: ...
    def close(self) -> None: ...
