"""Every public client method of the three providers, answered 200 with every kind of malformed body.

The corpus: an empty body, text, an HTML page, JSON of every wrong type, truncated JSON, the provider's error
envelopes sent with 200, and success envelopes whose payload has the wrong type. Each call must raise
:class:`UnexpectedResponseError` (an :class:`UnexpectedOutcomeError`, which is an :class:`OutcomeUnknownError`,
when the failing call was a write): never a raw Python exception, never a success value. A method whose documented
success body is one of the corpus bodies (``[]`` for an empty listing, ``{"result": true}`` for an action) is
exempt for that body only, and must then not fail with a raw exception either.

Answers come from an ``httpx.MockTransport``; no sockets, no sleeping.
"""

import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from espcore.errors import EspError, OutcomeUnknownError, UnexpectedOutcomeError, UnexpectedResponseError
from espcore.http import EXCERPT_CHARS, HttpPolicy
from espcore.providers.litestartup import LiteStartupClient
from espcore.providers.pakat import PakatClient, TransactionalAttachment
from espcore.providers.sendpulse import EmailToAdd, SendPulseClient

POLICY = HttpPolicy(requests_per_second=0, max_attempts=1)
SP_ID = "sp-client-id-LEAKCANARY-1"
SP_SECRET = "sp-client-secret-LEAKCANARY-2"
SP_TOKEN = "sp-access-token-LEAKCANARY-3"
PAKAT_KEY = "pakat-api-key-LEAKCANARY-4"
LS_KEY = "sk_live_LEAKCANARY-5"
SECRETS = (SP_ID, SP_SECRET, SP_TOKEN, PAKAT_KEY, LS_KEY)
WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

HTML = (
    b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body><h1>Whoops, looks like something went "
    b"wrong.</h1><p>We will be back soon.</p></body></html>"
)

#: name -> body, for every provider
COMMON: dict[str, bytes] = {
    "empty": b"",
    "blank": b"  \n",
    "not_json": b"not json",
    "html": HTML,
    "empty_list": b"[]",
    "empty_object": b"{}",
    "null": b"null",
    "string": b'"string"',
    "number": b"123",
    "true": b"true",
    "list_of_numbers": b"[1, 2, 3]",
    "list_of_nulls": b"[null]",
    "binary": b"\xff\xfe\x00garbage\x81",
}

PROVIDER_BODIES: dict[str, dict[str, Any]] = {
    "sendpulse": {
        "error_envelope": {"message": "Book not found", "error_code": 213},
        "error_envelope_list": [{"message": "Argument emails missing", "error_code": 422}],
        "oauth_error": {"error": "invalid_client", "error_description": "Client authentication failed"},
        "result_false": {"result": False},
        "action_ok": {"result": True},
        "v2_wrong_data": {"success": True, "data": "oops"},
        "v2_failed": {"success": False, "data": []},
        "wrong_objects": [{"id": "x", "name": 5, "email": None, "status": "active", "code": "?"}],
        "truncated": '[{"id": 1, "name": "Bo',
    },
    "litestartup": {
        "error_envelope": {"success": False, "error": "Invalid API key", "code": "INVALID_API_KEY"},
        "seed_error": {"error": "Invalid API key"},
        "success_false": {"success": False},
        "success_only": {"success": True},
        "wrong_data": {"success": True, "data": "oops"},
        "wrong_items": {"success": True, "data": [1, 2]},
        "wrong_object": {"success": True, "data": {"id": None, "email": 5, "status": 3}},
        "wrong_pagination": {"success": True, "data": [], "pagination": "page one"},
        "newer_dialect_error": {"code": 500, "message": "From email or to email is required", "data": []},
        "truncated": '{"success": true, "data": {"id": "contact_1", "email": "a@',
    },
    "pakat": {
        "error_envelope": {"status": "error", "error": "The list does not exist."},
        "field_errors": {"status": "error", "error": {"general": {"name": "Name cannot be blank."}}},
        "action_ok": {"status": "success"},
        "wrong_data": {"status": "success", "data": "oops"},
        "wrong_records": {"status": "success", "data": {"records": "oops", "next_page": None}},
        "wrong_record": {"status": "success", "data": {"record": ["oops"]}},
        "status_only_ok": {"status": "ok"},
        "truncated": '{"status":"success","data":{"records":[{"subscriber_uid":"ab',
    },
}


