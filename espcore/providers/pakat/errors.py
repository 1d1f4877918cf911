"""Pakat's error answers mapped to the typed errors of :mod:`espcore.errors`."""

from typing import Any

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
