"""The Pakat (MailWizz) sandbox against what MailWizz 2.x (which Pakat runs) does, with raw httpx."""

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from espcore.sandbox.base import FileStore
from espcore.sandbox.pakat import DEMO_API_KEY, PakatSandbox, nest_brackets
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def sandbox() -> PakatSandbox:
    sb = PakatSandbox(seed=11)
    sb.reset(demo=True)
    sb.freeze_clock(T0)
    return sb


@pytest.fixture
def api(sandbox: PakatSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=InProcessTransport(sandbox.app),
        base_url="http://127.0.0.1/api",
        headers={"X-API-KEY": DEMO_API_KEY},
    ) as client:
        yield client


def make_list(api: httpx.Client, name: str = "Buyers", **extra: str) -> str:
    data = {
        "general[name]": name,
        "general[description]": "test list",
        "defaults[from_name]": "Shop",
        "defaults[from_email]": "shop@demo.example.com",
        "defaults[reply_to]": "shop@demo.example.com",
        **extra,
    }
    r = api.post("/lists", data=data)
    assert r.status_code == 201, r.text
    return r.json()["list_uid"]


def add(
    api: httpx.Client, list_uid: str, email: str, status: str | None = "confirmed", **fields: str
) -> httpx.Response:
    data = {"EMAIL": email, **fields}
    if status:
        data["details[status]"] = status
    return api.post(f"/lists/{list_uid}/subscribers", data=data)


def make_campaign(
    api: httpx.Client, list_uid: str, *, status: str = "draft", send_at: str = "2026-03-01 09:00:00", **extra: str
) -> httpx.Response:
    data = {
        "campaign[name]": "Spring sale ck-0123456789abcdef",
        "campaign[from_name]": "Shop",
        "campaign[from_email]": "shop@demo.example.com",
        "campaign[subject]": "Hello",
        "campaign[reply_to]": "shop@demo.example.com",
        "campaign[send_at]": send_at,
        "campaign[list_uid]": list_uid,
        "campaign[status]": status,
        "campaign[template][content]": b64("<p>Hi [FNAME]</p>"),
        **extra,
    }
    return api.post("/campaigns", data=data)


# -- transport, auth, envelopes --------------------------------------------------------------------------------


def test_auth_errors_are_400_with_exact_strings(api: httpx.Client) -> None:
    r = api.get("/lists", headers={"X-API-KEY": ""})
    assert r.status_code == 400
    assert r.json() == {"status": "error", "error": "Invalid API request params. Please refer to the documentation."}
    r = api.get("/lists", headers={"X-API-KEY": "nope"})
    assert r.status_code == 400
    assert r.json()["error"] == "Invalid API key. Please refer to the documentation."
    # auth is checked before routing
    assert api.get("/nowhere", headers={"X-API-KEY": "nope"}).status_code == 400


def test_unknown_route_and_wrong_verb(api: httpx.Client) -> None:
    r = api.get("/nowhere")
    assert (r.status_code, r.json()["error"]) == (404, "Page not found.")
    list_uid = make_list(api)
    r = api.put(f"/lists/{list_uid}/subscribers", content=b"EMAIL=a%40x.io", headers=FORM)
    assert (r.status_code, r.json()["error"]) == (400, "Only POST requests allowed for this endpoint.")
    r = api.delete("/campaigns")
    assert (r.status_code, r.json()["error"]) == (400, "Only POST requests allowed for this endpoint.")
    r = api.post("/quota/index")
    assert (r.status_code, r.json()["error"]) == (400, "Only GET requests allowed for this endpoint.")


def test_php_style_json_escaping(api: httpx.Client) -> None:
    list_uid = make_list(api, name="مشتریان/ویژه")
    r = api.get(f"/lists/{list_uid}")
    raw = r.content.decode("ascii")  # pure ASCII on the wire
    assert "\\u0645" in raw
    assert "\\/" in raw
    assert r.json()["data"]["record"]["general"]["name"] == "مشتریان/ویژه"