def corpus(provider: str) -> dict[str, bytes]:
    out = dict(COMMON)
    for name, body in PROVIDER_BODIES[provider].items():
        out[name] = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return out


Call = Callable[[Any], Any]


@dataclass(frozen=True)
class Method:
    """How to call one client method, and the corpus bodies that are a documented success for it."""

    call: Call
    success: frozenset[str] = field(default_factory=frozenset)


def m(call: Call, *success: str) -> Method:
    return Method(call, frozenset(success))


def drain(result: Any) -> Any:
    """Lists the items of a generator (paging happens while iterating)."""
    return list(result) if inspect.isgenerator(result) else result


SENDPULSE: dict[str, Method] = {
    "activate_sender": m(lambda c: c.activate_sender("news@example.org", "123456"), "action_ok"),
    "add_emails": m(lambda c: c.add_emails(7, [EmailToAdd("a@example.org", {"name": "A"})]), "action_ok"),
    "post_add_emails": m(
        lambda c: c.post_add_emails(7, c.add_emails_body(["a@example.org"], [{"name": "A"}])), "action_ok"
    ),
    "add_sender": m(lambda c: c.add_sender("news@example.org", "News"), "action_ok"),
    "add_to_blacklist": m(lambda c: c.add_to_blacklist(["a@example.org"]), "action_ok"),
    "balance": m(lambda c: c.balance()),
    "balance_detail": m(lambda c: c.balance_detail()),
    "blacklist": m(lambda c: c.blacklist(), "empty_list"),
    "book_campaigns": m(lambda c: c.book_campaigns(7), "empty_list"),
    "book_cost": m(lambda c: c.book_cost(7)),
    "book_email": m(lambda c: c.book_email(7, "a@example.org")),
    "book_email_total": m(lambda c: c.book_email_total(7)),
    "book_emails": m(lambda c: c.book_emails(7), "empty_list"),
    "book_variables": m(lambda c: c.book_variables(7), "empty_list"),
    "campaign_countries": m(lambda c: c.campaign_countries(9), "empty_object"),
    "campaign_recipient": m(lambda c: c.campaign_recipient(9, "a@example.org")),
    "campaign_referrals": m(lambda c: c.campaign_referrals(9), "empty_list"),
    "cancel_campaign": m(lambda c: c.cancel_campaign(9), "action_ok"),
    "create_book": m(lambda c: c.create_book("News")),
    "create_campaign": m(
        lambda c: c.create_campaign(
            sender_name="News", sender_email="news@example.org", subject="Hi", book_id=7, body_html="<p>Hi</p>"
        )
    ),
    "create_template": m(lambda c: c.create_template("<p>Hi</p>", name="T")),
    "create_webhook": m(lambda c: c.create_webhook("https://example.org/hook", ["open"])),
    "delete_book": m(lambda c: c.delete_book(7), "action_ok"),
    "delete_email_everywhere": m(lambda c: c.delete_email_everywhere("a@example.org"), "action_ok"),
    "delete_emails": m(lambda c: c.delete_emails(7, ["a@example.org"]), "action_ok"),
    "delete_sender": m(lambda c: c.delete_sender("news@example.org"), "action_ok"),
    "delete_webhook": m(lambda c: c.delete_webhook("5")),
    "edit_campaign": m(lambda c: c.edit_campaign(9, subject="Hello"), "action_ok"),
    "edit_template": m(lambda c: c.edit_template(11, "<p>Hi</p>"), "action_ok"),
    "email_campaigns": m(lambda c: c.email_campaigns("a@example.org")),
    "email_details": m(lambda c: c.email_details("a@example.org"), "empty_list"),
    "email_memberships": m(lambda c: c.email_memberships("a@example.org"), "empty_list"),
    "emails_campaigns": m(lambda c: c.emails_campaigns(["a@example.org"]), "empty_object"),
    "find_by_variable": m(lambda c: c.find_by_variable(7, "city", "Kyiv"), "empty_list"),
    "find_campaign_by_name": m(lambda c: c.find_campaign_by_name("ck-0123"), "empty_list"),
    "get_book": m(lambda c: c.get_book(7)),
    "get_campaign": m(lambda c: c.get_campaign(9)),
    "get_template": m(lambda c: c.get_template(11)),
    "list_books": m(lambda c: c.list_books(), "empty_list"),
    "list_campaigns": m(lambda c: c.list_campaigns(), "empty_list"),
    "list_senders": m(lambda c: c.list_senders(), "empty_list"),
    "list_templates": m(lambda c: c.list_templates(), "empty_list"),
    "list_webhooks": m(lambda c: c.list_webhooks()),
    "remove_from_blacklist": m(lambda c: c.remove_from_blacklist(["a@example.org"]), "action_ok"),
    "rename_book": m(lambda c: c.rename_book(7, "Renamed"), "action_ok"),
    "request_sender_code": m(lambda c: c.request_sender_code("news@example.org"), "action_ok"),
    "set_email_variables": m(lambda c: c.set_email_variables(7, "a@example.org", {"city": "Kyiv"}), "action_ok"),
    "unsubscribe_emails": m(lambda c: c.unsubscribe_emails(7, ["a@example.org"]), "action_ok"),
    "update_webhook": m(lambda c: c.update_webhook("5", "https://example.org/new")),
}

