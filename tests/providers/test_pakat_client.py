"""PakatClient and PakatProvider against the Pakat sandbox (in-process, plus real loopback HTTP)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import espcore.sandbox.pakat as pakat_sandbox
from espcore.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from espcore.providers.base import CampaignDraft, CampaignState, EspProvider, MemberInput, MemberState
from espcore.providers.pakat import (
    PAKAT_BASE_URL,
    PakatClient,
    PakatMutexError,
    PakatProvider,
    TransactionalAttachment,
    field_tag,
    flatten_form,
    parse_pakat_error,
)
from espcore.sandbox.pakat import DEMO_API_KEY, DEMO_SENDING_DOMAIN, PakatSandbox, api_base_url
from espcore.sandbox.server import quiet_uvicorn_errors, serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BASE = "http://127.0.0.1/api"
SENDER = f"news@{DEMO_SENDING_DOMAIN}"


class Recorder(httpx.BaseTransport):
    """Wraps a transport and keeps every request (method, path, content type, body)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, str, bytes]] = []
        self.before: Any = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests.append((request.method, request.url.path, request.headers.get("content-type", ""), body))
        if self.before is not None:
            self.before(request)
        return self.inner.handle_request(request)


@pytest.fixture
def sandbox() -> PakatSandbox:
    sb = PakatSandbox(seed=5)
    sb.reset(demo=True)
    sb.freeze_clock(T0)
    return sb


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def recorder(sandbox: PakatSandbox) -> Recorder:
    return Recorder(InProcessTransport(sandbox.app))


@pytest.fixture
def client(recorder: Recorder, sleeps: list[float]) -> Iterator[PakatClient]:
    c = PakatClient(DEMO_API_KEY, BASE, transport=recorder, sleep=sleeps.append)
    yield c
    c.close()


@pytest.fixture
def provider(client: PakatClient) -> PakatProvider:
    return PakatProvider(client, from_email=SENDER, now=lambda: T0)


def new_list(client: PakatClient, name: str = "Buyers") -> str:
    return client.create_list(name, "desc", from_name="Shop", from_email=SENDER, reply_to=SENDER, opt_in="double")


def new_campaign(client: PakatClient, list_uid: str, **kw: Any) -> str:
    args: dict[str, Any] = {
        "name": "Sale ck-00aa",
        "list_uid": list_uid,
        "from_name": "Shop",
        "from_email": SENDER,
        "subject": "Hi",
        "reply_to": SENDER,
        "send_at": T0,
        "html": "<p>سلام</p>",
    }
    args.update(kw)
    return client.create_campaign(**args)


# -- basics, encoding, errors ----------------------------------------------------------------------------------------


def test_constants_repr_and_redaction(sandbox: PakatSandbox, sleeps: list[float]) -> None:
    assert PAKAT_BASE_URL == "https://new.pakat.net/api"
    c = PakatClient("secret-key-123456", BASE, transport=InProcessTransport(sandbox.app), sleep=sleeps.append)
    assert "secret-key-123456" not in repr(c)
    with pytest.raises(AuthError) as info:
        c.quota()
    assert info.value.status == 400
    assert "Invalid API key" in info.value.message
    assert "secret-key-123456" not in str(info.value)
    assert sleeps == []  # auth errors are not retried


def test_blocked_account_is_permission_denied(sandbox: PakatSandbox, client: PakatClient) -> None:
    sandbox.hook("block_api")
    with pytest.raises(PermissionDeniedError) as info:
        client.quota()
    assert info.value.status == 400
    sandbox.hook("block_api", message=None)
    assert client.quota().used == 0


def test_flatten_form_builds_php_bracket_keys() -> None:
    flat = flatten_form(
        {"campaign": {"name": "n", "template": {"content": "c"}, "skip": None}, "list": [{"a": 1}], "b": True}
    )
    assert flat == {"campaign[name]": "n", "campaign[template][content]": "c", "list[0][a]": "1", "b": "yes"}
    assert field_tag("first_name") == "FNAME"
    assert field_tag("city-name") == "CITY_NAME"


