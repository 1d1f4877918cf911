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


TX_FORM = {
    "email[to_name]": "A",
    "email[to_email]": "a@x.io",
    "email[from_name]": "Shop",
    "email[from_email]": SENDER,
    "email[subject]": "Receipt",
    "email[body]": b64("<p>Thanks</p>"),
    "email[send_at]": "2026-03-01 10:00:00",
}
PDF = "%PDF-1.4 receipt"


def attachment(n: int, name: str, mime: str = "application/pdf", data: str = PDF, key: str = "data") -> dict[str, str]:
    return {
        f"email[attachments][{n}][name]": name,
        f"email[attachments][{n}][type]": mime,
        f"email[attachments][{n}][{key}]": b64(data),
    }


def test_transactional_view_returns_the_stored_attributes(api: httpx.Client) -> None:
    data = {
        **TX_FORM,
        "email[reply_to_name]": "Desk",
        "email[reply_to_email]": SENDER,
        "email[body]": b64("<h1>Receipt</h1><p>Thanks, <b>Ali</b>: <a href='https://x.io/o/1'>your order</a></p>"),
        "email[plain_text]": b64("kept?"),  # not a safe attribute: dropped, the text is made from the body
        "email[priority]": "2",  # likewise
        "email[fallback_system_servers]": "yes",  # likewise
        **attachment(0, "r.pdf"),
    }
    uid = api.post("/transactional-emails", data=data).json()["email_uid"]
    rec = api.get(f"/transactional-emails/{uid}").json()["data"]["record"]
    assert list(rec) == [
        "email_uid",
        "customer_id",
        "to_email",
        "to_name",
        "from_email",
        "from_name",
        "reply_to_email",
        "reply_to_name",
        "subject",
        "body",
        "plain_text",
        "priority",
        "retries",
        "max_retries",
        "send_at",
        "fallback_system_servers",
        "status",
        "date_added",
        "last_updated",
        "attachments",
    ]
    assert rec["body"].startswith("<h1>Receipt</h1>")
    assert rec["plain_text"] == "RECEIPT\nThanks, ALI: your order [https://x.io/o/1]"
    assert (rec["reply_to_name"], rec["reply_to_email"], rec["priority"]) == ("Desk", SENDER, 5)
    assert (rec["retries"], rec["max_retries"], rec["fallback_system_servers"], rec["status"]) == (0, 3, "no", "unsent")
    assert rec["attachments"] == [{"type": "application/pdf", "name": "r.pdf", "content": b64(PDF)}]
    listed = api.get("/transactional-emails").json()["data"]["records"][0]
    assert list(listed) == list(rec)[:-1]  # the listing: the same attributes, no attachments
    assert listed["body"] == rec["body"]


def test_transactional_columns_without_a_value(api: httpx.Client) -> None:
    form = {k: v for k, v in TX_FORM.items() if k not in ("email[from_email]", "email[send_at]")}
    uid = api.post("/transactional-emails", data=form).json()["email_uid"]
    rec = api.get(f"/transactional-emails/{uid}").json()["data"]["record"]
    assert (rec["from_email"], rec["reply_to_email"], rec["reply_to_name"]) == ("", None, None)
    assert rec["send_at"] == "2026-03-01 09:00:00"  # an empty send_at is now
    assert rec["attachments"] == []


def test_transactional_validation_in_mailwizz_order(sandbox: PakatSandbox, api: httpx.Client) -> None:
    r = api.post(
        "/transactional-emails",
        data={**TX_FORM, "email[to_email]": "bad", "email[to_name]": " ", "email[send_at]": "2026-3-1 10:00"},
    )
    assert_pakat_error(r, 422)
    assert r.json()["error"] == "To name cannot be blank.<br />To email is not a valid email address.<br />" + (
        "The format of Send at is invalid."
    )
    r = api.post("/transactional-emails", data={**TX_FORM, "email[subject]": "s" * 256})
    assert r.json()["error"] == "Subject is too long (maximum is 255 characters)."
    lst = api.post("/lists", data=list_form()).json()["list_uid"]
    api.post(f"/lists/{lst}/subscribers", data={"EMAIL": "a@x.io", "details[status]": "blacklisted"})
    r = api.post("/transactional-emails", data=TX_FORM)
    assert_pakat_error(r, 422)
    assert r.json()["error"] == "This email address is blacklisted!"
    assert api.get("/transactional-emails").json()["data"]["records"] == []