#: an action answers {"status": "success"}: whatever else the body holds is not read
PAKAT_ACTION = ("action_ok", "wrong_data", "wrong_records", "wrong_record")

PAKAT: dict[str, Method] = {
    "bulk_add_subscribers": m(lambda c: c.bulk_add_subscribers("lst", [{"EMAIL": "a@example.org"}])),
    "campaign_bounces": m(lambda c: c.campaign_bounces("cmp")),
    "campaign_stats": m(lambda c: c.campaign_stats("cmp")),
    "campaign_unsubscribes": m(lambda c: c.campaign_unsubscribes("cmp")),
    "campaigns": m(lambda c: c.campaigns()),
    "copy_campaign": m(lambda c: c.copy_campaign("cmp")),
    "copy_list": m(lambda c: c.copy_list("lst")),
    "count_subscribers": m(lambda c: c.count_subscribers("lst")),
    "create_campaign": m(
        lambda c: c.create_campaign(
            name="C",
            list_uid="lst",
            from_name="News",
            from_email="news@example.org",
            subject="Hi",
            reply_to="news@example.org",
            send_at=WHEN,
            html="<p>Hi</p>",
        )
    ),
    "create_list": m(
        lambda c: c.create_list(
            "News", "d", from_name="News", from_email="news@example.org", reply_to="news@example.org"
        )
    ),
    "create_list_field": m(lambda c: c.create_list_field("lst", "CITY", "City"), *PAKAT_ACTION),
    "create_segment": m(lambda c: c.create_segment("lst", "Seg")),
    "create_subscriber": m(lambda c: c.create_subscriber("lst", "a@example.org")),
    "create_template": m(lambda c: c.create_template("T", "<p>Hi</p>")),
    "create_transactional_email": m(
        lambda c: c.create_transactional_email(
            to_email="a@example.org",
            to_name="A",
            from_name="News",
            subject="Hi",
            html="<p>Hi</p>",
            attachments=[TransactionalAttachment("a.txt", b"a")],
        )
    ),
    "delete_campaign": m(lambda c: c.delete_campaign("cmp"), *PAKAT_ACTION),
    "delete_list": m(lambda c: c.delete_list("lst"), *PAKAT_ACTION),
    "delete_subscriber": m(lambda c: c.delete_subscriber("lst", "sub"), *PAKAT_ACTION),
    "delete_template": m(lambda c: c.delete_template("tpl"), *PAKAT_ACTION),
    "delete_transactional_email": m(lambda c: c.delete_transactional_email("eml"), *PAKAT_ACTION),
    "delivery_log_by_message_id": m(lambda c: c.delivery_log_by_message_id("msg-1")),
    "delivery_logs": m(lambda c: c.delivery_logs("cmp")),
    "get_campaign": m(lambda c: c.get_campaign("cmp")),
    "get_list": m(lambda c: c.get_list("lst")),
    "get_subscriber": m(lambda c: c.get_subscriber("lst", "sub")),
    "get_template": m(lambda c: c.get_template("tpl")),
    "get_transactional_email": m(lambda c: c.get_transactional_email("eml")),
    "list_fields": m(lambda c: c.list_fields("lst")),
    "list_subscribers": m(lambda c: c.list_subscribers("lst")),
    "lists": m(lambda c: c.lists()),
    "mark_campaign_sent": m(lambda c: c.mark_campaign_sent("cmp")),
    "pause_unpause_campaign": m(lambda c: c.pause_unpause_campaign("cmp")),
    "quota": m(lambda c: c.quota()),
    "search_subscriber": m(lambda c: c.search_subscriber("lst", "a@example.org")),
    "search_subscriber_in_all_lists": m(lambda c: c.search_subscriber_in_all_lists("a@example.org")),
    "segment_subscribers": m(lambda c: c.segment_subscribers("lst", "seg")),
    "segments": m(lambda c: c.segments("lst")),
    "templates": m(lambda c: c.templates()),
    "transactional_emails": m(lambda c: c.transactional_emails()),
    "unsubscribe": m(lambda c: c.unsubscribe("lst", "sub"), *PAKAT_ACTION),
    "unsubscribe_from_all_lists": m(lambda c: c.unsubscribe_from_all_lists("a@example.org"), *PAKAT_ACTION),
    "update_campaign": m(lambda c: c.update_campaign("cmp", status="pending-sending"), *PAKAT_ACTION),
    "update_list": m(lambda c: c.update_list("lst", name="Renamed"), *PAKAT_ACTION),
    "update_subscriber": m(lambda c: c.update_subscriber("lst", "sub", {"FNAME": "A"})),
    "update_template": m(lambda c: c.update_template("tpl", name="T2"), *PAKAT_ACTION),
    "verify": m(lambda c: c.verify()),
}

