"""The SendPulse operations the client gained last: a template by its slug, the books of several addresses
(``POST /emails``) and one webhook by id. Each runs over real loopback HTTP against the sandbox, with the wire
checked where the seed document fixes it (the body of ``POST /emails``)."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from espcore.errors import NotFoundError
from espcore.http import HttpPolicy
from espcore.providers.sendpulse import EmailMembership, EmailToAdd, SendPulseClient, Template
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseSandbox
from espcore.sandbox.server import SandboxServer, quiet_uvicorn_errors, serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
NO_LIMITER = HttpPolicy(requests_per_second=None)

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def live_sandbox() -> SendPulseSandbox:
    return SendPulseSandbox(seed=11, rate_limit=False)


@pytest.fixture(scope="module")
def server(live_sandbox: SendPulseSandbox) -> Iterator[SandboxServer]:
    quiet_uvicorn_errors()
    with serve(live_sandbox.app) as srv:
        yield srv


@pytest.fixture
def sb(live_sandbox: SendPulseSandbox) -> SendPulseSandbox:
    live_sandbox.reset()
    live_sandbox.request_log.clear()
    live_sandbox.freeze_clock(T0)
    return live_sandbox


@pytest.fixture
def live(sb: SendPulseSandbox, server: SandboxServer) -> Iterator[SendPulseClient]:
    c = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, server.url, policy=NO_LIMITER, sleep=lambda _: None)
    yield c
    c.close()


# -- GET /templates/template/slug/{name_slug} -------------------------------------------------------------------


def test_template_by_slug_reads_own_and_system_templates(live: SendPulseClient) -> None:
    real_id = live.create_template("<p>Hello {{name}}</p>", name="Spring sale 2026", lang="en")
    listed = next(t for t in live.list_templates() if t.real_id == real_id)
    by_slug = live.get_template_by_slug("spring-sale-2026")
    assert isinstance(by_slug, Template)
    assert (by_slug.real_id, by_slug.id, by_slug.name) == (real_id, listed.id, "Spring sale 2026")
    assert by_slug.body == "<p>Hello {{name}}</p>"  # decoded from base64, as a template get answers it
    system = live.get_template_by_slug("valentine-s-day-sweet")
    assert (system.owner, system.name) == ("sendpulse", "Valentine's Day: sweet")


def test_template_by_slug_follows_edits_and_refuses_unknown_slugs(live: SendPulseClient) -> None:
    real_id = live.create_template("<p>v1</p>", name="Edited one")
    before = live.get_template_by_slug("edited-one")
    live.edit_template(real_id, "<p>v2</p>")
    after = live.get_template_by_slug("edited-one")
    assert (after.real_id, after.body) == (real_id, "<p>v2</p>")
    assert after.id != before.id  # the hex id changes with each edit, the slug and real_id do not
    with pytest.raises(NotFoundError) as info:
        live.get_template_by_slug("no-such-template")
    assert (info.value.status, info.value.code) == (404, 290)


def test_template_slug_is_one_escaped_path_segment(sb: SendPulseSandbox) -> None:
    paths: list[bytes] = []

    class Recording(InProcessTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            paths.append(request.url.raw_path)
            return super().handle_request(request)

    client = SendPulseClient(
        DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, policy=NO_LIMITER, sleep=lambda _: None, transport=Recording(sb.app)
    )
    try:
        with pytest.raises(NotFoundError):
            client.get_template_by_slug("a/b?c#d")
    finally:
        client.close()
    assert paths[-1] == b"/templates/template/slug/a%2Fb%3Fc%23d"


# -- POST /emails -----------------------------------------------------------------------------------------------


def test_emails_memberships_lists_each_addresses_books(live: SendPulseClient, sb: SendPulseSandbox) -> None:
    first = live.create_book("First")
    second = live.create_book("Second")
    live.add_emails(first, [EmailToAdd("ann@example.com", {"name": "Ann"}), EmailToAdd("bob@example.com")])
    live.add_emails(second, [EmailToAdd("ann@example.com", {"city": "Kyiv"})])
    got = live.emails_memberships(["ann@example.com", "bob@example.com", "nobody@example.com"])
    assert set(got) == {"ann@example.com", "bob@example.com", "nobody@example.com"}
    ann = got["ann@example.com"]
    assert all(isinstance(m, EmailMembership) for m in ann)
    assert [(m.book_id, m.email, dict(m.variables)) for m in ann] == [
        (first, "ann@example.com", {"name": "Ann"}),
        (second, "ann@example.com", {"city": "Kyiv"}),
    ]
    assert [m.book_id for m in got["bob@example.com"]] == [first]
    assert got["nobody@example.com"] == []
    # the same view as the one-address call, per book
    one = live.email_memberships("ann@example.com")
    assert [(m.book_id, m.status) for m in one] == [(m.book_id, m.status) for m in ann]
    # a read: it changes nothing, and POST /emails was sent once with the documented array of addresses
    assert sum(1 for m, p, s in sb.request_log if (m, p, s) == ("POST", "/emails", 200)) == 1


def test_emails_memberships_sends_the_seed_body_and_nothing_for_no_addresses(sb: SendPulseSandbox) -> None:
    bodies: list[object] = []

    class Recording(InProcessTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/emails":
                bodies.append(json.loads(request.read()))
            return super().handle_request(request)

    client = SendPulseClient(
        DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, policy=NO_LIMITER, sleep=lambda _: None, transport=Recording(sb.app)
    )
    try:
        assert client.emails_memberships([]) == {}
        assert bodies == []
        client.emails_memberships(["A@Example.com"])
        assert bodies == [{"emails": ["A@Example.com"]}]
    finally:
        client.close()


def test_emails_memberships_answer_keys_come_back_lower_case(live: SendPulseClient) -> None:
    book = live.create_book("Case")
    live.add_emails(book, [EmailToAdd("Mixed@Example.com")])
    got = live.emails_memberships(["MIXED@example.com"])
    assert list(got) == ["mixed@example.com"]
    assert [m.book_id for m in got["mixed@example.com"]] == [book]


# -- GET /v2/email-service/webhook/{id} -------------------------------------------------------------------------


def test_get_webhook_by_id(live: SendPulseClient) -> None:
    created = live.create_webhook("https://hooks.example.com/sp", ["open", "unsubscribe"])
    by_action = {h.action: h for h in created}
    one = live.get_webhook(by_action["unsubscribe"].id)
    assert one == by_action["unsubscribe"]
    assert (one.url, one.action) == ("https://hooks.example.com/sp", "unsubscribe")
    assert one.user_id  # the account's user id, as in the list
    live.update_webhook(one.id, "https://hooks.example.com/moved")
    assert live.get_webhook(one.id).url == "https://hooks.example.com/moved"
    live.delete_webhook(one.id)
    with pytest.raises(NotFoundError) as info:
        live.get_webhook(one.id)
    assert info.value.status == 404
    assert live.get_webhook(by_action["open"].id).action == "open"


def test_get_webhook_with_a_non_numeric_id_is_not_found(live: SendPulseClient) -> None:
    with pytest.raises(NotFoundError):
        live.get_webhook("not-a-number")
