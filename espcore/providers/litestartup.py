"""LiteStartup REST API v2: a typed client and the provider-neutral adapter, in two dialects.

LiteStartup has published two API doc sets under the same base ``/client/v2``. The *seed* dialect (the one the
product was specified from): REST paths, mixed envelopes (bare ``uuid``/``messageId``, ``{"success","data"}``,
``pagination``), symbolic error codes, webhooks. The *current* dialect (its newer official documentation, which
a real account most likely speaks): verb-style paths, the ``{"code","message","data"}`` envelope, errors by
HTTP status (validation can be a 500), integer ids, tags as objects, scoped keys, ``GET /settings/usage`` and a
CSV import; see :mod:`espcore.providers.litestartup_current`. The client takes ``dialect="seed"|"current"|
"auto"``; ``auto`` asks ``GET /verify`` once and decides from the shape of its answer.

:class:`LiteStartupProvider` maps LiteStartup onto :class:`espcore.providers.base.EspProvider`: a *book* is a
tag on contacts, members are contacts carrying the tag, suppressions are ``subscribed=false`` contacts plus
bounced emails, and campaigns target ``recipient_list: "tag:<book>"``. In the current dialect a book is a tag
object (its id is the book id) and campaigns target its id. The seed's API exposes no quota or balance endpoint,
so :meth:`LiteStartupClient.balance` says so there instead of inventing numbers; the current dialect's
``GET /settings/usage`` gives the monthly email quota.
"""

import csv
import hashlib
import hmac
import io
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Literal, NotRequired, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from espcore.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    EspError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    ValidationError,
)
from espcore.http import (
    AnswerMismatch,
    HttpPolicy,
    ProviderClient,
    ProviderHttp,
    Shape,
    json_or_text,
    parse_retry_after,
)
from espcore.providers.answers import Id, Int, answer
from espcore.providers.base import (
    AddressRules,
    Balance,
    Book,
    Campaign,
    CampaignDraft,
    CampaignState,
    CampaignStats,
    DeliveryEvent,
    Member,
    MemberInput,
    MemberState,
    RowResult,
    Suppression,
    TestMessage,
)
from espcore.providers.coerce import as_int
from espcore.providers.litestartup_common import LITESTARTUP_BASE_URL, PAGE_MAX, PROVIDER, QUOTA_TEXT, PageInfo
from espcore.providers.litestartup_current import CAMPAIGN as CUR_CAMPAIGN
from espcore.providers.litestartup_current import CONTACT as CUR_CONTACT
from espcore.providers.litestartup_current import (
    CURRENT_DIALECT,
    DIALECT_SETTINGS,
    CurCampaign,
    CurContact,
    CurEmail,
    CurrentDialect,
    CurStats,
    CurTag,
    CurTemplate,
    DialectDetection,
    DialectName,
    DialectSetting,
    detect_dialect,
)
from espcore.providers.litestartup_current import EMAIL as CUR_EMAIL
from espcore.providers.litestartup_current import IMPORT as CUR_IMPORT
from espcore.providers.litestartup_current import REPORT as CUR_REPORT
from espcore.providers.litestartup_current import SEARCH as CUR_SEARCH
from espcore.providers.litestartup_current import TAG as CUR_TAG
from espcore.providers.litestartup_current import TEMPLATE as CUR_TEMPLATE
from espcore.providers.litestartup_current import USAGE as CUR_USAGE

__all__ = [
    "CURRENT_DIALECT",
    "DIALECT_SETTINGS",
    "LITESTARTUP_BASE_URL",
    "PAGE_MAX",
    "PROVIDER",
    "SEED_DIALECT",
    "CurrentDialect",
    "DialectDetection",
    "DialectName",
    "DialectSetting",
    "LiteStartupClient",
    "LiteStartupDialect",
    "LiteStartupProvider",
    "PageInfo",
    "SeedDialect",
    "detect_dialect",
]

SIGNATURE_HEADER = "X-LiteStartup-Signature"
#: client-side request rate per plan, requests per minute (the API's documented per-minute limits)
PLAN_REQUESTS_PER_MINUTE: Mapping[str, float] = {"free": 60.0, "pro": 300.0}
WEBHOOK_EVENTS = (
    "email.sent",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.spam_reported",
    "email.unsubscribed",
)
NOT_EXPOSED = "not_exposed"
FORBIDDEN = "forbidden"  # the key may not read /settings/usage (owner/admin only)

T = TypeVar("T")
R = TypeVar("R")


# -- parsing helpers ---------------------------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 (``Z`` allowed) or ``YYYY-MM-DD HH:MM:SS``; None otherwise."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes sent to LiteStartup must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(value: Any) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


# -- typed results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint."""

    items: list[T]
    info: PageInfo


@dataclass(frozen=True)
class LsVerify:
    uuid: str


@dataclass(frozen=True)
class LsContact:
    """A contact. A create answer only carries id, email, name and created_at; the rest stay None/empty."""

    id: str
    email: str
    name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    subscribed: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: current dialect only: native name fields (in the seed they travel as attributes)
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None

    @classmethod
    def from_current(cls, d: CurContact | Mapping[str, Any]) -> "LsContact":
        """A current-dialect contact: ``custom_fields`` are the attributes, ``tags`` tag ids, ``status`` the flag."""
        cf = d.get("custom_fields")
        status = d.get("status")
        return cls(
            id=_id(d.get("id")),
            email=str(d.get("email") or ""),
            name=d.get("name"),
            attributes=dict(cf) if isinstance(cf, Mapping) else {},
            tags=tuple(_str_list(d.get("tags"))),
            subscribed=None if status not in ("subscribed", "unsubscribed") else status == "subscribed",
            created_at=_dt(d.get("created_at")),
            updated_at=_dt(d.get("updated_at")),
            first_name=d.get("first_name"),
            last_name=d.get("last_name"),
            phone=d.get("phone"),
            company=d.get("company"),
        )

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "LsContact":
        attrs = d.get("attributes")
        sub = d.get("subscribed")
        return cls(
            id=_id(d.get("id")),
            email=str(d.get("email") or ""),
            name=d.get("name"),
            attributes=dict(attrs) if isinstance(attrs, Mapping) else {},
            tags=tuple(_str_list(d.get("tags"))),
            subscribed=sub if isinstance(sub, bool) else None,
            created_at=_dt(d.get("created_at")),
            updated_at=_dt(d.get("updated_at")),
        )


@dataclass(frozen=True)
class LsTemplate:
    id: str
    name: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    variables: tuple[str, ...] = ()
    description: str | None = None
    created_at: datetime | None = None
    #: current dialect only: the id ``POST /emails`` takes in ``template.id``, and the category
    string_id: str | None = None
    category: str | None = None

    @classmethod
    def from_current(cls, d: CurTemplate | Mapping[str, Any]) -> "LsTemplate":
        """A current-dialect template: ``content`` is the html."""
        return cls(
            id=_id(d.get("id")),
            name=str(d.get("name") or ""),
            html=d.get("content"),
            description=d.get("description"),
            created_at=_dt(d.get("created_at")),
            string_id=d.get("string_id"),
            category=d.get("category"),
        )

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "LsTemplate":
        return cls(
            id=_id(d.get("id")),
            name=str(d.get("name") or ""),
            subject=d.get("subject"),
            html=d.get("html"),
            text=d.get("text"),
            variables=tuple(_str_list(d.get("variables"))),
            description=d.get("description"),
            created_at=_dt(d.get("created_at")),
        )