#: a delete answers {"success": true, "message": ...}: whatever else the body holds is not read
LS_DELETED = ("success_only", "wrong_data", "wrong_items", "wrong_object", "wrong_pagination")

LITESTARTUP: dict[str, Method] = {
    "add_contact_tags": m(lambda c: c.add_contact_tags("contact_1", ["vip"])),
    "campaign_stats": m(lambda c: c.campaign_stats("campaign_1")),
    "create_campaign": m(
        lambda c: c.create_campaign("C", "Hi", "<p>Hi</p>", "news@example.org", "tag:vip", scheduled_at=WHEN)
    ),
    "create_contact": m(lambda c: c.create_contact("a@example.org", name="A", tags=["vip"])),
    "create_template": m(lambda c: c.create_template("T", html="<p>Hi</p>")),
    "create_webhook": m(lambda c: c.create_webhook("https://example.org/hook", ["email.opened"])),
    "delete_campaign": m(lambda c: c.delete_campaign("campaign_1"), *LS_DELETED),
    "delete_contact": m(lambda c: c.delete_contact("contact_1"), *LS_DELETED),
    "delete_template": m(lambda c: c.delete_template("tmpl_1"), *LS_DELETED),
    "delete_webhook": m(lambda c: c.delete_webhook("wh_1"), *LS_DELETED),
    "find_contact_by_email": m(lambda c: c.find_contact_by_email("a@example.org")),
    "get_campaign": m(lambda c: c.get_campaign("campaign_1")),
    "get_contact": m(lambda c: c.get_contact("contact_1")),
    "get_email": m(lambda c: c.get_email("email_1")),
    "get_template": m(lambda c: c.get_template("tmpl_1")),
    "list_campaigns": m(lambda c: c.list_campaigns()),
    "list_contacts": m(lambda c: c.list_contacts(tag="vip")),
    "list_contacts_page": m(lambda c: c.list_contacts_page(1, 20)),
    "list_emails": m(lambda c: c.list_emails(status="bounced")),
    "list_emails_page": m(lambda c: c.list_emails_page(1, 20)),
    "list_templates": m(lambda c: c.list_templates()),
    "list_webhooks": m(lambda c: c.list_webhooks()),
    "remove_contact_tags": m(lambda c: c.remove_contact_tags("contact_1", ["vip"])),
    "send_campaign": m(lambda c: c.send_campaign("campaign_1")),
    "send_email": m(lambda c: c.send_email("a@example.org", "news@example.org", "Hi", html="<p>Hi</p>")),
    "set_contact_attributes": m(lambda c: c.set_contact_attributes("contact_1", {"city": "Kyiv"})),
    "set_contact_subscribed": m(lambda c: c.set_contact_subscribed("contact_1", False)),
    "update_campaign": m(lambda c: c.update_campaign("campaign_1", subject="Hello")),
    "update_contact": m(lambda c: c.update_contact("contact_1", name="A")),
    "update_template": m(lambda c: c.update_template("tmpl_1", name="T2")),
    "update_webhook": m(lambda c: c.update_webhook("wh_1", active=False)),
    "verify": m(lambda c: c.verify()),
}

