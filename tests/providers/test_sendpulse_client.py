"""SendPulseClient against the SendPulse sandbox.

Every client method runs at least once over real loopback HTTP (one module-scoped uvicorn server whose sandbox
state is reset per test); fault injection mostly runs in-process, where an injected timeout is instant. Nothing
sleeps for real: the client's ``sleep`` is a recorder and its token ``clock`` a fake.
"""

import base64
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from espcore.errors import (
    AuthError,
    ConflictError,
    EspError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from espcore.http import HttpPolicy
from espcore.providers.sendpulse import (
    SENDPULSE_BASE_URL,
    CampaignCreated,
    EmailToAdd,
    HourlyCampaignLimitError,
    SendPulseClient,
    parse_error,
)
from espcore.providers.sendpulse import models as sendpulse_models
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SENDER_EMAIL, SendPulseSandbox
from espcore.sandbox.server import SandboxServer, quiet_uvicorn_errors, serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
NO_LIMITER = HttpPolicy(requests_per_second=None)
SENDER_NAME = "Sandbox Demo"
HTML = '<html><body><p>Hi</p><a href="https://example.org/a">a</a></body></html>'
# Recognisable fake credentials: they must never show up in errors, reprs or logs.
LEAK_ID = "acme-client-id-LEAKCANARY"
LEAK_SECRET = "s3cr3t-LEAKCANARY-7f2a9c41"
WRONG_SECRET = "wrong-LEAKCANARY-secret-0b1d"
CANARY = "LEAKCANARY"


# -- doubles ----------------------------------------------------------------------------------------------------


class SleepRecorder:
    """Stands in for ``time.sleep``: records each delay; optionally moves the sandbox clock by as much."""

    def __init__(self, sb: SendPulseSandbox | None = None) -> None:
        self.sb = sb
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.sb is not None:
            self.sb.advance(seconds)


class FakeClock:
    """The client's monotonic clock, moved by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Wire(InProcessTransport):
    """The in-process transport, logging every request that leaves the client (including ones that time out,
    which the sandbox's own ``request_log`` does not record in-process)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.log: list[tuple[str, str]] = []
        self.on_request: Any = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.log.append((request.method, request.url.path))
        if self.on_request is not None:
            self.on_request(request)
        return super().handle_request(request)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.log if m == method and p == path)


def logged(sb: SendPulseSandbox, method: str, path: str, status: int | None = None) -> int:
    """Requests the sandbox answered (method, exact path, optional status)."""
    return sum(1 for m, p, s in sb.request_log if m == method and p == path and (status is None or s == status))


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_sandbox() -> SendPulseSandbox:
    return SendPulseSandbox(seed=7, rate_limit=False)


@pytest.fixture(scope="module")
def server(live_sandbox: SendPulseSandbox) -> Iterator[SandboxServer]:
    quiet_uvicorn_errors()
    with serve(live_sandbox.app) as srv:
        yield srv


@pytest.fixture
def live_sb(live_sandbox: SendPulseSandbox) -> SendPulseSandbox:
    """The loopback server's sandbox, as a fresh demo account with a frozen clock and no faults."""
    live_sandbox.reset()
    live_sandbox.request_log.clear()
    live_sandbox.freeze_clock(T0)
    return live_sandbox


@pytest.fixture
def recorder() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def live(
    live_sb: SendPulseSandbox, server: SandboxServer, recorder: SleepRecorder, clock: FakeClock
) -> Iterator[SendPulseClient]:
    c = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, server.url, policy=NO_LIMITER, sleep=recorder, clock=clock)
    yield c
    c.close()


@pytest.fixture
def sb() -> SendPulseSandbox:
    s = SendPulseSandbox(seed=7, rate_limit=False)
    s.freeze_clock(T0)
    return s


@pytest.fixture
def wire(sb: SendPulseSandbox) -> Wire:
    return Wire(sb.app)


def make_client(
    sb: SendPulseSandbox | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
    sleep: SleepRecorder | None = None,
    clock: FakeClock | None = None,
    policy: HttpPolicy = NO_LIMITER,
    base_url: str = SENDPULSE_BASE_URL,
) -> SendPulseClient:
    if transport is None:
        assert sb is not None
        transport = InProcessTransport(sb.app)
    return SendPulseClient(
        client_id,
        client_secret,
        base_url,
        policy=policy,
        transport=transport,
        sleep=sleep or SleepRecorder(),
        clock=clock or FakeClock(),
    )


@pytest.fixture
def client(wire: Wire, recorder: SleepRecorder, clock: FakeClock) -> Iterator[SendPulseClient]:
    c = make_client(transport=wire, sleep=recorder, clock=clock)
    yield c
    c.close()


def new_book(client: SendPulseClient, name: str, emails: list[str]) -> int:
    book_id = client.create_book(name)
    if emails:
        client.add_emails(book_id, [EmailToAdd(e) for e in emails])
    return book_id


def create(client: SendPulseClient, book_id: int, name: str = "Launch ck-1", **kw: Any) -> CampaignCreated:
    kw.setdefault("body_html", HTML)
    return client.create_campaign(
        sender_name=SENDER_NAME, sender_email=DEMO_SENDER_EMAIL, subject="Hello", book_id=book_id, name=name, **kw
    )


# -- construction and parse_error -------------------------------------------------------------------------------