@dataclass(frozen=True)
class LsCampaign:
    id: str
    name: str
    status: str
    subject: str | None = None
    from_email: str | None = None
    recipient_list: str | None = None
    scheduled_at: datetime | None = None
    sent_at: datetime | None = None
    created_at: datetime | None = None
    #: current dialect only: the targeted tag ids, sender name and recipient count
    tag_ids: tuple[str, ...] = ()
    from_name: str | None = None
    total_recipients: int | None = None

    @classmethod
    def from_current(cls, d: CurCampaign | Mapping[str, Any]) -> "LsCampaign":
        """A current-dialect campaign (``from_email``, ``tag_id``, ``YYYY-MM-DD HH:MM:SS`` times)."""
        tag_ids = d.get("tag_ids")
        tag_id = d.get("tag_id")
        tags = _str_list(tag_ids) if tag_ids else ([_id(tag_id)] if tag_id is not None else [])
        total = d.get("total_recipients")
        return cls(
            id=_id(d.get("id")),
            name=str(d.get("name") or ""),
            status=str(d.get("status") or ""),
            subject=d.get("subject"),
            from_email=d.get("from_email"),
            scheduled_at=_dt(d.get("scheduled_at")),
            sent_at=_dt(d.get("sent_at")),
            created_at=_dt(d.get("created_at")),
            tag_ids=tuple(tags),
            from_name=d.get("from_name"),
            total_recipients=None if total is None else as_int(total),
        )

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "LsCampaign":
        return cls(
            id=_id(d.get("id")),
            name=str(d.get("name") or ""),
            status=str(d.get("status") or ""),
            subject=d.get("subject"),
            from_email=d.get("from"),
            recipient_list=d.get("recipient_list"),
            scheduled_at=_dt(d.get("scheduled_at")),
            sent_at=_dt(d.get("sent_at")),
            created_at=_dt(d.get("created_at")),
        )

    @property
    def tag(self) -> str | None:
        """The tag a ``tag:<name>`` recipient list targets (current dialect: the first targeted tag id)."""
        rl = self.recipient_list or ""
        if rl.startswith("tag:"):
            return rl[4:]
        return self.tag_ids[0] if self.tag_ids else None


@dataclass(frozen=True)
class LsCampaignSend:
    id: str
    status: str


@dataclass(frozen=True)
class LsCampaignStats:
    id: str
    name: str | None
    sent: int
    delivered: int
    bounced: int
    opened: int
    clicked: int
    unsubscribed: int
    spam_reported: int | None  # the current dialect's report counts no spam complaints
    open_rate: float | None
    click_rate: float | None
    unsubscribe_rate: float | None = None
    bounce_rate: float | None = None

    @classmethod
    def from_current(cls, campaign_id: str, d: CurStats, name: str | None = None) -> "LsCampaignStats":
        """A current-dialect report's ``stats`` (``total_recipients``, ``opens``, ``clicks``, ``bounces``...)."""
        return cls(
            id=campaign_id,
            name=name,
            sent=d["total_recipients"],
            delivered=d["delivered"],
            bounced=as_int(d.get("bounces")),
            opened=d["opens"],
            clicked=d["clicks"],
            unsubscribed=as_int(d.get("unsubscribes")),
            spam_reported=None,
            open_rate=_float(d.get("open_rate")),
            click_rate=_float(d.get("click_rate")),
            unsubscribe_rate=_float(d.get("unsubscribe_rate")),
            bounce_rate=_float(d.get("bounce_rate")),
        )

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "LsCampaignStats":
        return cls(
            id=_id(d.get("id")),
            name=d.get("name"),
            sent=as_int(d.get("sent")),
            delivered=as_int(d.get("delivered")),
            bounced=as_int(d.get("bounced")),
            opened=as_int(d.get("opened")),
            clicked=as_int(d.get("clicked")),
            unsubscribed=as_int(d.get("unsubscribed")),
            spam_reported=as_int(d.get("spam_reported")),
            open_rate=_float(d.get("open_rate")),
            click_rate=_float(d.get("click_rate")),
        )


@dataclass(frozen=True)
class LsEmail:
    """A sent message. List items carry id, to, from, subject, status and created_at only."""

    id: str
    to: tuple[str, ...]
    from_email: str | None
    subject: str | None
    status: str
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    bounced: bool | None = None
    spam_reported: bool | None = None
    unsubscribed: bool | None = None
    #: current dialect only: the RFC message id and the html
    message_id: str | None = None
    html: str | None = None

    @classmethod
    def from_current(cls, d: CurEmail | Mapping[str, Any]) -> "LsEmail":
        """A current-dialect email (``to_email`` comma-separated; the detail has no ``status``)."""
        to = [a.strip() for a in str(d.get("to_email") or "").split(",") if a.strip()]
        return cls(
            id=_id(d.get("id")),
            to=tuple(to),
            from_email=d.get("from_email"),
            subject=d.get("subject"),
            status=str(d.get("status") or ""),
            created_at=_dt(d.get("created_at")),
            message_id=d.get("message_id"),
            html=d.get("html_content"),
        )

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "LsEmail":
        def flag(name: str) -> bool | None:
            v = d.get(name)
            return v if isinstance(v, bool) else None

        return cls(
            id=_id(d.get("id")),
            to=tuple(_str_list(d.get("to"))),
            from_email=d.get("from"),
            subject=d.get("subject"),
            status=str(d.get("status") or ""),
            created_at=_dt(d.get("created_at")),
            delivered_at=_dt(d.get("delivered_at")),
            opened_at=_dt(d.get("opened_at")),
            clicked_at=_dt(d.get("clicked_at")),
            bounced=flag("bounced"),
            spam_reported=flag("spam_reported"),
            unsubscribed=flag("unsubscribed"),
        )


@dataclass(frozen=True)
class LsSendResult:
    message_id: str


@dataclass(frozen=True)
class LsTag:
    """A current-dialect tag (the seed's tags are bare names on contacts)."""

    id: str
    name: str
    color: str | None = None
    contact_count: int | None = None
    created_at: datetime | None = None

    @classmethod
    def from_current(cls, d: CurTag | Mapping[str, Any]) -> "LsTag":
        count = d.get("contact_count")
        return cls(
            id=_id(d.get("id")),
            name=str(d.get("name") or ""),
            color=d.get("color"),
            contact_count=None if count is None else as_int(count),
            created_at=_dt(d.get("created_at")),
        )


@dataclass(frozen=True)
class LsUsageFeature:
    """One ``plan_usage`` row: a feature (``team.emails_per_month``...), its limit (None = none) and use."""

    feature: str
    quota_limit: int | None
    usage_count: int


@dataclass(frozen=True)
class LsUsage:
    """``GET /settings/usage``: the plan and its usage rows."""

    plan_name: str | None
    plan_type: str | None
    plan_status: str | None
    features: tuple[LsUsageFeature, ...]

    def feature(self, name: str) -> LsUsageFeature | None:
        """The usage row of ``name``, if the plan reports it."""
        return next((f for f in self.features if f.feature == name), None)


@dataclass(frozen=True)
class LsImportResult:
    """What a CSV import did: rows imported, skipped as duplicates, failed."""

    imported: int
    skipped: int
    failed: int


@dataclass(frozen=True)
class LsExportRow:
    """One row of ``GET /contacts/export`` (tags by name, ``created_at`` a date)."""

    email: str
    name: str
    first_name: str
    last_name: str
    phone: str
    company: str
    tags: tuple[str, ...]
    created_at: str


@dataclass(frozen=True)
class LsWebhook:
    """A webhook; ``secret`` is only returned by the create call."""

    id: str
    url: str
    events: tuple[str, ...]
    active: bool
    secret: str | None = None
    created_at: datetime | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> "LsWebhook":
        return cls(
            id=_id(d.get("id")),
            url=str(d.get("url") or ""),
            events=tuple(_str_list(d.get("events"))),
            active=bool(d.get("active", True)),
            secret=d.get("secret"),
            created_at=_dt(d.get("created_at")),
        )


# -- answers: the documented success shapes of the objects (as documented), the fields the client reads -------


@answer
class _Contact(TypedDict):
    id: Id
    email: str
    name: NotRequired[str | None]
    attributes: NotRequired[dict[str, Any] | list[Any] | None]  # PHP writes an empty object as []
    tags: NotRequired[list[Id] | str | None]
    subscribed: NotRequired[bool | None]


@answer
class _Template(TypedDict):
    id: Id
    name: str
    subject: NotRequired[str | None]
    html: NotRequired[str | None]
    text: NotRequired[str | None]
    variables: NotRequired[list[str] | None]
    description: NotRequired[str | None]


@answer
class _Campaign(TypedDict):
    id: Id
    status: str
    name: NotRequired[str | None]
    subject: NotRequired[str | None]
    recipient_list: NotRequired[str | None]


@answer
class _CampaignSend(TypedDict):
    status: str
    id: NotRequired[Id | None]


