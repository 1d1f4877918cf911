"""The Pakat operations added to the client, each run against the sandbox over real loopback HTTP."""

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from espcore.errors import EspError, NotFoundError, ValidationError
from espcore.providers.pakat import PakatClient, PakatProvider
from espcore.sandbox.pakat import DEMO_API_KEY, DEMO_SENDING_DOMAIN, PakatSandbox, api_base_url
from espcore.sandbox.server import serve

pytestmark = pytest.mark.network

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SENDER = f"news@{DEMO_SENDING_DOMAIN}"
LINK = "https://shop.example.com/spring"


@pytest.fixture
def sandbox() -> PakatSandbox:
    sb = PakatSandbox(seed=7)
    sb.reset(demo=True)
    sb.freeze_clock(T0)
    return sb


@pytest.fixture
def client(sandbox: PakatSandbox) -> Iterator[PakatClient]:
    with serve(sandbox.app) as server:
        c = PakatClient(DEMO_API_KEY, api_base_url(server.url))
        yield c
        c.close()


def make_list(client: PakatClient) -> str:
    return client.create_list("Buyers", "test list", from_name="Shop", from_email=SENDER, reply_to=SENDER)


def sent_campaign(sandbox: PakatSandbox, client: PakatClient, n: int = 60) -> tuple[str, str]:
    list_uid = make_list(client)
    client.bulk_add_subscribers(list_uid, [{"EMAIL": f"u{i}@x.io", "FNAME": f"U{i}"} for i in range(n)])
    uid = client.create_campaign(
        name="Spring",
        list_uid=list_uid,
        from_name="Shop",
        from_email=SENDER,
        subject="Hi",
        reply_to=SENDER,
        send_at=T0,
        status="pending-sending",
        html=f'<p>Hi</p><a href="{LINK}">shop</a>',
    )
    sandbox.advance(120)
    client.campaign_stats(uid)  # ticks the campaign to sent
    return list_uid, uid


def test_list_fields_by_id_and_types(client: PakatClient) -> None:
    list_uid = make_list(client)
    city = client.create_list_field(list_uid, "CITY", "City")
    assert city is not None
    got = client.get_list_field(list_uid, city.field_id)
    assert (got.tag, got.label, got.required, got.type) == ("CITY", "City", False, "text")
    updated = client.update_list_field(list_uid, city.field_id, label="Town", tag="TOWN", required=True)
    assert (updated.tag, updated.label, updated.required) == ("TOWN", "Town", True)
    with pytest.raises(ValidationError):
        client.update_list_field(list_uid, city.field_id, tag="lower")
    client.delete_list_field(list_uid, city.field_id)
    with pytest.raises(NotFoundError):
        client.get_list_field(list_uid, city.field_id)
    email = next(f for f in client.list_fields(list_uid) if f.tag == "EMAIL")
    with pytest.raises(EspError):
        client.delete_list_field(list_uid, email.field_id)
    types = {t.identifier: t.name for t in client.list_field_types()}
    assert types["text"] == "Text"
    assert "dropdown" in types
    assert "phonenumber" in types


def test_segments_by_uid_operators_and_custom_field_search(client: PakatClient) -> None:
    list_uid = make_list(client)
    client.bulk_add_subscribers(list_uid, [{"EMAIL": "a@x.io", "FNAME": "Ann"}, {"EMAIL": "b@x.io", "FNAME": "Bob"}])
    operators = {o.slug: o.operator_id for o in client.segment_condition_operators()}
    assert operators["is"] == 1
    assert operators["contains"] == 3
    assert len(operators) == 10
    fname = next(f for f in client.list_fields(list_uid) if f.tag == "FNAME")
    seg = client.create_segment(list_uid, "Anns", [{"field_id": fname.field_id, "operator_id": 1, "value": "Ann"}])
    got = client.get_segment(list_uid, seg)
    assert (got.name, got.subscribers_count) == ("Anns", 1)
    client.update_segment(
        list_uid, seg, name="Everyone", conditions=[{"field_id": fname.field_id, "operator_id": 3, "value": ""}]
    )
    got = client.get_segment(list_uid, seg)
    assert (got.name, got.subscribers_count) == ("Everyone", 2)
    with pytest.raises(ValidationError):
        client.update_segment(list_uid, seg, name="")
    client.delete_segment(list_uid, seg)
    with pytest.raises(NotFoundError):
        client.get_segment(list_uid, seg)
    found = list(client.search_subscribers_by_custom_fields(list_uid, {"FNAME": "Bob"}))
    assert [s.email for s in found] == ["b@x.io"]
    assert list(client.search_subscribers_by_custom_fields(list_uid, {"FNAME": "Nobody"})) == []


