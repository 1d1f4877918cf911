"""LiteStartupClient and LiteStartupProvider in the current dialect, and telling the two dialects apart.

Every current-dialect operation runs against the sandbox serving that dialect over real loopback HTTP; malformed
answers and error mapping run against fixed answers (httpx.MockTransport).
"""

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from espcore.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    ValidationError,
)
from espcore.http import AnswerMismatch, HttpPolicy
from espcore.providers.base import CampaignDraft, CampaignState, MemberInput, MemberState
from espcore.providers.litestartup import (
    CURRENT_DIALECT,
    FORBIDDEN,
    LiteStartupClient,
    LiteStartupProvider,
    detect_dialect,
)
from espcore.sandbox.litestartup import DEMO_API_KEY, DEMO_DOMAIN, LiteStartupSandbox, OutcomeRates
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC)
SENDER = f"news@{DEMO_DOMAIN}"
NO_LIMITER = HttpPolicy(requests_per_second=0, max_attempts=2)


def no_sleep(seconds: float) -> None:
    """The client backs off through this: nothing sleeps."""


def new_sandbox(dialect: str = "current") -> LiteStartupSandbox:
    sb = LiteStartupSandbox(seed=3, rate_limit=False, outcomes=OutcomeRates.markers_only(), dialect=dialect)
    sb.freeze_clock(T0)
    return sb


@pytest.fixture
def sb() -> LiteStartupSandbox:
    return new_sandbox()


@pytest.fixture
def c(sb: LiteStartupSandbox) -> Iterator[LiteStartupClient]:
    """A current-dialect client over real loopback HTTP."""
    server = serve(sb.app)
    client = LiteStartupClient(
        DEMO_API_KEY, f"{server.url}/client/v2", policy=NO_LIMITER, sleep=no_sleep, dialect="current"
    )
    try:
        yield client
    finally:
        client.close()
        server.stop()


def in_process(sb: LiteStartupSandbox, dialect: str = "auto", key: str = DEMO_API_KEY) -> LiteStartupClient:
    return LiteStartupClient(
        key,
        "http://127.0.0.1/client/v2",
        policy=NO_LIMITER,
        transport=InProcessTransport(sb.app),
        sleep=no_sleep,
        dialect=dialect,  # type: ignore[arg-type]
    )


# -- telling the dialects apart ------------------------------------------------------------------------------


def test_detection_reads_the_two_documented_verify_answers() -> None:
    seed = detect_dialect({"uuid": "abc"})
    current = detect_dialect({"code": 200, "message": "ok", "data": {"uuid": "1-2-3"}})
    assert (seed.dialect, seed.uuid) == ("seed", "abc")
    assert (current.dialect, current.uuid) == ("current", "1-2-3")


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "uuid",
        {},
        {"uuid": ""},
        {"uuid": 5},
        {"uuid": "abc", "code": 200, "data": {"uuid": "abc"}},  # both shapes at once: neither
        {"code": 200, "message": "ok", "data": {}},
        {"code": 200, "message": "ok", "data": []},
        {"code": 200, "message": "ok", "data": {"uuid": None}},
        {"code": "200", "message": "ok", "data": {"uuid": "x"}},
        {"code": True, "data": {"uuid": "x"}},
        {"code": 401, "message": "", "data": {"error": "Invalid API key"}},  # an error sent with 200
        {"success": True, "data": {"uuid": "x"}},
    ],
)
def test_detection_never_guesses(payload: Any) -> None:
    with pytest.raises(AnswerMismatch):
        detect_dialect(payload)


@pytest.mark.parametrize("dialect", ["seed", "current"])
def test_auto_detects_each_sandbox_dialect_once(dialect: str) -> None:
    sb = new_sandbox(dialect)
    client = in_process(sb)
    assert "not yet detected" in repr(client)
    assert client.verify().uuid
    assert client.dialect.name == dialect
    assert client.current is (dialect == "current")
    calls = len(sb.request_log)
    list(client.list_contacts())
    assert [p for _, p, _ in list(sb.request_log)[calls:]].count("/verify") == 0  # decided once
    assert dialect in repr(client)


