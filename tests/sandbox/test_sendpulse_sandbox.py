"""The SendPulse sandbox against what the real SendPulse API does: envelopes, errors, limits, quirks.

Raw httpx requests only: the sandbox is the test ground of the client, so it is checked without it. Time is the
sandbox clock (frozen, then advanced); nothing sleeps.
"""

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from espcore.sandbox.base import FileStore
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SENDER_EMAIL, SendPulseSandbox
from espcore.sandbox.server import serve
from espcore.sandbox.transport import InProcessTransport

BASE = "https://api.sendpulse.com"
T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
LONG_TTL = 365 * 86400  # tests that walk the clock for days keep one token; expiry has its own test


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token(client: httpx.Client, **kwargs: Any) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}
    data.update(kwargs)
    return client.post("/oauth/access_token", json=data)


@contextmanager
def connect(sb: SendPulseSandbox, base_url: str = BASE) -> Iterator[httpx.Client]:
    """An httpx client holding a fresh demo token: in-process by default, else over ``base_url``."""
    transport = InProcessTransport(sb.app) if base_url == BASE else None
    with httpx.Client(transport=transport, base_url=base_url, timeout=10) as client:
        resp = token(client)
        assert resp.status_code == 200, resp.text
        client.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        yield client


@pytest.fixture
def sb() -> SendPulseSandbox:
    sandbox = SendPulseSandbox(rate_limit=False, token_ttl=LONG_TTL)
    sandbox.freeze_clock(T0)
    return sandbox


@pytest.fixture
def api(sb: SendPulseSandbox) -> Iterator[httpx.Client]:
    with connect(sb) as client:
        yield client


def new_book(api: httpx.Client, name: str = "book", emails: list[Any] | None = None) -> int:
    resp = api.post("/addressbooks", json={"bookName": name})
    assert resp.status_code == 200, resp.text
    book_id = resp.json()["id"]
    if emails:
        for i in range(0, len(emails), 100):
            r = api.post(f"/addressbooks/{book_id}/emails", json={"emails": emails[i : i + 100]})
            assert r.json() == {"result": True}, r.text
    return book_id


def rows(api: httpx.Client, book_id: int) -> dict[str, dict[str, Any]]:
    return {r["email"]: r for r in api.get(f"/addressbooks/{book_id}/emails").json()}


def campaign_args(list_id: int | list[int], **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "sender_name": "Demo",
        "sender_email": DEMO_SENDER_EMAIL,
        "subject": "Hello",
        "body": b64('<p>Hi</p><a href="https://example.org/a">a</a><a href="https://example.org/b">b</a>'),
        "list_id": list_id,
    }
    args.update(extra)
    return args


def assert_error(resp: httpx.Response, status: int, code: int, message: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code, body
    if message is not None:
        assert body["message"] == message


# -- §1 transport: OAuth, envelopes, paths ---------------------------------------------------------------------


def test_token_json_and_form_and_bad_credentials() -> None:
    sb = SendPulseSandbox(rate_limit=False)
    with httpx.Client(transport=InProcessTransport(sb.app), base_url=BASE) as c:
        js = token(c)
        assert js.status_code == 200
        body = js.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        assert body["access_token"].startswith("eyJ")
        form = c.post(
            "/oauth/access_token",
            data={"grant_type": "client_credentials", "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
        )
        assert form.status_code == 200
        assert form.json()["access_token"] != body["access_token"]
        bad = token(c, client_secret="nope")
        assert bad.status_code == 401
        assert bad.json() == {
            "error": "invalid_client",
            "error_description": "Client authentication failed",
            "message": "Client authentication failed",
        }
        # both tokens stay valid until they expire
        for tok in (body["access_token"], form.json()["access_token"]):
            assert c.get("/balance", headers={"Authorization": f"Bearer {tok}"}).status_code == 200


def test_missing_and_unknown_token_401(sb: SendPulseSandbox) -> None:
    with httpx.Client(transport=InProcessTransport(sb.app), base_url=BASE) as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
            resp = c.get("/addressbooks", headers=headers)
            assert resp.status_code == 401
            assert resp.json() == {"message": "Unauthorized!", "error_code": 401}


def test_token_expires_on_the_sandbox_clock() -> None:
    sb = SendPulseSandbox(rate_limit=False, token_ttl=120)
    sb.freeze_clock(T0)
    with connect(sb) as api:
        assert api.get("/balance").status_code == 200
        sb.advance(119)
        assert api.get("/balance").status_code == 200
        sb.advance(1)
        assert api.get("/balance").json() == {"message": "Unauthorized!", "error_code": 401}
        # a fresh token works again; revocation (a fault) kills it
        api.headers["Authorization"] = f"Bearer {token(api).json()['access_token']}"
        assert token(api).json()["expires_in"] == 120
        assert api.get("/balance").status_code == 200
        sb.hook("revoke_tokens")
        assert api.get("/balance").status_code == 401


def test_paths_ignore_trailing_and_doubled_slashes(api: httpx.Client) -> None:
    book_id = new_book(api, "slashes")
    assert api.get("/balance/").status_code == 200
    assert api.get(f"/addressbooks/{book_id}/").json()[0]["id"] == book_id
    assert api.get(f"/addressbooks/{book_id}//variables/").json() == []  # the seed's doubled slash
    assert_error(api.get("/no/such/thing"), 404, 404)
    assert_error(api.patch("/addressbooks"), 405, 405)


def test_html_500_crash_fault(sb: SendPulseSandbox, api: httpx.Client) -> None:
    sb.faults.add("status", status=500, html=True, path="^/balance$", times=1)
    resp = api.get("/balance")
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("text/html")
    assert "Whoops, looks like something went wrong." in resp.text
    assert api.get("/balance").status_code == 200


# -- pagination -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=101", "Argument limit may not be greater than 100"),
        ("limit=0", "Argument limit must be at least 1"),
        ("limit=abc", "Argument limit must be integer"),
        ("offset=-1", "Argument offset must be at least 0"),
        ("offset=x", "Argument offset must be integer"),
    ],
)
@pytest.mark.parametrize(
    "path", ["/addressbooks", "/templates", "/campaigns", "/blacklist", "/addressbooks/{id}/emails"]
)
def test_paging_422_messages(api: httpx.Client, path: str, query: str, message: str) -> None:
    book_id = new_book(api, "paging")
    assert_error(api.get(f"{path.format(id=book_id)}?{query}"), 422, 422, message)


def test_paging_defaults_order_and_end(api: httpx.Client) -> None:
    emails = [f"user{i:03d}@example.com" for i in range(150)]
    book_id = new_book(api, "big", emails)
    first = api.get(f"/addressbooks/{book_id}/emails").json()
    assert [r["email"] for r in first] == emails[:100]
    second = api.get(f"/addressbooks/{book_id}/emails?limit=100&offset=100").json()
    assert [r["email"] for r in second] == emails[100:]
    assert api.get(f"/addressbooks/{book_id}/emails?offset=150").json() == []
    assert api.get(f"/addressbooks/{book_id}/emails/total").json() == {"total": 150}
    # pysendpulse 0.1.8 puts raw JSON in the query: ignored, defaults apply
    raw = api.get(f'/addressbooks/{book_id}/emails?{{"limit": 10, "offset": 5}}').json()
    assert len(raw) == 100
    ids = [new_book(api, f"b{i}") for i in range(3)]
    listed = [b["id"] for b in api.get("/addressbooks?limit=2&offset=1").json()]
    assert listed == sorted(listed)
    assert listed == [ids[0], ids[1]]


