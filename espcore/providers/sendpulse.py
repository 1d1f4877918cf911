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
from typing import Annotated, Any, Literal, NotRequired, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

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
from espcore.http import Expect, HttpPolicy, ProviderClient, ProviderHttp, Shape, json_or_text
from espcore.providers.answers import Id, Int, answer
from espcore.providers.base import (
    AddressRules,
    Balance,
    Book,
    Campaign,
    CampaignDraft,
    CampaignRateCap,
    CampaignState,
    CampaignStats,
    CostInfo,
    Member,
    MemberInput,
    MemberState,
    RowResult,
    Suppression,
    TestMessage,
)
from espcore.providers.coerce import opt_int

T = TypeVar("T")
R = TypeVar("R")

SENDPULSE_BASE_URL = "https://api.sendpulse.com"
PAGE_MAX = 100
EMAILS_PER_CALL = 100  # delete/unsubscribe cap; also the batch the client uses for adds
CAMPAIGN_RATE_CAP = CampaignRateCap(per_hour=4, refusal="error 791")  # campaigns created through the API per hour
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


def error_envelope(payload: Any) -> tuple[str | int | None, str] | None:
    """``(error_code, message)`` when a decoded body is one of SendPulse's error answers (``{"message",
    "error_code"}``, the OAuth ``{"error","error_description"}``, ``{"result": false}``), else None."""
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    failed = payload.get("result") is False or payload.get("success") is False
    if not (failed or "error_code" in payload or "error" in payload or set(payload) == {"message"}):
        return None
    code = payload.get("error_code")
    message = payload.get("message") or payload.get("error_description") or payload.get("error")
    return (
        code if isinstance(code, str | int) and not isinstance(code, bool) else None,
        str(message) if message else "the answer says the call failed",
    )


def _seg(value: object) -> str:
    """One URL path segment: an address or variable value may hold ``?``, ``#``, ``%`` or spaces."""
    return quote(str(value), safe="@+!$&'()*,;=:~")


# -- answers: the documented success shapes (as documented), the fields the client reads -----------------------

#: a number as SendPulse writes it (money is a string in one answer, a float in the next), kept as sent
Number = str | int | float


@answer
class _Ok(TypedDict):
    """``{"result": true}``; some actions add ``id``, ``email`` or ``real_id``."""

    result: Literal[True]


@answer
class _V2Ok(TypedDict):
    """``{"success": true, "data": [true]}`` of a webhook update or delete (the seed; ``data`` an object tolerated)."""

    success: Literal[True]
    data: list[Any] | dict[str, Any]


@answer
class _Token(TypedDict):
    access_token: Annotated[str, Field(min_length=1)]
    expires_in: NotRequired[float | None]


@answer
class _Created(TypedDict):
    id: Int


@answer
class _TemplateCreated(TypedDict):
    real_id: Int


@answer
class _BookRow(TypedDict):
    id: Int
    name: str


@answer
class _ContactRow(TypedDict):
    email: str
    status: Int


@answer
class _Total(TypedDict):
    total: Int


@answer
class _VariableRow(TypedDict):
    name: str
    type: NotRequired[str | None]


@answer
class _Cost(TypedDict):
    cur: str
    result: bool


@answer
class _BookCampaignRow(TypedDict):
    task_id: Int
    task_name: NotRequired[str | None]


@answer
class _StatRow(TypedDict):
    code: Int
    count: NotRequired[Int | None]
    explain: NotRequired[str | None]


@answer
class _CampaignMessage(TypedDict, total=False):
    sender_name: str | None
    sender_email: str | None
    subject: str | None
    body: str | None


@answer
class _CampaignRow(TypedDict):
    id: Int
    status: Int
    name: NotRequired[str | None]
    message: NotRequired[_CampaignMessage | list[Any] | None]  # PHP writes an empty object as []
    statistics: NotRequired[list[_StatRow] | dict[str, Any] | None]  # list items: an object of totals (§7.2)
    overdraft_currency: NotRequired[str | None]
    permalink: NotRequired[str | None]


@answer
class _CampaignCreated(TypedDict):
    id: Int


@answer
class _Referral(TypedDict):
    link: str
    count: NotRequired[Int | None]


@answer
class _RecipientStatus(TypedDict):
    global_status: Int
    global_status_explain: NotRequired[str | None]


