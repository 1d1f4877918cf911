"""The Pakat sandbox's MailWizz 2.x behaviours (listing shapes, toggles, stored records, limits) and its
answers to hostile input, with raw httpx in process."""

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from espcore.sandbox.pakat import DEMO_API_KEY, DEMO_SENDING_DOMAIN, PakatSandbox
from espcore.sandbox.transport import InProcessTransport

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SENDER = f"shop@{DEMO_SENDING_DOMAIN}"
ERROR_KEYS = {"status", "error"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def sandbox() -> PakatSandbox:
    sb = PakatSandbox(seed=3)
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


def list_form(name: str = "Buyers") -> dict[str, str]:
    return {
        "general[name]": name,
        "general[description]": "test list",
        "defaults[from_name]": "Shop",
        "defaults[from_email]": SENDER,
        "defaults[reply_to]": SENDER,
    }


def make_draft(api: httpx.Client) -> str:
    list_uid = api.post("/lists", data=list_form()).json()["list_uid"]
    data = {
        "campaign[name]": "Draft",
        "campaign[from_name]": "Shop",
        "campaign[from_email]": SENDER,
        "campaign[subject]": "Hi",
        "campaign[reply_to]": SENDER,
        "campaign[send_at]": "2026-03-02 09:00:00",
        "campaign[list_uid]": list_uid,
        "campaign[status]": "draft",
        "campaign[template][content]": b64("<p>Hi</p>"),
    }
    r = api.post("/campaigns", data=data)
    assert r.status_code == 201, r.text
    return r.json()["campaign_uid"]


def assert_pakat_error(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert set(r.json()) == ERROR_KEYS
    assert r.json()["status"] == "error"


def test_campaign_group_is_an_empty_array_or_an_object(sandbox: PakatSandbox, api: httpx.Client) -> None:
    uid = make_draft(api)
    assert api.get("/campaigns").json()["data"]["records"][0]["group"] == []
    view = api.get(f"/campaigns/{uid}").json()["data"]["record"]
    assert (view["group"], view["segment"]) == ([], [])
    group = sandbox.hook("set_campaign_group", campaign_uid=uid, group_name="Spring")
    assert api.get("/campaigns").json()["data"]["records"][0]["group"] == group
    assert api.get(f"/campaigns/{uid}").json()["data"]["record"]["group"] == group
    assert set(group) == {"group_uid", "name"}


def test_pause_unpause_of_a_draft_answers_success_unchanged(api: httpx.Client) -> None:
    uid = make_draft(api)
    r = api.put(f"/campaigns/{uid}/pause-unpause")
    assert r.status_code == 200
    assert r.json() == {"status": "success", "campaign": {"status": "draft"}}


def test_transactional_view_returns_the_stored_attributes(api: httpx.Client) -> None:
    data = {
        "email[to_name]": "A",
        "email[to_email]": "a@x.io",
        "email[from_name]": "Shop",
        "email[from_email]": SENDER,
        "email[reply_to_name]": "Desk",
        "email[reply_to_email]": SENDER,
        "email[subject]": "Receipt",
        "email[body]": b64("<p>Thanks</p>"),
        "email[plain_text]": b64("Thanks"),
        "email[priority]": "2",
        "email[send_at]": "2026-03-01 10:00:00",
        "email[attachments][0][name]": "r.txt",
        "email[attachments][0][type]": "text/plain",
        "email[attachments][0][data]": b64("x"),
    }
    uid = api.post("/transactional-emails", data=data).json()["email_uid"]
    rec = api.get(f"/transactional-emails/{uid}").json()["data"]["record"]
    assert rec["body"] == "<p>Thanks</p>"
    assert rec["plain_text"] == "Thanks"
    assert (rec["reply_to_name"], rec["reply_to_email"], rec["priority"]) == ("Desk", SENDER, 2)
    assert rec["attachments"] == [{"type": "text/plain", "name": "r.txt", "content": b64("x")}]
    assert {"max_retries", "retries", "last_updated", "date_added", "status", "send_at", "customer_id"} <= set(rec)
    assert "email_id" not in rec
    listed = api.get("/transactional-emails").json()["data"]["records"][0]
    assert "attachments" not in listed
    assert listed["body"] == "<p>Thanks</p>"


def test_transactional_attachments_need_name_type_and_data(api: httpx.Client) -> None:
    base = {
        "email[to_name]": "A",
        "email[to_email]": "a@x.io",
        "email[from_name]": "Shop",
        "email[from_email]": SENDER,
        "email[subject]": "Receipt",
        "email[body]": b64("<p>Thanks</p>"),
        "email[send_at]": "2026-03-01 10:00:00",
    }
    r = api.post("/transactional-emails", data={**base, "email[attachments][0][name]": "r.txt"})
    assert_pakat_error(r, 422)
    assert r.json()["error"] == "Please send the data in the correct format ([name, type, data])."
    r = api.post(
        "/transactional-emails",
        data={
            **base,
            "email[attachments][0][name]": "noext",
            "email[attachments][0][type]": "text/plain",
            "email[attachments][0][data]": b64("x"),
        },
    )
    assert_pakat_error(r, 422)
    assert r.json()["error"] == "Your attachment file is missing the extension."


def test_list_name_over_255_characters_is_a_validation_error(api: httpx.Client) -> None:
    r = api.post("/lists", data=list_form("n" * 256))
    assert_pakat_error(r, 422)
    assert r.json()["error"]["general"]["name"] == "Name is too long (maximum is 255 characters)."
    assert api.post("/lists", data=list_form("n" * 255)).status_code == 201


# -- hostile input -------------------------------------------------------------------------------------------


def test_oversized_bodies_answer_in_pakat_envelope(api: httpx.Client) -> None:
    big = b"x" * (17 * 1024 * 1024)
    r = api.post("/lists", files={"file": ("big.bin", big)})
    assert_pakat_error(r, 413)
    r = api.post("/lists", content=b"a=" + big, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_pakat_error(r, 413)


def test_five_megabyte_form_is_read_and_validated(api: httpx.Client) -> None:
    r = api.post("/lists", data=list_form("n" * (5 * 1024 * 1024)))
    assert_pakat_error(r, 422)


def test_malformed_json_on_put_is_an_empty_body(api: httpx.Client) -> None:
    list_uid = api.post("/lists", data=list_form()).json()["list_uid"]
    r = api.put(f"/lists/{list_uid}", content=b'{"general": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json() == {"status": "success"}
    assert api.get(f"/lists/{list_uid}").json()["data"]["record"]["general"]["name"] == "Buyers"


def test_json_or_wrong_content_type_on_post_carries_no_fields(api: httpx.Client) -> None:
    r = api.post("/lists", json={"general": {"name": "X"}})
    assert_pakat_error(r, 422)
    r = api.post("/lists", content=b"<xml/>", headers={"Content-Type": "text/xml"})
    assert_pakat_error(r, 422)
    r = api.post("/lists", content=b"--x\r\ntorn", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_pakat_error(r, 422)


def test_unknown_paths_and_wrong_methods(api: httpx.Client) -> None:
    r = api.get("/no/such/path")
    assert_pakat_error(r, 404)
    assert r.json()["error"] == "Page not found."
    r = api.patch("/lists")
    assert_pakat_error(r, 400)
    assert r.json()["error"] == "Only POST requests allowed for this endpoint."
    r = api.delete("/countries")
    assert_pakat_error(r, 400)
    assert r.json()["error"] == "Only GET requests allowed for this endpoint."


def test_customer_registration_needs_no_api_key(api: httpx.Client) -> None:
    form = {
        "customer[first_name]": "Sara",
        "customer[last_name]": "K",
        "customer[email]": "sara@x.io",
        "customer[confirm_email]": "sara@x.io",
        "customer[password]": "s3cret-pass",
        "customer[confirm_password]": "s3cret-pass",
        "customer[timezone]": "Asia/Tehran",
    }
    r = api.post("/customers", data=form, headers={"X-API-KEY": ""})
    assert r.status_code == 201, r.text
    assert r.json()["customer_uid"]
    assert r.json()["must_confirm_email"] is False
    assert r.json()["list_subscribe_result"] == {"status": "disabled", "message": "Feature is not enabled."}
    assert_pakat_error(api.get("/countries", headers={"X-API-KEY": ""}), 400)


def test_customer_registration_follows_the_back_office_settings(sandbox: PakatSandbox, api: httpx.Client) -> None:
    form = {
        "customer[first_name]": "Sara",
        "customer[last_name]": "K",
        "customer[email]": "sara@x.io",
        "customer[confirm_email]": "sara@x.io",
        "customer[password]": "s3cret-pass",
        "customer[confirm_password]": "other-pass",
        "customer[timezone]": "Asia/Tehran",
    }
    r = api.post("/customers", data=form)
    assert_pakat_error(r, 422)
    assert r.json()["error"] == {"general": {"confirm_password": "Confirm password must be repeated exactly."}}
    form["customer[confirm_password]"] = "s3cret-pass"
    sandbox.hook("set_customer_registration", company_required=True, confirm_email=True)
    r = api.post("/customers", data={**form, "company[country]": "Atlantis"})
    assert_pakat_error(r, 422)
    assert set(r.json()["error"]["company"]) == {"country_id"}
    company = {
        "company[name]": "Shop",
        "company[country]": "Iran, Islamic Republic of",
        "company[zone]": "Tehran",
        "company[address_1]": "Street 1",
        "company[city]": "Tehran",
        "company[zip_code]": "12345",
    }
    r = api.post("/customers", data={**form, **company})
    assert r.status_code == 201, r.text
    assert r.json()["must_confirm_email"] is True
    stored = sandbox.hook("customer", customer_uid=r.json()["customer_uid"])
    assert stored["status"] == "pending-confirm"
    assert stored["company"]["zone_id"] == "1584"
    sandbox.hook("set_customer_registration", enabled=False)
    r = api.post("/customers", data={**form, "customer[email]": "b@x.io", "customer[confirm_email]": "b@x.io"})
    assert_pakat_error(r, 400)
    assert r.json()["error"] == "Customer creation is disabled."
