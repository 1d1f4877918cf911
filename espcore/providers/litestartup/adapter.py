""":class:`~espcore.providers.base.EspProvider` on LiteStartup, with its optional capabilities."""

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from espcore.errors import (
    ConflictError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
)
from espcore.providers.base import (
    AddressRules,
    Balance,
    Book,
    Campaign,
    CampaignDraft,
    CampaignState,
    CampaignStats,
    DeliveryEvent,
    ErasureStep,
    Member,
    MemberInput,
    MemberState,
    RowResult,
    Suppression,
    TestMessage,
    erase_each,
)
from espcore.providers.litestartup.client import LiteStartupClient
from espcore.providers.litestartup.common import PROVIDER
from espcore.providers.litestartup.models import LsCampaign, LsContact, LsEmail, LsTag, _iso

log = logging.getLogger(__name__)
#: the longest Retry-After a sync's write waits out: the plans' longest window (the hourly cap)
MAX_RATE_WAIT_S = 3600.0

# -- the adapter --------------------------------------------------------------------------------------------

_CAMPAIGN_STATES: Mapping[str, CampaignState] = {
    "draft": CampaignState.DRAFT,
    "scheduled": CampaignState.PENDING,
    "sending": CampaignState.PENDING,
    "sent": CampaignState.SENT,
    "completed": CampaignState.SENT,
    "failed": CampaignState.FAILED,
    "cancelled": CampaignState.FAILED,
}
# a RateLimitError is not a row's answer: it stops the run (see LiteStartupProvider._paced)
_TRANSIENT = (ServerError, TransportError, OutcomeUnknownError)
_ROW_REJECTIONS = (ValidationError, NotFoundError, ConflictError)


