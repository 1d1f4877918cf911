"""Typed errors shared by every provider client.

Each error carries the provider name, the HTTP status, the provider's own error code and message, and (for
validation errors) per-field detail. Messages are redacted by the HTTP layer before an error is built, so an
error's text never holds a credential.
"""

from collections.abc import Mapping


class EspError(Exception):
    """Base class of every error a provider client raises."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | int | None = None,
        fields: Mapping[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        body: str | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code
        self.fields: dict[str, str] = dict(fields or {})
        self.method = method
        self.path = path
        self.body = body
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.provider:
            parts.append(f"[{self.provider}]")
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None and self.code != self.status:
            parts.append(f"code {self.code}")
        text = " ".join(parts)
        detail = self.message
        if self.fields:
            detail += " (" + "; ".join(f"{k}: {v}" for k, v in sorted(self.fields.items())) + ")"
        return f"{text}: {detail}" if text else detail

    def __reduce__(self):  # keep errors picklable across Dagster's process boundaries
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "provider": self.provider,
                    "status": self.status,
                    "code": self.code,
                    "fields": self.fields,
                    "method": self.method,
                    "path": self.path,
                    "body": self.body,
                },
                self.__dict__,
            ),
        )


def _rebuild(cls: type[EspError], message: str, kwargs: dict, state: dict) -> EspError:
    err = cls.__new__(cls)
    EspError.__init__(err, message, **kwargs)
    err.__dict__.update(state)
    return err


class AuthError(EspError):
    """Credentials missing, wrong or expired (after the one refresh the client allows)."""


class PermissionDeniedError(EspError):
    """Authenticated, but the plan or the account forbids the action (SendPulse 800, 3030303030)."""


class RateLimitError(EspError):
    """Too many requests; ``retry_after`` is the delay the provider asked for, in seconds, if any."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class QuotaError(EspError):
    """A balance, plan or sending quota is exhausted. Never retried: waiting a few seconds won't help."""


class ValidationError(EspError):
    """The provider refused the payload; ``fields`` maps field names to the provider's messages."""


class NotFoundError(EspError):
    """The book, contact, campaign or template does not exist."""


class ConflictError(EspError):
    """The object already exists or is in a state that forbids the change."""


class ServerError(EspError):
    """The provider failed (5xx). Retried for idempotent calls."""

    retryable = True


class TransportError(EspError):
    """Timeout, refused or dropped connection. ``sent`` says whether the request may have reached the server."""

    retryable = True

    def __init__(self, message: str, *, sent: bool = True, **kwargs) -> None:
        self.sent = sent
        super().__init__(message, **kwargs)


class OutcomeUnknownError(EspError):
    """A non-idempotent call may or may not have taken effect (timeout or 5xx after the request left).

    The caller must resolve it by looking the object up, never by resending.
    """


class UnexpectedResponseError(EspError):
    """A 2xx answer that is not the documented success shape: an HTML page, an empty or truncated body, JSON of
    the wrong type or with missing or mistyped fields, or the provider's error envelope sent with a success status.

    Never retried and never taken as success: whatever the call was about stays unacknowledged. ``status`` is the
    HTTP status, ``method`` and ``path`` the call (no query string), ``code`` the provider's error code when the
    body was an error envelope, and ``body`` a short excerpt with every known secret removed.
    """


class UnexpectedOutcomeError(UnexpectedResponseError, OutcomeUnknownError):
    """An unexpected answer to a write (POST, PUT, PATCH, DELETE): the request reached the provider, which may or
    may not have acted on it.

    Both an :class:`UnexpectedResponseError` and an :class:`OutcomeUnknownError`: a campaign launch records the
    outcome as unknown and resolves it by looking the campaign up, never by sending again; a sync leaves the rows
    pending, and the next run re-sends them (adds and removes of members are idempotent).
    """


class ConfigurationError(EspError):
    """The client was configured in a way that is unsafe or cannot work (e.g. a plain-http real URL)."""
