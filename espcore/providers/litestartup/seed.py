"""The seed dialect of LiteStartup's API: paths, envelopes and error mapping (the current one is in
:mod:`espcore.providers.litestartup.current`)."""

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

import httpx

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
from espcore.http import (
    AnswerMismatch,
    Shape,
    json_or_text,
    parse_retry_after,
)
from espcore.providers.litestartup.common import PROVIDER, QUOTA_TEXT, PageInfo
from espcore.providers.litestartup.constants import T
from espcore.providers.litestartup.models import _DONE, _LISTING, _SINGLE, _TEXT

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
