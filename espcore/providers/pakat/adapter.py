""":class:`~espcore.providers.base.EspProvider` on Pakat, with its optional capabilities."""

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from espcore.errors import (
    ConflictError,
    EspError,
    NotFoundError,
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
from espcore.providers.pakat.client import PakatClient
from espcore.providers.pakat.constants import BULK_MAX, PAKAT_BASE_URL, PER_PAGE_MAX
from espcore.providers.pakat.errors import PakatMutexError
from espcore.providers.pakat.models import PakatCampaign, PakatField, PakatSubscriber, _scalar

# -- the provider-neutral adapter ---------------------------------------------------------------------------------

SUBSCRIBER_STATES: Mapping[str, MemberState] = {
    "confirmed": MemberState.ACTIVE,
    "unconfirmed": MemberState.PENDING,
    "unapproved": MemberState.PENDING,
    "unsubscribed": MemberState.UNSUBSCRIBED,
    "blacklisted": MemberState.BLACKLISTED,
    "disabled": MemberState.BLOCKED,
    "moved": MemberState.REMOVED,
}

CAMPAIGN_STATES: Mapping[str, CampaignState] = {
    "draft": CampaignState.DRAFT,
    "pending-sending": CampaignState.PENDING,
    "processing": CampaignState.PENDING,
    "sending": CampaignState.PENDING,
    "paused": CampaignState.PENDING,
    "pending-approve": CampaignState.PENDING,
    "sent": CampaignState.SENT,
    "blocked": CampaignState.FAILED,
    "pending-delete": CampaignState.FAILED,
}

STANDARD_TAGS: Mapping[str, str] = {"email": "EMAIL", "first_name": "FNAME", "last_name": "LNAME"}
SUPPRESSED_STATUSES = ("unsubscribed", "blacklisted")
DEMO_COMPANY: Mapping[str, str] = {
    "name": "Demo Company",
    "country": "Iran",
    "zone": "Tehran",
    "address_1": "1 Demo Street",
    "city": "Tehran",
    "zip_code": "1234567890",
}


def field_tag(name: str) -> str:
    """Project field name to a Pakat TAG: ``first_name`` -> ``FNAME``, ``city`` -> ``CITY``."""
    if name in STANDARD_TAGS:
        return STANDARD_TAGS[name]
    tag = re.sub(r"[^A-Z0-9_]", "_", name.upper())
    return tag if tag[:1].isalpha() else f"F_{tag}"


def field_value(value: Any) -> str:
    """Project value to Pakat's wire form (booleans yes/no, dates ISO), cut to 255 characters."""
    if value is None:
        return ""
    return _scalar(value)[:255]


class PakatProvider:
    """:class:`EspProvider` on Pakat: books are lists, members are list subscribers."""

    name = "pakat"
    account = name  # the named account it speaks for (set by the resource; the provider's name by default)
    batch_size = BULK_MAX
    #: MailWizz keeps ``list_subscriber.email`` in a varchar(100) and runs MySQL with SQL_MODE="" (a longer
    #: address is cut to 100 characters silently); its validator takes only ASCII before the @-sign
    address_rules = AddressRules(
        max_length=100,
        unicode_local=False,
        source="Pakat (MailWizz) stores 100 characters, ASCII before the @-sign",
    )

    def __init__(
        self,
        client: PakatClient,
        *,
        from_name: str = "Demo Sender",
        from_email: str = "news@demo.example.com",
        reply_to: str | None = None,
        company: Mapping[str, str] | None = None,
        list_description: str = "Synced from the data warehouse",
        opt_in: str | None = "single",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.from_name = from_name
        self.from_email = from_email
        self.reply_to = reply_to or from_email
        self.company = dict(company if company is not None else DEMO_COMPANY)
        self.list_description = list_description
        self.opt_in = opt_in
        self._now = now
        self._fields: dict[str, list[PakatField]] = {}  # list_uid -> its fields, as ensure_fields last saw them

    @classmethod
    def from_api_key(cls, api_key: str, base_url: str = PAKAT_BASE_URL, **kwargs: Any) -> "PakatProvider":
        client_keys = ("policy", "transport", "sleep", "timezone")
        client = PakatClient(api_key, base_url, **{k: kwargs.pop(k) for k in client_keys if k in kwargs})
        return cls(client, **kwargs)

    def __repr__(self) -> str:
        return f"PakatProvider({self.client!r})"

    def close(self) -> None:
        self.client.close()

    # books ------------------------------------------------------------------------------------------------

    def list_books(self) -> Iterator[Book]:
        for lst in self.client.lists():
            yield Book(id=lst.list_uid, name=lst.name)

    def find_book(self, name: str) -> Book | None:
        return next((b for b in self.list_books() if b.name == name), None)

    def ensure_book(self, name: str) -> Book:
        book = self.find_book(name)
        if book is not None:
            return book
        uid = self.client.create_list(
            name,
            self.list_description,
            from_name=self.from_name,
            from_email=self.from_email,
            reply_to=self.reply_to,
            opt_in=self.opt_in,
            notifications={"subscribe": "no", "unsubscribe": "no"},
            company=self.company,
        )
        return Book(id=uid, name=name)

    # members ----------------------------------------------------------------------------------------------

    def ensure_fields(self, list_uid: str, tags: Sequence[str]) -> list[PakatField]:
        """Create the list fields the rows need (unknown TAGs would be dropped silently).

        The list's fields are read once per adapter (a resource makes one per run) and kept: a sync's later bulk
        calls with the same TAGs read nothing more. A TAG the kept fields lack reads them again first."""
        fields = self._fields.get(list_uid)
        if fields is None or not set(tags) <= {f.tag for f in fields}:
            fields = self.client.list_fields(list_uid)
        have = {f.tag for f in fields}
        for tag in tags:
            if tag not in have:
                created = self.client.create_list_field(list_uid, tag, tag.replace("_", " ").title())
                have.add(tag)
                fields.append(created or PakatField(0, tag, tag, False, "text"))
        self._fields[list_uid] = fields
        return list(fields)

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        mapped = [{field_tag(k): field_value(v) for k, v in r.fields.items() if field_tag(k) != "EMAIL"} for r in rows]
        tags = sorted({t for m in mapped for t in m})
        fields = self.ensure_fields(book_id, tags)
        required = {f.tag for f in fields if f.required and f.tag != "EMAIL"}
        # rows the sync never wrote to the list (and its suppression refresh did not find there) go straight to the
        # bulk call, whose "exists" answer sends one back the long way; only the others are looked up, so what a
        # sync reads does not grow with the list. MailWizz's bulk add resubscribes an *unsubscribed* address
        # without a word: the engine's suppression refresh at the start of the run is what keeps those out
        # (exists is None when it did not refresh), so only an unsubscribe during the run itself can slip through
        existing = self._existing(book_id, [r.email for r in rows if r.exists is not False])
        results: list[RowResult | None] = [None] * len(rows)
        new: list[tuple[int, dict[str, Any]]] = []
        for i, (row, values) in enumerate(zip(rows, mapped, strict=True)):
            sub = existing.get(row.email.strip().lower())
            if sub is None:
                new.append((i, {"EMAIL": row.email.strip(), **values}))
            else:
                results[i] = self._decide_existing(book_id, row.email, sub, values, required)
        if new:
            try:
                items = self.client.bulk_add_subscribers(book_id, [payload for _, payload in new])
            except EspError as exc:
                if not exc.retryable and not isinstance(exc, PakatMutexError):
                    raise
                for i, _ in new:
                    results[i] = RowResult(rows[i].email, False, error=str(exc), transient=True)
                items = []
            created: dict[str, str] = {}
            for (i, payload), item in zip(new, items, strict=False):
                email = rows[i].email
                if item.ok and item.subscriber_uid:
                    created[payload["EMAIL"].lower()] = item.subscriber_uid
                    results[i] = RowResult(email, True, item.subscriber_uid)
                elif item.exists and rows[i].exists is False:  # created first, but already in the list
                    results[i] = self._found_on_create(book_id, rows[i], mapped[i], created, required)
                elif item.exists:  # a racing create or a resent chunk: accepted
                    uid = created.get(payload["EMAIL"].lower())
                    if uid is None:
                        ref = self.client.search_subscriber(book_id, payload["EMAIL"])
                        uid = ref.subscriber_uid if ref else None
                    results[i] = RowResult(email, True, uid)
                elif item.blacklisted:
                    results[i] = RowResult(email, False, error=item.errors.get("EMAIL"), suppressed=True)
                elif item.missing:
                    results[i] = RowResult(email, False, error="no result from the service", transient=True)
                else:
                    msg = "; ".join(f"{k}: {v}" for k, v in item.errors.items())
                    results[i] = RowResult(email, False, error=msg, transient="mutex" in msg.lower())
        return [
            r if r is not None else RowResult(rows[i].email, False, error="not processed", transient=True)
            for i, r in enumerate(results)
        ]

    def _found_on_create(
        self,
        book_id: str,
        row: MemberInput,
        values: Mapping[str, str],
        created: Mapping[str, str],
        required: set[str],
    ) -> RowResult:
        """A row created first that the list already holds (added by someone else, or twice in one call): its
        status decides, as if it had been looked up: suppressed stays suppressed, anything else is updated."""
        email = row.email.strip()
        uid = created.get(email.lower())
        if uid is not None:  # the same address twice in one bulk call: the first copy created it
            return RowResult(row.email, True, uid)
        ref = self.client.search_subscriber(book_id, email)
        if ref is None:
            return RowResult(row.email, False, error="exists, but the list does not find it", transient=True)
        sub = self.client.get_subscriber(book_id, ref.subscriber_uid)
        return self._decide_existing(book_id, row.email, sub, values, required)

    def _decide_existing(
        self, book_id: str, email: str, sub: PakatSubscriber, values: Mapping[str, str], required: set[str]
    ) -> RowResult:
        """A subscriber the list already holds: suppressed stays suppressed (never resubscribed), anything else
        is updated."""
        if sub.status in SUPPRESSED_STATUSES:
            return RowResult(email, False, sub.subscriber_uid, f"{sub.status} at the provider", suppressed=True)
        return self._update_existing(book_id, email, sub, values, required)

    def _existing(self, book_id: str, emails: Sequence[str]) -> dict[str, PakatSubscriber]:
        """Current subscribers among ``emails``: one crawl of the list, or per-email look-ups when cheaper."""
        wanted = {e.strip().lower() for e in emails}
        if not wanted:
            return {}
        total = self.client.count_subscribers(book_id)
        if total == 0:
            return {}
        pages = -(-total // PER_PAGE_MAX)
        if pages <= 2 * len(wanted):
            return {s.email.lower(): s for s in self.client.list_subscribers(book_id) if s.email.lower() in wanted}
        out: dict[str, PakatSubscriber] = {}
        for email in sorted(wanted):
            ref = self.client.search_subscriber(book_id, email)
            if ref is not None:
                out[email] = self.client.get_subscriber(book_id, ref.subscriber_uid)
        return out

    def _update_existing(
        self, book_id: str, email: str, sub: PakatSubscriber, values: Mapping[str, str], required: set[str]
    ) -> RowResult:
        if all(sub.fields.get(k, "") == v for k, v in values.items()):
            return RowResult(email, True, sub.subscriber_uid)
        payload = {t: sub.fields.get(t, "") for t in required}  # required fields must be re-sent
        payload.update(values)
        try:
            self.client.update_subscriber(book_id, sub.subscriber_uid, payload)
        except ConflictError as exc:
            return RowResult(
                email, False, sub.subscriber_uid, exc.message, suppressed="blacklisted" in exc.message.lower()
            )
        except (ValidationError, NotFoundError) as exc:
            return RowResult(email, False, sub.subscriber_uid, str(exc))
        except EspError as exc:
            if exc.retryable:
                return RowResult(email, False, sub.subscriber_uid, str(exc), transient=True)
            raise
        return RowResult(email, True, sub.subscriber_uid)

    def remove_members(self, book_id: str, emails: Sequence[str], *, unsubscribe: bool) -> list[RowResult]:
        out = []
        for email in emails:
            ref = self.client.search_subscriber(book_id, email)
            if ref is None:
                out.append(RowResult(email, True))
                continue
            try:
                if unsubscribe:
                    if ref.status == "confirmed":
                        self.client.unsubscribe(book_id, ref.subscriber_uid)
                else:
                    self.client.delete_subscriber(book_id, ref.subscriber_uid)
            except NotFoundError:
                pass  # already gone
            except EspError as exc:
                if not exc.retryable:
                    raise
                out.append(RowResult(email, False, ref.subscriber_uid, str(exc), transient=True))
                continue
            out.append(RowResult(email, True, ref.subscriber_uid))
        return out

    def list_members(self, book_id: str) -> Iterator[Member]:
        for s in self.client.list_subscribers(book_id):
            yield Member(
                email=s.email,
                state=SUBSCRIBER_STATES.get(s.status or "", MemberState.UNKNOWN),
                provider_status=s.status or "",
                provider_id=s.subscriber_uid,
                fields=dict(s.fields),
                added_at=s.date_added,
            )

    def suppressions(self, book_id: str | None = None) -> Iterator[Suppression]:
        """Blacklisted (account-wide) and unsubscribed (per list) subscribers; Pakat has no blacklist endpoint.

        The blacklist is account-wide, so it is read from every list even when ``book_id`` is given: an address
        blacklisted through another list is refused in this one too. Unsubscribes are per list.
        """
        all_lists = [lst.list_uid for lst in self.client.lists()]
        seen_blacklisted: set[str] = set()
        for list_uid in all_lists:
            for s in self.client.list_subscribers(list_uid, status="blacklisted"):
                if s.email.lower() not in seen_blacklisted:
                    seen_blacklisted.add(s.email.lower())
                    yield Suppression(s.email, "blacklisted", None, detail=f"seen in list {list_uid}")
        for list_uid in [book_id] if book_id else all_lists:
            for s in self.client.list_subscribers(list_uid, status="unsubscribed"):
                yield Suppression(s.email, "unsubscribed", list_uid)

    # campaigns -----------------------------------------------------------------------------------------------

    def _campaign(self, c: PakatCampaign, extra: Mapping[str, Any] | None = None) -> Campaign:
        send_at = c.send_at.replace(tzinfo=self.client.timezone) if c.send_at else None
        created = c.date_added.replace(tzinfo=self.client.timezone) if c.date_added else None
        return Campaign(
            id=c.campaign_uid,
            name=c.name,
            state=CAMPAIGN_STATES.get(c.status, CampaignState.UNKNOWN),
            provider_status=c.status,
            book_id=c.list_uid,
            subject=c.subject,
            sender_email=c.from_email,
            created_at=created,
            send_at=send_at,
            recipients=c.subscribers_count,
            extra={"type": c.type, **(extra or {})},
        )

    def create_campaign(self, draft: CampaignDraft) -> Campaign:
        """Create as ``draft`` (one non-idempotent POST), then PUT ``pending-sending`` to launch."""
        if not draft.html and not draft.template_id:
            raise ValueError("a campaign needs html or template_id")
        uid = self.client.create_campaign(
            name=draft.name,
            list_uid=draft.book_id,
            from_name=draft.sender_name,
            from_email=draft.sender_email,
            subject=draft.subject,
            reply_to=self.reply_to,
            send_at=draft.send_at or self._now(),
            status="draft",
            template_uid=draft.template_id,
            html=draft.html if not draft.template_id else None,
        )
        self.launch(uid)
        return self.get_campaign(uid)

    def launch(self, campaign_id: str) -> None:
        """Move a draft to ``pending-sending`` (idempotent PUT)."""
        self.client.update_campaign(campaign_id, status="pending-sending")

    def launch_draft(self, campaign: Campaign) -> None:
        """:class:`DraftLauncher`: a draft left by an interrupted launch goes to ``pending-sending``."""
        self.launch(campaign.id)

    def find_campaign(self, name_suffix: str) -> Campaign | None:
        for c in self.client.campaigns():
            if c.name.endswith(name_suffix):
                return self.get_campaign(c.campaign_uid)
        return None

    def get_campaign(self, campaign_id: str) -> Campaign:
        return self._campaign(self.client.get_campaign(campaign_id))

    def list_campaigns(self) -> Iterator[Campaign]:
        for c in self.client.campaigns():
            yield self._campaign(c)

    def campaign_stats(self, campaign_id: str) -> CampaignStats:
        s = self.client.campaign_stats(campaign_id)
        c = s.counts
        sending = s.campaign_status in ("pending-sending", "sending", "processing", "paused")
        extra: dict[str, Any] = {
            "campaign_status": s.campaign_status,
            "subscribers_count": s.subscribers_count,
            "processed_count": s.processed_count,
        }
        extra.update({f"{k}_count": v for k, v in c.items()})
        extra.update({f"{k}_rate": v for k, v in s.rates.items()})
        return CampaignStats(
            campaign_id=campaign_id,
            sent=s.processed_count,
            delivered=c["delivery_success"] - c["bounces"],
            opened=c["unique_opens"],
            clicked=c["unique_clicks"],
            bounced=c["bounces"],
            unsubscribed=c["unsubscribes"],
            spam=c["complaints"],
            errors=c["delivery_error"],
            queued=max(0, s.subscribers_count - s.processed_count) if sending else 0,
            extra=extra,
        )

    def delivery_events(self, since: datetime, until: datetime) -> Iterator[DeliveryEvent]:
        """Campaign delivery logs dated in ``[since, until)``; drafts and campaigns due later are not read.

        Pakat keeps logs per campaign only, so every other campaign's log is paged and filtered by date. A
        message that later bounced is one ``bounced`` event (dated by its bounce), not a delivery: MailWizz
        keeps its log as ``success``, and its stats count it both there and under bounces, so the events agree
        with :meth:`campaign_stats` (``delivered`` = delivery successes - bounces)."""
        tz = self.client.timezone
        for c in self.client.campaigns():
            if c.status == "draft" or (c.send_at and c.send_at.replace(tzinfo=tz) >= until):
                continue
            bounces = {b.subscriber_uid: b for b in self.client.campaign_bounces(c.campaign_uid)}
            for log in self.client.delivery_logs(c.campaign_uid, per_page=PER_PAGE_MAX):
                status = log.status
                bounce = bounces.get(log.subscriber_uid) if status == "success" else None
                dated = bounce.date_added if bounce is not None and bounce.date_added else log.date_added
                at = dated.replace(tzinfo=tz).astimezone(UTC) if dated else None
                if at is None or not since <= at < until:
                    continue
                if bounce is not None:
                    yield DeliveryEvent(
                        event_id=log.email_message_id or f"{c.campaign_uid}:{log.subscriber_uid}",
                        email=log.email,
                        status="bounced",
                        provider_status=f"bounce:{bounce.bounce_type}",
                        occurred_at=at,
                        campaign_id=log.campaign_uid or c.campaign_uid,
                        detail=bounce.message,
                        extra={"subscriber_uid": log.subscriber_uid, "retries": log.retries},
                    )
                    continue
                if status == "success":
                    status = "delivered" if log.delivery_confirmed else "sent"
                elif status in ("error", "fatal-error", "giveup"):
                    status = "failed"
                elif status == "temporary-error":
                    status = "deferred"
                yield DeliveryEvent(
                    event_id=log.email_message_id or f"{c.campaign_uid}:{log.subscriber_uid}",
                    email=log.email,
                    status=status,
                    provider_status=log.status,
                    occurred_at=at,
                    campaign_id=log.campaign_uid or c.campaign_uid,
                    detail=log.message,
                    extra={"subscriber_uid": log.subscriber_uid, "retries": log.retries},
                )

    def balance(self) -> Balance:
        q = self.client.quota()
        return Balance(
            emails_left=q.remaining,
            quota_used=q.used,
            quota_allowed=q.allowed,
            unlimited=q.unlimited,
            extra={"percentage": q.percentage} if q.percentage is not None else {},
        )

    # -- optional capabilities (espcore.providers.base) ------------------------------------------------------------

    def count_active_members(self, book_id: str) -> int:
        """Confirmed subscribers of the list (lists carry no counts)."""
        return self.client.count_subscribers(book_id, status="confirmed")

    def send_test(self, message: TestMessage, recipients: Sequence[str], *, book_id: str) -> None:
        """One transactional email per address: MailWizz has no test send of a campaign through its API."""
        for r in recipients:
            self.client.create_transactional_email(
                to_email=r,
                to_name=r,
                from_name=message.sender_name,
                from_email=message.sender_email,
                subject=message.subject,
                html=message.html if not message.template_id else None,
                template_uid=message.template_id,
            )

    def erase(self, emails: Sequence[str]) -> list[ErasureStep]:
        """:class:`Eraser`: every list the address is in (``search-by-email-in-all-lists``), then a delete in each.
        MailWizz's API has no account blacklist to add it to: the product's own suppression keeps it out."""

        def one(email: str) -> list[ErasureStep]:
            found = self.client.search_subscriber_in_all_lists(email)
            for m in found:
                with contextlib.suppress(NotFoundError):  # already gone
                    self.client.delete_subscriber(m.list_uid, m.subscriber_uid)
            if not found:
                return [ErasureStep(email, "not_present", True)]
            return [ErasureStep(email, "removed", True, book_id=m.list_uid) for m in found]

        return erase_each(emails, one)