def test_post_ignores_json_but_reads_multipart_and_urlencoded(api: httpx.Client) -> None:
    list_uid = make_list(api)
    r = api.post(f"/lists/{list_uid}/subscribers", json={"EMAIL": "a@x.io"})
    assert (r.status_code, r.json()["error"]) == (422, "Please provide the subscriber email address.")
    r = api.post(f"/lists/{list_uid}/subscribers", files={"EMAIL": (None, "a@x.io"), "FNAME": (None, "Ali")})
    assert r.status_code == 201, r.text
    r = api.post(f"/lists/{list_uid}/subscribers", data={"EMAIL": "b@x.io"})
    assert r.status_code == 201


def test_multipart_put_is_silently_ignored(api: httpx.Client) -> None:
    list_uid = make_list(api)
    uid = add(api, list_uid, "a@x.io", FNAME="Old").json()["data"]["record"]["subscriber_uid"]
    r = api.put(f"/lists/{list_uid}/subscribers/{uid}", files={"FNAME": (None, "New")})
    assert r.status_code == 200
    assert r.json()["status"] == "success"
    assert api.get(f"/lists/{list_uid}/subscribers/{uid}").json()["data"]["record"]["FNAME"] == "Old"
    r = api.put(f"/lists/{list_uid}/subscribers/{uid}", content=b"FNAME=Url", headers=FORM)
    assert r.status_code == 200
    assert api.get(f"/lists/{list_uid}/subscribers/{uid}").json()["data"]["record"]["FNAME"] == "Url"
    r = api.put(f"/lists/{list_uid}/subscribers/{uid}", json={"FNAME": "Json"})
    assert r.status_code == 200
    assert api.get(f"/lists/{list_uid}/subscribers/{uid}").json()["data"]["record"]["FNAME"] == "Json"


def test_method_override_header_is_honoured(api: httpx.Client) -> None:
    list_uid = make_list(api)
    uid = add(api, list_uid, "a@x.io").json()["data"]["record"]["subscriber_uid"]
    r = api.post(
        f"/lists/{list_uid}/subscribers/{uid}", data={"FNAME": "Via"}, headers={"X-HTTP-Method-Override": "PUT"}
    )
    assert r.status_code == 200
    assert api.get(f"/lists/{list_uid}/subscribers/{uid}").json()["data"]["record"]["FNAME"] == "Via"


def test_bracket_keys_nest() -> None:
    flat = {"campaign[name]": "n", "campaign[template][content]": "c", "subscribers[3][EMAIL]": "e", "x": "1"}
    assert nest_brackets(flat) == {
        "campaign": {"name": "n", "template": {"content": "c"}},
        "subscribers": {"3": {"EMAIL": "e"}},
        "x": "1",
    }


def test_envelopes(api: httpx.Client) -> None:
    r = api.get("/lists")
    assert r.json() == {
        "status": "success",
        "data": {
            "count": None,
            "total_pages": None,
            "current_page": None,
            "next_page": None,
            "prev_page": None,
            "records": [],
        },
    }
    r = api.post("/lists", data={"general[name]": ""})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["general"]["name"] == "Name cannot be blank."
    assert err["defaults"]["from_email"] == "From email cannot be blank."
    list_uid = make_list(api)
    body = api.get("/lists").json()
    assert body["data"]["count"] == "1"
    assert body["data"]["records"][0]["general"]["list_uid"] == list_uid
    assert api.get("/quota/index").json() == {
        "status": "ok",
        "quota": {"percentage": "0%", "used": 0, "allowed": "10000"},
    }
    r = add(api, list_uid, "a@x.io")
    rec = r.json()["data"]["record"]
    assert r.status_code == 201
    assert rec["date_added"] == {"expression": "NOW()", "params": {}}
    assert set(rec) == {"subscriber_uid", "email", "ip_address", "source", "date_added"}
    assert len(rec["subscriber_uid"]) == 13
    assert rec["subscriber_uid"].isalnum()


