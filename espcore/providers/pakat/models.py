"""Pakat's answers: the shapes the client accepts (anything else is a typed error) and the typed
records it returns."""

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from espcore.http import AnswerMismatch, Expect, Shape
from espcore.providers.answers import Int, Obj, Text, answer
from espcore.providers.coerce import as_int
from espcore.providers.pakat.constants import DATE_FMT, T


@answer
class _Success(TypedDict):
    """``{"status":"success"}`` (an action; creates add a top-level ``<kind>_uid``)."""

    status: Literal["success"]


@answer
class _Page(TypedDict):
    records: list[Any]
    count: NotRequired[Int | None]  # a string ("13"); null when empty
    next_page: NotRequired[Int | None]


@answer
class _Collection(TypedDict):
    """``{"status":"success","data":{"count","total_pages","current_page","next_page","prev_page","records"}}``"""

    status: Literal["success"]
    data: _Page


@answer
class _RecordsData(TypedDict):
    records: list[Any]


@answer
class _Records(TypedDict):
    """``{"status":"success","data":{"records":[..]}}`` (list fields, the all-lists search)."""

    status: Literal["success"]
    data: _RecordsData


@answer
class _RecordData(TypedDict):
    record: dict[str, Any]


@answer
class _Single(TypedDict):
    """``{"status":"success","data":{"record":{..}}}``"""

    status: Literal["success"]
    data: _RecordData


@answer
class _Data(TypedDict):
    """``{"status":"success","data":{..}}`` (search by email, stats, a delivery log)."""

    status: Literal["success"]
    data: dict[str, Any]


@answer
class _CampaignStatus(TypedDict):
    status: str


@answer
class _Toggle(TypedDict):
    """``{"status":"success","campaign":{"status":"paused"}}``"""

    status: Literal["success"]
    campaign: _CampaignStatus


@answer
class _QuotaCounts(TypedDict):
    used: Int
    allowed: Int | str | None  # "∞" when unlimited
    percentage: NotRequired[str | float | None]


@answer
class _Quota(TypedDict):
    """``{"status":"ok","quota":{"percentage":"25%","used":2500,"allowed":10000}}``"""

    status: Literal["ok", "success"]
    quota: _QuotaCounts


@answer
class _General(TypedDict):
    list_uid: Text
    name: str


@answer
class _ListRecord(TypedDict):
    general: _General
    defaults: NotRequired[Obj | None]
    notifications: NotRequired[Obj | None]
    company: NotRequired[Obj | None]


@answer
class _FieldRecord(TypedDict):
    tag: Text
    label: NotRequired[str | None]
    required: NotRequired[str | None]


@answer
class _SubscriberRecord(TypedDict):
    """A subscriber: ``EMAIL`` in listings and reads, ``email`` in create and update answers."""

    subscriber_uid: Text
    EMAIL: NotRequired[str]
    email: NotRequired[str]
    status: NotRequired[str | None]
    source: NotRequired[str | None]
    ip_address: NotRequired[str | None]


def _has_email(record: _SubscriberRecord) -> _SubscriberRecord:
    if not (record.get("EMAIL") or record.get("email")):
        raise ValueError("a subscriber without EMAIL")
    return record


@answer
class _SubscriberRef(TypedDict):
    subscriber_uid: Text
    status: str


@answer
class _ListRef(TypedDict):
    list_uid: Text
    name: NotRequired[str | None]


@answer
class _Membership(TypedDict):
    subscriber_uid: Text
    email: str
    status: str
    list: _ListRef


@answer
class _BulkRecord(TypedDict):
    data: Obj
    errors: NotRequired[Obj | list[Any] | str | None]


@answer
class _BulkData(TypedDict):
    records: list[_BulkRecord]


@answer
class _Bulk(TypedDict):
    """``{"status":"success","data":{"records":[{"data":{..},"errors":{..}}, ..]}}``, one record per item."""

    status: Literal["success"]
    data: _BulkData


@answer
class _SegmentRecord(TypedDict):
    segment_uid: Text
    name: str


@answer
class _TemplateRecord(TypedDict):
    name: str
    content: NotRequired[str | None]
    screenshot: NotRequired[str | None]


