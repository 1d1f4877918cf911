"""One HTTP policy for every provider.

* Timeouts on every call.
* Retries only for transient failures: connect/read timeouts, connection errors, 5xx and 429, with
  ``Retry-After`` honoured (seconds or HTTP-date), otherwise exponential backoff with full jitter, bounded by
  a number of attempts and a total time budget.
* Non-idempotent calls (campaign creates and sends) are never resent once they may have reached the server:
  a timeout or a 5xx after the request left becomes :class:`OutcomeUnknownError`.
* A client-side rate limiter per provider account.
* Credentials are redacted from every message, log line and error.
"""

import email.utils
import ipaddress
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from espcore.errors import (
    ConfigurationError,
    EspError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    TransportError,
)

log = logging.getLogger("espcore.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


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


ErrorParser = Callable[[httpx.Response], EspError]
AuthHook = Callable[[], Mapping[str, str]]


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

    ``error_parser`` turns a non-2xx response into the right :class:`EspError` subclass; it is the only
    provider-specific part. ``auth_headers`` is called before each attempt (so a refreshed token is picked
    up); ``on_auth_failure`` is called once on a 401 and, if it returns True, the call is repeated once.
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
        try:
            return self._client.request(method, path, headers=all_headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransportError(
                self.redact(f"could not connect: {type(exc).__name__}"),
                provider=self.provider,
                method=method,
                path=path,
                sent=False,
            ) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if not safe:
                raise OutcomeUnknownError(
                    f"{type(exc).__name__} after the request was sent — it may have taken effect; "
                    "look it up before acting again",
                    provider=self.provider,
                    method=method,
                    path=path,
                ) from None
            raise TransportError(
                self.redact(f"{type(exc).__name__} during the call"),
                provider=self.provider,
                method=method,
                path=path,
                sent=True,
            ) from None

    def _finish_error(self, err: EspError, method: str, path: str, response: httpx.Response) -> None:
        err.provider = self.provider
        err.method = method
        err.path = path
        err.status = response.status_code if err.status is None else err.status
        err.message = self.redact(err.message)
        err.fields = {k: self.redact(v) for k, v in err.fields.items()}
        if err.body is not None:
            err.body = self.redact(err.body)[:2000]
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