# -- §5.3 books ------------------------------------------------------------------------------------------------


def test_book_crud_and_envelopes(api: httpx.Client) -> None:
    assert_error(api.post("/addressbooks", json={}), 422, 422, "Argument bookName missing")
    book_id = new_book(api, "Customers")
    assert isinstance(book_id, int)
    assert_error(api.post("/addressbooks", json={"bookName": "Customers"}), 422, 203, "Name already in use")
    one = api.get(f"/addressbooks/{book_id}").json()
    assert isinstance(one, list)
    assert len(one) == 1
    assert one[0] == {
        "id": book_id,
        "name": "Customers",
        "all_email_qty": 0,
        "active_email_qty": 0,
        "inactive_email_qty": 0,
        "creationdate": "2026-01-05 10:00:00",
        "status": 0,
        "status_explain": "Active",
    }
    assert api.put(f"/addressbooks/{book_id}", json={"name": "Clients"}).json() == {"result": True}
    other = new_book(api, "Other")
    assert_error(api.put(f"/addressbooks/{other}", json={"name": "Clients"}), 422, 203)
    assert api.delete(f"/addressbooks/{book_id}").json() == {"result": True}
    assert_error(api.get(f"/addressbooks/{book_id}"), 404, 213, "Book not found")
    assert_error(api.put(f"/addressbooks/{book_id}", json={"name": "x"}), 404, 213)
    assert_error(api.post(f"/addressbooks/{book_id}/emails", json={"emails": ["a@x.io"]}), 404, 213)
    assert [b["id"] for b in api.get("/addressbooks").json()] == [other]


def test_book_counts_active_vs_inactive(api: httpx.Client) -> None:
    book_id = new_book(api, "counts", ["a@x.io", "b@x.io", "c@x.io"])
    api.post(f"/addressbooks/{book_id}/emails/unsubscribe", json={"emails": ["c@x.io"]})
    book = api.get(f"/addressbooks/{book_id}").json()[0]
    assert (book["all_email_qty"], book["active_email_qty"], book["inactive_email_qty"]) == (3, 2, 1)


# -- §5.2 encodings and §5.4 contacts -----------------------------------------------------------------------


def test_emails_in_every_encoding(api: httpx.Client) -> None:
    book_id = new_book(api, "encodings")
    url = f"/addressbooks/{book_id}/emails"
    # a real JSON array
    assert api.post(url, json={"emails": [{"email": "json@x.io", "variables": {"name": "Ann"}}]}).status_code == 200
    # a JSON string inside JSON (pysendpulse 0.1.8)
    payload = json.dumps([{"email": "jsonstr@x.io", "variables": {"name": "Bob"}}])
    assert api.post(url, json={"emails": payload}).status_code == 200
    # a PHP-style form
    form = {"emails[0][email]": "form@x.io", "emails[0][variables][name]": "Cid", "emails[1]": "form2@x.io"}
    assert api.post(url, data=form).status_code == 200
    # a JSON string inside a form (PHP v1)
    assert api.post(url, data={"emails": json.dumps(["formjson@x.io"])}).status_code == 200
    # a PHP serialize() string
    php = 'a:2:{i:0;s:9:"php1@x.io";i:1;a:2:{s:5:"email";s:9:"php2@x.io";s:9:"variables";a:1:{s:4:"name";s:3:"Dan";}}}'
    assert api.post(url, data={"emails": php}).status_code == 200
    got = rows(api, book_id)
    assert set(got) == {
        "json@x.io",
        "jsonstr@x.io",
        "form@x.io",
        "form2@x.io",
        "formjson@x.io",
        "php1@x.io",
        "php2@x.io",
    }
    assert got["jsonstr@x.io"]["variables"] == {"name": "Bob"}
    assert got["form@x.io"]["variables"] == {"name": "Cid"}
    assert got["php2@x.io"]["variables"] == {"name": "Dan"}
    assert got["form2@x.io"]["variables"] == []  # empty variables come as [], not {}
    # wrong types and garbage
    assert_error(api.post(url, json={"emails": 5}), 422, 422, "Argument emails must be array")
    assert_error(api.post(url, json={}), 422, 422, "Argument emails missing")
    assert api.post(url, json={"emails": "[not json"}).json()["error_code"] == 999
    assert api.post(url, content=b"{broken", headers={"content-type": "application/json"}).json()["error_code"] == 999


def test_delete_body_json_and_form(api: httpx.Client) -> None:
    book_id = new_book(api, "delete", ["a@x.io", "b@x.io", "c@x.io"])
    url = f"/addressbooks/{book_id}/emails"
    assert api.request("DELETE", url, json={"emails": ["A@x.io", "ghost@x.io"]}).json() == {"result": True}
    assert api.request("DELETE", url, data={"emails[]": "b@x.io"}).json() == {"result": True}
    assert list(rows(api, book_id)) == ["c@x.io"]
    too_many = [f"u{i}@x.io" for i in range(101)]
    assert_error(api.request("DELETE", url, json={"emails": too_many}), 422, 422, "Limit is exceeded. Max count: 100")
    assert_error(api.request("DELETE", url, json={"emails": []}), 422, 303)


def test_invalid_address_fails_whole_request(api: httpx.Client) -> None:
    book_id = new_book(api, "invalid")
    resp = api.post(f"/addressbooks/{book_id}/emails", json={"emails": ["ok@x.io", "not-an-email", "ok2@x.io"]})
    assert_error(resp, 422, 422, "Argument email is invalid")
    assert rows(api, book_id) == {}


def test_rejected_fraction_fault_fails_as_invalid(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "rejects")
    sb.faults.reject_email_fraction = 1.0
    assert_error(api.post(f"/addressbooks/{book_id}/emails", json={"emails": ["a@x.io"]}), 422, 422)
    sb.faults.reject_email_fraction = 0.0
    assert api.post(f"/addressbooks/{book_id}/emails", json={"emails": ["a@x.io"]}).status_code == 200


