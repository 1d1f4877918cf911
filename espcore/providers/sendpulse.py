"""SendPulse email-service REST API: a typed client and the provider-neutral adapter.

The client speaks SendPulse's own terms (address books, variables, campaigns, templates, senders, blacklist,
balance); :class:`SendPulseProvider` maps them onto :class:`espcore.providers.base.EspProvider`.
"""

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from espcore.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    EspError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from espcore.http import HttpPolicy, ProviderClient, ProviderHttp, json_or_text
from espcore.providers.base import (
    Balance,
    Book,
    Campaign,
    CampaignDraft,
    CampaignState,
    CampaignStats,
    Member,
    MemberInput,
    MemberState,
    RowResult,
    Suppression,
)
from espcore.providers.coerce import opt_int

SENDPULSE_BASE_URL = "https://api.sendpulse.com"
PAGE_MAX = 100
EMAILS_PER_CALL = 100  # delete/unsubscribe cap; also the batch the client uses for adds
DATE_FMT = "%Y-%m-%d %H:%M:%S"


class HourlyCampaignLimitError(QuotaError):
    """SendPulse error 791: more than 4 API campaigns within an hour. Nothing was created; re-plan later."""


_NOT_FOUND = {213, 703, 290, 17, 502, 602, 802, 704, 1003}
_CONFLICT = {203, 573, 19, 902}
_QUOTA = {707, 708, 905}
_PERMISSION = {800, 3030303030}
_RATE = {2020202020}


