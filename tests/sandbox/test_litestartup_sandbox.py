"""The LiteStartup emulator, driven with raw httpx (in-process, and over real loopback HTTP)."""

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from espcore.sandbox.base import FaultPlan, FileStore
from espcore.sandbox.litestartup import (
    DEMO_API_KEY,
    DEMO_DOMAIN,
    SIGNATURE_HEADER,
    LiteStartupSandbox,
    OutcomeRates,
    PlanLimits,
)
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC)
BASE = "http://127.0.0.1/client/v2"
AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
SENDER = f"news@{DEMO_DOMAIN}"


def make_client(sb: LiteStartupSandbox, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=BASE, transport=InProcessTransport(sb.app), headers=AUTH if headers is None else headers
    )


@pytest.fixture
def sb() -> LiteStartupSandbox:
    s = LiteStartupSandbox(seed=7, rate_limit=False, outcomes=OutcomeRates.markers_only())
    s.freeze_clock(T0)
    return s


@pytest.fixture
def http(sb: LiteStartupSandbox) -> Iterator[httpx.Client]:
    with make_client(sb) as c:
        yield c


def add_contact(http: httpx.Client, email: str, **fields: Any) -> dict[str, Any]:
    r = http.post("/contacts", json={"email": email, **fields})
    assert r.status_code == 201, r.text
    return r.json()["data"]


def new_campaign(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "Q1", "subject": "Hello", "html": "<p>hi</p>", "from": SENDER, "recipient_list": "all_subscribers"}
    r = http.post("/campaigns", json={**body, **fields})
    assert r.status_code == 201, r.text
    return r.json()["data"]


# -- auth and envelopes -------------------------------------------------------------------------------------


def test_auth_missing_or_unknown_key_is_401_invalid_api_key(sb: LiteStartupSandbox) -> None:
    with make_client(sb, headers={}) as anon:
        r = anon.get("/verify")
        assert r.status_code == 401
        assert r.json() == {"success": False, "error": "Invalid API key", "code": "INVALID_API_KEY"}
        r = anon.get("/contacts", headers={"Authorization": "Bearer sk_live_nope"})
        assert r.status_code == 401
        assert r.json()["code"] == "INVALID_API_KEY"
        assert anon.get("/verify", headers={"Authorization": f"Basic {DEMO_API_KEY}"}).status_code == 401