@answer
class _Stats(TypedDict):
    sent: Int
    delivered: Int
    bounced: Int
    opened: Int
    clicked: Int
    unsubscribed: NotRequired[Int | None]
    spam_reported: NotRequired[Int | None]
    open_rate: NotRequired[float | None]
    click_rate: NotRequired[float | None]
    id: NotRequired[Id | None]
    name: NotRequired[str | None]


@answer
class _Email(TypedDict):
    id: Id
    status: str
    to: NotRequired[str | list[str] | None]
    subject: NotRequired[str | None]
    bounced: NotRequired[bool | None]
    spam_reported: NotRequired[bool | None]
    unsubscribed: NotRequired[bool | None]


@answer
class _Webhook(TypedDict):
    id: Id
    url: str
    events: NotRequired[list[str] | None]
    active: NotRequired[bool | None]
    secret: NotRequired[str | None]


CONTACT: Shape[_Contact] = Shape(_Contact)
TEMPLATE: Shape[_Template] = Shape(_Template)
CAMPAIGN: Shape[_Campaign] = Shape(_Campaign)
CAMPAIGN_SEND: Shape[_CampaignSend] = Shape(_CampaignSend)
STATS: Shape[_Stats] = Shape(_Stats)
EMAIL: Shape[_Email] = Shape(_Email)
WEBHOOK: Shape[_Webhook] = Shape(_Webhook)

# -- the seed's envelopes ------------------------------------------------------------------------------------------


@answer
class _Single(TypedDict):
    """``{"success": true, "data": {..}}``"""

    success: NotRequired[Literal[True]]
    data: dict[str, Any]


@answer
class _Pagination(TypedDict, total=False):
    page: Int | None
    limit: Int | None
    total: Int | None
    pages: Int | None


@answer
class _Listing(TypedDict):
    """``{"success": true, "data": [..], "pagination": {page, limit, total, pages}}``"""

    success: NotRequired[Literal[True]]
    data: list[Any]
    pagination: NotRequired[_Pagination | None]


@answer
class _Done(TypedDict):
    """``{"success": true, "message": "Template deleted"}``"""

    success: Literal[True]
    message: NotRequired[str | None]


_SINGLE: Shape[_Single] = Shape(_Single)
_LISTING: Shape[_Listing] = Shape(_Listing)
_DONE: Shape[_Done] = Shape(_Done)
_TEXT: Shape[str] = Shape(Annotated[Id, Field(min_length=1)])


# -- the dialect: paths, envelopes, errors --------------------------------------------------------------------


class LiteStartupDialect(Protocol):
    """Everything that differs between LiteStartup doc sets: paths, envelopes and error mapping.

    The envelope readers take a decoded 2xx body and an object shape, return what the body holds, and raise
    :class:`espcore.http.AnswerMismatch` when the body is not the documented success (the client reports it as
    :class:`UnexpectedResponseError`).
    """

    name: str

    def path(self, op: str, **ids: str) -> str: ...
    def single(self, payload: Any, item: Shape[T]) -> T: ...
    def listing(
        self, payload: Any, item: Shape[T], *, page: int, limit: int, key: str = ""
    ) -> tuple[list[T], PageInfo]: ...
    def scalar(self, payload: Any, key: str) -> str: ...
    def done(self, payload: Any) -> None: ...
    def is_send_endpoint(self, method: str, path: str) -> bool: ...
    def parse_error(self, response: httpx.Response) -> EspError: ...
    def error_envelope(self, payload: Any) -> tuple[str | int | None, str] | None: ...


_QUOTA_TEXT = QUOTA_TEXT


class SeedDialect:
    """The seed's API reference v2 (the doc set the project follows)."""

    name = "seed"
    PATHS: Mapping[str, str] = {
        "verify": "/verify",
        "emails": "/emails",
        "email": "/emails/{id}",
        "templates": "/templates",
        "template": "/templates/{id}",
        "contacts": "/contacts",
        "contact": "/contacts/{id}",
        "campaigns": "/campaigns",
        "campaign": "/campaigns/{id}",
        "campaign_send": "/campaigns/{id}/send",
        "campaign_stats": "/campaigns/{id}/stats",
        "webhooks": "/webhooks",
        "webhook": "/webhooks/{id}",
    }

    def path(self, op: str, **ids: str) -> str:
        return self.PATHS[op].format(**{k: quote(str(v), safe="") for k, v in ids.items()})

    def single(self, payload: Any, item: Shape[T]) -> T:
        """``{"success":true,"data":{..}}`` → the object, checked against ``item``."""
        self._not_an_error(payload)
        return item(_SINGLE(payload)["data"], at="data")

    def listing(
        self, payload: Any, item: Shape[T], *, page: int, limit: int, key: str = ""
    ) -> tuple[list[T], PageInfo]:
        """``{"success":true,"data":[..],"pagination":{..}}`` → the items (each checked) and the paging."""
        self._not_an_error(payload)
        env = _LISTING(payload)
        items = [item(x, at=f"data.{i}") for i, x in enumerate(env["data"])]
        pag = env.get("pagination") or {}
        info = PageInfo(
            page=pag.get("page") or page,
            limit=pag.get("limit") or limit,
            total=pag.get("total"),
            pages=pag.get("pages"),
        )
        return items, info

    def scalar(self, payload: Any, key: str) -> str:
        """A bare ``{"uuid"}``/``{"messageId"}`` value, tolerating ``data``-wrapped answers."""
        self._not_an_error(payload)
        if isinstance(payload, Mapping):
            if key in payload:
                return _TEXT(payload[key], at=key)
            data = payload.get("data")
            if isinstance(data, Mapping):
                for k in (key, "id"):
                    if k in data:
                        return _TEXT(data[k], at=f"data.{k}")
        raise AnswerMismatch(f"{key}: Field required")

    def done(self, payload: Any) -> None:
        """``{"success":true,"message":".."}`` (a delete)."""
        self._not_an_error(payload)
        _DONE(payload)

    def _not_an_error(self, payload: Any) -> None:
        if self.error_envelope(payload) is not None:
            raise AnswerMismatch("the body is an error answer")

    def error_envelope(self, payload: Any) -> tuple[str | int | None, str] | None:
        """``(code, message)`` of an error body: the seed's ``{"error"}``, the sandbox's ``{"success":false,
        "error","code"}``, the newer doc set's ``{"code":4xx/5xx,"message"}``; None for anything else."""
        if not isinstance(payload, Mapping):
            return None
        code = payload.get("code")
        newer_error = isinstance(code, int) and not isinstance(code, bool) and code >= 300
        if not (payload.get("success") is False or "error" in payload or newer_error):
            return None
        data = payload.get("data")
        for candidate in (
            payload.get("error"),
            payload.get("message"),
            data.get("error") if isinstance(data, Mapping) else None,
        ):
            if isinstance(candidate, str) and candidate.strip():
                message = candidate.strip()
                break
        else:
            message = "the answer says the call failed"
        return (code if isinstance(code, str | int) and not isinstance(code, bool) else None), message

    def is_send_endpoint(self, method: str, path: str) -> bool:
        p = path.rstrip("/")
        return method.upper() == "POST" and (p.endswith("/emails") or p.endswith("/send"))

    def parse_error(self, response: httpx.Response) -> EspError:
        """Classify by HTTP status; message from error/message/data.error; ``code`` used only when a string."""
        payload = json_or_text(response)
        status = response.status_code
        message: str | None = None
        code: str | None = None
        if isinstance(payload, Mapping):
            data = payload.get("data")
            for candidate in (
                payload.get("error"),
                payload.get("message"),
                data.get("error") if isinstance(data, Mapping) else None,
            ):
                if isinstance(candidate, str) and candidate.strip():
                    message = candidate.strip()
                    break
            if isinstance(payload.get("code"), str) and payload["code"]:
                code = payload["code"]
        if message is None:
            text = payload if isinstance(payload, str) else ""
            message = text.strip()[:200] if text.strip() and not text.lstrip().startswith("<") else ""
            message = message or response.reason_phrase or f"HTTP {status}"
        kw: dict[str, Any] = {"provider": PROVIDER, "status": status, "code": code, "body": response.text[:2000]}
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            method, path = response.request.method, response.request.url.path
        except RuntimeError:
            method, path = "", ""

        if code == "INSUFFICIENT_QUOTA":
            return QuotaError(message, **kw)
        if code == "RATE_LIMIT_EXCEEDED":
            return RateLimitError(message, retry_after=retry_after, **kw)
        if code == "INVALID_API_KEY":
            return AuthError(message, **kw)
        if code == "INVALID_EMAIL":
            return ValidationError(message, fields={"email": message}, **kw)
        if code == "DOMAIN_NOT_VERIFIED":
            return PermissionDeniedError(message, **kw)
        if code in ("CONTACT_NOT_FOUND", "CAMPAIGN_NOT_FOUND"):
            return NotFoundError(message, **kw)
        if code == "INVALID_TEMPLATE":
            return NotFoundError(message, **kw) if status == 404 else ValidationError(message, **kw)
        if status == 429:
            if _QUOTA_TEXT.search(message):
                return QuotaError(message, **kw)
            if retry_after is None and self.is_send_endpoint(method, path):
                return QuotaError(message, **kw)
            return RateLimitError(message, retry_after=retry_after, **kw)
        if status == 401:
            return AuthError(message, **kw)
        if status == 403:
            return PermissionDeniedError(message, **kw)
        if status == 404:
            return NotFoundError(message, **kw)
        if status == 409 or (status == 400 and "exist" in message.lower()):
            return ConflictError(message, **kw)
        if status in (400, 422):
            return ValidationError(message, **kw)
        if status >= 500:
            if _QUOTA_TEXT.search(message):  # the newer doc set reports usage caps with odd statuses
                return QuotaError(message, **kw)
            return ServerError(message, **kw)
        return EspError(message, **kw)