def parse_error(response: httpx.Response) -> EspError:
    """Map a SendPulse error answer (``{"message","error_code"}``, OAuth or HTML) to a typed error."""
    body = json_or_text(response)
    status = response.status_code
    code: Any = None
    message = ""
    if isinstance(body, dict):
        code = body.get("error_code")
        message = str(body.get("message") or body.get("error_description") or body.get("error") or "")
    elif isinstance(body, list) and body and isinstance(body[0], dict):
        code = body[0].get("error_code")
        message = str(body[0].get("message", ""))
    else:
        message = "non-JSON answer" if status < 500 else "server error (non-JSON answer)"
    if not message:
        message = response.reason_phrase or f"HTTP {status}"
    try:
        code_int = int(code) if code is not None else None
    except (TypeError, ValueError):
        code_int = None
    raw = response.text[:2000]
    kwargs: dict[str, Any] = {"status": status, "code": code if code is not None else status, "body": raw}
    if code_int == 791:
        return HourlyCampaignLimitError(message, **kwargs)
    if status == 429 or code_int in _RATE:
        return RateLimitError(message, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status == 401:
        return AuthError(message, **kwargs)
    if code_int in _PERMISSION:
        return PermissionDeniedError(message, **kwargs)
    if code_int in _QUOTA:
        return QuotaError(message, **kwargs)
    if code_int == 602 and status != 404:
        # 602 is "campaign not found" when answered 404, but a DELETE of a campaign already sent gets 602 with
        # 422: the campaign exists and its state forbids the change.
        return ConflictError(message, **kwargs)
    if code_int in _NOT_FOUND or status == 404:
        return NotFoundError(message, **kwargs)
    if code_int in _CONFLICT:
        return ConflictError(message, **kwargs)
    if status == 403:
        return PermissionDeniedError(message, **kwargs)
    return ValidationError(message, **kwargs)


def _seg(value: object) -> str:
    """One URL path segment: an address or variable value may hold ``?``, ``#``, ``%`` or spaces."""
    return quote(str(value), safe="@+!$&'()*,;=:~")


# -- records ------------------------------------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value[:19], DATE_FMT)
    except ValueError:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _vars(value: Any) -> dict[str, Any]:
    """Variables come as ``{k: v}``, ``[]`` when empty, or ``[{name,type,value}]`` on single-email reads."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {str(v["name"]): v.get("value") for v in value if isinstance(v, dict) and "name" in v}
    return {}


@dataclass(frozen=True)
class AddressBook:
    id: int
    name: str
    all_email_qty: int = 0
    active_email_qty: int = 0
    inactive_email_qty: int = 0
    created: datetime | None = None
    status: int = 0
    status_explain: str = ""

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "AddressBook":
        return cls(
            id=int(d["id"]),
            name=str(d.get("name", "")),
            all_email_qty=opt_int(d.get("all_email_qty")) or 0,
            active_email_qty=opt_int(d.get("active_email_qty")) or 0,
            inactive_email_qty=opt_int(d.get("inactive_email_qty")) or 0,
            created=_dt(d.get("creationdate")),
            status=opt_int(d.get("status")) or 0,
            status_explain=str(d.get("status_explain") or ""),
        )


@dataclass(frozen=True)
class BookVariable:
    name: str
    type: str


@dataclass(frozen=True)
class BookContact:
    email: str
    status: int
    status_explain: str = ""
    phone: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    book_id: int | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any], book_id: int | None = None) -> "BookContact":
        return cls(
            email=str(d.get("email", "")),
            status=opt_int(d.get("status")) or 0,
            status_explain=str(d.get("status_explain") or ""),
            phone=(str(d["phone"]) if d.get("phone") else None),
            variables=_vars(d.get("variables")),
            book_id=opt_int(d.get("abook_id")) or opt_int(d.get("book_id")) or book_id,
        )


@dataclass(frozen=True)
class EmailToAdd:
    """One address for :meth:`SendPulseClient.add_emails`; ``variables`` become book variables."""

    email: str
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BookCost:
    currency: str | None
    sent_emails_qty: int | None
    overdraft_all_emails_price: Decimal | None
    addresses_delta_from_balance: int | None
    addresses_delta_from_tariff: int | None
    max_emails_per_task: int | None
    enough: bool


@dataclass(frozen=True)
class BookCampaign:
    task_id: int
    task_name: str
    task_status: int


@dataclass(frozen=True)
class CampaignCreated:
    id: int
    status: int
    count: int | None
    tariff_email_qty: int | None
    paid_email_qty: int | None
    overdraft_price: Decimal | None
    overdraft_currency: str | None


@dataclass(frozen=True)
class StatisticItem:
    code: int
    count: int
    explain: str = ""


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    status: int
    sender_name: str | None = None
    sender_email: str | None = None
    subject: str | None = None
    body: str | None = None
    list_id: int | None = None
    all_email_qty: int | None = None
    tariff_email_qty: int | None = None
    paid_email_qty: int | None = None
    overdraft_price: Decimal | None = None
    overdraft_currency: str | None = None
    statistics: tuple[StatisticItem, ...] = ()
    send_date: datetime | None = None
    permalink: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "CampaignInfo":
        msg = d.get("message") if isinstance(d.get("message"), dict) else {}
        assert isinstance(msg, dict)
        stats = d.get("statistics")
        return cls(
            id=int(d["id"]),
            name=str(d.get("name") or ""),
            status=opt_int(d.get("status")) or 0,
            sender_name=msg.get("sender_name"),
            sender_email=msg.get("sender_email"),
            subject=msg.get("subject"),
            body=msg.get("body"),
            list_id=opt_int(msg.get("list_id")),
            all_email_qty=opt_int(d.get("all_email_qty")),
            tariff_email_qty=opt_int(d.get("tariff_email_qty")),
            paid_email_qty=opt_int(d.get("paid_email_qty")),
            overdraft_price=_dec(d.get("overdraft_price")),
            overdraft_currency=d.get("overdraft_currency"),
            statistics=tuple(
                StatisticItem(int(s["code"]), int(s.get("count") or 0), str(s.get("explain") or ""))
                for s in stats
                if isinstance(s, dict) and "code" in s
            )
            if isinstance(stats, list)
            else (),
            send_date=_dt(d.get("send_date")),
            permalink=d.get("permalink"),
        )


@dataclass(frozen=True)
class CampaignRecipientStatus:
    sent_date: datetime | None
    global_status: int
    global_status_explain: str


@dataclass(frozen=True)
class Template:
    id: str
    real_id: int
    name: str
    lang: str | None = None
    owner: str | None = None
    created: datetime | None = None
    body: str | None = None  # decoded HTML (get only)

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "Template":
        body = d.get("body")
        if isinstance(body, str) and body:
            with contextlib.suppress(ValueError):
                body = base64.b64decode(body, validate=True).decode("utf-8")
        return cls(
            id=str(d.get("id", "")),
            real_id=opt_int(d.get("real_id")) or 0,
            name=str(d.get("name") or ""),
            lang=d.get("lang"),
            owner=d.get("owner"),
            created=_dt(d.get("created")),
            body=body if isinstance(body, str) else None,
        )


@dataclass(frozen=True)
class Sender:
    name: str
    email: str
    status: str

    @property
    def active(self) -> bool:
        return self.status.lower() == "active"


@dataclass(frozen=True)
class CurrencyBalance:
    currency: str
    balance: Decimal


@dataclass(frozen=True)
class BalanceDetail:
    main: Decimal | None
    bonus: Decimal | None
    currency: str | None
    tariff_name: str | None
    finished_time: datetime | None
    emails_left: int | None
    maximum_subscribers: int | None
    current_subscribers: int | None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailMembership:
    book_id: int
    email: str
    status: int
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailBookDetail:
    list_name: str
    list_id: int
    add_date: datetime | None
    source: str | None


@dataclass(frozen=True)
class EmailCampaignSummary:
    sent: int
    opened: int
    clicked: int
    blacklisted: bool
    books: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    action: str
    user_id: str | None = None


# -- the client -------------------------------------------------------------------------------------------


class _TokenFirstHttp(ProviderHttp):
    """:class:`ProviderHttp` that makes sure of the access token before an authenticated call's retry loop.

    The token call has its own retries; fetched from inside a call's attempt, a failing token endpoint would be
    tried ``max_attempts`` squared times. Fetched first, the policy's attempt bound holds.
    """

    def __init__(self, *args: Any, ensure_token: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ensure_token = ensure_token

    def request(self, method: str, path: str, *, authenticated: bool = True, **kwargs: Any) -> httpx.Response:
        if authenticated:
            self._ensure_token()
        return super().request(method, path, authenticated=authenticated, **kwargs)


class SendPulseClient(ProviderClient):
    """SendPulse email-service API over the shared HTTP policy, with a cached, thread-safe OAuth token."""

    REFRESH_MARGIN_S = 60.0

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        base_url: str = SENDPULSE_BASE_URL,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        account_timezone: str = "UTC",
    ) -> None:
        if not client_id or not client_secret:
            raise AuthError("SendPulse client id and secret are required", provider="sendpulse")
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._refresh_margin = self.REFRESH_MARGIN_S
        self._token_lock = threading.Lock()
        self._sent_with = threading.local()  # the token this thread's last request carried
        try:
            self.account_tz = ZoneInfo(account_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"unknown account time zone {account_timezone!r}", provider="sendpulse") from None
        self.http: ProviderHttp = _TokenFirstHttp(
            "sendpulse",
            base_url,
            policy=policy or HttpPolicy(requests_per_second=10.0),
            error_parser=parse_error,
            auth_headers=self._auth_header,
            on_auth_failure=self._refresh_after_401,
            secrets=[client_id, client_secret],
            transport=transport,
            sleep=sleep,
            ensure_token=self._ensure_token,
        )

    def __repr__(self) -> str:
        return f"SendPulseClient(base_url={self.http.base_url!r})"

    # -- OAuth ----------------------------------------------------------------------------------------

    def _fetch_token(self) -> None:
        issued = self._clock()  # the lifetime runs from the server's issue, not from when the answer arrived
        resp = self.http.request(
            "POST",
            "/oauth/access_token",
            json={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            authenticated=False,
            idempotent=True,  # asking for a token twice has no side effect
        )
        data = resp.json()
        token = data.get("access_token")
        if not token:
            raise AuthError("token endpoint answered without access_token", provider="sendpulse")
        self.http.redact.add(token)
        ttl = float(data.get("expires_in") or 3600)
        self._token = str(token)
        self._token_expires = issued + ttl
        # Renew 60 s early; a short-lived token (a test account) is renewed at half its life instead, so that
        # it is not fetched anew before every call.
        self._refresh_margin = min(self.REFRESH_MARGIN_S, ttl / 2)

    def _token_due(self) -> bool:
        return self._token is None or self._clock() >= self._token_expires - self._refresh_margin

    def _ensure_token(self) -> None:
        """Before a call's retry loop: fetch or renew the token (under the token call's own retries)."""
        with self._token_lock:
            if self._token_due():
                self._fetch_token()

    def _auth_header(self) -> dict[str, str]:
        with self._token_lock:
            if self._token_due():  # only when the token ran out during a call's retries
                self._fetch_token()
            self._sent_with.token = self._token
            return {"Authorization": f"Bearer {self._token}"}

    def _refresh_after_401(self) -> bool:
        with self._token_lock:
            failed = getattr(self._sent_with, "token", None)
            if self._token is None or self._token == failed:  # else another thread has renewed it already
                self._token = None
                self._fetch_token()
        return True

    def access_token_expires_in(self) -> float:
        """Seconds until the cached token expires (0 when none is cached)."""
        return max(0.0, self._token_expires - self._clock()) if self._token else 0.0

    # -- plumbing -----------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        return self.http.request("GET", path, params=params or None).json()

    def _pages(self, path: str, limit: int = PAGE_MAX) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._get(path, limit=limit, offset=offset)
            if not isinstance(page, list):
                return
            yield from page
            if len(page) < limit:
                return
            offset += limit

    def _format_send_date(self, when: datetime) -> str:
        if when.tzinfo is None:
            raise ValidationError("send_date must be timezone-aware", provider="sendpulse", fields={})
        return when.astimezone(self.account_tz).strftime(DATE_FMT)

    # -- address books ----------------------------------------------------------------------------------

    def list_books(self) -> Iterator[AddressBook]:
        """All address books, paging through limit/offset."""
        for d in self._pages("/addressbooks"):
            yield AddressBook.from_api(d)

    def get_book(self, book_id: int) -> AddressBook:
        """One address book (the API answers a one-element array)."""
        data = self._get(f"/addressbooks/{book_id}")
        item = data[0] if isinstance(data, list) and data else data
        if not isinstance(item, dict):
            raise NotFoundError("Book not found", provider="sendpulse", code=213)
        return AddressBook.from_api(item)

    def create_book(self, name: str) -> int:
        """Create an address book; returns its id (203 ConflictError if the name is taken).

        Names are unique, so a resend cannot make a second book: a transient failure is retried, and a retry
        after a lost answer meets 203 (the book exists; look it up by name).
        """
        return int(self.http.request("POST", "/addressbooks", json={"bookName": name}, idempotent=True).json()["id"])

    def rename_book(self, book_id: int, name: str) -> None:
        """Rename an address book."""
        self.http.request("PUT", f"/addressbooks/{book_id}", json={"name": name})

    def delete_book(self, book_id: int) -> None:
        """Delete an address book."""
        self.http.request("DELETE", f"/addressbooks/{book_id}")

    def book_variables(self, book_id: int) -> list[BookVariable]:
        """Variables defined on a book."""
        return [
            BookVariable(str(v["name"]), str(v.get("type", "string")))
            for v in self._get(f"/addressbooks/{book_id}/variables")
        ]

    def find_by_variable(self, book_id: int, name: str, value: str) -> list[BookContact]:
        """Contacts of a book whose variable ``name`` equals ``value``."""
        data = self._get(f"/addressbooks/{book_id}/variables/{_seg(name)}/{_seg(value)}")
        return [BookContact.from_api(d, book_id) for d in data] if isinstance(data, list) else []

    def book_emails(self, book_id: int) -> Iterator[BookContact]:
        """Every contact of a book, paging through limit/offset."""
        for d in self._pages(f"/addressbooks/{book_id}/emails"):
            yield BookContact.from_api(d, book_id)

    def book_email_total(self, book_id: int) -> int:
        """Number of contacts in a book."""
        return int(self._get(f"/addressbooks/{book_id}/emails/total").get("total", 0))

    def book_email(self, book_id: int, email: str) -> BookContact:
        """One contact of a book with its status and variables."""
        return BookContact.from_api(self._get(f"/addressbooks/{book_id}/emails/{_seg(email)}"), book_id)

    def add_emails(
        self,
        book_id: int,
        emails: Sequence[EmailToAdd],
        *,
        double_opt_in: bool = False,
        sender_email: str | None = None,
        template_id: str | None = None,
        message_lang: str | None = None,
        dont_update: bool | None = None,
        disable_webhook: bool | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        """Add (upsert) contacts, in calls of at most 100; double opt-in sends a confirmation letter."""
        if double_opt_in and not sender_email:
            raise ValidationError(
                "double opt-in needs a confirmed sender_email",
                provider="sendpulse",
                fields={"sender_email": "required"},
            )
        for start in range(0, len(emails), EMAILS_PER_CALL):
            chunk = emails[start : start + EMAILS_PER_CALL]
            payload: dict[str, Any] = {
                "emails": [{"email": e.email, "variables": dict(e.variables)} for e in chunk],
            }
            if double_opt_in:
                payload["confirmation"] = "force"
                payload["sender_email"] = sender_email
                if template_id:
                    payload["template_id"] = template_id
                if message_lang:
                    payload["message_lang"] = message_lang
            if dont_update is not None:
                payload["dont_update"] = int(dont_update)
            if disable_webhook is not None:
                payload["disable_webhook"] = int(disable_webhook)
            if tags:
                payload["tags"] = list(tags)
            # An add is an upsert keyed by email: resending it cannot double anything.
            self.http.request("POST", f"/addressbooks/{book_id}/emails", json=payload, idempotent=True)

    def delete_emails(self, book_id: int, emails: Sequence[str]) -> None:
        """Remove contacts from one book (100 per call)."""
        for start in range(0, len(emails), EMAILS_PER_CALL):
            self.http.request(
                "DELETE",
                f"/addressbooks/{book_id}/emails",
                json={"emails": list(emails[start : start + EMAILS_PER_CALL])},
            )

    def unsubscribe_emails(self, book_id: int, emails: Sequence[str]) -> None:
        """Unsubscribe contacts in one book (status 4), 100 per call.

        A call whose addresses are all unsubscribed already (or absent) is answered 422 ``Active emails not
        found``: that is the desired end state, so it is not an error. This keeps the call idempotent (a retry
        after a lost answer) and lets the later calls of a long list go out.
        """
        for start in range(0, len(emails), EMAILS_PER_CALL):
            try:
                self.http.request(
                    "POST",
                    f"/addressbooks/{book_id}/emails/unsubscribe",
                    json={"emails": list(emails[start : start + EMAILS_PER_CALL])},
                    idempotent=True,
                )
            except ValidationError as exc:
                if "active emails not found" not in exc.message.lower():
                    raise

    def set_email_variables(self, book_id: int, email: str, variables: Mapping[str, Any]) -> None:
        """Change variables of one contact in a book."""
        self.http.request(
            "POST",
            f"/addressbooks/{book_id}/emails/variable",
            json={"email": email, "variables": [{"name": k, "value": v} for k, v in variables.items()]},
            idempotent=True,
        )

    def book_cost(self, book_id: int) -> BookCost:
        """What a campaign to this book would cost, and whether the balance covers it."""
        d = self._get(f"/addressbooks/{book_id}/cost")
        return BookCost(
            currency=d.get("cur"),
            sent_emails_qty=opt_int(d.get("sent_emails_qty")),
            overdraft_all_emails_price=_dec(d.get("overdraftAllEmailsPrice")),
            addresses_delta_from_balance=opt_int(d.get("addressesDeltaFromBalance")),
            addresses_delta_from_tariff=opt_int(d.get("addressesDeltaFromTariff")),
            max_emails_per_task=opt_int(d.get("max_emails_per_task")),
            enough=bool(d.get("result")),
        )

    def book_campaigns(self, book_id: int) -> Iterator[BookCampaign]:
        """Campaigns sent to a book."""
        for d in self._pages(f"/addressbooks/{book_id}/campaigns"):
            yield BookCampaign(int(d["task_id"]), str(d.get("task_name") or ""), opt_int(d.get("task_status")) or 0)

    # -- campaigns -------------------------------------------------------------------------------------

    def create_campaign(
        self,
        *,
        sender_name: str,
        sender_email: str,
        subject: str,
        book_id: int | None = None,
        book_ids: Sequence[int] | None = None,
        segment_id: int | None = None,
        body_html: str | None = None,
        body_amp: str | None = None,
        template_id: str | int | None = None,
        name: str | None = None,
        send_date: datetime | None = None,
        draft: bool = False,
        attachments: Mapping[str, str] | None = None,
        attachments_binary: Mapping[str, bytes] | None = None,
        send_test_only: Sequence[str] | None = None,
    ) -> CampaignCreated:
        """Create (and, unless a draft or scheduled, send) a campaign. Never retried: on an unknown outcome
        the caller finds the campaign by name (:meth:`find_campaign_by_name`)."""
        if (body_html is None) == (template_id is None):
            raise ValidationError("give exactly one of body_html or template_id", provider="sendpulse")
        payload: dict[str, Any] = {
            "sender_name": sender_name,
            "sender_email": sender_email,
            "subject": subject,
        }
        if book_ids:
            payload["list_id"] = list(book_ids)
        elif book_id is not None:
            payload["list_id"] = book_id
        if segment_id is not None:
            payload["segment_id"] = segment_id
        if body_html is not None:
            payload["body"] = base64.b64encode(body_html.encode("utf-8")).decode("ascii")
        if body_amp is not None:
            payload["body_amp"] = base64.b64encode(body_amp.encode("utf-8")).decode("ascii")
        if template_id is not None:
            payload["template_id"] = template_id
        if name:
            payload["name"] = name
        if send_date is not None:
            payload["send_date"] = self._format_send_date(send_date)
        if draft:
            payload["type"] = "draft"
        if attachments:
            payload["attachments"] = dict(attachments)
        if attachments_binary:
            payload["attachments_binary"] = {
                k: base64.b64encode(v).decode("ascii") for k, v in attachments_binary.items()
            }
        if send_test_only:
            payload["send_test_only"] = list(send_test_only)
        d = self.http.request("POST", "/campaigns", json=payload, idempotent=False).json()
        return CampaignCreated(
            id=int(d["id"]),
            status=opt_int(d.get("status")) or 0,
            count=opt_int(d.get("count")),
            tariff_email_qty=opt_int(d.get("tariff_email_qty")),
            paid_email_qty=opt_int(d.get("paid_email_qty")),
            overdraft_price=_dec(d.get("overdraft_price")),
            overdraft_currency=d.get("ovedraft_currency") or d.get("overdraft_currency"),
        )

    def edit_campaign(
        self,
        campaign_id: int,
        *,
        name: str | None = None,
        sender_name: str | None = None,
        sender_email: str | None = None,
        subject: str | None = None,
        body_html: str | None = None,
        template_id: str | int | None = None,
        send_date: datetime | None = None,
        send_test_only: Sequence[str] | None = None,
    ) -> None:
        """Change an unsent campaign, or send test copies (``send_test_only``, ≤ 3 addresses)."""
        payload: dict[str, Any] = {}
        for key, value in (
            ("name", name),
            ("sender_name", sender_name),
            ("sender_email", sender_email),
            ("subject", subject),
            ("template_id", template_id),
        ):
            if value is not None:
                payload[key] = value
        if body_html is not None:
            payload["body"] = base64.b64encode(body_html.encode("utf-8")).decode("ascii")
        if send_date is not None:
            payload["send_date"] = self._format_send_date(send_date)
        if send_test_only:
            payload["send_test_only"] = list(send_test_only)
        self.http.request("PATCH", f"/campaigns/{campaign_id}", json=payload, idempotent=not send_test_only)

    def get_campaign(self, campaign_id: int) -> CampaignInfo:
        """One campaign with its statistics."""
        return CampaignInfo.from_api(self._get(f"/campaigns/{campaign_id}"))

    def list_campaigns(self) -> Iterator[CampaignInfo]:
        """All campaigns (list items carry no statistics)."""
        for d in self._pages("/campaigns"):
            yield CampaignInfo.from_api(d)

    def find_campaign_by_name(self, suffix: str) -> CampaignInfo | None:
        """The newest campaign whose name ends with ``suffix`` (used to resolve unknown outcomes)."""
        found = [c for c in self.list_campaigns() if c.name.endswith(suffix)]
        return max(found, key=lambda c: c.id) if found else None

    def campaign_countries(self, campaign_id: int) -> dict[str, int]:
        """Opens per country code."""
        d = self._get(f"/campaigns/{campaign_id}/countries")
        return {str(k): int(v) for k, v in d.items()} if isinstance(d, dict) else {}

    def campaign_referrals(self, campaign_id: int) -> dict[str, int]:
        """Clicks per link."""
        d = self._get(f"/campaigns/{campaign_id}/referrals")
        return {str(x["link"]): int(x.get("count") or 0) for x in d} if isinstance(d, list) else {}

    def campaign_recipient(self, campaign_id: int, email: str) -> CampaignRecipientStatus:
        """One recipient's delivery status in a campaign."""
        d = self._get(f"/campaigns/{campaign_id}/email/{_seg(email)}")
        return CampaignRecipientStatus(
            _dt(d.get("sent_date")),
            opt_int(d.get("global_status")) or 0,
            str(d.get("global_status_explain") or ""),
        )

    def cancel_campaign(self, campaign_id: int) -> None:
        """Cancel a campaign that has not been sent yet."""
        self.http.request("DELETE", f"/campaigns/{campaign_id}")

    # -- templates ----------------------------------------------------------------------------------

    def create_template(self, body_html: str, *, name: str | None = None, lang: str = "en") -> int:
        """Create a template; returns its ``real_id`` (stable across edits)."""
        payload: dict[str, Any] = {
            "body": base64.b64encode(body_html.encode("utf-8")).decode("ascii"),
            "lang": lang,
        }
        if name:
            payload["name"] = name
        return int(self.http.request("POST", "/template", json=payload, idempotent=False).json()["real_id"])

    def edit_template(self, template_id: int | str, body_html: str, *, lang: str = "en") -> None:
        """Replace a template's body."""
        payload = {"body": base64.b64encode(body_html.encode("utf-8")).decode("ascii"), "lang": lang}
        self.http.request("POST", f"/template/edit/{_seg(template_id)}", json=payload, idempotent=True)

    def get_template(self, template_id: int | str) -> Template:
        """One template with its decoded body."""
        return Template.from_api(self._get(f"/template/{_seg(template_id)}"))

    def list_templates(self, *, owner: str | None = "me", lang: str | None = None) -> Iterator[Template]:
        """Templates, the account's own by default."""
        path = f"/templates/{_seg(lang)}" if lang else "/templates"
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": PAGE_MAX, "offset": offset}
            if owner:
                params["owner"] = owner
            page = self.http.request("GET", path, params=params).json()
            if not isinstance(page, list):
                return
            for d in page:
                yield Template.from_api(d)
            if len(page) < PAGE_MAX:
                return
            offset += PAGE_MAX

    # -- senders ---------------------------------------------------------------------------------------

    def list_senders(self) -> list[Sender]:
        """Sender addresses and their activation status."""
        return [
            Sender(str(d.get("name") or ""), str(d["email"]), str(d.get("status") or "")) for d in self._get("/senders")
        ]

    def add_sender(self, email: str, name: str) -> None:
        """Register a sender; it needs activation by code before use (902 ConflictError if it exists, which a
        retry after a lost answer also meets: addresses are unique, so a resend cannot double it)."""
        self.http.request("POST", "/senders", json={"email": email, "name": name}, idempotent=True)

    def delete_sender(self, email: str) -> None:
        """Remove a sender."""
        self.http.request("DELETE", "/senders", json={"email": email})

    def request_sender_code(self, email: str) -> None:
        """Mail the activation code to the sender address."""
        self._get(f"/senders/{_seg(email)}/code")

    def activate_sender(self, email: str, code: str) -> None:
        """Activate a sender with the code it received."""
        self.http.request("POST", f"/senders/{_seg(email)}/code", json={"code": code}, idempotent=True)

    # -- blacklist ------------------------------------------------------------------------------------

    @staticmethod
    def _b64_list(emails: Sequence[str]) -> str:
        return base64.b64encode(",".join(emails).encode("utf-8")).decode("ascii")

    def blacklist(self) -> list[str]:
        """Every account-wide blacklisted address."""
        out: list[str] = []
        for item in self._pages("/blacklist"):
            out.append(str(item))
        return out

    def add_to_blacklist(self, emails: Sequence[str], comment: str | None = None) -> None:
        """Blacklist addresses account-wide (nothing to send for an empty list)."""
        if not emails:
            return
        payload: dict[str, Any] = {"emails": self._b64_list(emails)}
        if comment:
            payload["comment"] = comment
        self.http.request("POST", "/blacklist", json=payload, idempotent=True)

    def remove_from_blacklist(self, emails: Sequence[str]) -> None:
        """Take addresses off the blacklist (nothing to send for an empty list)."""
        if not emails:
            return
        self.http.request("DELETE", "/blacklist", json={"emails": self._b64_list(emails)})

    # -- balance --------------------------------------------------------------------------------------

    def balance(self, currency: str | None = None) -> CurrencyBalance:
        """Account balance in the account currency, or converted to ``currency``."""
        d = self._get(f"/balance/{_seg(currency)}" if currency else "/balance")
        return CurrencyBalance(str(d.get("currency") or ""), _dec(d.get("balance_currency")) or Decimal(0))

    def balance_detail(self) -> BalanceDetail:
        """Money, bonus and plan letters left."""
        d = self._get("/user/balance/detail")
        bal = d.get("balance") or {}
        em = d.get("email") or {}
        return BalanceDetail(
            main=_dec(bal.get("main")),
            bonus=_dec(bal.get("bonus")),
            currency=bal.get("currency"),
            tariff_name=em.get("tariff_name"),
            finished_time=_dt(em.get("finished_time")),
            emails_left=opt_int(em.get("emails_left")),
            maximum_subscribers=opt_int(em.get("maximum_subscribers")),
            current_subscribers=opt_int(em.get("current_subscribers")),
            raw=d,
        )

    # -- email information --------------------------------------------------------------------------

    def email_memberships(self, email: str) -> list[EmailMembership]:
        """The books an address belongs to, with status and variables."""
        data = self._get(f"/emails/{_seg(email)}")
        return [
            EmailMembership(
                int(d["book_id"]),
                str(d.get("email", email)),
                opt_int(d.get("status")) or 0,
                _vars(d.get("variables")),
            )
            for d in (data if isinstance(data, list) else [])
        ]

    def email_details(self, email: str) -> list[EmailBookDetail]:
        """When and how an address joined each book."""
        data = self._get(f"/emails/{_seg(email)}/details")
        return [
            EmailBookDetail(str(d.get("list_name") or ""), int(d["list_id"]), _dt(d.get("add_date")), d.get("source"))
            for d in (data if isinstance(data, list) else [])
        ]

    def email_campaigns(self, email: str) -> EmailCampaignSummary:
        """Campaign statistics and blacklist flag of one address."""
        d = self._get(f"/emails/{_seg(email)}/campaigns")
        st = d.get("statistic") or {}
        return EmailCampaignSummary(
            int(st.get("sent") or 0),
            int(st.get("open") or 0),
            int(st.get("link") or 0),
            bool(d.get("blacklist")),
        )

    def emails_campaigns(self, emails: Sequence[str]) -> dict[str, EmailCampaignSummary]:
        """Campaign statistics of several addresses at once."""
        d = self.http.request("POST", "/emails/campaigns", json={"emails": list(emails)}, idempotent=True).json()
        out: dict[str, EmailCampaignSummary] = {}
        for email, v in (d or {}).items():
            books = tuple((int(b["id"]), str(b.get("name") or "")) for b in v.get("adressbooks") or [])
            out[email] = EmailCampaignSummary(
                int(v.get("sent") or 0),
                int(v.get("open") or 0),
                int(v.get("link") or 0),
                bool(v.get("blacklist")),
                books,
            )
        return out

    def delete_email_everywhere(self, email: str) -> None:
        """Remove an address from every book."""
        self.http.request("DELETE", f"/emails/{_seg(email)}")

    # -- webhooks -------------------------------------------------------------------------------------

    def list_webhooks(self) -> list[Webhook]:
        """Registered webhooks (one per action)."""
        d = self._get("/v2/email-service/webhook")
        return [_webhook(x) for x in d.get("data", [])]

    def create_webhook(self, url: str, actions: Sequence[str]) -> list[Webhook]:
        """Register ``url`` for each action; one hook per action."""
        d = self.http.request(
            "POST", "/v2/email-service/webhook", json={"url": url, "actions": list(actions)}, idempotent=False
        ).json()
        return [_webhook(x) for x in d.get("data", [])]

    def update_webhook(self, webhook_id: str, url: str) -> None:
        """Point a webhook at a new URL."""
        self.http.request("PUT", f"/v2/email-service/webhook/{_seg(webhook_id)}", json={"url": url})

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook."""
        self.http.request("DELETE", f"/v2/email-service/webhook/{_seg(webhook_id)}")


def _webhook(d: Mapping[str, Any]) -> Webhook:
    return Webhook(
        str(d["id"]), str(d.get("url") or ""), str(d.get("action") or ""), str(d.get("user_id") or "") or None
    )


# -- status maps (sendpulse.md §6) --------------------------------------------------------------------------

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
    batch_size = EMAILS_PER_CALL

    def __init__(self, client: SendPulseClient) -> None:
        self.client = client
        self.split_calls = 0

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

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        """Add/update in calls of 100; a call refused as a whole is split to isolate the bad rows."""
        out: list[RowResult] = []
        for start in range(0, len(rows), self.batch_size):
            out.extend(self._add(int(book_id), list(rows[start : start + self.batch_size])))
        return out

    def _add(self, book_id: int, rows: list[MemberInput]) -> list[RowResult]:
        try:
            self.client.add_emails(book_id, [EmailToAdd(r.email, _variables(r.fields)) for r in rows])
        except ValidationError as exc:
            if len(rows) == 1:
                blocked = exc.code in (904, "904")
                return [RowResult(rows[0].email, ok=False, error=exc.message, suppressed=blocked)]
            self.split_calls += 2
            mid = len(rows) // 2
            return self._add(book_id, rows[:mid]) + self._add(book_id, rows[mid:])
        return [RowResult(r.email, ok=True) for r in rows]

    def remove_members(self, book_id: str, emails: Sequence[str], *, unsubscribe: bool) -> list[RowResult]:
        if unsubscribe:
            try:
                self.client.unsubscribe_emails(int(book_id), emails)
            except ValidationError as exc:
                if "not found" not in exc.message.lower():  # nobody active left: already unsubscribed
                    raise
        else:
            self.client.delete_emails(int(book_id), emails)
        return [RowResult(e, ok=True) for e in emails]

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


def _account_time(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A naive ``YYYY-MM-DD HH:MM:SS`` from the API is wall time in the account's zone; returned in UTC."""
    return value.replace(tzinfo=zone).astimezone(UTC) if value is not None else None


def _variables(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Book variables: dates as ``YYYY-MM-DD``, everything else as given; None values are left out."""
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