def test_upsert_is_case_insensitive_and_never_reactivates(api: httpx.Client) -> None:
    book_id = new_book(api, "upsert", [{"email": "Ann@Example.COM", "variables": {"name": "Ann"}}, "bob@x.io"])
    assert list(rows(api, book_id)) == ["ann@example.com", "bob@x.io"]
    unsub = api.post(f"/addressbooks/{book_id}/emails/unsubscribe", json={"emails": ["ANN@example.com"]})
    assert unsub.json() == {"result": True}
    again = api.post(
        f"/addressbooks/{book_id}/emails",
        json={"emails": [{"email": "ann@EXAMPLE.com", "variables": {"name": "Anna", "city": "Kyiv"}}]},
    )
    assert again.json() == {"result": True}
    row = rows(api, book_id)["ann@example.com"]
    assert row["status"] == 4
    assert row["status_explain"] == "Unsubscribed"
    assert row["variables"] == {"name": "Anna", "city": "Kyiv"}
    assert api.get(f"/addressbooks/{book_id}/emails/total").json() == {"total": 2}
    assert_error(
        api.post(f"/addressbooks/{book_id}/emails/unsubscribe", json={"emails": ["ann@example.com", "ghost@x.io"]}),
        422,
        422,
        "Active emails not found",
    )
    too_many = [f"u{i}@x.io" for i in range(101)]
    assert_error(
        api.post(f"/addressbooks/{book_id}/emails/unsubscribe", json={"emails": too_many}),
        422,
        422,
        "Argument emails may not have more than 100 items",
    )


def test_single_opt_in_activation_delay() -> None:
    sb = SendPulseSandbox(rate_limit=False, activation_delay=300)
    sb.freeze_clock(T0)
    with connect(sb) as api:
        book_id = new_book(api, "delay", ["a@x.io"])
        row = rows(api, book_id)["a@x.io"]
        assert (row["status"], row["status_explain"]) == (0, "New")
        assert api.get(f"/addressbooks/{book_id}").json()[0]["active_email_qty"] == 0
        sb.advance(299)
        assert rows(api, book_id)["a@x.io"]["status"] == 0
        sb.advance(1)
        assert rows(api, book_id)["a@x.io"]["status"] == 1
        assert api.get(f"/addressbooks/{book_id}").json()[0]["active_email_qty"] == 1


def test_double_opt_in_needs_active_sender_and_confirmation(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "doi")
    url = f"/addressbooks/{book_id}/emails"
    assert api.post("/senders", json={"email": "new@x.io", "name": "New"}).status_code == 200
    for sender in ("new@x.io", "ghost@x.io"):
        resp = api.post(url, json={"emails": ["a@x.io"], "confirmation": "force", "sender_email": sender})
        assert_error(resp, 404, 1003)
    resp = api.post(
        url,
        json={"emails": ["a@x.io"], "confirmation": "force", "sender_email": DEMO_SENDER_EMAIL, "message_lang": "en"},
    )
    assert resp.json() == {"result": True}
    assert rows(api, book_id)["a@x.io"]["status"] == 2
    sb.advance(86400)
    assert rows(api, book_id)["a@x.io"]["status"] == 2
    assert sb.hook("confirm_optin", book_id=book_id, email="A@x.io") is True
    assert rows(api, book_id)["a@x.io"]["status"] == 1


def test_typed_variables(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "typed")
    sb.hook("set_variable_type", book_id=book_id, variable="age", kind="number")
    sb.hook("set_variable_type", book_id=book_id, variable="born", kind="date")
    url = f"/addressbooks/{book_id}/emails"
    good = {"email": "a@x.io", "variables": {"age": 41, "born": "1985-02-01", "город": "Київ", "Phone": "380632727700"}}
    assert api.post(url, json={"emails": [good]}).status_code == 200
    for bad in ({"born": "1985-2-1"}, {"born": "01.02.1985"}, {"age": "forty"}):
        resp = api.post(url, json={"emails": [{"email": "b@x.io", "variables": bad}]})
        assert_error(resp, 422, 422, "Argument emails.*.variables is invalid")
    assert api.get(f"{url}/total").json() == {"total": 1}
    assert api.get(f"/addressbooks/{book_id}/variables").json() == [
        {"name": "age", "type": "number"},
        {"name": "born", "type": "date"},
        {"name": "город", "type": "string"},
    ]
    info = api.get(f"{url}/A@X.IO").json()
    assert info["abook_id"] == book_id
    assert info["status"] == 1
    assert {"name": "born", "type": "date", "value": "1985-02-01"} in info["variables"]
    assert rows(api, book_id)["a@x.io"]["phone"] == "380632727700"
    # one contact's variables by the variable endpoint
    upd = api.post(f"{url}/variable", json={"email": "a@x.io", "variables": [{"name": "age", "value": 42}]})
    assert upd.json() == {"result": True}
    bad_upd = api.post(
        f"{url}/variable", json={"email": "a@x.io", "variables": [{"name": "born", "value": "2017-1-1"}]}
    )
    assert bad_upd.status_code == 422
    assert_error(api.post(f"{url}/variable", json={"email": "zz@x.io", "variables": []}), 404, 502)
    assert_error(api.get(f"{url}/zz@x.io"), 404, 502)
    found = api.get(f"/addressbooks/{book_id}/variables/age/42").json()
    assert found == [{"email": "a@x.io", "status": 1, "status_explain": "Active"}]


# -- §5.5 blacklist ---------------------------------------------------------------------------------------------


def test_blacklist_sets_rows_to_8_and_removal_restores(api: httpx.Client) -> None:
    b1 = new_book(api, "bl1", ["a@x.io", "b@x.io"])
    b2 = new_book(api, "bl2", ["a@x.io"])
    api.post(f"/addressbooks/{b2}/emails/unsubscribe", json={"emails": ["a@x.io"]})
    assert api.post("/blacklist", json={"emails": b64("A@x.io,c@x.io"), "comment": "bounced"}).json() == {
        "result": True
    }
    assert api.get("/blacklist").json() == ["a@x.io", "c@x.io"]
    assert rows(api, b1)["a@x.io"]["status"] == 8
    assert rows(api, b2)["a@x.io"]["status"] == 8
    # a blacklisted address joins books blocked, and re-adding does not reactivate it
    api.post(f"/addressbooks/{b1}/emails", json={"emails": ["c@x.io", "a@x.io"]})
    assert rows(api, b1)["c@x.io"]["status"] == 8
    assert rows(api, b1)["a@x.io"]["status"] == 8
    assert api.get("/emails/a@x.io/campaigns").json() == {
        "statistic": {"sent": 0, "open": 0, "link": 0},
        "blacklist": True,
    }
    # never mailed
    cost = api.get(f"/addressbooks/{b1}/cost").json()
    assert cost["sent_emails_qty"] == 1
    created = api.post("/campaigns", json=campaign_args(b1)).json()
    assert created["count"] == 1
    # removal restores each row's previous status
    assert api.request("DELETE", "/blacklist", json={"emails": b64("a@x.io,c@x.io")}).json() == {"result": True}
    assert api.get("/blacklist").json() == []
    assert rows(api, b1)["a@x.io"]["status"] == 1
    assert rows(api, b2)["a@x.io"]["status"] == 4
    assert rows(api, b1)["c@x.io"]["status"] == 1
    # not base64
    assert_error(api.post("/blacklist", json={"emails": "a@x.io"}), 422, 422, "Argument emails is invalid string")


# -- §5.6 senders -------------------------------------------------------------------------------------------------