def test_paging_is_clamped_newest_first(api: httpx.Client) -> None:
    list_uid = make_list(api)
    for i in range(60):
        assert add(api, list_uid, f"u{i:02d}@x.io").status_code == 201
    data = api.get(f"/lists/{list_uid}/subscribers", params={"per_page": 100}).json()["data"]
    assert len(data["records"]) == 50
    assert data["count"] == "60"
    assert data["next_page"] == 2
    assert data["records"][0]["EMAIL"] == "u59@x.io"  # newest first
    assert len(api.get(f"/lists/{list_uid}/subscribers", params={"per_page": 5}).json()["data"]["records"]) == 10
    data = api.get(f"/lists/{list_uid}/subscribers", params={"page": 0}).json()["data"]
    assert data["current_page"] == 1
    assert data["prev_page"] is None
    data = api.get(f"/lists/{list_uid}/subscribers", params={"page": 9}).json()["data"]
    assert data["records"] == []
    assert data["next_page"] is None
    statuses = api.get(f"/lists/{list_uid}/subscribers", params={"status": "bogus"}).json()["data"]
    assert statuses["count"] == "60"  # unknown status filters are ignored


# -- subscribers -----------------------------------------------------------------------------------------------


def test_create_semantics(sandbox: PakatSandbox, api: httpx.Client) -> None:
    list_uid = make_list(api)
    assert add(api, list_uid, "bad-address").json()["error"] == "Please provide a valid email address."
    r = add(api, list_uid, "New@X.io", status=None)
    uid = r.json()["data"]["record"]["subscriber_uid"]
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email="new@x.io") == "unconfirmed"  # double opt-in
    assert [c["email"] for c in sandbox.hook("confirmations")] == ["New@X.io"]
    r = add(api, list_uid, "new@x.io")
    assert (r.status_code, r.json()["error"]) == (409, "The subscriber already exists in this list.")
    # unsubscribed: re-subscribed in place, same uid
    sandbox.hook("confirm_subscriber", list_uid=list_uid, email="new@x.io")
    assert api.put(f"/lists/{list_uid}/subscribers/{uid}/unsubscribe").status_code == 200
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email="new@x.io") == "unsubscribed"
    r = add(api, list_uid, "NEW@x.io")
    assert r.status_code == 201
    assert r.json()["data"]["record"]["subscriber_uid"] == uid
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email="new@x.io") == "confirmed"
    # single opt-in lists confirm directly
    sandbox.hook("set_list_opt_in", list_uid=list_uid, mode="single")
    add(api, list_uid, "single@x.io", status=None)
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email="single@x.io") == "confirmed"


def test_blacklist_is_account_wide(sandbox: PakatSandbox, api: httpx.Client) -> None:
    a, b = make_list(api, "A"), make_list(api, "B")
    assert add(api, a, "bad@x.io", status="blacklisted").status_code == 201
    r = add(api, b, "Bad@X.io")
    assert (r.status_code, r.json()["error"]) == (409, "This email address is blacklisted.")
    r = add(api, a, "bad@x.io")  # in the list and not unsubscribed: "exists" comes first
    assert r.json()["error"] == "The subscriber already exists in this list."
    assert sandbox.hook("blacklist") == ["bad@x.io"]