def test_campaign_bounce_and_tracking(sandbox: PakatSandbox, client: PakatClient) -> None:
    list_uid, uid = sent_campaign(sandbox, client)
    before = client.campaign_stats(uid).counts
    target = next(s for s in client.list_subscribers(list_uid) if s.status == "confirmed")
    bounce = client.create_campaign_bounce(uid, target.subscriber_uid, "hard", "550 no such user")
    assert (bounce.bounce_type, bounce.message) == ("hard", "550 no such user")
    assert client.campaign_stats(uid).counts["hard_bounces"] == before["hard_bounces"] + 1
    assert client.get_subscriber(list_uid, target.subscriber_uid).status == "blacklisted"
    assert bounce.email == target.email
    with pytest.raises(ValidationError, match="already been marked as bounced"):
        client.create_campaign_bounce(uid, target.subscriber_uid, "soft")
    with pytest.raises(NotFoundError):
        client.create_campaign_bounce(uid, "nosuchsubscriber", "soft")
    second = next(s for s in client.list_subscribers(list_uid) if s.status == "confirmed")
    with pytest.raises(ValidationError, match="Invalid bounce type"):
        client.create_campaign_bounce(uid, second.subscriber_uid, "weird")  # type: ignore[arg-type]

    other = next(s for s in client.list_subscribers(list_uid) if s.status == "confirmed")
    client.track_opening(uid, other.subscriber_uid)
    url_hash = hashlib.sha1(f"{uid}:{LINK}".encode()).hexdigest()  # noqa: S324 - the sandbox's link hash
    assert client.track_url(uid, other.subscriber_uid, url_hash) == LINK
    with pytest.raises(NotFoundError):
        client.track_url(uid, other.subscriber_uid, "0" * 40)
    after = client.campaign_stats(uid).counts
    assert after["opens"] >= before["opens"] + 1
    assert after["clicks"] == before["clicks"] + 1
    client.track_unsubscribe(uid, other.subscriber_uid, ip_address="10.0.0.1", reason="too many mails")
    assert client.get_subscriber(list_uid, other.subscriber_uid).status == "unsubscribed"
    reasons = {u.subscriber_uid: u.reason for u in client.campaign_unsubscribes(uid)}
    assert reasons[other.subscriber_uid] == "too many mails"
    client.track_unsubscribe(uid, other.subscriber_uid)  # no longer confirmed: a success that changes nothing


def test_delivery_log_by_message_id(sandbox: PakatSandbox, client: PakatClient) -> None:
    _, uid = sent_campaign(sandbox, client, n=12)
    log = next(iter(client.delivery_logs(uid)))
    assert log.email_message_id
    again = client.delivery_log_by_message_id(log.email_message_id)
    assert (again.subscriber_uid, again.campaign_uid) == (log.subscriber_uid, uid)
    with pytest.raises(NotFoundError):
        client.delivery_log_by_message_id("nope@pakat.net")


