"""LiteStartup's answers in the seed dialect (the shapes the client accepts) and the typed records the
client returns in either dialect."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from espcore.http import (
    Shape,
)
from espcore.providers.answers import Id, Int, answer
from espcore.providers.coerce import as_int
from espcore.providers.litestartup.common import PageInfo
from espcore.providers.litestartup.constants import T
from espcore.providers.litestartup.current import (
    CurCampaign,
    CurContact,
    CurEmail,
    CurStats,
    CurTag,
    CurTemplate,
)

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