@answer
class _TemplateRow(TypedDict):
    id: Id
    real_id: Int
    name: NotRequired[str | None]
    lang: NotRequired[str | None]
    owner: NotRequired[str | None]
    body: NotRequired[str | None]


@answer
class _SenderRow(TypedDict):
    email: str
    name: NotRequired[str | None]
    status: NotRequired[str | None]


@answer
class _Balance(TypedDict):
    currency: str
    balance_currency: Decimal


@answer
class _Money(TypedDict, total=False):
    main: Number | None
    bonus: Number | None
    currency: str | None


@answer
class _EmailPlan(TypedDict, total=False):
    tariff_name: str | None
    finished_time: str | None
    emails_left: Number | None
    maximum_subscribers: Number | None
    current_subscribers: Number | None


@answer
class _BalanceDetail(TypedDict):
    balance: _Money
    email: _EmailPlan


@answer
class _MembershipRow(TypedDict):
    book_id: Int
    email: NotRequired[str | None]
    status: NotRequired[Int | None]


@answer
class _BookDetailRow(TypedDict):
    list_id: Int
    list_name: NotRequired[str | None]
    add_date: NotRequired[str | None]
    source: NotRequired[str | None]


@answer
class _CampaignCounts(TypedDict, total=False):
    sent: Int | None
    open: Int | None
    link: Int | None


@answer
class _EmailCampaigns(TypedDict):
    statistic: _CampaignCounts
    blacklist: bool


@answer
class _BookRef(TypedDict):
    id: Int
    name: NotRequired[str | None]


@answer
class _EmailCampaignsEntry(TypedDict, total=False):
    sent: Int | None
    open: Int | None
    link: Int | None
    adressbooks: list[_BookRef] | None  # (sic)
    blacklist: bool | None


@answer
class _Hook(TypedDict):
    id: Id
    url: NotRequired[str | None]
    action: NotRequired[str | None]
    user_id: NotRequired[Id | None]


@answer
class _Hooks(TypedDict):
    success: Literal[True]
    data: list[_Hook]


@answer
class _OneHook(TypedDict):
    """``{"success": true, "data": {..}}`` of ``GET /v2/email-service/webhook/{id}``: one object, not a list."""

    success: Literal[True]
    data: _Hook


