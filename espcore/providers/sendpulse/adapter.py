""":class:`~espcore.providers.base.EspProvider` on SendPulse, with its optional capabilities."""

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from espcore.errors import (
    ConflictError,
    EspError,
    ValidationError,
)
from espcore.providers.base import (
    Accepted,
    AddressRules,
    Balance,
    Book,
    Campaign,
    CampaignDraft,
    CampaignRateCap,
    CampaignState,
    CampaignStats,
    CostInfo,
    ErasureStep,
    Member,
    MemberBatch,
    MemberInput,
    MemberState,
    PreparedUpsert,
    RowResult,
    Suppression,
    TestMessage,
    erase_each,
)
from espcore.providers.sendpulse.client import SendPulseClient
from espcore.providers.sendpulse.constants import CAMPAIGN_RATE_CAP, EMAILS_PER_CALL
from espcore.providers.sendpulse.models import AddressBook, CampaignInfo, EmailToAdd

_MEMBER_STATE: dict[int, MemberState] = {
    0: MemberState.PENDING,
    1: MemberState.ACTIVE,
    2: MemberState.PENDING,
    3: MemberState.PENDING,
    4: MemberState.UNSUBSCRIBED,
    5: MemberState.BLOCKED,
    6: MemberState.UNSUBSCRIBED,
    7: MemberState.PENDING,
    8: MemberState.BLACKLISTED,
    9: MemberState.BOUNCED,
    10: MemberState.BLOCKED,
    11: MemberState.BLOCKED,
    12: MemberState.BLOCKED,
    13: MemberState.REMOVED,
    14: MemberState.BOUNCED,
}

_CAMPAIGN_STATE: dict[int, CampaignState] = {
    **{s: CampaignState.PENDING for s in (0, 1, 2, 7, 9, 10, 11, 13, 14, 15, 22, 28)},
    **{s: CampaignState.SENT for s in (3, 23)},
    **{s: CampaignState.FAILED for s in (5, 6, 12, 16, 25, 27, 33)},
    **{s: CampaignState.DRAFT for s in (26, 36)},
    **{s: CampaignState.TEST for s in (4, 8)},
}

_STAT_BUCKETS: dict[str, tuple[int, ...]] = {
    "queued": (0,),
    "sent": (1,),
    "delivered": (2,),
    "opened": (3,),
    "clicked": (4,),
    "unsubscribed": (5, 15),
    "spam": (11,),
    "bounced": (6, 7, 8, 9, 10, 14, 16),
    "errors": (12, 13, 17, 18),
}


def member_state(status: int) -> MemberState:
    return _MEMBER_STATE.get(status, MemberState.UNKNOWN)


def campaign_state(status: int) -> CampaignState:
    return _CAMPAIGN_STATE.get(status, CampaignState.UNKNOWN)


# -- the adapter -------------------------------------------------------------------------------------------