def test_countries_customers_servers_and_domains(client: PakatClient) -> None:
    countries = {c.code: c for c in client.countries()}
    assert "IR" in countries
    assert "US" in countries
    zones = [z.name for z in client.country_zones(countries["IR"].country_id)]
    assert "Tehran" in zones
    with pytest.raises(NotFoundError):
        list(client.country_zones(99999))

    uid = client.create_customer(
        first_name="Sara", last_name="K", email="sara@x.io", password="s3cret-pass", timezone="Asia/Tehran"
    )
    assert uid
    with pytest.raises(ValidationError):
        client.create_customer(
            first_name="Sara", last_name="K", email="sara@x.io", password="s3cret-pass", timezone="Asia/Tehran"
        )
    with pytest.raises(ValidationError):
        client.create_customer(first_name="", last_name="K", email="x@x.io", password="s3cret-pass", timezone="UTC")

    servers = list(client.delivery_servers())
    assert servers
    assert servers[0].server_id == 1
    assert client.get_delivery_server(servers[0].server_id).hostname == servers[0].hostname
    with pytest.raises(NotFoundError):
        client.get_delivery_server(4242)

    domain = client.get_sending_domain(DEMO_SENDING_DOMAIN)
    assert (domain.name, domain.verified) == (DEMO_SENDING_DOMAIN, True)
    with pytest.raises(NotFoundError):
        client.get_sending_domain("unknown.example.org")


def test_campaign_group_and_pause_of_a_draft(client: PakatClient) -> None:
    list_uid = make_list(client)
    uid = client.create_campaign(
        name="Draft",
        list_uid=list_uid,
        from_name="Shop",
        from_email=SENDER,
        subject="Hi",
        reply_to=SENDER,
        send_at=T0 + timedelta(days=1),
        status="draft",
        html="<p>Hi</p>",
    )
    assert next(iter(client.campaigns())).group is None  # MailWizz's [] read as no group
    assert client.pause_unpause_campaign(uid) == "draft"  # 200, unchanged
    assert client.get_campaign(uid).status == "draft"


def test_transactional_email_view_is_the_stored_record(client: PakatClient) -> None:
    uid = client.create_transactional_email(
        to_email="a@x.io",
        to_name="A",
        from_name="Shop",
        from_email=SENDER,
        reply_to_email=SENDER,
        subject="Receipt",
        html="<p>Thanks</p>",
        plain_text="Thanks",
        send_at=T0 + timedelta(hours=1),
    )
    e = client.get_transactional_email(uid)
    assert (e.body, e.plain_text, e.reply_to_email, e.priority) == ("<p>Thanks</p>", "Thanks", SENDER, 5)
    assert e.reply_to_name == "Shop"  # MailWizz sets a Reply-To only with a name: from_name by default
    assert (e.retries, e.max_retries, e.fallback_system_servers) == (0, 3, "no")
    assert e.last_updated == e.date_added == datetime(2026, 3, 1, 9, 0)
    assert e.attachments == ()


def test_transactional_plain_text_is_made_from_the_body(client: PakatClient) -> None:
    uid = client.create_transactional_email(
        to_email="a@x.io",
        to_name="A",
        from_name="Shop",
        from_email=SENDER,
        subject="Receipt",
        html="<p>Thanks, <b>Ali</b></p>",
        plain_text="Sent but not assigned",  # MailWizz has no rule naming plain_text: it is dropped
    )
    e = client.get_transactional_email(uid)
    assert (e.plain_text, e.reply_to_email, e.reply_to_name) == ("Thanks, ALI", None, None)


def test_delivery_events_agree_with_stats(sandbox: PakatSandbox, client: PakatClient) -> None:
    _, uid = sent_campaign(sandbox, client, n=120)
    sandbox.advance(3 * 24 * 3600)  # every bounce is in
    provider = PakatProvider(client)
    stats = provider.campaign_stats(uid)
    assert stats.bounced is not None
    assert stats.bounced > 0
    events = list(provider.delivery_events(T0 - timedelta(days=1), T0 + timedelta(days=10)))
    by_status: dict[str, int] = {}
    for ev in events:
        by_status[ev.status] = by_status.get(ev.status, 0) + 1
    assert by_status.get("bounced", 0) == stats.bounced
    assert by_status.get("delivered", 0) + by_status.get("sent", 0) == stats.delivered
    assert len({ev.event_id for ev in events}) == len(events)