@answer
class _TemplateRow(TypedDict):
    template_uid: Text
    name: str
    screenshot: NotRequired[str | None]


@answer
class _CampaignRecord(TypedDict):
    campaign_uid: Text
    name: str
    status: str
    type: NotRequired[str | None]
    from_name: NotRequired[str | None]
    from_email: NotRequired[str | None]
    reply_to: NotRequired[str | None]
    subject: NotRequired[str | None]
    list: NotRequired[Obj | None]
    segment: NotRequired[Obj | None]


@answer
class _Stats(TypedDict):
    campaign_status: str
    subscribers_count: Int
    processed_count: Int


@answer
class _Who(TypedDict, total=False):
    subscriber_uid: str | None
    email: str | None


@answer
class _CampaignRef(TypedDict, total=False):
    campaign_uid: str | None


@answer
class _DeliveryLogRecord(TypedDict):
    subscriber: _Who
    status: str
    campaign: NotRequired[_CampaignRef | list[Any] | None]
    message: NotRequired[str | None]
    email_message_id: NotRequired[str | None]
    delivery_confirmed: NotRequired[str | bool | None]


@answer
class _BounceRecord(TypedDict):
    subscriber: _Who
    bounce_type: str
    message: NotRequired[str | None]


@answer
class _UnsubscribeRecord(TypedDict):
    subscriber: _Who
    reason: NotRequired[str | None]


@answer
class _TransactionalRecord(TypedDict):
    email_uid: Text
    status: str
    to_email: NotRequired[str | None]
    subject: NotRequired[str | None]
    to_name: NotRequired[str | None]
    from_name: NotRequired[str | None]
    from_email: NotRequired[str | None]
    reply_to_name: NotRequired[str | None]
    reply_to_email: NotRequired[str | None]
    body: NotRequired[str | None]
    plain_text: NotRequired[str | None]
    priority: NotRequired[Int | str | None]
    retries: NotRequired[Int | str | None]
    max_retries: NotRequired[Int | str | None]
    send_at: NotRequired[str | None]
    fallback_system_servers: NotRequired[str | None]
    date_added: NotRequired[str | None]
    last_updated: NotRequired[str | None]
    attachments: NotRequired[list[Any] | None]  # the single view only: [{type, name, content (base64)}]


@answer
class _FieldType(TypedDict):
    identifier: Text
    name: str
    description: NotRequired[str | None]


@answer
class _SegmentOperator(TypedDict):
    operator_id: Int | Text
    name: str
    slug: NotRequired[str | None]


@answer
class _Country(TypedDict):
    country_id: Int | Text
    name: str
    code: NotRequired[str | None]


@answer
class _Zone(TypedDict):
    zone_id: Int | Text
    name: str
    code: NotRequired[str | None]


@answer
class _DeliveryServer(TypedDict):
    server_id: Int | Text
    name: NotRequired[str | None]
    hostname: NotRequired[str | None]
    type: NotRequired[str | None]
    status: NotRequired[str | None]


@answer
class _SendingDomain(TypedDict):
    name: Text
    domain_id: NotRequired[Int | str | None]
    verified: NotRequired[str | bool | None]


@answer
class _BounceCreated(TypedDict):
    bounce_type: str
    message: NotRequired[str | None]
    processed: NotRequired[str | None]
    subscriber: NotRequired[_Who | None]


@answer
class _TrackedUrl(TypedDict):
    destination: str
    track_url: NotRequired[str | None]