def test_sender_activation_flow(sb: SendPulseSandbox, api: httpx.Client) -> None:
    assert api.post("/senders", json={"email": "Shop@X.io", "name": "Shop"}).json() == {"result": True}
    assert_error(api.post("/senders", json={"email": "shop@x.io", "name": "Shop"}), 422, 902)
    senders = {s["email"]: s for s in api.get("/senders").json()}
    assert senders["shop@x.io"] == {"name": "Shop", "email": "shop@x.io", "status": "Requested activation"}
    assert senders[DEMO_SENDER_EMAIL]["status"] == "Active"
    book_id = new_book(api, "senders", ["a@x.io"])
    assert_error(api.post("/campaigns", json=campaign_args(book_id, sender_email="shop@x.io")), 422, 10)
    assert_error(api.get("/senders/shop@x.io/code"), 422, 1004)
    sb.advance(15 * 60)
    assert api.get("/senders/shop@x.io/code").json() == {"result": True, "email": "shop@x.io"}
    code = sb.hook("sender_code", email="shop@x.io")
    assert isinstance(code, str)
    assert code
    assert_error(api.post("/senders/shop@x.io/code", json={"code": "000"}), 422, 1005)
    assert api.post("/senders/shop@x.io/code", json={"code": code}).json() == {"result": True, "email": "shop@x.io"}
    assert {s["email"]: s["status"] for s in api.get("/senders").json()}["shop@x.io"] == "Active"
    assert api.post("/campaigns", json=campaign_args(book_id, sender_email="shop@x.io")).status_code == 200
    assert api.request("DELETE", "/senders", json={"email": "shop@x.io"}).json() == {"result": True}
    assert_error(api.request("DELETE", "/senders", json={"email": "shop@x.io"}), 404, 704)


# -- templates ---------------------------------------------------------------------------------------------------


def test_templates_ids_and_edit(api: httpx.Client) -> None:
    created = api.post("/template", json={"name": "Promo", "body": b64("<p>v1</p>"), "lang": "en"})
    real_id = created.json()["real_id"]
    assert created.json() == {"result": True, "real_id": real_id}
    assert_error(api.post("/template", json={"name": "Promo", "body": b64("<p>x</p>")}), 422, 573)
    assert_error(api.post("/template", json={"body": "%%%"}), 422, 422, "Argument body is invalid string")
    tpl = api.get(f"/template/{real_id}").json()
    assert tpl["real_id"] == real_id
    assert len(tpl["id"]) == 32
    assert base64.b64decode(tpl["body"]).decode() == "<p>v1</p>"
    old_hex = tpl["id"]
    assert api.get(f"/template/{old_hex}").json()["real_id"] == real_id
    assert api.post(f"/template/edit/{real_id}", json={"body": b64("<p>v2</p>")}).json() == {"result": True}
    edited = api.get(f"/template/{real_id}").json()
    assert edited["real_id"] == real_id
    assert edited["id"] != old_hex
    assert_error(api.get(f"/template/{old_hex}"), 404, 290)
    mine = api.get("/templates?owner=me").json()
    assert all(t["owner"] == "you" for t in mine)
    assert "body" not in mine[0]
    assert any(t["owner"] == "sendpulse" for t in api.get("/templates?owner=sendpulse").json())
    assert api.get(f"/templates//template/slug/{edited['name_slug']}").json()["real_id"] == real_id
    # campaigns take real_id or the current id
    book_id = new_book(api, "tpl", ["a@x.io"])
    args = campaign_args(book_id)
    del args["body"]
    for ref in (real_id, edited["id"]):
        cid = api.post("/campaigns", json={**args, "template_id": ref}).json()["id"]
        assert api.get(f"/campaigns/{cid}").json()["message"]["body"] == "<p>v2</p>"


# -- §5.7 campaigns ------------------------------------------------------------------------------------------------


def test_campaign_create_answer_and_views(api: httpx.Client) -> None:
    book_id = new_book(api, "answer", ["a@x.io", "b@x.io"])
    resp = api.post("/campaigns", json=campaign_args(book_id, name="launch ck-1", attachments={"a.txt": "hi"}))
    assert resp.status_code == 200
    body = resp.json()
    assert body == {
        "id": body["id"],
        "status": 13,
        "count": 2,
        "tariff_email_qty": 2,
        "paid_email_qty": 0,
        "overdraft_price": "0.0044",
        "ovedraft_currency": "USD",
    }
    full = api.get(f"/campaigns/{body['id']}").json()
    assert full["name"] == "launch ck-1"
    assert full["message"]["list_id"] == book_id
    assert full["message"]["attachments"] == "a.txt"
    assert "permalink" in full
    assert "statistics" in full
    item = api.get("/campaigns").json()[0]
    assert item["id"] == body["id"]
    assert not {"statistics", "permalink"} & set(item)
    assert "body" not in item["message"]
    assert api.get(f"/addressbooks/{book_id}/campaigns").json() == [
        {"task_id": body["id"], "task_name": "launch ck-1", "task_status": 13}
    ]
    assert_error(api.get("/campaigns/1"), 404, 802)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"sender_name": ""}, 901),
        ({"sender_email": ""}, 903),
        ({"subject": ""}, 701),
        ({"body": None}, 720),
        ({"list_id": None}, 721),
        ({"list_id": 999}, 703),
        ({"list_id": list(range(11))}, 722),
        ({"template_id": 5, "body": None}, 290),
        ({"send_date": "2026-01-05 09:59:59"}, 799),
        ({"send_date": "2026-01-05T12:00:00"}, 799),
        ({"send_date": "2026-1-5 12:00:00"}, 799),
        ({"attachments": {f"f{i}.txt": "x" for i in range(6)}}, 422),
        ({"attachments": {"a.txt": "x"}, "attachments_binary": {f"f{i}.bin": b64("x") for i in range(5)}}, 422),
        ({"attachments_binary": {"f.bin": "not base64!"}}, 422),
        ({"send_test_only": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"]}, 422),
    ],
)
def test_campaign_create_errors(api: httpx.Client, change: dict[str, Any], code: int) -> None:
    book_id = new_book(api, "errors", ["a@x.io"])
    args = {k: v for k, v in {**campaign_args(book_id), **change}.items() if v is not None}
    resp = api.post("/campaigns", json=args)
    assert resp.json()["error_code"] == code, resp.text
    assert resp.status_code in (404, 422)
    assert api.get("/campaigns").json() == []


def test_four_creates_per_rolling_hour_then_791(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "quota", ["a@x.io"])
    for i in range(4):
        extra = {"type": "draft"} if i == 0 else {}
        assert api.post("/campaigns", json=campaign_args(book_id, **extra)).status_code == 200
        sb.advance(600)
    # tests do not count
    test = api.post("/campaigns", json=campaign_args(book_id, send_test_only=["t@x.io"]))
    assert test.status_code == 200
    resp = api.post("/campaigns", json=campaign_args(book_id))
    assert_error(resp, 422, 791)
    assert len(api.get("/campaigns").json()) == 5  # nothing created
    sb.advance(1200)  # the first create leaves the rolling hour
    assert api.post("/campaigns", json=campaign_args(book_id)).status_code == 200
    assert_error(api.post("/campaigns", json=campaign_args(book_id)), 422, 791)