def _resp(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "https://new.pakat.net/api/x"))


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, "Invalid API key. Please refer to the documentation.", AuthError),
        (400, "Invalid API request params. Please refer to the documentation.", AuthError),
        (400, "Your IP address is not allowed.", PermissionDeniedError),
        (400, "The campaign does not allow marking it as sent!", ConflictError),
        (403, "Your sending quota has been reached.", QuotaError),
        (403, "You have reached the maximum number of allowed campaigns.", QuotaError),
        (404, "The list does not exist.", NotFoundError),
        (409, "The subscriber already exists in this list.", ConflictError),
        (409, "This email address is blacklisted.", ConflictError),
        (409, "The subscriber does not exist in this list.", NotFoundError),
        (409, "The maximum number of allowed subscribers has been reached.", QuotaError),
        (409, "Unable to acquire the mutex lock, please try again.", PakatMutexError),
        (422, {"general": {"name": "Name cannot be blank."}}, ValidationError),
        (422, "You have reached the maximum number of allowed lists.", QuotaError),
        (422, "This campaign is not ediable.", ConflictError),
        (429, "Too Many Requests", RateLimitError),
        (503, "Service Unavailable.", ServerError),
    ],
)
def test_error_parser(status: int, error: Any, expected: type) -> None:
    err = parse_pakat_error(_resp(status, {"status": "error", "error": error}))
    assert type(err) is expected
    assert err.status == status


def test_error_parser_field_detail_and_html() -> None:
    err = parse_pakat_error(_resp(422, {"status": "error", "error": {"general": {"name": "Name cannot be blank."}}}))
    assert err.fields == {"general.name": "Name cannot be blank."}
    err = parse_pakat_error(_resp(422, {"status": "error", "error": "To email is bad.<br />Subject cannot be blank."}))
    assert err.message == "To email is bad.; Subject cannot be blank."
    html = httpx.Response(502, text="<html>bad gateway</html>", request=httpx.Request("GET", "https://x.io/a"))
    assert isinstance(parse_pakat_error(html), ServerError)
    assert PakatMutexError.retryable


# -- lists and fields ------------------------------------------------------------------------------------------------


def test_lists_crud_copy_and_fields(client: PakatClient) -> None:
    uids = [new_list(client, f"L{i}") for i in range(12)]
    listed = list(client.lists(per_page=10))  # two pages
    assert [x.list_uid for x in listed] == uids[::-1]
    lst = client.get_list(uids[0])
    assert (lst.name, lst.defaults["from_email"]) == ("L0", SENDER)
    client.update_list(uids[0], name="Renamed")
    assert client.get_list(uids[0]).name == "Renamed"
    copy_uid = client.copy_list(uids[0])
    assert client.get_list(copy_uid).name == "Renamed (copy)"
    client.delete_list(copy_uid)
    with pytest.raises(NotFoundError):
        client.get_list(copy_uid)
    with pytest.raises(ValidationError) as info:
        client.create_list("", "d", from_name="x", from_email="bad", reply_to=SENDER)
    assert info.value.fields["general.name"] == "Name cannot be blank."
    field = client.create_list_field(uids[0], "CITY", "City", required=True)
    assert field is not None
    assert field.required
    assert [f.tag for f in client.list_fields(uids[0])] == ["EMAIL", "FNAME", "LNAME", "CITY"]
    with pytest.raises(ValidationError) as info:
        client.create_list_field(uids[0], "CITY", "City")
    assert "tag" in info.value.fields


# -- subscribers -------------------------------------------------------------------------------------------------


