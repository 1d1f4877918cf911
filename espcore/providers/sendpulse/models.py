"""SendPulse's answers: the shapes the client accepts (anything else is a typed error) and the typed records
it returns."""

import base64
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from espcore.http import Shape
from espcore.providers.answers import Id, Int, answer
from espcore.providers.coerce import opt_int
from espcore.providers.sendpulse.constants import DATE_FMT

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