_SUCCESS: Shape[_Success] = Shape(_Success)
_COLLECTION: Shape[_Collection] = Shape(_Collection)
_SINGLE: Shape[_Single] = Shape(_Single)
_DATA: Shape[_Data] = Shape(_Data)
_RECORDS: Shape[_Records] = Shape(_Records)
_TOGGLE: Shape[_Toggle] = Shape(_Toggle)
_QUOTA: Shape[_Quota] = Shape(_Quota)
_BULK: Shape[_Bulk] = Shape(_Bulk)
_UID: Shape[str] = Shape(Text)
LIST: Shape[_ListRecord] = Shape(_ListRecord)
FIELD: Shape[_FieldRecord] = Shape(_FieldRecord)
SUBSCRIBER: Shape[_SubscriberRecord] = Shape(Annotated[_SubscriberRecord, AfterValidator(_has_email)])
SUBSCRIBER_REF: Shape[_SubscriberRef] = Shape(_SubscriberRef)
MEMBERSHIP: Shape[_Membership] = Shape(_Membership)
SEGMENT: Shape[_SegmentRecord] = Shape(_SegmentRecord)
TEMPLATE: Shape[_TemplateRecord] = Shape(_TemplateRecord)
TEMPLATE_ROW: Shape[_TemplateRow] = Shape(_TemplateRow)
CAMPAIGN: Shape[_CampaignRecord] = Shape(_CampaignRecord)
STATS: Shape[_Stats] = Shape(_Stats)
DELIVERY_LOG: Shape[_DeliveryLogRecord] = Shape(_DeliveryLogRecord)
BOUNCE: Shape[_BounceRecord] = Shape(_BounceRecord)
UNSUBSCRIBE: Shape[_UnsubscribeRecord] = Shape(_UnsubscribeRecord)
TRANSACTIONAL: Shape[_TransactionalRecord] = Shape(_TransactionalRecord)
FIELD_TYPE: Shape[_FieldType] = Shape(_FieldType)
SEGMENT_OPERATOR: Shape[_SegmentOperator] = Shape(_SegmentOperator)
COUNTRY: Shape[_Country] = Shape(_Country)
ZONE: Shape[_Zone] = Shape(_Zone)
DELIVERY_SERVER: Shape[_DeliveryServer] = Shape(_DeliveryServer)
SENDING_DOMAIN: Shape[_SendingDomain] = Shape(_SendingDomain)
BOUNCE_CREATED: Shape[_BounceCreated] = Shape(_BounceCreated)
TRACKED_URL: Shape[_TrackedUrl] = Shape(_TrackedUrl)


def _record(item: Shape[T]) -> Expect[T]:
    """``{"status":"success","data":{"record":{..}}}`` → the record, checked against ``item``."""
    return lambda payload: item(_SINGLE(payload)["data"]["record"], at="data.record")


def _collection(item: Shape[T]) -> Expect[tuple[list[T], int | None]]:
    """A collection page → its records (each checked against ``item``) and ``next_page`` (null on the last)."""

    def read(payload: Any) -> tuple[list[T], int | None]:
        data = _COLLECTION(payload)["data"]
        return [item(rec, at=f"data.records.{i}") for i, rec in enumerate(data["records"])], data.get("next_page")

    return read


def _created(key: str) -> Expect[str]:
    """``{"status":"success","<key>":"<uid>"}`` (201) → the new uid (also found under ``data``)."""

    def read(payload: Any) -> str:
        _SUCCESS(payload)
        if key in payload:
            return _UID(payload[key], at=key)
        data = payload.get("data")
        if isinstance(data, dict) and key in data:
            return _UID(data[key], at=f"data.{key}")
        raise AnswerMismatch(f"{key}: Field required")

    return read


def _action(payload: Any) -> None:
    """``{"status":"success"}``"""
    _SUCCESS(payload)


def _data(item: Shape[T]) -> Expect[T]:
    """``{"status":"success","data":{..}}`` → ``data``, checked against ``item``."""
    return lambda payload: item(_DATA(payload)["data"], at="data")


def _records(item: Shape[T]) -> Expect[list[T]]:
    """``{"status":"success","data":{"records":[..]}}`` (unpaginated) → the records, each checked."""

    def read(payload: Any) -> list[T]:
        return [item(r, at=f"data.records.{i}") for i, r in enumerate(_RECORDS(payload)["data"]["records"])]

    return read


def _field_created(payload: Any) -> "_FieldRecord | None":
    """A created list field: ``{"status":"success"}``, echoing the field under ``data.record`` or ``field``
    where the service does [U]."""
    _SUCCESS(payload)
    data = payload.get("data")
    if isinstance(data, dict) and "record" in data:
        return FIELD(data["record"], at="data.record")
    if "field" in payload:
        return FIELD(payload["field"], at="field")
    return None