def test_verify_returns_bare_uuid_per_key(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    first = http.get("/verify").json()
    assert set(first) == {"uuid"}
    assert http.get("/verify").json() == first
    sb.hook("add_key", key="sk_live_other", plan="pro")
    other = http.get("/verify", headers={"Authorization": "Bearer sk_live_other"}).json()
    assert set(other) == {"uuid"}
    assert other != first


def test_envelopes_follow_the_seed(http: httpx.Client) -> None:
    r = http.post("/contacts", json={"email": "ann@example.com", "name": "Ann", "tags": ["vip"]})
    assert r.status_code == 201
    body = r.json()
    assert body["success"] is True
    assert set(body["data"]) == {"id", "email", "name", "created_at"}
    assert body["data"]["id"].startswith("contact_")
    assert body["data"]["created_at"] == "2026-01-15T10:00:00Z"
    listing = http.get("/contacts").json()
    assert set(listing) == {"success", "data", "pagination"}
    assert listing["pagination"] == {"page": 1, "limit": 20, "total": 1, "pages": 1}
    sent = http.post("/emails", json={"to": "ann@example.com", "from": SENDER, "subject": "Hi"})
    assert sent.status_code == 200
    assert set(sent.json()) == {"messageId"}
    t = http.post("/templates", json={"name": "Welcome"}).json()
    assert t["data"]["id"].startswith("tmpl_")
    tl = http.get("/templates").json()
    assert tl["pagination"] == {"page": 1, "limit": 20, "total": 1}  # the seed's templates example has no pages
    assert http.delete(f"/templates/{t['data']['id']}").json() == {"success": True, "message": "Template deleted"}
    dup = http.post("/contacts", json={"email": "ANN@example.com"})
    assert dup.status_code == 409
    assert dup.json() == {"success": False, "error": "Contact already exists"}


def test_json_bodies_only(http: httpx.Client) -> None:
    form = http.post(
        "/contacts", content=b"email=a%40b.co", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 400
    assert form.json() == {"success": False, "error": "Invalid JSON body"}
    bad = http.post("/contacts", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    arr = http.post("/contacts", json=[{"email": "a@b.co"}])
    assert arr.status_code == 400
    multi = http.post("/contacts", files={"file": ("a.csv", b"email\na@b.co\n")})
    assert multi.status_code == 400
    missing = http.post("/contacts", json={"name": "x"})
    assert missing.status_code == 422
    assert "code" not in missing.json()
    assert http.post("/contacts", json={"email": "a@b.co", "shoe_size": 44}).status_code == 201  # unknown ignored


# -- pagination and contacts -------------------------------------------------------------------------------


def test_pagination_defaults_clamping_and_order(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    for i in range(45):
        add_contact(http, f"user{i:02d}@example.com")
        sb.advance(1)
    p = http.get("/contacts").json()
    assert p["pagination"] == {"page": 1, "limit": 20, "total": 45, "pages": 3}
    assert p["data"][0]["email"] == "user44@example.com"  # created_at descending
    assert http.get("/contacts", params={"limit": 500}).json()["pagination"]["limit"] == 100
    assert http.get("/contacts", params={"limit": 0}).json()["pagination"]["limit"] == 20
    assert http.get("/contacts", params={"limit": "x", "page": -3}).json()["pagination"]["page"] == 1
    last = http.get("/contacts", params={"page": 3}).json()
    assert len(last["data"]) == 5
    past = http.get("/contacts", params={"page": 9, "limit": 10}).json()
    assert past["data"] == []
    assert past["pagination"] == {"page": 9, "limit": 10, "total": 45, "pages": 5}


def test_contact_filters_and_not_found(http: httpx.Client) -> None:
    a = add_contact(http, "ann@example.com", name="Ann Lee", tags=["vip", "b1"])
    add_contact(http, "joann@example.com", name="Jo", tags=["b1"], subscribed=False)
    add_contact(http, "bob@other.org", name="Bob Annson")
    emails = lambda params: sorted(c["email"] for c in http.get("/contacts", params=params).json()["data"])  # noqa: E731
    assert emails({"search": "ann"}) == ["ann@example.com", "bob@other.org", "joann@example.com"]
    assert emails({"search": "ANN@example"}) == ["ann@example.com", "joann@example.com"]
    assert emails({"subscribed": "false"}) == ["joann@example.com"]
    assert emails({"subscribed": "true", "tag": "b1"}) == ["ann@example.com"]
    assert emails({"tag": "vip"}) == ["ann@example.com"]
    assert http.get("/contacts", params={"subscribed": "maybe"}).status_code == 400
    got = http.get(f"/contacts/{a['id']}").json()["data"]
    assert got["tags"] == ["vip", "b1"]
    assert got["subscribed"] is True
    assert got["attributes"] == {}
    nf = http.get("/contacts/contact_missing")
    assert nf.status_code == 404
    assert nf.json() == {
        "success": False,
        "error": "Contact not found",
        "code": "CONTACT_NOT_FOUND",
    }
    assert http.put("/contacts/contact_missing", json={"name": "x"}).json()["code"] == "CONTACT_NOT_FOUND"
    assert http.delete("/contacts/contact_missing").status_code == 404
    bad = http.post("/contacts", json={"email": "not-an-email"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "INVALID_EMAIL"


def test_contact_put_semantics_and_resubscription_record(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    a = add_contact(http, "ann@example.com", name="Ann", attributes={"plan": "pro", "city": "Oslo"}, tags=["x", "y"])
    add_contact(http, "bob@example.com")
    r = http.put(f"/contacts/{a['id']}", json={"tags": ["y"], "attributes": {"plan": "free"}})
    data = r.json()["data"]
    assert data["tags"] == ["y"]
    assert data["attributes"] == {"plan": "free"}
    assert data["name"] == "Ann"
    taken = http.put(f"/contacts/{a['id']}", json={"email": "BOB@example.com"})
    assert taken.status_code == 409
    assert http.put(f"/contacts/{a['id']}", json={"subscribed": False}).json()["data"]["subscribed"] is False
    assert sb.hook("resubscriptions") == []
    back = http.put(f"/contacts/{a['id']}", json={"subscribed": True})
    assert back.status_code == 200
    assert back.json()["data"]["subscribed"] is True
    resubs = sb.hook("resubscriptions")  # ...but the sandbox records it
    assert len(resubs) == 1
    assert resubs[0]["email"] == "ann@example.com"
    assert http.delete(f"/contacts/{a['id']}").json() == {"success": True, "message": "Contact deleted"}
    assert http.get(f"/contacts/{a['id']}").status_code == 404


# -- rate limits and quota ---------------------------------------------------------------------------------

SMALL = {
    "free": PlanLimits(per_minute=3, per_hour=5, monthly_emails=10, daily_emails=4),
    "pro": PlanLimits(10, 100, 100, None),
}


def test_rate_limit_fixed_windows_per_key() -> None:
    sb = LiteStartupSandbox(plans=SMALL)
    sb.freeze_clock(T0 + timedelta(seconds=15))  # 45 s left in the minute window
    sb.hook("add_key", key="sk_live_second")
    with make_client(sb) as http:
        for _ in range(3):
            assert http.get("/contacts").status_code == 200
        limited = http.get("/contacts")
        assert limited.status_code == 429
        assert limited.json() == {"success": False, "error": "Rate limit exceeded", "code": "RATE_LIMIT_EXCEEDED"}
        assert limited.headers["Retry-After"] == "45"
        # rejected 429s do not count, unauthenticated requests neither; another key has its own windows
        assert http.get("/contacts", headers={"Authorization": "Bearer sk_live_second"}).status_code == 200
        assert http.get("/contacts", headers={"Authorization": "Bearer bad"}).status_code == 401
        sb.advance(44.5)
        again = http.get("/verify")
        assert again.status_code == 429
        assert again.headers["Retry-After"] == "1"
        sb.advance(1)
        assert http.get("/verify").status_code == 200
        assert http.get("/verify").status_code == 200
        hourly = http.get("/verify")  # 5 counted this hour: the hour window trips
        assert hourly.status_code == 429
        assert hourly.headers["Retry-After"] == "3540"  # until 11:00:00, now 10:01:00.5
        sb.advance(3600)
        assert http.get("/verify").status_code == 200
    unlimited = LiteStartupSandbox(plans=SMALL, rate_limit=False)
    with make_client(unlimited) as http:
        assert all(http.get("/verify").status_code == 200 for _ in range(10))


def test_every_authenticated_request_counts_even_failures() -> None:
    sb = LiteStartupSandbox(plans=SMALL)
    sb.freeze_clock(T0)
    with make_client(sb) as http:
        assert http.get("/contacts/contact_missing").status_code == 404
        assert http.post("/contacts", json={"email": "bad"}).status_code == 400
        assert http.get("/nowhere").status_code == 404
        assert http.get("/verify").status_code == 429


def test_quota_daily_and_monthly_per_recipient(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    sb.hook("set_usage", daily=348)
    two = {"to": "a@example.com", "cc": ["b@example.com"], "from": SENDER, "subject": "s"}
    ok = http.post("/emails", json=two)
    assert ok.status_code == 200
    assert sb.hook("usage")["daily"] == 350
    over = http.post("/emails", json={**two, "bcc": ["c@example.com"]})
    assert over.status_code == 429
    assert "Retry-After" not in over.headers
    assert over.json()["code"] == "INSUFFICIENT_QUOTA"
    assert sb.hook("usage")["daily"] == 350  # nothing counted, nothing sent
    assert http.get("/emails").json()["pagination"]["total"] == 1
    sb.advance(86400)  # a new day
    assert http.post("/emails", json=two).status_code == 200
    sb.hook("set_usage", monthly=9_999)
    assert http.post("/emails", json=two).json()["code"] == "INSUFFICIENT_QUOTA"
    sb.hook("set_plan", plan="pro")  # pro: no daily cap, 110,000 a month
    sb.hook("set_usage", daily=5_000)
    assert http.post("/emails", json=two).status_code == 200


def test_campaign_send_over_quota_sends_nothing(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    for i in range(3):
        add_contact(http, f"c{i}@example.com")
    camp = new_campaign(http)
    sb.hook("set_usage", daily=348)
    r = http.post(f"/campaigns/{camp['id']}/send")
    assert r.status_code == 429
    assert r.json()["code"] == "INSUFFICIENT_QUOTA"
    assert "Retry-After" not in r.headers
    assert http.get(f"/campaigns/{camp['id']}").json()["data"]["status"] == "draft"
    assert sb.hook("messages") == []


# -- sending validation ------------------------------------------------------------------------------------


def test_email_validation_domain_and_addresses(http: httpx.Client) -> None:
    base = {"to": "a@example.com", "from": SENDER, "subject": "s"}
    r = http.post("/emails", json={**base, "from": "me@unverified.example"})
    assert r.status_code == 403
    assert r.json()["code"] == "DOMAIN_NOT_VERIFIED"
    for extra in ({"to": "nope"}, {"to": ["a@example.com", "bad@"]}, {"cc": ["x"]}, {"bcc": ["y@"]}):
        r = http.post("/emails", json={**base, **extra})
        assert (r.status_code, r.json()["code"]) == (400, "INVALID_EMAIL"), extra
    r = http.post("/emails", json={"to": "a@example.com", "from": SENDER})
    assert r.status_code == 422
    assert "code" not in r.json()
    assert http.post("/emails", json={**base, "from": f"News <{SENDER}>"}).status_code == 200


def test_campaign_validation(http: httpx.Client) -> None:
    body = {"name": "n", "subject": "s", "html": "<p/>", "from": SENDER, "recipient_list": "all_subscribers"}
    assert http.post("/campaigns", json={**body, "recipient_list": "everyone"}).status_code == 422
    assert http.post("/campaigns", json={**body, "recipient_list": "tag:"}).status_code == 422
    assert http.post("/campaigns", json={k: v for k, v in body.items() if k != "html"}).status_code == 422
    assert http.post("/campaigns", json={**body, "scheduled_at": "soon"}).status_code == 422
    assert http.post("/campaigns", json={**body, "from": "a@elsewhere.example"}).json()["code"] == "DOMAIN_NOT_VERIFIED"
    nf = http.get("/campaigns/campaign_nope")
    assert nf.status_code == 404
    assert nf.json()["code"] == "CAMPAIGN_NOT_FOUND"
    assert http.get("/campaigns/campaign_nope/stats").json()["code"] == "CAMPAIGN_NOT_FOUND"
    assert http.post("/campaigns/campaign_nope/send").json()["code"] == "CAMPAIGN_NOT_FOUND"
    assert http.get("/templates/tmpl_nope").json() == {
        "success": False,
        "error": "Invalid template: template not found",
        "code": "INVALID_TEMPLATE",
    }
    assert http.post("/templates", json={"subject": "no name"}).status_code == 422


# -- lifecycles on the clock -------------------------------------------------------------------------------


def test_email_lifecycle_timestamps_and_lookup_by_message_id(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    mid = http.post("/emails", json={"to": "ok@example.com", "from": SENDER, "subject": "s"}).json()["messageId"]
    e = http.get(f"/emails/{mid}").json()["data"]
    assert e["status"] == "queued"
    assert e["delivered_at"] is None
    assert e["id"].startswith("email_")
    sb.advance(1)
    assert http.get(f"/emails/{e['id']}").json()["data"]["status"] == "sent"
    sb.advance(4)
    d = http.get(f"/emails/{e['id']}").json()["data"]
    assert d["status"] == "delivered"
    assert d["delivered_at"] == "2026-01-15T10:00:05Z"
    assert set(d) == {
        "id", "to", "from", "subject", "status", "created_at", "delivered_at", "opened_at", "clicked_at",
        "bounced", "spam_reported", "unsubscribed",
    }  # fmt: skip
    bid = http.post("/emails", json={"to": "bounce@example.com", "from": SENDER, "subject": "s"}).json()["messageId"]
    cid = http.post("/emails", json={"to": "click@example.com", "from": SENDER, "subject": "s"}).json()["messageId"]
    sb.advance(3600)
    b = http.get(f"/emails/{bid}").json()["data"]
    assert b["status"] == "bounced"
    assert b["bounced"] is True
    assert b["delivered_at"] is None
    c = http.get(f"/emails/{cid}").json()["data"]
    assert c["opened_at"] is not None
    assert c["clicked_at"] > c["opened_at"]
    assert http.get("/emails/email_nope").status_code == 404


def test_failed_status_by_fault_injection() -> None:
    sb = LiteStartupSandbox(faults=FaultPlan(seed=1, reject_email_fraction=1.0), rate_limit=False)
    sb.freeze_clock(T0)
    with make_client(sb) as http:
        mid = http.post("/emails", json={"to": "a@example.com", "from": SENDER, "subject": "s"}).json()["messageId"]
        sb.advance(10)
        assert http.get(f"/emails/{mid}").json()["data"]["status"] == "failed"


def test_email_list_filters_and_sorts(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    sb.hook("verify_domain", domain="other.example")
    http.post("/emails", json={"to": "a@example.com", "from": SENDER, "subject": "1", "tags": ["promo"]})
    sb.advance(60)
    http.post(
        "/emails", json={"to": ["bounce@example.com", "b@example.com"], "from": "x@other.example", "subject": "2"}
    )
    sb.advance(60)
    http.post("/emails", json={"to": "c@example.com", "from": SENDER, "subject": "3"})
    subjects = lambda **p: [e["subject"] for e in http.get("/emails", params=p).json()["data"]]  # noqa: E731
    assert subjects() == ["3", "2", "1"]
    assert subjects(order="asc") == ["1", "2", "3"]
    assert subjects(status="bounced") == ["2"]
    assert subjects(status="delivered") == ["1"]
    assert subjects(status="queued") == ["3"]
    assert subjects(sort="status", order="asc") == ["2", "1", "3"]  # bounced < delivered < queued
    assert subjects(**{"from": SENDER}) == ["3", "1"]
    assert subjects(to="b@example.com") == ["2"]
    assert subjects(tag="promo") == ["1"]
    assert subjects(created_after="2026-01-15T10:01:00Z") == ["3", "2"]
    assert subjects(created_before="2026-01-15T10:00:30Z") == ["1"]
    listed = http.get("/emails", params={"to": "b@example.com"}).json()["data"][0]
    assert listed["to"] == ["bounce@example.com", "b@example.com"]
    assert set(listed) == {"id", "to", "from", "subject", "status", "created_at"}
    for bad in ({"status": "lost"}, {"sort": "subject"}, {"order": "up"}, {"created_after": "yesterday"}):
        assert http.get("/emails", params=bad).status_code == 400


def test_campaign_lifecycle_never_mails_unsubscribed(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    add_contact(http, "a@example.com", tags=["b1"])
    add_contact(http, "b@example.com", tags=["b1"], subscribed=False)
    add_contact(http, "c@example.com", tags=["b2"])
    camp = new_campaign(http, recipient_list="tag:b1")
    assert camp["status"] == "draft"
    assert set(camp) == {"id", "name", "status", "created_at"}
    sent = http.post(f"/campaigns/{camp['id']}/send")
    assert sent.json() == {"success": True, "data": {"id": camp["id"], "status": "sending"}}
    assert http.post(f"/campaigns/{camp['id']}/send").status_code == 422
    assert http.put(f"/campaigns/{camp['id']}", json={"subject": "x"}).status_code == 422
    assert http.delete(f"/campaigns/{camp['id']}").status_code == 422
    assert [m["to"] for m in sb.hook("messages", campaign_id=camp["id"])] == [["a@example.com"]]
    sb.advance(2)
    got = http.get(f"/campaigns/{camp['id']}").json()["data"]
    assert got["status"] == "sent"
    assert got["sent_at"] == "2026-01-15T10:00:00Z"
    assert http.get("/emails").json()["data"] == []  # campaign messages are not listed
    everyone = new_campaign(http, name="all")
    http.post(f"/campaigns/{everyone['id']}/send")
    recipients = sorted(m["to"][0] for m in sb.hook("messages", campaign_id=everyone["id"]))
    assert recipients == ["a@example.com", "c@example.com"]


def test_scheduled_campaign_starts_on_the_clock(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    add_contact(http, "a@example.com")
    camp = new_campaign(http, scheduled_at="2026-01-15T12:00:00Z")
    assert camp["status"] == "scheduled"
    moved = http.put(f"/campaigns/{camp['id']}", json={"scheduled_at": "2026-01-15T13:00:00Z"}).json()["data"]
    assert moved["status"] == "scheduled"
    assert moved["scheduled_at"] == "2026-01-15T13:00:00Z"
    sb.advance(2 * 3600)
    assert http.get(f"/campaigns/{camp['id']}").json()["data"]["status"] == "scheduled"  # old time ignored
    sb.advance(3600)
    assert http.get(f"/campaigns/{camp['id']}").json()["data"]["status"] == "sending"
    sb.advance(5)
    assert http.get(f"/campaigns/{camp['id']}").json()["data"]["status"] == "sent"
    draft = new_campaign(http, name="d", scheduled_at="2026-01-16T00:00:00Z")
    http.put(f"/campaigns/{draft['id']}", json={"scheduled_at": None})
    assert http.get(f"/campaigns/{draft['id']}").json()["data"]["status"] == "draft"
    assert http.delete(f"/campaigns/{draft['id']}").json() == {"success": True, "message": "Campaign deleted"}
    listed = http.get("/campaigns", params={"status": "sent"}).json()
    assert [c["id"] for c in listed["data"]] == [camp["id"]]


def _stats_run(seed: int) -> list[dict[str, Any]]:
    sb = LiteStartupSandbox(seed=seed, rate_limit=False)
    sb.freeze_clock(T0)
    out = []
    with make_client(sb) as http:
        for i in range(120):
            add_contact(http, f"reader{i}@example.com")
        camp = new_campaign(http)
        http.post(f"/campaigns/{camp['id']}/send")
        for step in (0, 3, 10, 600, 3600):
            sb.advance(step)
            out.append(http.get(f"/campaigns/{camp['id']}/stats").json()["data"])
    return out


def test_stats_evolve_deterministically() -> None:
    run = _stats_run(3)
    assert run == _stats_run(3)
    first, *_, last = run
    assert first["sent"] == 120
    assert first["delivered"] == 0
    assert first["open_rate"] == 0.0
    assert [s["delivered"] for s in run] == sorted(s["delivered"] for s in run)
    assert [s["opened"] for s in run] == sorted(s["opened"] for s in run)
    assert last["delivered"] + last["bounced"] == 120
    assert 0 < last["opened"] < last["delivered"]
    assert last["clicked"] <= last["opened"]
    assert last["open_rate"] == round(last["opened"] / last["delivered"] * 100, 1)
    assert last["click_rate"] == round(last["clicked"] / last["delivered"] * 100, 1)
    assert set(last) == {
        "id", "name", "sent", "delivered", "bounced", "opened", "clicked", "unsubscribed", "spam_reported",
        "open_rate", "click_rate",
    }  # fmt: skip
    assert _stats_run(4)[-1] != last


def test_unsubscribe_and_spam_events_set_subscribed_false(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    u = add_contact(http, "unsub-me@example.com")
    s = add_contact(http, "spammy@example.com")
    k = add_contact(http, "keeper@example.com")
    camp = new_campaign(http)
    http.post(f"/campaigns/{camp['id']}/send")
    sb.advance(3 * 3600)
    subscribed = {c["id"]: c["subscribed"] for c in http.get("/contacts").json()["data"]}
    assert subscribed == {u["id"]: False, s["id"]: False, k["id"]: True}
    stats = http.get(f"/campaigns/{camp['id']}/stats").json()["data"]
    assert stats["unsubscribed"] == 1
    assert stats["spam_reported"] == 1
    mid = http.post("/emails", json={"to": "keeper@example.com", "from": SENDER, "subject": "s"}).json()["messageId"]
    sb.hook("email_event", email_id=mid, event="email.unsubscribed")
    assert http.get(f"/contacts/{k['id']}").json()["data"]["subscribed"] is False
    assert sb.hook("resubscriptions") == []


# -- webhooks ----------------------------------------------------------------------------------------------


def test_webhook_crud_and_validation(http: httpx.Client) -> None:
    r = http.post("/webhooks", json={"url": "https://hooks.example/ls", "events": ["email.delivered"]})
    assert r.status_code == 201
    hook = r.json()["data"]
    assert hook["secret"].startswith("whsec_")
    assert hook["active"] is True
    assert hook["id"].startswith("wh_")
    listed = http.get("/webhooks").json()["data"]
    assert len(listed) == 1
    assert "secret" not in listed[0]
    upd = http.put(f"/webhooks/{hook['id']}", json={"active": False, "events": ["email.bounced"]}).json()["data"]
    assert upd["active"] is False
    assert upd["events"] == ["email.bounced"]
    assert "secret" not in upd
    assert http.post("/webhooks", json={"url": "http://hooks.example/x", "events": ["email.sent"]}).status_code == 422
    assert http.post("/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["email.sent"]}).status_code == 201
    assert http.post("/webhooks", json={"url": "https://h.example", "events": ["email.lost"]}).status_code == 422
    assert http.post("/webhooks", json={"url": "https://h.example", "events": []}).status_code == 422
    assert http.delete(f"/webhooks/{hook['id']}").json() == {"success": True, "message": "Webhook deleted"}
    assert http.put(f"/webhooks/{hook['id']}", json={"active": True}).status_code == 404


def test_webhook_deliveries_are_signed_and_follow_the_clock(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    hook = http.post("/webhooks", json={"url": "https://h.example/a", "events": ["email.delivered", "email.opened"]})
    secret = hook.json()["data"]["secret"]
    http.post("/webhooks", json={"url": "https://h.example/off", "events": ["email.delivered"], "active": False})
    mid = http.post("/emails", json={"to": "open@example.com", "from": SENDER, "subject": "Hi"}).json()["messageId"]
    assert sb.hook("webhook_deliveries") == []
    sb.advance(5)
    (d,) = sb.hook("webhook_deliveries")
    assert d["event"] == "email.delivered"
    assert d["url"] == "https://h.example/a"
    expected = hmac.new(secret.encode(), d["body"].encode(), hashlib.sha256).hexdigest()
    assert d["signature"] == expected
    payload = json.loads(d["body"])
    assert payload["event"] == "email.delivered"
    assert payload["timestamp"] == "2026-01-15T10:00:05Z"
    email_id = http.get(f"/emails/{mid}").json()["data"]["id"]
    assert payload["data"] == {
        "email_id": email_id,
        "to": "open@example.com",
        "from": SENDER,
        "subject": "Hi",
        "status": "delivered",
        "delivered_at": "2026-01-15T10:00:05Z",
    }
    sb.advance(3600)
    assert [x["event"] for x in sb.hook("webhook_deliveries")] == ["email.delivered", "email.opened"]


def test_webhook_sender_retries_with_backoff_on_the_clock() -> None:
    calls: list[tuple[str, bytes, dict[str, str]]] = []
    answers = iter([500, 503, 200])

    def sender(url: str, body: bytes, headers: Any) -> int:
        calls.append((url, body, dict(headers)))
        return next(answers)

    sb = LiteStartupSandbox(rate_limit=False, webhook_sender=sender, outcomes=OutcomeRates.markers_only())
    sb.freeze_clock(T0)
    with make_client(sb) as http:
        secret = http.post("/webhooks", json={"url": "https://h.example", "events": ["email.sent"]}).json()["data"][
            "secret"
        ]
        http.post("/emails", json={"to": "a@example.com", "from": SENDER, "subject": "s"})
        sb.advance(1)
        assert len(calls) == 1
        sb.advance(10)
        assert len(calls) == 2
        sb.advance(59)
        assert len(calls) == 2
        sb.advance(1)
        assert len(calls) == 3
        (d,) = sb.hook("webhook_deliveries")
        assert d["status"] == "delivered"
        assert d["attempts"] == 3
        _, body, headers = calls[-1]
        assert headers[SIGNATURE_HEADER] == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- faults and loopback -----------------------------------------------------------------------------------


def test_fault_injection_uses_the_error_envelope(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    sb.faults.add("status", status=500, path="^/contacts$", times=1)
    r = http.get("/contacts")
    assert r.status_code == 500
    assert r.json()["success"] is False
    assert http.get("/contacts").status_code == 200
    sb.faults.add("status", status=429, retry_after="7", times=1)
    r = http.get("/verify")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    sb.faults.add("timeout", path="^/verify$", times=1)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/verify")
    sb.faults.add("reset", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/verify")


@pytest.mark.network
def test_over_real_loopback_http() -> None:
    sb = LiteStartupSandbox(outcomes=OutcomeRates.markers_only())
    server = serve(sb.app)
    try:
        with httpx.Client(base_url=server.url, headers=sb.admin_headers(), timeout=10) as admin:
            admin.post("/__sandbox/clock", json={"freeze": True, "at": T0.isoformat()})
            with httpx.Client(base_url=f"{server.url}/client/v2", headers=AUTH, timeout=10) as http:
                assert set(http.get("/verify").json()) == {"uuid"}
                assert http.get("/verify", headers={"Authorization": "Bearer x"}).status_code == 401
                c = add_contact(http, "loop@example.com", tags=["b1"])
                mid = http.post("/emails", json={"to": "loop@example.com", "from": SENDER, "subject": "s"}).json()
                admin.post("/__sandbox/clock", json={"advance": 10})
                got = http.get(f"/emails/{mid['messageId']}").json()["data"]
                assert got["status"] == "delivered"
                assert got["delivered_at"] == "2026-01-15T10:00:05Z"
                http.put(f"/contacts/{c['id']}", json={"subscribed": False})
                http.put(f"/contacts/{c['id']}", json={"subscribed": True})
                resubs = admin.post("/__sandbox/hooks/resubscriptions", json={}).json()["result"]
                assert [r["email"] for r in resubs] == ["loop@example.com"]
                bad = http.post("/contacts", content=b"x=1", headers={"Content-Type": "text/plain"})
                assert bad.status_code == 400
                assert bad.json()["error"] == "Invalid JSON body"
    finally:
        server.stop()


def test_scheduled_launch_over_quota_fails_and_sends_nothing(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    add_contact(http, "a@example.com")
    camp = new_campaign(http, scheduled_at="2026-01-15T11:00:00Z")
    sb.hook("set_usage", monthly=10_000)
    sb.advance(3600)
    assert http.get(f"/campaigns/{camp['id']}").json()["data"]["status"] == "failed"
    assert sb.hook("messages") == []


def test_file_store_shares_one_account_between_sandboxes(tmp_path: Any) -> None:
    path = tmp_path / "litestartup.json"
    plans = {"free": PlanLimits(per_minute=6, per_hour=100, monthly_emails=100, daily_emails=100)}
    first = LiteStartupSandbox(FileStore(path), plans=plans)
    first.freeze_clock(T0)
    second = LiteStartupSandbox(FileStore(path), plans=plans)
    with make_client(first) as a, make_client(second) as b:
        assert a.get("/verify").json() == b.get("/verify").json()
        created = add_contact(a, "shared@example.com")
        assert b.get(f"/contacts/{created['id']}").json()["data"]["email"] == "shared@example.com"
        mid = b.post("/emails", json={"to": "x@example.com", "from": SENDER, "subject": "s"}).json()["messageId"]
        second.advance(10)
        assert a.get(f"/emails/{mid}").json()["data"]["status"] == "delivered"
        assert a.get("/verify").status_code == 429  # 6 requests a minute, counted across both