def test_update_rules_and_search(api: httpx.Client) -> None:
    list_uid = make_list(api)
    r = api.post(f"/lists/{list_uid}/fields", data={"type": "text", "label": "City", "tag": "CITY", "required": "yes"})
    assert r.status_code == 201
    r = api.post(f"/lists/{list_uid}/fields", data={"type": "text", "label": "City", "tag": "CITY", "required": "yes"})
    assert r.status_code == 422
    assert "tag" in r.json()["error"]
    r = add(api, list_uid, "a@x.io")
    assert r.status_code == 422
    assert r.json()["error"] == {"CITY": "The field CITY is required by the list but it has not been provided!"}
    uid = add(api, list_uid, "a@x.io", CITY="Tehran").json()["data"]["record"]["subscriber_uid"]
    add(api, list_uid, "b@x.io", CITY="Yazd")
    r = api.put(f"/lists/{list_uid}/subscribers/{uid}", content=b"FNAME=A", headers=FORM)
    assert r.status_code == 422
    assert "CITY" in r.json()["error"]
    r = api.put(f"/lists/{list_uid}/subscribers/{uid}", content=b"FNAME=A&CITY=Tehran", headers=FORM)
    assert r.status_code == 200
    r = api.put(f"/lists/{list_uid}/subscribers/{uid}", content=b"EMAIL=b%40x.io&CITY=Tehran", headers=FORM)
    assert (r.status_code, r.json()["error"]) == (
        409,
        "Another subscriber with this email address already exists in this list.",
    )
    r = api.put(f"/lists/{list_uid}/subscribers/zzzzzzzzzzzzz", content=b"CITY=Tehran", headers=FORM)
    assert (r.status_code, r.json()["error"]) == (409, "The subscriber does not exist in this list.")
    r = api.get(f"/lists/{list_uid}/subscribers/search-by-email", params={"EMAIL": "A@X.IO"})
    assert r.json()["data"]["subscriber_uid"] == uid
    assert r.json()["data"]["status"] == "confirmed"
    r = api.get(f"/lists/{list_uid}/subscribers/search-by-email", params={"EMAIL": "none@x.io"})
    assert (r.status_code, r.json()["error"]) == (404, "The subscriber does not exist in this list.")
    rec = api.get(f"/lists/{list_uid}/subscribers/{uid}").json()["data"]["record"]
    assert rec["FNAME"] == "A"
    assert "date_added" not in rec
    r = api.get("/lists/subscribers/search-by-email-in-all-lists", params={"EMAIL": "a@x.io"})
    assert r.json()["data"]["count"] == 1
    assert r.json()["data"]["records"][0]["list"]["list_uid"] == list_uid
    assert api.get(f"/lists/{list_uid}/subscribers/zzzzzzzzzzzzz").status_code == 404


def test_bulk_results_in_order_with_exact_strings(sandbox: PakatSandbox, api: httpx.Client) -> None:
    list_uid = make_list(api)
    add(api, list_uid, "exists@x.io")
    add(api, list_uid, "gone@x.io")
    gone_uid = api.get(f"/lists/{list_uid}/subscribers/search-by-email", params={"EMAIL": "gone@x.io"}).json()["data"][
        "subscriber_uid"
    ]
    api.put(f"/lists/{list_uid}/subscribers/{gone_uid}/unsubscribe")
    add(api, make_list(api, "Other"), "black@x.io", status="blacklisted")
    emails = ["a@x.io", "exists@x.io", "bad", "black@x.io", "a@x.io", "gone@x.io"]
    data = {f"subscribers[{i}][EMAIL]": e for i, e in enumerate(emails)}
    data["subscribers[0][FNAME]"] = "A"
    r = api.post(f"/lists/{list_uid}/subscribers/bulk", data=data)
    assert r.status_code == 201
    recs = r.json()["data"]["records"]
    assert recs[0]["data"]["FNAME"] == "A"
    assert recs[0]["data"]["LNAME"] is None
    assert "errors" not in recs[0]
    assert recs[1] == {
        "data": {"EMAIL": "exists@x.io", "FNAME": "", "LNAME": ""},
        "errors": {"EMAIL": "The subscriber already exists in this list."},
    }
    assert recs[2] == {"data": {"EMAIL": "bad"}, "errors": {"EMAIL": "Please provide a valid email address."}}
    assert recs[3]["errors"] == {"EMAIL": "This email address is blacklisted."}
    assert recs[4]["errors"] == {"EMAIL": "The subscriber already exists in this list."}  # repeated in one request
    assert recs[5]["data"]["subscriber_uid"] == gone_uid  # bulk re-subscribes unsubscribed rows
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email="gone@x.io") == "unconfirmed"  # list default
    r = api.post(f"/lists/{list_uid}/subscribers/bulk", data={})
    assert (r.status_code, r.json()["error"]) == (422, "Please provide the subscribers list.")


def test_bulk_keeps_the_first_10000(api: httpx.Client) -> None:
    list_uid = make_list(api)
    data = {f"subscribers[{i}][EMAIL]": f"u{i}@x.io" for i in range(10_001)}
    r = api.post(f"/lists/{list_uid}/subscribers/bulk", data=data)
    recs = r.json()["data"]["records"]
    assert r.status_code == 201
    assert len(recs) == 10_000
    assert recs[-1]["data"]["EMAIL"] == "u9999@x.io"
    assert api.get(f"/lists/{list_uid}/subscribers").json()["data"]["count"] == "10000"