#: public methods that make no HTTP call
NO_HTTP = {
    "sendpulse": {"access_token_expires_in", "add_emails_body", "close"},
    "pakat": {"close", "format_send_at"},
    "litestartup": {"balance", "close", "verify_signature"},
}
#: methods of LiteStartup's current dialect only: their malformed answers are checked in that dialect's suite
#: (tests/providers/test_litestartup_dialects.py), where the sandbox speaks it
COVERED_BY_DIALECT_SUITE = {
    *("copy_campaign", "copy_template", "create_tag", "delete_tag", "detect", "export_contacts", "find_tag"),
    *("import_contacts", "list_tags", "search_contacts", "send_notification", "template_content", "update_tag"),
    "usage",
}
SENDPULSE.update(
    {
        "emails_memberships": m(lambda c: c.emails_memberships(["a@example.org"]), "empty_object"),
        "get_template_by_slug": m(lambda c: c.get_template_by_slug("welcome")),
        "get_webhook": m(lambda c: c.get_webhook("5")),
    }
)
TABLES: dict[str, dict[str, Method]] = {"sendpulse": SENDPULSE, "pakat": PAKAT, "litestartup": LITESTARTUP}
CLASSES: dict[str, type] = {"sendpulse": SendPulseClient, "pakat": PakatClient, "litestartup": LiteStartupClient}


def token_answer(request: httpx.Request) -> httpx.Response | None:
    if request.url.path.endswith("/oauth/access_token"):
        return httpx.Response(200, json={"access_token": SP_TOKEN, "token_type": "Bearer", "expires_in": 3600})
    return None


@contextmanager
def client(provider: str, body: bytes, *, status: int = 200, token: bool = True) -> Iterator[Any]:
    """A client whose every call is answered ``status`` with ``body`` (SendPulse's token call answered properly
    unless ``token`` is False); ``.seen`` lists the requests."""
    seen: list[httpx.Request] = []
    content_type = "text/html; charset=UTF-8" if body.lstrip().startswith(b"<") else "application/json"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if token and (ok := token_answer(request)) is not None:
            return ok
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    transport = httpx.MockTransport(handler)
    c: Any
    if provider == "sendpulse":
        c = SendPulseClient(SP_ID, SP_SECRET, "http://127.0.0.1", policy=POLICY, transport=transport, sleep=no_sleep)
    elif provider == "pakat":
        c = PakatClient(PAKAT_KEY, "http://127.0.0.1/api", policy=POLICY, transport=transport, sleep=no_sleep)
    else:
        c = LiteStartupClient(LS_KEY, "http://127.0.0.1/client/v2", policy=POLICY, transport=transport, sleep=no_sleep)
    c.seen = seen
    with c:
        yield c


def no_sleep(seconds: float) -> None:
    """The clients back off through this: nothing sleeps."""


#: POST calls that only read (SendPulse's POST /emails looks addresses up): their outcome is never unknown
READ_BY_POST = {"sendpulse": ("/emails/campaigns", "/emails")}


def check_unexpected(provider: str, err: UnexpectedResponseError) -> None:
    """What every unexpected-answer error carries, and what it must never carry."""
    assert err.provider == provider
    assert err.status in range(200, 300)
    assert err.method
    assert err.path
    assert "?" not in err.path
    assert err.body is not None
    assert len(err.body) <= EXCERPT_CHARS
    assert not err.retryable
    # an unexpected answer to a write may have taken effect; one to a read is a plain unexpected answer
    assert isinstance(err, OutcomeUnknownError) == (
        err.method != "GET" and err.path not in READ_BY_POST.get(provider, ("/emails/campaigns",))
    )
    assert isinstance(err, UnexpectedOutcomeError) == isinstance(err, OutcomeUnknownError)
    for text in (str(err), repr(err), err.body, err.message):
        for secret in SECRETS:
            assert secret not in text