def test_twenty_tests_an_hour() -> None:
    sb = SendPulseSandbox(rate_limit=False, token_ttl=LONG_TTL)
    sb.freeze_clock(T0)
    with connect(sb) as api:
        book_id = new_book(api, "tests", ["a@x.io"])
        cid = api.post("/campaigns", json=campaign_args(book_id, type="draft")).json()["id"]
        for _ in range(20):
            resp = api.patch(f"/campaigns/{cid}", json={"send_test_only": ["me@x.io"]})
            assert resp.json() == {"result": True, "id": cid}
        assert api.patch(f"/campaigns/{cid}", json={"send_test_only": ["me@x.io"]}).status_code == 422
        sb.advance(3600)
        assert api.patch(f"/campaigns/{cid}", json={"send_test_only": json.dumps(["me@x.io"])}).status_code == 200
        assert api.get(f"/campaigns/{cid}").json()["status"] == 26  # drafts never send


def test_lifecycle_and_cumulative_stats(sb: SendPulseSandbox, api: httpx.Client) -> None:
    emails = [f"r{i:03d}@example.com" for i in range(400)]
    book_id = new_book(api, "stats", emails)
    api.post("/v2/email-service/webhook", json={"actions": ["open", "task_status_update"], "url": "https://h.example/"})
    forced = {"r000@example.com": 5, "r001@example.com": 11, "r002@example.com": 16, "r003@example.com": 18}
    for email, code in forced.items():
        sb.hook("force_outcome", email=email, code=code)
    cid = api.post("/campaigns", json=campaign_args(book_id)).json()["id"]
    assert api.get(f"/campaigns/{cid}").json()["status"] == 13
    sb.advance(5)
    assert api.get(f"/campaigns/{cid}").json()["status"] == 1  # 400 addresses: moderation
    sb.advance(600)
    camp = api.get(f"/campaigns/{cid}").json()
    assert camp["status"] == 2
    assert camp["send_date"] == "2026-01-05 10:10:05"
    previous: dict[int, int] = {}
    for step in (30, 60, 600, 3600, 6 * 3600, 2 * 86400):
        sb.advance(step)
        stats = {s["code"]: s["count"] for s in api.get(f"/campaigns/{cid}").json()["statistics"]}
        for code in (1, 2, 3, 4):
            assert stats.get(code, 0) >= previous.get(code, 0)
        assert stats.get(1, 0) >= stats.get(2, 0) >= stats.get(3, 0) >= stats.get(4, 0)
        previous = stats
    camp = api.get(f"/campaigns/{cid}").json()
    assert camp["status"] == 3
    stats = {s["code"]: s for s in camp["statistics"]}
    assert stats[18]["explain"] == "Disable by administrator"
    assert stats[1]["explain"] == "Sent"
    assert 0 not in stats
    assert stats[1]["count"] + sum(s["count"] for c, s in stats.items() if c in (13, 17, 18)) == 400
    assert stats[3]["count"] > 50
    assert stats[4]["count"] > 20
    # countries and referrals agree with the opened and clicked counts
    assert sum(api.get(f"/campaigns/{cid}/countries").json().values()) == stats[3]["count"]
    referrals = api.get(f"/campaigns/{cid}/referrals").json()
    assert sum(r["count"] for r in referrals) == stats[4]["count"]
    assert {r["link"] for r in referrals} <= {"https://example.org/a", "https://example.org/b"}
    batches = sb.hook("webhook_batches")
    assert all(len(b["events"]) <= 100 for b in batches)
    statuses = [e["status"] for b in batches if b["action"] == "task_status_update" for e in b["events"]]
    assert statuses == ["on_moderation", "sending"]
    opens = [e for b in batches if b["action"] == "open" for e in b["events"]]
    assert len(opens) == stats[3]["count"]
    assert {"task_id", "email", "timestamp", "open_device", "browser_name"} <= set(opens[0])
    assert sb.hook("webhook_batches") == []  # drained
    # outcomes act on the book: 5 -> 4, 11 -> 6, 16 -> 9
    book_rows = rows(api, book_id)
    assert book_rows["r000@example.com"]["status"] == 4
    assert book_rows["r001@example.com"]["status"] == 6
    assert book_rows["r002@example.com"]["status"] == 9
    assert book_rows["r003@example.com"]["status"] == 1
    per = api.get(f"/campaigns/{cid}/email/R002@example.com").json()
    assert per["global_status"] == 16
    assert per["sent_date"].startswith("2026-01-05")
    assert api.get(f"/campaigns/{cid}/email/r003@example.com").json()["global_status"] == 18
    assert api.get("/emails/r000@example.com/campaigns").json()["statistic"] == {"sent": 1, "open": 1, "link": 0}
    # once sent: no cancel, no edit
    assert_error(api.delete(f"/campaigns/{cid}"), 422, 602)
    assert_error(api.patch(f"/campaigns/{cid}", json={"subject": "x"}), 403, 800)


def test_small_campaign_skips_moderation_and_stats_are_deterministic() -> None:
    def run() -> list[dict[str, Any]]:
        sb = SendPulseSandbox(rate_limit=False, seed=7, token_ttl=LONG_TTL)
        sb.freeze_clock(T0)
        with connect(sb) as api:
            book_id = new_book(api, "small", [f"s{i}@x.io" for i in range(10)])
            cid = api.post("/campaigns", json=campaign_args(book_id)).json()["id"]
            sb.advance(5)
            assert api.get(f"/campaigns/{cid}").json()["status"] == 2
            sb.advance(60)
            assert api.get(f"/campaigns/{cid}").json()["status"] == 3
            sb.advance(86400)
            return api.get(f"/campaigns/{cid}").json()["statistics"]

    assert run() == run()


def test_scheduled_campaign_waits_and_can_be_cancelled(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "later", ["a@x.io", "b@x.io"])
    resp = api.post("/campaigns", json=campaign_args(book_id, send_date="2026-01-06 09:00:00"))
    cid = resp.json()["id"]
    sb.advance(3600)
    assert api.get(f"/campaigns/{cid}").json()["status"] == 1
    assert api.patch(f"/campaigns/{cid}", json={"subject": "New", "send_date": "2026-01-06 10:00:00"}).json() == {
        "result": True,
        "id": cid,
    }
    assert_error(api.patch(f"/campaigns/{cid}", json={"send_date": "2026-01-01 10:00:00"}), 422, 799)
    sb.advance(22 * 3600)  # 2026-01-06 09:00 — moved to 10:00
    assert api.get(f"/campaigns/{cid}").json()["status"] == 1
    sb.advance(3600)
    camp = api.get(f"/campaigns/{cid}").json()
    assert camp["status"] == 2
    assert camp["message"]["subject"] == "New"
    # a second one is cancelled before it goes: 16, and the money comes back
    before = api.get("/user/balance/detail").json()["email"]["emails_left"]
    cid2 = api.post("/campaigns", json=campaign_args(book_id, send_date="2026-01-08 09:00:00")).json()["id"]
    assert api.get("/user/balance/detail").json()["email"]["emails_left"] == before - 2
    assert api.delete(f"/campaigns/{cid2}").json() == {"result": True}
    assert api.get(f"/campaigns/{cid2}").json()["status"] == 16
    assert api.get("/user/balance/detail").json()["email"]["emails_left"] == before
    assert_error(api.delete(f"/campaigns/{cid2}"), 422, 602)
    sb.advance(3 * 86400)
    assert api.get(f"/campaigns/{cid2}").json()["status"] == 16


