"""One HTTP policy for every provider.

* Timeouts on every call.
* Retries only for transient failures: connect/read timeouts, connection errors, 5xx and 429, with
  ``Retry-After`` honoured (seconds or HTTP-date), otherwise exponential backoff with full jitter, bounded by
  a number of attempts and a total time budget.
* Non-idempotent calls (campaign creates and sends) are never resent once they may have reached the server:
  a timeout or a 5xx after the request left becomes :class:`OutcomeUnknownError`.
* A client-side rate limiter per provider account.
* Every 2xx answer is checked against the call's documented success shape (:meth:`ProviderHttp.call`); anything
  else (an HTML page, an empty or truncated body, the provider's error envelope sent with 200, wrong types) is an
  :class:`UnexpectedResponseError`, never a success and never a raw Python exception.
* Credentials are redacted from every message, log line and error, and no error the clients raise keeps the
  httpx request (which carries them) in its exception chain.
"""

import contextlib
import email.utils
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from espcore.errors import (
    ConfigurationError,
    EspError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedOutcomeError,
    UnexpectedResponseError,
)

log = logging.getLogger("espcore.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
#: characters of an unexpected answer's body kept in :attr:`UnexpectedResponseError.body`
EXCERPT_CHARS = 300

T = TypeVar("T")


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retry budget and rate limit for one provider client."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_attempts: int = 6
    retry_budget_s: float = 90.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    requests_per_second: float | None = None
    burst: int = 1

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str) -> str:
    """Return the URL without a trailing slash; refuse plain http anywhere but loopback."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base URL must be an absolute http(s) URL, got {base_url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http for {parts.hostname}: real provider URLs must use https "
            "(plain http is only allowed for a loopback sandbox)"
        )
    return base_url.rstrip("/")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if absent/garbled."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """Thread-safe token bucket: at most ``rate`` acquisitions per second, bursts of ``burst``."""

    def __init__(
        self,
        rate: float | None,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1, burst)
        self._tokens = float(self.capacity)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping as needed; returns the seconds waited."""
        if not self.rate:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