def test_account_limits_and_mutex(sandbox: PakatSandbox, api: httpx.Client) -> None:
    list_uid = make_list(api)
    sandbox.hook("set_limits", max_lists=1, max_subscribers=1, max_campaigns=1)
    r = api.post("/lists", data={"general[name]": "x"})
    assert (r.status_code, r.json()["error"]) == (422, "You have reached the maximum number of allowed lists.")
    add(api, list_uid, "a@x.io")
    r = add(api, list_uid, "b@x.io")
    assert (r.status_code, r.json()["error"]) == (409, "The maximum number of allowed subscribers has been reached.")
    assert make_campaign(api, list_uid).status_code == 201
    r = make_campaign(api, list_uid)
    assert (r.status_code, r.json()["error"]) == (403, "You have reached the maximum number of allowed campaigns.")
    sandbox.hook("set_limits")
    sandbox.hook("fail_mutex", times=1)
    r = add(api, list_uid, "c@x.io")
    assert (r.status_code, r.json()["error"]) == (409, "Unable to acquire the mutex lock, please try again.")
    assert add(api, list_uid, "c@x.io").status_code == 201


# -- campaigns -------------------------------------------------------------------------------------------------


def test_campaign_validation(api: httpx.Client) -> None:
    list_uid = make_list(api)
    r = api.post("/campaigns", data={"campaign[name]": "x"})
    assert r.status_code == 422
    assert r.json()["error"]["subject"] == "Subject cannot be blank."
    r = make_campaign(api, "zzzzzzzzzzzzz")
    assert r.json()["error"] == "Provided list does not exist."
    r = make_campaign(api, list_uid, **{"campaign[template][content]": "%%%not base64"})
    assert r.status_code == 422
    r = api.post("/campaigns", json={"campaign": {"name": "json"}})
    assert r.status_code == 422  # JSON body not read


def test_draft_never_sends(sandbox: PakatSandbox, api: httpx.Client) -> None:
    list_uid = make_list(api)
    add(api, list_uid, "a@x.io")
    uid = make_campaign(api, list_uid, status="draft").json()["campaign_uid"]
    sandbox.advance(7 * 86400)
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["status"] == "draft"
    assert api.get(f"/campaigns/{uid}/delivery-logs").json()["data"]["records"] == []
    r = api.put(f"/campaigns/{uid}/mark-sent")
    assert (r.status_code, r.json()["error"]) == (400, "The campaign does not allow marking it as sent!")


def test_lifecycle_in_customer_timezone(sandbox: PakatSandbox, api: httpx.Client) -> None:
    sandbox.hook("set_timezone", timezone="Asia/Tehran")  # UTC+03:30
    list_uid = make_list(api)
    add(api, list_uid, "ok@x.io")
    add(api, list_uid, "pending@x.io", status="unconfirmed")
    add(api, list_uid, "later-black@x.io")
    add(api, make_list(api, "Other"), "later-black@x.io", status="blacklisted")
    # 13:00 Tehran = 09:30 UTC, 30 minutes after T0
    uid = make_campaign(api, list_uid, status="pending-sending", send_at="2026-03-01 13:00:00").json()["campaign_uid"]
    sandbox.advance(29 * 60)
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["status"] == "pending-sending"
    r = api.put(f"/campaigns/{uid}", content=b"campaign%5Bsubject%5D=Edited", headers=FORM)
    assert r.status_code == 200
    sandbox.advance(60)
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["status"] == "sending"
    logs = api.get(f"/campaigns/{uid}/delivery-logs").json()["data"]["records"]
    assert {(entry["subscriber"]["email"], entry["status"]) for entry in logs} == {
        ("ok@x.io", "success"),
        ("later-black@x.io", "blacklisted"),
    }
    r = api.delete(f"/campaigns/{uid}")
    assert (r.status_code, r.json()["error"]) == (400, "This campaign cannot be removed now.")
    assert api.put(f"/campaigns/{uid}/pause-unpause").json() == {"status": "success", "campaign": {"status": "paused"}}
    sandbox.advance(3600)
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["status"] == "paused"
    assert api.put(f"/campaigns/{uid}/pause-unpause").json()["campaign"]["status"] == "sending"
    sandbox.advance(120)
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["status"] == "sent"
    r = api.put(f"/campaigns/{uid}", content=b"campaign%5Bsubject%5D=Late", headers=FORM)
    assert (r.status_code, r.json()["error"]) == (422, "This campaign is not ediable.")
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["subject"] == "Edited"
    assert api.delete(f"/campaigns/{uid}").status_code == 200
    assert api.get(f"/campaigns/{uid}").json()["error"] == "Requested campaign does not exist."
    assert api.get(f"/campaigns/{uid}/delivery-logs").json()["error"] == "The campaign does not exist!"