def test_drafts_never_send_and_empty_books(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "draft", ["a@x.io"])
    draft = api.post("/campaigns", json=campaign_args(book_id, type="draft")).json()
    assert draft["status"] == 26
    sb.advance(86400)
    assert api.get(f"/campaigns/{draft['id']}").json()["status"] == 26
    empty = new_book(api, "empty")
    assert_error(api.post("/campaigns", json=campaign_args(empty)), 422, 11)
    assert_error(api.get(f"/addressbooks/{empty}/cost"), 422, 211, "Addressbook is empty")
    # rows but nobody active: the campaign ends in 12
    api.post(f"/addressbooks/{empty}/emails", json={"emails": ["u@x.io"]})
    api.post(f"/addressbooks/{empty}/emails/unsubscribe", json={"emails": ["u@x.io"]})
    cid = api.post("/campaigns", json=campaign_args(empty)).json()["id"]
    sb.advance(10)
    assert api.get(f"/campaigns/{cid}").json()["status"] == 12


# -- §5.8 money -------------------------------------------------------------------------------------------------


def test_money_plan_first_then_balance_and_all_views_agree(sb: SendPulseSandbox, api: httpx.Client) -> None:
    sb.hook("set_plan", emails_left=1)
    sb.hook("set_balance", amount="10.00")
    sb.hook("set_price", price="0.25")
    book_id = new_book(api, "money", ["a@x.io", "b@x.io", "c@x.io"])
    cost = api.get(f"/addressbooks/{book_id}/cost").json()
    assert cost == {
        "cur": "USD",
        "sent_emails_qty": 3,
        "overdraftAllEmailsPrice": 0.5,
        "addressesDeltaFromBalance": 2,
        "addressesDeltaFromTariff": 1,
        "max_emails_per_task": 2500,
        "result": True,
    }
    created = api.post("/campaigns", json=campaign_args(book_id)).json()
    assert (created["tariff_email_qty"], created["paid_email_qty"], created["overdraft_price"]) == (1, 2, "0.25")
    assert api.get("/balance").json() == {"currency": "USD", "balance_currency": 9.5}
    detail = api.get("/user/balance/detail").json()
    assert detail["balance"] == {"main": "9.50", "bonus": "0.00", "currency": "USD"}
    assert detail["email"]["emails_left"] == 0
    assert detail["email"]["current_subscribers"] == 3
    cost = api.get(f"/addressbooks/{book_id}/cost").json()
    assert (cost["addressesDeltaFromTariff"], cost["addressesDeltaFromBalance"]) == (0, 3)
    assert cost["overdraftAllEmailsPrice"] == 0.75
    assert api.get("/balance/rub").json() == {"currency": "RUR", "balance_currency": 855.0}
    assert api.get("/balance/Usd").json()["currency"] == "USD"
    assert api.get("/balance/xyz").status_code == 422


def test_707_when_short_creates_nothing(sb: SendPulseSandbox, api: httpx.Client) -> None:
    sb.hook("set_plan", emails_left=0)
    sb.hook("set_balance", amount="0.10")
    sb.hook("set_price", price="0.05")
    book_id = new_book(api, "short", ["a@x.io", "b@x.io", "c@x.io"])
    assert api.get(f"/addressbooks/{book_id}/cost").json()["result"] is False
    assert_error(api.post("/campaigns", json=campaign_args(book_id)), 403, 707)
    assert api.get("/campaigns").json() == []
    assert api.get("/balance").json()["balance_currency"] == 0.1
    sb.hook("set_balance", amount="1")
    sb.hook("set_plan", maximum_subscribers=2)
    assert_error(api.post("/campaigns", json=campaign_args(book_id)), 403, 708)
    sb.hook("set_plan", maximum_subscribers=500)
    assert api.post("/campaigns", json=campaign_args(book_id)).status_code == 200
    assert api.get("/balance").json()["balance_currency"] == 0.85


def test_segment_campaign(sb: SendPulseSandbox, api: httpx.Client) -> None:
    book_id = new_book(api, "segmented", ["a@x.io", "b@x.io", "c@x.io"])
    segment = sb.hook("add_segment", book_id=book_id, emails=["b@x.io", "c@x.io"])
    args = campaign_args(book_id, segment_id=segment)
    del args["list_id"]
    assert api.post("/campaigns", json=args).json()["count"] == 2
    assert_error(api.post("/campaigns", json={**args, "segment_id": 99}), 404, 13)


# -- addresses across books ---------------------------------------------------------------------------------------


def test_address_endpoints(api: httpx.Client) -> None:
    b1 = new_book(api, "one", [{"email": "a@x.io", "variables": {"name": "Ann"}}])
    b2 = new_book(api, "two", ["a@x.io", "b@x.io"])
    info = api.get("/emails/A@x.io").json()
    assert [(e["book_id"], e["status"]) for e in info] == [(b1, 1), (b2, 1)]
    assert info[0]["variables"] == [{"name": "name", "type": "string", "value": "Ann"}]
    details = api.get("/emails/a@x.io/details").json()
    assert [(d["list_id"], d["list_name"]) for d in details] == [(b1, "one"), (b2, "two")]
    assert details[0]["add_date"] == "2026-01-05 10:00:00"
    many = api.post("/emails/campaigns", json={"emails": ["a@x.io", "b@x.io"]}).json()
    assert many["a@x.io"]["adressbooks"] == [{"id": b1, "name": "one"}, {"id": b2, "name": "two"}]
    assert many["b@x.io"]["blacklist"] is False
    assert set(api.post("/emails", json={"emails": ["a@x.io"]}).json()) == {"a@x.io"}
    assert api.delete("/emails/a@x.io").json() == {"result": True}
    assert_error(api.get("/emails/a@x.io"), 404, 502)
    assert list(rows(api, b2)) == ["b@x.io"]


def test_post_emails_answers_each_address_books_in_every_spelling(api: httpx.Client) -> None:
    b1 = new_book(api, "one", [{"email": "a@x.io", "variables": {"name": "Ann"}}])
    new_book(api, "two", ["a@x.io"])
    seed = api.post("/emails", json={"emails": ["A@x.io", "nobody@x.io"]}).json()
    assert list(seed) == ["a@x.io", "nobody@x.io"]
    assert seed["a@x.io"] == api.get("/emails/a@x.io").json()  # the one-address answer, per address
    assert seed["a@x.io"][0] == {
        "book_id": b1,
        "email": "a@x.io",
        "status": 1,
        "variables": [{"name": "name", "type": "string", "value": "Ann"}],
    }
    assert seed["nobody@x.io"] == []
    # the Go SDK's spelling: a JSON string of {"email": ...} objects, sent as a form field
    go = api.post("/emails", data={"emails": json.dumps([{"email": "a@x.io"}])}).json()
    assert go == {"a@x.io": seed["a@x.io"]}
    assert_error(api.post("/emails", json={}), 422, 422, "Argument emails missing")
    assert_error(api.post("/emails", json={"emails": "a@x.io"}), 422, 422, "Argument emails must be array")
    assert_error(api.post("/emails", json={"emails": [["a@x.io"]]}), 422, 422, "Argument emails is invalid")


