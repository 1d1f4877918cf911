"""SendPulse's error answers mapped to the typed errors of :mod:`espcore.errors`."""

from typing import Any
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
from espcore.http import json_or_text


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