def test_auto_detection_refuses_a_malformed_verify_answer() -> None:
    answers = iter([httpx.Response(200, json={"code": 200, "data": {"uuid": ""}})])
    client = LiteStartupClient(
        "sk_live_x",
        "http://127.0.0.1/client/v2",
        policy=NO_LIMITER,
        transport=httpx.MockTransport(lambda request: next(answers)),
        sleep=no_sleep,
        dialect="auto",
    )
    with pytest.raises(UnexpectedResponseError):
        client.detect()
    assert "not yet detected" in repr(client)  # nothing adopted


def test_auto_with_a_bad_key_is_an_auth_error_in_either_dialect() -> None:
    for dialect in ("seed", "current"):
        with pytest.raises(AuthError):
            in_process(new_sandbox(dialect), key="sk_live_wrong").verify()


def test_an_explicit_dialect_against_the_other_server_is_no_success() -> None:
    with pytest.raises(UnexpectedResponseError):
        in_process(new_sandbox("seed"), dialect="current").verify()
    seed_on_current = in_process(new_sandbox("current"), dialect="seed")
    assert seed_on_current.verify().uuid  # the seed's reader tolerates a data-wrapped uuid, as it always did
    with pytest.raises(NotFoundError):  # but the seed's paths do not exist there
        list(seed_on_current.list_contacts())
    with pytest.raises(ConfigurationError):
        LiteStartupClient("sk_live_x", dialect="v3")  # type: ignore[arg-type]


# -- the current dialect's operations over loopback ----------------------------------------------------------


def test_account_usage_and_balance(c: LiteStartupClient, sb: LiteStartupSandbox) -> None:
    assert len(c.verify().uuid) == 36
    sb.hook("set_usage", monthly=1_234)
    usage = c.usage()
    assert usage.plan_type == "free"
    row = usage.feature("team.emails_per_month")
    assert row is not None
    assert (row.quota_limit, row.usage_count) == (10_000, 1_234)
    bal = c.balance()
    assert (bal.quota_used, bal.quota_allowed, bal.emails_left, bal.unlimited) == (1_234, 10_000, 8_766, False)
    assert bal.not_exposed_reason is None
    assert bal.extra["plan_type"] == "free"


def test_balance_of_a_member_key_says_forbidden(sb: LiteStartupSandbox) -> None:
    sb.hook("add_key", key="sk_member", account="acct_demo", role="member")
    member = in_process(sb, "current", key="sk_member")
    with pytest.raises(PermissionDeniedError):
        member.usage()
    bal = member.balance()
    assert bal.not_exposed_reason == FORBIDDEN
    assert (bal.quota_used, bal.quota_allowed, bal.emails_left) == (None, None, None)


def test_contacts_and_tags(c: LiteStartupClient) -> None:
    vip = c.create_tag("VIP", color="#FF5733")
    with pytest.raises(ConflictError):
        c.create_tag("vip")
    assert c.find_tag("Vip") == next(iter(c.list_tags()))
    created = c.create_contact(
        "ann@example.org",
        name="Ann Lee",
        first_name="Ann",
        last_name="Lee",
        company="Acme",
        tags=[vip.id],
        attributes={"country": "NZ"},
        subscribed=True,
    )
    assert created.email == "ann@example.org"
    got = c.get_contact(created.id)
    assert (got.first_name, got.last_name, got.company, got.subscribed) == ("Ann", "Lee", "Acme", True)
    assert (got.tags, dict(got.attributes)) == ((vip.id,), {"country": "NZ"})
    with pytest.raises(ConflictError):
        c.create_contact("ANN@example.org")
    with pytest.raises(ValidationError):
        c.create_contact("not-an-address")
    page = c.list_contacts_page(1, 1, tag=vip.id, subscribed=True)
    assert (page.info.total, [x.email for x in page.items]) == (1, ["ann@example.org"])
    assert [x.email for x in c.search_contacts("acme")] == ["ann@example.org"]
    found = c.find_contact_by_email("ANN@EXAMPLE.ORG")
    assert found is not None
    assert found.tags == (vip.id,)  # the detail, not the bare search item
    assert c.find_contact_by_email("nobody@example.org") is None
    c.set_contact_attributes(created.id, {"city": "Auckland"})
    assert dict(c.get_contact(created.id).attributes) == {"country": "NZ", "city": "Auckland"}
    other = c.create_tag("Other")
    assert c.add_contact_tags(created.id, [other.id]).tags == (vip.id, other.id)
    assert c.remove_contact_tags(created.id, [vip.id]).tags == (other.id,)
    assert c.set_contact_subscribed(created.id, False).subscribed is False
    assert [x.email for x in c.list_contacts(subscribed=False)] == ["ann@example.org"]
    assert c.update_contact(created.id, phone="+64 1").phone == "+64 1"
    c.update_tag(other.id, name="Renamed")
    assert [t.name for t in c.list_tags(search="renamed")] == ["Renamed"]
    c.delete_tag(other.id)
    assert c.get_contact(created.id).tags == ()
    c.delete_contact(created.id)
    with pytest.raises(NotFoundError):
        c.get_contact(created.id)