class SendPulseProvider:
    """:class:`EspProvider` over :class:`SendPulseClient`. Books are address books found by name."""

    name = "sendpulse"
    account = name  # the named account it speaks for (set by the resource; the provider's name by default)
    batch_size = EMAILS_PER_CALL
    #: undocumented: assumed ASCII-only (the sandbox models it so); a refused address fails the whole call
    address_rules = AddressRules(
        unicode_local=False,
        unicode_domain=False,
        source="SendPulse (assumed): ASCII addresses only",
    )

    #: member-write calls a sync may keep in flight (:class:`~espcore.providers.base.ConcurrentWriter`): the client
    #: and its token are thread-safe, and its limiter keeps them within 10 requests/s; three sustain that rate up
    #: to a 300 ms round trip
    calls_in_flight = 3

    def __init__(self, client: SendPulseClient) -> None:
        self.client = client
        self.split_calls = 0
        self._split_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _book(b: AddressBook) -> Book:
        return Book(str(b.id), b.name, b.all_email_qty, b.active_email_qty, b.created)

    def list_books(self) -> Iterator[Book]:
        for b in self.client.list_books():
            yield self._book(b)

    def find_book(self, name: str) -> Book | None:
        return next((b for b in self.list_books() if b.name == name), None)

    def ensure_book(self, name: str) -> Book:
        found = self.find_book(name)
        if found is not None:
            return found
        try:
            book_id = self.client.create_book(name)
        except ConflictError:  # created concurrently
            again = self.find_book(name)
            if again is None:
                raise
            return again
        return self._book(self.client.get_book(book_id))

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> Sequence[RowResult]:
        """Add/update in calls of 100; a call refused as a whole is split to isolate the bad rows."""
        out: list[RowResult] = []
        for start in range(0, len(rows), self.batch_size):
            out.extend(self._add(int(book_id), list(rows[start : start + self.batch_size])))
        return out

    def prepare_upsert(self, book_id: str, batch: MemberBatch) -> PreparedUpsert:
        """:class:`~espcore.providers.base.PreparedWriter`: the add call's JSON body, encoded ahead."""
        body = self.client.add_emails_body(batch.emails, [_variables(f) for f in batch.fields])
        return PreparedUpsert(book_id, batch, body)

    def send_prepared(self, prepared: PreparedUpsert) -> Sequence[RowResult]:
        book_id = int(prepared.book_id)
        try:
            self.client.post_add_emails(book_id, prepared.request)
        except ValidationError as exc:
            return self._refused(book_id, prepared.batch.members(), exc)
        return Accepted(prepared.batch.emails)

    def _add(self, book_id: int, rows: list[MemberInput]) -> Sequence[RowResult]:
        try:
            self.client.add_emails(book_id, [EmailToAdd(r.email, _variables(r.fields)) for r in rows])
        except ValidationError as exc:
            return self._refused(book_id, rows, exc)
        return Accepted([r.email for r in rows])

    def _refused(self, book_id: int, rows: list[MemberInput], exc: ValidationError) -> list[RowResult]:
        """A call refused as a whole: one row is refused for good (blacklisted when SendPulse says 904); more are
        split in halves and sent again, so one bad address does not sink its neighbours."""
        if len(rows) == 1:
            blocked = exc.code in (904, "904")
            return [RowResult(rows[0].email, ok=False, error=exc.message, suppressed=blocked)]
        with self._split_lock:
            self.split_calls += 2
        mid = len(rows) // 2
        return [*self._add(book_id, rows[:mid]), *self._add(book_id, rows[mid:])]

    def remove_members(self, book_id: str, emails: Sequence[str], *, unsubscribe: bool) -> Sequence[RowResult]:
        if unsubscribe:
            try:
                self.client.unsubscribe_emails(int(book_id), emails)
            except ValidationError as exc:
                if "not found" not in exc.message.lower():  # nobody active left: already unsubscribed
                    raise
        else:
            self.client.delete_emails(int(book_id), emails)
        return Accepted(list(emails))

    def list_members(self, book_id: str) -> Iterator[Member]:
        for c in self.client.book_emails(int(book_id)):
            fields = dict(c.variables)
            if c.phone:
                fields.setdefault("Phone", c.phone)
            yield Member(c.email, member_state(c.status), str(c.status), None, fields)

    def suppressions(self, book_id: str | None = None) -> Iterator[Suppression]:
        """The account blacklist (account-wide, always listed), then suppressed rows of the book (or of all)."""
        blacklisted: set[str] = set()
        for email in self.client.blacklist():
            blacklisted.add(email.lower())
            yield Suppression(email.lower(), "blacklisted")
        books = [book_id] if book_id else [b.id for b in self.list_books()]
        for bid in books:
            for c in self.client.book_emails(int(bid)):
                state = member_state(c.status)
                if state.suppressed and c.email.lower() in blacklisted:
                    continue  # status 8 because of the account blacklist: already listed
                if state.suppressed or state in (MemberState.BLOCKED, MemberState.BOUNCED):
                    yield Suppression(c.email.lower(), str(state), bid, None, c.status_explain or str(c.status))

    def suppression_signature(self, book_id: str) -> str:
        """:class:`SuppressionSignature`: the book's member counts (an unsubscribe, a bounce or a block moves a
        member out of the active ones) and a digest of the account blacklist: two calls for any book size."""
        book = self.client.get_book(int(book_id))
        blacklist = sorted(e.strip().lower() for e in self.client.blacklist())
        digest = hashlib.sha256("\n".join(blacklist).encode()).hexdigest()[:16]
        counts = (book.all_email_qty, book.active_email_qty, book.inactive_email_qty)
        return f"{'/'.join(map(str, counts))}|{len(blacklist)}|{digest}"

    def create_campaign(self, draft: CampaignDraft) -> Campaign:
        created = self.client.create_campaign(
            sender_name=draft.sender_name,
            sender_email=draft.sender_email,
            subject=draft.subject,
            book_id=int(draft.book_id),
            body_html=draft.html if draft.template_id is None else None,
            template_id=draft.template_id,
            name=draft.name,
            send_date=draft.send_at,
            attachments_binary=dict(draft.attachments) or None,
        )
        return Campaign(
            id=str(created.id),
            name=draft.name,
            state=campaign_state(created.status),
            provider_status=str(created.status),
            book_id=draft.book_id,
            subject=draft.subject,
            sender_email=draft.sender_email,
            send_at=draft.send_at,
            recipients=created.count,
            extra={
                "tariff_email_qty": created.tariff_email_qty,
                "paid_email_qty": created.paid_email_qty,
                "overdraft_price": str(created.overdraft_price) if created.overdraft_price is not None else None,
                "overdraft_currency": created.overdraft_currency,
            },
        )

    def _campaign(self, c: CampaignInfo) -> Campaign:
        return Campaign(
            id=str(c.id),
            name=c.name,
            state=campaign_state(c.status),
            provider_status=str(c.status),
            book_id=str(c.list_id) if c.list_id is not None else None,
            subject=c.subject,
            sender_email=c.sender_email,
            send_at=_account_time(c.send_date, self.client.account_tz),
            recipients=c.all_email_qty,
            extra={"permalink": c.permalink} if c.permalink else {},
        )

    def find_campaign(self, name_suffix: str) -> Campaign | None:
        found = self.client.find_campaign_by_name(name_suffix)
        return self._campaign(found) if found else None

    def get_campaign(self, campaign_id: str) -> Campaign:
        return self._campaign(self.client.get_campaign(int(campaign_id)))

    def list_campaigns(self) -> Iterator[Campaign]:
        for c in self.client.list_campaigns():
            yield self._campaign(c)

    def campaign_stats(self, campaign_id: str) -> CampaignStats:
        info = self.client.get_campaign(int(campaign_id))
        counts = {s.code: s.count for s in info.statistics}
        values = {k: sum(counts.get(c, 0) for c in codes) for k, codes in _STAT_BUCKETS.items()}
        return CampaignStats(
            campaign_id=campaign_id, **values, extra={f"code_{k}": v for k, v in sorted(counts.items())}
        )

    def balance(self) -> Balance:
        detail = self.client.balance_detail()
        return Balance(
            currency=detail.currency,
            amount=detail.main,
            bonus=detail.bonus,
            emails_left=detail.emails_left,
            extra={
                "tariff_name": detail.tariff_name,
                "maximum_subscribers": detail.maximum_subscribers,
                "current_subscribers": detail.current_subscribers,
                "finished_time": detail.finished_time.isoformat() if detail.finished_time else None,
            },
        )

    # -- optional capabilities (espcore.providers.base) ------------------------------------------------------------

    def campaign_rate_cap(self) -> CampaignRateCap:
        """4 campaigns per rolling hour through the API; one more is refused with error 791."""
        return CAMPAIGN_RATE_CAP

    def campaigns_created_since(self, since: datetime) -> int:
        """Dated campaigns created after ``since`` (aware), by this tool or any other."""
        return sum(1 for c in self.list_campaigns() if c.created_at is not None and _aware(c.created_at) > since)

    def send_test(self, message: TestMessage, recipients: Sequence[str], *, book_id: str) -> None:
        """``POST /campaigns`` with ``send_test_only`` (at most 3 addresses; not counted in the hourly cap). The
        name must not end with a campaign key: a test is never adopted as the launch."""
        self.client.create_campaign(
            sender_name=message.sender_name,
            sender_email=message.sender_email,
            subject=message.subject,
            book_id=int(book_id),
            body_html=message.html if not message.template_id else None,
            template_id=message.template_id,
            name=message.name,
            send_test_only=list(recipients)[:3],
        )

    def estimate_cost(self, book_id: str, recipients: int) -> CostInfo:
        """``GET /addressbooks/{id}/cost``: SendPulse prices the send against the plan and the balance."""
        try:
            c = self.client.book_cost(int(book_id))
        except EspError as exc:
            return CostInfo(self.name, False, f"SendPulse could not price the send: {exc}")
        price = f"{c.overdraft_all_emails_price} {c.currency}" if c.overdraft_all_emails_price is not None else None
        note = (
            f"SendPulse prices the send to {c.sent_emails_qty} addresses at {price or 'n/a'} "
            f"({c.addresses_delta_from_tariff} from the plan, {c.addresses_delta_from_balance} paid): "
            + ("covered" if c.enough else "NOT covered by the balance")
        )
        return CostInfo(self.name, c.enough, note, price, c.addresses_delta_from_tariff)

    def erase(self, emails: Sequence[str]) -> list[ErasureStep]:
        """:class:`Eraser`: ``DELETE /emails/{email}`` takes an address out of every book in one call; then one
        ``POST /blacklist`` for the erased addresses, so no other path adds them back."""

        def one(email: str) -> list[ErasureStep]:
            self.client.delete_email_everywhere(email)
            return [ErasureStep(email, "deleted", True)]

        steps = erase_each(emails, one)
        erased = [s.email for s in steps if s.ok]
        if erased:
            try:
                self.client.add_to_blacklist(erased, comment="erasure request")
            except EspError as exc:
                return [*steps, *(ErasureStep(e, "failed", False, detail=f"blacklist: {exc}") for e in erased)]
            steps += [ErasureStep(e, "blacklisted", True) for e in erased]
        return steps


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _account_time(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A naive ``YYYY-MM-DD HH:MM:SS`` from the API is wall time in the account's zone; returned in UTC."""
    return value.replace(tzinfo=zone).astimezone(UTC) if value is not None else None


_PLAIN = frozenset({str, int, float, bool})


def _variables(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Book variables: dates as ``YYYY-MM-DD``, everything else as given; None values are left out. Values that
    are all plain strings and numbers (as a sync's mapped values parse from JSON) are taken as they are."""
    if all(type(v) in _PLAIN for v in fields.values()):
        return fields
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, datetime):
            v = v.date().isoformat()
        elif isinstance(v, date):
            v = v.isoformat()
        elif isinstance(v, Decimal):
            v = float(v)
        out[k] = v
    return out
