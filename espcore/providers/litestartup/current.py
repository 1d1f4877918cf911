"""LiteStartup's *current* dialect (its newer official API documentation), and telling the dialects apart.

The current dialect keeps the base ``/client/v2`` and Bearer keys but changes everything else: verb-style paths
(``/contacts/list``, ``/contacts/add``, ``/marketing/create``, ``/templates/update/{id}``...), one envelope for
every answer, ``{"code": 200, "message": "..", "data": ..}`` (``data`` is ``[]`` when empty), errors as
``{"code": <HTTP status>, "message": "..", "data": []}`` with no symbolic codes and no 201/422 (validation and a
missing email can come back as **500**), integer ids, tags as objects with ids, ``GET /settings/usage`` for the
plan's quota (owner/admin keys only, else 403) and scoped keys (403 when a scope is missing).

:func:`detect_dialect` decides which dialect a server speaks from its ``GET /verify`` answer: the seed answers a
bare ``{"uuid": ".."}``, the current dialect ``{"code": 200, "message": "ok", "data": {"uuid": ".."}}``.
Anything else is not a success of either and raises :class:`espcore.http.AnswerMismatch`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, TypeVar
from urllib.parse import quote

import httpx
from pydantic import Field
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
from espcore.http import AnswerMismatch, Shape, json_or_text, parse_retry_after
from espcore.providers.answers import Id, Int, Obj, answer
from espcore.providers.litestartup.common import PROVIDER, QUOTA_TEXT, PageInfo

T = TypeVar("T")

DialectName = Literal["seed", "current"]
DialectSetting = Literal["seed", "current", "auto"]
DIALECT_SETTINGS: tuple[DialectSetting, ...] = ("seed", "current", "auto")


# -- telling the dialects apart ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialectDetection:
    """The dialect a server speaks, decided from its ``GET /verify`` answer, and the account uuid it gave."""

    dialect: DialectName
    uuid: str


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def detect_dialect(payload: Any) -> DialectDetection:
    """``seed`` for a bare ``{"uuid"}``, ``current`` for ``{"code":200,"data":{"uuid"}}``; else AnswerMismatch.

    The two shapes exclude each other: a body with a top-level ``uuid`` *and* an envelope, an envelope whose
    ``code`` is not 200 (an error sent with a 2xx status), or a uuid that is empty or not a string is neither.
    """
    if not isinstance(payload, Mapping):
        raise AnswerMismatch("the /verify answer is not a JSON object")
    has_envelope = "code" in payload or "data" in payload
    if "uuid" in payload and not has_envelope:
        uuid = _text(payload["uuid"])
        if uuid is None:
            raise AnswerMismatch("uuid: not a non-empty string")
        return DialectDetection("seed", uuid)
    if has_envelope and "uuid" not in payload:
        code = payload.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise AnswerMismatch("code: not an integer status")
        if code != 200:
            raise AnswerMismatch(f"code {code}: the body is an error answer")
        data = payload.get("data")
        uuid = _text(data.get("uuid")) if isinstance(data, Mapping) else None
        if uuid is None:
            raise AnswerMismatch("data.uuid: not a non-empty string")
        return DialectDetection("current", uuid)
    raise AnswerMismatch("neither a bare {uuid} nor a {code,message,data} envelope")


# -- answers of the current dialect --------------------------------------------------------------------------


@answer
class _Envelope(TypedDict):
    code: Int
    message: NotRequired[str | None]
    data: Any


@answer
class CurContact(TypedDict):
    id: Id
    email: str
    name: NotRequired[str | None]
    first_name: NotRequired[str | None]
    last_name: NotRequired[str | None]
    phone: NotRequired[str | None]
    company: NotRequired[str | None]
    status: NotRequired[str | None]
    tags: NotRequired[list[Id] | None]
    custom_fields: NotRequired[Obj | None]
    created_at: NotRequired[str | None]
    updated_at: NotRequired[str | None]


@answer
class CurTag(TypedDict):
    id: Id
    name: str
    color: NotRequired[str | None]
    contact_count: NotRequired[Int | None]
    created_at: NotRequired[str | None]


@answer
class CurTemplate(TypedDict):
    id: Id
    name: str
    string_id: NotRequired[str | None]
    content: NotRequired[str | None]
    description: NotRequired[str | None]
    category: NotRequired[str | None]
    created_at: NotRequired[str | None]


@answer
class CurCampaign(TypedDict):
    id: Id
    status: str
    name: NotRequired[str | None]
    subject: NotRequired[str | None]
    from_email: NotRequired[str | None]
    from_name: NotRequired[str | None]
    content: NotRequired[str | None]
    tag_id: NotRequired[Id | None]
    template_id: NotRequired[Id | None]
    total_recipients: NotRequired[Int | None]
    scheduled_at: NotRequired[str | None]
    sent_at: NotRequired[str | None]
    created_at: NotRequired[str | None]


@answer
class CurStats(TypedDict):
    total_recipients: Int
    delivered: Int
    opens: Int
    clicks: Int
    unsubscribes: NotRequired[Int | None]
    bounces: NotRequired[Int | None]
    open_rate: NotRequired[float | None]
    click_rate: NotRequired[float | None]
    unsubscribe_rate: NotRequired[float | None]
    bounce_rate: NotRequired[float | None]


@answer
class CurReport(TypedDict):
    stats: CurStats
    campaign: NotRequired[dict[str, Any] | None]


@answer
class CurEmail(TypedDict):
    id: Id
    subject: NotRequired[str | None]
    status: NotRequired[str | None]
    from_email: NotRequired[str | None]
    to_email: NotRequired[str | None]
    cc_email: NotRequired[str | None]
    bcc_email: NotRequired[str | None]
    message_id: NotRequired[str | None]
    created_at: NotRequired[str | None]
    date: NotRequired[str | None]
    html_content: NotRequired[str | None]


@answer
class CurFeature(TypedDict):
    feature: str
    usage_count: Int
    quota_limit: NotRequired[Int | None]


@answer
class CurPlan(TypedDict, total=False):
    id: Id | None
    name: str | None
    type: str | None
    status: str | None
    expires_at: str | None


@answer
class CurUsage(TypedDict):
    plan_usage: list[CurFeature]
    plan: NotRequired[CurPlan | None]


@answer
class CurImport(TypedDict):
    imported: Int
    skipped: Int
    failed: Int


@answer
class CurSearch(TypedDict):
    contacts: list[dict[str, Any]]
    total: NotRequired[Int | None]


@answer
class _Pagination(TypedDict, total=False):
    page: Int | None
    limit: Int | None
    total: Int | None
    total_pages: Int | None


CONTACT: Shape[CurContact] = Shape(CurContact)
TAG: Shape[CurTag] = Shape(CurTag)
TEMPLATE: Shape[CurTemplate] = Shape(CurTemplate)
CAMPAIGN: Shape[CurCampaign] = Shape(CurCampaign)
REPORT: Shape[CurReport] = Shape(CurReport)
EMAIL: Shape[CurEmail] = Shape(CurEmail)
USAGE: Shape[CurUsage] = Shape(CurUsage)
IMPORT: Shape[CurImport] = Shape(CurImport)
SEARCH: Shape[CurSearch] = Shape(CurSearch)
_ENVELOPE: Shape[_Envelope] = Shape(_Envelope)
_PAGINATION: Shape[_Pagination] = Shape(_Pagination)
_INT: Shape[int] = Shape(Int)
_TEXT: Shape[str] = Shape(Annotated[Id, Field(min_length=1)])


# -- the dialect ---------------------------------------------------------------------------------------------


def _message_of(payload: Any) -> str | None:
    if not isinstance(payload, Mapping):
        return None
    data = payload.get("data")
    for candidate in (payload.get("message"), data.get("error") if isinstance(data, Mapping) else None):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


class CurrentDialect:
    """LiteStartup's newer official API: paths, the ``{code,message,data}`` envelope and its error mapping."""

    name = "current"
    PATHS: Mapping[str, str] = {
        "verify": "/verify",
        "usage": "/settings/usage",
        "contacts": "/contacts/list",
        "contact_add": "/contacts/add",
        "contact": "/contacts/get",
        "contact_update": "/contacts/update",
        "contact_delete": "/contacts/delete",
        "contact_search": "/contacts/search",
        "contact_import": "/contacts/import",
        "contact_export": "/contacts/export",
        "tags": "/tags/list",
        "tag_create": "/tags/create",
        "tag_update": "/tags/update",
        "tag_delete": "/tags/delete",
        "templates": "/templates/list",
        "template_create": "/templates/create",
        "template": "/templates/{id}",
        "template_update": "/templates/update/{id}",
        "template_copy": "/templates/copy/{id}",
        "template_content": "/templates/content/{id}",
        "template_delete": "/templates/delete/{id}",
        "campaigns": "/marketing/list",
        "campaign_create": "/marketing/create",
        "campaign": "/marketing/{id}",
        "campaign_update": "/marketing/update/{id}",
        "campaign_copy": "/marketing/copy/{id}",
        "campaign_delete": "/marketing/delete/{id}",
        "campaign_report": "/marketing/{id}/report",
        "emails": "/emails",
        "email": "/emails/{id}",
        "notification": "/emails/notification",
    }

    def path(self, op: str, **ids: str) -> str:
        """The path of ``op`` with its ids filled in (KeyError for an operation this dialect has not)."""
        return self.PATHS[op].format(**{k: quote(str(v), safe="") for k, v in ids.items()})

    def data(self, payload: Any) -> Any:
        """The ``data`` of a ``{"code":200,..}`` envelope; any other body (an error's code, no envelope) mismatches."""
        if not isinstance(payload, Mapping):
            raise AnswerMismatch("the body is not a {code,message,data} envelope")
        env = _ENVELOPE(payload)
        if env["code"] != 200:
            raise AnswerMismatch(f"code {env['code']}: the body is an error answer")
        return env["data"]

    def single(self, payload: Any, item: Shape[T]) -> T:
        """``{"code":200,"data":{..}}`` → the object, checked against ``item``."""
        return item(self.data(payload), at="data")

    def listing(
        self, payload: Any, item: Shape[T], *, page: int, limit: int, key: str = ""
    ) -> tuple[list[T], PageInfo]:
        """``data{<key>:[..],total,page,limit}`` (or ``data{emails,pagination{..,total_pages}}``) → items, paging."""
        data = self.data(payload)
        if not isinstance(data, Mapping):
            raise AnswerMismatch("data: not an object")
        raw = data.get(key)
        if not isinstance(raw, list):
            raise AnswerMismatch(f"data.{key}: not a list")
        items = [item(x, at=f"data.{key}.{i}") for i, x in enumerate(raw)]
        if "pagination" in data:
            pag = _PAGINATION(data["pagination"], at="data.pagination")
            return items, PageInfo(
                page=pag.get("page") or page,
                limit=pag.get("limit") or limit,
                total=pag.get("total"),
                pages=pag.get("total_pages"),
            )
        total = _INT(data["total"], at="data.total") if data.get("total") is not None else None
        got_page = _INT(data["page"], at="data.page") if data.get("page") is not None else page
        got_limit = _INT(data["limit"], at="data.limit") if data.get("limit") is not None else limit
        return items, PageInfo(page=got_page, limit=got_limit, total=total)

    def scalar(self, payload: Any, key: str) -> str:
        """``data.<key>`` (``uuid``, ``messageId``) as a non-empty string."""
        data = self.data(payload)
        if not isinstance(data, Mapping) or key not in data:
            raise AnswerMismatch(f"data.{key}: Field required")
        return _TEXT(data[key], at=f"data.{key}")

    def done(self, payload: Any) -> None:
        """``{"code":200,"message":"..","data":[]}`` (an update or a delete)."""
        self.data(payload)

    def is_send_endpoint(self, method: str, path: str) -> bool:
        """``POST /emails`` and ``POST /emails/notification`` send mail (a campaign is sent by an update)."""
        p = path.rstrip("/")
        return method.upper() == "POST" and (p.endswith("/emails") or p.endswith("/emails/notification"))

    def error_envelope(self, payload: Any) -> tuple[str | int | None, str] | None:
        """``(code, message)`` of ``{"code": >=300, ..}`` (an error sent with a 2xx status); None otherwise."""
        if not isinstance(payload, Mapping):
            return None
        code = payload.get("code")
        if isinstance(code, bool) or not isinstance(code, int) or code < 300:
            return None
        return code, _message_of(payload) or "the answer says the call failed"

    def parse_error(self, response: httpx.Response) -> EspError:
        """Classify by HTTP status and, where the doc set overloads a status, by message.

        A 500 whose message says a field ``is required`` or is invalid is a validation error (the doc set
        reports missing send fields so); a 500 ``error`` on ``GET /emails/{id}`` is its documented not-found; a
        429 mentioning usage is the quota (never retried), any other 429 a rate limit; a 400 that says the
        contact or tag already ``exists`` is a conflict (the doc's catch-all "Invalid email or contact already
        exists" a validation error: the adapter looked the address up first); the body's ``code`` is the HTTP
        status, kept as is.
        """
        payload = json_or_text(response)
        status = response.status_code
        message = _message_of(payload)
        if message is None:
            text = payload if isinstance(payload, str) else ""
            message = text.strip()[:200] if text.strip() and not text.lstrip().startswith("<") else ""
            message = message or response.reason_phrase or f"HTTP {status}"
        kw: dict[str, Any] = {"provider": PROVIDER, "status": status, "code": None, "body": response.text[:2000]}
        try:
            method, path = response.request.method, response.request.url.path
        except RuntimeError:
            method, path = "", ""
        low = message.lower()
        if status == 401:
            return AuthError(message, **kw)
        if status == 403:
            return PermissionDeniedError(message, **kw)
        if status == 404:
            return NotFoundError(message, **kw)
        if status == 429:
            if QUOTA_TEXT.search(message):
                return QuotaError(message, **kw)
            return RateLimitError(message, retry_after=parse_retry_after(response.headers.get("Retry-After")), **kw)
        if status == 409 or (status == 400 and "exist" in low and "invalid" not in low):
            return ConflictError(message, **kw)  # the doc's "Invalid email or contact already exists" is neither
        if 400 <= status < 500:
            return ValidationError(message, **kw)
        if status >= 500:
            if QUOTA_TEXT.search(message):
                return QuotaError(message, **kw)
            if "is required" in low or low.startswith("invalid"):
                return ValidationError(message, **kw)
            if low == "error" and method == "GET" and "/emails/" in path:
                return NotFoundError(message, **kw)
            return ServerError(message, **kw)
        return EspError(message, **kw)


CURRENT_DIALECT = CurrentDialect()