def test_import_and_export(c: LiteStartupClient) -> None:
    tag = c.create_tag("Imported")
    c.create_contact("old@example.org")
    rows = [
        {"email": "new@example.org", "first_name": "New", "company": "Acme"},
        {"email": "old@example.org"},
        {"email": "broken"},
    ]
    result = c.import_contacts(rows, tags=[tag.id])
    assert (result.imported, result.skipped, result.failed) == (1, 1, 1)
    exported = c.export_contacts(tags=[tag.id])
    assert [(r.email, r.first_name, r.company, r.tags) for r in exported] == [
        ("new@example.org", "New", "Acme", ("Imported",))
    ]
    assert {r.email for r in c.export_contacts()} == {"new@example.org", "old@example.org"}


def test_templates(c: LiteStartupClient) -> None:
    t = c.create_template("Welcome", html="<p>Hi {{name}}</p>", description="d", category="onboarding")
    assert t.string_id
    assert t.string_id.startswith("welcome-")
    with pytest.raises(ValueError, match="seed"):
        c.create_template("X", html="<p/>", subject="only in the seed")
    assert c.get_template(t.id).html == "<p>Hi {{name}}</p>"
    assert c.template_content(t.id).description == "d"
    assert c.update_template(t.id, name="Welcome 2").name == "Welcome 2"
    copy = c.copy_template(t.id)
    assert copy.name == "Welcome 2 (Copy)"
    assert [x.id for x in c.list_templates()] == [copy.id, t.id]
    c.delete_template(copy.id)
    with pytest.raises(NotFoundError):
        c.get_template(copy.id)


def test_emails_and_notifications(c: LiteStartupClient, sb: LiteStartupSandbox) -> None:
    tpl = c.create_template("Hello", html="<p>Hello {{name}}</p>")
    assert tpl.string_id is not None
    sent = c.send_email("a@example.org", SENDER, "Hi", template_id=tpl.string_id, variables={"name": "Ann"})
    assert sent.message_id
    with pytest.raises(ValidationError):  # the documented 500 for a missing field is a validation error
        c.send_email("a@example.org", SENDER, "Hi")
    with pytest.raises(PermissionDeniedError):
        c.send_email("a@example.org", "x@elsewhere.example", "Hi", html="<p/>")
    with pytest.raises(ValueError, match="seed"):
        c.list_emails_page(1, 20, sort="status")
    page = c.list_emails_page(1, 20, status="sent")
    assert page.info.total == 1
    assert [e.to for e in page.items] == [("a@example.org",)]
    listed = next(iter(c.list_emails()))
    got = c.get_email(listed.id)
    assert (got.html, got.message_id) == ("<p>Hello Ann</p>", listed.message_id)
    with pytest.raises(NotFoundError):  # the documented 500 "error" of a missing email
        c.get_email("999999")
    note = c.send_notification("Alert", "<p>CPU</p>")
    assert note.message_id
    assert [m["to"] for m in sb.hook("messages")][-1] == ["owner@demo.example"]
    sb.hook("set_usage", daily=350)
    with pytest.raises(QuotaError):
        c.send_email("a@example.org", SENDER, "Hi", html="<p/>")