def test_constructor_refuses_missing_credentials_bad_zone_and_plain_http() -> None:
    with pytest.raises(AuthError):
        SendPulseClient("", DEMO_CLIENT_SECRET)
    with pytest.raises(AuthError):
        SendPulseClient(DEMO_CLIENT_ID, "")
    with pytest.raises(EspError, match="plain http"):
        SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "http://api.sendpulse.com")
    with pytest.raises(EspError, match="Mars/Olympus"):
        SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, account_timezone="Mars/Olympus")


def _resp(status: int, body: Any, *, html: bool = False) -> httpx.Response:
    request = httpx.Request("GET", "https://api.sendpulse.com/x")
    if html:
        return httpx.Response(status, text=body, headers={"content-type": "text/html"}, request=request)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (
            422,
            {"message": "You can create no more than 4 campaigns per hour", "error_code": 791},
            HourlyCampaignLimitError,
            791,
        ),
        (403, {"message": "Not enough money on your balance", "error_code": 707}, QuotaError, 707),
        (403, {"message": "Recipients exceed the limit", "error_code": 708}, QuotaError, 708),
        (404, {"message": "Book not found", "error_code": 213}, NotFoundError, 213),
        (404, {"message": "Campaign not found", "error_code": 802}, NotFoundError, 802),
        (422, {"message": "Name already in use", "error_code": 203}, ConflictError, 203),
        (422, {"message": "Campaign cannot be cancelled", "error_code": 602}, ConflictError, 602),
        (422, {"message": "Argument limit may not be greater than 100", "error_code": 422}, ValidationError, 422),
        (403, {"message": "Unauthorized action.", "error_code": 800}, PermissionDeniedError, 800),
        (429, {"message": "More than 10 requests per second", "error_code": 2020202020}, RateLimitError, 2020202020),
        (401, {"message": "Unauthorized!", "error_code": 401}, AuthError, 401),
        (401, {"error": "invalid_client", "error_description": "Client authentication failed"}, AuthError, 401),
        (422, [{"message": "Argument email is invalid", "error_code": 422}], ValidationError, 422),
        (503, {"message": "Service Unavailable", "error_code": 503}, ServerError, 503),
    ],
)
def test_parse_error_maps_codes(status: int, body: Any, kind: type[EspError], code: int) -> None:
    err = parse_error(_resp(status, body))
    assert type(err) is kind
    assert err.code == code
    assert err.status == status


def test_parse_error_html_500_keeps_raw_body() -> None:
    page = "<html><body>Whoops, looks like something went wrong.</body></html>"
    err = parse_error(_resp(500, page, html=True))
    assert isinstance(err, ServerError)
    assert err.body == page
    assert err.code == 500


# -- OAuth token --------------------------------------------------------------------------------------------------


@pytest.mark.network
def test_token_is_cached(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    assert live.access_token_expires_in() == 0.0
    live.balance()
    live.balance_detail()
    live.list_senders()
    assert logged(live_sb, "POST", "/oauth/access_token") == 1
    assert live.access_token_expires_in() == pytest.approx(3600.0)


@pytest.mark.network
def test_token_refreshed_before_expiry_without_a_401(
    live: SendPulseClient, live_sb: SendPulseSandbox, clock: FakeClock
) -> None:
    live.balance()
    # Both clocks pass the TTL: the client must renew on its own clock before sending, never meet a 401.
    live_sb.advance(3700)
    clock.advance(3700)
    live.balance()
    assert logged(live_sb, "POST", "/oauth/access_token") == 2
    # Inside the 60 s margin the token is renewed too, although the sandbox would still take it.
    clock.advance(3600 - 59)
    live.balance()
    assert logged(live_sb, "POST", "/oauth/access_token") == 3
    assert logged(live_sb, "GET", "/balance", 401) == 0


def test_token_lifetime_counts_from_the_request_not_the_answer(sb: SendPulseSandbox) -> None:
    clock = FakeClock(0.0)
    wire = Wire(sb.app)

    def slow_token_endpoint(request: httpx.Request) -> None:
        if request.url.path == "/oauth/access_token":
            clock.advance(50)  # the token answer takes 50 s to arrive

    wire.on_request = slow_token_endpoint
    c = make_client(transport=wire, clock=clock)
    c.balance()
    # issued at t=0 for 3600 s: at most 3600 - 50 s left once the answer arrives
    assert c.access_token_expires_in() <= 3550.0
    clock.advance(3550 - 60)
    c.balance()
    assert wire.count("POST", "/oauth/access_token") == 2


@pytest.mark.network
def test_token_refreshed_once_after_a_401(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    live.balance()
    assert live_sb.hook("revoke_tokens") == 1
    assert live.balance().currency == "USD"
    assert logged(live_sb, "GET", "/balance", 401) == 1
    assert logged(live_sb, "POST", "/oauth/access_token") == 2
    # a 401 means nothing happened, so even a campaign create is repeated once: one campaign results
    book_id = new_book(live, "b", ["a@example.com"])
    live_sb.hook("revoke_tokens")
    create(live, book_id)
    assert logged(live_sb, "POST", "/campaigns", 401) == 1
    assert logged(live_sb, "POST", "/campaigns", 200) == 1
    assert len(list(live.list_campaigns())) == 1


def test_threads_meeting_a_401_together_refresh_once(sb: SendPulseSandbox) -> None:
    threads = 4
    wire = Wire(sb.app)
    c = make_client(transport=wire)
    c.balance()
    old = f"Bearer {c._token}"
    barrier = threading.Barrier(threads, timeout=10)

    def together(request: httpx.Request) -> None:
        if request.headers.get("authorization") == old and request.url.path == "/balance":
            barrier.wait()  # every thread sends the revoked token before any of them refreshes

    wire.on_request = together
    sb.hook("revoke_tokens")
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: c.balance().currency, range(threads)))
    assert results == ["USD"] * threads
    assert logged(sb, "GET", "/balance", 401) == threads
    assert wire.count("POST", "/oauth/access_token") == 2  # the first token, then one renewal for all