# -- webhooks v2 ----------------------------------------------------------------------------------------------------


def test_webhooks_crud_envelopes_and_events(sb: SendPulseSandbox, api: httpx.Client) -> None:
    url = "https://hooks.example/sp"
    created = api.post(
        "/v2/email-service/webhook", data={"actions[]": "open", "url": url}
    )  # last-value form; add a second via JSON
    assert created.json()["success"] is True
    more = api.post("/v2/email-service/webhook", json={"actions": ["new_emails", "unsubscribe"], "url": url}).json()
    assert [h["action"] for h in more["data"]] == ["new_emails", "unsubscribe"]
    listed = api.get("/v2/email-service/webhook").json()
    assert listed["success"] is True
    assert {h["action"] for h in listed["data"]} == {"open", "new_emails", "unsubscribe"}
    hook = listed["data"][0]
    assert set(hook) == {"id", "user_id", "url", "action"}
    one = api.get(f"/v2/email-service/webhook/{hook['id']}").json()
    assert one == {"success": True, "data": hook}
    assert api.put(f"/v2/email-service/webhook/{hook['id']}", data={"url": url + "/v2"}).json() == {
        "success": True,
        "data": [True],
    }
    assert api.delete(f"/v2/email-service/webhook/{hook['id']}").json() == {"success": True, "data": [True]}
    assert api.get(f"/v2/email-service/webhook/{hook['id']}").status_code == 404
    # events queue for the registered actions
    book_id = new_book(api, "hooks", ["a@x.io", "b@x.io"])
    api.post(f"/addressbooks/{book_id}/emails/unsubscribe", json={"emails": ["b@x.io"]})
    batches = sb.hook("webhook_batches")
    by_action = {b["action"]: b["events"] for b in batches}
    assert [e["email"] for e in by_action["new_emails"]] == ["a@x.io", "b@x.io"]
    assert by_action["new_emails"][0]["book_id"] == str(book_id)
    assert by_action["unsubscribe"][0]["event"] == "unsubscribe"
    assert sb.hook("webhook_batches") == []


# -- §5.10 rate limits -------------------------------------------------------------------------------------------------


def test_ten_requests_per_second_then_429() -> None:
    sb = SendPulseSandbox()
    sb.freeze_clock(T0)
    with connect(sb) as api:
        codes = [api.get("/balance").status_code for _ in range(10)]
        assert codes == [200] * 10
        resp = api.get("/balance")
        assert resp.status_code == 429
        assert resp.json() == {"message": "More than 10 requests per second", "error_code": 2020202020}
        assert "retry-after" not in resp.headers
        sb.advance(1)
        assert api.get("/balance").status_code == 200


def test_minute_quota_and_disabled_limits() -> None:
    sb = SendPulseSandbox(per_minute=15)
    sb.freeze_clock(T0)
    with connect(sb) as api:
        for _ in range(10):
            assert api.get("/balance").status_code == 200
        sb.advance(1)
        for _ in range(5):
            assert api.get("/balance").status_code == 200
        sb.advance(1)
        assert_error(api.get("/balance"), 429, 429)
        sb.advance(60)
        assert api.get("/balance").status_code == 200
    free = SendPulseSandbox(rate_limit=False)
    free.freeze_clock(T0)
    with connect(free) as api:
        assert all(api.get("/balance").status_code == 200 for _ in range(30))


# -- shared state and real HTTP ---------------------------------------------------------------------------------------


def test_filestore_shared_by_two_sandboxes(tmp_path: Path) -> None:
    path = tmp_path / "sendpulse.json"
    one = SendPulseSandbox(FileStore(path), rate_limit=False)
    one.freeze_clock(T0)
    two = SendPulseSandbox(FileStore(path), rate_limit=False)
    with connect(one) as api1, httpx.Client(transport=InProcessTransport(two.app), base_url=BASE) as api2:
        api2.headers["Authorization"] = api1.headers["Authorization"]  # a token from one works on the other
        book_id = new_book(api1, "shared", ["a@x.io"])
        assert api2.get(f"/addressbooks/{book_id}").json()[0]["all_email_qty"] == 1
        assert_error(api2.post("/addressbooks", json={"bookName": "shared"}), 422, 203)
        two.advance(3600)  # the clock lives in the shared state
        assert api1.get("/balance").status_code == 401


def test_over_real_loopback_http() -> None:
    sb = SendPulseSandbox(rate_limit=False)
    with serve(sb.app) as server, connect(sb, server.url) as api:
        assert api.get("/balance").json()["currency"] == "USD"
        book_id = new_book(api, "http")
        url = f"/addressbooks/{book_id}/emails"
        assert api.post(url, data={"emails[0][email]": "a@x.io", "emails[1][email]": "b@x.io"}).status_code == 200
        assert api.request("DELETE", url, json={"emails": ["a@x.io"]}).json() == {"result": True}
        assert [r["email"] for r in api.get(url).json()] == ["b@x.io"]
        assert_error(api.get(f"{url}?limit=101"), 422, 422, "Argument limit may not be greater than 100")
        api.post("/senders", json={"email": "http@x.io", "name": "Http"})
        hook = httpx.post(
            f"{server.url}/__sandbox/hooks/sender_code", json={"email": "http@x.io"}, headers=sb.admin_headers()
        )
        code = hook.json()["result"]
        assert api.post("/senders/http@x.io/code", data={"code": code}).json() == {"result": True, "email": "http@x.io"}
        form = {k: str(v) for k, v in campaign_args(book_id).items()}
        created = api.post("/campaigns", data=form).json()  # PHP v1 sends campaigns as a form
        assert (created["status"], created["count"]) == (13, 1)
        bad = httpx.post(f"{server.url}/oauth/access_token", data={"grant_type": "client_credentials"})
        assert bad.status_code == 401
        assert bad.json()["error"] == "invalid_client"