def test_campaigns(c: LiteStartupClient, sb: LiteStartupSandbox) -> None:
    tag = c.create_tag("Readers")
    for i in range(3):
        c.create_contact(f"r{i}@example.org", tags=[tag.id])
    draft = c.create_campaign("Spring", "Hello", "<p>hi</p>", SENDER, tag_ids=[tag.id], from_name="Shop")
    assert (draft.status, draft.tag_ids) == ("draft", (tag.id,))
    by_name = c.create_campaign("By name", "Hello", "<p>hi</p>", SENDER, "tag:Readers")
    assert c.get_campaign(by_name.id).tag == tag.id
    with pytest.raises(NotFoundError):
        c.create_campaign("Nobody", "Hello", "<p>hi</p>", SENDER, "tag:Nope")
    updated = c.update_campaign(draft.id, subject="Hello again")
    assert (updated.subject, updated.from_name, updated.tag) == ("Hello again", "Shop", tag.id)
    assert c.send_campaign(draft.id).status == "sending"
    assert c.get_campaign(draft.id).status == "sending"
    sb.advance(3600)
    assert c.get_campaign(draft.id).status == "sent"
    stats = c.campaign_stats(draft.id)
    assert (stats.sent, stats.delivered, stats.spam_reported) == (3, 3, None)
    assert stats.bounce_rate == 0.0
    assert [x.id for x in c.list_campaigns(status="sent")] == [draft.id]
    when = T0 + timedelta(hours=5)
    scheduled = c.update_campaign(by_name.id, scheduled_at=when)
    assert (scheduled.status, scheduled.scheduled_at) == ("scheduled", when)
    assert c.update_campaign(by_name.id, unschedule=True).status == "draft"
    copy = c.copy_campaign(draft.id)
    assert copy.status == "draft"
    c.delete_campaign(copy.id)
    with pytest.raises(NotFoundError):
        c.get_campaign(copy.id)
    sb.hook("set_review_rejects", phrases=["prize"])
    risky = c.create_campaign("Risky", "Win a prize", "<p>x</p>", SENDER, tag_ids=[tag.id])
    with pytest.raises(ValidationError, match="AI review"):
        c.send_campaign(risky.id)
    assert c.get_campaign(risky.id).status == "draft"


def test_seed_only_operations_say_so(c: LiteStartupClient) -> None:
    for call in (
        lambda: c.create_webhook("https://example.org/h", ["email.opened"]),
        lambda: list(c.list_webhooks()),
        lambda: c.update_webhook("wh_1", active=False),
        lambda: c.delete_webhook("wh_1"),
    ):
        with pytest.raises(ConfigurationError, match="seed"):
            call()


def test_current_only_operations_say_so_on_the_seed() -> None:
    seed = in_process(new_sandbox("seed"), "seed")
    for call in (
        seed.usage,
        lambda: list(seed.list_tags()),
        lambda: seed.create_tag("x"),
        lambda: seed.import_contacts([{"email": "a@example.org"}]),
        lambda: seed.export_contacts(),
        lambda: seed.search_contacts("a"),
        lambda: seed.send_notification("s", "c"),
        lambda: seed.copy_campaign("1"),
        lambda: seed.copy_template("1"),
        lambda: seed.template_content("1"),
    ):
        with pytest.raises(ConfigurationError, match="current"):
            call()


# -- the adapter on the current dialect ----------------------------------------------------------------------