def campaign_state(status: str) -> CampaignState:
    """LiteStartup campaign status → :class:`CampaignState`."""
    return _CAMPAIGN_STATES.get(status.lower(), CampaignState.UNKNOWN)


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def contact_payload(fields: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Mapped member fields → (``name``, ``attributes``): first/last names build ``name`` and round-trip as
    attributes; every other field becomes a scalar attribute (dates as ``YYYY-MM-DD``)."""
    attrs = {k: _scalar(v) for k, v in fields.items() if k != "name"}
    name = fields.get("name")
    if name is None and ("first_name" in fields or "last_name" in fields):
        parts = [str(fields.get(k) or "").strip() for k in ("first_name", "last_name")]
        name = " ".join(p for p in parts if p)
    return (str(name) if name is not None else None), attrs


class LiteStartupProvider:
    """:class:`EspProvider` on LiteStartup, in either dialect. A book is a tag (seed: a name on contacts; current:
    a tag object whose id is the book id); one contact per write call (the current dialect's CSV import cannot
    carry custom fields nor say which row failed, so upserts stay per contact)."""

    name = PROVIDER
    account = name  # the named account it speaks for (set by the resource; the provider's name by default)
    batch_size = 1
    #: undocumented: a domain written in Unicode assumed refused (the sandbox models it so)
    address_rules = AddressRules(unicode_domain=False, source="LiteStartup (assumed): ASCII domains only")

    def __init__(
        self,
        client: LiteStartupClient,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_rate_wait_s: float = MAX_RATE_WAIT_S,
    ) -> None:
        """``sleep``/``max_rate_wait_s``: how a sync's write waits out the plan's window when the API refuses it
        with ``429`` and a ``Retry-After`` of at most ``max_rate_wait_s`` seconds (see :meth:`_paced`)."""
        self.client = client
        self._sleep = sleep
        self.max_rate_wait_s = max_rate_wait_s
        self.rate_waits = 0  # how many times a write waited out a window (for run metadata and benchmarks)

    def __repr__(self) -> str:
        return f"LiteStartupProvider({self.client!r})"

    # -- books -------------------------------------------------------------------------------------------

    @property
    def _current(self) -> bool:
        return self.client.current

    def _tag_book(self, tag: LsTag) -> Book:
        total = self.client.list_contacts_page(1, 1, tag=tag.id).info.total
        active = self.client.list_contacts_page(1, 1, tag=tag.id, subscribed=True).info.total
        return Book(id=tag.id, name=tag.name, member_count=total, active_count=active)

    def list_books(self) -> Iterator[Book]:
        """Every tag (seed: seen on contacts), with member and subscribed counts."""
        if self._current:
            for tag in self.client.list_tags():
                yield self._tag_book(tag)
            return
        members: dict[str, int] = {}
        active: dict[str, int] = {}
        for contact in self.client.list_contacts():
            for tag in contact.tags:
                members[tag] = members.get(tag, 0) + 1
                if contact.subscribed:
                    active[tag] = active.get(tag, 0) + 1
        for tag in sorted(members):
            yield Book(id=tag, name=tag, member_count=members[tag], active_count=active.get(tag, 0))

    def find_book(self, name: str) -> Book | None:
        """The tag ``name`` (seed: if any contact carries it; current: if the tag exists)."""
        if self._current:
            tag = self.client.find_tag(name)
            return None if tag is None else self._tag_book(tag)
        total = self.client.list_contacts_page(1, 1, tag=name).info.total
        if not total:
            return None
        active = self.client.list_contacts_page(1, 1, tag=name, subscribed=True).info.total
        return Book(id=name, name=name, member_count=total, active_count=active)

    def ensure_book(self, name: str) -> Book:
        """Seed: tags are created implicitly by name, no call needed. Current: find or create the tag object."""
        if not name.strip():
            raise ValueError("a LiteStartup book (tag) needs a non-empty name")
        if self._current:
            tag = self.client.find_tag(name)
            if tag is None:
                try:
                    tag = self.client.create_tag(name.strip())
                except ConflictError:  # created meanwhile
                    tag = self.client.find_tag(name)
                    if tag is None:
                        raise
            return Book(id=tag.id, name=tag.name)
        return Book(id=name.strip(), name=name.strip())

    # -- members -----------------------------------------------------------------------------------------

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        """Search by email, then PUT (keeping tags, adding the book; never touching ``subscribed``) or POST. A row
        the sync never wrote (``exists=False``) is created first: one call per new contact at the plan's rate
        limit; the provider's conflict answer (the address exists, e.g. in another book or unsubscribed) falls
        back to the search, so a suppressed contact is still never reactivated."""
        return [self._paced(lambda row=row: self._upsert_one(book_id, row)) for row in rows]

    def _paced(self, write: Callable[[], RowResult]) -> RowResult:
        """One row's calls, again after a refusal for rate (429) once its ``Retry-After`` has passed.

        The client paces to the plan's per-minute rate; the free plan's 1,000 calls an hour (pro: 10,000) then run
        out after about 17 minutes, and the API answers 429 with the seconds left in the hour. Waiting that out
        keeps a long sync at the hourly bound in one run, at the cost of one refused call an hour. A refusal
        without ``Retry-After`` (the current dialect documents none) or with a longer one is raised: the engine
        stops the run retryable, its rows left pending, rather than sending every remaining row into the same
        refusal. A 429 is answered before the request is acted on, so the row's calls are simply made again."""
        while True:
            try:
                return write()
            except RateLimitError as exc:
                wait = exc.retry_after
                if wait is None or wait > self.max_rate_wait_s:
                    raise
                log.info("litestartup: the plan's rate window is full; waiting %.0fs as the API asks", wait)
                self.rate_waits += 1
                self._sleep(wait)

    def _native(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Current dialect: first/last name move from the attributes to the contact's own fields."""
        if not self._current:
            return {}
        return {k: (None if attrs.get(k) is None else str(attrs.pop(k))) for k in ("first_name", "last_name")}

    def _upsert_one(self, book_id: str, row: MemberInput) -> RowResult:
        email = row.email.strip()
        name, attrs = contact_payload(row.fields)
        native = self._native(attrs)
        try:
            # a contact the sync never wrote is most likely new: one create, and a conflict sends it the long way
            existing = None if row.exists is False else self.client.find_contact_by_email(email)
            if existing is None:
                try:
                    created = self.client.create_contact(
                        email,
                        name=name,
                        attributes=attrs,
                        tags=[book_id],
                        subscribed=True,
                        retry_safe=True,
                        **native,
                    )
                    return RowResult(email=row.email, ok=True, provider_id=created.id)
                except ConflictError:
                    existing = self.client.find_contact_by_email(email)
                    if existing is None:
                        return RowResult(
                            email=row.email, ok=False, error="conflict, but contact not found", transient=True
                        )
            return self._update_existing(book_id, row, existing, name, attrs, native)
        except UnexpectedResponseError:
            raise  # a 2xx that did not say it worked: the row stays unacknowledged (also an OutcomeUnknownError)
        except _TRANSIENT as exc:
            return RowResult(email=row.email, ok=False, error=exc.message, transient=True)
        except _ROW_REJECTIONS as exc:
            return RowResult(email=row.email, ok=False, error=exc.message)

    def _update_existing(
        self,
        book_id: str,
        row: MemberInput,
        existing: LsContact,
        name: str | None,
        attrs: Mapping[str, Any],
        native: Mapping[str, Any],
    ) -> RowResult:
        if existing.subscribed is None:
            existing = self.client.get_contact(existing.id)
        if existing.subscribed is False:
            return RowResult(
                email=row.email, ok=False, provider_id=existing.id, error="contact is unsubscribed", suppressed=True
            )
        tags = list(existing.tags)
        if book_id not in tags:
            tags.append(book_id)
        merged = {**existing.attributes, **attrs}
        self.client.update_contact(existing.id, name=name, attributes=merged, tags=tags, **native)
        return RowResult(email=row.email, ok=True, provider_id=existing.id)

    def remove_members(self, book_id: str, emails: Sequence[str], *, unsubscribe: bool) -> list[RowResult]:
        """Drop the book tag by PUT, or set ``subscribed=false`` when ``unsubscribe``; absent = accepted."""
        return [self._paced(lambda email=email: self._remove_one(book_id, email, unsubscribe)) for email in emails]

    def _remove_one(self, book_id: str, email: str, unsubscribe: bool) -> RowResult:
        try:
            contact = self.client.find_contact_by_email(email)
            if contact is None:
                return RowResult(email=email, ok=True)
            if unsubscribe:
                if contact.subscribed is not False:
                    self.client.update_contact(contact.id, subscribed=False)
            elif book_id in contact.tags:
                self.client.update_contact(contact.id, tags=[t for t in contact.tags if t != book_id])
            return RowResult(email=email, ok=True, provider_id=contact.id)
        except UnexpectedResponseError:
            raise  # a 2xx that did not say it worked: the rows stay unacknowledged
        except _TRANSIENT as exc:
            return RowResult(email=email, ok=False, error=exc.message, transient=True)
        except _ROW_REJECTIONS as exc:
            return RowResult(email=email, ok=False, error=exc.message)

    def list_members(self, book_id: str) -> Iterator[Member]:
        """Contacts carrying the book tag (current dialect: each read in full, list items carry no fields)."""
        for c in self.client.list_contacts(tag=book_id):
            if self._current:
                c = self.client.get_contact(c.id)
            fields: dict[str, Any] = dict(c.attributes)
            for k in ("first_name", "last_name"):
                value = getattr(c, k)
                if value:
                    fields[k] = value
            if c.name:
                fields["name"] = c.name
            yield Member(
                email=c.email,
                state=MemberState.ACTIVE if c.subscribed else MemberState.UNSUBSCRIBED,
                provider_status="subscribed" if c.subscribed else "unsubscribed",
                provider_id=c.id,
                fields=fields,
                added_at=c.created_at,
            )

    def suppressions(self, book_id: str | None = None) -> Iterator[Suppression]:
        """``subscribed=false`` contacts (spam complaints land there too) and bounced emails.

        ``subscribed`` is account-wide, so every suppression is reported with ``book_id=None`` and listed for any
        ``book_id`` (a contact unsubscribed under another tag must not be added to this one). Campaign messages
        are not in ``GET /emails``: their bounces only arrive through webhooks. The current dialect's email list
        knows no bounces (statuses sent/draft/failed), so there only the unsubscribed contacts are reported.
        """
        seen: set[tuple[str, str]] = set()
        for c in self.client.list_contacts(subscribed=False):
            key = (c.email.lower(), "unsubscribed")
            if key not in seen:
                seen.add(key)
                yield Suppression(email=c.email, reason="unsubscribed", since=c.updated_at or c.created_at)
        if self._current:
            return
        for e in self.client.list_emails(status="bounced"):
            for addr in e.to:
                key = (addr.lower(), "bounced")
                if key not in seen:
                    seen.add(key)
                    yield Suppression(email=addr, reason="bounced", since=e.created_at, detail=e.id)

    # -- campaigns ---------------------------------------------------------------------------------------

    def _campaign(self, c: LsCampaign, *, book_id: str | None = None) -> Campaign:
        return Campaign(
            id=c.id,
            name=c.name,
            state=campaign_state(c.status),
            provider_status=c.status,
            book_id=c.tag if book_id is None else book_id,
            subject=c.subject,
            sender_email=c.from_email,
            created_at=c.created_at,
            send_at=c.scheduled_at or c.sent_at,
            extra={"recipient_list": c.recipient_list} if c.recipient_list else {},
        )

    def create_campaign(self, draft: CampaignDraft) -> Campaign:
        """Create a draft for ``tag:<book>`` then ``/send`` it, or schedule it with ``scheduled_at``.

        A draft with exactly this name (left by an earlier launch refused for quota) is reused, not doubled.
        """
        html = draft.html
        if html is None and draft.template_id:
            html = self.client.get_template(draft.template_id).html
        if not html:
            raise ValidationError("a LiteStartup campaign needs html or a template with html", provider=PROVIDER)
        current = self._current
        recipient_list = None if current else f"tag:{draft.book_id}"
        audience: dict[str, Any] = {"tag_ids": [draft.book_id], "from_name": draft.sender_name} if current else {}
        existing = next((c for c in self.client.list_campaigns(status="draft") if c.name == draft.name), None)
        if existing is not None:
            camp = self.client.update_campaign(
                existing.id,
                subject=draft.subject,
                html=html,
                from_email=draft.sender_email,
                recipient_list=recipient_list,
                scheduled_at=draft.send_at,
                **audience,
            )
            camp = replace(camp, created_at=camp.created_at or existing.created_at)
        else:
            camp = self.client.create_campaign(
                draft.name,
                draft.subject,
                html,
                draft.sender_email,
                recipient_list,
                scheduled_at=draft.send_at,
                **audience,
            )
        if draft.send_at is not None:
            return self._campaign(camp, book_id=draft.book_id)
        sent = self.client.send_campaign(camp.id)
        return self._campaign(replace(camp, status=sent.status), book_id=draft.book_id)

    def find_campaign(self, name_suffix: str) -> Campaign | None:
        """The newest campaign whose name ends with ``name_suffix`` (current dialect: read in full for its tag)."""
        for c in self.client.list_campaigns():
            if c.name.endswith(name_suffix):
                return self._campaign(self.client.get_campaign(c.id) if self._current else c)
        return None

    def get_campaign(self, campaign_id: str) -> Campaign:
        """One campaign, normalised."""
        return self._campaign(self.client.get_campaign(campaign_id))

    def list_campaigns(self) -> Iterator[Campaign]:
        """Every campaign, normalised, newest first."""
        for c in self.client.list_campaigns():
            yield self._campaign(c)

    def campaign_stats(self, campaign_id: str) -> CampaignStats:
        """Cumulative counters; the rates stay in ``extra``."""
        s = self.client.campaign_stats(campaign_id)
        return CampaignStats(
            campaign_id=s.id or campaign_id,
            sent=s.sent,
            delivered=s.delivered,
            opened=s.opened,
            clicked=s.clicked,
            bounced=s.bounced,
            unsubscribed=s.unsubscribed,
            spam=s.spam_reported,
            extra={"open_rate": s.open_rate, "click_rate": s.click_rate},
        )

    def _emails_between(self, since: datetime, until: datetime) -> Iterator[LsEmail]:
        if not self._current:
            yield from self.client.list_emails(
                created_after=since, created_before=until, sort="created_at", order="asc"
            )
            return
        # the current dialect filters by status only: page newest first and stop before ``since``
        window: list[LsEmail] = []
        for e in self.client.list_emails():
            if e.created_at is not None and e.created_at < since:
                break
            window.append(e)
        yield from reversed(window)

    def delivery_events(self, since: datetime, until: datetime) -> Iterator[DeliveryEvent]:
        """Sent emails created in ``[since, until)`` (``GET /emails``), one event per recipient with the message's
        current status. Campaign messages are not listed by the API (their events only come by webhook)."""
        for e in self._emails_between(since, until):
            if e.created_at is not None and not since <= e.created_at < until:
                continue
            for addr in e.to:
                yield DeliveryEvent(
                    event_id=e.id if len(e.to) == 1 else f"{e.id}:{addr.lower()}",
                    email=addr,
                    status=e.status,
                    provider_status=e.status,
                    occurred_at=e.created_at,
                    detail=e.subject,
                    extra={"from": e.from_email, "message_id": e.message_id or e.id},
                )

    def balance(self) -> Balance:
        """Current dialect: the monthly email quota of ``/settings/usage``; seed: not exposed (says so)."""
        return self.client.balance()

    def close(self) -> None:
        """Close the client."""
        self.client.close()

    def send_test(self, message: TestMessage, recipients: Sequence[str], *, book_id: str) -> None:
        """One ``POST /emails`` to the test addresses, with the campaign's HTML (or its template's)."""
        html = message.html or (self.client.get_template(message.template_id).html if message.template_id else "")
        self.client.send_email(list(recipients), message.sender_email, message.subject, html=html)

    def launch_draft(self, campaign: Campaign) -> None:
        """:class:`DraftLauncher`: ``/send`` a draft left by an interrupted launch (a scheduled one sends itself)."""
        if campaign.send_at is None:
            self.client.send_campaign(campaign.id)

    def erase(self, emails: Sequence[str]) -> list[ErasureStep]:
        """:class:`Eraser`: the contact is deleted (its tags, the books, go with it). LiteStartup has no account
        blacklist to add it to: the product's own suppression keeps it out."""

        def one(email: str) -> list[ErasureStep]:
            contact = self.client.find_contact_by_email(email)
            if contact is None:
                return [ErasureStep(email, "not_present", True)]
            self.client.delete_contact(contact.id)
            return [ErasureStep(email, "deleted", True)]

        return erase_each(emails, one)
