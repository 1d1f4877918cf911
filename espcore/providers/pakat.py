"""Pakat (a hosted MailWizz EMA 2.x): the typed HTTP client and the provider-neutral adapter.

Wire facts the client relies on (Pakat's API documentation and MailWizz 2.x):

* ``X-API-KEY`` header only; a bad key answers **400** (not 401).
* POST bodies are forms (urlencoded here; the service also reads multipart, never JSON). PUT bodies are
  **urlencoded only**: the service silently ignores a multipart PUT while answering success, so this module
  builds every PUT body itself and never hands httpx anything it could turn into multipart.
* Nested fields use PHP bracket keys (``campaign[template][content]``), flattened by :func:`flatten_form`.
* Offset paging, ``per_page`` clamped to 10-50, newest first: rows added mid-crawl shift older rows to later
  pages, so every crawl de-duplicates by uid and stops when ``next_page`` is null.
* ``Unable to acquire the mutex lock`` (409) means nothing happened: retried here with backoff, whatever the
  verb. Campaign creates are never resent after a timeout or 5xx (:class:`OutcomeUnknownError` instead).
"""

import base64
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, NotRequired, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from pydantic import AfterValidator
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from Python 3.12

from espcore.errors import (
    AuthError,
    ConflictError,
    EspError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from espcore.http import AnswerMismatch, Expect, HttpPolicy, ProviderClient, ProviderHttp, Shape, json_or_text
from espcore.providers.answers import Int, Obj, Text, answer
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

T = TypeVar("T")
Rec = TypeVar("Rec", bound=Mapping[str, Any])

PAKAT_BASE_URL = "https://new.pakat.net/api"
PROVIDER = "pakat"
DATE_FMT = "%Y-%m-%d %H:%M:%S"
BULK_MAX = 10_000
PER_PAGE_MIN, PER_PAGE_MAX = 10, 50

# -- errors ---------------------------------------------------------------------------------------------------


class PakatMutexError(ConflictError):
    """409 ``Unable to acquire the mutex lock``: nothing happened; the client retries it with backoff."""

    retryable = True


def _flatten_errors(value: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(_flatten_errors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        out[prefix or "_"] = "; ".join(str(v) for v in value)
    elif value is not None:
        out[prefix or "_"] = str(value)
    return out


def parse_pakat_error(response: httpx.Response) -> EspError:
    """Map ``{"status":"error","error": string | {field: message}}`` (or any non-2xx) to a typed error."""
    status = response.status_code
    body = json_or_text(response)
    raw = response.text[:2000]
    fields: dict[str, str] = {}
    if isinstance(body, dict) and "error" in body:
        err = body["error"]
        if isinstance(err, dict | list):
            fields = _flatten_errors(err)
            message = "; ".join(fields.values()) or "Invalid data."
        else:
            message = " ".join(str(err).replace("<br />", "\n").split("\n")).strip() or response.reason_phrase
            parts = [p.strip() for p in str(err).split("<br />") if p.strip()]
            if len(parts) > 1:
                fields = {str(i): p for i, p in enumerate(parts)}
                message = "; ".join(parts)
    else:
        message = response.reason_phrase or f"HTTP {status}"
    low = message.lower()
    kwargs: dict[str, Any] = {"status": status, "fields": fields, "body": raw}
    if status == 429:
        return RateLimitError(message, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status == 401 or (status == 400 and ("api key" in low or "api request params" in low)):
        return AuthError(message, **kwargs)
    if status == 400:
        if "ip address" in low or "inactive" in low or "api access" in low or "disabled" in low:
            return PermissionDeniedError(message, **kwargs)
        if "does not allow" in low or "cannot be removed" in low or "unable to copy" in low:
            return ConflictError(message, **kwargs)
        return ValidationError(message, **kwargs)
    if status == 403:
        if "quota" in low or "maximum" in low or "limit" in low:
            return QuotaError(message, **kwargs)
        return PermissionDeniedError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 409:
        if "mutex" in low:
            return PakatMutexError(message, **kwargs)
        if "maximum number" in low:
            return QuotaError(message, **kwargs)
        if "does not exist" in low:  # PUT on a subscriber that is not in the list answers 409
            return NotFoundError(message, **kwargs)
        return ConflictError(message, **kwargs)
    if status == 422:
        if "maximum number" in low:
            return QuotaError(message, **kwargs)
        if "ediable" in low or "editable" in low:
            return ConflictError(message, **kwargs)
        return ValidationError(message, **kwargs)
    return EspError(message, **kwargs)


def error_envelope(payload: Any) -> tuple[str | int | None, str] | None:
    """``(None, message)`` when a decoded body is MailWizz's ``{"status":"error","error": string | {field:
    message}}``, else None."""
    if not isinstance(payload, dict) or payload.get("status") != "error":
        return None
    err = payload.get("error")
    if isinstance(err, dict | list):
        message = "; ".join(_flatten_errors(err).values())
    else:
        message = " ".join(str(err or "").replace("<br />", "\n").split())
    return None, message or "the answer says the call failed"


# -- answers: the documented success shapes (as documented), the fields the client reads -----------------------------


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
    attachments: NotRequired[list[Any] | None]


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
class TransactionalEmail:
    """A transactional email; ``send_at`` is naive UTC."""

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
    attachments: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_api(cls, rec: Mapping[str, Any]) -> "TransactionalEmail":
        attachments = rec.get("attachments")
        return cls(
            reply_to_name=rec.get("reply_to_name") or None,
            reply_to_email=rec.get("reply_to_email") or None,
            body=rec.get("body"),
            plain_text=rec.get("plain_text"),
            priority=as_int(rec.get("priority")) if rec.get("priority") not in (None, "") else None,
            attachments=tuple(a for a in attachments if isinstance(a, Mapping))
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
class TransactionalAttachment:
    """A transactional email attachment (at most 3 per email)."""

    name: str
    data: bytes
    mime_type: str = "application/octet-stream"


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


class PakatClient(ProviderClient):
    """Typed client of Pakat's customer API (MailWizz 2.x); every call goes through :class:`ProviderHttp`."""

    def __init__(
        self,
        api_key: str,
        base_url: str = PAKAT_BASE_URL,
        *,
        policy: HttpPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timezone: str = "UTC",
        mutex_attempts: int = 5,
    ) -> None:
        if not api_key:
            raise AuthError("a Pakat API key is required (PAKAT_API_KEY)", provider=PROVIDER)
        self._api_key = api_key
        self.timezone = ZoneInfo(timezone)
        self.mutex_attempts = max(1, mutex_attempts)
        self._sleep = sleep
        self.http = ProviderHttp(
            PROVIDER,
            base_url,
            policy=policy,
            error_parser=parse_pakat_error,
            error_envelope=error_envelope,
            auth_headers=lambda: {"X-API-KEY": self._api_key},
            secrets=[api_key],
            transport=transport,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"PakatClient(base_url={self.http.base_url!r}, timezone={self.timezone.key!r})"

    # -- transport ----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, expect: Expect[T], **kwargs: Any) -> T:
        delay = 0.5
        for attempt in range(1, self.mutex_attempts + 1):
            try:
                return self.http.call(method, path, expect, **kwargs)
            except PakatMutexError:
                if attempt >= self.mutex_attempts:
                    raise
                self._sleep(delay)
                delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, path: str, expect: Expect[T], params: Mapping[str, Any] | None = None) -> T:
        return self._call("GET", path, expect, params=dict(params or {}))

    def _post(
        self,
        path: str,
        expect: Expect[T],
        fields: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> T:
        return self._call("POST", path, expect, data=flatten_form(fields or {}), idempotent=idempotent)

    def _put(self, path: str, expect: Expect[T], fields: Mapping[str, Any] | None = None) -> T:
        # Always an urlencoded body built here: a multipart PUT is silently ignored by the service.
        body = urlencode(list(flatten_form(fields or {}).items())).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self._call("PUT", path, expect, content=body, headers=headers)

    def _delete(self, path: str) -> None:
        self._call("DELETE", path, _action)

    def _paginate(
        self,
        path: str,
        item: Shape[Rec],
        uid_key: str | None,
        params: Mapping[str, Any] | None = None,
        per_page: int = 50,
    ) -> Iterator[Rec]:
        per_page = min(PER_PAGE_MAX, max(PER_PAGE_MIN, per_page))
        seen: set[str] = set()
        page = 1
        while True:
            records, nxt = self._get(path, _collection(item), {**(params or {}), "page": page, "per_page": per_page})
            for rec in records:
                key = _dig(rec, uid_key) if uid_key else None
                if key:
                    if key in seen:
                        continue
                    seen.add(key)
                yield rec
            if not nxt or nxt <= page:
                return
            page = nxt

    # -- account ------------------------------------------------------------------------------------------

    def quota(self) -> PakatQuota:
        """The sending quota (``GET /quota/index``), Pakat's "balance"; also the key check."""
        q = self._get("/quota/index", _QUOTA)["quota"]
        allowed_raw = q.get("allowed")
        unlimited = isinstance(allowed_raw, str) and allowed_raw.strip() in ("∞", "")
        allowed = None if unlimited or allowed_raw is None else as_int(allowed_raw)
        pct_raw = _str(q.get("percentage")).strip().rstrip("%")
        try:
            pct = float(pct_raw) if pct_raw else None
        except ValueError:
            pct = None
        return PakatQuota(used=as_int(q.get("used")), allowed=allowed, unlimited=unlimited, percentage=pct)

    def verify(self) -> PakatQuota:
        """Check the API key (there is no dedicated endpoint; a bad key raises AuthError)."""
        return self.quota()

    # -- lists --------------------------------------------------------------------------------------------

    def lists(self, *, per_page: int = 50) -> Iterator[PakatList]:
        """Every list, newest first, auto-paginating and de-duplicated by uid."""
        for rec in self._paginate("/lists", LIST, "general.list_uid", per_page=per_page):
            yield PakatList.from_api(rec)

    def get_list(self, list_uid: str) -> PakatList:
        """One list."""
        return PakatList.from_api(self._get(f"/lists/{list_uid}", _record(LIST)))

    @staticmethod
    def _list_fields(
        name: str | None,
        description: str | None,
        from_name: str | None,
        from_email: str | None,
        reply_to: str | None,
        subject: str | None,
        opt_in: str | None,
        notifications: Mapping[str, Any] | None,
        company: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "general": {"name": name, "description": description, "opt_in": opt_in},
            "defaults": {"from_name": from_name, "from_email": from_email, "reply_to": reply_to, "subject": subject},
            "notifications": dict(notifications or {}) or None,
            "company": dict(company or {}) or None,
        }

    def create_list(
        self,
        name: str,
        description: str,
        *,
        from_name: str,
        from_email: str,
        reply_to: str,
        subject: str | None = None,
        opt_in: str | None = None,
        notifications: Mapping[str, Any] | None = None,
        company: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a list and return its uid (``opt_in`` single/double where the service exposes it)."""
        fields = self._list_fields(
            name, description, from_name, from_email, reply_to, subject, opt_in, notifications, company
        )
        return self._post("/lists", _created("list_uid"), fields)

    def update_list(
        self,
        list_uid: str,
        *,
        name: str | None = None,
        description: str | None = None,
        from_name: str | None = None,
        from_email: str | None = None,
        reply_to: str | None = None,
        subject: str | None = None,
        opt_in: str | None = None,
        notifications: Mapping[str, Any] | None = None,
        company: Mapping[str, Any] | None = None,
    ) -> None:
        """Update a list (only the given attributes are sent)."""
        fields = self._list_fields(
            name, description, from_name, from_email, reply_to, subject, opt_in, notifications, company
        )
        self._put(f"/lists/{list_uid}", _action, fields)

    def delete_list(self, list_uid: str) -> None:
        """Delete a list and its subscribers."""
        self._delete(f"/lists/{list_uid}")

    def copy_list(self, list_uid: str) -> str:
        """Copy a list (settings and fields) and return the new uid."""
        return self._post(f"/lists/{list_uid}/copy", _created("list_uid"))

    def list_fields(self, list_uid: str) -> list[PakatField]:
        """The custom fields of a list (unpaginated)."""
        return [PakatField.from_api(r) for r in self._get(f"/lists/{list_uid}/fields", _records(FIELD))]

    def create_list_field(
        self, list_uid: str, tag: str, label: str, *, type: str = "text", required: bool = False
    ) -> PakatField | None:
        """Create a custom field (TAG upper case); returns it when the service echoes it."""
        fields = {"type": type, "label": label, "tag": tag, "required": required}
        rec = self._post(f"/lists/{list_uid}/fields", _field_created, fields)
        return PakatField.from_api(rec) if rec is not None else None

    def get_list_field(self, list_uid: str, field_id: int) -> PakatField:
        """One custom field of a list by its id."""
        return PakatField.from_api(self._get(f"/lists/{list_uid}/fields/{field_id}", _record(FIELD)))

    def update_list_field(
        self,
        list_uid: str,
        field_id: int,
        *,
        label: str | None = None,
        tag: str | None = None,
        required: bool | None = None,
        visibility: Literal["visible", "hidden", "none"] | None = None,
        sort_order: int | None = None,
        default_value: str | None = None,
        help_text: str | None = None,
        description: str | None = None,
    ) -> PakatField:
        """Update a custom field (only the given attributes are sent) and return it as stored."""
        fields = {
            "label": label,
            "tag": tag,
            "required": required,
            "visibility": visibility,
            "sort_order": sort_order,
            "default_value": default_value,
            "help_text": help_text,
            "description": description,
        }
        return PakatField.from_api(self._put(f"/lists/{list_uid}/fields/{field_id}", _record(FIELD), fields))

    def delete_list_field(self, list_uid: str, field_id: int) -> None:
        """Delete a custom field and its subscriber values."""
        self._delete(f"/lists/{list_uid}/fields/{field_id}")

    def list_field_types(self) -> list[FieldType]:
        """The field types a list field may have."""
        return [
            FieldType(r["identifier"], r["name"], r.get("description"))
            for r in self._paginate("/lists/fields/types", FIELD_TYPE, "identifier")
        ]

    # -- subscribers --------------------------------------------------------------------------------------

    def list_subscribers(
        self, list_uid: str, *, status: str | None = None, per_page: int = 50
    ) -> Iterator[PakatSubscriber]:
        """Subscribers of a list, newest first, optionally by status (checked client-side too)."""
        params = {"status": status} if status else {}
        for rec in self._paginate(f"/lists/{list_uid}/subscribers", SUBSCRIBER, "subscriber_uid", params, per_page):
            sub = PakatSubscriber.from_api(rec)
            if status and sub.status != status:
                continue  # the service ignores unknown status filters
            yield sub

    def count_subscribers(self, list_uid: str, *, status: str | None = None) -> int:
        """How many subscribers a list has (one small page; ``count`` is a string, null when empty)."""
        params: dict[str, Any] = {"page": 1, "per_page": PER_PAGE_MIN}
        if status:
            params["status"] = status
        return self._get(f"/lists/{list_uid}/subscribers", _COLLECTION, params)["data"].get("count") or 0

    def get_subscriber(self, list_uid: str, subscriber_uid: str) -> PakatSubscriber:
        """One subscriber (no ``date_added`` in this answer)."""
        return PakatSubscriber.from_api(
            self._get(f"/lists/{list_uid}/subscribers/{subscriber_uid}", _record(SUBSCRIBER))
        )

    def search_subscriber(self, list_uid: str, email: str) -> SubscriberRef | None:
        """Find a subscriber of a list by email; None when absent (the service answers 404)."""
        try:
            data = self._get(f"/lists/{list_uid}/subscribers/search-by-email", _data(SUBSCRIBER_REF), {"EMAIL": email})
        except NotFoundError as exc:
            if "does not exist in this list" in exc.message.lower():
                return None
            raise  # the list itself is missing
        return SubscriberRef(data["subscriber_uid"], data["status"], parse_date(data.get("date_added")))

    def search_subscribers_by_custom_fields(
        self, list_uid: str, values: Mapping[str, str], *, per_page: int = 50
    ) -> Iterator[PakatSubscriber]:
        """Subscribers of a list whose fields equal every given ``TAG: value`` (exact match)."""
        path = f"/lists/{list_uid}/subscribers/search-by-custom-fields"
        for rec in self._paginate(path, SUBSCRIBER, "subscriber_uid", dict(values), per_page):
            yield PakatSubscriber.from_api(rec)

    def search_subscriber_in_all_lists(self, email: str) -> list[SubscriberMembership]:
        """Every list an email is in (max 100, unpaginated)."""
        records = self._get("/lists/subscribers/search-by-email-in-all-lists", _records(MEMBERSHIP), {"EMAIL": email})
        return [
            SubscriberMembership(
                subscriber_uid=r["subscriber_uid"],
                email=r["email"],
                status=r["status"],
                list_uid=r["list"]["list_uid"],
                list_name=r["list"].get("name"),
                date_added=parse_date(r.get("date_added")),
            )
            for r in records
        ]

    @staticmethod
    def _subscriber_fields(
        email: str | None,
        fields: Mapping[str, Any] | None,
        status: str | None,
        source: str | None,
        ip_address: str | None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"EMAIL": email}
        out.update({k: v for k, v in (fields or {}).items() if k != "EMAIL"})
        details = {"status": status, "source": source, "ip_address": ip_address}
        if any(v is not None for v in details.values()):
            out["details"] = details
        return out

    def create_subscriber(
        self,
        list_uid: str,
        email: str,
        fields: Mapping[str, Any] | None = None,
        *,
        status: str | None = "confirmed",
        source: str | None = None,
        ip_address: str | None = None,
    ) -> PakatSubscriber:
        """Add a subscriber (an unsubscribed one is re-subscribed in place: look up first when that matters)."""
        payload = self._subscriber_fields(email, fields, status, source, ip_address)
        return PakatSubscriber.from_api(self._post(f"/lists/{list_uid}/subscribers", _record(SUBSCRIBER), payload))

    def update_subscriber(
        self,
        list_uid: str,
        subscriber_uid: str,
        fields: Mapping[str, Any] | None = None,
        *,
        email: str | None = None,
        status: str | None = None,
        source: str | None = None,
        ip_address: str | None = None,
    ) -> PakatSubscriber:
        """Update the TAGs sent (required fields other than EMAIL must be re-sent)."""
        payload = self._subscriber_fields(email, fields, status, source, ip_address)
        path = f"/lists/{list_uid}/subscribers/{subscriber_uid}"
        return PakatSubscriber.from_api(self._put(path, _record(SUBSCRIBER), payload))

    def delete_subscriber(self, list_uid: str, subscriber_uid: str) -> None:
        """Delete a subscriber from a list."""
        self._delete(f"/lists/{list_uid}/subscribers/{subscriber_uid}")

    def unsubscribe(self, list_uid: str, subscriber_uid: str) -> None:
        """Unsubscribe a subscriber (a silent no-op unless confirmed)."""
        self._put(f"/lists/{list_uid}/subscribers/{subscriber_uid}/unsubscribe", _action)

    def unsubscribe_from_all_lists(self, email: str) -> None:
        """Unsubscribe an email from every list."""
        self._put("/lists/subscribers/unsubscribe-by-email-from-all-lists", _action, {"EMAIL": email})

    def bulk_add_subscribers(
        self,
        list_uid: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        status: str | None = "confirmed",
        chunk_size: int = BULK_MAX,
    ) -> list[BulkItemResult]:
        """Create many subscribers (rows carry ``EMAIL`` and TAGs), chunked to ≤ 10,000; results in input order.

        Marked idempotent: bulk never updates, so a resend after a lost answer yields "exists" per item, which
        callers count as accepted.
        """
        chunk_size = max(1, min(BULK_MAX, chunk_size))
        results: list[BulkItemResult] = []
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            items: dict[str, Any] = {}
            for i, row in enumerate(chunk):
                item = {k: v for k, v in row.items()}
                if status is not None:
                    item["details"] = {**dict(item.get("details") or {}), "status": status}
                items[str(i)] = item
            # Only the documented envelope says which items were taken; anything else raises (an
            # UnexpectedOutcomeError) and no item of the chunk counts as added. Per-item errors are answers.
            body = self._post(f"/lists/{list_uid}/subscribers/bulk", _BULK, {"subscribers": items}, idempotent=True)
            records = body["data"]["records"]
            for i, row in enumerate(chunk):
                email = _str(row.get("EMAIL"))
                if i >= len(records):
                    results.append(
                        BulkItemResult(start + i, email, False, errors={"_common": "no result returned"}, missing=True)
                    )
                    continue
                rec = records[i]
                data = rec["data"] if isinstance(rec["data"], dict) else {}
                errors = _flatten_errors(rec.get("errors")) if rec.get("errors") else {}
                uid = data.get("subscriber_uid") if not errors else None
                uid = str(uid) if uid else None
                results.append(BulkItemResult(start + i, email, not errors and bool(uid), uid, errors))
        return results

    # -- segments -----------------------------------------------------------------------------------------

    def segments(self, list_uid: str, *, per_page: int = 50) -> Iterator[PakatSegment]:
        """Segments of a list."""
        for r in self._paginate(f"/lists/{list_uid}/segments", SEGMENT, "segment_uid", per_page=per_page):
            yield PakatSegment(r["segment_uid"], r["name"], as_int(r.get("subscribers_count")))

    def create_segment(
        self, list_uid: str, name: str, conditions: Sequence[Mapping[str, Any]] = (), *, operator_match: str = "any"
    ) -> str:
        """Create a segment (conditions: field_id, operator_id, value) and return its uid."""
        payload = {"name": name, "operator_match": operator_match, "conditions": [dict(c) for c in conditions]}
        return self._post(f"/lists/{list_uid}/segments", _created("segment_uid"), payload)

    def get_segment(self, list_uid: str, segment_uid: str) -> PakatSegment:
        """One segment of a list."""
        r = self._get(f"/lists/{list_uid}/segments/{segment_uid}", _record(SEGMENT))
        return PakatSegment(r["segment_uid"], r["name"], as_int(r.get("subscribers_count")))

    def update_segment(
        self,
        list_uid: str,
        segment_uid: str,
        *,
        name: str | None = None,
        operator_match: Literal["any", "all"] | None = None,
        conditions: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Update a segment's name, match mode and/or conditions (given conditions replace the old ones)."""
        payload: dict[str, Any] = {"name": name, "operator_match": operator_match}
        if conditions is not None:
            payload["conditions"] = [dict(c) for c in conditions]
        self._put(f"/lists/{list_uid}/segments/{segment_uid}", _action, payload)

    def delete_segment(self, list_uid: str, segment_uid: str) -> None:
        """Delete a segment (its subscribers stay in the list)."""
        self._delete(f"/lists/{list_uid}/segments/{segment_uid}")

    def segment_condition_operators(self) -> list[SegmentOperator]:
        """The operators a segment condition may use."""
        return [
            SegmentOperator(as_int(r["operator_id"]), r["name"], r.get("slug"))
            for r in self._paginate("/lists/segments/condition-operators", SEGMENT_OPERATOR, "operator_id")
        ]

    def segment_subscribers(self, list_uid: str, segment_uid: str, *, per_page: int = 50) -> Iterator[PakatSubscriber]:
        """Subscribers matching a segment."""
        path = f"/lists/{list_uid}/segments/{segment_uid}/subscribers"
        for rec in self._paginate(path, SUBSCRIBER, "subscriber_uid", per_page=per_page):
            yield PakatSubscriber.from_api(rec)

    # -- templates ----------------------------------------------------------------------------------------

    def templates(self, *, name: str | None = None, per_page: int = 50) -> Iterator[PakatTemplate]:
        """Templates, optionally filtered by name."""
        params = {"filter[name]": name} if name else {}
        for r in self._paginate("/templates", TEMPLATE_ROW, "template_uid", params, per_page):
            yield PakatTemplate(r["template_uid"], r["name"], None, r.get("screenshot"))

    def get_template(self, template_uid: str) -> PakatTemplate:
        """One template with its HTML."""
        rec = self._get(f"/templates/{template_uid}", _record(TEMPLATE))
        return PakatTemplate(template_uid, rec["name"], rec.get("content"), rec.get("screenshot"))

    def create_template(self, name: str, html: str, *, inline_css: bool | None = None) -> str:
        """Create a template (HTML sent base64) and return its uid."""
        payload = {"template": {"name": name, "content": b64(html), "inline_css": inline_css}}
        return self._post("/templates", _created("template_uid"), payload)

    def update_template(self, template_uid: str, *, name: str | None = None, html: str | None = None) -> None:
        """Update a template's name and/or HTML."""
        payload = {"template": {"name": name, "content": b64(html) if html else None}}
        self._put(f"/templates/{template_uid}", _action, payload)

    def delete_template(self, template_uid: str) -> None:
        """Delete a template."""
        self._delete(f"/templates/{template_uid}")

    # -- campaigns ----------------------------------------------------------------------------------------

    def format_send_at(self, when: datetime | str | None) -> str:
        """``send_at`` in the customer's timezone (aware datetimes are converted; naive ones taken as is)."""
        if isinstance(when, str):
            return when
        when = when or datetime.now(UTC)
        if when.tzinfo is not None:
            when = when.astimezone(self.timezone)
        return when.strftime(DATE_FMT)

    def campaigns(self, *, list_uid: str | None = None, per_page: int = 50) -> Iterator[PakatCampaign]:
        """Campaign summaries, newest first (``list_uid`` sent, but the service may ignore it)."""
        params = {"list_uid": list_uid} if list_uid else {}
        for r in self._paginate("/campaigns", CAMPAIGN, "campaign_uid", params, per_page):
            yield PakatCampaign.from_api(r)

    def get_campaign(self, campaign_uid: str) -> PakatCampaign:
        """One campaign with sender, subject, send_at and list."""
        return PakatCampaign.from_api(self._get(f"/campaigns/{campaign_uid}", _record(CAMPAIGN)))

    def _campaign_payload(
        self,
        *,
        name: str | None,
        list_uid: str | None,
        from_name: str | None,
        from_email: str | None,
        subject: str | None,
        reply_to: str | None,
        send_at: datetime | str | None,
        status: str | None,
        segment_uid: str | None,
        template_uid: str | None,
        html: str | None,
        plain_text: str | None,
        options: Mapping[str, Any] | None,
        send_at_default: bool,
    ) -> dict[str, Any]:
        template: dict[str, Any] = {
            "template_uid": template_uid,
            "content": b64(html) if html is not None else None,
            "plain_text": b64(plain_text) if plain_text else None,
        }
        campaign: dict[str, Any] = {
            "name": name,
            "from_name": from_name,
            "from_email": from_email,
            "subject": subject,
            "reply_to": reply_to,
            "send_at": self.format_send_at(send_at) if (send_at is not None or send_at_default) else None,
            "list_uid": list_uid,
            "segment_uid": segment_uid,
            "status": status,
            "template": template if any(v is not None for v in template.values()) else None,
            "options": dict(options) if options else None,
        }
        return {"campaign": campaign}

    def create_campaign(
        self,
        *,
        name: str,
        list_uid: str,
        from_name: str,
        from_email: str,
        subject: str,
        reply_to: str,
        send_at: datetime | str | None = None,
        status: str = "draft",
        segment_uid: str | None = None,
        template_uid: str | None = None,
        html: str | None = None,
        plain_text: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a campaign (default ``draft``: never sends) and return its uid; never resent on a timeout."""
        payload = self._campaign_payload(
            name=name,
            list_uid=list_uid,
            from_name=from_name,
            from_email=from_email,
            subject=subject,
            reply_to=reply_to,
            send_at=send_at,
            status=status,
            segment_uid=segment_uid,
            template_uid=template_uid,
            html=html,
            plain_text=plain_text,
            options=options,
            send_at_default=True,
        )
        # Not resend-safe: an answer that is not the documented one raises UnexpectedOutcomeError (an
        # OutcomeUnknownError), so a launch looks the campaign up by name instead of creating it again.
        return self._post("/campaigns", _created("campaign_uid"), payload)

    def update_campaign(
        self,
        campaign_uid: str,
        *,
        name: str | None = None,
        list_uid: str | None = None,
        from_name: str | None = None,
        from_email: str | None = None,
        subject: str | None = None,
        reply_to: str | None = None,
        send_at: datetime | str | None = None,
        status: str | None = None,
        segment_uid: str | None = None,
        template_uid: str | None = None,
        html: str | None = None,
        plain_text: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Update a campaign (only in draft, pending-sending or paused); ``status="pending-sending"`` launches."""
        payload = self._campaign_payload(
            name=name,
            list_uid=list_uid,
            from_name=from_name,
            from_email=from_email,
            subject=subject,
            reply_to=reply_to,
            send_at=send_at,
            status=status,
            segment_uid=segment_uid,
            template_uid=template_uid,
            html=html,
            plain_text=plain_text,
            options=options,
            send_at_default=False,
        )
        self._put(f"/campaigns/{campaign_uid}", _action, payload)

    def copy_campaign(self, campaign_uid: str) -> str:
        """Copy a campaign and return the new uid (not idempotent)."""
        return self._post(f"/campaigns/{campaign_uid}/copy", _created("campaign_uid"))

    def pause_unpause_campaign(self, campaign_uid: str) -> str:
        """Toggle paused/sending and return the new status."""
        return self._put(f"/campaigns/{campaign_uid}/pause-unpause", _TOGGLE)["campaign"]["status"]

    def mark_campaign_sent(self, campaign_uid: str) -> str:
        """Mark a sending or paused campaign as sent; returns the new status."""
        return self._put(f"/campaigns/{campaign_uid}/mark-sent", _TOGGLE)["campaign"]["status"]

    def delete_campaign(self, campaign_uid: str) -> None:
        """Delete a campaign (refused while it is sending)."""
        self._delete(f"/campaigns/{campaign_uid}")

    def campaign_stats(self, campaign_uid: str) -> PakatCampaignStats:
        """Counters and rates of a campaign."""
        return PakatCampaignStats.from_api(self._get(f"/campaigns/{campaign_uid}/stats", _data(STATS)))

    def delivery_logs(self, campaign_uid: str, *, per_page: int = 50) -> Iterator[DeliveryLog]:
        """Delivery logs of a campaign."""
        path = f"/campaigns/{campaign_uid}/delivery-logs"
        for r in self._paginate(path, DELIVERY_LOG, "email_message_id", per_page=per_page):
            yield DeliveryLog.from_api(r)

    def delivery_log_by_message_id(self, email_message_id: str) -> DeliveryLog:
        """One delivery log by its Message-ID."""
        return DeliveryLog.from_api(self._get(f"/campaigns/delivery-logs/email-message-id/{email_message_id}", _log))

    def campaign_bounces(self, campaign_uid: str, *, per_page: int = 50) -> Iterator[CampaignBounce]:
        """Bounces of a campaign."""
        for r in self._paginate(f"/campaigns/{campaign_uid}/bounces", BOUNCE, None, per_page=per_page):
            sub = r["subscriber"]
            yield CampaignBounce(
                _str(sub.get("subscriber_uid")),
                _str(sub.get("email")),
                r["bounce_type"],
                r.get("message"),
                parse_date(r.get("date_added")),
            )

    def campaign_unsubscribes(self, campaign_uid: str, *, per_page: int = 50) -> Iterator[CampaignUnsubscribe]:
        """Unsubscribes of a campaign."""
        for r in self._paginate(f"/campaigns/{campaign_uid}/unsubscribes", UNSUBSCRIBE, None, per_page=per_page):
            sub = r["subscriber"]
            yield CampaignUnsubscribe(
                _str(sub.get("subscriber_uid")),
                _str(sub.get("email")),
                r.get("reason"),
                parse_date(r.get("date_added")),
            )

    def create_campaign_bounce(
        self,
        campaign_uid: str,
        subscriber_uid: str,
        bounce_type: Literal["internal", "soft", "hard"],
        message: str | None = None,
    ) -> CampaignBounce:
        """Record a bounce of a campaign for a subscriber (once per pair; a hard one blacklists the address)."""
        fields = {"subscriber_uid": subscriber_uid, "bounce_type": bounce_type, "message": message}
        r = self._post(f"/campaigns/{campaign_uid}/bounces", _record(BOUNCE_CREATED), fields)
        who = r.get("subscriber") or {}
        return CampaignBounce(
            _str(who.get("subscriber_uid")) or subscriber_uid,
            _str(who.get("email")),
            r["bounce_type"],
            r.get("message"),
        )

    def track_url(self, campaign_uid: str, subscriber_uid: str, url_hash: str) -> str:
        """Record a click of a campaign link (by its hash) and return the link's destination."""
        path = f"/campaigns/{campaign_uid}/track-url/{subscriber_uid}/{url_hash}"
        return self._get(path, _data(TRACKED_URL))["destination"]

    def track_opening(self, campaign_uid: str, subscriber_uid: str) -> None:
        """Record an open of a campaign by a subscriber."""
        self._get(f"/campaigns/{campaign_uid}/track-opening/{subscriber_uid}", _action)

    def track_unsubscribe(
        self,
        campaign_uid: str,
        subscriber_uid: str,
        *,
        ip_address: str | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record an unsubscribe from a campaign (the subscriber leaves the list); not idempotent."""
        fields = {"ip_address": ip_address, "user_agent": user_agent, "reason": reason}
        self._post(f"/campaigns/{campaign_uid}/track-unsubscribe/{subscriber_uid}", _action, fields)

    # -- account: countries, customers, delivery servers, sending domains -------------------------------------

    def countries(self, *, per_page: int = 50) -> Iterator[Country]:
        """Every country MailWizz knows."""
        for r in self._paginate("/countries", COUNTRY, "country_id", per_page=per_page):
            yield Country(as_int(r["country_id"]), r["name"], r.get("code"))

    def country_zones(self, country_id: int, *, per_page: int = 50) -> Iterator[Zone]:
        """The zones of a country."""
        for r in self._paginate(f"/countries/{country_id}/zones", ZONE, "zone_id", per_page=per_page):
            yield Zone(as_int(r["zone_id"]), r["name"], r.get("code"))

    def create_customer(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str,
        password: str,
        timezone: str,
        birth_date: date | str | None = None,
        company: Mapping[str, Any] | None = None,
    ) -> str:
        """Register a customer account and return its uid; not idempotent."""
        customer = {
            "first_name": first_name,
            "last_name": last_name,
            "email": email,
            "confirm_email": email,
            "password": password,
            "confirm_password": password,
            "timezone": timezone,
            "birthDate": birth_date,
        }
        fields: dict[str, Any] = {"customer": customer, "company": dict(company) if company else None}
        return self._post("/customers", _created("customer_uid"), fields)

    def delivery_servers(self, *, per_page: int = 50) -> Iterator[DeliveryServer]:
        """The delivery servers the account may use."""
        for r in self._paginate("/delivery-servers", DELIVERY_SERVER, "server_id", per_page=per_page):
            yield _server(r)

    def get_delivery_server(self, server_id: int) -> DeliveryServer:
        """One delivery server."""
        return _server(self._get(f"/delivery-servers/{server_id}", _record(DELIVERY_SERVER)))

    def get_sending_domain(self, domain_name: str) -> SendingDomain:
        """A sending domain of the account by its name."""
        r = self._get(f"/sending-domains/{domain_name}", _record(SENDING_DOMAIN))
        verified = r.get("verified")
        return SendingDomain(
            r["name"],
            verified is True or _str(verified).lower() == "yes",
            as_int(r.get("domain_id")) if r.get("domain_id") not in (None, "") else None,
        )

    # -- transactional emails ---------------------------------------------------------------------------------

    def create_transactional_email(
        self,
        *,
        to_email: str,
        to_name: str,
        from_name: str,
        subject: str,
        html: str | None = None,
        template_uid: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_email: str | None = None,
        reply_to_email: str | None = None,
        plain_text: str | None = None,
        send_at: datetime | None = None,
        contact: Mapping[str, Any] | None = None,
        attachments: Sequence[TransactionalAttachment] = (),
    ) -> str:
        """Queue a transactional email (``send_at`` UTC, default now) and return its uid; not idempotent."""
        if len(attachments) > 3:
            raise ValueError("Pakat accepts at most 3 attachments")
        when = send_at or datetime.now(UTC)
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        email: dict[str, Any] = {
            "to_name": to_name,
            "to_email": to_email,
            "from_name": from_name,
            "from_email": from_email,
            "reply_to_email": reply_to_email,
            "subject": subject,
            "body": b64(html) if html is not None else None,
            "plain_text": b64(plain_text) if plain_text else None,
            "template_uid": template_uid,
            "params": dict(params) if params else None,
            "contact": dict(contact) if contact else None,
            "send_at": when.strftime(DATE_FMT),
            "attachments": [{"name": a.name, "type": a.mime_type, "data": b64(a.data)} for a in attachments] or None,
        }
        return self._post("/transactional-emails", _created("email_uid"), {"email": email})

    def transactional_emails(self, *, per_page: int = 50) -> Iterator[TransactionalEmail]:
        """Transactional emails, newest first."""
        for r in self._paginate("/transactional-emails", TRANSACTIONAL, "email_uid", per_page=per_page):
            yield TransactionalEmail.from_api(r)

    def get_transactional_email(self, email_uid: str) -> TransactionalEmail:
        """One transactional email."""
        return TransactionalEmail.from_api(self._get(f"/transactional-emails/{email_uid}", _record(TRANSACTIONAL)))

    def delete_transactional_email(self, email_uid: str) -> None:
        """Delete a transactional email."""
        self._delete(f"/transactional-emails/{email_uid}")


def _server(r: Mapping[str, Any]) -> DeliveryServer:
    known = ("server_id", "name", "hostname", "type", "status")
    return DeliveryServer(
        as_int(r["server_id"]),
        r.get("name"),
        r.get("hostname"),
        r.get("type"),
        r.get("status"),
        {k: v for k, v in r.items() if k not in known},
    )


def _dig(rec: Mapping[str, Any], dotted: str) -> str | None:
    node: Any = rec
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return None if node is None else str(node)


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
        """Create the list fields the rows need (unknown TAGs would be dropped silently)."""
        fields = self.client.list_fields(list_uid)
        have = {f.tag for f in fields}
        for tag in tags:
            if tag not in have:
                created = self.client.create_list_field(list_uid, tag, tag.replace("_", " ").title())
                have.add(tag)
                fields.append(created or PakatField(0, tag, tag, False, "text"))
        return fields

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        mapped = [{field_tag(k): field_value(v) for k, v in r.fields.items() if field_tag(k) != "EMAIL"} for r in rows]
        tags = sorted({t for m in mapped for t in m})
        fields = self.ensure_fields(book_id, tags)
        required = {f.tag for f in fields if f.required and f.tag != "EMAIL"}
        existing = self._existing(book_id, [r.email for r in rows])
        results: list[RowResult | None] = [None] * len(rows)
        new: list[tuple[int, dict[str, Any]]] = []
        for i, (row, values) in enumerate(zip(rows, mapped, strict=True)):
            sub = existing.get(row.email.strip().lower())
            if sub is None:
                new.append((i, {"EMAIL": row.email.strip(), **values}))
            elif sub.status in SUPPRESSED_STATUSES:
                results[i] = RowResult(
                    row.email, False, sub.subscriber_uid, f"{sub.status} at the provider", suppressed=True
                )
            else:
                results[i] = self._update_existing(book_id, row.email, sub, values, required)
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

    def _existing(self, book_id: str, emails: Sequence[str]) -> dict[str, PakatSubscriber]:
        """Current subscribers among ``emails``: one crawl of the list, or per-email look-ups when cheaper."""
        wanted = {e.strip().lower() for e in emails}
        total = self.client.count_subscribers(book_id)
        if total == 0 or not wanted:
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


__all__ = [
    "PAKAT_BASE_URL",
    "BulkItemResult",
    "CampaignBounce",
    "CampaignUnsubscribe",
    "Country",
    "DeliveryLog",
    "DeliveryServer",
    "FieldType",
    "PakatCampaign",
    "PakatCampaignStats",
    "PakatClient",
    "PakatField",
    "PakatList",
    "PakatMutexError",
    "PakatProvider",
    "PakatQuota",
    "PakatSegment",
    "PakatSubscriber",
    "PakatTemplate",
    "SegmentOperator",
    "SendingDomain",
    "SubscriberMembership",
    "SubscriberRef",
    "TransactionalAttachment",
    "TransactionalEmail",
    "Zone",
    "b64",
    "field_tag",
    "flatten_form",
    "parse_pakat_error",
]