def test_reset_keeps_the_demo_account_unless_asked(sb: SendPulseSandbox, api: httpx.Client) -> None:
    new_book(api, "gone")
    sb.reset()
    with connect(sb) as fresh:
        assert fresh.get("/addressbooks").json() == []
        assert api.get("/addressbooks").status_code == 401  # tokens do not survive a reset
    sb.reset(demo=False)
    with httpx.Client(transport=InProcessTransport(sb.app), base_url=BASE) as c:
        assert token(c).status_code == 401
        sb.hook("create_client", client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
        assert token(c).status_code == 200


def test_webhook_delivery_posts_unsigned_json_arrays(sb: SendPulseSandbox, api: httpx.Client) -> None:
    received: list[tuple[str, Any, httpx.Headers]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append((str(request.url), json.loads(request.content), request.headers))
        return httpx.Response(200)

    api.post("/v2/email-service/webhook", json={"actions": ["new_emails", "delete"], "url": "https://h.example/in"})
    book_id = new_book(api, "deliver", [f"d{i}@x.io" for i in range(150)])
    api.request("DELETE", f"/addressbooks/{book_id}/emails", json={"emails": ["d0@x.io"]})
    with httpx.Client(transport=httpx.MockTransport(receiver)) as client:
        report = sb.deliver_webhooks(client)
    assert [(r["action"], r["count"], r["status"]) for r in report] == [
        ("new_emails", 100, 200),
        ("new_emails", 50, 200),
        ("delete", 1, 200),
    ]
    assert all(isinstance(body, list) for _, body, _ in received)
    assert received[2][1] == [
        {"book_id": str(book_id), "email": "d0@x.io", "event": "delete", "timestamp": "1767607200"}
    ]
    assert not any("signature" in k.lower() for _, _, headers in received for k in headers)


def test_plan_denials_403(sb: SendPulseSandbox, api: httpx.Client) -> None:
    sb.hook("deny", path="^/campaigns$", method="POST")
    sb.hook("deny", path="^/blacklist$", code=3030303030)
    assert_error(api.post("/campaigns", json={}), 403, 800, "Unauthorized action.")
    assert api.get("/campaigns").status_code == 200
    assert_error(api.get("/blacklist"), 403, 3030303030, "Access denied! Please change your tariff plan")
    sb.hook("allow_all")
    assert api.get("/blacklist").status_code == 200


# -- hostile input: every answer stays in SendPulse's own shape ----------------------------------------------------

FIVE_MB = 5 * 1024 * 1024


def books(api: httpx.Client) -> list[str]:
    return [b["name"] for b in api.get("/addressbooks").json()]


def test_hostile_malformed_json(api: httpx.Client) -> None:
    bad = {"content-type": "application/json"}
    for body in (
        b'{"bookName": "half',  # cut off
        b"\xff\xfe{}",  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nested past any parser's depth
        b'["bookName"]',  # JSON, but not an object of arguments
        b"1e999999",
    ):
        assert_error(api.post("/addressbooks", content=body, headers=bad), 400, 999, "Badly formed incoming data")
    assert books(api) == []


def test_hostile_wrong_content_type(api: httpx.Client) -> None:
    body = json.dumps({"bookName": "smuggled"}).encode()
    # [A] a body that does not say JSON or form carries no arguments, as a PHP service reads it
    for ctype in ("text/plain", "application/xml", "application/octet-stream"):
        resp = api.post("/addressbooks", content=body, headers={"content-type": ctype})
        assert_error(resp, 422, 422, "Argument bookName missing")
    assert_error(api.post("/addressbooks", content=body, headers={"content-type": ""}), 422, 422)
    # a multipart body without its boundary, or torn, is badly formed
    torn = {"content-type": "multipart/form-data"}
    assert_error(api.post("/addressbooks", content=b"--x\r\nbroken", headers=torn), 400, 999)
    torn = {"content-type": "multipart/form-data; boundary=x"}  # a part cut off: no field comes through
    resp = api.post("/addressbooks", content=b"--x\r\nContent-Disposition: form", headers=torn)
    assert_error(resp, 422, 422, "Argument bookName missing")
    # the declared types still work, parameters and all
    ok_json = {"content-type": "application/json; charset=utf-8"}
    assert api.post("/addressbooks", content=body, headers=ok_json).json()["id"] > 0
    assert books(api) == ["smuggled"]


def test_hostile_five_megabyte_bodies(sb: SendPulseSandbox, api: httpx.Client) -> None:
    big = json.dumps({"bookName": "x" * FIVE_MB}).encode()
    resp = api.post("/addressbooks", content=big, headers={"content-type": "application/json"})
    assert_error(resp, 413, 413, "Request Entity Too Large")
    form = api.post("/addressbooks", data={"bookName": "y" * FIVE_MB})
    assert_error(form, 413, 413, "Request Entity Too Large")
    upload = api.post("/campaigns", files={"attachments[a.bin]": ("a.bin", b"\0" * FIVE_MB)})
    assert_error(upload, 413, 413, "Request Entity Too Large")
    # refused before authentication and before any handler: nothing happened
    no_auth = httpx.Client(transport=InProcessTransport(sb.app), base_url=BASE)
    assert_error(no_auth.post("/addressbooks", content=big), 413, 413)
    assert books(api) == []
    # just under the bound, the body is read and answered as usual
    under = json.dumps({"bookName": "z" * (3 * 1024 * 1024)}).encode()
    assert api.post("/addressbooks", content=under, headers={"content-type": "application/json"}).status_code == 200


def test_hostile_five_megabyte_bodies_over_loopback_with_and_without_a_length() -> None:
    sb = SendPulseSandbox(rate_limit=False)
    with serve(sb.app) as server, connect(sb, server.url) as api:
        big = b'{"bookName": "' + b"x" * FIVE_MB + b'"}'
        declared = api.post("/addressbooks", content=big, headers={"content-type": "application/json"})
        assert_error(declared, 413, 413, "Request Entity Too Large")

        def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to refuse on
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        streamed = api.post("/addressbooks", content=chunks(), headers={"content-type": "application/json"})
        assert_error(streamed, 413, 413, "Request Entity Too Large")
        assert api.get("/addressbooks").json() == []


def test_hostile_unknown_paths(sb: SendPulseSandbox, api: httpx.Client) -> None:
    for path in ("/nope", "/addressbooks/1/nope", "/v3/anything", "/%ff%fe", "/" + "a" * 10_000, "/addressbooks/x"):
        assert_error(api.get(path), 404, 404, "Not Found")
    # without a token, SendPulse answers 401 first, whatever the path
    anon = httpx.Client(transport=InProcessTransport(sb.app), base_url=BASE)
    assert anon.get("/nope").json() == {"message": "Unauthorized!", "error_code": 401}


def test_hostile_wrong_methods(api: httpx.Client) -> None:
    resp = api.patch("/addressbooks")
    assert_error(resp, 405, 405, "Method Not Allowed")
    assert resp.headers["allow"] == "GET, POST"
    assert_error(api.put("/balance"), 405, 405)
    assert_error(api.delete("/oauth/access_token"), 405, 405)
    for method in ("OPTIONS", "TRACE", "PROPFIND", "BREW"):  # methods no route has
        assert_error(api.request(method, "/addressbooks"), 405, 405, "Method Not Allowed")


def test_hostile_wrong_methods_over_loopback() -> None:
    sb = SendPulseSandbox(rate_limit=False)
    with serve(sb.app) as server, connect(sb, server.url) as api:
        for method in ("PATCH", "PROPFIND", "TRACE"):
            assert_error(api.request(method, "/addressbooks"), 405, 405, "Method Not Allowed")
        assert_error(api.get("/no/such/thing"), 404, 404)


def test_a_handler_that_breaks_answers_the_sendpulse_crash_page(sb: SendPulseSandbox, api: httpx.Client) -> None:
    def broken(req: Any, st: Any) -> Any:
        raise RuntimeError("a sandbox bug")

    sb.route("GET", "/broken", broken)
    resp = api.get("/broken")
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("text/html")
    assert "Whoops, looks like something went wrong." in resp.text
    assert api.get("/balance").status_code == 200  # and it keeps answering
