"""LiteStartupClient and LiteStartupProvider against the LiteStartup sandbox (no real sleeping)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from espcore.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from espcore.http import HttpPolicy
from espcore.providers.base import (
    CampaignDraft,
    CampaignState,
    EspProvider,
    MemberInput,
    MemberState,
)
from espcore.providers.litestartup import (
    LITESTARTUP_BASE_URL,
    NOT_EXPOSED,
    SEED_DIALECT,
    LiteStartupClient,
    LiteStartupProvider,
    LsContact,
    LsEmail,
    campaign_state,
    contact_payload,
    parse_error,
    verify_webhook_signature,
)
from espcore.sandbox.litestartup import DEMO_API_KEY, DEMO_DOMAIN, LiteStartupSandbox, OutcomeRates, PlanLimits
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC)
BASE = "http://127.0.0.1/client/v2"
SENDER = f"news@{DEMO_DOMAIN}"
NO_LIMITER = HttpPolicy(requests_per_second=0)


class ClockSleeper:
    """Records the client's sleeps and advances the sandbox clock by as much (no real sleeping)."""

    def __init__(self, sb: LiteStartupSandbox) -> None:
        self.sb = sb
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.sb.advance(seconds)


@pytest.fixture
def sb() -> LiteStartupSandbox:
    s = LiteStartupSandbox(seed=11, rate_limit=False, outcomes=OutcomeRates.markers_only())
    s.freeze_clock(T0)
    return s


@pytest.fixture
def sleeper(sb: LiteStartupSandbox) -> ClockSleeper:
    return ClockSleeper(sb)


def make(sb: LiteStartupSandbox, sleeper: Any = None, key: str = DEMO_API_KEY, **kw: Any) -> LiteStartupClient:
    kw.setdefault("policy", NO_LIMITER)
    return LiteStartupClient(key, BASE, transport=InProcessTransport(sb.app), sleep=sleeper or (lambda s: None), **kw)