def test_still_401_after_the_refresh_is_auth_error(client: SendPulseClient, sb: SendPulseSandbox, wire: Wire) -> None:
    client.balance()
    sb.faults.add("status", status=401, path="^/balance$")
    with pytest.raises(AuthError) as info:
        client.balance()
    assert info.value.status == 401
    assert wire.count("GET", "/balance") == 3  # the first call, then the 401 and one repeat with a new token
    assert wire.count("POST", "/oauth/access_token") == 2


def test_failing_token_endpoint_keeps_the_attempt_bound(sb: SendPulseSandbox, recorder: SleepRecorder) -> None:
    wire = Wire(sb.app)
    c = make_client(transport=wire, sleep=recorder, policy=HttpPolicy(requests_per_second=None, max_attempts=3))
    sb.faults.add("status", status=503, path="^/oauth/access_token$")
    with pytest.raises(ServerError):
        c.balance()
    # the token call's retries are not multiplied by the call's retries (3 x 3 before the fix)
    assert wire.count("POST", "/oauth/access_token") == 3
    assert wire.count("GET", "/balance") == 0
    assert len(recorder.calls) == 2


def test_token_hiccup_before_a_campaign_create_is_retried(client: SendPulseClient, sb: SendPulseSandbox) -> None:
    book_id = new_book(client, "b", ["a@example.com"])
    sb.hook("revoke_tokens")
    client._token = None  # as if the cached token had run out
    sb.faults.add("status", status=503, path="^/oauth/access_token$", times=1)
    assert create(client, book_id).status == 13  # nothing was sent yet: the token call may be retried
    assert logged(sb, "POST", "/campaigns") == 1


def test_bad_credentials_are_auth_error_without_retry(sb: SendPulseSandbox, recorder: SleepRecorder) -> None:
    wire = Wire(sb.app)
    c = make_client(transport=wire, client_secret="not-the-secret", sleep=recorder)
    with pytest.raises(AuthError) as info:
        next(iter(c.list_books()))
    assert info.value.status == 401
    assert "Client authentication failed" in str(info.value)
    assert wire.count("POST", "/oauth/access_token") == 1
    assert wire.count("GET", "/addressbooks") == 0
    assert recorder.calls == []


# -- faults -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "expected"), [(None, None), ("7", 7.0)])
def test_429_on_a_get_is_retried_honouring_retry_after(
    client: SendPulseClient,
    sb: SendPulseSandbox,
    recorder: SleepRecorder,
    retry_after: str | None,
    expected: float | None,
) -> None:
    sb.faults.add("status", status=429, path="^/balance$", retry_after=retry_after, times=2)
    assert client.balance().balance == Decimal("25")
    assert logged(sb, "GET", "/balance", 429) == 2
    assert logged(sb, "GET", "/balance", 200) == 1
    assert len(recorder.calls) == 2
    if expected is None:
        assert all(0.0 <= s <= 2.0 for s in recorder.calls)  # exponential backoff with jitter, from 1 s
    else:
        assert recorder.calls == [expected, expected]


def test_sandbox_rate_limit_2020202020_is_retried() -> None:
    limited = SendPulseSandbox(seed=7, rate_limit=True, per_second=2)
    limited.freeze_clock(T0)
    sleeper = SleepRecorder(limited)  # sleeping moves the sandbox's rate window
    c = make_client(limited, sleep=sleeper)
    for _ in range(3):
        c.list_senders()
    assert sum(1 for _, _, s in limited.request_log if s == 429) >= 1
    assert len(sleeper.calls) >= 1


def test_rate_limit_on_campaign_create_is_not_retried(client: SendPulseClient, sb: SendPulseSandbox) -> None:
    book_id = new_book(client, "b", ["a@example.com"])
    sb.faults.add("status", status=429, path="^/campaigns$", method="POST", retry_after="1")
    with pytest.raises(RateLimitError) as info:
        create(client, book_id)
    assert info.value.retry_after == 1.0
    assert logged(sb, "POST", "/campaigns") == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_a_get_is_retried(
    client: SendPulseClient, sb: SendPulseSandbox, recorder: SleepRecorder, status: int
) -> None:
    sb.faults.add("status", status=status, path="^/user/balance/detail$", times=2)
    assert client.balance_detail().currency == "USD"
    assert logged(sb, "GET", "/user/balance/detail") == 3
    assert len(recorder.calls) == 2


def test_persistent_html_500_is_server_error_with_raw_body(sb: SendPulseSandbox, recorder: SleepRecorder) -> None:
    c = make_client(sb, sleep=recorder, policy=HttpPolicy(requests_per_second=None, max_attempts=3))
    sb.faults.add("status", status=500, html=True, path="^/senders$")
    with pytest.raises(ServerError) as info:
        c.list_senders()
    err = info.value
    assert err.status == 500
    assert err.body is not None
    assert "Whoops, looks like something went wrong." in err.body
    assert "non-JSON" in err.message
    assert logged(sb, "GET", "/senders") == 3
    assert len(recorder.calls) == 2