def _log(payload: Any) -> "_DeliveryLogRecord":
    """One delivery log: ``data.record``, or (per Pakat's spec) ``data`` itself."""
    data = _DATA(payload)["data"]
    return DELIVERY_LOG(data["record"], at="data.record") if "record" in data else DELIVERY_LOG(data, at="data")


# -- encoding helpers -------------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime(DATE_FMT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def flatten_form(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts/lists into PHP bracket keys: ``{"a": {"b": 1}}`` -> ``{"a[b]": "1"}``; None dropped."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            out.update(flatten_form(value, name))
        elif isinstance(value, list | tuple):
            out.update(flatten_form({str(i): v for i, v in enumerate(value)}, name))
        else:
            out[name] = _scalar(value)
    return out


def b64(text: str | bytes) -> str:
    """Base64 of UTF-8 text, as Pakat wants HTML bodies."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def parse_date(value: Any) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` (no zone) to a naive datetime; ``{"expression":"NOW()"}`` and junk to None."""
    if not isinstance(value, str) or not value:
        return None
    for fmt in (DATE_FMT, "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _str(value: Any) -> str:
    return "" if value is None else str(value)


# -- typed records ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PakatList:
    """A subscriber list."""

    list_uid: str
    name: str
    display_name: str = ""
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    notifications: Mapping[str, Any] = field(default_factory=dict)
    company: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "PakatList":
        g = rec.get("general") or {}
        return cls(
            list_uid=_str(g.get("list_uid")),
            name=_str(g.get("name")),
            display_name=_str(g.get("display_name")),
            description=_str(g.get("description")),
            defaults=dict(rec.get("defaults") or {}),
            notifications=dict(rec.get("notifications") or {}),
            company=dict(rec.get("company") or {}),
        )


@dataclass(frozen=True)
class PakatField:
    """A list custom field; ``tag`` is the upper-case key subscribers carry (``EMAIL``, ``FNAME``, ``CITY``)."""

    field_id: int
    tag: str
    label: str
    required: bool
    type: str

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "PakatField":
        ftype = rec.get("type")
        if isinstance(ftype, Mapping):
            ftype = ftype.get("identifier") or ftype.get("name")
        return cls(
            field_id=as_int(rec.get("field_id")),
            tag=_str(rec.get("tag")),
            label=_str(rec.get("label")),
            required=_str(rec.get("required")).lower() == "yes",
            type=_str(ftype),
        )


_SUB_META = frozenset({"subscriber_uid", "status", "source", "ip_address", "date_added", "EMAIL", "email"})


@dataclass(frozen=True)
class PakatSubscriber:
    """A subscriber of one list; ``fields`` holds every TAG but ``EMAIL``. ``status`` is None on write answers."""

    subscriber_uid: str
    email: str
    status: str | None = None
    source: str | None = None
    ip_address: str | None = None
    date_added: datetime | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "PakatSubscriber":
        return cls(
            subscriber_uid=_str(rec.get("subscriber_uid")),
            email=_str(rec.get("EMAIL") or rec.get("email")),
            status=rec.get("status"),
            source=rec.get("source"),
            ip_address=rec.get("ip_address"),
            date_added=parse_date(rec.get("date_added")),
            fields={k: _str(v) for k, v in rec.items() if k not in _SUB_META},
        )


@dataclass(frozen=True)
class SubscriberRef:
    """The answer of search-by-email: uid, status and date added."""

    subscriber_uid: str
    status: str
    date_added: datetime | None = None


@dataclass(frozen=True)
class SubscriberMembership:
    """One list an email belongs to (search in all lists)."""

    subscriber_uid: str
    email: str
    status: str
    list_uid: str
    list_name: str | None = None
    date_added: datetime | None = None


@dataclass(frozen=True)
class BulkItemResult:
    """The service's answer for one bulk item (index = position in the input)."""

    index: int
    email: str
    ok: bool
    subscriber_uid: str | None = None
    errors: Mapping[str, str] = field(default_factory=dict)
    missing: bool = False  # the service returned no record for it (dropped past the cap)

    @property
    def exists(self) -> bool:
        return "already exists" in self.errors.get("EMAIL", "")

    @property
    def blacklisted(self) -> bool:
        return "blacklisted" in self.errors.get("EMAIL", "")


def _group(value: Any) -> Mapping[str, Any] | None:
    """A campaign's group: MailWizz answers ``[]`` without one and ``{group_uid, name}`` with one."""
    return dict(value) if isinstance(value, Mapping) and value else None


@dataclass(frozen=True)
class PakatCampaign:
    """A campaign; the detail fields are None in listings."""

    campaign_uid: str
    name: str
    status: str
    type: str | None = None
    group: Mapping[str, Any] | None = None  # ``{group_uid, name}``; MailWizz answers [] for none
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    send_at: datetime | None = None  # naive, in the customer's timezone
    list_uid: str | None = None
    segment_uid: str | None = None
    subscribers_count: int | None = None
    date_added: datetime | None = None

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "PakatCampaign":
        lst = rec.get("list") if isinstance(rec.get("list"), Mapping) else {}
        seg = rec.get("segment") if isinstance(rec.get("segment"), Mapping) else {}
        return cls(
            campaign_uid=_str(rec.get("campaign_uid")),
            name=_str(rec.get("name")),
            status=_str(rec.get("status")),
            type=rec.get("type"),
            group=_group(rec.get("group")),
            from_name=rec.get("from_name"),
            from_email=rec.get("from_email"),
            reply_to=rec.get("reply_to"),
            subject=rec.get("subject"),
            send_at=parse_date(rec.get("send_at")),
            list_uid=(lst or {}).get("list_uid"),
            segment_uid=(seg or {}).get("segment_uid"),
            subscribers_count=as_int(lst.get("subscribers_count")) if lst and "subscribers_count" in lst else None,
            date_added=parse_date(rec.get("date_added")),
        )


STAT_NAMES = (
    "delivery_success",
    "delivery_error",
    "opens",
    "unique_opens",
    "clicks",
    "unique_clicks",
    "unsubscribes",
    "complaints",
    "bounces",
    "hard_bounces",
    "soft_bounces",
    "internal_bounces",
)


@dataclass(frozen=True)
class PakatCampaignStats:
    """Campaign counters (``counts``) and float percentages (``rates``), keyed by MailWizz's names."""

    campaign_status: str
    subscribers_count: int
    processed_count: int
    counts: Mapping[str, int] = field(default_factory=dict)
    rates: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "PakatCampaignStats":
        return cls(
            campaign_status=_str(data.get("campaign_status")),
            subscribers_count=as_int(data.get("subscribers_count")),
            processed_count=as_int(data.get("processed_count")),
            counts={n: as_int(data.get(f"{n}_count")) for n in STAT_NAMES},
            rates={n: _float(data.get(f"{n}_rate")) for n in STAT_NAMES},
        )


@dataclass(frozen=True)
class DeliveryLog:
    """One delivery attempt of a campaign to a subscriber."""

    campaign_uid: str
    subscriber_uid: str
    email: str
    status: str
    message: str | None = None
    retries: int = 0
    email_message_id: str | None = None
    delivery_confirmed: bool = False
    date_added: datetime | None = None

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "DeliveryLog":
        sub = rec.get("subscriber") or {}
        return cls(
            campaign_uid=_str((rec.get("campaign") or {}).get("campaign_uid")),
            subscriber_uid=_str(sub.get("subscriber_uid")),
            email=_str(sub.get("email")),
            status=_str(rec.get("status")),
            message=rec.get("message"),
            retries=as_int(rec.get("retries")),
            email_message_id=rec.get("email_message_id"),
            delivery_confirmed=_str(rec.get("delivery_confirmed")).lower() == "yes",
            date_added=parse_date(rec.get("date_added")),
        )


@dataclass(frozen=True)
class CampaignBounce:
    """A bounce recorded for a campaign (``internal``, ``soft`` or ``hard``)."""

    subscriber_uid: str
    email: str
    bounce_type: str
    message: str | None = None
    date_added: datetime | None = None


@dataclass(frozen=True)
class CampaignUnsubscribe:
    """An unsubscribe recorded for a campaign."""

    subscriber_uid: str
    email: str
    reason: str | None = None
    date_added: datetime | None = None


@dataclass(frozen=True)
class PakatTemplate:
    """An email template; ``content`` (HTML) is only filled by :meth:`PakatClient.get_template`."""

    template_uid: str
    name: str
    content: str | None = None
    screenshot: str | None = None


@dataclass(frozen=True)
class PakatSegment:
    """A list segment."""

    segment_uid: str
    name: str
    subscribers_count: int | None = None


@dataclass(frozen=True)
class TransactionalAttachment:
    """A transactional email attachment (at most 3 per email): sent as ``[name, type, data]`` (data base64),
    answered by the single view as ``{type, name, content}`` (content base64)."""

    name: str
    data: bytes
    mime_type: str = "application/octet-stream"

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "TransactionalAttachment":
        content = rec.get("content")
        try:
            data = base64.b64decode(content) if isinstance(content, str) else b""
        except ValueError:  # binascii.Error
            data = b""
        return cls(name=_str(rec.get("name")), data=data, mime_type=_str(rec.get("type")))


@dataclass(frozen=True)
class TransactionalEmail:
    """A transactional email as MailWizz stores it; ``send_at`` is naive UTC. ``attachments`` come with the
    single view only (the listing leaves them out); ``fallback_system_servers`` is ``yes``/``no`` (MailWizz
    1.9.22 and later), None where the record lacks it."""

    email_uid: str
    to_email: str
    subject: str
    status: str
    to_name: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    send_at: datetime | None = None
    retries: int = 0
    date_added: datetime | None = None
    reply_to_name: str | None = None
    reply_to_email: str | None = None
    body: str | None = None
    plain_text: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    fallback_system_servers: str | None = None
    last_updated: datetime | None = None
    attachments: tuple[TransactionalAttachment, ...] = ()

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "TransactionalEmail":
        attachments = rec.get("attachments")
        return cls(
            reply_to_name=rec.get("reply_to_name") or None,
            reply_to_email=rec.get("reply_to_email") or None,
            body=rec.get("body"),
            plain_text=rec.get("plain_text"),
            priority=as_int(rec.get("priority")) if rec.get("priority") not in (None, "") else None,
            max_retries=as_int(rec.get("max_retries")) if rec.get("max_retries") not in (None, "") else None,
            fallback_system_servers=rec.get("fallback_system_servers") or None,
            last_updated=parse_date(rec.get("last_updated")),
            attachments=tuple(TransactionalAttachment.from_api(a) for a in attachments if isinstance(a, Mapping))
            if isinstance(attachments, list)
            else (),
            email_uid=_str(rec.get("email_uid")),
            to_email=_str(rec.get("to_email")),
            subject=_str(rec.get("subject")),
            status=_str(rec.get("status")),
            to_name=rec.get("to_name"),
            from_name=rec.get("from_name"),
            from_email=rec.get("from_email") or None,
            send_at=parse_date(rec.get("send_at")),
            retries=as_int(rec.get("retries")),
            date_added=parse_date(rec.get("date_added")),
        )


@dataclass(frozen=True)
class PakatQuota:
    """The sending quota (Pakat's "balance"): ``allowed`` None and ``unlimited`` True for ``"∞"``."""

    used: int
    allowed: int | None
    unlimited: bool
    percentage: float | None

    @property
    def remaining(self) -> int | None:
        return None if self.allowed is None else max(0, self.allowed - self.used)


@dataclass(frozen=True)
class FieldType:
    """A list field type (``identifier`` is what a field create or update sends)."""

    identifier: str
    name: str
    description: str | None = None


@dataclass(frozen=True)
class SegmentOperator:
    """A segment condition operator (``operator_id`` is what a segment condition sends)."""

    operator_id: int
    name: str
    slug: str | None = None


@dataclass(frozen=True)
class Country:
    """A country of MailWizz's table (its id is what zones and company forms use)."""

    country_id: int
    name: str
    code: str | None = None


@dataclass(frozen=True)
class Zone:
    """A zone (state, province) of a country."""

    zone_id: int
    name: str
    code: str | None = None


@dataclass(frozen=True)
class DeliveryServer:
    """A delivery server the account may send through."""

    server_id: int
    name: str | None = None
    hostname: str | None = None
    type: str | None = None
    status: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendingDomain:
    """A sending domain of the account."""

    name: str
    verified: bool
    domain_id: int | None = None


# -- the client ------------------------------------------------------------------------------------------------
