"""The LiteStartup sandbox's *current* dialect: LiteStartup's newer official API documentation.

It differs from the seed dialect in nearly every surface, and the emulator reproduces each difference:

* Every answer is ``{"code": <HTTP status>, "message": .., "data": ..}``; an empty ``data`` is ``[]``. A bad key
  answers ``{"code":401,"message":"","data":{"error":"Invalid API key"}}``. No symbolic codes, no 201/422:
  validation fails with 400 (a missing send field with 500, as documented), a missing email with 500 ``error``.
* Verb-style paths: ``/contacts/list|add|get|update|delete|search|import|export``, ``/tags/...``,
  ``/templates/list|create|update/{id}|copy/{id}|content/{id}|delete/{id}``, ``/marketing/...`` (no send
  endpoint: a campaign is sent by setting its status to ``sending``, or ``scheduled`` with ``scheduled_at``).
* Integer ids; contacts carry ``status`` subscribed/unsubscribed, ``first_name``, ``last_name``, ``phone``,
  ``company``, ``custom_fields`` and tag *ids*; tags are objects of their own; a duplicate contact is a 400.
* Timestamps ``YYYY-MM-DD HH:MM:SS`` (UTC); the email detail's ``date`` reads ``Jan 23, 2026, 10:30 AM``.
* Scoped keys: ``all`` grants everything; ``email`` sending mail, ``notification`` the notification endpoint;
  anything else needs ``all`` [A] (403). ``GET /settings/usage`` needs an owner or admin key (403).
* Rate limits per minute only, and a 429 carries no ``Retry-After``; a quota 429 says
  ``monthly usage exceeded the limit`` / ``daily usage exceeded the limit``.
* Campaigns being scheduled or sent pass an AI review; phrases set with the ``set_review_rejects`` hook make it
  refuse them (400, nothing changes).

[A] marks the emulator's choices where the documentation is silent.
"""

import csv
import io
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from espcore.sandbox.base import HandlerError, SandboxRequest, State
from espcore.sandbox.litestartup import bare_address, iso, parse_iso, valid_email

if TYPE_CHECKING:
    from espcore.sandbox.litestartup import LiteStartupSandbox

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "sent", "failed")
SETTABLE_CAMPAIGN_STATUSES = ("draft", "scheduled", "sending")
CONTACT_STATUSES = ("subscribed", "unsubscribed")
EMAIL_LIST_STATUSES = ("sent", "draft", "failed")
CONTACT_TEXT_FIELDS = ("name", "first_name", "last_name", "phone", "company")
CSV_COLUMNS = ("email", "name", "first_name", "last_name", "phone", "company")
EXPORT_COLUMNS = ("email", "name", "first_name", "last_name", "phone", "company", "tags", "created_at")
SYSTEM_SENDER = "noreply@litestartup.net"  # [A] the system-assigned notification sender
_HEX_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_SCOPE_OF: Mapping[tuple[str, str], str] = {
    ("POST", "/emails"): "email",
    ("POST", "/emails/notification"): "notification",
}