def test_unpause_before_send_at_waits(sandbox: PakatSandbox, api: httpx.Client) -> None:
    list_uid = make_list(api)
    add(api, list_uid, "a@x.io")
    uid = make_campaign(api, list_uid, status="pending-sending", send_at="2026-03-01 12:00:00").json()["campaign_uid"]
    assert api.put(f"/campaigns/{uid}/pause-unpause").json()["campaign"]["status"] == "paused"
    assert api.put(f"/campaigns/{uid}/pause-unpause").json()["campaign"]["status"] == "sending"
    sandbox.advance(3600)
    assert api.get(f"/campaigns/{uid}/delivery-logs").json()["data"]["records"] == []
    sandbox.advance(3 * 3600)
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["status"] == "sent"
    assert len(api.get(f"/campaigns/{uid}/delivery-logs").json()["data"]["records"]) == 1


def test_mark_sent_copy_and_listing(api: httpx.Client) -> None:
    list_uid = make_list(api)
    uid = make_campaign(api, list_uid, status="paused").json()["campaign_uid"]
    assert api.put(f"/campaigns/{uid}/mark-sent").json() == {"status": "success", "campaign": {"status": "sent"}}
    copy = api.post(f"/campaigns/{uid}/copy")
    assert copy.status_code == 200
    new_uid = copy.json()["campaign_uid"]
    records = api.get("/campaigns").json()["data"]["records"]
    assert [r["campaign_uid"] for r in records] == [new_uid, uid]
    assert set(records[0]) == {"campaign_uid", "type", "name", "status", "group"}
    assert records[0]["status"] == "draft"


def _sent_campaign(sandbox: PakatSandbox, api: httpx.Client, n: int = 80) -> tuple[str, str]:
    list_uid = make_list(api)
    data = {f"subscribers[{i}][EMAIL]": f"u{i}@x.io" for i in range(n)}
    for i in range(n):
        data[f"subscribers[{i}][details][status]"] = "confirmed"
    api.post(f"/lists/{list_uid}/subscribers/bulk", data=data)
    uid = make_campaign(api, list_uid, status="pending-sending").json()["campaign_uid"]
    return list_uid, uid


def test_stats_follow_the_formulas_and_evolve(sandbox: PakatSandbox, api: httpx.Client) -> None:
    list_uid, uid = _sent_campaign(sandbox, api, n=200)
    early = api.get(f"/campaigns/{uid}/stats").json()["data"]
    assert early["processed_count"] == 200
    assert early["delivery_success_count"] == 200
    assert early["opens_count"] == 0
    sandbox.advance(3 * 86400)
    s = api.get(f"/campaigns/{uid}/stats").json()["data"]
    assert s["campaign_status"] == "sent"
    assert s["bounces_count"] == s["hard_bounces_count"] + s["soft_bounces_count"] + s["internal_bounces_count"] > 0
    engaged = s["delivery_success_count"] - s["bounces_count"]
    assert s["unique_opens_rate"] == round(s["unique_opens_count"] * 100 / engaged, 2)
    assert s["bounces_rate"] == round(s["bounces_count"] * 100 / s["processed_count"], 2)
    assert isinstance(s["opens_rate"], float)
    assert s["unique_opens_count"] > 0
    assert s["unsubscribes_count"] > 0
    # unsubscribes flip the subscriber; hard bounces blacklist it
    unsub = api.get(f"/campaigns/{uid}/unsubscribes").json()["data"]["records"][0]["subscriber"]["email"]
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email=unsub) == "unsubscribed"
    hard = [
        b
        for b in api.get(f"/campaigns/{uid}/bounces", params={"per_page": 50}).json()["data"]["records"]
        if b["bounce_type"] == "hard"
    ]
    assert hard
    assert sandbox.hook("subscriber_status", list_uid=list_uid, email=hard[0]["subscriber"]["email"]) == "blacklisted"
    confirmed = [v for v in sandbox.snapshot()["subscribers"][list_uid].values() if v["status"] == "confirmed"]
    assert s["subscribers_count"] == len(confirmed) < 200
    # same seed, same history
    twin = PakatSandbox(seed=11)
    twin.reset(demo=True)
    twin.freeze_clock(T0)
    with httpx.Client(
        transport=InProcessTransport(twin.app), base_url="http://127.0.0.1/api", headers={"X-API-KEY": DEMO_API_KEY}
    ) as api2:
        _, uid2 = _sent_campaign(twin, api2, n=200)
        twin.advance(3 * 86400)
        assert api2.get(f"/campaigns/{uid2}/stats").json()["data"] == s


