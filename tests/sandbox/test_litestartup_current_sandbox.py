"""The LiteStartup emulator in its current dialect (LiteStartup's newer official API), driven with raw httpx.

Also: hostile input (malformed JSON, wrong content type, 5 MB bodies, unknown paths, wrong methods, a broken
multipart body) answered in each dialect's own error shape.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from espcore.sandbox.base import FileStore
from espcore.sandbox.litestartup import (
    DEMO_API_KEY,
    DEMO_DOMAIN,
    LiteStartupSandbox,
    OutcomeRates,
    PlanLimits,
    prepare_state_dialect,
)
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 1, 15, 10, 0, 0, tzinfo=UTC)
BASE = "http://127.0.0.1/client/v2"
AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
SENDER = f"news@{DEMO_DOMAIN}"


def sandbox(dialect: str = "current", **kw: Any) -> LiteStartupSandbox:
    kw.setdefault("rate_limit", False)
    s = LiteStartupSandbox(seed=7, outcomes=OutcomeRates.markers_only(), dialect=dialect, **kw)
    s.freeze_clock(T0)
    return s


def client(sb: LiteStartupSandbox, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=BASE, transport=InProcessTransport(sb.app), headers=AUTH if headers is None else headers
    )


@pytest.fixture
def sb() -> LiteStartupSandbox:
    return sandbox()


@pytest.fixture
def http(sb: LiteStartupSandbox) -> Iterator[httpx.Client]:
    with client(sb) as c:
        yield c


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200, body
    assert isinstance(body["message"], str), body
    return body["data"]


def err(r: httpx.Response, status: int, contains: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status
    assert set(body) == {"code", "message", "data"}
    assert contains.lower() in (body["message"] or json.dumps(body["data"])).lower(), body
    return body


def tag(http: httpx.Client, name: str) -> int:
    return ok(http.post("/tags/create", json={"name": name}))["id"]


def contact(http: httpx.Client, email: str, **fields: Any) -> int:
    return ok(http.post("/contacts/add", json={"email": email, **fields}))["id"]


# -- envelope, auth, scopes ----------------------------------------------------------------------------------


def test_verify_and_the_401_shape(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    r = http.get("/verify")
    assert r.json()["code"] == 200
    assert r.json()["message"] == "ok"
    assert len(r.json()["data"]["uuid"]) == 36  # a hyphenated uuid
    with client(sb, headers={"Authorization": "Bearer nope"}) as bad:
        body = bad.get("/verify").json()
    assert body == {"code": 401, "message": "", "data": {"error": "Invalid API key"}}
    with client(sb, headers={}) as anon:
        assert anon.get("/contacts/list").status_code == 401


def test_the_dialect_is_kept_in_the_state_and_reset_keeps_it(tmp_path: Any) -> None:
    path = tmp_path / "ls.json"
    first = LiteStartupSandbox(FileStore(path), dialect="current")
    first.reset(demo=True)
    again = LiteStartupSandbox(FileStore(path))  # no dialect given: the state's
    assert again.dialect == "current"
    with client(again) as http:
        assert ok(http.get("/verify"))["uuid"]
    assert prepare_state_dialect(path, None) == "current"
    fresh = tmp_path / "new.json"
    assert prepare_state_dialect(fresh, "current") == "current"  # a new state file, as asked
    assert LiteStartupSandbox(FileStore(fresh)).dialect == "current"
    with pytest.raises(ValueError, match="unknown LiteStartup dialect"):
        LiteStartupSandbox(dialect="v3")


def test_scoped_keys_and_usage_permission(sb: LiteStartupSandbox) -> None:
    sb.hook("add_key", key="sk_mail", account="acct_demo", scopes=["email"])
    sb.hook("add_key", key="sk_note", account="acct_demo", scopes=["notification"])
    sb.hook("add_key", key="sk_member", account="acct_demo", role="member")
    mail = {"to": "a@example.org", "from": SENDER, "subject": "Hi", "html": "<p>Hi</p>"}
    with client(sb, {"Authorization": "Bearer sk_mail"}) as c:
        assert ok(c.post("/emails", json=mail))["messageId"]
        err(c.get("/contacts/list"), 403, "scope")
        err(c.post("/emails/notification", json={"subject": "S", "content": "C"}), 403, "scope")
        assert ok(c.get("/verify"))["uuid"]
    with client(sb, {"Authorization": "Bearer sk_note"}) as c:
        assert ok(c.post("/emails/notification", json={"subject": "S", "content": "<p>C</p>"}))["messageId"]
        err(c.post("/emails", json=mail), 403, "scope")
    with client(sb, {"Authorization": "Bearer sk_member"}) as c:
        err(c.get("/settings/usage"), 403, "permission denied")
        assert ok(c.get("/contacts/list"))["total"] == 0


def test_usage_reports_the_monthly_quota(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    ok(
        http.post(
            "/emails",
            json={"to": ["a@example.org", "b@example.org"], "from": SENDER, "subject": "S", "html": "<p>x</p>"},
        )
    )
    data = ok(http.get("/settings/usage"))
    assert data["plan"]["type"] == "free"
    assert data["plan_usage"] == [{"feature": "team.emails_per_month", "quota_limit": 10_000, "usage_count": 2}]


def test_rate_limit_per_minute_without_retry_after() -> None:
    plans = {"free": PlanLimits(per_minute=3, per_hour=4, monthly_emails=None, daily_emails=None)}
    s = sandbox(rate_limit=True, plans=plans)
    with client(s) as http:
        for _ in range(3):
            ok(http.get("/contacts/list"))
        r = http.get("/contacts/list")
        err(r, 429, "rate limit")
        assert "Retry-After" not in r.headers
        s.advance(60)
        for _ in range(3):  # no hourly window in this dialect: the 4-an-hour cap does not apply
            ok(http.get("/contacts/list"))


# -- contacts and tags ---------------------------------------------------------------------------------------


def test_contacts_crud_in_the_current_shapes(http: httpx.Client) -> None:
    vip = tag(http, "VIP")
    cid = contact(
        http,
        "ann@example.org",
        name="Ann Lee",
        first_name="Ann",
        last_name="Lee",
        company="Acme",
        tags=[vip],
        custom_fields={"country": "NZ"},
    )
    assert isinstance(cid, int)
    got = ok(http.get("/contacts/get", params={"id": cid}))
    assert (got["first_name"], got["company"], got["status"], got["tags"]) == ("Ann", "Acme", "subscribed", [str(vip)])
    assert got["custom_fields"] == {"country": "NZ"}
    listing = ok(http.get("/contacts/list", params={"tag": vip}))
    assert listing["total"] == 1
    assert listing["page"] == 1
    assert listing["limit"] == 20
    assert set(listing["contacts"][0]) == {"id", "email", "name", "company", "status", "created_at"}
    assert listing["contacts"][0]["created_at"] == "2026-01-15 10:00:00"
    assert listing["tags"] == [{"id": vip, "name": "VIP"}]
    assert listing["stats"] == {"total": 1, "subscribed": 1, "unsubscribed": 0}
    err(http.post("/contacts/add", json={"email": "ANN@example.org"}), 400, "already exists")
    err(http.post("/contacts/add", json={"email": "not-an-address"}), 400, "invalid email")
    err(http.post("/contacts/add", json={"email": "b@example.org", "tags": [999]}), 400, "not found")
    assert ok(http.put("/contacts/update", json={"id": cid, "status": "unsubscribed", "company": "New"})) == []
    assert ok(http.get("/contacts/list", params={"status": "unsubscribed"}))["total"] == 1
    err(http.get("/contacts/list", params={"status": "gone"}), 400)
    err(http.put("/contacts/update", json={"name": "x"}), 400, "id required")
    err(http.get("/contacts/get"), 400, "id required")
    err(http.get("/contacts/get", params={"id": 999}), 404, "not found")
    hits = ok(http.get("/contacts/search", params={"q": "acme"}))  # no: company changed to New
    assert hits == {"contacts": [], "total": 0}
    hits = ok(http.get("/contacts/search", params={"q": "ANN@", "limit": 5}))
    assert hits["total"] == 1
    assert set(hits["contacts"][0]) == {"id", "email", "name", "company"}
    err(http.get("/contacts/search"), 400, "keyword")
    assert ok(http.request("DELETE", "/contacts/delete", json={"id": cid})) == []
    err(http.request("DELETE", "/contacts/delete", json={"id": cid}), 404)


def test_resubscription_is_recorded(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    cid = contact(http, "r@example.org", status="unsubscribed")
    ok(http.put("/contacts/update", json={"id": cid, "status": "subscribed"}))
    assert [r["email"] for r in sb.hook("resubscriptions")] == ["r@example.org"]


def test_tags_crud_and_delete_leaves_contacts(http: httpx.Client) -> None:
    t = tag(http, "News")
    err(http.post("/tags/create", json={"name": "news"}), 400, "already exists")
    err(http.post("/tags/create", json={"name": "X", "color": "red"}), 400, "color")
    cid = contact(http, "t@example.org", tags=[t])
    ok(http.put("/tags/update", json={"id": t, "name": "Newsletter", "color": "#00FF00"}))
    tags = ok(http.get("/tags/list", params={"search": "letter"}))
    assert tags["tags"][0]["name"] == "Newsletter"
    assert tags["tags"][0]["contact_count"] == 1
    ok(http.request("DELETE", "/tags/delete", json={"id": t}))
    assert ok(http.get("/contacts/get", params={"id": cid}))["tags"] == []
    err(http.put("/tags/update", json={"id": t, "name": "Z"}), 404)


def test_csv_import_and_export(http: httpx.Client) -> None:
    t = tag(http, "Imported")
    contact(http, "old@example.org")
    csv_text = (
        "email,name,first_name,last_name,phone,company\n"
        "new@example.org,New One,New,One,,Acme\nold@example.org,Old,,,,\nbroken,,,,,\nnew@example.org,Dup,,,,\n"
    )
    r = http.post("/contacts/import", files={"file": ("c.csv", csv_text.encode(), "text/csv")}, data={"tags": str(t)})
    assert ok(r) == {"imported": 1, "skipped": 2, "failed": 1}
    err(http.post("/contacts/import", json={"file": "x"}), 400, "invalid file format")
    err(http.post("/contacts/import", files={"file": ("c.csv", b"name\nx\n", "text/csv")}), 400, "email column")
    exp = http.get("/contacts/export", params={"tags": str(t)})
    assert exp.status_code == 200
    assert exp.headers["content-type"].startswith("text/csv")
    lines = exp.text.strip().splitlines()
    assert lines[0] == "email,name,first_name,last_name,phone,company,tags,created_at"
    assert lines[1:] == ["new@example.org,New One,New,One,,Acme,Imported,2026-01-15"]


# -- templates, emails ---------------------------------------------------------------------------------------


def test_templates(http: httpx.Client) -> None:
    created = ok(http.post("/templates/create", json={"name": "Welcome Email", "content": "<p>Hi {{name}}</p>"}))
    assert created["string_id"].startswith("welcome-email-")
    err(http.post("/templates/create", json={"name": "No content"}), 400, "content")
    tid = created["id"]
    ok(http.put(f"/templates/update/{tid}", json={"description": "d"}))
    assert ok(http.get(f"/templates/content/{tid}"))["description"] == "d"
    assert ok(http.get(f"/templates/{tid}"))["content"] == "<p>Hi {{name}}</p>"
    copy = ok(http.post(f"/templates/copy/{tid}"))
    assert copy["name"] == "Welcome Email (Copy)"
    assert [t["id"] for t in ok(http.get("/templates/list"))["templates"]] == [copy["id"], tid]
    ok(http.request("DELETE", f"/templates/delete/{tid}"))
    err(http.get(f"/templates/{tid}"), 404)


def test_emails_send_list_get_and_documented_500s(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    tpl = ok(http.post("/templates/create", json={"name": "T", "content": "<p>Hi {{name}}</p>"}))
    err(http.post("/emails", json={"to": "a@example.org", "subject": "S", "html": "x"}), 500, "from email or to")
    err(http.post("/emails", json={"to": "a@example.org", "from": SENDER, "subject": "S"}), 500, "required")
    err(http.post("/emails", json={"to": "a@", "from": SENDER, "subject": "S", "html": "x"}), 400, "invalid email")
    err(
        http.post("/emails", json={"to": "a@example.org", "from": "x@other.example", "subject": "S", "html": "x"}),
        403,
        "not allowed",
    )
    err(
        http.post(
            "/emails",
            json={"to": "a@example.org", "from": SENDER, "subject": "S", "html": "", "template": {"id": "nope"}},
        ),
        404,
        "template",
    )
    mid = ok(
        http.post(
            "/emails",
            json={
                "to": "a@example.org",
                "from": SENDER,
                "subject": "Hi {{name}}",
                "html": "",
                "cc": "c@example.org",
                "template": {"id": tpl["string_id"], "variables": {"name": "Ann"}},
            },
        )
    )["messageId"]
    listing = ok(http.get("/emails"))
    assert listing["pagination"] == {"page": 1, "limit": 20, "total": 1, "total_pages": 1}
    item = listing["emails"][0]
    assert (item["to_email"], item["status"], item["subject"]) == ("a@example.org", "sent", "Hi Ann")
    assert item["message_id"] == f"{mid}@{DEMO_DOMAIN}"
    got = ok(http.get(f"/emails/{item['id']}"))
    assert got["html_content"] == "<p>Hi Ann</p>"
    assert got["cc_email"] == "c@example.org"
    assert got["date"] == "Jan 15, 2026, 10:00 AM"
    assert ok(http.get(f"/emails/{mid}"))["id"] == item["id"]
    err(http.get("/emails/12345"), 500, "error")
    err(http.get("/emails", params={"status": "bounced"}), 400)
    assert ok(http.get("/emails", params={"status": "failed"}))["emails"] == []


def test_quota_429_words_it_per_endpoint(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    sb.hook("set_usage", daily=350)
    r = http.post("/emails", json={"to": "a@example.org", "from": SENDER, "subject": "S", "html": "x"})
    err(r, 429, "daily usage exceeded the limit")
    assert "Retry-After" not in r.headers
    err(
        http.post("/emails/notification", json={"subject": "S", "content": "C"}),
        429,
        "Daily email usage exceeded the limit",
    )
    sb.hook("set_usage", daily=0, monthly=10_000)
    err(
        http.post("/emails", json={"to": "a@example.org", "from": SENDER, "subject": "S", "html": "x"}),
        429,
        "monthly usage exceeded the limit",
    )


# -- campaigns ----------------------------------------------------------------------------------------------


def new_campaign(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "Q1", "subject": "Hello", "content": "<p>hi</p>", "from_email": SENDER, **fields}
    return ok(http.post("/marketing/create", json=body))


def test_campaign_send_by_status_reaches_sent_and_reports(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    t = tag(http, "Readers")
    for i in range(3):
        contact(http, f"r{i}@example.org", tags=[t])
    contact(http, "gone@example.org", tags=[t], status="unsubscribed")
    contact(http, "other@example.org")
    created = new_campaign(http, tags=[t])
    assert created["status"] == "draft"
    assert isinstance(created["id"], int)
    cid = created["id"]
    got = ok(http.get(f"/marketing/{cid}"))
    assert (got["tag_id"], got["from_email"], got["content"], got["scheduled_at"]) == (t, SENDER, "<p>hi</p>", None)
    assert ok(http.put(f"/marketing/update/{cid}", json={"status": "sending"})) == []
    assert ok(http.get(f"/marketing/{cid}"))["status"] == "sending"
    err(http.put(f"/marketing/update/{cid}", json={"subject": "late"}), 400, "cannot be updated")
    sb.advance(3600)
    assert ok(http.get(f"/marketing/{cid}"))["status"] == "sent"
    report = ok(http.get(f"/marketing/{cid}/report"))
    assert report["campaign"]["total_recipients"] == 3
    stats = report["stats"]
    assert (stats["total_recipients"], stats["delivered"], stats["bounces"]) == (3, 3, 0)
    assert set(stats) >= {"opens", "clicks", "unsubscribes", "open_rate", "click_rate", "unsubscribe_rate"}
    assert [c["id"] for c in ok(http.get("/marketing/list", params={"status": "sent"}))["campaigns"]] == [cid]
    err(http.request("DELETE", f"/marketing/delete/{cid}"), 400)
    err(http.get("/marketing/999"), 404)


def test_scheduled_campaign_review_and_quota(sb: LiteStartupSandbox, http: httpx.Client) -> None:
    contact(http, "a@example.org")
    when = (T0 + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    err(
        http.post(
            "/marketing/create",
            json={"name": "N", "subject": "S", "content": "x", "from_email": SENDER, "status": "scheduled"},
        ),
        400,
        "scheduled_at",
    )
    sb.hook("set_review_rejects", phrases=["win a prize"])
    err(new_and_raw(http, status="sending", content="<p>WIN A PRIZE now</p>"), 400, "ai review")
    assert ok(http.get("/marketing/list"))["total"] == 0  # a refused campaign is not created
    camp = new_campaign(http, status="scheduled", scheduled_at=when)
    assert camp["status"] == "scheduled"
    assert ok(http.get(f"/marketing/{camp['id']}"))["scheduled_at"] == "2026-01-15 12:00:00"
    sb.advance(2 * 3600 + 60)
    assert ok(http.get(f"/marketing/{camp['id']}"))["status"] == "sent"
    sb.hook("set_usage", monthly=10_000)
    err(new_and_raw(http, status="sending"), 429, "monthly usage exceeded the limit")
    copy = ok(http.post(f"/marketing/copy/{camp['id']}"))
    assert (copy["name"], copy["status"]) == ("Q1 (Copy)", "draft")
    ok(http.request("DELETE", f"/marketing/delete/{copy['id']}"))


def new_and_raw(http: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"name": "Q1", "subject": "Hello", "content": "<p>hi</p>", "from_email": SENDER, **fields}
    return http.post("/marketing/create", json=body)


# -- hostile input, in each dialect's own error shape ---------------------------------------------------------


def shape_of(dialect: str, r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    if dialect == "current":
        assert body["code"] == status, body
        assert set(body) == {"code", "message", "data"}, body
        assert body["message"] or body["data"]
    else:
        assert body["success"] is False, body
        assert isinstance(body["error"], str), body
        assert body["error"], body


DIALECTS = ("seed", "current")
WRITE = {"seed": "/contacts", "current": "/contacts/add"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_malformed_json_is_a_400_in_the_dialects_shape(dialect: str) -> None:
    with client(sandbox(dialect)) as http:
        r = http.post(
            WRITE[dialect], content=b'{"email": "a@example.org",', headers={"Content-Type": "application/json"}
        )
        shape_of(dialect, r, 400)
        shape_of(dialect, http.post(WRITE[dialect], json=["not", "an", "object"]), 400)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_content_type_is_a_400_in_the_dialects_shape(dialect: str) -> None:
    with client(sandbox(dialect)) as http:
        shape_of(dialect, http.post(WRITE[dialect], data={"email": "a@example.org"}), 400)
        shape_of(
            dialect,
            http.post(WRITE[dialect], content=b'{"email":"a@example.org"}', headers={"Content-Type": "text/plain"}),
            400,
        )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_5_mb_body_is_a_413_in_the_dialects_shape(dialect: str) -> None:
    big = json.dumps({"email": "a@example.org", "name": "x" * (5 * 1024 * 1024)}).encode()
    with client(sandbox(dialect)) as http:
        shape_of(dialect, http.post(WRITE[dialect], content=big, headers={"Content-Type": "application/json"}), 413)
        if dialect == "current":  # the upload limit holds for the CSV import too
            csv_body = b"email\n" + b"a@example.org\n" * (5 * 1024 * 1024 // 14)
            shape_of(dialect, http.post("/contacts/import", files={"file": ("c.csv", csv_body, "text/csv")}), 413)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_paths_are_a_404_in_the_dialects_shape(dialect: str) -> None:
    with client(sandbox(dialect)) as http:
        shape_of(dialect, http.get("/no/such/thing"), 404)
        other = "/contacts/list" if dialect == "seed" else "/webhooks"  # the other dialect's paths do not exist
        shape_of(dialect, http.get(other), 404)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_methods_are_a_405_in_the_dialects_shape(dialect: str) -> None:
    with client(sandbox(dialect)) as http:
        r = http.patch(WRITE[dialect], json={})
        shape_of(dialect, r, 405)
        assert "POST" in r.headers["Allow"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_broken_multipart_body_is_a_400_in_the_dialects_shape(dialect: str) -> None:
    path = "/contacts/import" if dialect == "current" else "/contacts"
    with client(sandbox(dialect)) as http:
        r = http.post(
            path,
            content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nab',
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        )
        shape_of(dialect, r, 400)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fault_injection_uses_the_dialects_envelope(dialect: str) -> None:
    s = sandbox(dialect)
    s.faults.add("status", status=503, path="/verify", times=1)
    with client(s) as http:
        shape_of(dialect, http.get("/verify"), 503)


def test_current_dialect_over_real_loopback_http() -> None:
    s = sandbox()
    server = serve(s.app)
    try:
        with httpx.Client(base_url=f"{server.url}/client/v2", headers=AUTH) as http:
            t = tag(http, "Loop")
            cid = contact(http, "loop@example.org", tags=[t])
            assert ok(http.get("/contacts/get", params={"id": cid}))["tags"] == [str(t)]
            shape_of(
                "current", http.post("/contacts/add", content=b"{", headers={"Content-Type": "application/json"}), 400
            )
    finally:
        server.stop()