def test_adapter_books_members_suppressions_and_events(c: LiteStartupClient, sb: LiteStartupSandbox) -> None:
    p = LiteStartupProvider(c)
    book = p.ensure_book("Customers")
    assert p.ensure_book("customers").id == book.id  # found, not doubled
    found = p.find_book("Customers")
    assert found is not None
    assert (found.id, found.member_count) == (book.id, 0)  # a tag exists without members
    rows = [MemberInput("ann@example.org", {"first_name": "Ann", "last_name": "Lee", "city": "Rome"})]
    assert all(r.ok for r in p.upsert_members(book.id, rows))
    member = next(iter(p.list_members(book.id)))
    assert member.state is MemberState.ACTIVE
    assert member.fields == {"first_name": "Ann", "last_name": "Lee", "city": "Rome", "name": "Ann Lee"}
    contact = c.find_contact_by_email("ann@example.org")
    assert contact is not None
    assert (contact.first_name, dict(contact.attributes)) == ("Ann", {"city": "Rome"})  # native names, not attributes
    assert [(b.name, b.member_count, b.active_count) for b in p.list_books()] == [("Customers", 1, 1)]
    p.remove_members(book.id, ["ann@example.org"], unsubscribe=True)
    assert [(s.email, s.reason) for s in p.suppressions()] == [("ann@example.org", "unsubscribed")]
    c.send_email("b@example.org", SENDER, "Hi", html="<p/>")
    sb.advance(10)
    c.send_email("c@example.org", SENDER, "Hi", html="<p/>")
    events = list(p.delivery_events(T0, T0 + timedelta(seconds=5)))
    assert [(e.email, e.status) for e in events] == [("b@example.org", "sent")]
    assert events[0].extra["message_id"]


def test_adapter_launches_and_schedules(c: LiteStartupClient, sb: LiteStartupSandbox) -> None:
    p = LiteStartupProvider(c)
    book = p.ensure_book("Readers")
    p.upsert_members(book.id, [MemberInput(f"r{i}@example.org", {}) for i in range(2)])
    base = CampaignDraft(
        name="Spring ck-1", book_id=book.id, subject="S", sender_name="Shop", sender_email=SENDER, html="<p>x</p>"
    )
    sent = p.create_campaign(base)
    assert (sent.state, sent.book_id) == (CampaignState.PENDING, book.id)
    later = T0 + timedelta(hours=1)
    scheduled = p.create_campaign(replace(base, name="Later ck-2", send_at=later))
    assert (scheduled.state, scheduled.send_at) == (CampaignState.PENDING, later)
    sb.advance(2 * 3600)
    assert p.get_campaign(scheduled.id).state is CampaignState.SENT
    found = p.find_campaign("ck-1")
    assert found is not None
    assert (found.id, found.book_id, found.subject) == (sent.id, book.id, "S")
    assert p.campaign_stats(sent.id).sent == 2


# -- error mapping and malformed answers of the current dialect --------------------------------------------------


def answered(status: int, body: Any, headers: dict[str, str] | None = None) -> LiteStartupClient:
    content = body if isinstance(body, bytes) else httpx.Response(200, json=body).content
    ctype = "text/html" if content.lstrip().startswith(b"<") else "application/json"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": ctype, **(headers or {})})

    return LiteStartupClient(
        "sk_live_x",
        "http://127.0.0.1/client/v2",
        policy=HttpPolicy(requests_per_second=0, max_attempts=1),
        transport=httpx.MockTransport(handler),
        sleep=no_sleep,
        dialect="current",
    )


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "", AuthError),
        (403, "API key lacks the required scope (all)", PermissionDeniedError),
        (404, "Contact not found", NotFoundError),
        (400, "Contact already exists", ConflictError),
        (400, "Invalid email or contact already exists", ValidationError),
        (400, "Invalid data", ValidationError),
        (413, "Request body too large", ValidationError),
        (429, "monthly usage exceeded the limit", QuotaError),
        (429, "Daily email usage exceeded the limit", QuotaError),
        (429, "Rate limit exceeded", RateLimitError),
        (500, "From email or to email is required", ValidationError),
        (500, "Internal error", ServerError),
    ],
)
def test_errors_are_classified_by_status_and_message(status: int, message: str, expected: type) -> None:
    with pytest.raises(expected) as info, answered(status, {"code": status, "message": message, "data": []}) as c:
        c.get_contact("1")
    assert info.value.status == status
    assert type(info.value) is expected


def test_a_500_error_is_not_found_only_for_an_email() -> None:
    with answered(500, {"code": 500, "message": "error", "data": []}) as c:
        with pytest.raises(NotFoundError):
            c.get_email("1")
        with pytest.raises(ServerError):
            c.get_contact("1")


def test_the_current_parser_of_the_dialect_object() -> None:
    assert CURRENT_DIALECT.error_envelope({"code": 500, "message": "x", "data": []}) == (500, "x")
    assert CURRENT_DIALECT.error_envelope({"code": 200, "message": "ok", "data": []}) is None