def test_quota_counts_sends_and_blocks_creation(sandbox: PakatSandbox, api: httpx.Client) -> None:
    sandbox.hook("set_quota", allowed=80)
    _sent_campaign(sandbox, api, n=80)
    assert api.get("/quota/index").json()["quota"] == {"percentage": "100%", "used": 80, "allowed": "80"}
    list_uid = make_list(api, "Next")
    r = make_campaign(api, list_uid)
    assert (r.status_code, r.json()["error"]) == (403, "Your sending quota has been reached.")
    sandbox.hook("set_quota", allowed="∞")
    assert api.get("/quota/index").json()["quota"]["allowed"] == "∞"
    assert make_campaign(api, list_uid).status_code == 201


# -- templates, segments, transactional ----------------------------------------------------------------------------


def test_templates_and_segments(api: httpx.Client) -> None:
    r = api.post("/templates", data={"template[name]": "Promo", "template[content]": b64("<b>سلام</b>")})
    assert r.status_code == 201
    t_uid = r.json()["template_uid"]
    assert api.get(f"/templates/{t_uid}").json()["data"]["record"]["content"] == "<b>سلام</b>"
    assert api.post("/templates", data={"template[name]": "Bad", "template[content]": "***"}).status_code == 422
    names = [t["name"] for t in api.get("/templates", params={"filter[name]": "promo"}).json()["data"]["records"]]
    assert names == ["Promo"]
    list_uid = make_list(api)
    add(api, list_uid, "ali@shop.ir")
    add(api, list_uid, "bob@x.io")
    email_field = api.get(f"/lists/{list_uid}/fields").json()["data"]["records"][0]
    assert email_field["tag"] == "EMAIL"
    r = api.post(
        f"/lists/{list_uid}/segments",
        data={
            "name": "Iran",
            "operator_match": "any",
            "conditions[0][field_id]": str(email_field["field_id"]),
            "conditions[0][operator_id]": "6",
            "conditions[0][value]": ".ir",
        },
    )
    assert r.status_code == 201
    seg = r.json()["segment_uid"]
    subs = api.get(f"/lists/{list_uid}/segments/{seg}/subscribers").json()["data"]["records"]
    assert [s["EMAIL"] for s in subs] == ["ali@shop.ir"]


def test_transactional_emails(sandbox: PakatSandbox, api: httpx.Client) -> None:
    base = {
        "email[to_name]": "Ali",
        "email[to_email]": "ali@x.io",
        "email[from_name]": "Shop",
        "email[subject]": "Order",
        "email[body]": b64("<p>ok</p>"),
        "email[send_at]": "2026-03-01 10:00:00",  # UTC, one hour after T0
    }
    r = api.post(
        "/transactional-emails", data={**base, "email[from_email]": "x@unverified.io", "email[to_email]": "bad"}
    )
    assert r.status_code == 422
    assert isinstance(r.json()["error"], str)
    assert "<br />" in r.json()["error"]
    r = api.post("/transactional-emails", data={**base, "email[from_email]": "shop@demo.example.com"})
    assert r.status_code == 201
    uid = r.json()["email_uid"]
    assert api.get(f"/transactional-emails/{uid}").json()["data"]["record"]["status"] == "unsent"
    sandbox.advance(3600)
    assert api.get(f"/transactional-emails/{uid}").json()["data"]["record"]["status"] == "sent"
    assert api.get("/quota/index").json()["quota"]["used"] == 1
    assert api.delete(f"/transactional-emails/{uid}").status_code == 200
    assert api.get(f"/transactional-emails/{uid}").json()["error"] == "The email does not exist."