def test_subscriber_methods(sandbox: PakatSandbox, client: PakatClient) -> None:
    a, b = new_list(client, "A"), new_list(client, "B")
    sub = client.create_subscriber(a, "Ali@X.io", {"FNAME": "Ali"})
    assert sub.subscriber_uid
    assert sub.date_added is None  # the NOW() expression is not a date
    got = client.get_subscriber(a, sub.subscriber_uid)
    assert (got.email, got.status, got.fields["FNAME"]) == ("Ali@X.io", "confirmed", "Ali")
    ref = client.search_subscriber(a, "ali@x.io")
    assert ref is not None
    assert ref.subscriber_uid == sub.subscriber_uid
    assert client.search_subscriber(a, "none@x.io") is None
    with pytest.raises(NotFoundError):
        client.search_subscriber("zzzzzzzzzzzzz", "ali@x.io")  # a missing list is not "no subscriber"
    client.create_subscriber(b, "ali@x.io", status=None)  # double opt-in default
    assert {m.list_uid: m.status for m in client.search_subscriber_in_all_lists("ali@x.io")} == {
        a: "confirmed",
        b: "unconfirmed",
    }
    client.update_subscriber(a, sub.subscriber_uid, {"LNAME": "Rezaei"})
    assert client.get_subscriber(a, sub.subscriber_uid).fields == {"FNAME": "Ali", "LNAME": "Rezaei"}
    with pytest.raises(ConflictError):
        client.create_subscriber(a, "ali@x.io")
    with pytest.raises(NotFoundError):  # 409 on the wire
        client.update_subscriber(a, "zzzzzzzzzzzzz", {"FNAME": "x"})
    client.create_subscriber(a, "black@x.io", status="blacklisted")
    with pytest.raises(ConflictError) as info:
        client.create_subscriber(b, "black@x.io")
    assert "blacklisted" in info.value.message
    assert [s.email for s in client.list_subscribers(a, status="blacklisted")] == ["black@x.io"]
    client.unsubscribe(a, sub.subscriber_uid)
    assert client.get_subscriber(a, sub.subscriber_uid).status == "unsubscribed"
    c = client.create_subscriber(b, "carol@x.io")
    client.unsubscribe_from_all_lists("carol@x.io")
    assert client.get_subscriber(b, c.subscriber_uid).status == "unsubscribed"
    client.delete_subscriber(a, sub.subscriber_uid)
    with pytest.raises(NotFoundError):
        client.get_subscriber(a, sub.subscriber_uid)
    sandbox.hook("set_limits", max_subscribers=1)
    with pytest.raises(QuotaError):
        client.create_subscriber(a, "over@x.io")


def test_required_fields_surface_as_field_errors(client: PakatClient) -> None:
    a = new_list(client)
    client.create_list_field(a, "CITY", "City", required=True)
    with pytest.raises(ValidationError) as info:
        client.create_subscriber(a, "x@x.io")
    assert info.value.fields == {"CITY": "The field CITY is required by the list but it has not been provided!"}