def test_every_earlier_operation_over_loopback(sandbox: PakatSandbox, client: PakatClient) -> None:
    """The operations the client already had, each once over real HTTP (the in-process tests cover the rest)."""
    assert client.verify().used == 0
    list_uid = make_list(client)
    assert client.get_list(list_uid).name == "Buyers"
    client.update_list(list_uid, name="Buyers 2")
    assert [lst.name for lst in client.lists()] == ["Buyers 2"]
    copy_uid = client.copy_list(list_uid)
    client.delete_list(copy_uid)
    assert {f.tag for f in client.list_fields(list_uid)} >= {"EMAIL", "FNAME", "LNAME"}

    sub = client.create_subscriber(list_uid, "a@x.io", {"FNAME": "Ann"})
    assert client.get_subscriber(list_uid, sub.subscriber_uid).fields["FNAME"] == "Ann"
    client.update_subscriber(list_uid, sub.subscriber_uid, {"FNAME": "Anna"})
    found = client.search_subscriber(list_uid, "a@x.io")
    assert found is not None
    assert found.subscriber_uid == sub.subscriber_uid
    assert [m.list_uid for m in client.search_subscriber_in_all_lists("a@x.io")] == [list_uid]
    client.bulk_add_subscribers(list_uid, [{"EMAIL": "b@x.io"}, {"EMAIL": "c@x.io"}])
    assert client.count_subscribers(list_uid) == 3
    assert len(list(client.list_subscribers(list_uid, status="confirmed"))) == 3
    client.unsubscribe(list_uid, sub.subscriber_uid)
    client.unsubscribe_from_all_lists("b@x.io")
    c_uid = next(s.subscriber_uid for s in client.list_subscribers(list_uid) if s.email == "c@x.io")
    client.delete_subscriber(list_uid, c_uid)

    seg = client.create_segment(list_uid, "All")
    assert [s.segment_uid for s in client.segments(list_uid)] == [seg]
    assert len(list(client.segment_subscribers(list_uid, seg))) == 2

    tpl = client.create_template("T", "<p>Hi</p>")
    client.update_template(tpl, name="T2")
    assert client.get_template(tpl).name == "T2"
    assert tpl in {t.template_uid for t in client.templates()}

    uid = client.create_campaign(
        name="C",
        list_uid=list_uid,
        from_name="Shop",
        from_email=SENDER,
        subject="Hi",
        reply_to=SENDER,
        send_at=T0,
        template_uid=tpl,
    )
    client.update_campaign(uid, subject="Hello")
    assert client.get_campaign(uid).subject == "Hello"
    assert [c.campaign_uid for c in client.campaigns()] == [uid]
    copy = client.copy_campaign(uid)
    client.delete_campaign(copy)
    client.update_campaign(uid, status="pending-sending")
    assert client.pause_unpause_campaign(uid) in ("paused", "sending")
    assert client.mark_campaign_sent(uid) == "sent"
    assert client.campaign_stats(uid).campaign_status == "sent"
    assert list(client.delivery_logs(uid)) == []  # marked sent before delivering
    assert list(client.campaign_bounces(uid)) == []
    assert list(client.campaign_unsubscribes(uid)) == []

    eml = client.create_transactional_email(
        to_email="a@x.io", to_name="A", from_name="Shop", from_email=SENDER, subject="S", html="<p>x</p>"
    )
    assert [e.email_uid for e in client.transactional_emails()] == [eml]
    assert client.get_transactional_email(eml).subject == "S"
    client.delete_transactional_email(eml)
    client.delete_template(tpl)
    assert sandbox.hook("campaign", campaign_uid=uid)["status"] == "sent"