# -- faults and loopback ----------------------------------------------------------------------------------------------


def test_fault_injection_uses_pakat_envelope(sandbox: PakatSandbox, api: httpx.Client) -> None:
    sandbox.faults.add("status", status=429, retry_after="3", times=1)
    r = api.get("/lists")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.json()["status"] == "error"
    assert api.get("/lists").status_code == 200  # no rate limit of its own


@pytest.mark.network
def test_over_loopback_http(sandbox: PakatSandbox) -> None:
    with serve(sandbox.app) as server, httpx.Client(base_url=f"{server.url}/api") as raw:
        assert raw.get("/lists").json()["error"] == "Invalid API request params. Please refer to the documentation."
        raw.headers["X-API-KEY"] = DEMO_API_KEY
        list_uid = make_list(raw)
        r = raw.post(
            f"/lists/{list_uid}/subscribers", files={"EMAIL": (None, "a@x.io"), "details[status]": (None, "confirmed")}
        )
        uid = r.json()["data"]["record"]["subscriber_uid"]
        assert raw.put(f"/lists/{list_uid}/subscribers/{uid}", files={"FNAME": (None, "X")}).json() == {
            "status": "success",
            "data": {
                "record": {
                    "subscriber_uid": uid,
                    "email": "a@x.io",
                    "ip_address": "",
                    "source": "api",
                    "date_added": {"expression": "NOW()", "params": {}},
                }
            },
        }
        r = raw.post(f"{server.url}/__sandbox/clock", json={"advance": 60}, headers=sandbox.admin_headers())
        assert datetime.fromisoformat(r.json()["now"]) == T0 + timedelta(seconds=60)
        r = raw.post(f"{server.url}/__sandbox/hooks/set_quota", json={"allowed": 5}, headers=sandbox.admin_headers())
        assert raw.get("/quota/index").json()["quota"]["allowed"] == "5"
        assert json.loads(raw.get("/lists").content)["data"]["count"] == "1"


def test_etag_and_304(api: httpx.Client) -> None:
    r = api.get("/lists")
    etag = r.headers["ETag"]
    r2 = api.get("/lists", headers={"If-None-Match": etag})
    assert r2.status_code == 304
    assert r2.content == b""
    make_list(api)
    assert api.get("/lists", headers={"If-None-Match": etag}).status_code == 200


def test_api_offline_fault_message(sandbox: PakatSandbox, api: httpx.Client) -> None:
    sandbox.faults.add("status", status=503, times=1)
    r = api.get("/lists")
    assert (r.status_code, r.json()) == (503, {"status": "error", "error": "Service Unavailable."})


def test_file_store_shares_the_account(tmp_path: Path) -> None:
    path = tmp_path / "pakat.json"
    first = PakatSandbox(FileStore(path), seed=3)
    first.reset(demo=True)
    first.freeze_clock(T0)
    with httpx.Client(
        transport=InProcessTransport(first.app), base_url="http://127.0.0.1/api", headers={"X-API-KEY": DEMO_API_KEY}
    ) as api:
        list_uid = make_list(api)
        add(api, list_uid, "a@x.io")
        assert make_campaign(api, list_uid, status="pending-sending").status_code == 201
    second = PakatSandbox(FileStore(path), seed=3)
    second.advance(3 * 86400)
    with httpx.Client(
        transport=InProcessTransport(second.app), base_url="http://127.0.0.1/api", headers={"X-API-KEY": DEMO_API_KEY}
    ) as api:
        records = api.get("/campaigns").json()["data"]["records"]
        assert records[0]["status"] == "sent"
        assert api.get(f"/lists/{list_uid}/subscribers").json()["data"]["count"] == "1"