_SENSITIVE_NAME = r"[\w-]*(?:token|secret|api[_-]?key|password|passwd|authorization)[\w-]*"
#: (pattern, replacement) pairs masking the values of secret-looking fields in a provider's answer
_SECRET_FIELDS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "access_token": "…", "client_secret": "…" (JSON, escaped quotes included)
    (re.compile(rf'("{_SENSITIVE_NAME}"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE), r'\1"***"'),
    # access_token=…, client_secret=… (forms and query strings)
    (re.compile(rf"(\b{_SENSITIVE_NAME}=)[^&\s\"'<>]+", re.IGNORECASE), r"\1***"),
    # Authorization: Bearer …, X-API-KEY: … (request headers echoed in a debug page)
    (re.compile(r"(\bbearer\s+)[\w.~+/=-]+", re.IGNORECASE), r"\1***"),
    (re.compile(rf"(\b{_SENSITIVE_NAME}\s*:\s*)(?!\*\*\*)[^\s\"',;<>]+", re.IGNORECASE), r"\1***"),
)


class Redactor:
    """Replaces every registered secret with ``***`` in any text."""

    MASK = "***"

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in text:
                text = text.replace(s, self.MASK)
        return text

    def body(self, text: str, limit: int = 2000) -> str:
        """A provider's answer made safe to keep in an error, cut to ``limit`` characters: the known secrets and
        the values of secret-looking fields (``access_token``, ``client_secret``, ``secret``, ``api_key``,
        ``Authorization: Bearer …``, even ones this client never saw) are masked."""
        text = self(text)
        for pattern, replacement in _SECRET_FIELDS:
            text = pattern.sub(replacement, text)
        return text[:limit]

    def excerpt(self, text: str, limit: int = EXCERPT_CHARS) -> str:
        """:meth:`body` with runs of white space collapsed and cut short (ending with ``…`` when cut)."""
        flat = " ".join(self.body(text, len(text)).split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"


ErrorParser = Callable[[httpx.Response], EspError]
AuthHook = Callable[[], Mapping[str, str]]
#: reads a provider's error envelope from a decoded body: ``(code, message)``, or None when it is not one
EnvelopeReader = Callable[[Any], "tuple[str | int | None, str] | None"]


class AnswerMismatch(Exception):
    """Raised by an answer parser when a decoded body is not the documented success shape.

    :meth:`ProviderHttp.call` turns it into :class:`UnexpectedResponseError`; it never leaves this package.
    ``problem`` names the first mismatch without quoting any value from the body.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class Shape(Generic[T]):
    """The documented success shape of an answer (or of a part of one): a pydantic type, compiled on first use.

    Calling it validates a decoded body and returns the value; a mismatch raises :class:`AnswerMismatch`
    naming the first bad field (prefixed with ``at``, the place of the value in the whole answer).
    """

    def __init__(self, tp: Any) -> None:
        """``tp`` is any type pydantic validates (a ``TypedDict``, ``list[...]``, a union, ``Annotated``); declare
        the variable holding the shape as ``Shape[tp]``, so type checkers know what a call returns."""
        self._tp = tp
        self._adapter: TypeAdapter[T] | None = None

    def __call__(self, value: Any, *, at: str = "") -> T:
        adapter = self._adapter
        if adapter is None:
            adapter = self._adapter = TypeAdapter(self._tp)
        try:
            return adapter.validate_python(value)
        except PydanticValidationError as exc:
            problem = describe_mismatch(exc, at=at)
        raise AnswerMismatch(problem)  # outside the handler: the pydantic error (which quotes the body) is not kept

    def __repr__(self) -> str:
        return f"Shape({self._tp!r})"


def describe_mismatch(exc: PydanticValidationError, *, at: str = "") -> str:
    """``data.0.id: Field required (and 2 more)``: the first error's place and message, never the input value."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if not errors:
        return "the body does not match"
    first = errors[0]
    loc = ".".join(str(part) for part in ((at,) if at else ()) + tuple(first["loc"]))
    text = f"{loc or 'the body'}: {first['msg']}"
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


Expect = Callable[[Any], T]
_NOT_JSON = object()


@dataclass
class CallStats:
    """Counters a caller (benchmarks, tests, metadata) can read; safe to bump from several threads."""

    requests: int = 0
    retries: int = 0
    writes: int = 0
    waited_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)


class ProviderHttp:
    """An httpx client bound to one provider account and the shared policy.

    ``error_parser`` turns a non-2xx response into the right :class:`EspError` subclass; it and
    ``error_envelope`` (which recognises the provider's error envelope in a 2xx body, to name it in an
    :class:`UnexpectedResponseError`) are the provider-specific parts. ``auth_headers`` is called before each
    attempt (so a refreshed token is picked up); ``on_auth_failure`` is called once on a 401 and, if it returns
    True, the call is repeated once.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        policy: HttpPolicy | None = None,
        error_parser: ErrorParser,
        auth_headers: AuthHook | None = None,
        on_auth_failure: Callable[[], bool] | None = None,
        error_envelope: EnvelopeReader | None = None,
        secrets: Iterable[str | None] = (),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "esp-warehouse/0.1",
    ) -> None:
        self.provider = provider
        self.base_url = check_base_url(base_url)
        self.policy = policy or HttpPolicy()
        self.redact = Redactor(secrets)
        self._parse_error = error_parser
        self._error_envelope = error_envelope
        self._auth_headers = auth_headers
        self._on_auth_failure = on_auth_failure
        self._sleep = sleep
        self.limiter = RateLimiter(self.policy.requests_per_second, self.policy.burst, sleep=sleep)
        self.stats = CallStats()
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=self.policy.timeout(),
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ProviderHttp(provider={self.provider!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    # -- the one entry point ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send one logical call under the policy and return the 2xx response, or raise an EspError.

        ``idempotent`` defaults from the method (GET/PUT/DELETE yes, POST/PATCH no). A caller marks a POST
        safe (``idempotent=True``) only when resending it cannot double an effect, e.g. an upsert by email.
        """
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        if method not in ("GET", "HEAD"):
            self.stats.add("writes")

        def attempt() -> httpx.Response:
            return self._attempt(
                method,
                path,
                safe=safe,
                authenticated=authenticated,
                params=params,
                json=json,
                data=data,
                files=files,
                content=content,
                headers=headers,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts) | _StopBeforeBudget(self.policy.retry_budget_s),
            wait=self._wait,
            retry=retry_if_exception(lambda e: _should_retry(e, safe)),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(attempt)

    def call(
        self,
        method: str,
        path: str,
        expect: Expect[T],
        *,
        idempotent: bool | None = None,
        changes: bool | None = None,
        **kwargs: Any,
    ) -> T:
        """:meth:`request`, then the 2xx answer checked against the call's documented success shape.

        ``expect`` is a :class:`Shape`, or any function of the decoded JSON body that returns the value or
        raises :class:`AnswerMismatch` (or a pydantic ``ValidationError``). An empty, non-JSON or mismatching body
        raises :class:`UnexpectedResponseError` (:class:`UnexpectedOutcomeError` for a write, which may have
        taken effect). ``changes`` says whether the call changes anything at the provider (default: every method
        but GET, HEAD and OPTIONS); a read sent as a POST passes False.
        """
        method = method.upper()
        response = self.request(method, path, idempotent=idempotent, **kwargs)
        return self.check(response, expect, method=method, path=path, changes=changes)

    def check(
        self, response: httpx.Response, expect: Expect[T], *, method: str, path: str, changes: bool | None = None
    ) -> T:
        """The value ``expect`` makes of ``response``'s JSON body, or :class:`UnexpectedResponseError`."""
        payload: Any = _NOT_JSON
        if response.content.strip():
            with contextlib.suppress(ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, deep nesting
                payload = json.loads(response.content)
        if payload is _NOT_JSON:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
            problem = f"the body is not JSON ({kind})" if response.content.strip() else "the body is empty"
            payload = None
        else:
            try:
                return expect(payload)
            except AnswerMismatch as exc:
                problem = exc.problem
            except PydanticValidationError as exc:
                problem = describe_mismatch(exc)
        # raised outside the handlers above: nothing of the body's parsing is chained to the error
        raise self.unexpected(
            method=method,
            path=path,
            problem=problem,
            status=response.status_code,
            text=response.text,
            payload=payload,
            changes=changes,
        )

    def unexpected(
        self,
        *,
        method: str,
        path: str,
        problem: str,
        status: int | None,
        text: str = "",
        payload: Any = None,
        changes: bool | None = None,
    ) -> UnexpectedResponseError:
        """The error for an answer that is not the documented success shape (see :meth:`check`): ``text`` is the
        body (kept as a redacted excerpt), ``payload`` the decoded JSON, if any. The answer to a call that changes
        something (``changes``, by default every method but GET, HEAD and OPTIONS) is an
        :class:`UnexpectedOutcomeError`: the provider may have acted on it."""
        method = method.upper()
        if changes is None:
            changes = method not in READ_METHODS
        envelope = self._error_envelope(payload) if payload is not None and self._error_envelope else None
        code: str | int | None = None
        if envelope is not None:
            code, said = envelope
            message = f"HTTP {status} with an error answer: {said or 'no message'}"
        else:
            message = f"the answer is not the documented success shape: {problem}"
        cls = UnexpectedResponseError
        if changes:
            cls = UnexpectedOutcomeError
            message += "; the request reached the provider and may have taken effect"
        return cls(
            self.redact(message),
            provider=self.provider,
            status=status,
            code=code,
            method=method,
            path=path,
            body=self.redact.excerpt(text),
        )

    # -- internals ------------------------------------------------------------------------------------------

    def _attempt(self, method: str, path: str, *, safe: bool, authenticated: bool, **kwargs: Any) -> httpx.Response:
        auth_retry_left = authenticated and self._on_auth_failure is not None
        while True:
            response = self._send_once(method, path, safe=safe, authenticated=authenticated, **kwargs)
            if response.status_code == 401 and auth_retry_left:
                auth_retry_left = False
                assert self._on_auth_failure is not None
                if self._on_auth_failure():
                    log.info("%s: %s %s got 401, token refreshed, repeating once", self.provider, method, path)
                    continue
            if response.is_success:
                return response
            err = self._parse_error(response)
            self._finish_error(err, method, path, response)
            if not safe and isinstance(err, ServerError):
                raise OutcomeUnknownError(
                    f"{err.message} — the request may have taken effect; look it up before acting again",
                    provider=self.provider,
                    status=err.status,
                    code=err.code,
                    method=method,
                    path=path,
                    body=err.body,
                ) from err
            raise err

    def _send_once(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        authenticated: bool,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        self.stats.add("waited_s", self.limiter.acquire())
        all_headers: dict[str, str] = {}
        if authenticated and self._auth_headers is not None:
            all_headers.update(self._auth_headers())
        if headers:
            all_headers.update(headers)
        self.stats.add("requests")
        # httpx's exceptions hold the request, and with it the credentials (headers, the OAuth body). The errors
        # below are raised after the handlers have ended, so not even __context__ keeps them.
        try:
            return self._client.request(method, path, headers=all_headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            failure, sent = type(exc).__name__, False
        except httpx.DecodingError as exc:  # the answer came, but its content encoding is broken
            failure, sent = type(exc).__name__, None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            failure, sent = type(exc).__name__, True
        except (httpx.ProxyError, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            failure, sent = type(exc).__name__, False  # refused before anything was sent
        if sent is None:
            problem = f"the body cannot be decoded ({failure})"
            raise self.unexpected(method=method, path=path, problem=problem, status=None)
        if not sent:
            raise TransportError(
                self.redact(f"could not connect: {failure}"),
                provider=self.provider,
                method=method,
                path=path,
                sent=False,
            )
        if not safe:
            raise OutcomeUnknownError(
                f"{failure} after the request was sent — it may have taken effect; look it up before acting again",
                provider=self.provider,
                method=method,
                path=path,
            )
        raise TransportError(
            self.redact(f"{failure} during the call"),
            provider=self.provider,
            method=method,
            path=path,
            sent=True,
        )

    def _finish_error(self, err: EspError, method: str, path: str, response: httpx.Response) -> None:
        err.provider = self.provider
        err.method = method
        err.path = path
        err.status = response.status_code if err.status is None else err.status
        err.message = self.redact(err.message)
        err.fields = {k: self.redact(v) for k, v in err.fields.items()}
        if err.body is not None:
            err.body = self.redact.body(err.body)
        if isinstance(err, RateLimitError) and err.retry_after is None:
            err.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        err.args = (err._render(),)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.max_retry_after_s)
        ceiling = min(self.policy.backoff_max_s, self.policy.backoff_initial_s * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # full jitter

    def _log_retry(self, state: RetryCallState) -> None:
        self.stats.add("retries")
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d failed (%s), retrying in %.2fs",
            self.provider,
            state.attempt_number,
            self.redact(str(exc)),
            delay,
        )


class _StopBeforeBudget(stop_base):
    """Stop when the next wait would pass the total budget (real time, or the slept time if larger)."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + (retry_state.upcoming_sleep or 0.0) > self.budget_s


class ProviderClient:
    """What every provider client shares: its :class:`ProviderHttp` and the close/context-manager plumbing."""

    http: ProviderHttp

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _should_retry(exc: BaseException, safe: bool) -> bool:
    if isinstance(exc, TransportError):
        return safe or not exc.sent
    if isinstance(exc, RateLimitError):
        return safe
    if isinstance(exc, ServerError):
        return safe
    return False


def json_or_text(response: httpx.Response) -> Any:
    """The decoded JSON body, or the raw text when the body is not JSON (e.g. an HTML 500 page)."""
    try:
        return response.json()
    except ValueError:
        return response.text