#: every call of the current dialect that reads an answer, with a canned answer that is not its success
CURRENT_CALLS: dict[str, Callable[[LiteStartupClient], Any]] = {
    "verify": lambda c: c.verify(),
    "usage": lambda c: c.usage(),
    "list_contacts_page": lambda c: c.list_contacts_page(),
    "list_contacts": lambda c: list(c.list_contacts()),
    "search_contacts": lambda c: c.search_contacts("a"),
    "find_contact_by_email": lambda c: c.find_contact_by_email("a@example.org"),
    "get_contact": lambda c: c.get_contact("1"),
    "create_contact": lambda c: c.create_contact("a@example.org"),
    "update_contact": lambda c: c.update_contact("1", name="A"),
    "delete_contact": lambda c: c.delete_contact("1"),
    "import_contacts": lambda c: c.import_contacts([{"email": "a@example.org"}]),
    "export_contacts": lambda c: c.export_contacts(),
    "list_tags": lambda c: list(c.list_tags()),
    "create_tag": lambda c: c.create_tag("T"),
    "update_tag": lambda c: c.update_tag("1", name="U"),
    "delete_tag": lambda c: c.delete_tag("1"),
    "create_template": lambda c: c.create_template("T", html="<p/>"),
    "get_template": lambda c: c.get_template("1"),
    "template_content": lambda c: c.template_content("1"),
    "list_templates": lambda c: list(c.list_templates()),
    "update_template": lambda c: c.update_template("1", name="U"),
    "copy_template": lambda c: c.copy_template("1"),
    "delete_template": lambda c: c.delete_template("1"),
    "send_email": lambda c: c.send_email("a@example.org", SENDER, "S", html="<p/>"),
    "send_notification": lambda c: c.send_notification("S", "<p/>"),
    "list_emails_page": lambda c: c.list_emails_page(),
    "list_emails": lambda c: list(c.list_emails()),
    "get_email": lambda c: c.get_email("1"),
    "create_campaign": lambda c: c.create_campaign("C", "S", "<p/>", SENDER, tag_ids=["1"]),
    "get_campaign": lambda c: c.get_campaign("1"),
    "list_campaigns": lambda c: list(c.list_campaigns()),
    "update_campaign": lambda c: c.update_campaign("1", subject="S"),
    "copy_campaign": lambda c: c.copy_campaign("1"),
    "delete_campaign": lambda c: c.delete_campaign("1"),
    "send_campaign": lambda c: c.send_campaign("1"),
    "campaign_stats": lambda c: c.campaign_stats("1"),
}
MALFORMED: dict[str, Any] = {
    "error_with_200": {"code": 500, "message": "From email or to email is required", "data": []},
    "seed_envelope": {"success": True, "data": {"id": "x", "email": "a@example.org", "uuid": "u"}},
    "no_envelope": {"uuid": "u", "messageId": "m"},
    "wrong_data": {"code": 200, "message": "Success", "data": "oops"},
    "wrong_items": {
        "code": 200,
        "message": "Success",
        "data": {"contacts": [1], "emails": [1], "tags": [1], "templates": [1], "campaigns": [1]},
    },
    "html": b"<html><body>Whoops</body></html>",
    "truncated": b'{"code": 200, "data": {"id": 1',
}
#: an update or delete answers {"code":200,"message":..,"data":[]}: what ``data`` holds is not read
READS_NO_DATA = {"delete_contact", "update_tag", "delete_tag", "delete_template", "delete_campaign", "send_campaign"}


@pytest.mark.parametrize("body_name", sorted(MALFORMED))
@pytest.mark.parametrize("name", sorted(CURRENT_CALLS))
def test_a_malformed_answer_is_never_a_success(name: str, body_name: str) -> None:
    if name in READS_NO_DATA and body_name in ("wrong_data", "wrong_items"):
        with answered(200, MALFORMED[body_name]) as c:  # a code-200 envelope is this call's whole success
            CURRENT_CALLS[name](c)
        return
    with answered(200, MALFORMED[body_name]) as c, pytest.raises(UnexpectedResponseError) as info:
        CURRENT_CALLS[name](c)
    assert info.value.status == 200
    assert not info.value.retryable
