"""The shared HTTP policy: what is retried, how long it waits, what is never resent, what is never leaked."""

import logging
import traceback
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from typing_extensions import TypedDict

from espcore.errors import (
    ConfigurationError,
    EspError,
    OutcomeUnknownError,
    QuotaError,
    RateLimitError,
    ServerError,
    TransportError,
    UnexpectedOutcomeError,
    UnexpectedResponseError,
    ValidationError,
)
from espcore.http import (
    EXCERPT_CHARS,
    HttpPolicy,
    ProviderHttp,
    RateLimiter,
    Shape,
    check_base_url,
    parse_retry_after,
)
from espcore.providers.answers import answer

SECRET = "sk_live_SUPERSECRET_0123456789"


def _parser(resp: httpx.Response) -> EspError:
    status = resp.status_code
    body = resp.text
    if status == 429:
        return RateLimitError("slow down", body=body)
    if status == 402:
        return QuotaError("no quota", body=body)
    if status >= 500:
        return ServerError(f"server said {body}", body=body)
    return ValidationError(body, fields={"email": f"bad {body}"}, body=body)


class Script:
    """A transport answering from a list of callables/responses, recording every request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


def make(script: Script, sleeps: list[float], **policy) -> ProviderHttp:
    return ProviderHttp(
        "test",
        "http://127.0.0.1:9",
        policy=HttpPolicy(**policy),
        error_parser=_parser,
        auth_headers=lambda: {"Authorization": f"Bearer {SECRET}"},
        secrets=[SECRET],
        transport=httpx.MockTransport(script),
        sleep=sleeps.append,
    )


def test_plain_http_refused_for_real_hosts():
    with pytest.raises(ConfigurationError, match="https"):
        check_base_url("http://api.sendpulse.com")
    assert check_base_url("https://api.sendpulse.com/") == "https://api.sendpulse.com"
    assert check_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert check_base_url("http://localhost:1/x") == "http://localhost:1/x"
    assert check_base_url("http://[::1]:80") == "http://[::1]:80"


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(30.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_429_retry_after_is_honoured():
    sleeps: list[float] = []
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}, text="x"), httpx.Response(200, json={"ok": 1}))
    http = make(script, sleeps)
    assert http.request("GET", "/a").json() == {"ok": 1}
    assert sleeps == [3.0]
    assert len(script.requests) == 2


def test_429_http_date_retry_after_is_honoured():
    sleeps: list[float] = []
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    script = Script(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json={}))
    make(script, sleeps).request("GET", "/a")
    assert 15 < sleeps[0] <= 20


def test_5xx_backoff_is_exponential_with_jitter_and_bounded():
    sleeps: list[float] = []
    script = Script(httpx.Response(503, text="down"))
    http = make(script, sleeps, max_attempts=5, backoff_initial_s=1, backoff_max_s=4)
    with pytest.raises(ServerError):
        http.request("GET", "/a")
    assert len(script.requests) == 5
    assert len(sleeps) == 4
    for i, s in enumerate(sleeps):
        assert 0 <= s <= min(4, 2**i)


def test_retry_budget_stops_early():
    sleeps: list[float] = []
    script = Script(httpx.Response(429, headers={"Retry-After": "50"}))
    http = make(script, sleeps, max_attempts=10, retry_budget_s=120)
    with pytest.raises(RateLimitError) as info:
        http.request("GET", "/a")
    assert info.value.retry_after == 50
    assert sum(sleeps) <= 120
    assert len(script.requests) == 3  # 0, 50, 100: the next wait would pass the budget


def test_validation_and_quota_are_not_retried():
    for status, err in ((422, ValidationError), (402, QuotaError)):
        sleeps: list[float] = []
        script = Script(httpx.Response(status, text="nope"))
        with pytest.raises(err):
            make(script, sleeps).request("GET", "/a")
        assert len(script.requests) == 1
        assert sleeps == []


def test_timeouts_and_resets_retried_for_idempotent_calls():
    sleeps: list[float] = []
    script = Script(
        httpx.ReadTimeout("t"),
        httpx.RemoteProtocolError("reset"),
        httpx.ConnectError("c"),
        httpx.Response(200, json={}),
    )
    make(script, sleeps).request("PUT", "/a", json={})
    assert len(script.requests) == 4


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("t"), httpx.RemoteProtocolError("reset"), httpx.Response(502, text="bad gateway")],
    ids=["timeout", "reset", "502"],
)
def test_non_idempotent_call_is_never_resent_after_it_may_have_left(failure):
    sleeps: list[float] = []
    script = Script(failure, httpx.Response(200, json={"id": 1}))
    with pytest.raises(OutcomeUnknownError, match="look it up"):
        make(script, sleeps).request("POST", "/campaigns", json={"x": 1})
    assert len(script.requests) == 1


def test_non_idempotent_call_retried_when_it_never_left():
    sleeps: list[float] = []
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json={"id": 1}))
    assert make(script, sleeps).request("POST", "/campaigns", json={}).json() == {"id": 1}
    assert len(script.requests) == 2


def test_non_idempotent_429_not_retried():
    sleeps: list[float] = []
    script = Script(httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(200, json={}))
    with pytest.raises(RateLimitError):
        make(script, sleeps).request("POST", "/campaigns", json={})
    assert len(script.requests) == 1


def test_post_marked_idempotent_is_retried():
    sleeps: list[float] = []
    script = Script(httpx.Response(500, text="x"), httpx.Response(200, json={}))
    make(script, sleeps).request("POST", "/emails", json={}, idempotent=True)
    assert len(script.requests) == 2


def test_connect_failure_is_a_transport_error():
    sleeps: list[float] = []
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(TransportError) as info:
        make(script, sleeps, max_attempts=2).request("GET", "/a")
    assert info.value.sent is False


def test_401_refreshes_once_then_raises():
    calls = {"refresh": 0}

    def refresh() -> bool:
        calls["refresh"] += 1
        return True

    script = Script(httpx.Response(401, text="no"))
    http = ProviderHttp(
        "t",
        "http://127.0.0.1:1",
        error_parser=lambda r: EspError("unauthorised"),
        auth_headers=lambda: {},
        on_auth_failure=refresh,
        transport=httpx.MockTransport(script),
        sleep=lambda s: None,
    )
    with pytest.raises(EspError):
        http.request("GET", "/a")
    assert calls["refresh"] == 1
    assert len(script.requests) == 2


def test_rate_limiter_paces_calls():
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    limiter = RateLimiter(10.0, clock=lambda: t[0], sleep=sleep)
    for _ in range(21):
        limiter.acquire()
    assert t[0] == pytest.approx(2.0)  # 21 calls at 10/s: the first is free


def test_secret_never_leaks(caplog):
    """A provider echoing the secret back: errors, logs and reprs must still not show it."""
    caplog.set_level(logging.DEBUG)
    sleeps: list[float] = []
    echo = Script(lambda req: httpx.Response(500, text=f"bad token {req.headers['Authorization']}"))
    http = make(echo, sleeps, max_attempts=2)
    with pytest.raises(ServerError) as info:
        http.request("GET", "/a")
    echo422 = Script(lambda req: httpx.Response(422, text=f"{req.headers['Authorization']}"))
    with pytest.raises(ValidationError) as info2:
        make(echo422, sleeps).request("GET", "/a")
    emitted = [
        str(info.value),
        repr(info.value),
        info.value.body or "",
        str(info2.value),
        repr(info2.value.fields),
        info2.value.body or "",
        repr(http),
        caplog.text,
    ]
    for text in emitted:
        assert SECRET not in text
    assert "***" in str(info.value)


# -- answers checked against their documented shape -----------------------------------------------------------------


@answer
class _Thing(TypedDict):
    id: int
    name: str


THING: Shape[_Thing] = Shape(_Thing)


def _answering(status: int, content: bytes, content_type: str = "application/json") -> ProviderHttp:
    return make(Script(httpx.Response(status, content=content, headers={"Content-Type": content_type})), [])


def test_call_returns_the_checked_answer():
    http = _answering(200, b'{"id": "7", "name": "seven", "extra": [1]}')
    assert http.call("GET", "/things/7", THING) == {"id": 7, "name": "seven", "extra": [1]}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the body is empty"),
        (b"<html><body>Whoops</body></html>", "the body is not JSON (text/html)"),
        (b'{"id": 7', "the body is not JSON"),
        (b"[]", "the body: Input should be a valid dictionary"),
        (b'{"id": 7}', "name: Field required"),
        (b'{"id": "seven", "name": "x"}', "id: Input should be a valid integer"),
    ],
)
def test_a_2xx_that_is_not_the_documented_shape_is_an_unexpected_response(content: bytes, problem: str):
    ctype = "text/html" if content.startswith(b"<") else "application/json"
    with pytest.raises(UnexpectedResponseError) as info:
        _answering(200, content, ctype).call("GET", "/things/7", THING, params={"q": "x"})
    err = info.value
    assert problem in err.message
    assert (err.status, err.method, err.path, err.provider) == (200, "GET", "/things/7", "test")
    assert not isinstance(err, OutcomeUnknownError)
    assert not err.retryable
    assert err.__context__ is None
    assert err.__cause__ is None
    assert err.body is not None
    assert len(err.body) <= EXCERPT_CHARS


def test_an_unexpected_answer_to_a_write_may_have_taken_effect():
    http = _answering(200, b"<html>ok?</html>", "text/html")
    with pytest.raises(UnexpectedOutcomeError) as info:
        http.call("POST", "/things", THING, json={"name": "x"}, idempotent=True)
    assert isinstance(info.value, OutcomeUnknownError)
    assert "may have taken effect" in info.value.message
    # a read sent as a POST says so
    with pytest.raises(UnexpectedResponseError) as read:
        http.call("POST", "/things/search", THING, json={"name": "x"}, changes=False)
    assert not isinstance(read.value, OutcomeUnknownError)


def test_unexpected_answer_excerpt_is_short_flat_and_redacted():
    page = b"<html>\n\n<p>token " + SECRET.encode() + b"</p>" + b"x" * 5000 + b"</html>"
    with pytest.raises(UnexpectedResponseError) as info:
        _answering(200, page, "text/html").call("GET", "/a", THING)
    body = info.value.body or ""
    assert SECRET not in body
    assert "\n" not in body
    assert len(body) == EXCERPT_CHARS
    assert body.endswith("…")


def test_error_envelope_at_200_is_named():
    http = ProviderHttp(
        "test",
        "http://127.0.0.1:9",
        error_parser=_parser,
        error_envelope=lambda p: (p["code"], p["error"]) if isinstance(p, dict) and "error" in p else None,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"error": "Nope", "code": "E1"})),
        sleep=lambda s: None,
    )
    with pytest.raises(UnexpectedResponseError) as info:
        http.call("GET", "/a", THING)
    assert info.value.code == "E1"
    assert "HTTP 200 with an error answer: Nope" in str(info.value)


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_transport_errors_keep_nothing_of_the_httpx_request(failure, method):
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure(f"failed with {request.headers['Authorization']}", request=request)

    with pytest.raises(EspError) as info:
        make(Script(fail), [], max_attempts=2).request(method, "/a")
    err = info.value
    assert isinstance(err, TransportError | OutcomeUnknownError)
    assert err.__context__ is None
    assert err.__cause__ is None
    assert SECRET not in str(err)
    assert SECRET not in "".join(traceback.format_exception(err))