CASES = [
    pytest.param(provider, name, body_name, id=f"{provider}-{name}-{body_name}")
    for provider, table in TABLES.items()
    for name in sorted(table)
    for body_name in corpus(provider)
]


@pytest.mark.parametrize(("provider", "name", "body_name"), CASES)
def test_malformed_answer_raises_typed_error(provider: str, name: str, body_name: str) -> None:
    method = TABLES[provider][name]
    with client(provider, corpus(provider)[body_name]) as c:
        try:
            result = drain(method.call(c))
        except UnexpectedResponseError as exc:
            check_unexpected(provider, exc)
            return
        except EspError as exc:
            if body_name not in method.success:
                pytest.fail(f"{name} answered {body_name}: {type(exc).__name__}, not UnexpectedResponseError: {exc}")
            return
        assert c.seen, f"{name} sent no request"
        if body_name not in method.success:
            pytest.fail(f"{name} took a malformed answer ({body_name}) as success: {result!r}")


def public_methods(cls: type) -> set[str]:
    return {n for n, f in inspect.getmembers(cls, callable) if not n.startswith("_")}


@pytest.mark.parametrize("provider", sorted(TABLES))
def test_corpus_covers_every_public_method(provider: str) -> None:
    elsewhere = COVERED_BY_DIALECT_SUITE if provider == "litestartup" else set()
    assert set(TABLES[provider]) | NO_HTTP[provider] | elsewhere == public_methods(CLASSES[provider])


@pytest.mark.parametrize("body_name", sorted(corpus("sendpulse")))
def test_sendpulse_token_answer_malformed(body_name: str) -> None:
    """The OAuth token call gets the malformed answer: the call that needed the token fails, typed."""
    with (
        client("sendpulse", corpus("sendpulse")[body_name], token=False) as c,
        pytest.raises(UnexpectedResponseError) as info,
    ):
        c.balance()
    err = info.value
    check_unexpected("sendpulse", err)
    assert (err.method, err.path) == ("POST", "/oauth/access_token")


@pytest.mark.parametrize("provider", sorted(TABLES))
@pytest.mark.parametrize("status", [201, 202, 204])
def test_other_success_statuses_are_checked_too(provider: str, status: int) -> None:
    """A 201/202/204 is a success status, not a success: its body is checked like a 200's."""
    read = {"sendpulse": "list_books", "pakat": "lists", "litestartup": "list_contacts_page"}[provider]
    for body in (b"", HTML):
        with client(provider, body, status=status) as c, pytest.raises(UnexpectedResponseError) as info:
            drain(TABLES[provider][read].call(c))
        assert info.value.status == status


@pytest.mark.parametrize(
    ("provider", "envelope", "code", "said"),
    [
        ("sendpulse", {"message": "Book not found", "error_code": 213}, 213, "Book not found"),
        ("sendpulse", {"result": False}, None, "the answer says the call failed"),
        (
            "litestartup",
            {"success": False, "error": "Invalid API key", "code": "INVALID_API_KEY"},
            "INVALID_API_KEY",
            "Invalid API key",
        ),
        ("pakat", {"status": "error", "error": "The list does not exist."}, None, "The list does not exist."),
    ],
)
def test_error_envelope_at_200_names_the_providers_error(
    provider: str, envelope: Mapping[str, Any], code: Any, said: str
) -> None:
    read = {"sendpulse": "list_books", "pakat": "lists", "litestartup": "list_contacts_page"}[provider]
    with client(provider, json.dumps(envelope).encode()) as c, pytest.raises(UnexpectedResponseError) as info:
        drain(TABLES[provider][read].call(c))
    assert info.value.code == code
    assert said in info.value.message
    assert "HTTP 200 with an error answer" in str(info.value)


# The Pakat operations added with MailWizz's controllers keep their malformed cases beside their own tests (that
# module imports this one's helpers, so it is imported last; PAKAT is the table TABLES holds).
from tests.providers.test_pakat_malformed import PAKAT_MORE  # noqa: E402

PAKAT.update(PAKAT_MORE)