def stamp(ts: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, the newer doc set's timestamp."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def stamp_iso(value: str | None) -> str | None:
    """An internal ISO 8601 ``Z`` timestamp shown as ``YYYY-MM-DD HH:MM:SS``."""
    ts = parse_iso(value)
    return None if ts is None else stamp(ts)


def ok(data: Any, message: str = "Success") -> JSONResponse:
    return JSONResponse({"code": 200, "message": message, "data": data})


def done(message: str) -> JSONResponse:
    return JSONResponse({"code": 200, "message": message, "data": []})


def _page_args(req: SandboxRequest) -> tuple[int, int]:
    def num(name: str, default: int) -> int:
        try:
            return int(req.query.get(name) or default)
        except ValueError:
            return default

    page, limit = num("page", 1), num("limit", 20)
    return (page if page >= 1 else 1), (20 if limit < 1 else min(limit, 100))


def _int_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _addresses(value: Any, name: str) -> list[str]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise HandlerError(400, f"Invalid {name}: use a string or an array of strings")


class CurrentDialectRoutes:
    """Handlers of the current dialect; the state, clock, quota, timeline and webhooks are the sandbox's own."""

    def __init__(self, sb: "LiteStartupSandbox") -> None:
        self.sb = sb

    def register(self) -> None:
        r = self.sb.route
        r("GET", "/verify", self.verify)
        r("GET", "/settings/usage", self.usage)
        r("GET", "/contacts/list", self.list_contacts)
        r("POST", "/contacts/add", self.add_contact)
        r("GET", "/contacts/get", self.get_contact)
        r("PUT", "/contacts/update", self.update_contact)
        r("DELETE", "/contacts/delete", self.delete_contact)
        r("GET", "/contacts/search", self.search_contacts)
        r("POST", "/contacts/import", self.import_contacts)
        r("GET", "/contacts/export", self.export_contacts)
        r("GET", "/tags/list", self.list_tags)
        r("POST", "/tags/create", self.create_tag)
        r("PUT", "/tags/update", self.update_tag)
        r("DELETE", "/tags/delete", self.delete_tag)
        r("GET", "/templates/list", self.list_templates)
        r("POST", "/templates/create", self.create_template)
        r("PUT", "/templates/update/{tid}", self.update_template)
        r("POST", "/templates/copy/{tid}", self.copy_template)
        r("GET", "/templates/content/{tid}", self.template_content)
        r("DELETE", "/templates/delete/{tid}", self.delete_template)
        r("GET", "/templates/{tid}", self.get_template)
        r("GET", "/marketing/list", self.list_campaigns)
        r("POST", "/marketing/create", self.create_campaign)
        r("PUT", "/marketing/update/{cid}", self.update_campaign)
        r("POST", "/marketing/copy/{cid}", self.copy_campaign)
        r("DELETE", "/marketing/delete/{cid}", self.delete_campaign)
        r("GET", "/marketing/{cid}/report", self.campaign_report)
        r("GET", "/marketing/{cid}", self.get_campaign)
        r("POST", "/emails/notification", self.send_notification)
        r("POST", "/emails", self.send_email)
        r("GET", "/emails", self.list_emails)
        r("GET", "/emails/{eid}", self.get_email)

    # -- request checks --------------------------------------------------------------------------------------

    def before_request(self, req: SandboxRequest, key: Mapping[str, Any]) -> Response | None:
        """Scopes, then body format: JSON objects only, except the CSV import's multipart form."""
        scopes = set(key.get("scopes") or ["all"])
        if req.path != "/verify" and "all" not in scopes:
            needed = _SCOPE_OF.get((req.method, req.path))
            if needed is None or needed not in scopes:
                return self.sb.error(403, f"API key lacks the required scope ({needed or 'all'})")
        if req.method in ("GET", "HEAD") or not req.body.strip():
            return None
        if req.path == "/contacts/import":
            return None  # the handler says what is wrong with a non-multipart body
        if not req.is_json or req.json_error or not isinstance(req.json_body, dict):
            return self.sb.error(400, "Invalid JSON body")
        return None

    # -- helpers ----------------------------------------------------------------------------------------------

    def _acct(self, req: SandboxRequest, st: State) -> State:
        return self.sb._acct(req, st)

    def _body(self, req: SandboxRequest) -> dict[str, Any]:
        return req.json_body if isinstance(req.json_body, dict) else {}

    def _now(self, st: State) -> float:
        return self.sb.now(st).timestamp()

    def _listing(self, req: SandboxRequest, key: str, items: list[Any]) -> tuple[dict[str, Any], list[Any]]:
        page, limit = _page_args(req)
        return {key: [], "total": len(items), "page": page, "limit": limit}, items[(page - 1) * limit : page * limit]

    # -- account -----------------------------------------------------------------------------------------------

    def verify(self, req: SandboxRequest, st: State) -> Response:
        return ok({"uuid": st["keys"][self.sb._key_of(req) or ""]["uuid"]}, "ok")

    def usage(self, req: SandboxRequest, st: State) -> Response:
        key = st["keys"][self.sb._key_of(req) or ""]
        if key.get("role", "owner") not in ("owner", "admin"):
            raise HandlerError(403, "Permission denied")
        acct = self._acct(req, st)
        plan = self.sb.plans[acct["plan"]]
        usage = acct["usage"]
        month = self.sb.now(st).strftime("%Y-%m")
        features: list[dict[str, Any]] = [
            {
                "feature": "team.emails_per_month",
                "quota_limit": plan.monthly_emails,
                "usage_count": usage["monthly"] if usage["month"] == month else 0,
            }
        ]
        if plan.contacts is not None:
            features.append(
                {"feature": "team.contacts_limit", "quota_limit": plan.contacts, "usage_count": len(acct["contacts"])}
            )
        name = acct["plan"]
        return ok(
            {
                "plan": {
                    "id": sorted(self.sb.plans).index(name) + 1,
                    "name": name.capitalize(),
                    "type": name,
                    "status": "active",
                    "expires_at": None,
                },
                "plan_usage": features,
            }
        )

    # -- tags --------------------------------------------------------------------------------------------------

    def _tag(self, acct: State, value: Any) -> State:
        n = _int_id(value)
        tag = acct["tag_objs"].get(str(n)) if n is not None else None
        if tag is None:
            raise HandlerError(404, "Tag not found")
        return tag

    def _tag_ids(self, acct: State, value: Any) -> list[int]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise HandlerError(400, "Invalid data: tags must be an array of tag IDs")
        out: list[int] = []
        for v in value:
            n = _int_id(v)
            if n is None or str(n) not in acct["tag_objs"]:
                raise HandlerError(400, f"Invalid data: tag {v!r} not found")
            if n not in out:
                out.append(n)
        return out

    def _tag_name_free(self, acct: State, name: str, but: int | None = None) -> None:
        low = name.strip().lower()
        if any(t["name"].lower() == low and t["id"] != but for t in acct["tag_objs"].values()):
            raise HandlerError(400, "Tag already exists")

    def list_tags(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = sorted(acct["tag_objs"].values(), key=lambda t: t["seq"], reverse=True)
        search = (req.query.get("search") or "").strip().lower()
        if search:
            items = [t for t in items if search in t["name"].lower()]
        counts: dict[int, int] = {}
        for c in acct["contacts"].values():
            for t in c["tags"]:
                counts[t] = counts.get(t, 0) + 1
        data, page = self._listing(req, "tags", items)
        data["tags"] = [
            {
                "id": t["id"],
                "name": t["name"],
                "color": t["color"],
                "contact_count": counts.get(t["id"], 0),
                "created_at": stamp(t["created_ts"]),
            }
            for t in page
        ]
        return ok(data)

    def create_tag(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        name, color = body.get("name"), body.get("color")
        if not isinstance(name, str) or not name.strip():
            raise HandlerError(400, "Invalid name")
        if color is not None and not (isinstance(color, str) and _HEX_COLOR.match(color)):
            raise HandlerError(400, "Invalid color: use a hex code such as #FF5733")
        self._tag_name_free(acct, name)
        tid = self.sb.next_id(st, "tag")
        acct["tag_objs"][str(tid)] = {
            "id": tid,
            "name": name.strip(),
            "color": color or "#6B7280",
            "created_ts": self._now(st),
            "seq": self.sb._seq(st),
        }
        return ok({"id": tid, "name": name.strip(), "color": color or "#6B7280"}, "Tag created successfully")

    def update_tag(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        if body.get("id") is None:
            raise HandlerError(400, "Tag ID required")
        tag = self._tag(acct, body["id"])
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise HandlerError(400, "Invalid data: name")
            self._tag_name_free(acct, body["name"], but=tag["id"])
        if "color" in body and not (isinstance(body["color"], str) and _HEX_COLOR.match(body["color"])):
            raise HandlerError(400, "Invalid data: color")
        if "name" in body:
            tag["name"] = body["name"].strip()
        if "color" in body:
            tag["color"] = body["color"]
        return done("Tag updated successfully")

    def delete_tag(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        if body.get("id") is None:
            raise HandlerError(400, "Tag ID required")
        tag = self._tag(acct, body["id"])
        del acct["tag_objs"][str(tag["id"])]
        for c in acct["contacts"].values():  # deleting a tag removes it from its contacts
            if tag["id"] in c["tags"]:
                c["tags"] = [t for t in c["tags"] if t != tag["id"]]
        return done("Tag deleted successfully")

    # -- contacts ---------------------------------------------------------------------------------------------

    def _contact(self, acct: State, value: Any) -> State:
        n = _int_id(value)
        c = acct["contacts"].get(str(n)) if n is not None else None
        if c is None:
            raise HandlerError(404, "Contact not found")
        return c

    def _contact_fields(self, acct: State, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if creating or "email" in body:
            email = body.get("email")
            if not valid_email(email) or "<" in str(email):  # [A] the doc set words both cases in one line
                raise HandlerError(400, "Invalid email address")
            out["email"] = str(email).strip()
        for f in CONTACT_TEXT_FIELDS:
            if f in body:
                if body[f] is not None and not isinstance(body[f], str):
                    raise HandlerError(400, f"Invalid data: {f} must be a string")
                out[f] = body[f] or ""
        if "tags" in body:
            out["tags"] = self._tag_ids(acct, body["tags"])
        if "custom_fields" in body:
            cf = body["custom_fields"]
            cf = {} if cf is None or cf == [] else cf
            if not isinstance(cf, dict) or any(isinstance(v, dict | list) for v in cf.values()):
                raise HandlerError(400, "Invalid data: custom_fields must be an object of scalar values")
            out["custom_fields"] = dict(cf)
        if "status" in body:  # [A] accepted on add and update, like the list's filter
            if body["status"] not in CONTACT_STATUSES:
                raise HandlerError(400, "Invalid data: status must be subscribed or unsubscribed")
            out["subscribed"] = body["status"] == "subscribed"
        return out

    @staticmethod
    def _status(c: Mapping[str, Any]) -> str:
        return "subscribed" if c["subscribed"] else "unsubscribed"

    def _contact_view(self, c: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": c["id"],
            "email": c["email"],
            "name": c["name"],
            "first_name": c["first_name"],
            "last_name": c["last_name"],
            "phone": c["phone"],
            "company": c["company"],
            "status": self._status(c),  # [A] the detail's example omits it; the list carries it
            "tags": [str(t) for t in c["tags"]],
            "custom_fields": dict(c["custom_fields"]),  # [A] as accepted on add
            "created_at": c["created_at"],
            "updated_at": c["updated_at"],
        }

    def _check_contact_cap(self, acct: State, adding: int) -> None:
        cap = self.sb.plans[acct["plan"]].contacts
        if cap is not None and len(acct["contacts"]) + adding > cap:
            raise HandlerError(429, "contacts usage exceeded the limit")

    def _new_contact(self, st: State, acct: State, fields: Mapping[str, Any]) -> State:
        now = self._now(st)
        cid = self.sb.next_id(st, "contact")
        contact = {
            "id": cid,
            "email": fields["email"],
            **{f: fields.get(f, "") for f in CONTACT_TEXT_FIELDS},
            "tags": list(fields.get("tags", [])),
            "custom_fields": dict(fields.get("custom_fields", {})),
            "attributes": {},
            "subscribed": fields.get("subscribed", True),
            "created_ts": now,
            "updated_ts": now,
            "created_at": iso(now),
            "updated_at": iso(now),
            "seq": self.sb._seq(st),
        }
        acct["contacts"][str(cid)] = contact
        return contact

    def add_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fields = self._contact_fields(acct, self._body(req), creating=True)
        if self.sb._find_contact_by_email(acct, fields["email"]) is not None:
            raise HandlerError(400, "Contact already exists")
        self._check_contact_cap(acct, 1)
        c = self._new_contact(st, acct, fields)
        return ok({"id": c["id"], "email": c["email"], "name": c["name"]}, "Contact added successfully")

    def get_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        if not req.query.get("id"):
            raise HandlerError(400, "Contact ID required")
        return ok(self._contact_view(self._contact(acct, req.query["id"])))

    def list_contacts(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        every = list(acct["contacts"].values())
        items = every
        status = req.query.get("status")
        if status:
            if status not in CONTACT_STATUSES:
                raise HandlerError(400, "Invalid status: use subscribed or unsubscribed")
            items = [c for c in items if self._status(c) == status]
        tag = req.query.get("tag")
        if tag:  # [A] a tag id
            n = _int_id(tag)
            items = [c for c in items if n is not None and n in c["tags"]]
        search = (req.query.get("search") or "").strip().lower()
        if search:
            items = [c for c in items if search in c["email"].lower() or search in c["name"].lower()]
        items.sort(key=lambda c: (c["created_ts"], c["seq"]), reverse=True)
        data, page = self._listing(req, "contacts", items)
        data["contacts"] = [
            {
                "id": c["id"],
                "email": c["email"],
                "name": c["name"],
                "company": c["company"],
                "status": self._status(c),
                "created_at": stamp(c["created_ts"]),
            }
            for c in page
        ]
        data["tags"] = [
            {"id": t["id"], "name": t["name"]} for t in sorted(acct["tag_objs"].values(), key=lambda t: t["id"])
        ]
        subscribed = sum(1 for c in every if c["subscribed"])
        data["stats"] = {"total": len(every), "subscribed": subscribed, "unsubscribed": len(every) - subscribed}
        return ok(data)

    def search_contacts(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        q = (req.query.get("q") or "").strip().lower()
        if not q:
            raise HandlerError(400, "Search keyword required")
        try:
            limit = int(req.query.get("limit") or 20)
        except ValueError:
            limit = 20
        limit = 20 if limit < 1 else min(limit, 100)
        hits = [
            c
            for c in acct["contacts"].values()
            if q in c["email"].lower() or q in c["name"].lower() or q in c["company"].lower()
        ]
        hits.sort(key=lambda c: (c["created_ts"], c["seq"]), reverse=True)
        return ok(
            {
                "contacts": [
                    {"id": c["id"], "email": c["email"], "name": c["name"], "company": c["company"]}
                    for c in hits[:limit]
                ],
                "total": len(hits),
            }
        )

    def update_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        if body.get("id") is None:
            raise HandlerError(400, "Contact ID required")
        contact = self._contact(acct, body["id"])
        fields = self._contact_fields(acct, body, creating=False)
        if "email" in fields:
            other = self.sb._find_contact_by_email(acct, fields["email"])
            if other is not None and other["id"] != contact["id"]:
                raise HandlerError(400, "Contact already exists")
        now = self._now(st)
        if fields.get("subscribed") is True and contact["subscribed"] is False:
            acct["resubscriptions"].append(
                {"contact_id": contact["id"], "email": contact["email"], "at": iso(now), "key": self.sb._key_of(req)}
            )
        contact.update(fields)
        contact["updated_ts"], contact["updated_at"] = now, iso(now)
        return done("Contact updated successfully")

    def delete_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        if body.get("id") is None:
            raise HandlerError(400, "Contact ID required")
        contact = self._contact(acct, body["id"])
        del acct["contacts"][str(contact["id"])]
        return done("Contact deleted successfully")

    def import_contacts(self, req: SandboxRequest, st: State) -> Response:
        """CSV import, synchronous: new addresses are added, duplicates skipped (or updated), bad rows failed."""
        acct = self._acct(req, st)
        form = req.form if req.is_multipart and req.form is not None else None
        raw = form.get("file") if form is not None else None
        if not isinstance(raw, bytes):
            raise HandlerError(400, "Invalid file format")
        try:
            text = raw.decode("utf-8-sig")
            rows = list(csv.DictReader(io.StringIO(text)))
        except (UnicodeDecodeError, csv.Error):
            raise HandlerError(400, "Invalid file format") from None
        header = [h.strip().lower() for h in (csv.DictReader(io.StringIO(text)).fieldnames or [])]
        if "email" not in header:
            raise HandlerError(400, "Invalid file format: an email column is required")
        assert form is not None
        tags_raw = form.get("tags") or ""
        tag_ids = self._tag_ids(acct, [t for t in str(tags_raw).split(",") if t.strip()])
        skip = str(form.get("skip_duplicates", "true")).strip().lower() not in ("false", "0", "no")
        imported = skipped = failed = 0
        new_rows = []
        for row in rows:
            clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
            email = clean.get("email", "")
            if not valid_email(email) or "<" in email:
                failed += 1
                continue
            fields: dict[str, Any] = {f: clean[f] for f in CONTACT_TEXT_FIELDS if f in clean}
            existing = self.sb._find_contact_by_email(acct, email)
            if existing is None:
                for pending in new_rows:
                    if pending["email"].lower() == email.lower():
                        existing = pending
            if existing is not None:
                if skip:
                    skipped += 1
                    continue
                existing.update(fields)  # [A] skip_duplicates=false updates the row's columns and adds the tags
                existing["tags"] = existing["tags"] + [t for t in tag_ids if t not in existing["tags"]]
                imported += 1
                continue
            new_rows.append({"email": email, **fields, "tags": tag_ids})
        self._check_contact_cap(acct, len(new_rows))
        for fields in new_rows:
            self._new_contact(st, acct, fields)
            imported += 1
        return ok({"imported": imported, "skipped": skipped, "failed": failed}, "Import completed")

    def export_contacts(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fmt = req.query.get("format") or "csv"
        if fmt != "csv":
            raise HandlerError(400, "Invalid format: only csv is supported")
        wanted = {n for n in (_int_id(t) for t in (req.query.get("tags") or "").split(",") if t.strip())}
        items = sorted(acct["contacts"].values(), key=lambda c: c["seq"])
        if wanted:
            items = [c for c in items if wanted.intersection(c["tags"])]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        names = {t["id"]: t["name"] for t in acct["tag_objs"].values()}
        for c in items:
            tags = ",".join(names.get(t, str(t)) for t in c["tags"])
            day = datetime.fromtimestamp(c["created_ts"], UTC).strftime("%Y-%m-%d")
            writer.writerow(
                [c["email"], c["name"], c["first_name"], c["last_name"], c["phone"], c["company"], tags, day]
            )
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
        )

    # -- templates --------------------------------------------------------------------------------------------

    def _template(self, acct: State, value: Any) -> State:
        n = _int_id(value)
        t = acct["templates"].get(str(n)) if n is not None else None
        if t is None:
            raise HandlerError(404, "Template not found")
        return t

    def _template_fields(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in ("name", "content", "description", "category"):
            if f not in body and not (creating and f in ("name", "content")):
                continue
            v = body.get(f)
            if f in ("name", "content") and (not isinstance(v, str) or not v.strip()):
                raise HandlerError(400, f"Invalid data: {f} is required")
            if v is not None and not isinstance(v, str):
                raise HandlerError(400, f"Invalid data: {f} must be a string")
            out[f] = v
        return out

    def _new_template(self, st: State, acct: State, fields: Mapping[str, Any]) -> State:
        now = self._now(st)
        tid = self.sb.next_id(st, "template")
        slug = re.sub(r"[^a-z0-9]+", "-", str(fields["name"]).lower()).strip("-") or "template"
        t = {
            "id": tid,
            "string_id": f"{slug}-{self.sb.uid(st, 'template-string', 6)}",
            "name": fields["name"],
            "content": fields["content"],
            "description": fields.get("description"),
            "category": fields.get("category"),
            "created_ts": now,
            "updated_ts": now,
            "created_at": iso(now),
            "seq": self.sb._seq(st),
        }
        acct["templates"][str(tid)] = t
        return t

    def list_templates(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = sorted(acct["templates"].values(), key=lambda t: (t["created_ts"], t["seq"]), reverse=True)
        search = (req.query.get("search") or "").strip().lower()
        if search:
            items = [t for t in items if search in t["name"].lower()]
        category = req.query.get("category")
        if category:
            items = [t for t in items if t["category"] == category]
        data, page = self._listing(req, "templates", items)
        data["templates"] = [
            {
                "id": t["id"],
                "name": t["name"],
                "category": t["category"],
                "thumbnail": None,
                "created_at": stamp(t["created_ts"]),
                "updated_at": stamp(t["updated_ts"]),
            }
            for t in page
        ]
        return ok(data)

    def create_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._new_template(st, acct, self._template_fields(self._body(req), creating=True))
        return ok({"id": t["id"], "string_id": t["string_id"], "name": t["name"]}, "Template created successfully")

    def get_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._template(acct, req.params["tid"])
        return ok(
            {
                "id": t["id"],
                "name": t["name"],
                "category": t["category"],
                "content": t["content"],
                "thumbnail": None,
                "created_at": stamp(t["created_ts"]),
                "updated_at": stamp(t["updated_ts"]),
            }
        )

    def template_content(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._template(acct, req.params["tid"])
        return ok(
            {
                "id": t["id"],
                "string_id": t["string_id"],
                "name": t["name"],
                "content": t["content"],
                "description": t["description"],
                "category": t["category"],
                "created_at": iso(t["created_ts"]),
                "updated_at": iso(t["updated_ts"]),
            }
        )

    def update_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._template(acct, req.params["tid"])
        t.update(self._template_fields(self._body(req), creating=False))
        t["updated_ts"] = self._now(st)
        return done("Template updated successfully")

    def copy_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        src = self._template(acct, req.params["tid"])
        t = self._new_template(st, acct, {**src, "name": f"{src['name']} (Copy)"})
        return ok({"id": t["id"], "string_id": t["string_id"], "name": t["name"]}, "Template copied successfully")

    def delete_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._template(acct, req.params["tid"])
        del acct["templates"][str(t["id"])]
        return done("Template deleted successfully")

    # -- campaigns ----------------------------------------------------------------------------------------------

    def _campaign(self, acct: State, value: Any) -> State:
        n = _int_id(value)
        c = acct["campaigns"].get(str(n)) if n is not None else None
        if c is None:
            raise HandlerError(404, "Campaign not found")
        return c

    def _campaign_fields(self, acct: State, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "template_id" in body and body["template_id"] is not None:
            tpl = self._template(acct, body["template_id"])
            out["template_id"] = tpl["id"]
            if not body.get("content"):  # [A] the template's content stands in for a missing content
                out["html"] = tpl["content"]
        for f, key in (("name", "name"), ("subject", "subject"), ("content", "html")):
            if f in body or (creating and key not in out):
                v = body.get(f)
                if not isinstance(v, str) or not v.strip():
                    raise HandlerError(400, f"Invalid data: {f} is required")
                out[key] = v
        if "from_email" in body or creating:
            self.sb._check_from(acct, body.get("from_email"))
            out["from"] = body["from_email"]
        if "from_name" in body:
            if body["from_name"] is not None and not isinstance(body["from_name"], str):
                raise HandlerError(400, "Invalid data: from_name must be a string")
            out["from_name"] = body["from_name"]
        if "tags" in body:
            out["tag_ids"] = self._tag_ids(acct, body["tags"])
        if "status" in body:
            if body["status"] not in SETTABLE_CAMPAIGN_STATUSES:
                raise HandlerError(400, "Invalid data: status must be draft, scheduled or sending")
            out["status"] = body["status"]
        if "scheduled_at" in body:
            raw = body["scheduled_at"]
            if raw is None or raw == "":
                out["scheduled_at"] = None
            else:
                ts = parse_iso(raw)
                if ts is None:
                    raise HandlerError(400, "Invalid data: scheduled_at must be an ISO 8601 datetime")
                out["scheduled_at"] = iso(ts)
        return out

    def _review(self, acct: State, camp: Mapping[str, Any]) -> None:
        """The AI review a campaign passes before it is scheduled or sent: refused phrases give a 400."""
        text = f"{camp['subject']}\n{camp['html']}".lower()
        for phrase in acct.get("review_rejects", []):
            if phrase and phrase in text:
                raise HandlerError(400, f"Campaign rejected by AI review: content flagged ({phrase})")

    def _go(self, st: State, acct: State, camp: State, status: str) -> None:
        """Apply a requested status: review, then schedule or launch (raising before anything changes)."""
        if status in ("scheduled", "sending"):
            self._review(acct, camp)
        if status == "scheduled":
            if not camp.get("scheduled_at"):
                raise HandlerError(400, "Invalid data: scheduled_at is required to schedule a campaign")
            camp["status"] = "scheduled"
            self.sb._schedule_launch(st, acct, camp)
        elif status == "sending":
            self.sb._launch(st, acct, camp, self._now(st))
        else:
            camp["status"] = "draft"

    def _view(self, c: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
        view = {
            "id": c["id"],
            "name": c["name"],
            "subject": c["subject"],
            "from_email": c["from"],
            "status": c["status"],
            "total_recipients": c["recipients"],
            "created_at": stamp(c["created_ts"]),
            "sent_at": stamp_iso(c["sent_at"]),
        }
        if full:
            view.update(
                from_name=c["from_name"],
                content=c["html"],
                tag_id=c["tag_ids"][0] if c["tag_ids"] else None,
                template_id=c["template_id"],
                scheduled_at=stamp_iso(c["scheduled_at"]),
                updated_at=stamp(c["updated_ts"]),
            )
        return view

    def create_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fields = self._campaign_fields(acct, self._body(req), creating=True)
        now = self._now(st)
        cid = self.sb.next_id(st, "campaign")
        camp: State = {
            "id": cid,
            "name": fields["name"],
            "subject": fields["subject"],
            "html": fields["html"],
            "text": None,
            "from": fields["from"],
            "from_name": fields.get("from_name"),
            "recipient_list": "all_subscribers",
            "tag_ids": fields.get("tag_ids", []),
            "template_id": fields.get("template_id"),
            "scheduled_at": fields.get("scheduled_at"),
            "status": "draft",
            "sent_at": None,
            "completed_at": None,
            "recipients": 0,
            "error": None,
            "created_ts": now,
            "updated_ts": now,
            "created_at": iso(now),
            "seq": self.sb._seq(st),
        }
        self._go(st, acct, camp, fields.get("status", "draft"))
        acct["campaigns"][str(cid)] = camp
        return ok({"id": cid, "name": camp["name"], "status": camp["status"]}, "Campaign created successfully")

    def get_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        return ok(self._view(self._campaign(acct, req.params["cid"]), full=True))

    def list_campaigns(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = list(acct["campaigns"].values())
        status = req.query.get("status")
        if status:
            if status not in (*CAMPAIGN_STATUSES, "completed"):
                raise HandlerError(400, f"Invalid status: {status}")
            items = [c for c in items if c["status"] == status]
        search = (req.query.get("search") or "").strip().lower()
        if search:
            items = [c for c in items if search in c["name"].lower()]
        tag = req.query.get("tag")
        if tag:
            n = _int_id(tag)
            items = [c for c in items if n is not None and n in c["tag_ids"]]
        items.sort(key=lambda c: (c["created_ts"], c["seq"]), reverse=True)
        data, page = self._listing(req, "campaigns", items)
        data["campaigns"] = [self._view(c, full=False) for c in page]
        return ok(data)

    def update_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        camp = self._campaign(acct, req.params["cid"])
        if camp["status"] not in ("draft", "scheduled"):
            raise HandlerError(400, f"Campaign cannot be updated in status {camp['status']}")
        fields = self._campaign_fields(acct, self._body(req), creating=False)
        status = fields.pop("status", None)
        if status is None and "scheduled_at" in fields:
            status = "scheduled" if fields["scheduled_at"] else "draft"
        trial = {**camp, **fields}
        if status is not None:
            self._go(st, acct, trial, status)  # raises before anything changes
        camp.update(trial)
        camp["updated_ts"] = self._now(st)
        return done("Campaign updated successfully")

    def copy_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        src = self._campaign(acct, req.params["cid"])
        now = self._now(st)
        cid = self.sb.next_id(st, "campaign")
        camp = {
            **src,
            "id": cid,
            "name": f"{src['name']} (Copy)",
            "status": "draft",
            "scheduled_at": None,
            "sent_at": None,
            "completed_at": None,
            "recipients": 0,
            "error": None,
            "tag_ids": list(src["tag_ids"]),
            "created_ts": now,
            "updated_ts": now,
            "created_at": iso(now),
            "seq": self.sb._seq(st),
        }
        acct["campaigns"][str(cid)] = camp
        return ok({"id": cid, "name": camp["name"], "status": "draft"}, "Campaign copied successfully")

    def delete_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        camp = self._campaign(acct, req.params["cid"])
        if camp["status"] not in ("draft", "scheduled"):  # [A] as in the seed dialect's sandbox
            raise HandlerError(400, f"Campaign cannot be deleted in status {camp['status']}")
        del acct["campaigns"][str(camp["id"])]
        return done("Campaign deleted successfully")

    def campaign_report(self, req: SandboxRequest, st: State) -> Response:
        """Counts from the campaign's messages: open/click rates over delivered, unsubscribe/bounce over sent."""
        acct = self._acct(req, st)
        camp = self._campaign(acct, req.params["cid"])
        msgs = [m for m in acct["emails"].values() if m["campaign_id"] == camp["id"]]
        total = camp["recipients"]
        delivered = sum(1 for m in msgs if m["delivered_at"] is not None)
        opens = sum(1 for m in msgs if m["opened_at"] is not None)
        clicks = sum(1 for m in msgs if m["clicked_at"] is not None)
        unsubscribes = sum(1 for m in msgs if m["unsubscribed"])
        bounces = sum(1 for m in msgs if m["bounced"])

        def rate(n: int, of: int) -> float:
            return round(n / of * 100, 1) if of else 0.0

        return ok(
            {
                "campaign": {
                    "id": camp["id"],
                    "name": camp["name"],
                    "subject": camp["subject"],
                    "status": camp["status"],
                    "total_recipients": total,
                },
                "stats": {
                    "total_recipients": total,
                    "delivered": delivered,
                    "opens": opens,
                    "clicks": clicks,
                    "unsubscribes": unsubscribes,
                    "bounces": bounces,
                    "open_rate": rate(opens, delivered),
                    "click_rate": rate(clicks, delivered),
                    "unsubscribe_rate": rate(unsubscribes, total),
                    "bounce_rate": rate(bounces, total),
                },
            }
        )

    # -- emails -------------------------------------------------------------------------------------------------

    def _template_by_string_id(self, acct: State, value: Any) -> State:
        for t in acct["templates"].values():
            if t["string_id"] == value:
                return t
        raise HandlerError(404, "Template not found")

    def send_email(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        to = _addresses(body.get("to"), "to")
        if not to or not body.get("from"):
            raise HandlerError(500, "From email or to email is required")
        if not isinstance(body.get("subject"), str) or not body["subject"].strip():
            raise HandlerError(500, "Subject is required")
        cc, bcc = _addresses(body.get("cc"), "cc"), _addresses(body.get("bcc"), "bcc")
        html = body.get("html")
        subject = body["subject"]
        template = body.get("template")
        if template is not None:
            if not isinstance(template, dict) or not template.get("id"):
                raise HandlerError(400, "Invalid template: an id is required")
            tpl = self._template_by_string_id(acct, template["id"])
            variables = template.get("variables") or {}
            if not isinstance(variables, dict):
                raise HandlerError(400, "Invalid template: variables must be an object")
            html = tpl["content"]
            for k, v in variables.items():
                html = html.replace("{{" + str(k) + "}}", str(v))
                subject = subject.replace("{{" + str(k) + "}}", str(v))
        if not isinstance(html, str) or not html.strip():
            raise HandlerError(500, "Html content is required")
        for addr in (*to, *cc, *bcc):
            if not valid_email(addr):
                raise HandlerError(400, f"Invalid email address: {addr}")
        reply_to = body.get("replyTo")
        if reply_to is not None and not valid_email(reply_to):
            raise HandlerError(400, "Invalid email address: replyTo")
        self.sb._check_from(acct, body["from"])
        now = self._now(st)
        self.sb._consume_quota(acct, now, len(to) + len(cc) + len(bcc))
        msg = self.sb._new_message(
            st,
            acct,
            to=to,
            to_is_list=isinstance(body["to"], list),
            cc=cc,
            bcc=bcc,
            sender=body["from"],
            subject=subject,
            html=html,
            text=body.get("text"),
            reply_to=reply_to,
            tags=[],
            campaign_id=None,
            created=now,
            process_at=now + 1,
        )
        return ok({"messageId": msg["message_id"]})

    def send_notification(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        for f in ("subject", "content"):
            if not isinstance(body.get(f), str) or not body[f].strip():
                raise HandlerError(500, f"{f.capitalize()} is required")
        to = body.get("to") or acct["owner_email"]
        if not isinstance(to, str) or not valid_email(to):
            raise HandlerError(400, "Invalid email address: to")
        sender = body.get("from")
        if sender is None:
            sender = SYSTEM_SENDER
        else:
            if not isinstance(sender, str) or not valid_email(sender):
                raise HandlerError(400, "Invalid email address: from")
            self.sb._check_from(acct, sender)
        now = self._now(st)
        self.sb._consume_quota(acct, now, 1, notification=True)
        msg = self.sb._new_message(
            st,
            acct,
            to=[to],
            to_is_list=False,
            cc=[],
            bcc=[],
            sender=sender,
            subject=body["subject"],
            html=body["content"],
            text=None,
            reply_to=None,
            tags=["notification"],
            campaign_id=None,
            created=now,
            process_at=now + 1,
        )
        return ok({"messageId": msg["message_id"]})

    @staticmethod
    def _list_status(m: Mapping[str, Any]) -> str:
        return "failed" if m["status"] == "failed" else "sent"

    @staticmethod
    def _full_message_id(m: Mapping[str, Any]) -> str:
        return f"{m['message_id']}@{bare_address(m['from']).rsplit('@', 1)[-1]}"

    def list_emails(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = [m for m in acct["emails"].values() if m["campaign_id"] is None]
        status = req.query.get("status")
        if status:
            if status not in EMAIL_LIST_STATUSES:
                raise HandlerError(400, "Invalid status: use sent, draft or failed")
            items = [m for m in items if self._list_status(m) == status]
        items.sort(key=lambda m: (m["created_ts"], m["seq"]), reverse=True)
        page, limit = _page_args(req)
        chunk = items[(page - 1) * limit : page * limit]
        return ok(
            {
                "emails": [
                    {
                        "id": m["num"],
                        "message_id": self._full_message_id(m),
                        "from_email": bare_address(m["from"]),
                        "to_email": ", ".join(m["to"]),
                        "subject": m["subject"],
                        "status": self._list_status(m),
                        "created_at": stamp(m["created_ts"]),
                    }
                    for m in chunk
                ],
                "pagination": {
                    "page": page,
                    "limit": limit,
                    "total": len(items),
                    "total_pages": math.ceil(len(items) / limit),
                },
            }
        )

    def get_email(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        ident = req.params["eid"]
        found = None
        for m in acct["emails"].values():
            if m["campaign_id"] is None and ident in (str(m["num"]), m["message_id"], self._full_message_id(m)):
                found = m
                break
        if found is None:
            raise HandlerError(500, "error")  # the newer doc set: a missing email is a 500 "error"
        m = found
        when = datetime.fromtimestamp(m["created_ts"], UTC)
        return ok(
            {
                "id": m["num"],
                "from_email": bare_address(m["from"]),
                "to_email": ", ".join(m["to"]),
                "cc_email": ", ".join(m["cc"]),
                "bcc_email": ", ".join(m["bcc"]),
                "subject": m["subject"],
                "date": f"{when:%b} {when.day}, {when:%Y}, {when.strftime('%I:%M %p').lstrip('0')}",
                "message_id": self._full_message_id(m),
                "html_content": m["html"] or "",
                "attachments": [],
            }
        )