SEED_DIALECT = SeedDialect()


def parse_error(response: httpx.Response) -> EspError:
    """The seed dialect's error parser (module-level for callers that want it without a client)."""
    return SEED_DIALECT.parse_error(response)


def verify_webhook_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """True if ``signature`` is the hex HMAC-SHA256 of the raw ``body`` under ``secret`` (``sha256=`` allowed)."""
    if not secret or not signature:
        return False
    sig = signature.strip()
    if sig[:7].lower() == "sha256=":
        sig = sig[7:]
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), sig.strip().lower().encode("utf-8", "replace"))


# -- the client ---------------------------------------------------------------------------------------------


def _clean(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _tag_id(value: str) -> Any:
    """An id of the current dialect as sent in a body: the documented integer when it is one."""
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def _only_seed(**fields: Any) -> None:
    given = sorted(k for k, v in fields.items() if v is not None)
    if given:
        raise ValueError(f"{', '.join(given)}: only in LiteStartup's seed API dialect")


def _only_current(**fields: Any) -> None:
    given = sorted(k for k, v in fields.items() if v is not None)
    if given:
        raise ValueError(f"{', '.join(given)}: only in LiteStartup's current API dialect")


#: the columns of a CSV import, as the current dialect documents them
CSV_COLUMNS = ("email", "name", "first_name", "last_name", "phone", "company")
#: the usage row of the monthly email quota in ``/settings/usage``
EMAILS_PER_MONTH = "team.emails_per_month"


class LiteStartupClient(ProviderClient):
    """Typed client of the LiteStartup REST API v2 in either dialect, on the shared HTTP policy.

    ``dialect`` is ``"seed"`` (default), ``"current"``, ``"auto"`` (one ``GET /verify`` on first use decides, see
    :func:`detect_dialect`) or a :class:`LiteStartupDialect` object. Operations one dialect lacks raise
    :class:`ConfigurationError` naming the dialect that has them.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = LITESTARTUP_BASE_URL,
        *,
        plan: str = "free",
        policy: HttpPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        dialect: LiteStartupDialect | DialectSetting = "seed",
        requests_per_minute: float | None = None,
    ) -> None:
        """``requests_per_minute`` overrides the plan's rate; a ``policy`` with ``requests_per_second`` set
        (0 disables the limiter) wins over the plan too."""
        if not api_key or not api_key.strip():
            raise ConfigurationError("a LiteStartup API key is required", provider=PROVIDER)
        self.plan = plan
        self._detection: DialectDetection | None = None
        if isinstance(dialect, str):
            if dialect not in DIALECT_SETTINGS:
                raise ConfigurationError(
                    f"unknown LiteStartup dialect {dialect!r}; known: {list(DIALECT_SETTINGS)}", provider=PROVIDER
                )
            self.dialect_setting: str = dialect
            self._dialect: LiteStartupDialect | None = {"seed": SEED_DIALECT, "current": CURRENT_DIALECT}.get(dialect)
        else:
            self.dialect_setting = dialect.name
            self._dialect = dialect
        base = policy or HttpPolicy()
        if requests_per_minute is not None:
            rps: float | None = requests_per_minute / 60.0
        elif base.requests_per_second is not None:
            rps = base.requests_per_second
        else:
            if plan not in PLAN_REQUESTS_PER_MINUTE:
                raise ConfigurationError(
                    f"unknown LiteStartup plan {plan!r}; known: {sorted(PLAN_REQUESTS_PER_MINUTE)}", provider=PROVIDER
                )
            rps = PLAN_REQUESTS_PER_MINUTE[plan] / 60.0
        self.policy = replace(base, requests_per_second=rps)
        key = api_key.strip()
        self.http = ProviderHttp(
            PROVIDER,
            base_url,
            policy=self.policy,
            error_parser=lambda response: self._errors().parse_error(response),
            error_envelope=lambda payload: self._errors().error_envelope(payload),
            auth_headers=lambda: {"Authorization": f"Bearer {key}"},
            secrets=[key],
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        name = self._dialect.name if self._dialect is not None else "auto (not yet detected)"
        return f"LiteStartupClient(base_url={self.http.base_url!r}, plan={self.plan!r}, dialect={name!r})"

    # -- the dialect -------------------------------------------------------------------------------------

    def _errors(self) -> LiteStartupDialect:
        # before detection the seed's readers serve: they recognise both doc sets' error bodies
        return self._dialect or SEED_DIALECT

    @property
    def dialect(self) -> LiteStartupDialect:
        """The dialect in use; with ``auto``, the first access asks ``GET /verify`` (see :meth:`detect`)."""
        if self._dialect is None:
            self.detect()
        assert self._dialect is not None
        return self._dialect

    @property
    def current(self) -> bool:
        """True when the client speaks the current dialect (LiteStartup's newer official API)."""
        return self.dialect.name == "current"

    def detect(self) -> DialectDetection:
        """``GET /verify`` and decide the server's dialect from the answer's shape; ``auto`` adopts it.

        A malformed answer raises :class:`UnexpectedResponseError` (never a guess); a bad key :class:`AuthError`.
        """
        detection = self.http.call("GET", "/verify", detect_dialect)
        self._detection = detection
        if self._dialect is None:
            self._dialect = SEED_DIALECT if detection.dialect == "seed" else CURRENT_DIALECT
        return detection

    def _need(self, dialect: DialectName, what: str) -> None:
        if self.dialect.name != dialect:
            raise ConfigurationError(
                f"{what} exists only in LiteStartup's {dialect} API dialect; this client speaks {self.dialect.name!r}",
                provider=PROVIDER,
            )

    # -- plumbing ----------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        op: str,
        expect: Callable[[Any], T],
        *,
        ids: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
    ) -> T:
        """One call, its answer checked by ``expect`` (a dialect envelope reader)."""
        path = self.dialect.path(op, **(ids or {}))
        return self.http.call(
            method, path, expect, params=_clean(params or {}) or None, json=json, idempotent=idempotent
        )

    def _one(self, item: Shape[R]) -> Callable[[Any], R]:
        return lambda payload: self.dialect.single(payload, item)

    def _done(self, payload: Any) -> None:
        self.dialect.done(payload)

    def _page(
        self,
        op: str,
        item: Shape[R],
        parse: Callable[[R], T],
        page: int,
        limit: int,
        *,
        key: str = "",
        **params: Any,
    ) -> Page[T]:
        raw, info = self._call(
            "GET",
            op,
            lambda payload: self.dialect.listing(payload, item, page=page, limit=limit, key=key),
            params={**params, "page": page, "limit": limit},
        )
        return Page([parse(x) for x in raw], info)

    def _all(
        self,
        op: str,
        item: Shape[R],
        parse: Callable[[R], T],
        *,
        page_size: int = PAGE_MAX,
        key: str = "",
        **params: Any,
    ) -> Iterator[T]:
        page = 1
        while True:
            result = self._page(op, item, parse, page, page_size, key=key, **params)
            yield from result.items
            info = result.info
            limit = info.limit or page_size
            if not result.items or len(result.items) < limit:
                return
            if info.pages is not None and page >= info.pages:
                return
            if info.total is not None and page * limit >= info.total:
                return
            page += 1

    # -- account -----------------------------------------------------------------------------------------

    def verify(self) -> LsVerify:
        """Check the API key (``GET /verify``); returns the account uuid."""
        if self._dialect is None:
            return LsVerify(uuid=self.detect().uuid)
        return LsVerify(uuid=self._call("GET", "verify", lambda payload: self.dialect.scalar(payload, "uuid")))

    def usage(self) -> LsUsage:
        """Current dialect: ``GET /settings/usage``, the plan and its usage rows (owner/admin keys, else 403)."""
        self._need("current", "GET /settings/usage")
        data = self._call("GET", "usage", self._one(CUR_USAGE))
        plan = data.get("plan") or {}
        return LsUsage(
            plan_name=plan.get("name"),
            plan_type=plan.get("type"),
            plan_status=plan.get("status"),
            features=tuple(
                LsUsageFeature(f["feature"], f.get("quota_limit"), f["usage_count"]) for f in data["plan_usage"]
            ),
        )

    def balance(self) -> Balance:
        """The monthly email quota from ``/settings/usage`` (current dialect); the seed exposes none: say so.

        A key that may not read usage (403) gets ``not_exposed_reason="forbidden"``; no number is ever invented.
        """
        if not self.current:
            return Balance(
                not_exposed_reason=NOT_EXPOSED,
                extra={"detail": "LiteStartup API v2 (seed dialect) exposes no quota, usage or balance endpoint"},
            )
        try:
            usage = self.usage()
        except PermissionDeniedError as exc:
            return Balance(not_exposed_reason=FORBIDDEN, extra={"detail": exc.message})
        monthly = usage.feature(EMAILS_PER_MONTH)
        extra: dict[str, Any] = {
            "plan": usage.plan_name,
            "plan_type": usage.plan_type,
            "period": "month",
            "features": {f.feature: {"limit": f.quota_limit, "used": f.usage_count} for f in usage.features},
        }
        if monthly is None:
            return Balance(not_exposed_reason=NOT_EXPOSED, extra={**extra, "detail": f"no {EMAILS_PER_MONTH} row"})
        unlimited = monthly.quota_limit is None or monthly.quota_limit < 0
        return Balance(
            quota_used=monthly.usage_count,
            quota_allowed=None if unlimited else monthly.quota_limit,
            emails_left=None if unlimited else max(0, (monthly.quota_limit or 0) - monthly.usage_count),
            unlimited=unlimited,
            extra=extra,
        )

    # -- contacts ----------------------------------------------------------------------------------------

    def _contact_filters(self, tag: str | None, subscribed: bool | None, search: str | None) -> dict[str, Any]:
        if self.current:
            return {
                "tag": tag,
                "status": None if subscribed is None else ("subscribed" if subscribed else "unsubscribed"),
                "search": search,
            }
        return {
            "tag": tag,
            "subscribed": None if subscribed is None else ("true" if subscribed else "false"),
            "search": search,
        }

    def list_contacts_page(
        self,
        page: int = 1,
        limit: int = 20,
        *,
        tag: str | None = None,
        subscribed: bool | None = None,
        search: str | None = None,
    ) -> Page[LsContact]:
        """One page of contacts, optionally filtered by tag (current dialect: tag id), subscription and text.

        Current dialect: list items carry id, email, name, company, status and created_at only."""
        filters = self._contact_filters(tag, subscribed, search)
        if self.current:
            return self._page("contacts", CUR_CONTACT, LsContact.from_current, page, limit, key="contacts", **filters)
        return self._page("contacts", CONTACT, LsContact.from_api, page, limit, **filters)

    def list_contacts(
        self,
        *,
        tag: str | None = None,
        subscribed: bool | None = None,
        search: str | None = None,
        page_size: int = PAGE_MAX,
    ) -> Iterator[LsContact]:
        """Every contact matching the filters, paging automatically (current dialect: list items, see above)."""
        filters = self._contact_filters(tag, subscribed, search)
        if self.current:
            return self._all(
                "contacts", CUR_CONTACT, LsContact.from_current, page_size=page_size, key="contacts", **filters
            )
        return self._all("contacts", CONTACT, LsContact.from_api, page_size=page_size, **filters)

    def search_contacts(self, q: str, *, limit: int = 20) -> list[LsContact]:
        """Current dialect: ``GET /contacts/search?q=`` (email, name, company); items carry id/email/name/company."""
        self._need("current", "GET /contacts/search")
        data = self._call("GET", "contact_search", self._one(CUR_SEARCH), params={"q": q, "limit": limit})
        return [LsContact.from_current(CUR_CONTACT(c, at=f"data.contacts.{i}")) for i, c in enumerate(data["contacts"])]

    def find_contact_by_email(self, email: str) -> LsContact | None:
        """The contact whose email equals ``email`` (case-insensitive), via search; None if absent.

        Current dialect: search, then the contact's detail (search items carry no status or tags)."""
        wanted = email.strip().lower()
        if self.current:
            for hit in self.search_contacts(email.strip(), limit=PAGE_MAX):
                if hit.email.strip().lower() == wanted:
                    return self.get_contact(hit.id)
            return None
        for contact in self.list_contacts(search=email.strip()):
            if contact.email.strip().lower() == wanted:
                return contact
        return None

    def get_contact(self, contact_id: str) -> LsContact:
        """One contact with attributes (current: custom fields), tags and subscription."""
        if self.current:
            data = self._call("GET", "contact", self._one(CUR_CONTACT), params={"id": contact_id})
            return LsContact.from_current(data)
        return LsContact.from_api(self._call("GET", "contact", self._one(CONTACT), ids={"id": contact_id}))

    def _contact_body(
        self,
        email: str | None,
        name: str | None,
        attributes: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
        subscribed: bool | None,
        native: Mapping[str, str | None],
    ) -> dict[str, Any]:
        if self.current:
            return _clean(
                {
                    "email": email,
                    "name": name,
                    **native,
                    "custom_fields": dict(attributes) if attributes is not None else None,
                    "tags": [_tag_id(t) for t in tags] if tags is not None else None,
                    "status": None if subscribed is None else ("subscribed" if subscribed else "unsubscribed"),
                }
            )
        extra = {k: v for k, v in native.items() if v is not None}  # the seed keeps them as attributes
        attrs = {**extra, **attributes} if attributes is not None else (extra or None)
        return _clean(
            {
                "email": email,
                "name": name,
                "attributes": dict(attrs) if attrs is not None else None,
                "tags": list(tags) if tags is not None else None,
                "subscribed": subscribed,
            }
        )

    def create_contact(
        self,
        email: str,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        subscribed: bool | None = None,
        retry_safe: bool = False,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        company: str | None = None,
    ) -> LsContact:
        """Add a contact (a duplicate → ConflictError). Current dialect: ``tags`` are tag ids, ``attributes`` go
        to ``custom_fields``; seed: the name fields go to ``attributes``. ``retry_safe`` lets the policy resend."""
        native = {"first_name": first_name, "last_name": last_name, "phone": phone, "company": company}
        body = self._contact_body(email, name, attributes, tags, subscribed, native)
        if self.current:
            data = self._call("POST", "contact_add", self._one(CUR_CONTACT), json=body, idempotent=retry_safe)
            return LsContact.from_current(data)
        return LsContact.from_api(self._call("POST", "contacts", self._one(CONTACT), json=body, idempotent=retry_safe))

    def update_contact(
        self,
        contact_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        subscribed: bool | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        company: str | None = None,
    ) -> LsContact:
        """Update the given fields (attributes and tags replaced whole); omitted fields are kept.

        Current dialect: ``PUT /contacts/update`` with the id in the body answers no data, so the contact is
        read back."""
        native = {"first_name": first_name, "last_name": last_name, "phone": phone, "company": company}
        body = self._contact_body(email, name, attributes, tags, subscribed, native)
        if self.current:
            self._call("PUT", "contact_update", self._done, json={"id": _tag_id(contact_id), **body})
            return self.get_contact(contact_id)
        return LsContact.from_api(self._call("PUT", "contact", self._one(CONTACT), ids={"id": contact_id}, json=body))

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact (current dialect: ``DELETE /contacts/delete`` with the id in a JSON body)."""
        if self.current:
            self.http.call("DELETE", self.dialect.path("contact_delete"), self._done, json={"id": _tag_id(contact_id)})
            return
        self._call("DELETE", "contact", self._done, ids={"id": contact_id})

    def set_contact_attributes(
        self, contact_id: str, attributes: Mapping[str, Any], *, merge: bool = True
    ) -> LsContact:
        """Set attributes, merged into the current ones unless ``merge=False`` (read, edit, PUT)."""
        current = dict(self.get_contact(contact_id).attributes) if merge else {}
        current.update(attributes)
        return self.update_contact(contact_id, attributes=current)

    def add_contact_tags(self, contact_id: str, tags: Sequence[str]) -> LsContact:
        """Add tags, keeping the others (read, edit, PUT)."""
        current = list(self.get_contact(contact_id).tags)
        return self.update_contact(contact_id, tags=current + [t for t in tags if t not in current])

    def remove_contact_tags(self, contact_id: str, tags: Sequence[str]) -> LsContact:
        """Remove tags, keeping the others (read, edit, PUT)."""
        drop = set(tags)
        return self.update_contact(contact_id, tags=[t for t in self.get_contact(contact_id).tags if t not in drop])

    def set_contact_subscribed(self, contact_id: str, subscribed: bool) -> LsContact:
        """Set ``subscribed``. Re-subscribing needs fresh consent: the sync layer never calls it with True."""
        return self.update_contact(contact_id, subscribed=subscribed)

    def import_contacts(
        self,
        rows: Sequence[Mapping[str, str | None]],
        *,
        tags: Sequence[str] | None = None,
        skip_duplicates: bool = True,
    ) -> LsImportResult:
        """Current dialect: ``POST /contacts/import``, ``rows`` (email, name, first_name, last_name, phone, company)
        sent as a CSV upload; synchronous. Not retried once sent (an import may have happened)."""
        self._need("current", "POST /contacts/import")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([row.get(c) or "" for c in CSV_COLUMNS])
        form = {"skip_duplicates": "true" if skip_duplicates else "false"}
        if tags:
            form["tags"] = ",".join(str(t).strip() for t in tags)
        response = self.http.request(
            "POST",
            self.dialect.path("contact_import"),
            data=form,
            files={"file": ("contacts.csv", out.getvalue().encode("utf-8"), "text/csv")},
            idempotent=False,
        )
        data = self.http.check(response, self._one(CUR_IMPORT), method="POST", path=self.dialect.path("contact_import"))
        return LsImportResult(imported=data["imported"], skipped=data["skipped"], failed=data["failed"])

    def export_contacts(self, *, tags: Sequence[str] | None = None) -> list[LsExportRow]:
        """Current dialect: ``GET /contacts/export`` (CSV), optionally only contacts with any of the tag ids."""
        self._need("current", "GET /contacts/export")
        path = self.dialect.path("contact_export")
        params = {"format": "csv", **({"tags": ",".join(str(t).strip() for t in tags)} if tags else {})}
        response = self.http.request("GET", path, params=params)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        reader = csv.DictReader(io.StringIO(response.text))
        if kind != "text/csv" or reader.fieldnames is None or "email" not in reader.fieldnames:
            raise self.http.unexpected(
                method="GET",
                path=path,
                problem=f"not the documented CSV ({kind or 'no content type'})",
                status=response.status_code,
                text=response.text,
            )
        return [
            LsExportRow(
                email=r.get("email") or "",
                name=r.get("name") or "",
                first_name=r.get("first_name") or "",
                last_name=r.get("last_name") or "",
                phone=r.get("phone") or "",
                company=r.get("company") or "",
                tags=tuple(t.strip() for t in (r.get("tags") or "").split(",") if t.strip()),
                created_at=r.get("created_at") or "",
            )
            for r in reader
        ]

    # -- tags (current dialect) --------------------------------------------------------------------------

    def list_tags(self, *, search: str | None = None, page_size: int = PAGE_MAX) -> Iterator[LsTag]:
        """Current dialect: every tag (id, name, color, contact count), optionally by name substring."""
        self._need("current", "GET /tags/list")
        return self._all("tags", CUR_TAG, LsTag.from_current, page_size=page_size, key="tags", search=search)

    def find_tag(self, name: str) -> LsTag | None:
        """Current dialect: the tag named ``name`` (case-insensitive), or None."""
        wanted = name.strip().lower()
        return next((t for t in self.list_tags(search=name.strip()) if t.name.strip().lower() == wanted), None)

    def create_tag(self, name: str, *, color: str | None = None) -> LsTag:
        """Current dialect: create a tag (a taken name → ConflictError)."""
        self._need("current", "POST /tags/create")
        body = _clean({"name": name, "color": color})
        return LsTag.from_current(self._call("POST", "tag_create", self._one(CUR_TAG), json=body, idempotent=True))

    def update_tag(self, tag_id: str, *, name: str | None = None, color: str | None = None) -> None:
        """Current dialect: rename or recolour a tag."""
        self._need("current", "PUT /tags/update")
        self._call("PUT", "tag_update", self._done, json=_clean({"id": _tag_id(tag_id), "name": name, "color": color}))

    def delete_tag(self, tag_id: str) -> None:
        """Current dialect: delete a tag (it leaves every contact that carried it)."""
        self._need("current", "DELETE /tags/delete")
        self.http.call("DELETE", self.dialect.path("tag_delete"), self._done, json={"id": _tag_id(tag_id)})

    # -- templates ---------------------------------------------------------------------------------------

    def create_template(
        self,
        name: str,
        *,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        variables: Sequence[str] | None = None,
        description: str | None = None,
        category: str | None = None,
    ) -> LsTemplate:
        """Create a template (answer: id, name and, current dialect, ``string_id``). Current dialect: ``html`` is
        its ``content`` (required); it has no subject, text or variables fields."""
        if self.current:
            _only_seed(subject=subject, text=text, variables=variables)
            body = _clean({"name": name, "content": html, "description": description, "category": category})
            data = self._call("POST", "template_create", self._one(CUR_TEMPLATE), json=body)
            return replace(LsTemplate.from_current(data), html=html, description=description, category=category)
        _only_current(category=category)
        body = _clean(
            {
                "name": name,
                "subject": subject,
                "html": html,
                "text": text,
                "variables": list(variables) if variables is not None else None,
                "description": description,
            }
        )
        return LsTemplate.from_api(self._call("POST", "templates", self._one(TEMPLATE), json=body))

    def get_template(self, template_id: str) -> LsTemplate:
        """One template with its content."""
        if self.current:
            return LsTemplate.from_current(
                self._call("GET", "template", self._one(CUR_TEMPLATE), ids={"id": template_id})
            )
        return LsTemplate.from_api(self._call("GET", "template", self._one(TEMPLATE), ids={"id": template_id}))

    def template_content(self, template_id: str) -> LsTemplate:
        """Current dialect: ``GET /templates/content/{id}``, the template with ``string_id`` and description."""
        self._need("current", "GET /templates/content/{id}")
        data = self._call("GET", "template_content", self._one(CUR_TEMPLATE), ids={"id": template_id})
        return LsTemplate.from_current(data)

    def list_templates(self, *, page_size: int = PAGE_MAX) -> Iterator[LsTemplate]:
        """Every template (id, name, created_at), paging automatically."""
        if self.current:
            return self._all("templates", CUR_TEMPLATE, LsTemplate.from_current, page_size=page_size, key="templates")
        return self._all("templates", TEMPLATE, LsTemplate.from_api, page_size=page_size)

    def update_template(
        self,
        template_id: str,
        *,
        name: str | None = None,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        variables: Sequence[str] | None = None,
        description: str | None = None,
        category: str | None = None,
    ) -> LsTemplate:
        """Update the given template fields (current dialect: the answer has no data, so it is read back)."""
        if self.current:
            _only_seed(subject=subject, text=text, variables=variables)
            body = _clean({"name": name, "content": html, "description": description, "category": category})
            self._call("PUT", "template_update", self._done, ids={"id": template_id}, json=body)
            return self.template_content(template_id)
        _only_current(category=category)
        body = _clean(
            {
                "name": name,
                "subject": subject,
                "html": html,
                "text": text,
                "variables": list(variables) if variables is not None else None,
                "description": description,
            }
        )
        data = self._call("PUT", "template", self._one(TEMPLATE), ids={"id": template_id}, json=body)
        return LsTemplate.from_api(data)

    def copy_template(self, template_id: str) -> LsTemplate:
        """Current dialect: copy a template; returns the copy's id, string_id and name."""
        self._need("current", "POST /templates/copy/{id}")
        data = self._call("POST", "template_copy", self._one(CUR_TEMPLATE), ids={"id": template_id})
        return LsTemplate.from_current(data)

    def delete_template(self, template_id: str) -> None:
        """Delete a template."""
        self._call("DELETE", "template_delete" if self.current else "template", self._done, ids={"id": template_id})

    # -- emails ------------------------------------------------------------------------------------------

    def send_email(
        self,
        to: str | Sequence[str],
        from_email: str,
        subject: str,
        *,
        html: str | None = None,
        text: str | None = None,
        reply_to: str | None = None,
        cc: Sequence[str] | None = None,
        bcc: Sequence[str] | None = None,
        template_id: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> LsSendResult:
        """Send one message (never retried once it may have left: no idempotency key). Current dialect: ``html``
        is required unless ``template_id`` (a template's ``string_id``) with ``variables`` is given."""
        if not self.current:
            _only_current(template_id=template_id, variables=variables)
        body = _clean(
            {
                "to": to if isinstance(to, str) else list(to),
                "from": from_email,
                "subject": subject,
                "html": html if html is not None or not template_id else "",
                "text": text,
                "replyTo": reply_to,
                "cc": list(cc) if cc else None,
                "bcc": list(bcc) if bcc else None,
                "template": {"id": template_id, "variables": dict(variables or {})} if template_id else None,
            }
        )
        message_id = self._call(
            "POST", "emails", lambda payload: self.dialect.scalar(payload, "messageId"), json=body, idempotent=False
        )
        return LsSendResult(message_id=message_id)

    def send_notification(
        self,
        subject: str,
        content: str,
        *,
        to: str | None = None,
        from_email: str | None = None,
        from_name: str | None = None,
        to_name: str | None = None,
    ) -> LsSendResult:
        """Current dialect: ``POST /emails/notification`` (``notification`` scope; defaults fill from and to)."""
        self._need("current", "POST /emails/notification")
        body = _clean(
            {
                "subject": subject,
                "content": content,
                "to": to,
                "from": from_email,
                "from_name": from_name,
                "to_name": to_name,
            }
        )
        message_id = self._call(
            "POST",
            "notification",
            lambda payload: self.dialect.scalar(payload, "messageId"),
            json=body,
            idempotent=False,
        )
        return LsSendResult(message_id=message_id)

    def _email_filters(
        self,
        status: str | None,
        from_email: str | None,
        to: str | None,
        tag: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        sort: str | None,
        order: str | None,
    ) -> dict[str, Any]:
        if self.current:
            _only_seed(
                from_email=from_email,
                to=to,
                tag=tag,
                created_after=created_after,
                created_before=created_before,
                sort=sort,
                order=order,
            )
            return {"status": status}
        return {
            "status": status,
            "from": from_email,
            "to": to,
            "tag": tag,
            "created_after": _iso(created_after) if created_after else None,
            "created_before": _iso(created_before) if created_before else None,
            "sort": sort,
            "order": order,
        }

    def list_emails_page(
        self,
        page: int = 1,
        limit: int = 20,
        *,
        status: str | None = None,
        from_email: str | None = None,
        to: str | None = None,
        tag: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        sort: str | None = None,
        order: str | None = None,
    ) -> Page[LsEmail]:
        """One page of sent emails with filters and sort (current dialect: ``status`` sent|draft|failed only)."""
        filters = self._email_filters(status, from_email, to, tag, created_after, created_before, sort, order)
        if self.current:
            return self._page("emails", CUR_EMAIL, LsEmail.from_current, page, limit, key="emails", **filters)
        return self._page("emails", EMAIL, LsEmail.from_api, page, limit, **filters)

    def list_emails(
        self,
        *,
        status: str | None = None,
        from_email: str | None = None,
        to: str | None = None,
        tag: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        sort: str | None = None,
        order: str | None = None,
        page_size: int = PAGE_MAX,
    ) -> Iterator[LsEmail]:
        """Every sent email matching the filters, newest first unless sorted, paging automatically."""
        filters = self._email_filters(status, from_email, to, tag, created_after, created_before, sort, order)
        if self.current:
            return self._all("emails", CUR_EMAIL, LsEmail.from_current, page_size=page_size, key="emails", **filters)
        return self._all("emails", EMAIL, LsEmail.from_api, page_size=page_size, **filters)

    def get_email(self, email_id: str) -> LsEmail:
        """One sent email (by id or message id); seed: timestamps and flags, current: addresses and html."""
        if self.current:
            return LsEmail.from_current(self._call("GET", "email", self._one(CUR_EMAIL), ids={"id": email_id}))
        return LsEmail.from_api(self._call("GET", "email", self._one(EMAIL), ids={"id": email_id}))

    # -- campaigns ---------------------------------------------------------------------------------------

    def _campaign_tags(self, recipient_list: str | None, tag_ids: Sequence[str] | None) -> list[str] | None:
        """Current dialect: the tag ids a campaign targets, from ``tag_ids`` or a seed-style recipient list."""
        if tag_ids is not None:
            return [_tag_id(t) for t in tag_ids]
        if recipient_list is None:
            return None
        if recipient_list == "all_subscribers":
            return []
        if recipient_list.startswith("tag:"):
            tag = self.find_tag(recipient_list[4:])
            if tag is None:
                raise NotFoundError(f"no tag named {recipient_list[4:]!r}", provider=PROVIDER)
            return [tag.id]
        raise ValueError("recipient_list must be all_subscribers or tag:<name>")

    def create_campaign(
        self,
        name: str,
        subject: str,
        html: str,
        from_email: str,
        recipient_list: str | None = None,
        *,
        text: str | None = None,
        scheduled_at: datetime | None = None,
        tag_ids: Sequence[str] | None = None,
        from_name: str | None = None,
        template_id: str | None = None,
    ) -> LsCampaign:
        """Create a campaign: a draft, or scheduled when ``scheduled_at`` is given (not retried once sent).

        Seed: ``recipient_list`` is ``all_subscribers`` or ``tag:<name>``. Current dialect: the audience is
        ``tag_ids`` (or the recipient list, resolved to tag ids), and scheduling passes its AI review."""
        if self.current:
            _only_seed(text=text)
            tags = self._campaign_tags(recipient_list or "all_subscribers", tag_ids)
            body = _clean(
                {
                    "name": name,
                    "subject": subject,
                    "content": html,
                    "from_email": from_email,
                    "from_name": from_name,
                    "template_id": _tag_id(template_id) if template_id else None,
                    "tags": tags,
                    "status": "scheduled" if scheduled_at else "draft",
                    "scheduled_at": _iso(scheduled_at) if scheduled_at else None,
                }
            )
            created = self._call("POST", "campaign_create", self._one(CUR_CAMPAIGN), json=body, idempotent=False)
            merged: dict[str, Any] = {
                "subject": subject,
                "from_email": from_email,
                "from_name": from_name,
                "tag_ids": tags,
                **created,
            }
            camp = LsCampaign.from_current(merged)
            return replace(camp, scheduled_at=camp.scheduled_at or scheduled_at)
        _only_current(tag_ids=tag_ids, from_name=from_name, template_id=template_id)
        if recipient_list is None:
            raise ValueError("a seed-dialect campaign needs a recipient_list")
        body = _clean(
            {
                "name": name,
                "subject": subject,
                "html": html,
                "text": text,
                "from": from_email,
                "recipient_list": recipient_list,
                "scheduled_at": _iso(scheduled_at) if scheduled_at else None,
            }
        )
        created = self._call("POST", "campaigns", self._one(CAMPAIGN), json=body, idempotent=False)
        merged = {"subject": subject, "from": from_email, "recipient_list": recipient_list, **created}
        if scheduled_at and "scheduled_at" not in created:
            merged["scheduled_at"] = _iso(scheduled_at)
        return LsCampaign.from_api(merged)

    def get_campaign(self, campaign_id: str) -> LsCampaign:
        """One campaign with its status."""
        if self.current:
            return LsCampaign.from_current(
                self._call("GET", "campaign", self._one(CUR_CAMPAIGN), ids={"id": campaign_id})
            )
        return LsCampaign.from_api(self._call("GET", "campaign", self._one(CAMPAIGN), ids={"id": campaign_id}))

    def list_campaigns(self, *, status: str | None = None, page_size: int = PAGE_MAX) -> Iterator[LsCampaign]:
        """Every campaign (newest first), optionally by status, paging automatically."""
        if self.current:
            return self._all(
                "campaigns", CUR_CAMPAIGN, LsCampaign.from_current, page_size=page_size, key="campaigns", status=status
            )
        return self._all("campaigns", CAMPAIGN, LsCampaign.from_api, page_size=page_size, status=status)

    def update_campaign(
        self,
        campaign_id: str,
        *,
        name: str | None = None,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        from_email: str | None = None,
        recipient_list: str | None = None,
        scheduled_at: datetime | None = None,
        unschedule: bool = False,
        tag_ids: Sequence[str] | None = None,
        from_name: str | None = None,
    ) -> LsCampaign:
        """Update campaign fields (only in draft/scheduled); ``unschedule`` clears ``scheduled_at``.

        Current dialect: a ``scheduled_at`` also sets status ``scheduled`` (AI review), ``unschedule`` status
        ``draft``; the answer has no data, so the campaign is read back."""
        if self.current:
            _only_seed(text=text)
            body = _clean(
                {
                    "name": name,
                    "subject": subject,
                    "content": html,
                    "from_email": from_email,
                    "from_name": from_name,
                    "tags": self._campaign_tags(recipient_list, tag_ids),
                    "status": "scheduled" if scheduled_at else None,
                    "scheduled_at": _iso(scheduled_at) if scheduled_at else None,
                }
            )
            if unschedule:
                body.update(status="draft", scheduled_at=None)
            self._call("PUT", "campaign_update", self._done, ids={"id": campaign_id}, json=body, idempotent=False)
            return self.get_campaign(campaign_id)
        _only_current(tag_ids=tag_ids, from_name=from_name)
        body = _clean(
            {
                "name": name,
                "subject": subject,
                "html": html,
                "text": text,
                "from": from_email,
                "recipient_list": recipient_list,
                "scheduled_at": _iso(scheduled_at) if scheduled_at else None,
            }
        )
        if unschedule:
            body["scheduled_at"] = None
        return LsCampaign.from_api(
            self._call("PUT", "campaign", self._one(CAMPAIGN), ids={"id": campaign_id}, json=body)
        )

    def copy_campaign(self, campaign_id: str) -> LsCampaign:
        """Current dialect: copy a campaign into a new draft; returns its id, name and status."""
        self._need("current", "POST /marketing/copy/{id}")
        data = self._call("POST", "campaign_copy", self._one(CUR_CAMPAIGN), ids={"id": campaign_id}, idempotent=False)
        return LsCampaign.from_current(data)

    def delete_campaign(self, campaign_id: str) -> None:
        """Delete a draft or scheduled campaign."""
        self._call("DELETE", "campaign_delete" if self.current else "campaign", self._done, ids={"id": campaign_id})

    def send_campaign(self, campaign_id: str) -> LsCampaignSend:
        """Send now; never retried once it may have left. Seed: ``POST /campaigns/{id}/send``. Current dialect
        (no send endpoint): ``PUT /marketing/update/{id}`` with status ``sending``, after its AI review. An answer
        that is not the documented one raises :class:`espcore.errors.UnexpectedOutcomeError`."""
        if self.current:
            self._call(
                "PUT",
                "campaign_update",
                self._done,
                ids={"id": campaign_id},
                json={"status": "sending"},
                idempotent=False,
            )
            return LsCampaignSend(id=campaign_id, status="sending")
        data = self._call("POST", "campaign_send", self._one(CAMPAIGN_SEND), ids={"id": campaign_id}, idempotent=False)
        return LsCampaignSend(id=data.get("id") or campaign_id, status=data["status"])

    def campaign_stats(self, campaign_id: str) -> LsCampaignStats:
        """Cumulative counters and rates of a campaign (current dialect: ``/marketing/{id}/report``)."""
        if self.current:
            report = self._call("GET", "campaign_report", self._one(CUR_REPORT), ids={"id": campaign_id})
            camp = report.get("campaign") or {}
            name = camp.get("name") if isinstance(camp.get("name"), str) else None
            return LsCampaignStats.from_current(campaign_id, report["stats"], name)
        return LsCampaignStats.from_api(self._call("GET", "campaign_stats", self._one(STATS), ids={"id": campaign_id}))

    # -- webhooks (seed dialect) -------------------------------------------------------------------------

    def create_webhook(self, url: str, events: Sequence[str], *, active: bool = True) -> LsWebhook:
        """Subscribe a URL to events; the answer is the only place the signing ``secret`` appears."""
        self._need("seed", "Webhooks")
        body = {"url": url, "events": list(events), "active": active}
        return LsWebhook.from_api(self._call("POST", "webhooks", self._one(WEBHOOK), json=body))

    def list_webhooks(self) -> Iterator[LsWebhook]:
        """Every webhook (without secrets)."""
        self._need("seed", "Webhooks")
        return self._all("webhooks", WEBHOOK, LsWebhook.from_api)

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        active: bool | None = None,
    ) -> LsWebhook:
        """PUT webhook fields."""
        self._need("seed", "Webhooks")
        body = _clean({"url": url, "events": list(events) if events is not None else None, "active": active})
        return LsWebhook.from_api(self._call("PUT", "webhook", self._one(WEBHOOK), ids={"id": webhook_id}, json=body))

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook."""
        self._need("seed", "Webhooks")
        self._call("DELETE", "webhook", self._done, ids={"id": webhook_id})

    @staticmethod
    def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
        """Check ``X-LiteStartup-Signature`` against the raw body (see :func:`verify_webhook_signature`)."""
        return verify_webhook_signature(secret, body, signature)


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
_TRANSIENT = (RateLimitError, ServerError, TransportError, OutcomeUnknownError)
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

    def __init__(self, client: LiteStartupClient) -> None:
        self.client = client

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
        """Search by email, then PUT (keeping tags, adding the book; never touching ``subscribed``) or POST."""
        return [self._upsert_one(book_id, row) for row in rows]

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
            existing = self.client.find_contact_by_email(email)
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
        out: list[RowResult] = []
        for email in emails:
            try:
                contact = self.client.find_contact_by_email(email)
                if contact is None:
                    out.append(RowResult(email=email, ok=True))
                    continue
                if unsubscribe:
                    if contact.subscribed is not False:
                        self.client.update_contact(contact.id, subscribed=False)
                elif book_id in contact.tags:
                    self.client.update_contact(contact.id, tags=[t for t in contact.tags if t != book_id])
                out.append(RowResult(email=email, ok=True, provider_id=contact.id))
            except UnexpectedResponseError:
                raise  # a 2xx that did not say it worked: the rows stay unacknowledged
            except _TRANSIENT as exc:
                out.append(RowResult(email=email, ok=False, error=exc.message, transient=True))
            except _ROW_REJECTIONS as exc:
                out.append(RowResult(email=email, ok=False, error=exc.message))
        return out

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