class Wire(InProcessTransport):
    """The in-process transport, logging every request that leaves the client (even ones that time out)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.log: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.log.append((request.method, request.url.path))
        return super().handle_request(request)

    def count(self, method: str, path_end: str) -> int:
        return sum(1 for m, p in self.log if m == method and p.endswith(path_end))


@pytest.fixture
def wire(sb: LiteStartupSandbox) -> Wire:
    return Wire(sb.app)


@pytest.fixture
def client(sb: LiteStartupSandbox, sleeper: ClockSleeper, wire: Wire) -> Iterator[LiteStartupClient]:
    c = LiteStartupClient(DEMO_API_KEY, BASE, transport=wire, sleep=sleeper, policy=NO_LIMITER)
    yield c
    c.close()


@pytest.fixture
def provider(client: LiteStartupClient) -> LiteStartupProvider:
    return LiteStartupProvider(client)


def calls(sb: LiteStartupSandbox, method: str, path_end: str) -> int:
    return sum(1 for m, p, _ in sb.request_log if m == method and p.endswith(path_end))


# -- construction ------------------------------------------------------------------------------------------


def test_constructor_rate_from_plan_repr_and_redaction(sb: LiteStartupSandbox) -> None:
    free = LiteStartupClient("sk_live_secret_123")
    assert free.http.base_url == LITESTARTUP_BASE_URL
    assert free.policy.requests_per_second == pytest.approx(1.0)
    assert LiteStartupClient("k-pro-1234", plan="pro").policy.requests_per_second == pytest.approx(5.0)
    assert LiteStartupClient("k-1234", requests_per_minute=120).policy.requests_per_second == pytest.approx(2.0)
    assert "sk_live_secret_123" not in repr(free)
    free.close()
    with pytest.raises(ConfigurationError):
        LiteStartupClient("k-1234", plan="enterprise")
    with pytest.raises(ConfigurationError):
        LiteStartupClient("")
    with pytest.raises(ConfigurationError):
        LiteStartupClient("k-1234", "http://api.litestartup.com/client/v2")
    bad = make(sb, key="sk_live_wrong_key_value")
    with pytest.raises(AuthError) as info:
        bad.verify()
    assert info.value.code == "INVALID_API_KEY"
    assert "sk_live_wrong_key_value" not in str(info.value)


def test_plan_rate_limiter_paces_requests(sb: LiteStartupSandbox) -> None:
    waits: list[float] = []
    c = LiteStartupClient(DEMO_API_KEY, BASE, transport=InProcessTransport(sb.app), sleep=waits.append)
    for _ in range(3):
        c.verify()
    assert len(waits) >= 2
    assert all(w > 0.5 for w in waits)
    c.close()


# -- contacts, templates, emails, campaigns, webhooks -------------------------------------------------------


def test_verify_and_balance(client: LiteStartupClient) -> None:
    assert len(client.verify().uuid) == 13
    bal = client.balance()
    assert bal.not_exposed_reason == NOT_EXPOSED == "not_exposed"
    assert bal.amount is None
    assert bal.emails_left is None
    assert bal.quota_allowed is None


def test_contact_methods(client: LiteStartupClient) -> None:
    c = client.create_contact("Ann@Example.com", name="Ann", attributes={"plan": "pro"}, tags=["vip"])
    assert isinstance(c, LsContact)
    assert c.id.startswith("contact_")
    assert c.created_at == T0
    full = client.get_contact(c.id)
    assert full.tags == ("vip",)
    assert full.subscribed is True
    assert full.attributes == {"plan": "pro"}
    client.create_contact("joann@example.com", subscribed=False)
    assert client.find_contact_by_email("ann@example.com") == full
    assert client.find_contact_by_email("nobody@example.com") is None
    assert client.set_contact_attributes(c.id, {"city": "Oslo"}).attributes == {"plan": "pro", "city": "Oslo"}
    assert client.add_contact_tags(c.id, ["b1", "vip"]).tags == ("vip", "b1")
    assert client.remove_contact_tags(c.id, ["vip"]).tags == ("b1",)
    assert client.update_contact(c.id, name="Ann Lee").name == "Ann Lee"
    assert client.set_contact_subscribed(c.id, False).subscribed is False
    assert [x.email for x in client.list_contacts(subscribed=False)] == ["joann@example.com", "Ann@Example.com"]
    assert [x.email for x in client.list_contacts(tag="b1")] == ["Ann@Example.com"]
    page = client.list_contacts_page(1, 1, search="ann")
    assert len(page.items) == 1
    assert page.info.total == 2
    assert page.info.pages == 2
    with pytest.raises(ConflictError):
        client.create_contact("ANN@example.com")
    with pytest.raises(ValidationError) as info:
        client.create_contact("not-an-email")
    assert info.value.code == "INVALID_EMAIL"
    client.delete_contact(c.id)
    with pytest.raises(NotFoundError) as nf:
        client.get_contact(c.id)
    assert nf.value.code == "CONTACT_NOT_FOUND"


def test_auto_paging_stops_on_pages_total_or_short_page(sb: LiteStartupSandbox, client: LiteStartupClient) -> None:
    for i in range(205):
        client.create_contact(f"u{i:03d}@example.com")
    sb.request_log.clear()
    emails = [c.email for c in client.list_contacts()]
    assert len(emails) == 205
    assert len(set(emails)) == 205
    assert calls(sb, "GET", "/contacts") == 3
    sb.request_log.clear()
    assert len(list(client.list_contacts(page_size=41))) == 205  # exactly 5 pages: stops on pages, no 6th call
    assert calls(sb, "GET", "/contacts") == 5
    for i in range(25):
        client.create_template(f"t{i}")
    sb.request_log.clear()
    assert len(list(client.list_templates(page_size=5))) == 25  # templates omit "pages": stops on total
    assert calls(sb, "GET", "/templates") == 5


def test_template_methods(client: LiteStartupClient) -> None:
    t = client.create_template("Welcome", subject="Hi {{name}}", html="<h1>{{name}}</h1>", variables=["name"])
    assert t.id.startswith("tmpl_")
    assert t.name == "Welcome"
    got = client.get_template(t.id)
    assert got.html == "<h1>{{name}}</h1>"
    assert got.variables == ("name",)
    assert client.update_template(t.id, name="Welcome v2").name == "Welcome v2"
    assert [x.name for x in client.list_templates()] == ["Welcome v2"]
    client.delete_template(t.id)
    with pytest.raises(NotFoundError) as nf:
        client.get_template(t.id)
    assert nf.value.code == "INVALID_TEMPLATE"
    with pytest.raises(ValidationError):
        client.create_template("")


def test_email_methods(sb: LiteStartupSandbox, client: LiteStartupClient) -> None:
    r = client.send_email("a@example.com", SENDER, "One", html="<p>1</p>", cc=["c@example.com"], reply_to=SENDER)
    assert len(r.message_id) == 16
    sb.advance(60)
    client.send_email(["bounce@example.com", "b@example.com"], SENDER, "Two", text="2")
    sb.advance(3600)
    got = client.get_email(r.message_id)
    assert isinstance(got, LsEmail)
    assert got.status == "delivered"
    assert got.to == ("a@example.com",)
    assert got.delivered_at == T0 + timedelta(seconds=5)
    assert got.bounced is False
    assert [e.subject for e in client.list_emails()] == ["Two", "One"]
    assert [e.subject for e in client.list_emails(sort="created_at", order="asc")] == ["One", "Two"]
    assert [e.subject for e in client.list_emails(status="bounced")] == ["Two"]
    assert [e.subject for e in client.list_emails(to="b@example.com", from_email=SENDER)] == ["Two"]
    assert [e.subject for e in client.list_emails(created_after=T0 + timedelta(seconds=30))] == ["Two"]
    assert [e.subject for e in client.list_emails(created_before=T0 + timedelta(seconds=30))] == ["One"]
    assert client.list_emails_page(1, 1, sort="status", order="asc").items[0].status == "bounced"
    with pytest.raises(ValidationError):
        client.send_email("bad@", SENDER, "x")
    with pytest.raises(PermissionDeniedError) as denied:
        client.send_email("a@example.com", "me@unverified.example", "x")
    assert denied.value.code == "DOMAIN_NOT_VERIFIED"
    with pytest.raises(ValidationError):
        client.list_emails_page(status="lost")
    with pytest.raises(NotFoundError):
        client.get_email("email_missing")


def test_campaign_methods(sb: LiteStartupSandbox, client: LiteStartupClient) -> None:
    client.create_contact("a@example.com", tags=["b1"])
    camp = client.create_campaign("Q1 ck-1", "Hello", "<p>hi</p>", SENDER, "tag:b1", text="hi")
    assert camp.status == "draft"
    assert camp.tag == "b1"
    assert camp.created_at == T0
    later = T0 + timedelta(days=1)
    sched = client.update_campaign(camp.id, scheduled_at=later)
    assert sched.status == "scheduled"
    assert sched.scheduled_at == later
    assert client.update_campaign(camp.id, unschedule=True).status == "draft"
    assert [c.id for c in client.list_campaigns(status="draft")] == [camp.id]
    sent = client.send_campaign(camp.id)
    assert sent.status == "sending"
    assert client.get_campaign(camp.id).status == "sending"
    with pytest.raises(ValidationError):
        client.send_campaign(camp.id)
    with pytest.raises(ValidationError):
        client.update_campaign(camp.id, subject="late")
    sb.advance(3600)
    assert client.get_campaign(camp.id).status == "sent"
    stats = client.campaign_stats(camp.id)
    assert (stats.sent, stats.delivered, stats.open_rate) == (1, 1, 0.0)
    other = client.create_campaign("tmp", "s", "<p/>", SENDER, "all_subscribers", scheduled_at=later)
    assert other.status == "scheduled"
    assert other.scheduled_at == later
    client.delete_campaign(other.id)
    with pytest.raises(NotFoundError) as nf:
        client.get_campaign(other.id)
    assert nf.value.code == "CAMPAIGN_NOT_FOUND"
    with pytest.raises(ValidationError):
        client.create_campaign("x", "s", "<p/>", SENDER, "everyone")
    with pytest.raises(PermissionDeniedError):
        client.create_campaign("x", "s", "<p/>", "a@nope.example", "all_subscribers")


def test_webhook_methods_and_signature(sb: LiteStartupSandbox, client: LiteStartupClient) -> None:
    hook = client.create_webhook("https://hooks.example/ls", ["email.delivered"])
    assert hook.secret
    assert hook.secret.startswith("whsec_")
    assert hook.active
    assert [(w.id, w.secret) for w in client.list_webhooks()] == [(hook.id, None)]
    upd = client.update_webhook(hook.id, events=["email.delivered", "email.bounced"])
    assert upd.events == ("email.delivered", "email.bounced")
    client.send_email("a@example.com", SENDER, "s")
    sb.advance(10)
    (delivery,) = sb.hook("webhook_deliveries")
    body, sig = delivery["body"].encode(), delivery["signature"]
    assert verify_webhook_signature(hook.secret, body, sig)
    assert client.verify_signature(hook.secret, body, f"sha256={sig}")
    assert verify_webhook_signature(hook.secret, body, sig.upper())
    assert not verify_webhook_signature(hook.secret, body + b" ", sig)
    assert not verify_webhook_signature("whsec_other", body, sig)
    assert not verify_webhook_signature(hook.secret, body, None)
    assert not verify_webhook_signature(hook.secret, body, "sha256=zz\u00e9")
    reserialised = body.replace(b'":"', b'": "')  # a re-serialised body must not verify
    assert not verify_webhook_signature(hook.secret, reserialised, sig)
    client.delete_webhook(hook.id)
    assert list(client.list_webhooks()) == []
    with pytest.raises(NotFoundError):
        client.delete_webhook(hook.id)
    with pytest.raises(ValidationError):
        client.create_webhook("http://hooks.example/x", ["email.sent"])


# -- errors, retries and unknown outcomes -------------------------------------------------------------------


def _response(
    status: int, body: Any, *, method: str = "GET", path: str = "/client/v2/contacts", **headers: str
) -> httpx.Response:
    request = httpx.Request(method, f"https://api.litestartup.com{path}")
    kwargs: dict[str, Any] = {"json": body} if not isinstance(body, str) else {"text": body}
    return httpx.Response(status, headers=headers, request=request, **kwargs)


def test_error_parser_tolerant_rules() -> None:
    cases: list[tuple[httpx.Response, type, str]] = [
        (_response(401, {"error": "Invalid API key"}), AuthError, "Invalid API key"),
        (
            _response(401, {"code": 401, "message": "", "data": {"error": "Invalid API key"}}),
            AuthError,
            "Invalid API key",
        ),
        (
            _response(400, {"success": False, "error": "Invalid email address", "code": "INVALID_EMAIL"}),
            ValidationError,
            "",
        ),
        (_response(403, {"success": False, "error": "x", "code": "DOMAIN_NOT_VERIFIED"}), PermissionDeniedError, ""),
        (_response(404, {"success": False, "error": "x", "code": "CONTACT_NOT_FOUND"}), NotFoundError, ""),
        (_response(404, {"success": False, "error": "x", "code": "CAMPAIGN_NOT_FOUND"}), NotFoundError, ""),
        (_response(404, {"success": False, "error": "x", "code": "INVALID_TEMPLATE"}), NotFoundError, ""),
        (_response(422, {"success": False, "error": "x", "code": "INVALID_TEMPLATE"}), ValidationError, ""),
        (_response(409, {"success": False, "error": "Contact already exists"}), ConflictError, ""),
        (_response(400, {"code": 400, "message": "Invalid email or contact already exists"}), ConflictError, ""),
        (_response(422, {"success": False, "error": "The from field is required"}), ValidationError, ""),
        (_response(500, "<html>boom</html>"), ServerError, ""),
        (_response(500, {"code": 500, "message": "monthly usage exceeded the limit", "data": []}), QuotaError, ""),
        (_response(429, {"error": "x", "code": "INSUFFICIENT_QUOTA"}, **{"Retry-After": "5"}), QuotaError, ""),
        (_response(429, {"error": "Too Many Requests"}, **{"Retry-After": "5"}), RateLimitError, ""),
        (
            _response(429, {"code": 429, "message": "daily usage exceeded the limit"}, **{"Retry-After": "5"}),
            QuotaError,
            "",
        ),
        (_response(429, {"error": "Too Many Requests"}, method="POST", path="/client/v2/emails"), QuotaError, ""),
        (
            _response(429, {"error": "Too Many Requests"}, method="POST", path="/client/v2/campaigns/c1/send"),
            QuotaError,
            "",
        ),
        (_response(429, {"error": "Too Many Requests"}), RateLimitError, ""),
    ]
    for response, kind, message in cases:
        err = parse_error(response)
        assert type(err) is kind, (response.text, type(err))
        if message:
            assert err.message == message
    numeric = parse_error(_response(400, {"code": 400, "message": "bad"}))
    assert numeric.code is None  # the newer doc set's numeric code is not a symbolic code
    rl = SEED_DIALECT.parse_error(
        _response(429, {"error": "x", "code": "RATE_LIMIT_EXCEEDED"}, **{"Retry-After": "12"})
    )
    assert isinstance(rl, RateLimitError)
    assert rl.retry_after == 12.0


def test_rate_limit_429_is_retried_after_retry_after() -> None:
    plans = {"free": PlanLimits(per_minute=2, per_hour=1000, monthly_emails=100, daily_emails=100)}
    sb = LiteStartupSandbox(plans=plans)
    sb.freeze_clock(T0 + timedelta(seconds=50))
    sleeper = ClockSleeper(sb)
    c = make(sb, sleeper)
    c.verify()
    c.verify()
    assert c.verify().uuid  # third call: 429 Retry-After 10, slept on the sandbox clock, then answered
    assert sleeper.calls == [10.0]
    assert [s for _, _, s in sb.request_log] == [200, 200, 429, 200]
    c.close()


def test_quota_429_is_never_retried(sb: LiteStartupSandbox, client: LiteStartupClient, sleeper: ClockSleeper) -> None:
    sb.hook("set_usage", daily=350)
    with pytest.raises(QuotaError) as info:
        client.send_email("a@example.com", SENDER, "s")
    assert info.value.code == "INSUFFICIENT_QUOTA"
    assert info.value.status == 429
    assert calls(sb, "POST", "/emails") == 1
    assert sleeper.calls == []
    client.create_contact("a@example.com")
    camp = client.create_campaign("c", "s", "<p/>", SENDER, "all_subscribers")
    with pytest.raises(QuotaError):
        client.send_campaign(camp.id)
    assert calls(sb, "POST", "/send") == 1
    assert sleeper.calls == []


def test_injected_429_without_retry_after_on_send_is_quota(sb: LiteStartupSandbox, client: LiteStartupClient) -> None:
    sb.faults.add("status", status=429, path="^/emails$", times=1)
    with pytest.raises(QuotaError):
        client.send_email("a@example.com", SENDER, "s")
    sb.faults.add("status", status=429, path="^/contacts$", retry_after="3", times=1)
    assert list(client.list_contacts()) == []  # a GET rate-limited by a fault is retried


def test_timeout_on_send_is_outcome_unknown_and_not_resent(
    sb: LiteStartupSandbox, client: LiteStartupClient, sleeper: ClockSleeper, wire: Wire
) -> None:
    client.create_contact("a@example.com")
    camp = client.create_campaign("c", "s", "<p/>", SENDER, "all_subscribers")
    sb.faults.add("timeout", path=r"/send$", after_handler=True, times=1)
    with pytest.raises(OutcomeUnknownError):
        client.send_campaign(camp.id)
    assert wire.count("POST", "/send") == 1
    assert sleeper.calls == []
    assert client.get_campaign(camp.id).status == "sending"  # it did take effect
    sb.faults.add("timeout", path=r"^/emails$", times=1)
    with pytest.raises(OutcomeUnknownError):
        client.send_email("a@example.com", SENDER, "s")
    sb.faults.add("status", status=500, path=r"^/emails$", times=1)
    with pytest.raises(OutcomeUnknownError):
        client.send_email("a@example.com", SENDER, "s")
    assert wire.count("POST", "/emails") == 2
    assert sleeper.calls == []


def test_idempotent_reads_are_retried_on_timeouts_and_5xx(
    sb: LiteStartupSandbox, client: LiteStartupClient, wire: Wire
) -> None:
    sb.faults.add("timeout", path=r"^/verify$", times=1)
    sb.faults.add("status", status=503, path=r"^/verify$", times=1)
    assert client.verify().uuid
    assert wire.count("GET", "/verify") == 3
    assert client.http.stats.retries == 2


# -- the adapter -------------------------------------------------------------------------------------------


def test_adapter_is_an_esp_provider(provider: LiteStartupProvider) -> None:
    assert isinstance(provider, EspProvider)
    assert provider.name == "litestartup"
    assert provider.batch_size == 1


def test_books_are_tags(sb: LiteStartupSandbox, provider: LiteStartupProvider, client: LiteStartupClient) -> None:
    sb.request_log.clear()
    book = provider.ensure_book("newsletter")
    assert book.id == "newsletter"
    assert len(sb.request_log) == 0
    assert provider.find_book("newsletter") is None
    client.create_contact("a@example.com", tags=["newsletter", "vip"])
    client.create_contact("b@example.com", tags=["newsletter"], subscribed=False)
    found = provider.find_book("newsletter")
    assert found is not None
    assert (found.member_count, found.active_count) == (2, 1)
    assert [(b.id, b.member_count) for b in provider.list_books()] == [("newsletter", 2), ("vip", 1)]


def test_upsert_members(sb: LiteStartupSandbox, provider: LiteStartupProvider, client: LiteStartupClient) -> None:
    client.create_contact("old@example.com", name="Old", attributes={"plan": "pro"}, tags=["other"])
    client.create_contact("gone@example.com", tags=["other"], subscribed=False)
    rows = [
        MemberInput(
            "new@example.com", {"first_name": "New", "last_name": "Person", "signup": datetime(2026, 1, 2).date()}
        ),
        MemberInput("OLD@example.com", {"city": "Oslo"}),
        MemberInput("gone@example.com", {"city": "Rome"}),
        MemberInput("broken@", {}),
    ]
    results = provider.upsert_members("b1", rows)
    assert [(r.ok, r.suppressed) for r in results] == [(True, False), (True, False), (False, True), (False, False)]
    assert results[3].error
    assert not results[3].transient
    new = client.find_contact_by_email("new@example.com")
    assert new is not None
    assert new.name == "New Person"
    assert new.tags == ("b1",)
    assert new.subscribed is True
    assert new.attributes == {"first_name": "New", "last_name": "Person", "signup": "2026-01-02"}
    old = client.find_contact_by_email("old@example.com")
    assert old is not None
    assert old.tags == ("other", "b1")
    assert old.name == "Old"
    assert old.attributes == {"plan": "pro", "city": "Oslo"}
    gone = client.find_contact_by_email("gone@example.com")
    assert gone is not None
    assert gone.subscribed is False
    assert gone.tags == ("other",)
    assert sb.hook("resubscriptions") == []  # the sync never flips subscribed back to true
    again = provider.upsert_members("b1", [MemberInput("new@example.com", {"first_name": "Newer"})])
    assert again[0].ok
    assert calls(sb, "POST", "/contacts") == 4


def test_upsert_conflict_searches_again(sb: LiteStartupSandbox, provider: LiteStartupProvider, wire: Wire) -> None:
    sb.faults.add("timeout", path=r"^/contacts$", method="POST", after_handler=True, times=1)
    (res,) = provider.upsert_members("b1", [MemberInput("x@example.com", {})])
    assert res.ok
    assert res.provider_id
    assert wire.count("POST", "/contacts") == 2
    assert wire.count("PUT", res.provider_id) == 1


def test_upsert_transient_failure_is_marked(sb: LiteStartupSandbox, provider: LiteStartupProvider) -> None:
    sb.faults.add("status", status=500, path=r"^/contacts$", method="GET")
    (res,) = provider.upsert_members("b1", [MemberInput("x@example.com", {})])
    assert not res.ok
    assert res.transient


def test_remove_members(sb: LiteStartupSandbox, provider: LiteStartupProvider, client: LiteStartupClient) -> None:
    client.create_contact("a@example.com", tags=["b1", "vip"])
    client.create_contact("b@example.com", tags=["b1"])
    res = provider.remove_members("b1", ["a@example.com", "missing@example.com"], unsubscribe=False)
    assert all(r.ok for r in res)
    a = client.find_contact_by_email("a@example.com")
    assert a is not None
    assert a.tags == ("vip",)
    assert a.subscribed is True
    (r,) = provider.remove_members("b1", ["b@example.com"], unsubscribe=True)
    b = client.find_contact_by_email("b@example.com")
    assert r.ok
    assert b is not None
    assert b.subscribed is False
    members = {m.email: m for m in provider.list_members("b1")}
    assert list(members) == ["b@example.com"]
    assert members["b@example.com"].state is MemberState.UNSUBSCRIBED
    assert members["b@example.com"].provider_status == "unsubscribed"


def test_list_members_and_suppressions(
    sb: LiteStartupSandbox, provider: LiteStartupProvider, client: LiteStartupClient
) -> None:
    provider.upsert_members("b1", [MemberInput("a@example.com", {"name": "Ann", "plan": "pro"})])
    client.create_contact("unsub@example.com", tags=["b1"], subscribed=False)
    client.create_contact("other@example.com", tags=["b2"], subscribed=False)
    client.send_email("bounce@example.com", SENDER, "s")
    client.send_email("bounce@example.com", SENDER, "again")
    sb.advance(60)
    (m, u) = sorted(provider.list_members("b1"), key=lambda x: x.email)
    assert m.state is MemberState.ACTIVE
    assert m.fields == {"name": "Ann", "plan": "pro"}
    assert m.provider_id
    assert u.state is MemberState.UNSUBSCRIBED
    everything = sorted((s.email, s.reason) for s in provider.suppressions())
    assert everything == [
        ("bounce@example.com", "bounced"),
        ("other@example.com", "unsubscribed"),
        ("unsub@example.com", "unsubscribed"),
    ]
    in_b1 = sorted((s.email, s.reason, s.book_id) for s in provider.suppressions("b1"))
    assert in_b1 == [  # subscribed=false is account-wide: it applies to every tag
        ("bounce@example.com", "bounced", None),
        ("other@example.com", "unsubscribed", None),
        ("unsub@example.com", "unsubscribed", None),
    ]


def test_adapter_campaigns(sb: LiteStartupSandbox, provider: LiteStartupProvider, client: LiteStartupClient) -> None:
    provider.upsert_members("b1", [MemberInput(f"r{i}@example.com", {}) for i in range(3)])
    client.create_contact("outsider@example.com", tags=["b2"])
    tmpl = client.create_template("T", html="<p>from template</p>")
    draft = CampaignDraft(
        name="Jan ck-0123456789abcdef", book_id="b1", subject="Hi", sender_name="News", sender_email=SENDER,
        template_id=tmpl.id,
    )  # fmt: skip
    camp = provider.create_campaign(draft)
    assert camp.state is CampaignState.PENDING
    assert camp.provider_status == "sending"
    assert camp.book_id == "b1"
    assert len(sb.hook("messages", campaign_id=camp.id)) == 3
    found = provider.find_campaign("ck-0123456789abcdef")
    assert found is not None
    assert found.id == camp.id
    assert provider.find_campaign("ck-ffffffffffffffff") is None
    sb.advance(3600)
    assert provider.get_campaign(camp.id).state is CampaignState.SENT
    stats = provider.campaign_stats(camp.id)
    assert (stats.sent, stats.delivered, stats.spam) == (3, 3, 0)
    assert stats.extra["open_rate"] == 0.0
    later = T0 + timedelta(days=2)
    sched = provider.create_campaign(
        CampaignDraft(
            name="Feb ck-1", book_id="b1", subject="S", sender_name="N", sender_email=SENDER, html="<p/>", send_at=later
        )
    )
    assert sched.state is CampaignState.PENDING
    assert sched.provider_status == "scheduled"
    assert sched.send_at == later
    assert [c.id for c in provider.list_campaigns()] == [sched.id, camp.id]
    assert provider.balance().not_exposed_reason == "not_exposed"


def test_campaign_refused_for_quota_reuses_the_draft(sb: LiteStartupSandbox, provider: LiteStartupProvider) -> None:
    provider.upsert_members("b1", [MemberInput("a@example.com", {})])
    draft = CampaignDraft(name="Q ck-2", book_id="b1", subject="S", sender_name="N", sender_email=SENDER, html="<p/>")
    sb.hook("set_usage", daily=350)
    with pytest.raises(QuotaError):
        provider.create_campaign(draft)
    sb.advance(86400)
    camp = provider.create_campaign(draft)
    assert camp.state is CampaignState.PENDING
    assert calls(sb, "POST", "/campaigns") == 1  # the refused draft was reused, not doubled


def test_campaign_state_map_and_payload_mapping() -> None:
    assert campaign_state("draft") is CampaignState.DRAFT
    assert campaign_state("scheduled") is CampaignState.PENDING
    assert campaign_state("sending") is CampaignState.PENDING
    assert campaign_state("sent") is CampaignState.SENT
    assert campaign_state("completed") is CampaignState.SENT
    assert campaign_state("weird") is CampaignState.UNKNOWN
    assert contact_payload({"first_name": "A", "last_name": None}) == ("A", {"first_name": "A", "last_name": None})
    assert contact_payload({"name": "Full", "x": 1}) == ("Full", {"x": 1})


# -- over real loopback HTTP -------------------------------------------------------------------------------


@pytest.mark.network
def test_client_over_real_loopback_http() -> None:
    sb = LiteStartupSandbox(rate_limit=False, outcomes=OutcomeRates.markers_only())
    sb.freeze_clock(T0)
    server = serve(sb.app)
    try:
        with LiteStartupClient(
            DEMO_API_KEY, f"{server.url}/client/v2", policy=NO_LIMITER, sleep=lambda s: None
        ) as client:
            assert client.verify().uuid
            provider = LiteStartupProvider(client)
            res = provider.upsert_members("b1", [MemberInput("loop@example.com", {"name": "Loop"})])
            assert res[0].ok
            assert [m.email for m in provider.list_members("b1")] == ["loop@example.com"]
            camp = provider.create_campaign(
                CampaignDraft(
                    name="L ck-9", book_id="b1", subject="S", sender_name="N", sender_email=SENDER, html="<p/>"
                )
            )
            assert camp.state is CampaignState.PENDING
            with pytest.raises(NotFoundError):
                client.get_contact("contact_missing")
    finally:
        server.stop()