def test_timeout_on_a_get_is_retried_in_process(client: SendPulseClient, sb: SendPulseSandbox, wire: Wire) -> None:
    sb.faults.add("timeout", path="^/balance$", times=1)
    sb.faults.add("reset", path="^/balance$", times=1)
    assert client.balance().currency == "USD"
    assert wire.count("GET", "/balance") == 3


@pytest.mark.network
def test_timeout_on_a_get_is_retried_over_loopback(
    live_sb: SendPulseSandbox, server: SandboxServer, recorder: SleepRecorder
) -> None:
    policy = HttpPolicy(requests_per_second=None, read_timeout_s=0.2)
    c = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, server.url, policy=policy, sleep=recorder)
    try:
        live_sb.faults.add("timeout", path="^/balance$", seconds=0.5, times=1)
        assert c.balance().currency == "USD"
        assert len(recorder.calls) == 1
        assert c.http.stats.retries == 1
    finally:
        c.close()


@pytest.mark.network
def test_timeout_on_campaign_create_is_outcome_unknown_over_loopback(
    live_sb: SendPulseSandbox, server: SandboxServer, recorder: SleepRecorder
) -> None:
    policy = HttpPolicy(requests_per_second=None, read_timeout_s=0.2)
    c = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, server.url, policy=policy, sleep=recorder)
    try:
        book_id = new_book(c, "b", ["a@example.com"])
        live_sb.faults.add("timeout", path="^/campaigns$", method="POST", seconds=0.5, after_handler=True, times=1)
        with pytest.raises(OutcomeUnknownError):
            create(c, book_id, name="Spring ck-timeout")
        assert recorder.calls == []
        # it did take effect, exactly once; the name resolves it
        found = c.find_campaign_by_name("ck-timeout")
        assert found is not None
        assert len(list(c.list_campaigns())) == 1
    finally:
        c.close()


@pytest.mark.parametrize(
    ("kind", "after"),
    [("timeout", False), ("timeout", True), ("reset", True), ("status", False), ("status", True)],
)
def test_campaign_create_is_never_sent_twice(
    client: SendPulseClient, sb: SendPulseSandbox, wire: Wire, recorder: SleepRecorder, kind: str, after: bool
) -> None:
    book_id = new_book(client, "b", ["a@example.com", "b@example.com"])
    sb.faults.add(kind, status=503, path="^/campaigns$", method="POST", after_handler=after, times=3)
    with pytest.raises(OutcomeUnknownError) as info:
        create(client, book_id, name="Launch ck-42")
    assert "look it up" in info.value.message
    assert wire.count("POST", "/campaigns") == 1
    assert recorder.calls == []
    campaigns = list(client.list_campaigns())
    assert len(campaigns) == (1 if after else 0)
    found = client.find_campaign_by_name("ck-42")
    assert (found is not None) is after


def test_book_and_sender_creates_are_retried_unique_names_guard_them(
    client: SendPulseClient, sb: SendPulseSandbox, wire: Wire
) -> None:
    sb.faults.add("status", status=502, path="^/addressbooks$", method="POST", times=1)
    book_id = client.create_book("Retried")
    assert [b.id for b in client.list_books()] == [book_id]
    # the answer is lost after the book was made: the resend meets 203, never a second book
    sb.faults.add("timeout", path="^/addressbooks$", method="POST", after_handler=True, times=1)
    with pytest.raises(ConflictError):
        client.create_book("Lost answer")
    assert wire.count("POST", "/addressbooks") == 4
    assert sorted(b.name for b in client.list_books()) == ["Lost answer", "Retried"]
    sb.faults.add("status", status=503, path="^/senders$", method="POST", times=1)
    client.add_sender("promo@example.com", "Promo")
    assert sum(s.email == "promo@example.com" for s in client.list_senders()) == 1


def test_791_after_four_creates_an_hour(client: SendPulseClient, sb: SendPulseSandbox, recorder: SleepRecorder) -> None:
    book_id = new_book(client, "b", ["a@example.com"])
    for i in range(4):
        create(client, book_id, name=f"Draft ck-{i}", draft=True)
    with pytest.raises(HourlyCampaignLimitError) as info:
        create(client, book_id, name="Draft ck-4", draft=True)
    assert isinstance(info.value, QuotaError)
    assert info.value.code == 791
    assert logged(sb, "POST", "/campaigns") == 5
    assert recorder.calls == []
    assert len(list(client.list_campaigns())) == 4
    sb.advance(3601)
    assert create(client, book_id, name="Draft ck-4", draft=True).status == 26


def test_707_insufficient_balance_is_quota_error(client: SendPulseClient, sb: SendPulseSandbox) -> None:
    book_id = new_book(client, "b", ["a@example.com", "b@example.com"])
    sb.hook("set_balance", amount="0")
    sb.hook("set_plan", emails_left=0)
    assert client.book_cost(book_id).enough is False
    with pytest.raises(QuotaError) as info:
        create(client, book_id)
    assert not isinstance(info.value, HourlyCampaignLimitError)
    assert info.value.code == 707
    assert logged(sb, "POST", "/campaigns") == 1
    assert list(client.list_campaigns()) == []