_OK: Shape[_Ok] = Shape(_Ok)
_V2_OK: Shape[_V2Ok] = Shape(_V2Ok)
_TOKEN: Shape[_Token] = Shape(_Token)
_CREATED: Shape[_Created] = Shape(_Created)
_TEMPLATE_CREATED: Shape[_TemplateCreated] = Shape(_TemplateCreated)
_BOOKS: Shape[list[_BookRow]] = Shape(list[_BookRow])
#: ``GET /addressbooks/{id}`` answers a one-element array (a bare object is tolerated)
_ONE_BOOK: Shape[list[_BookRow] | _BookRow] = Shape(Annotated[list[_BookRow], Field(min_length=1)] | _BookRow)
_CONTACTS: Shape[list[_ContactRow]] = Shape(list[_ContactRow])
_CONTACT: Shape[_ContactRow] = Shape(_ContactRow)
_TOTAL: Shape[_Total] = Shape(_Total)
_VARIABLES: Shape[list[_VariableRow]] = Shape(list[_VariableRow])
_COST: Shape[_Cost] = Shape(_Cost)
_BOOK_CAMPAIGNS: Shape[list[_BookCampaignRow]] = Shape(list[_BookCampaignRow])
_CAMPAIGNS: Shape[list[_CampaignRow]] = Shape(list[_CampaignRow])
_CAMPAIGN: Shape[_CampaignRow] = Shape(_CampaignRow)
_CAMPAIGN_CREATED: Shape[_CampaignCreated] = Shape(_CampaignCreated)
_COUNTRIES: Shape[dict[str, Int]] = Shape(dict[str, Int])
_REFERRALS: Shape[list[_Referral]] = Shape(list[_Referral])
_RECIPIENT: Shape[_RecipientStatus] = Shape(_RecipientStatus)
_TEMPLATES: Shape[list[_TemplateRow]] = Shape(list[_TemplateRow])
_TEMPLATE: Shape[_TemplateRow] = Shape(_TemplateRow)
_SENDERS: Shape[list[_SenderRow]] = Shape(list[_SenderRow])
_BLACKLIST: Shape[list[str]] = Shape(list[str])
_BALANCE: Shape[_Balance] = Shape(_Balance)
_BALANCE_DETAIL: Shape[_BalanceDetail] = Shape(_BalanceDetail)
_MEMBERSHIPS: Shape[list[_MembershipRow]] = Shape(list[_MembershipRow])
_BOOK_DETAILS: Shape[list[_BookDetailRow]] = Shape(list[_BookDetailRow])
_EMAIL_CAMPAIGNS: Shape[_EmailCampaigns] = Shape(_EmailCampaigns)
_EMAILS_CAMPAIGNS: Shape[dict[str, _EmailCampaignsEntry]] = Shape(dict[str, _EmailCampaignsEntry])
_HOOKS: Shape[_Hooks] = Shape(_Hooks)
_ONE_HOOK: Shape[_OneHook] = Shape(_OneHook)
#: ``POST /emails``: each asked address -> its books (an address in no book: an empty list, or left out)
_EMAILS_INFO: Shape[dict[str, list[_MembershipRow]]] = Shape(dict[str, list[_MembershipRow]])


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
            error_envelope=error_envelope,
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
        data = self.http.call(
            "POST",
            "/oauth/access_token",
            self._token_answer,
            json={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            authenticated=False,
            idempotent=True,  # asking for a token twice has no side effect
        )
        token = data["access_token"]
        ttl = float(data.get("expires_in") or 3600)
        self._token = token
        self._token_expires = issued + ttl
        # Renew 60 s early; a short-lived token (a test account) is renewed at half its life instead, so that
        # it is not fetched anew before every call.
        self._refresh_margin = min(self.REFRESH_MARGIN_S, ttl / 2)

    def _token_answer(self, payload: Any) -> _Token:
        """The token answer; its token is registered as a secret first, so no error can quote it."""
        if isinstance(payload, dict) and isinstance(payload.get("access_token"), str):
            self.http.redact.add(payload["access_token"])
        return _TOKEN(payload)

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

    def _get(self, path: str, shape: Expect[T], **params: Any) -> T:
        return self.http.call("GET", path, shape, params=params or None)

    def _write(self, method: str, path: str, shape: Expect[T] = _OK, **kwargs: Any) -> T:
        """A call that changes something, its answer checked (``{"result": true}`` unless said otherwise)."""
        return self.http.call(method, path, shape, **kwargs)

    def _pages(
        self, path: str, shape: Shape[list[R]], params: Mapping[str, Any] | None = None, limit: int = PAGE_MAX
    ) -> Iterator[R]:
        offset = 0
        while True:
            page = self._get(path, shape, **(params or {}), limit=limit, offset=offset)
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
        for d in self._pages("/addressbooks", _BOOKS):
            yield AddressBook.from_api(d)

    def get_book(self, book_id: int) -> AddressBook:
        """One address book (the API answers a one-element array)."""
        data = self._get(f"/addressbooks/{book_id}", _ONE_BOOK)
        return AddressBook.from_api(data[0] if isinstance(data, list) else data)

    def create_book(self, name: str) -> int:
        """Create an address book; returns its id (203 ConflictError if the name is taken).

        Names are unique, so a resend cannot make a second book: a transient failure is retried, and a retry
        after a lost answer meets 203 (the book exists; look it up by name).
        """
        return self._write("POST", "/addressbooks", _CREATED, json={"bookName": name}, idempotent=True)["id"]

    def rename_book(self, book_id: int, name: str) -> None:
        """Rename an address book."""
        self._write("PUT", f"/addressbooks/{book_id}", json={"name": name})

    def delete_book(self, book_id: int) -> None:
        """Delete an address book."""
        self._write("DELETE", f"/addressbooks/{book_id}")

    def book_variables(self, book_id: int) -> list[BookVariable]:
        """Variables defined on a book."""
        return [
            BookVariable(v["name"], v.get("type") or "string")
            for v in self._get(f"/addressbooks/{book_id}/variables", _VARIABLES)
        ]

    def find_by_variable(self, book_id: int, name: str, value: str) -> list[BookContact]:
        """Contacts of a book whose variable ``name`` equals ``value``."""
        data = self._get(f"/addressbooks/{book_id}/variables/{_seg(name)}/{_seg(value)}", _CONTACTS)
        return [BookContact.from_api(d, book_id) for d in data]

    def book_emails(self, book_id: int) -> Iterator[BookContact]:
        """Every contact of a book, paging through limit/offset."""
        for d in self._pages(f"/addressbooks/{book_id}/emails", _CONTACTS):
            yield BookContact.from_api(d, book_id)

    def book_email_total(self, book_id: int) -> int:
        """Number of contacts in a book."""
        return self._get(f"/addressbooks/{book_id}/emails/total", _TOTAL)["total"]

    def book_email(self, book_id: int, email: str) -> BookContact:
        """One contact of a book with its status and variables."""
        return BookContact.from_api(self._get(f"/addressbooks/{book_id}/emails/{_seg(email)}", _CONTACT), book_id)

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
            # An add is an upsert keyed by email: resending it cannot double anything. Only {"result": true} says
            # the book took the chunk; any other answer raises, and nothing of the chunk counts as added.
            self._write("POST", f"/addressbooks/{book_id}/emails", json=payload, idempotent=True)

    def delete_emails(self, book_id: int, emails: Sequence[str]) -> None:
        """Remove contacts from one book (100 per call)."""
        for start in range(0, len(emails), EMAILS_PER_CALL):
            self._write(
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
                self._write(
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
        self._write(
            "POST",
            f"/addressbooks/{book_id}/emails/variable",
            json={"email": email, "variables": [{"name": k, "value": v} for k, v in variables.items()]},
            idempotent=True,
        )

    def book_cost(self, book_id: int) -> BookCost:
        """What a campaign to this book would cost, and whether the balance covers it."""
        d = self._get(f"/addressbooks/{book_id}/cost", _COST)
        return BookCost(
            currency=d.get("cur"),
            sent_emails_qty=opt_int(d.get("sent_emails_qty")),
            overdraft_all_emails_price=_dec(d.get("overdraftAllEmailsPrice")),
            addresses_delta_from_balance=opt_int(d.get("addressesDeltaFromBalance")),
            addresses_delta_from_tariff=opt_int(d.get("addressesDeltaFromTariff")),
            max_emails_per_task=opt_int(d.get("max_emails_per_task")),
            enough=d["result"],
        )

    def book_campaigns(self, book_id: int) -> Iterator[BookCampaign]:
        """Campaigns sent to a book."""
        for d in self._pages(f"/addressbooks/{book_id}/campaigns", _BOOK_CAMPAIGNS):
            yield BookCampaign(d["task_id"], d.get("task_name") or "", opt_int(d.get("task_status")) or 0)

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
        # Not a resend-safe call: an answer that is not the documented one raises UnexpectedOutcomeError (an
        # OutcomeUnknownError), so a launch looks the campaign up by name instead of posting it again.
        d = self._write("POST", "/campaigns", _CAMPAIGN_CREATED, json=payload, idempotent=False)
        return CampaignCreated(
            id=d["id"],
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
        self._write("PATCH", f"/campaigns/{campaign_id}", json=payload, idempotent=not send_test_only)

    def get_campaign(self, campaign_id: int) -> CampaignInfo:
        """One campaign with its statistics."""
        return CampaignInfo.from_api(self._get(f"/campaigns/{campaign_id}", _CAMPAIGN))

    def list_campaigns(self) -> Iterator[CampaignInfo]:
        """All campaigns (list items carry no statistics)."""
        for d in self._pages("/campaigns", _CAMPAIGNS):
            yield CampaignInfo.from_api(d)

    def find_campaign_by_name(self, suffix: str) -> CampaignInfo | None:
        """The newest campaign whose name ends with ``suffix`` (used to resolve unknown outcomes)."""
        found = [c for c in self.list_campaigns() if c.name.endswith(suffix)]
        return max(found, key=lambda c: c.id) if found else None

    def campaign_countries(self, campaign_id: int) -> dict[str, int]:
        """Opens per country code."""
        return self._get(f"/campaigns/{campaign_id}/countries", _COUNTRIES)

    def campaign_referrals(self, campaign_id: int) -> dict[str, int]:
        """Clicks per link."""
        return {x["link"]: x.get("count") or 0 for x in self._get(f"/campaigns/{campaign_id}/referrals", _REFERRALS)}

    def campaign_recipient(self, campaign_id: int, email: str) -> CampaignRecipientStatus:
        """One recipient's delivery status in a campaign."""
        d = self._get(f"/campaigns/{campaign_id}/email/{_seg(email)}", _RECIPIENT)
        return CampaignRecipientStatus(
            _dt(d.get("sent_date")),
            d["global_status"],
            d.get("global_status_explain") or "",
        )

    def cancel_campaign(self, campaign_id: int) -> None:
        """Cancel a campaign that has not been sent yet."""
        self._write("DELETE", f"/campaigns/{campaign_id}")

    # -- templates ----------------------------------------------------------------------------------

    def create_template(self, body_html: str, *, name: str | None = None, lang: str = "en") -> int:
        """Create a template; returns its ``real_id`` (stable across edits)."""
        payload: dict[str, Any] = {
            "body": base64.b64encode(body_html.encode("utf-8")).decode("ascii"),
            "lang": lang,
        }
        if name:
            payload["name"] = name
        return self._write("POST", "/template", _TEMPLATE_CREATED, json=payload, idempotent=False)["real_id"]

    def edit_template(self, template_id: int | str, body_html: str, *, lang: str = "en") -> None:
        """Replace a template's body."""
        payload = {"body": base64.b64encode(body_html.encode("utf-8")).decode("ascii"), "lang": lang}
        self._write("POST", f"/template/edit/{_seg(template_id)}", json=payload, idempotent=True)

    def get_template(self, template_id: int | str) -> Template:
        """One template with its decoded body."""
        return Template.from_api(self._get(f"/template/{_seg(template_id)}", _TEMPLATE))

    def get_template_by_slug(self, name_slug: str) -> Template:
        """One template by its ``name_slug`` (the system name the template answers carry), with its decoded body."""
        return Template.from_api(self._get(f"/templates/template/slug/{_seg(name_slug)}", _TEMPLATE))

    def list_templates(self, *, owner: str | None = "me", lang: str | None = None) -> Iterator[Template]:
        """Templates, the account's own by default."""
        path = f"/templates/{_seg(lang)}" if lang else "/templates"
        for d in self._pages(path, _TEMPLATES, {"owner": owner} if owner else None):
            yield Template.from_api(d)

    # -- senders ---------------------------------------------------------------------------------------

    def list_senders(self) -> list[Sender]:
        """Sender addresses and their activation status."""
        return [Sender(d.get("name") or "", d["email"], d.get("status") or "") for d in self._get("/senders", _SENDERS)]

    def add_sender(self, email: str, name: str) -> None:
        """Register a sender; it needs activation by code before use (902 ConflictError if it exists, which a
        retry after a lost answer also meets: addresses are unique, so a resend cannot double it)."""
        self._write("POST", "/senders", json={"email": email, "name": name}, idempotent=True)

    def delete_sender(self, email: str) -> None:
        """Remove a sender."""
        self._write("DELETE", "/senders", json={"email": email})

    def request_sender_code(self, email: str) -> None:
        """Mail the activation code to the sender address."""
        self._get(f"/senders/{_seg(email)}/code", _OK)

    def activate_sender(self, email: str, code: str) -> None:
        """Activate a sender with the code it received."""
        self._write("POST", f"/senders/{_seg(email)}/code", json={"code": code}, idempotent=True)

    # -- blacklist ------------------------------------------------------------------------------------

    @staticmethod
    def _b64_list(emails: Sequence[str]) -> str:
        return base64.b64encode(",".join(emails).encode("utf-8")).decode("ascii")

    def blacklist(self) -> list[str]:
        """Every account-wide blacklisted address."""
        return list(self._pages("/blacklist", _BLACKLIST))

    def add_to_blacklist(self, emails: Sequence[str], comment: str | None = None) -> None:
        """Blacklist addresses account-wide (nothing to send for an empty list)."""
        if not emails:
            return
        payload: dict[str, Any] = {"emails": self._b64_list(emails)}
        if comment:
            payload["comment"] = comment
        self._write("POST", "/blacklist", json=payload, idempotent=True)

    def remove_from_blacklist(self, emails: Sequence[str]) -> None:
        """Take addresses off the blacklist (nothing to send for an empty list)."""
        if not emails:
            return
        self._write("DELETE", "/blacklist", json={"emails": self._b64_list(emails)})

    # -- balance --------------------------------------------------------------------------------------

    def balance(self, currency: str | None = None) -> CurrencyBalance:
        """Account balance in the account currency, or converted to ``currency``."""
        d = self._get(f"/balance/{_seg(currency)}" if currency else "/balance", _BALANCE)
        return CurrencyBalance(d["currency"], d["balance_currency"])

    def balance_detail(self) -> BalanceDetail:
        """Money, bonus and plan letters left."""
        d = self._get("/user/balance/detail", _BALANCE_DETAIL)
        bal = d["balance"]
        em = d["email"]
        return BalanceDetail(
            main=_dec(bal.get("main")),
            bonus=_dec(bal.get("bonus")),
            currency=bal.get("currency"),
            tariff_name=em.get("tariff_name"),
            finished_time=_dt(em.get("finished_time")),
            emails_left=opt_int(em.get("emails_left")),
            maximum_subscribers=opt_int(em.get("maximum_subscribers")),
            current_subscribers=opt_int(em.get("current_subscribers")),
            raw=dict(d),
        )

    # -- email information --------------------------------------------------------------------------

    def email_memberships(self, email: str) -> list[EmailMembership]:
        """The books an address belongs to, with status and variables."""
        return [
            EmailMembership(d["book_id"], d.get("email") or email, d.get("status") or 0, _vars(d.get("variables")))
            for d in self._get(f"/emails/{_seg(email)}", _MEMBERSHIPS)
        ]

    def emails_memberships(self, emails: Sequence[str]) -> dict[str, list[EmailMembership]]:
        """The books of several addresses in one call (``POST /emails``); nothing is sent for an empty list."""
        if not emails:
            return {}
        body = {"emails": list(emails)}
        d = self._write("POST", "/emails", _EMAILS_INFO, json=body, idempotent=True, changes=False)
        return {
            email: [
                EmailMembership(r["book_id"], r.get("email") or email, r.get("status") or 0, _vars(r.get("variables")))
                for r in rows
            ]
            for email, rows in d.items()
        }

    def email_details(self, email: str) -> list[EmailBookDetail]:
        """When and how an address joined each book."""
        return [
            EmailBookDetail(d.get("list_name") or "", d["list_id"], _dt(d.get("add_date")), d.get("source"))
            for d in self._get(f"/emails/{_seg(email)}/details", _BOOK_DETAILS)
        ]

    def email_campaigns(self, email: str) -> EmailCampaignSummary:
        """Campaign statistics and blacklist flag of one address."""
        d = self._get(f"/emails/{_seg(email)}/campaigns", _EMAIL_CAMPAIGNS)
        st = d["statistic"]
        return EmailCampaignSummary(st.get("sent") or 0, st.get("open") or 0, st.get("link") or 0, d["blacklist"])

    def emails_campaigns(self, emails: Sequence[str]) -> dict[str, EmailCampaignSummary]:
        """Campaign statistics of several addresses at once."""
        body = {"emails": list(emails)}
        d = self._write("POST", "/emails/campaigns", _EMAILS_CAMPAIGNS, json=body, idempotent=True, changes=False)
        out: dict[str, EmailCampaignSummary] = {}
        for email, v in d.items():
            books = tuple((b["id"], b.get("name") or "") for b in v.get("adressbooks") or [])
            out[email] = EmailCampaignSummary(
                v.get("sent") or 0, v.get("open") or 0, v.get("link") or 0, bool(v.get("blacklist")), books
            )
        return out

    def delete_email_everywhere(self, email: str) -> None:
        """Remove an address from every book."""
        self._write("DELETE", f"/emails/{_seg(email)}")

    # -- webhooks -------------------------------------------------------------------------------------

    def list_webhooks(self) -> list[Webhook]:
        """Registered webhooks (one per action)."""
        return [_webhook(x) for x in self._get("/v2/email-service/webhook", _HOOKS)["data"]]

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook by id (404 NotFoundError once deleted)."""
        return _webhook(self._get(f"/v2/email-service/webhook/{_seg(webhook_id)}", _ONE_HOOK)["data"])

    def create_webhook(self, url: str, actions: Sequence[str]) -> list[Webhook]:
        """Register ``url`` for each action; one hook per action."""
        body = {"url": url, "actions": list(actions)}
        d = self._write("POST", "/v2/email-service/webhook", _HOOKS, json=body, idempotent=False)
        return [_webhook(x) for x in d["data"]]

    def update_webhook(self, webhook_id: str, url: str) -> None:
        """Point a webhook at a new URL."""
        self._write("PUT", f"/v2/email-service/webhook/{_seg(webhook_id)}", _V2_OK, json={"url": url})

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook."""
        self._write("DELETE", f"/v2/email-service/webhook/{_seg(webhook_id)}", _V2_OK)


def _webhook(d: _Hook) -> Webhook:
    return Webhook(d["id"], d.get("url") or "", d.get("action") or "", d.get("user_id") or None)


# -- status maps (as documented) --------------------------------------------------------------------------

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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