def test_transactional_attachments_take_name_type_and_data(api: httpx.Client) -> None:
    r = api.post("/transactional-emails", data={**TX_FORM, "email[attachments][0][name]": "r.pdf"})
    assert_pakat_error(r, 422)
    assert r.json()["error"] == "Please send the data in the correct format ([name, type, data])."
    r = api.post("/transactional-emails", data={**TX_FORM, **attachment(0, "r.pdf", key="content")})
    assert r.json()["error"] == "Please send the data in the correct format ([name, type, data])."  # not read
    r = api.post("/transactional-emails", data={**TX_FORM, **attachment(0, "noext")})
    assert_pakat_error(r, 422)
    assert r.json()["error"] == "Your attachment file is missing the extension."
    r = api.post("/transactional-emails", data={**TX_FORM, **attachment(0, "r.pdf", data="")})
    assert r.json()["error"] == "Please send the data in the correct format ([name, type, data])."
    r = api.post(
        "/transactional-emails",
        data={
            **TX_FORM,
            "email[attachments][0][name]": "r.pdf",
            "email[attachments][0][type]": "application/pdf",
            "email[attachments][0][data]": "***",
        },
    )
    assert r.json()["error"] == "Your attachment file is empty."
    extra = {**attachment(0, "r.pdf"), "email[attachments][0][size]": "9", "email[attachments][0][content]": "x"}
    r = api.post("/transactional-emails", data={**TX_FORM, **extra})  # keys MailWizz does not read: ignored
    assert r.status_code == 201
    rec = api.get(f"/transactional-emails/{r.json()['email_uid']}").json()["data"]["record"]
    assert rec["attachments"] == [{"type": "application/pdf", "name": "r.pdf", "content": b64(PDF)}]
    assert len(api.get("/transactional-emails").json()["data"]["records"]) == 1  # failed creates keep nothing


def test_transactional_attachments_checked_as_one_upload(sandbox: PakatSandbox, api: httpx.Client) -> None:
    why = "Some files failed to be attached, here is why: <br />"
    four = {k: v for n in range(4) for k, v in attachment(n, f"f{n}.pdf").items()}
    r = api.post("/transactional-emails", data={**TX_FORM, **four})
    assert_pakat_error(r, 422)
    assert r.json()["error"] == why + "File cannot accept more than 3 files."
    r = api.post("/transactional-emails", data={**TX_FORM, **attachment(0, "r.txt", "text/plain")})
    assert r.json()["error"] == why + (
        "The file &quot;r.txt&quot; cannot be uploaded. Only files with these extensions are allowed: "
        "png, jpg, jpeg, gif, pdf, doc, docx, xls, xlsx, ppt, pptx."
    )
    r = api.post("/transactional-emails", data={**TX_FORM, **attachment(0, "big.pdf", data="x" * 1_048_577)})
    assert r.json()["error"] == why + "The file &quot;big.pdf&quot; is too large. Its size cannot exceed 1048576 bytes."
    r = api.post("/transactional-emails", data={**TX_FORM, "email[to_email]": "bad", **four})
    assert r.json()["error"] == "To email is not a valid email address."  # the email is validated first
    assert api.get("/transactional-emails").json()["data"]["records"] == []
    same = {**attachment(0, "r.pdf", data="%PDF one"), **attachment(1, "r.pdf", data="%PDF two")}
    uid = api.post("/transactional-emails", data={**TX_FORM, **same}).json()["email_uid"]
    rec = api.get(f"/transactional-emails/{uid}").json()["data"]["record"]
    assert [a["content"] for a in rec["attachments"]] == [b64("%PDF two")] * 2  # one file on disk per name
    sandbox.hook("set_transactional_attachments", enabled=False)  # MailWizz's default: attachments ignored
    uid = api.post("/transactional-emails", data={**TX_FORM, "email[attachments][0][name]": "x"}).json()["email_uid"]
    assert api.get(f"/transactional-emails/{uid}").json()["data"]["record"]["attachments"] == []
    sandbox.hook("set_transactional_attachments", enabled=True, allowed_extensions=["txt"])
    r = api.post("/transactional-emails", data={**TX_FORM, **attachment(0, "r.txt", "text/plain")})
    assert r.status_code == 201


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