@pytest.mark.network
def test_typed_errors_for_not_found_conflict_and_paging(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    with pytest.raises(NotFoundError) as nf:
        live.get_book(1)
    assert nf.value.code == 213
    live.create_book("dup")
    with pytest.raises(ConflictError) as cf:
        live.create_book("dup")
    assert cf.value.code == 203
    with pytest.raises(ValidationError, match="Argument limit may not be greater than 100"):
        list(live._pages("/addressbooks", sendpulse_models._BOOKS, limit=101))
    with pytest.raises(ValidationError, match="Argument offset must be at least 0"):
        live.http.request("GET", "/campaigns", params={"offset": -1})
    with pytest.raises(NotFoundError):
        live.get_campaign(1)
    assert logged(live_sb, "GET", "/addressbooks", 422) == 1  # a 422 is not retried


# -- secrets ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("over", ["in-process", pytest.param("loopback", marks=pytest.mark.network)])
def test_secrets_never_leak(over: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug lines included
    policy = HttpPolicy(requests_per_second=None, max_attempts=2, read_timeout_s=0.2)
    if over == "loopback":
        sb: SendPulseSandbox = request.getfixturevalue("live_sb")
        url = request.getfixturevalue("server").url

        def connect(secret: str) -> SendPulseClient:
            return SendPulseClient(LEAK_ID, secret, url, policy=policy, sleep=SleepRecorder(), clock=FakeClock())
    else:
        sb = request.getfixturevalue("sb")

        def connect(secret: str) -> SendPulseClient:
            return make_client(sb, client_id=LEAK_ID, client_secret=secret, policy=policy)

    sb.hook("create_client", client_id=LEAK_ID, client_secret=LEAK_SECRET)
    c = connect(LEAK_SECRET)
    errors: list[EspError] = []
    book_id = new_book(c, "b", ["a@example.com"])
    # the server echoes the secret in JSON messages and HTML pages, on reads, the token call and a create
    echo = f"bad client_secret={LEAK_SECRET} for {LEAK_ID}"
    sb.faults.add("status", status=500, path="^/balance$", message=echo, times=1)
    c.balance()  # retried once, logged
    sb.faults.add("status", status=500, path="^/senders$", html=True, message=f"<p>{echo}</p>")
    sb.faults.add("status", status=422, path="^/blacklist$", message=echo)
    sb.faults.add("status", status=502, path="^/campaigns$", method="POST", message=echo)
    sb.faults.add("timeout", path="^/user/balance/detail$", seconds=0.4)
    for call in (c.list_senders, c.blacklist, lambda: create(c, book_id), c.balance_detail):
        with pytest.raises(EspError) as info:
            call()
        errors.append(info.value)
    tokens = list(sb.snapshot()["tokens"])
    assert tokens
    sb.hook("revoke_tokens")  # the next call meets a 401, and the token endpoint echoes the secret
    sb.faults.add("status", status=500, path="^/oauth/access_token$", message=echo)
    with pytest.raises(ServerError) as info:
        c.list_webhooks()
    errors.append(info.value)
    sb.faults.clear()
    bad = connect(WRONG_SECRET)
    with pytest.raises(AuthError) as info:
        bad.balance()
    errors.append(info.value)
    c.close()
    bad.close()
    assert {type(e) for e in errors} == {ServerError, ValidationError, OutcomeUnknownError, TransportError, AuthError}
    texts = [caplog.text, repr(c), repr(c.http), repr(bad), str(vars(c.http.stats))]
    for err in errors:
        texts += [str(err), repr(err), err.message, err.body or "", json.dumps(err.fields), repr(err.args)]
        if err.__cause__ is not None:
            texts.append(str(err.__cause__))
    assert "***" in " ".join(texts)  # the echoes were there, masked
    assert "retrying" in caplog.text
    for text in texts:
        for secret in (LEAK_SECRET, WRONG_SECRET, CANARY, *tokens):
            assert secret not in text


def test_short_lived_token_is_not_fetched_before_every_call(sb: SendPulseSandbox, clock: FakeClock) -> None:
    sb.hook("set_delays", token_ttl=30)
    wire = Wire(sb.app)
    c = make_client(transport=wire, clock=clock)
    c.balance()
    c.balance()
    assert wire.count("POST", "/oauth/access_token") == 1
    clock.advance(15)  # half its life: renewed
    c.balance()
    assert wire.count("POST", "/oauth/access_token") == 2


def test_unsubscribe_is_idempotent_and_reaches_every_chunk(client: SendPulseClient, sb: SendPulseSandbox) -> None:
    emails = [f"u{i:03d}@example.com" for i in range(150)]
    book_id = new_book(client, "b", emails)
    client.unsubscribe_emails(book_id, emails[:100])
    # the first chunk has nobody left to unsubscribe (422 "Active emails not found"): the second still goes out
    client.unsubscribe_emails(book_id, emails)
    assert {c.status for c in client.book_emails(book_id)} == {4}
    # a retry after a lost answer meets the same 422: still a success
    sb.faults.add("timeout", path="/emails/unsubscribe$", after_handler=True, times=1)
    client.unsubscribe_emails(book_id, emails[:3])
    with pytest.raises(NotFoundError):
        client.unsubscribe_emails(1, emails[:1])  # other errors still raise


def test_path_segments_are_escaped(sb: SendPulseSandbox) -> None:
    """Values and addresses in a path may hold ``?``/``#``: unescaped, httpx would cut the path there."""
    paths: list[bytes] = []
    wire = Wire(sb.app)
    wire.on_request = lambda r: paths.append(r.url.raw_path)
    c = make_client(transport=wire)
    book_id = new_book(c, "b", ["ann+tag@example.com"])
    c.set_email_variables(book_id, "ann+tag@example.com", {"city": "New York"})
    assert [x.email for x in c.find_by_variable(book_id, "city", "New York")] == ["ann+tag@example.com"]
    assert c.book_email(book_id, "ann+tag@example.com").variables == {"city": "New York"}
    c.find_by_variable(book_id, "note", "a?b#c")
    with pytest.raises(NotFoundError):
        c.email_memberships("what?#@example.com")
    assert paths[-2].endswith(b"/variables/note/a%3Fb%23c")
    assert paths[-1] == b"/emails/what%3F%23@example.com"


def test_empty_lists_send_nothing(client: SendPulseClient, wire: Wire) -> None:
    book_id = client.create_book("b")
    sent = len(wire.log)
    client.add_emails(book_id, [])
    client.delete_emails(book_id, [])
    client.unsubscribe_emails(book_id, [])
    client.add_to_blacklist([])
    client.remove_from_blacklist([])
    assert len(wire.log) == sent


# -- books and contacts (loopback) ------------------------------------------------------------------------------


@pytest.mark.network
def test_books_and_contacts(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    book_id = live.create_book("Customers")
    live.add_emails(
        book_id,
        [
            EmailToAdd("Ann@Example.com", {"city": "Kyiv", "Phone": "+380501234567"}),
            EmailToAdd("bob@example.com", {"city": "Lviv"}),
            EmailToAdd("cy@example.com"),
        ],
        dont_update=False,
        disable_webhook=True,
        tags=["vip"],
    )
    book = live.get_book(book_id)
    assert (book.name, book.all_email_qty, book.active_email_qty) == ("Customers", 3, 3)
    assert book.created == T0.replace(tzinfo=None)
    assert [b.id for b in live.list_books()] == [book_id]
    live.rename_book(book_id, "Clients")
    assert live.get_book(book_id).name == "Clients"
    assert [(v.name, v.type) for v in live.book_variables(book_id)] == [("city", "string")]
    assert [c.email for c in live.find_by_variable(book_id, "city", "Kyiv")] == ["ann@example.com"]
    assert live.book_email_total(book_id) == 3
    rows = {c.email: c for c in live.book_emails(book_id)}
    assert rows["ann@example.com"].variables == {"city": "Kyiv"}
    assert rows["ann@example.com"].phone == "+380501234567"
    assert rows["cy@example.com"].variables == {}  # [] on the wire
    live.set_email_variables(book_id, "bob@example.com", {"city": "Odesa"})
    bob = live.book_email(book_id, "bob@example.com")
    assert (bob.status, bob.book_id, dict(bob.variables)) == (1, book_id, {"city": "Odesa"})
    live.unsubscribe_emails(book_id, ["bob@example.com"])
    assert live.book_email(book_id, "bob@example.com").status == 4
    live.delete_emails(book_id, ["cy@example.com"])
    assert live.book_email_total(book_id) == 2
    with pytest.raises(NotFoundError):
        live.book_email(book_id, "cy@example.com")
    live.delete_book(book_id)
    with pytest.raises(NotFoundError):
        live.get_book(book_id)


@pytest.mark.network
def test_book_paging_reads_every_page(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    emails = [f"user{i:03d}@example.com" for i in range(150)]
    book_id = new_book(live, "big", emails)
    assert logged(live_sb, "POST", f"/addressbooks/{book_id}/emails") == 2  # 100 + 50
    assert [c.email for c in live.book_emails(book_id)] == emails
    assert logged(live_sb, "GET", f"/addressbooks/{book_id}/emails") == 2


@pytest.mark.network
def test_double_opt_in_add_and_confirm(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    book_id = live.create_book("Opt-in")
    with pytest.raises(ValidationError):
        live.add_emails(book_id, [EmailToAdd("x@example.com")], double_opt_in=True)
    with pytest.raises(NotFoundError) as info:  # 1003: the sender is not confirmed
        live.add_emails(book_id, [EmailToAdd("x@example.com")], double_opt_in=True, sender_email="no@example.com")
    assert info.value.code == 1003
    live.add_emails(
        book_id,
        [EmailToAdd("dee@example.com", {"name": "Dee"})],
        double_opt_in=True,
        sender_email=DEMO_SENDER_EMAIL,
        message_lang="en",
    )
    assert live.book_email(book_id, "dee@example.com").status == 2
    assert live_sb.hook("confirm_optin", book_id=book_id, email="dee@example.com") is True
    assert live.book_email(book_id, "dee@example.com").status == 1
    assert live.get_book(book_id).active_email_qty == 1


@pytest.mark.network
def test_blacklist_round_trip(live: SendPulseClient) -> None:
    book_id = new_book(live, "b", ["eve@example.com", "fay@example.com"])
    assert live.blacklist() == []
    live.add_to_blacklist(["eve@example.com", "zed@example.com"], comment="complaint")
    assert sorted(live.blacklist()) == ["eve@example.com", "zed@example.com"]
    assert live.book_email(book_id, "eve@example.com").status == 8
    assert live.email_campaigns("eve@example.com").blacklisted is True
    live.remove_from_blacklist(["eve@example.com", "zed@example.com"])
    assert live.blacklist() == []
    assert live.book_email(book_id, "eve@example.com").status == 1
    assert live.email_campaigns("eve@example.com").blacklisted is False


# -- templates, senders, webhooks (loopback) ----------------------------------------------------------------------


@pytest.mark.network
def test_templates_create_edit_get_list(live: SendPulseClient) -> None:
    real_id = live.create_template("<p>Hello {{name}}</p>", name="Welcome v1", lang="en")
    tpl = live.get_template(real_id)
    assert (tpl.real_id, tpl.name, tpl.body, tpl.lang) == (real_id, "Welcome v1", "<p>Hello {{name}}</p>", "en")
    assert len(tpl.id) == 32
    live.edit_template(real_id, "<p>Hi again</p>")
    edited = live.get_template(real_id)
    assert edited.body == "<p>Hi again</p>"
    assert edited.real_id == real_id
    assert edited.id != tpl.id
    assert live.get_template(edited.id).real_id == real_id
    mine = {t.name for t in live.list_templates()}
    assert {"Welcome v1", "Sandbox welcome"} <= mine
    assert "Valentine's Day: sweet" not in mine
    theirs = [t.name for t in live.list_templates(owner="sendpulse", lang="en")]
    assert theirs == ["Valentine's Day: sweet"]
    with pytest.raises(ConflictError):
        live.create_template("<p>x</p>", name="Welcome v1")
    with pytest.raises(NotFoundError):
        live.get_template(1)


@pytest.mark.network
def test_senders_add_code_activate_delete(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    email = "promo@example.com"
    live.add_sender(email, "Promo")
    sender = next(s for s in live.list_senders() if s.email == email)
    assert (sender.name, sender.status, sender.active) == ("Promo", "Requested activation", False)
    with pytest.raises(ConflictError):
        live.add_sender(email, "Promo")
    with pytest.raises(ValidationError) as info:  # 1004: a code went out less than 15 minutes ago
        live.request_sender_code(email)
    assert info.value.code == 1004
    live_sb.advance(16 * 60)
    live.request_sender_code(email)
    code = live_sb.hook("sender_code", email=email)
    assert isinstance(code, str)
    with pytest.raises(ValidationError):
        live.activate_sender(email, "000000" if code != "000000" else "111111")
    live.activate_sender(email, code)
    assert next(s for s in live.list_senders() if s.email == email).active
    live.delete_sender(email)
    assert email not in {s.email for s in live.list_senders()}
    with pytest.raises(NotFoundError):
        live.delete_sender(email)


@pytest.mark.network
def test_webhooks_crud(live: SendPulseClient) -> None:
    hooks = live.create_webhook("https://hooks.example.com/sp", ["open", "redirect"])
    assert sorted(h.action for h in hooks) == ["open", "redirect"]
    assert all(h.url == "https://hooks.example.com/sp" and h.user_id for h in hooks)
    assert {h.id for h in live.list_webhooks()} == {h.id for h in hooks}
    live.update_webhook(hooks[0].id, "https://hooks.example.com/v2")
    urls = {h.id: h.url for h in live.list_webhooks()}
    assert urls[hooks[0].id] == "https://hooks.example.com/v2"
    live.delete_webhook(hooks[0].id)
    assert [h.id for h in live.list_webhooks()] == [hooks[1].id]
    with pytest.raises(NotFoundError):
        live.delete_webhook(hooks[0].id)


# -- campaigns, money, email information (loopback) ----------------------------------------------------------------


@pytest.mark.network
def test_campaign_lifecycle_stats_and_email_info(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    emails = ["click@example.com", "open@example.com", "sent@example.com"]
    book_id = new_book(live, "Launch", emails)
    for email, code in zip(emails, (4, 3, 2), strict=True):
        live_sb.hook("force_outcome", email=email, code=code)
    created = create(live, book_id, name="Launch 2026 ck-abc", attachments_binary={"a.txt": b"hello"})
    assert (created.status, created.count) == (13, 3)
    assert created.tariff_email_qty == 3
    assert created.paid_email_qty == 0
    assert created.overdraft_currency == "USD"
    info = live.get_campaign(created.id)
    assert (info.name, info.subject, info.list_id, info.sender_email) == (
        "Launch 2026 ck-abc",
        "Hello",
        book_id,
        DEMO_SENDER_EMAIL,
    )
    assert info.permalink
    found = live.find_campaign_by_name("ck-abc")
    assert found is not None
    assert found.id == created.id
    assert live.find_campaign_by_name("ck-none") is None
    assert [(b.task_id, b.task_name) for b in live.book_campaigns(book_id)] == [(created.id, "Launch 2026 ck-abc")]
    live_sb.advance(3 * 3600)
    done = live.get_campaign(created.id)
    assert done.status == 3
    stats = {s.code: s.count for s in done.statistics}
    assert (stats[1], stats[2], stats[3], stats[4]) == (3, 3, 2, 1)
    assert sum(live.campaign_countries(created.id).values()) == 2
    assert live.campaign_referrals(created.id) == {"https://example.org/a": 1}
    rec = live.campaign_recipient(created.id, "click@example.com")
    assert (rec.global_status, rec.global_status_explain) == (4, "Link redirected")
    assert rec.sent_date is not None
    assert rec.sent_date >= T0.replace(tzinfo=None)
    assert live.campaign_recipient(created.id, "sent@example.com").global_status == 2
    # per-address information
    member = live.email_memberships("click@example.com")
    assert [(m.book_id, m.status) for m in member] == [(book_id, 1)]
    details = live.email_details("click@example.com")
    assert [(d.list_id, d.list_name) for d in details] == [(book_id, "Launch")]
    assert details[0].add_date == T0.replace(tzinfo=None)
    one = live.email_campaigns("click@example.com")
    assert (one.sent, one.opened, one.clicked, one.blacklisted) == (1, 1, 1, False)
    many = live.emails_campaigns(["click@example.com", "sent@example.com"])
    assert many["sent@example.com"].opened == 0
    assert many["click@example.com"].books == ((book_id, "Launch"),)
    live.delete_email_everywhere("click@example.com")
    with pytest.raises(NotFoundError):
        live.email_memberships("click@example.com")
    with pytest.raises(ConflictError):  # 602: already sent, cannot be cancelled
        live.cancel_campaign(created.id)


@pytest.mark.network
def test_scheduled_campaign_edit_test_send_and_cancel(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    book_id = new_book(live, "Sched", ["a@example.com", "b@example.com"])
    kyiv = timezone(timedelta(hours=2))
    when = (T0 + timedelta(days=1)).astimezone(kyiv)
    with pytest.raises(ValidationError):
        create(live, book_id, send_date=datetime(2026, 1, 6, 10, 0))  # naive: refused before sending
    with pytest.raises(ValidationError):
        live.create_campaign(sender_name="x", sender_email=DEMO_SENDER_EMAIL, subject="x", book_id=book_id)
    assert logged(live_sb, "POST", "/campaigns") == 0
    welcome = next(t for t in live.list_templates() if t.name == "Sandbox welcome")
    created = live.create_campaign(
        sender_name=SENDER_NAME,
        sender_email=DEMO_SENDER_EMAIL,
        subject="Later",
        book_ids=[book_id],
        template_id=welcome.real_id,
        name="Later ck-s",
        send_date=when,
    )
    live_sb.advance(10)
    info = live.get_campaign(created.id)
    assert info.status == 1
    assert info.send_date == datetime(2026, 1, 6, 10, 0)  # sent in the account zone (UTC)
    assert info.body is not None
    assert "Welcome" in info.body
    live.edit_campaign(created.id, subject="Later, edited", body_html="<p>new</p>", send_test_only=["qa@example.com"])
    live.edit_campaign(created.id, name="Later ck-s2", send_date=when + timedelta(hours=1))
    edited = live.get_campaign(created.id)
    assert (edited.subject, edited.name, edited.body) == ("Later, edited", "Later ck-s2", "<p>new</p>")
    assert edited.send_date == datetime(2026, 1, 6, 11, 0)
    before = live.balance_detail().emails_left
    live.cancel_campaign(created.id)
    assert live.get_campaign(created.id).status == 16
    assert live.balance_detail().emails_left == (before or 0) + 2  # the plan letters come back
    with pytest.raises(NotFoundError):
        live.cancel_campaign(1)


@pytest.mark.network
def test_balance_detail_and_cost_agree_after_a_send(live: SendPulseClient, live_sb: SendPulseSandbox) -> None:
    emails = [f"m{i}@example.com" for i in range(5)]
    book_id = new_book(live, "Money", emails)
    live_sb.hook("set_plan", emails_left=2)
    start = live.balance()
    assert (start.currency, start.balance) == ("USD", Decimal("25"))
    detail = live.balance_detail()
    assert (detail.main, detail.bonus, detail.currency, detail.emails_left) == (
        Decimal("25.00"),
        Decimal("0.00"),
        "USD",
        2,
    )
    assert detail.current_subscribers == 5
    assert detail.maximum_subscribers == 2500
    assert detail.tariff_name
    assert detail.finished_time is not None
    cost = live.book_cost(book_id)
    assert (cost.currency, cost.sent_emails_qty, cost.enough) == ("USD", 5, True)
    assert (cost.addresses_delta_from_tariff, cost.addresses_delta_from_balance) == (2, 3)
    assert cost.overdraft_all_emails_price == Decimal("0.0132")
    created = create(live, book_id)
    assert (created.tariff_email_qty, created.paid_email_qty, created.overdraft_price) == (2, 3, Decimal("0.0044"))
    after = live.balance_detail()
    assert cost.overdraft_all_emails_price is not None
    assert after.main is not None
    assert after.main == Decimal("25") - cost.overdraft_all_emails_price
    assert after.emails_left == 0
    assert live.balance().balance == after.main
    eur = live.balance("eur")
    assert eur.currency == "EUR"
    assert eur.balance == (after.main * Decimal("0.92")).quantize(Decimal("0.0001"))
    again = live.book_cost(book_id)
    assert (again.addresses_delta_from_tariff, again.addresses_delta_from_balance) == (0, 5)
    assert again.overdraft_all_emails_price == Decimal("0.022")


@pytest.mark.network
def test_book_cost_of_an_empty_book_is_validation_error(live: SendPulseClient) -> None:
    book_id = live.create_book("Empty")
    with pytest.raises(ValidationError) as info:
        live.book_cost(book_id)
    assert info.value.code == 211


def test_b64_payloads_on_the_wire(sb: SendPulseSandbox) -> None:
    """Blacklist emails and campaign bodies travel base64-encoded, DELETE bodies as JSON."""
    seen: list[tuple[str, str, bytes]] = []
    wire = Wire(sb.app)
    wire.on_request = lambda r: seen.append((r.method, r.url.path, r.read()))
    c = make_client(transport=wire)
    c.add_to_blacklist(["a@example.com", "b@example.com"])
    c.remove_from_blacklist(["a@example.com"])
    posted = [json.loads(b) for m, p, b in seen if p == "/blacklist"]
    assert base64.b64decode(posted[0]["emails"]).decode() == "a@example.com,b@example.com"
    assert base64.b64decode(posted[1]["emails"]).decode() == "a@example.com"
    assert c.blacklist() == ["b@example.com"]