def test_pagination_dedupes_rows_shifted_by_inserts(
    sandbox: PakatSandbox, client: PakatClient, recorder: Recorder
) -> None:
    a = new_list(client)
    client.bulk_add_subscribers(a, [{"EMAIL": f"u{i}@x.io"} for i in range(25)])
    adder = PakatClient(DEMO_API_KEY, BASE, transport=InProcessTransport(sandbox.app), sleep=lambda s: None)
    added: list[str] = []

    def insert_mid_crawl(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.params.get("page") == "2" and not added:
            added.append(adder.create_subscriber(a, "late@x.io").email)

    recorder.before = insert_mid_crawl
    emails = [s.email for s in client.list_subscribers(a, per_page=10)]
    assert added == ["late@x.io"]
    assert len(emails) == len(set(emails)) == 25  # the shifted row is not repeated
    assert set(emails) == {f"u{i}@x.io" for i in range(25)}


def test_bulk_add_in_order_and_chunked(client: PakatClient) -> None:
    a = new_list(client)
    client.create_subscriber(a, "exists@x.io")
    rows = [{"EMAIL": "n1@x.io", "FNAME": "N"}, {"EMAIL": "exists@x.io"}, {"EMAIL": "bad"}, {"EMAIL": "n2@x.io"}]
    rows += [{"EMAIL": f"c{i}@x.io"} for i in range(5)]
    res = client.bulk_add_subscribers(a, rows, chunk_size=4)
    assert [r.index for r in res] == list(range(9))
    assert [r.ok for r in res] == [True, False, False, True, True, True, True, True, True]
    assert res[1].exists
    assert res[2].errors == {"EMAIL": "Please provide a valid email address."}
    assert client.get_subscriber(a, res[0].subscriber_uid or "").status == "confirmed"


def test_bulk_items_past_the_cap_are_reported_missing(monkeypatch: pytest.MonkeyPatch, client: PakatClient) -> None:
    monkeypatch.setattr(pakat_sandbox, "BULK_CAP", 3)
    a = new_list(client)
    res = client.bulk_add_subscribers(a, [{"EMAIL": f"u{i}@x.io"} for i in range(5)])
    assert [r.ok for r in res] == [True, True, True, False, False]
    assert res[4].missing


def test_bulk_over_10000_rows_is_split(client: PakatClient, recorder: Recorder) -> None:
    a = new_list(client)
    res = client.bulk_add_subscribers(a, [{"EMAIL": f"u{i}@x.io"} for i in range(10_001)])
    assert len(res) == 10_001
    assert all(r.ok for r in res)
    assert sum(1 for m, p, *_ in recorder.requests if p.endswith("/bulk")) == 2


# -- campaigns, templates, segments --------------------------------------------------------------------------------


def test_campaign_methods(sandbox: PakatSandbox, client: PakatClient) -> None:
    a = new_list(client)
    for i in range(30):
        client.create_subscriber(a, f"u{i}@x.io")
    uid = new_campaign(client, a)
    c = client.get_campaign(uid)
    assert (c.status, c.list_uid, c.subject) == ("draft", a, "Hi")
    assert c.send_at == datetime(2026, 3, 1, 9, 0)
    client.update_campaign(uid, subject="Edited")
    assert client.get_campaign(uid).subject == "Edited"
    with pytest.raises(ConflictError):
        client.mark_campaign_sent(uid)
    copy_uid = client.copy_campaign(uid)
    assert [x.campaign_uid for x in client.campaigns()] == [copy_uid, uid]
    client.update_campaign(uid, status="pending-sending")
    assert client.get_campaign(uid).status == "sending"
    with pytest.raises(ConflictError):
        client.delete_campaign(uid)
    assert client.pause_unpause_campaign(uid) == "paused"
    assert client.pause_unpause_campaign(uid) == "sending"
    logs = list(client.delivery_logs(uid, per_page=10))
    assert len(logs) == 30
    assert all(log.delivery_confirmed and log.status == "success" for log in logs)
    assert client.delivery_log_by_message_id(logs[0].email_message_id or "").subscriber_uid == logs[0].subscriber_uid
    sandbox.advance(3 * 86400)
    stats = client.campaign_stats(uid)
    assert stats.campaign_status == "sent"
    assert stats.processed_count == 30
    assert stats.counts["delivery_success"] == 30
    assert stats.rates["delivery_success"] == 100.0
    assert len(list(client.campaign_bounces(uid))) == stats.counts["bounces"]
    assert len(list(client.campaign_unsubscribes(uid))) == stats.counts["unsubscribes"]
    with pytest.raises(ConflictError):
        client.update_campaign(uid, subject="late")
    client.delete_campaign(copy_uid)
    with pytest.raises(NotFoundError):
        client.get_campaign(copy_uid)
    paused = new_campaign(client, a, status="paused")
    assert client.mark_campaign_sent(paused) == "sent"


def test_campaign_send_at_uses_customer_timezone(sandbox: PakatSandbox, recorder: Recorder) -> None:
    sandbox.hook("set_timezone", timezone="Asia/Tehran")
    client = PakatClient(DEMO_API_KEY, BASE, transport=recorder, sleep=lambda s: None, timezone="Asia/Tehran")
    a = new_list(client)
    client.create_subscriber(a, "x@x.io")
    uid = new_campaign(client, a, send_at=T0 + timedelta(hours=1), status="pending-sending")
    assert client.get_campaign(uid).send_at == datetime(2026, 3, 1, 13, 30)  # 10:00 UTC in Tehran
    sandbox.advance(59 * 60)
    assert client.get_campaign(uid).status == "pending-sending"
    sandbox.advance(60)
    assert client.get_campaign(uid).status == "sending"


def test_campaign_limits_and_quota(sandbox: PakatSandbox, client: PakatClient) -> None:
    a = new_list(client)
    sandbox.hook("set_quota", allowed=10, used=10)
    with pytest.raises(QuotaError) as info:
        new_campaign(client, a)
    assert info.value.message == "Your sending quota has been reached."
    sandbox.hook("set_quota", allowed="∞")
    q = client.quota()
    assert q.unlimited
    assert q.allowed is None
    sandbox.hook("set_limits", max_campaigns=0)
    with pytest.raises(QuotaError):
        new_campaign(client, a)


def test_templates_and_segments(client: PakatClient) -> None:
    uid = client.create_template("Promo", "<b>سلام</b>")
    assert client.get_template(uid).content == "<b>سلام</b>"
    assert [t.name for t in client.templates(name="promo")] == ["Promo"]
    client.update_template(uid, name="Promo 2", html="<i>x</i>")
    t = client.get_template(uid)
    assert (t.name, t.content) == ("Promo 2", "<i>x</i>")
    client.delete_template(uid)
    with pytest.raises(NotFoundError):
        client.get_template(uid)
    a = new_list(client)
    client.create_subscriber(a, "ali@shop.ir")
    client.create_subscriber(a, "bob@x.io")
    email_field = client.list_fields(a)[0]
    seg = client.create_segment(a, "Iran", [{"field_id": email_field.field_id, "operator_id": 6, "value": ".ir"}])
    assert [(s.segment_uid, s.subscribers_count) for s in client.segments(a)] == [(seg, 1)]
    assert [s.email for s in client.segment_subscribers(a, seg)] == ["ali@shop.ir"]


def test_transactional_emails(sandbox: PakatSandbox, client: PakatClient) -> None:
    uid = client.create_transactional_email(
        to_email="ali@x.io",
        to_name="Ali",
        from_name="Shop",
        from_email=SENDER,
        subject="Order",
        html="<p>ok</p>",
        send_at=T0 + timedelta(hours=1),
        attachments=[TransactionalAttachment("a.pdf", b"%PDF-1.4 hello", "application/pdf")],
    )
    email = client.get_transactional_email(uid)
    assert (email.status, email.send_at) == ("unsent", datetime(2026, 3, 1, 10, 0))
    assert email.attachments == (TransactionalAttachment("a.pdf", b"%PDF-1.4 hello", "application/pdf"),)
    assert next(iter(client.transactional_emails())).attachments == ()  # the listing leaves them out
    sandbox.advance(3600)
    assert client.get_transactional_email(uid).status == "sent"
    template = next(iter(client.templates())).template_uid
    uid2 = client.create_transactional_email(
        to_email="b@x.io", to_name="B", from_name="Shop", subject="T", template_uid=template, params={"body": "Thanks"}
    )
    assert "Thanks" in sandbox.snapshot()["transactional"][uid2]["body"]
    assert [e.email_uid for e in client.transactional_emails()] == [uid2, uid]
    client.delete_transactional_email(uid)
    with pytest.raises(NotFoundError):
        client.get_transactional_email(uid)
    with pytest.raises(ValidationError) as info:
        client.create_transactional_email(
            to_email="bad", to_name="B", from_name="S", subject="s", html="x", from_email="me@unverified.io"
        )
    assert len(info.value.fields) == 2


# -- the HTTP policy: faults, retries, no multipart PUT ---------------------------------------------------------------


def test_get_retries_503_and_honours_retry_after(
    sandbox: PakatSandbox, client: PakatClient, sleeps: list[float]
) -> None:
    sandbox.faults.add("status", status=503, path="/api/quota/index", times=1)
    sandbox.faults.add("status", status=429, path="/api/quota/index", times=1, retry_after="7")
    assert client.quota().allowed == 10_000
    assert len(sleeps) == 2
    assert sleeps[1] == 7.0


def test_campaign_create_is_never_resent_on_timeout(
    sandbox: PakatSandbox, client: PakatClient, recorder: Recorder
) -> None:
    a = new_list(client)
    sandbox.faults.add("timeout", path="/api/campaigns$", method="POST", times=1, after_handler=True)
    with pytest.raises(OutcomeUnknownError):
        new_campaign(client, a)
    posts = [r for r in recorder.requests if r[0] == "POST" and r[1] == "/api/campaigns"]
    assert len(posts) == 1
    assert len(list(client.campaigns())) == 1  # it did take effect: look it up, never resend
    sandbox.faults.add("status", status=503, path="/api/campaigns$", method="POST", times=1)
    with pytest.raises(OutcomeUnknownError):
        new_campaign(client, a)
    assert len(list(client.campaigns())) == 1


def test_mutex_409_is_retried(sandbox: PakatSandbox, client: PakatClient, sleeps: list[float]) -> None:
    a = new_list(client)
    sandbox.hook("fail_mutex", times=2)
    assert client.create_subscriber(a, "x@x.io").subscriber_uid
    assert len(sleeps) == 2
    sandbox.hook("fail_mutex", times=10)
    with pytest.raises(PakatMutexError):
        client.create_subscriber(a, "y@x.io")


def test_client_never_sends_multipart_put(sandbox: PakatSandbox, client: PakatClient, recorder: Recorder) -> None:
    a = new_list(client)
    sub = client.create_subscriber(a, "x@x.io")
    uid = new_campaign(client, a)
    template = client.create_template("T", "<p>t</p>")
    client.update_list(a, description="new")
    client.update_subscriber(a, sub.subscriber_uid, {"FNAME": "F"}, status="confirmed")
    client.update_campaign(uid, subject="S", html="<p>n</p>")
    client.update_template(template, name="T2")
    client.unsubscribe(a, sub.subscriber_uid)
    client.unsubscribe_from_all_lists("x@x.io")
    client.update_campaign(uid, status="paused")
    client.pause_unpause_campaign(uid)
    client.mark_campaign_sent(uid)
    puts = [r for r in recorder.requests if r[0] == "PUT"]
    assert len(puts) == 9
    assert all(ctype == "application/x-www-form-urlencoded" for _, _, ctype, _ in puts)
    assert not any(b"Content-Disposition" in body for *_, body in puts)
    assert client.get_subscriber(a, sub.subscriber_uid).fields["FNAME"] == "F"  # the PUTs took effect
    assert client.get_campaign(uid).subject == "S"


@pytest.mark.network
def test_over_loopback_http(sandbox: PakatSandbox, sleeps: list[float]) -> None:
    quiet_uvicorn_errors()
    with serve(sandbox.app) as server:
        client = PakatClient(DEMO_API_KEY, api_base_url(server.url), sleep=sleeps.append)
        try:
            a = new_list(client)
            client.create_subscriber(a, "x@x.io", {"FNAME": "Xé"})
            assert [s.fields["FNAME"] for s in client.list_subscribers(a)] == ["Xé"]
            sandbox.faults.add("reset", path="/api/quota/index", times=1)
            assert client.quota().used == 0  # a dropped connection on a GET is retried
            assert len(sleeps) == 1
            provider = PakatProvider(client, from_email=SENDER, now=lambda: T0)
            assert provider.upsert_members(a, [MemberInput("y@x.io", {"city": "Tehran"})])[0].ok
        finally:
            client.close()


# -- the adapter ------------------------------------------------------------------------------------------------------


def test_provider_from_api_key(sandbox: PakatSandbox) -> None:
    p = PakatProvider.from_api_key(
        DEMO_API_KEY, BASE, transport=InProcessTransport(sandbox.app), sleep=lambda s: None, from_email=SENDER
    )
    assert DEMO_API_KEY not in repr(p)
    assert p.balance().quota_allowed == 10_000
    p.close()


def test_provider_books(provider: PakatProvider, client: PakatClient) -> None:
    assert isinstance(provider, EspProvider)
    assert (provider.name, provider.batch_size) == ("pakat", 10_000)
    book = provider.ensure_book("VIP")
    assert provider.ensure_book("VIP") == book
    assert provider.find_book("VIP") == book
    assert provider.find_book("nope") is None
    assert [b.id for b in provider.list_books()] == [book.id]
    lst = client.get_list(book.id)
    assert lst.defaults["from_email"] == SENDER
    assert lst.company["name"] == "Demo Company"


def test_provider_upsert(
    sandbox: PakatSandbox, provider: PakatProvider, client: PakatClient, recorder: Recorder
) -> None:
    book = provider.ensure_book("VIP")
    res = provider.upsert_members(
        book.id,
        [
            MemberInput("a@x.io", {"first_name": "A", "city": "Tehran", "vip": True}),
            MemberInput("b@x.io", {"first_name": "B"}),
            MemberInput("a@x.io", {"first_name": "A", "city": "Tehran", "vip": True}),
        ],
    )
    assert [r.ok for r in res] == [True, True, True]
    assert res[0].provider_id == res[2].provider_id
    assert [f.tag for f in client.list_fields(book.id)][-2:] == ["CITY", "VIP"]
    a = client.get_subscriber(book.id, res[0].provider_id or "")
    assert (a.status, a.fields["CITY"], a.fields["VIP"]) == ("confirmed", "Tehran", "yes")
    # unsubscribed rows are never re-created; blacklisted elsewhere is suppressed too
    client.unsubscribe(book.id, res[1].provider_id or "")
    client.create_subscriber(provider.ensure_book("Other").id, "black@x.io", status="blacklisted")
    recorder.requests.clear()
    res = provider.upsert_members(
        book.id,
        [
            MemberInput("a@x.io", {"city": "Shiraz"}),
            MemberInput("b@x.io", {"first_name": "B2"}),
            MemberInput("black@x.io", {}),
            MemberInput("A@x.io", {"first_name": "A"}),
        ],
    )
    assert [(r.ok, r.suppressed) for r in res] == [(True, False), (False, True), (False, True), (True, False)]
    assert client.get_subscriber(book.id, res[0].provider_id or "").fields["CITY"] == "Shiraz"
    assert sandbox.hook("subscriber_status", list_uid=book.id, email="b@x.io") == "unsubscribed"
    puts = [p for m, p, *_ in recorder.requests if m == "PUT"]
    assert len(puts) == 1  # unchanged rows are not rewritten


def test_provider_upsert_looks_rows_up_on_big_lists(
    provider: PakatProvider, client: PakatClient, recorder: Recorder
) -> None:
    book = provider.ensure_book("Big")
    client.bulk_add_subscribers(book.id, [{"EMAIL": f"u{i}@x.io"} for i in range(160)])
    assert client.count_subscribers(book.id) == 160
    recorder.requests.clear()
    res = provider.upsert_members(book.id, [MemberInput("u7@x.io", {"first_name": "Seven"})])
    assert res[0].ok
    paths = [p for m, p, *_ in recorder.requests if m == "GET"]
    assert any(p.endswith("/search-by-email") for p in paths)  # 4 pages to crawl > 2 look-ups: no crawl
    assert sum(1 for p in paths if p.endswith("/subscribers")) == 1  # the count
    assert client.get_subscriber(book.id, res[0].provider_id or "").fields["FNAME"] == "Seven"


def test_provider_upsert_resends_required_fields(provider: PakatProvider, client: PakatClient) -> None:
    book = provider.ensure_book("Req")
    client.create_list_field(book.id, "CITY", "City", required=True)
    provider.upsert_members(book.id, [MemberInput("a@x.io", {"city": "Tehran"})])
    res = provider.upsert_members(book.id, [MemberInput("a@x.io", {"first_name": "Ali"})])
    assert res[0].ok
    sub = next(client.list_subscribers(book.id))
    assert sub.fields == {"FNAME": "Ali", "LNAME": "", "CITY": "Tehran"}


def test_provider_upsert_survives_a_lost_bulk_answer(sandbox: PakatSandbox, provider: PakatProvider) -> None:
    book = provider.ensure_book("VIP")
    sandbox.faults.add("timeout", path="/bulk$", times=1, after_handler=True)
    res = provider.upsert_members(book.id, [MemberInput(f"u{i}@x.io", {}) for i in range(3)])
    assert all(r.ok and r.provider_id for r in res)  # resent: "exists" per item counts as accepted
    assert len(list(provider.list_members(book.id))) == 3


def test_provider_remove_members_and_suppressions(sandbox: PakatSandbox, provider: PakatProvider) -> None:
    book = provider.ensure_book("VIP")
    provider.upsert_members(book.id, [MemberInput(f"u{i}@x.io", {}) for i in range(4)])
    res = provider.remove_members(book.id, ["u0@x.io", "none@x.io"], unsubscribe=False)
    assert [r.ok for r in res] == [True, True]
    provider.remove_members(book.id, ["u1@x.io"], unsubscribe=True)
    sandbox.hook("set_subscriber_status", list_uid=book.id, email="u2@x.io", status="blacklisted")
    states = {m.email: m.state for m in provider.list_members(book.id)}
    assert states == {
        "u1@x.io": MemberState.UNSUBSCRIBED,
        "u2@x.io": MemberState.BLACKLISTED,
        "u3@x.io": MemberState.ACTIVE,
    }
    sup = sorted((s.email, s.reason, s.book_id) for s in provider.suppressions())
    assert sup == [("u1@x.io", "unsubscribed", book.id), ("u2@x.io", "blacklisted", None)]
    assert len(list(provider.suppressions(book.id))) == 2


def test_provider_campaign_flow(sandbox: PakatSandbox, provider: PakatProvider, client: PakatClient) -> None:
    book = provider.ensure_book("VIP")
    provider.upsert_members(book.id, [MemberInput(f"u{i}@x.io", {}) for i in range(40)])
    draft = CampaignDraft(
        name="Spring ck-1234567890abcdef",
        book_id=book.id,
        subject="Hello",
        sender_name="Shop",
        sender_email=SENDER,
        html="<p>hi</p>",
        send_at=T0 + timedelta(hours=2),
    )
    camp = provider.create_campaign(draft)
    assert (camp.state, camp.provider_status, camp.book_id) == (CampaignState.PENDING, "pending-sending", book.id)
    assert camp.send_at == T0 + timedelta(hours=2)
    found = provider.find_campaign("ck-1234567890abcdef")
    assert found is not None
    assert found.id == camp.id
    assert provider.find_campaign("ck-ffffffffffffffff") is None
    assert [c.id for c in provider.list_campaigns()] == [camp.id]
    assert provider.campaign_stats(camp.id).sent == 0
    sandbox.advance(3 * 86400)
    assert provider.get_campaign(camp.id).state == CampaignState.SENT
    stats = provider.campaign_stats(camp.id)
    assert stats.sent == 40
    assert stats.delivered == 40 - (stats.bounced or 0)
    assert stats.extra["processed_count"] == 40
    assert "hard_bounces_count" in stats.extra
    bal = provider.balance()
    assert (bal.quota_used, bal.quota_allowed, bal.emails_left) == (40, 10_000, 9_960)
    assert bal.amount is None
