"""A stateful emulator of the LiteStartup REST API v2, in either of its two dialects.

The *seed* dialect (the default) is the API reference the product was specified from; the *current* dialect
is LiteStartup's newer official documentation (``/contacts/list``, ``/marketing/...``, the
``{"code","message","data"}`` envelope, scoped keys, ``GET /settings/usage``, CSV import), served by
:mod:`espcore.sandbox.litestartup_current`. The dialect is chosen when the sandbox is created and kept in its
state, so every process sharing a state file serves the same one. In the seed dialect it reproduces:

* Bearer auth (401 ``INVALID_API_KEY``), ``GET /verify`` answering ``{"uuid"}`` per key.
* The seed's mixed envelopes: bare ``{"uuid"}`` and ``{"messageId"}``; ``{"success":true,"data":..}``;
  lists with ``pagination{page,limit,total,pages}`` (templates omit ``pages``, like the seed's example);
  deletes with ``message``; errors as ``{"success":false,"error":..,"code":..}`` (no ``code`` for 409/422).
* JSON bodies only (400 ``Invalid JSON body``), pagination defaults 1/20, max 100.
* Contacts: 409 on a case-insensitive duplicate, filters, implicit tags, ``CONTACT_NOT_FOUND``; a PUT that
  sets ``subscribed`` back to true is allowed but *recorded* (hook ``resubscriptions``).
* Fixed 60 s / 3,600 s rate windows per key and plan; monthly and daily email quotas per recipient.
* ``DOMAIN_NOT_VERIFIED``, ``INVALID_EMAIL``; campaign lifecycle on the sandbox clock; deterministic,
  evolving per-message outcomes and campaign stats; signed webhook deliveries as events happen on the clock.

Time-driven work is an ordered *timeline* of events per account, applied by :meth:`tick` up to the sandbox
clock, so tests freeze the clock and advance it instead of sleeping.

Webhook deliveries are always recorded in the account's outbox (hook ``webhook_deliveries``). When a
``webhook_sender`` is given they are also handed to it (``http_webhook_sender`` POSTs to loopback URLs
only); a non-2xx answer is retried 3 times with backoff on the sandbox clock. The sender runs inside the
state transaction: it must not call back into the same sandbox.
"""

import bisect
import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from espcore.http import is_loopback_host
from espcore.sandbox.base import (
    FaultPlan,
    HandlerError,
    MemoryStore,
    ProviderSandbox,
    SandboxRequest,
    State,
    StateStore,
)

DEMO_API_KEY = "sk_live_sandbox_demo"
DEMO_ACCOUNT = "acct_demo"
DEMO_DOMAIN = "demo.example"
DEMO_PLAN = "free"
BASE_PATH = "/client/v2"
SIGNATURE_HEADER = "X-LiteStartup-Signature"

WEBHOOK_EVENTS = (
    "email.sent",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.spam_reported",
    "email.unsubscribed",
)
EMAIL_STATUSES = ("queued", "sent", "delivered", "bounced", "failed")
CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "sent", "failed")
WEBHOOK_RETRY_DELAYS_S = (10.0, 60.0, 300.0)
CAMPAIGN_SEND_RATE = 50  # recipients processed per second of sandbox time
#: the API dialects the sandbox can serve (see the module docstring)
DIALECTS = ("seed", "current")
DEFAULT_DIALECT = "seed"
#: [A] largest request body accepted: JSON bodies, and multipart uploads (CSV import); larger ones get 413
MAX_JSON_BODY = 1024 * 1024
MAX_UPLOAD_BODY = 4 * 1024 * 1024
#: current dialect: key scopes; ``all`` grants every endpoint
KEY_SCOPES = ("all", "email", "notification", "system.publish")
KEY_ROLES = ("owner", "admin", "member")

_EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_NAMED_ADDR = re.compile(r"^\s*(?P<name>[^<]*)<(?P<addr>[^>]+)>\s*$")


@dataclass(frozen=True)
class PlanLimits:
    """Request rate and email quota of one plan; ``None`` = no cap."""

    per_minute: int
    per_hour: int
    monthly_emails: int | None
    daily_emails: int | None
    #: current dialect: the contact cap reported by ``/settings/usage`` and enforced on add/import; None = none
    contacts: int | None = None


DEFAULT_PLANS: Mapping[str, PlanLimits] = {
    "free": PlanLimits(per_minute=60, per_hour=1_000, monthly_emails=10_000, daily_emails=350),
    "pro": PlanLimits(per_minute=300, per_hour=10_000, monthly_emails=110_000, daily_emails=None),
}


@dataclass(frozen=True)
class OutcomeRates:
    """Shares of messages that bounce, open, click (of opens), unsubscribe and report spam.

    Decided per message from a hash of the seed, the recipient and the message id, so a run is reproducible.
    Local parts containing ``bounce``, ``open``, ``click``, ``unsub`` or ``spam`` force that outcome.
    """

    bounce: float = 0.03
    open: float = 0.45
    click: float = 0.25
    unsubscribe: float = 0.02
    spam: float = 0.005

    @classmethod
    def markers_only(cls) -> "OutcomeRates":
        """No random outcomes: only the local-part markers decide."""
        return cls(bounce=0.0, open=0.0, click=0.0, unsubscribe=0.0, spam=0.0)


WebhookSender = Callable[[str, bytes, Mapping[str, str]], int]


def http_webhook_sender(timeout_s: float = 5.0) -> WebhookSender:
    """A sender that POSTs deliveries to loopback URLs only (never to the internet); returns the status."""

    def send(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        host = urlsplit(url).hostname or ""
        if not is_loopback_host(host):
            return 0
        try:
            return httpx.post(url, content=body, headers=dict(headers), timeout=timeout_s).status_code
        except httpx.HTTPError:
            return 0

    return send


def sign_body(secret: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the raw body, as in ``X-LiteStartup-Signature``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- small helpers ------------------------------------------------------------------------------------------


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: Any) -> float | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def bare_address(value: str) -> str:
    m = _NAMED_ADDR.match(value)
    return (m.group("addr") if m else value).strip()


def valid_email(value: Any) -> bool:
    """[A] LiteStartup documents only ``INVALID_EMAIL``: its regular expression (no Unicode domain) and the RFC
    5321 lengths: at most 254 characters, 64 octets before the ``@``, 63 per domain label."""
    if not isinstance(value, str) or len(value) > 254:
        return False
    addr = bare_address(value)
    if not _EMAIL_RE.match(addr):
        return False
    local, _, domain = addr.rpartition("@")
    return len(local.encode("utf-8")) <= 64 and all(len(label) <= 63 for label in domain.split("."))


def _int_param(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None and value != "" else default
    except ValueError:
        return default


def _ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status)


def _message(text: str) -> JSONResponse:
    return JSONResponse({"success": True, "message": text})


def _required(body: Mapping[str, Any], *names: str) -> None:
    for name in names:
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise HandlerError(422, f"The {name} field is required")


class LiteStartupSandbox(ProviderSandbox):
    """The LiteStartup emulator. Accounts hold a plan, verified domains and all their objects; keys map to
    accounts. ``seed_demo`` creates :data:`DEMO_API_KEY` on the free plan with ``demo.example`` verified."""

    provider = "litestartup"
    demo_credentials = {"api_key": DEMO_API_KEY}
    dialects = DIALECTS

    def __init__(
        self,
        store: StateStore | None = None,
        *,
        faults: FaultPlan | None = None,
        seed: int = 0,
        rate_limit: bool = True,
        plans: Mapping[str, PlanLimits] | None = None,
        outcomes: OutcomeRates | None = None,
        webhook_sender: WebhookSender | None = None,
        demo: bool = True,
        dialect: str | None = None,
    ) -> None:
        """``dialect`` is ``seed`` or ``current``; None keeps the one recorded in the store's state (else seed)."""
        self.plans: dict[str, PlanLimits] = dict(plans or DEFAULT_PLANS)
        self.outcomes = outcomes or OutcomeRates()
        self.webhook_sender = webhook_sender
        store = store or MemoryStore()
        with store.transaction() as st:
            recorded = st.get("dialect") if st.get("__initialised__") else None
        chosen = dialect or recorded or DEFAULT_DIALECT
        if chosen not in DIALECTS:
            raise ValueError(f"unknown LiteStartup dialect {chosen!r}; known: {list(DIALECTS)}")
        self.dialect: str = chosen
        super().__init__(store, faults=faults, seed=seed, rate_limit=rate_limit)
        with self.store.transaction() as st:
            if st.get("dialect") != self.dialect:
                st["dialect"] = self.dialect
        self.app.add_exception_handler(HTTPException, self._starlette_error)  # type: ignore[arg-type]
        if demo:
            with self.store.transaction() as st:
                if not st.get("keys"):
                    self.seed_demo(st)

    # -- setup ---------------------------------------------------------------------------------------------

    @property
    def current(self) -> bool:
        """True when serving LiteStartup's newer official API (the current dialect)."""
        return self.dialect == "current"

    def initial_state(self) -> State:
        return {"keys": {}, "accounts": {}, "dialect": getattr(self, "dialect", DEFAULT_DIALECT)}

    async def _starlette_error(self, request: Request, exc: HTTPException) -> Response:
        """Errors starlette raises before a handler runs (a malformed multipart body) in LiteStartup's shape."""
        return self.error(exc.status_code, exc.detail or "Bad request")

    def seed_demo(self, state: State) -> None:
        self._add_account(state, DEMO_ACCOUNT, plan=DEMO_PLAN, domains=[DEMO_DOMAIN])
        self._add_key(state, DEMO_API_KEY, DEMO_ACCOUNT)

    def _add_account(self, state: State, account: str, *, plan: str, domains: Iterable[str]) -> State:
        domains = list(domains)
        if plan not in self.plans:
            raise ValueError(f"unknown plan {plan!r}")
        acct = {
            "id": account,
            "plan": plan,
            "verified_domains": sorted({d.lower() for d in domains}),
            "contacts": {},
            "tags": {},
            "templates": {},
            "campaigns": {},
            "emails": {},
            "message_ids": {},
            "webhooks": {},
            "deliveries": [],
            "resubscriptions": [],
            "usage": {"month": "", "monthly": 0, "day": "", "daily": 0},
            "timeline": [],
            "tag_objs": {},
            "review_rejects": [],
            "owner_email": f"owner@{sorted({d.lower() for d in domains})[0] if domains else DEMO_DOMAIN}",
        }
        state.setdefault("accounts", {})[account] = acct
        return acct

    def _add_key(
        self, state: State, key: str, account: str, *, scopes: Iterable[str] = ("all",), role: str = "owner"
    ) -> None:
        scopes = list(dict.fromkeys(scopes))
        if not scopes or any(s not in KEY_SCOPES for s in scopes):
            raise ValueError(f"scopes must be some of {list(KEY_SCOPES)}")
        if role not in KEY_ROLES:
            raise ValueError(f"role must be one of {list(KEY_ROLES)}")
        uuid = self.uid(state, "uuid", 13)
        if self.current:  # the newer doc set shows a hyphenated uuid
            raw = self.uid(state, "uuid-current", 32)
            uuid = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
        state.setdefault("keys", {})[key] = {"account": account, "uuid": uuid, "scopes": scopes, "role": role}

    def register_routes(self) -> None:
        if self.current:
            from espcore.sandbox.litestartup_current import CurrentDialectRoutes

            self.current_routes = CurrentDialectRoutes(self)
            self.current_routes.register()
            return
        r = self.route
        r("GET", "/verify", self.h_verify)
        r("POST", "/emails", self.h_send_email)
        r("GET", "/emails", self.h_list_emails)
        r("GET", "/emails/{email_id}", self.h_get_email)
        r("POST", "/templates", self.h_create_template)
        r("GET", "/templates", self.h_list_templates)
        r("GET", "/templates/{template_id}", self.h_get_template)
        r("PUT", "/templates/{template_id}", self.h_update_template)
        r("DELETE", "/templates/{template_id}", self.h_delete_template)
        r("POST", "/contacts", self.h_create_contact)
        r("GET", "/contacts", self.h_list_contacts)
        r("GET", "/contacts/{contact_id}", self.h_get_contact)
        r("PUT", "/contacts/{contact_id}", self.h_update_contact)
        r("DELETE", "/contacts/{contact_id}", self.h_delete_contact)
        r("POST", "/campaigns", self.h_create_campaign)
        r("GET", "/campaigns", self.h_list_campaigns)
        r("GET", "/campaigns/{campaign_id}", self.h_get_campaign)
        r("PUT", "/campaigns/{campaign_id}", self.h_update_campaign)
        r("DELETE", "/campaigns/{campaign_id}", self.h_delete_campaign)
        r("POST", "/campaigns/{campaign_id}/send", self.h_send_campaign)
        r("GET", "/campaigns/{campaign_id}/stats", self.h_campaign_stats)
        r("POST", "/webhooks", self.h_create_webhook)
        r("GET", "/webhooks", self.h_list_webhooks)
        r("PUT", "/webhooks/{webhook_id}", self.h_update_webhook)
        r("DELETE", "/webhooks/{webhook_id}", self.h_delete_webhook)

    # -- envelope, auth, limits ----------------------------------------------------------------------------

    def error(self, status: int, message: Any, code: Any = None) -> Response:
        if self.current:  # {"code": <HTTP status>, "message": .., "data": []}; a bad key puts its text in data
            if status == 401:
                return JSONResponse({"code": 401, "message": "", "data": {"error": message}}, status_code=401)
            return JSONResponse({"code": status, "message": message, "data": []}, status_code=status)
        body: dict[str, Any] = {"success": False, "error": message}
        if code is not None:
            body["code"] = code
        return JSONResponse(body, status_code=status)

    def not_found(self, req: SandboxRequest) -> Response:
        return self.error(404, "Not found")

    def wrong_method(self, req: SandboxRequest, allowed: list[str]) -> Response:
        resp = self.error(405, "Method not allowed")
        resp.headers["Allow"] = ", ".join(sorted(set(allowed)))
        return resp

    def normalise_path(self, path: str) -> str:
        if path == BASE_PATH or path.startswith(BASE_PATH + "/"):
            path = path[len(BASE_PATH) :] or "/"
        return path.rstrip("/") or "/"

    @staticmethod
    def _key_of(req: SandboxRequest) -> str | None:
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def _acct(self, req: SandboxRequest, st: State) -> State:
        key = self._key_of(req)
        entry = st["keys"].get(key or "")
        if entry is None:  # before_request already refused it; defensive
            raise HandlerError(401, "Invalid API key", "INVALID_API_KEY")
        return st["accounts"][entry["account"]]

    def before_request(self, req: SandboxRequest, state: State) -> Response | None:
        upload = self.current and req.is_multipart and req.path == "/contacts/import"
        if len(req.body) > (MAX_UPLOAD_BODY if upload else MAX_JSON_BODY):
            return self.error(413, "Request body too large")
        key = self._key_of(req)
        entry = state.get("keys", {}).get(key or "")
        if entry is None:
            return self.error(401, "Invalid API key", "INVALID_API_KEY")
        acct = state["accounts"][entry["account"]]
        wait = self._hit_rate(state, key or "", self.plans[acct["plan"]])
        if wait is not None:
            resp = self.error(429, "Rate limit exceeded", "RATE_LIMIT_EXCEEDED")
            if not self.current:  # the newer doc set documents no Retry-After
                resp.headers["Retry-After"] = str(wait)
            return resp
        if self.current:
            return self.current_routes.before_request(req, entry)
        sends_body = req.method in ("POST", "PUT", "PATCH") and bool(req.body.strip())
        if sends_body and (not req.is_json or req.json_error or not isinstance(req.json_body, dict)):
            return self.error(400, "Invalid JSON body")
        return None

    def _hit_rate(self, state: State, key: str, plan: PlanLimits) -> int | None:
        """Fixed windows aligned on the epoch; returns whole seconds until the tripped window resets."""
        if not self.rate_limit_enabled:
            return None
        now = self.now(state).timestamp()
        slots = state.setdefault("__rate__", {}).setdefault(key, {})
        wait: float | None = None
        starts: dict[str, float] = {}
        windows = ((60, plan.per_minute),) if self.current else ((60, plan.per_minute), (3600, plan.per_hour))
        for window, limit in windows:
            start = math.floor(now / window) * window
            starts[str(window)] = start
            slot = slots.get(str(window))
            count = slot[1] if slot and slot[0] == start else 0
            if count >= limit:
                w = start + window - now
                wait = w if wait is None else max(wait, w)
        if wait is not None:
            return max(1, math.ceil(wait))
        for window, start in starts.items():
            slot = slots.get(window)
            count = slot[1] if slot and slot[0] == start else 0
            slots[window] = [start, count + 1]
        return None

    def _consume_quota(self, acct: State, now: float, recipients: int, *, notification: bool = False) -> None:
        """Count ``recipients`` against the plan's caps, or raise 429 INSUFFICIENT_QUOTA having counted none
        (the current dialect: 429 with its usage message only; its notification endpoint words it otherwise)."""
        plan = self.plans[acct["plan"]]
        usage = acct["usage"]
        dt = datetime.fromtimestamp(now, UTC)
        month, day = dt.strftime("%Y-%m"), dt.strftime("%Y-%m-%d")
        if usage["month"] != month:
            usage["month"], usage["monthly"] = month, 0
        if usage["day"] != day:
            usage["day"], usage["daily"] = day, 0
        for period, used, cap in (
            ("monthly", usage["monthly"], plan.monthly_emails),
            ("daily", usage["daily"], plan.daily_emails),
        ):
            if cap is not None and used + recipients > cap:
                if not self.current:
                    raise HandlerError(
                        429, f"Insufficient quota: {period} usage exceeded the limit", "INSUFFICIENT_QUOTA"
                    )
                if notification:
                    raise HandlerError(429, f"{period.capitalize()} email usage exceeded the limit")
                raise HandlerError(429, f"{period} usage exceeded the limit")
        usage["monthly"] += recipients
        usage["daily"] += recipients

    def _check_from(self, acct: State, sender: Any) -> None:
        if not valid_email(sender):
            raise HandlerError(400, "Invalid email address", "INVALID_EMAIL")
        domain = bare_address(sender).rsplit("@", 1)[1].lower()
        if domain not in acct["verified_domains"]:
            if self.current:  # [A] the newer doc set's wording for a refused sender domain
                raise HandlerError(403, f"From email domain not allowed: {domain} is not verified")
            raise HandlerError(403, f"Domain not verified: {domain}", "DOMAIN_NOT_VERIFIED")

    def _body(self, req: SandboxRequest) -> dict[str, Any]:
        return req.json_body if isinstance(req.json_body, dict) else {}

    def _paginate(
        self, req: SandboxRequest, items: list[Any], *, with_pages: bool = True
    ) -> tuple[list[Any], dict[str, int]]:
        page = _int_param(req.query.get("page"), 1)
        limit = _int_param(req.query.get("limit"), 20)
        page = page if page >= 1 else 1
        limit = 20 if limit < 1 else min(limit, 100)
        total = len(items)
        pagination = {"page": page, "limit": limit, "total": total}
        if with_pages:
            pagination["pages"] = math.ceil(total / limit)
        return items[(page - 1) * limit : page * limit], pagination

    @staticmethod
    def _listing(data: list[Any], pagination: Mapping[str, int]) -> JSONResponse:
        return JSONResponse({"success": True, "data": data, "pagination": dict(pagination)})

    def _seq(self, state: State) -> int:
        return self.next_id(state, "seq")

    # -- verify --------------------------------------------------------------------------------------------

    def h_verify(self, req: SandboxRequest, st: State) -> Response:
        return JSONResponse({"uuid": st["keys"][self._key_of(req) or ""]["uuid"]})

    # -- contacts ------------------------------------------------------------------------------------------

    @staticmethod
    def _contact_view(c: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": c["id"],
            "email": c["email"],
            "name": c["name"],
            "attributes": dict(c["attributes"]),
            "tags": list(c["tags"]),
            "subscribed": c["subscribed"],
            "created_at": c["created_at"],
            "updated_at": c["updated_at"],
        }

    def _contact_fields(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "email" in body or creating:
            email = body.get("email")
            if creating and (email is None or email == ""):
                raise HandlerError(422, "The email field is required")
            if not valid_email(email) or "<" in str(email):
                raise HandlerError(400, "Invalid email address", "INVALID_EMAIL")
            out["email"] = str(email).strip()
        if "name" in body:
            if body["name"] is not None and not isinstance(body["name"], str):
                raise HandlerError(422, "The name field must be a string")
            out["name"] = body["name"] or ""
        if "attributes" in body:
            attrs = body["attributes"]
            if attrs is None:
                attrs = {}
            if not isinstance(attrs, dict) or any(isinstance(v, (dict, list)) for v in attrs.values()):
                raise HandlerError(422, "The attributes field must be an object of scalar values")
            out["attributes"] = dict(attrs)
        if "tags" in body:
            tags = body["tags"]
            if tags is None:
                tags = []
            if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
                raise HandlerError(422, "The tags field must be an array of tag names")
            seen: list[str] = []
            for t in tags:
                if t.strip() not in seen:
                    seen.append(t.strip())
            out["tags"] = seen
        if "subscribed" in body:
            if not isinstance(body["subscribed"], bool):
                raise HandlerError(422, "The subscribed field must be a boolean")
            out["subscribed"] = body["subscribed"]
        return out

    def _find_contact_by_email(self, acct: State, email: str) -> State | None:
        low = email.lower()
        for c in acct["contacts"].values():
            if c["email"].lower() == low:
                return c
        return None

    def _get_contact(self, acct: State, contact_id: str) -> State:
        c = acct["contacts"].get(contact_id)
        if c is None:
            raise HandlerError(404, "Contact not found", "CONTACT_NOT_FOUND")
        return c

    def _note_tags(self, acct: State, tags: Iterable[str], now: str) -> None:
        for t in tags:
            acct["tags"].setdefault(t, now)

    def h_create_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fields = self._contact_fields(self._body(req), creating=True)
        if self._find_contact_by_email(acct, fields["email"]) is not None:
            raise HandlerError(409, "Contact already exists")
        now = iso(self.now(st).timestamp())
        cid = f"contact_{self.uid(st, 'contact', 12)}"
        contact = {
            "id": cid,
            "email": fields["email"],
            "name": fields.get("name", ""),
            "attributes": fields.get("attributes", {}),
            "tags": fields.get("tags", []),
            "subscribed": fields.get("subscribed", True),
            "created_at": now,
            "updated_at": now,
            "seq": self._seq(st),
        }
        acct["contacts"][cid] = contact
        self._note_tags(acct, contact["tags"], now)
        return _ok({"id": cid, "email": contact["email"], "name": contact["name"], "created_at": now}, 201)

    def h_get_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        return _ok(self._contact_view(self._get_contact(acct, req.params["contact_id"])))

    def h_list_contacts(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = list(acct["contacts"].values())
        tag = req.query.get("tag")
        if tag:
            items = [c for c in items if tag in c["tags"]]
        sub = req.query.get("subscribed")
        if sub is not None and sub != "":
            if sub.lower() not in ("true", "false", "1", "0"):
                raise HandlerError(400, "Invalid subscribed filter: use true or false")
            want = sub.lower() in ("true", "1")
            items = [c for c in items if c["subscribed"] is want]
        search = (req.query.get("search") or "").strip().lower()
        if search:
            items = [c for c in items if search in c["email"].lower() or search in (c["name"] or "").lower()]
        items.sort(key=lambda c: (c["created_at"], c["seq"]), reverse=True)
        page, pagination = self._paginate(req, items)
        return self._listing([self._contact_view(c) for c in page], pagination)

    def h_update_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        contact = self._get_contact(acct, req.params["contact_id"])
        fields = self._contact_fields(self._body(req), creating=False)
        if "email" in fields:
            other = self._find_contact_by_email(acct, fields["email"])
            if other is not None and other["id"] != contact["id"]:
                raise HandlerError(409, "Email already taken by another contact")
        now = iso(self.now(st).timestamp())
        if fields.get("subscribed") is True and contact["subscribed"] is False:
            acct["resubscriptions"].append(
                {"contact_id": contact["id"], "email": contact["email"], "at": now, "key": self._key_of(req)}
            )
        contact.update(fields)
        contact["updated_at"] = now
        self._note_tags(acct, contact["tags"], now)
        return _ok(self._contact_view(contact))

    def h_delete_contact(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        contact = self._get_contact(acct, req.params["contact_id"])
        del acct["contacts"][contact["id"]]
        return _message("Contact deleted")

    # -- templates -----------------------------------------------------------------------------------------

    _TEMPLATE_FIELDS = ("name", "subject", "html", "text", "variables", "description")

    def _template_fields(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        if creating and not (isinstance(body.get("name"), str) and body["name"].strip()):
            raise HandlerError(422, "Invalid template: the name field is required", "INVALID_TEMPLATE")
        out: dict[str, Any] = {}
        for f in self._TEMPLATE_FIELDS:
            if f not in body:
                continue
            v = body[f]
            if f == "variables":
                if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
                    raise HandlerError(422, "Invalid template: variables must be an array of names", "INVALID_TEMPLATE")
                out[f] = list(v or [])
            elif f == "name":
                if not isinstance(v, str) or not v.strip():
                    raise HandlerError(422, "Invalid template: the name field is required", "INVALID_TEMPLATE")
                out[f] = v
            else:
                if v is not None and not isinstance(v, str):
                    raise HandlerError(422, f"Invalid template: {f} must be a string", "INVALID_TEMPLATE")
                out[f] = v
        return out

    def _get_template(self, acct: State, template_id: str) -> State:
        t = acct["templates"].get(template_id)
        if t is None:
            raise HandlerError(404, "Invalid template: template not found", "INVALID_TEMPLATE")
        return t

    @staticmethod
    def _template_view(t: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": t["id"],
            "name": t["name"],
            "subject": t.get("subject"),
            "html": t.get("html"),
            "text": t.get("text"),
            "variables": list(t.get("variables") or []),
            "created_at": t["created_at"],
        }

    def h_create_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fields = self._template_fields(self._body(req), creating=True)
        now = iso(self.now(st).timestamp())
        tid = f"tmpl_{self.uid(st, 'template', 12)}"
        acct["templates"][tid] = {"id": tid, **fields, "created_at": now, "updated_at": now, "seq": self._seq(st)}
        return _ok({"id": tid, "name": fields["name"], "created_at": now}, 201)

    def h_get_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        return _ok(self._template_view(self._get_template(acct, req.params["template_id"])))

    def h_list_templates(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = sorted(acct["templates"].values(), key=lambda t: (t["created_at"], t["seq"]), reverse=True)
        page, pagination = self._paginate(req, items, with_pages=False)
        return self._listing(
            [{"id": t["id"], "name": t["name"], "created_at": t["created_at"]} for t in page], pagination
        )

    def h_update_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._get_template(acct, req.params["template_id"])
        t.update(self._template_fields(self._body(req), creating=False))
        t["updated_at"] = iso(self.now(st).timestamp())
        return _ok(self._template_view(t))

    def h_delete_template(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        t = self._get_template(acct, req.params["template_id"])
        del acct["templates"][t["id"]]
        return _message("Template deleted")

    # -- emails --------------------------------------------------------------------------------------------

    @staticmethod
    def _address_list(body: Mapping[str, Any], name: str, *, required: bool) -> list[str]:
        value = body.get(name)
        if value is None or value == "" or value == []:
            if required:
                raise HandlerError(422, f"The {name} field is required")
            return []
        if name == "to" and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise HandlerError(422, f"The {name} field must be {'a string or ' if name == 'to' else ''}an array")
        return list(value)

    def h_send_email(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        body = self._body(req)
        to = self._address_list(body, "to", required=True)
        _required(body, "from", "subject")
        cc = self._address_list(body, "cc", required=False)
        bcc = self._address_list(body, "bcc", required=False)
        for addr in (*to, *cc, *bcc):
            if not valid_email(addr):
                raise HandlerError(400, f"Invalid email address: {addr}", "INVALID_EMAIL")
        reply_to = body.get("replyTo")
        if reply_to is not None and not valid_email(reply_to):
            raise HandlerError(400, "Invalid email address: replyTo", "INVALID_EMAIL")
        for f in ("subject", "html", "text"):
            if body.get(f) is not None and not isinstance(body[f], str):
                raise HandlerError(422, f"The {f} field must be a string")
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise HandlerError(422, "The tags field must be an array")
        self._check_from(acct, body["from"])
        now = self.now(st).timestamp()
        self._consume_quota(acct, now, len(to) + len(cc) + len(bcc))
        msg = self._new_message(
            st,
            acct,
            to=to,
            to_is_list=isinstance(body["to"], list),
            cc=cc,
            bcc=bcc,
            sender=body["from"],
            subject=body["subject"],
            html=body.get("html"),
            text=body.get("text"),
            reply_to=reply_to,
            tags=tags,
            campaign_id=None,
            created=now,
            process_at=now + 1,
        )
        return JSONResponse({"messageId": msg["message_id"]})

    def _new_message(
        self,
        st: State,
        acct: State,
        *,
        to: list[str],
        to_is_list: bool,
        cc: list[str],
        bcc: list[str],
        sender: str,
        subject: str,
        html: str | None,
        text: str | None,
        reply_to: str | None,
        tags: list[str],
        campaign_id: str | None,
        created: float,
        process_at: float,
    ) -> State:
        eid = f"email_{self.uid(st, 'email', 12)}"
        mid = self.uid(st, "message", 16)
        msg = {
            "id": eid,
            "num": self.next_id(st, "email-number"),  # the current dialect's integer id
            "message_id": mid,
            "to": to,
            "to_is_list": to_is_list,
            "cc": cc,
            "bcc": bcc,
            "from": sender,
            "subject": subject,
            "html": html,
            "text": text,
            "reply_to": reply_to,
            "tags": tags,
            "campaign_id": campaign_id,
            "status": "queued",
            "created_at": iso(created),
            "created_ts": created,
            "sent_at": None,
            "delivered_at": None,
            "bounced_at": None,
            "opened_at": None,
            "clicked_at": None,
            "bounced": False,
            "spam_reported": False,
            "unsubscribed": False,
            "seq": self._seq(st),
        }
        acct["emails"][eid] = msg
        acct["message_ids"][mid] = eid
        self._plan_outcome(st, acct, msg, process_at)
        return msg

    def _unit(self, *parts: Any) -> float:
        digest = hashlib.sha256(":".join(str(p) for p in (self.seed, *parts)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def _plan_outcome(self, st: State, acct: State, msg: State, tp: float) -> None:
        rcpt = msg["to"][0]
        local = bare_address(rcpt).split("@")[0].lower()
        rates = self.outcomes
        eid = msg["id"]
        if self.faults.rejects_email(bare_address(rcpt)):
            self._schedule(st, acct, tp, "email", eid, "failed")
            return
        self._schedule(st, acct, tp, "email", eid, "sent")
        delivered_at = tp + 4
        if "bounce" in local or self._unit("bounce", rcpt, eid) < rates.bounce:
            self._schedule(st, acct, delivered_at, "email", eid, "bounced")
            return
        self._schedule(st, acct, delivered_at, "email", eid, "delivered")
        clicked = "click" in local or self._unit("click", rcpt, eid) < rates.open * rates.click
        opened = clicked or "open" in local or self._unit("open", rcpt, eid) < rates.open
        last = delivered_at
        if opened:
            opened_at = delivered_at + 60 + math.floor(self._unit("open-at", eid) * 600)
            self._schedule(st, acct, opened_at, "email", eid, "opened")
            last = opened_at
            if clicked:
                clicked_at = opened_at + 30 + math.floor(self._unit("click-at", eid) * 120)
                self._schedule(st, acct, clicked_at, "email", eid, "clicked")
                last = clicked_at
        if "unsub" in local or self._unit("unsub", rcpt, eid) < rates.unsubscribe:
            self._schedule(st, acct, last + 120, "email", eid, "unsubscribed")
        if "spam" in local or self._unit("spam", rcpt, eid) < rates.spam:
            self._schedule(st, acct, delivered_at + 1200, "email", eid, "spam_reported")

    def _email_view(self, m: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
        to: Any = m["to"] if m["to_is_list"] else m["to"][0]
        view = {
            "id": m["id"],
            "to": to,
            "from": m["from"],
            "subject": m["subject"],
            "status": m["status"],
            "created_at": m["created_at"],
        }
        if full:
            view.update(
                delivered_at=m["delivered_at"],
                opened_at=m["opened_at"],
                clicked_at=m["clicked_at"],
                bounced=m["bounced"],
                spam_reported=m["spam_reported"],
                unsubscribed=m["unsubscribed"],
            )
        return view

    def h_get_email(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        ident = req.params["email_id"]
        msg = acct["emails"].get(ident) or acct["emails"].get(acct["message_ids"].get(ident, ""))
        if msg is None:
            raise HandlerError(404, "Email not found")
        return _ok(self._email_view(msg, full=True))

    def h_list_emails(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        q = req.query
        items = [m for m in acct["emails"].values() if m["campaign_id"] is None]
        status = q.get("status")
        if status:
            if status not in EMAIL_STATUSES:
                raise HandlerError(400, f"Invalid status filter: {status}")
            items = [m for m in items if m["status"] == status]
        sender = (q.get("from") or "").strip().lower()
        if sender:
            items = [m for m in items if bare_address(m["from"]).lower() == sender]
        rcpt = (q.get("to") or "").strip().lower()
        if rcpt:
            items = [m for m in items if any(bare_address(a).lower() == rcpt for a in m["to"])]
        tag = q.get("tag")
        if tag:
            items = [m for m in items if tag in m["tags"]]
        for name, keep in (("created_after", lambda ts, b: ts >= b), ("created_before", lambda ts, b: ts <= b)):
            raw = q.get(name)
            if raw:
                bound = parse_iso(raw)
                if bound is None:
                    raise HandlerError(400, f"Invalid {name}: use an ISO 8601 timestamp")
                items = [m for m in items if keep(m["created_ts"], bound)]
        sort = q.get("sort") or "created_at"
        order = (q.get("order") or "desc").lower()
        if sort not in ("created_at", "status"):
            raise HandlerError(400, f"Invalid sort field: {sort}")
        if order not in ("asc", "desc"):
            raise HandlerError(400, f"Invalid sort order: {order}")
        if sort == "status":
            items.sort(key=lambda m: (m["status"], m["created_ts"], m["seq"]), reverse=order == "desc")
        else:
            items.sort(key=lambda m: (m["created_ts"], m["seq"]), reverse=order == "desc")
        page, pagination = self._paginate(req, items)
        return self._listing([self._email_view(m, full=False) for m in page], pagination)

    # -- campaigns -----------------------------------------------------------------------------------------

    def _get_campaign(self, acct: State, campaign_id: str) -> State:
        c = acct["campaigns"].get(campaign_id)
        if c is None:
            raise HandlerError(404, "Campaign not found", "CAMPAIGN_NOT_FOUND")
        return c

    @staticmethod
    def _campaign_view(c: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": c["id"],
            "name": c["name"],
            "subject": c["subject"],
            "from": c["from"],
            "recipient_list": c["recipient_list"],
            "status": c["status"],
            "scheduled_at": c["scheduled_at"],
            "sent_at": c["sent_at"],
            "created_at": c["created_at"],
        }

    def _campaign_fields(self, acct: State, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        if creating:
            _required(body, "name", "subject", "html", "from", "recipient_list")
        out: dict[str, Any] = {}
        for f in ("name", "subject", "html", "text"):
            if f in body:
                v = body[f]
                if f != "text" and (not isinstance(v, str) or not v.strip()):
                    raise HandlerError(422, f"The {f} field is required")
                if f == "text" and v is not None and not isinstance(v, str):
                    raise HandlerError(422, "The text field must be a string")
                out[f] = v
        if "from" in body:
            self._check_from(acct, body["from"])
            out["from"] = body["from"]
        if "recipient_list" in body:
            rl = body["recipient_list"]
            ok = rl == "all_subscribers" or (isinstance(rl, str) and rl.startswith("tag:") and rl[4:].strip())
            if not ok:
                raise HandlerError(422, "Invalid recipient_list: use all_subscribers or tag:<name>")
            out["recipient_list"] = rl
        if "scheduled_at" in body:
            raw = body["scheduled_at"]
            if raw is None or raw == "":
                out["scheduled_at"] = None
            else:
                ts = parse_iso(raw)
                if ts is None:
                    raise HandlerError(422, "Invalid scheduled_at: use an ISO 8601 timestamp")
                out["scheduled_at"] = iso(ts)
        return out

    def _schedule_launch(self, st: State, acct: State, camp: State) -> None:
        ts = parse_iso(camp["scheduled_at"])
        if ts is not None:
            self._schedule(st, acct, ts, "launch", camp["id"], camp["scheduled_at"])

    def h_create_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fields = self._campaign_fields(acct, self._body(req), creating=True)
        now = iso(self.now(st).timestamp())
        cid = f"campaign_{self.uid(st, 'campaign', 12)}"
        camp = {
            "id": cid,
            "name": fields["name"],
            "subject": fields["subject"],
            "html": fields["html"],
            "text": fields.get("text"),
            "from": fields["from"],
            "recipient_list": fields["recipient_list"],
            "scheduled_at": fields.get("scheduled_at"),
            "status": "scheduled" if fields.get("scheduled_at") else "draft",
            "sent_at": None,
            "completed_at": None,
            "recipients": 0,
            "error": None,
            "created_at": now,
            "updated_at": now,
            "seq": self._seq(st),
        }
        acct["campaigns"][cid] = camp
        if camp["status"] == "scheduled":
            self._schedule_launch(st, acct, camp)
        return _ok({"id": cid, "name": camp["name"], "status": camp["status"], "created_at": now}, 201)

    def h_get_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        return _ok(self._campaign_view(self._get_campaign(acct, req.params["campaign_id"])))

    def h_list_campaigns(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = list(acct["campaigns"].values())
        status = req.query.get("status")
        if status:
            if status not in CAMPAIGN_STATUSES:
                raise HandlerError(400, f"Invalid status filter: {status}")
            items = [c for c in items if c["status"] == status]
        items.sort(key=lambda c: (c["created_at"], c["seq"]), reverse=True)
        page, pagination = self._paginate(req, items)
        return self._listing([self._campaign_view(c) for c in page], pagination)

    def h_update_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        camp = self._get_campaign(acct, req.params["campaign_id"])
        if camp["status"] not in ("draft", "scheduled"):
            raise HandlerError(422, f"Campaign cannot be updated in status {camp['status']}")
        fields = self._campaign_fields(acct, self._body(req), creating=False)
        camp.update(fields)
        camp["updated_at"] = iso(self.now(st).timestamp())
        if "scheduled_at" in fields:
            camp["status"] = "scheduled" if fields["scheduled_at"] else "draft"
            if camp["status"] == "scheduled":
                self._schedule_launch(st, acct, camp)
        return _ok(self._campaign_view(camp))

    def h_delete_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        camp = self._get_campaign(acct, req.params["campaign_id"])
        if camp["status"] not in ("draft", "scheduled"):
            raise HandlerError(422, f"Campaign cannot be deleted in status {camp['status']}")
        del acct["campaigns"][camp["id"]]
        return _message("Campaign deleted")

    def h_send_campaign(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        camp = self._get_campaign(acct, req.params["campaign_id"])
        if camp["status"] not in ("draft", "scheduled"):
            raise HandlerError(422, f"Campaign cannot be sent in status {camp['status']}")
        self._launch(st, acct, camp, self.now(st).timestamp())
        return _ok({"id": camp["id"], "status": camp["status"]})

    def _audience(self, acct: State, camp: Mapping[str, Any]) -> list[State]:
        contacts = [c for c in acct["contacts"].values() if c["subscribed"] is True]
        recipient_list = camp["recipient_list"]
        if camp.get("tag_ids"):  # current dialect: contacts carrying any of the campaign's tag ids
            wanted = set(camp["tag_ids"])
            contacts = [c for c in contacts if wanted.intersection(c["tags"])]
        elif recipient_list.startswith("tag:"):
            tag = recipient_list[4:].strip()
            contacts = [c for c in contacts if tag in c["tags"]]
        return sorted(contacts, key=lambda c: c["seq"])

    def _launch(self, st: State, acct: State, camp: State, at: float) -> None:
        """Move a campaign to ``sending``: snapshot subscribed recipients, take quota, queue the messages."""
        audience = self._audience(acct, camp)
        self._consume_quota(acct, at, len(audience))  # raises before anything changes
        camp["status"] = "sending"
        camp["sent_at"] = iso(at)
        camp["recipients"] = len(audience)
        for i, contact in enumerate(audience):
            self._new_message(
                st,
                acct,
                to=[contact["email"]],
                to_is_list=False,
                cc=[],
                bcc=[],
                sender=camp["from"],
                subject=camp["subject"],
                html=camp["html"],
                text=camp["text"],
                reply_to=None,
                tags=[],
                campaign_id=camp["id"],
                created=at,
                process_at=at + 1 + i // CAMPAIGN_SEND_RATE,
            )
        last = at + 1 + max(0, len(audience) - 1) // CAMPAIGN_SEND_RATE
        self._schedule(st, acct, last, "campaign_done", camp["id"], "")

    def _stats(self, acct: State, camp: Mapping[str, Any]) -> dict[str, Any]:
        msgs = [m for m in acct["emails"].values() if m["campaign_id"] == camp["id"]]
        delivered = sum(1 for m in msgs if m["delivered_at"] is not None)
        opened = sum(1 for m in msgs if m["opened_at"] is not None)
        clicked = sum(1 for m in msgs if m["clicked_at"] is not None)

        def rate(n: int) -> float:
            return round(n / delivered * 100, 1) if delivered else 0.0

        return {
            "id": camp["id"],
            "name": camp["name"],
            "sent": camp["recipients"],
            "delivered": delivered,
            "bounced": sum(1 for m in msgs if m["bounced"]),
            "opened": opened,
            "clicked": clicked,
            "unsubscribed": sum(1 for m in msgs if m["unsubscribed"]),
            "spam_reported": sum(1 for m in msgs if m["spam_reported"]),
            "open_rate": rate(opened),
            "click_rate": rate(clicked),
        }

    def h_campaign_stats(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        return _ok(self._stats(acct, self._get_campaign(acct, req.params["campaign_id"])))

    # -- webhooks ------------------------------------------------------------------------------------------

    def _webhook_fields(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        if creating:
            _required(body, "url", "events")
        out: dict[str, Any] = {}
        if "url" in body:
            url = body["url"]
            parts = urlsplit(url) if isinstance(url, str) else None
            ok = (
                parts is not None
                and bool(parts.hostname)
                and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname or "")))
            )
            if not ok:
                raise HandlerError(422, "Invalid url: webhooks need an https URL")
            out["url"] = url
        if "events" in body:
            ev = body["events"]
            if not isinstance(ev, list) or not ev or not all(isinstance(e, str) for e in ev):
                raise HandlerError(422, "The events field must be a non-empty array")
            unknown = [e for e in ev if e not in WEBHOOK_EVENTS]
            if unknown:
                raise HandlerError(422, f"Unknown event: {', '.join(unknown)}")
            out["events"] = list(dict.fromkeys(ev))
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise HandlerError(422, "The active field must be a boolean")
            out["active"] = body["active"]
        return out

    @staticmethod
    def _webhook_view(w: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": w["id"],
            "url": w["url"],
            "events": list(w["events"]),
            "active": w["active"],
            "created_at": w["created_at"],
        }

    def _get_webhook(self, acct: State, webhook_id: str) -> State:
        w = acct["webhooks"].get(webhook_id)
        if w is None:
            raise HandlerError(404, "Webhook not found")
        return w

    def h_create_webhook(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        fields = self._webhook_fields(self._body(req), creating=True)
        now = iso(self.now(st).timestamp())
        wid = f"wh_{self.uid(st, 'webhook', 12)}"
        secret = f"whsec_{self.uid(st, 'secret', 32)}"
        hook = {"id": wid, "active": True, **fields, "secret": secret, "created_at": now, "seq": self._seq(st)}
        acct["webhooks"][wid] = hook
        return _ok({**self._webhook_view(hook), "secret": secret}, 201)

    def h_list_webhooks(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        items = sorted(acct["webhooks"].values(), key=lambda w: (w["created_at"], w["seq"]), reverse=True)
        page, pagination = self._paginate(req, items)
        return self._listing([self._webhook_view(w) for w in page], pagination)

    def h_update_webhook(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        hook = self._get_webhook(acct, req.params["webhook_id"])
        hook.update(self._webhook_fields(self._body(req), creating=False))
        return _ok(self._webhook_view(hook))

    def h_delete_webhook(self, req: SandboxRequest, st: State) -> Response:
        acct = self._acct(req, st)
        hook = self._get_webhook(acct, req.params["webhook_id"])
        del acct["webhooks"][hook["id"]]
        return _message("Webhook deleted")

    # -- the timeline --------------------------------------------------------------------------------------

    def _schedule(self, st: State, acct: State, at: float, kind: str, ref: str, step: str) -> None:
        event = {"at": at, "seq": self._seq(st), "kind": kind, "ref": ref, "step": step}
        bisect.insort(acct["timeline"], event, key=lambda e: (e["at"], e["seq"]))

    def tick(self, state: State, now: datetime) -> None:
        now_ts = now.timestamp()
        for acct in state.get("accounts", {}).values():
            timeline = acct["timeline"]
            while timeline and timeline[0]["at"] <= now_ts:
                event = timeline.pop(0)
                self._apply(state, acct, event)

    def _apply(self, st: State, acct: State, ev: Mapping[str, Any]) -> None:
        kind, at = ev["kind"], ev["at"]
        if kind == "email":
            self._apply_email(st, acct, ev["ref"], ev["step"], at)
        elif kind == "launch":
            camp = acct["campaigns"].get(str(ev["ref"]))
            if camp is None or camp["status"] != "scheduled" or camp["scheduled_at"] != ev["step"]:
                return  # rescheduled, sent by hand or deleted since
            try:
                self._launch(st, acct, camp, at)
            except HandlerError as exc:
                camp["status"] = "failed"
                camp["error"] = str(exc.message)
        elif kind == "campaign_done":
            camp = acct["campaigns"].get(str(ev["ref"]))
            if camp is not None and camp["status"] == "sending":
                camp["status"] = "sent"
                camp["completed_at"] = iso(at)
        elif kind == "webhook_retry":
            self._attempt_delivery(st, acct, int(ev["ref"]), at)

    def _apply_email(self, st: State, acct: State, email_id: str, step: str, at: float) -> None:
        msg = acct["emails"].get(email_id)
        if msg is None:
            return
        when = iso(at)
        if step == "failed":
            msg["status"] = "failed"
            return
        if step == "sent":
            msg["status"], msg["sent_at"] = "sent", when
        elif step == "delivered":
            msg["status"], msg["delivered_at"] = "delivered", when
        elif step == "bounced":
            msg["status"], msg["bounced"], msg["bounced_at"] = "bounced", True, when
        elif step == "opened":
            msg["opened_at"] = when
        elif step == "clicked":
            msg["clicked_at"] = when
        elif step in ("unsubscribed", "spam_reported"):
            msg[step] = True
            for addr in msg["to"]:
                contact = self._find_contact_by_email(acct, bare_address(addr))
                if contact is not None and contact["subscribed"]:
                    contact["subscribed"] = False
                    contact["updated_at"] = when
        self._emit(st, acct, f"email.{step}", msg, at)

    def _emit(self, st: State, acct: State, event: str, msg: Mapping[str, Any], at: float) -> None:
        data: dict[str, Any] = {
            "email_id": msg["id"],
            "to": msg["to"] if msg["to_is_list"] else msg["to"][0],
            "from": msg["from"],
            "subject": msg["subject"],
            "status": msg["status"],
            f"{event.split('.', 1)[1]}_at": iso(at),
        }
        if msg["campaign_id"]:
            data["campaign_id"] = msg["campaign_id"]
        payload = {"event": event, "timestamp": iso(at), "data": data}
        body = json.dumps(payload, separators=(",", ":"))
        for hook in sorted(acct["webhooks"].values(), key=lambda w: w["seq"]):
            if not hook["active"] or event not in hook["events"]:
                continue
            delivery = {
                "id": len(acct["deliveries"]),
                "webhook_id": hook["id"],
                "url": hook["url"],
                "event": event,
                "body": body,
                "signature": sign_body(hook["secret"], body.encode()),
                "created_at": iso(at),
                "attempts": 0,
                "status": "recorded" if self.webhook_sender is None else "pending",
                "last_status": None,
            }
            acct["deliveries"].append(delivery)
            if self.webhook_sender is not None:
                self._attempt_delivery(st, acct, delivery["id"], at)

    def _attempt_delivery(self, st: State, acct: State, delivery_id: int, at: float) -> None:
        d = acct["deliveries"][delivery_id]
        if self.webhook_sender is None or d["status"] != "pending":
            return
        d["attempts"] += 1
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: d["signature"]}
        status = self.webhook_sender(d["url"], d["body"].encode(), headers)
        d["last_status"] = status
        if 200 <= status < 300:
            d["status"] = "delivered"
        elif d["attempts"] > len(WEBHOOK_RETRY_DELAYS_S):
            d["status"] = "failed"
        else:
            delay = WEBHOOK_RETRY_DELAYS_S[d["attempts"] - 1]
            self._schedule(st, acct, at + delay, "webhook_retry", str(delivery_id), "")

    # -- test hooks (``hook_<name>``; run through ``self.hook(name, **kw)`` or POST /__sandbox/hooks/<name>) --

    def _acct_for(self, st: State, key: str) -> State:
        entry = st["keys"].get(key)
        if entry is None:
            raise KeyError(f"unknown key {key!r}")
        return st["accounts"][entry["account"]]

    def hook_add_key(
        self,
        st: State,
        key: str,
        plan: str = "free",
        account: str | None = None,
        verified_domains: list[str] | None = None,
        scopes: list[str] | None = None,
        role: str = "owner",
    ) -> dict[str, Any]:
        """Create an API key; a new account (with ``plan`` and domains) unless ``account`` names one. ``scopes``
        (default ``["all"]``) and ``role`` (owner/admin/member) only matter in the current dialect."""
        if account is None or account not in st["accounts"]:
            account = account or f"acct_{self.uid(st, 'account', 8)}"
            self._add_account(st, account, plan=plan, domains=verified_domains or [DEMO_DOMAIN])
        try:
            self._add_key(st, key, account, scopes=scopes or ["all"], role=role)
        except ValueError as exc:
            raise KeyError(str(exc)) from None
        return {"account": account, "uuid": st["keys"][key]["uuid"]}

    def hook_set_review_rejects(self, st: State, phrases: list[str], key: str = DEMO_API_KEY) -> list[str]:
        """Current dialect: phrases that make the AI review refuse a campaign being scheduled or sent."""
        acct = self._acct_for(st, key)
        acct["review_rejects"] = [p.lower() for p in phrases]
        return list(acct["review_rejects"])

    def hook_set_plan(self, st: State, plan: str, key: str = DEMO_API_KEY) -> str:
        """Move the key's account to another plan."""
        if plan not in self.plans:
            raise KeyError(f"unknown plan {plan!r}")
        self._acct_for(st, key)["plan"] = plan
        return plan

    def hook_verify_domain(self, st: State, domain: str, key: str = DEMO_API_KEY, verified: bool = True) -> list[str]:
        """Add (or remove) a verified sender domain."""
        acct = self._acct_for(st, key)
        domains = set(acct["verified_domains"])
        (domains.add if verified else domains.discard)(domain.lower())
        acct["verified_domains"] = sorted(domains)
        return acct["verified_domains"]

    def hook_usage(self, st: State, key: str = DEMO_API_KEY) -> dict[str, Any]:
        """The account's email usage counters (month/day and counts)."""
        return dict(self._acct_for(st, key)["usage"])

    def hook_set_usage(
        self, st: State, key: str = DEMO_API_KEY, monthly: int | None = None, daily: int | None = None
    ) -> dict[str, Any]:
        """Set this month's / today's usage (to test quota exhaustion without sending thousands)."""
        acct = self._acct_for(st, key)
        dt = self.now(st)
        usage = acct["usage"]
        if usage["month"] != dt.strftime("%Y-%m"):
            usage["month"], usage["monthly"] = dt.strftime("%Y-%m"), 0
        if usage["day"] != dt.strftime("%Y-%m-%d"):
            usage["day"], usage["daily"] = dt.strftime("%Y-%m-%d"), 0
        if monthly is not None:
            usage["monthly"] = monthly
        if daily is not None:
            usage["daily"] = daily
        return dict(usage)

    def hook_resubscriptions(self, st: State, key: str = DEMO_API_KEY) -> list[dict[str, Any]]:
        """Every PUT that flipped a contact from ``subscribed=false`` back to true."""
        return [dict(r) for r in self._acct_for(st, key)["resubscriptions"]]

    def hook_webhook_deliveries(
        self, st: State, key: str = DEMO_API_KEY, event: str | None = None, webhook_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Signed webhook deliveries so far (raw ``body`` string, ``signature``, ``status``, ``attempts``)."""
        return [
            dict(d)
            for d in self._acct_for(st, key)["deliveries"]
            if (event is None or d["event"] == event) and (webhook_id is None or d["webhook_id"] == webhook_id)
        ]

    def hook_email_event(self, st: State, email_id: str, event: str, key: str = DEMO_API_KEY) -> dict[str, Any]:
        """Make ``event`` (opened, clicked, unsubscribed, spam_reported, bounced) happen now to a message."""
        acct = self._acct_for(st, key)
        step = event.removeprefix("email.")
        if step not in ("opened", "clicked", "unsubscribed", "spam_reported", "bounced", "delivered"):
            raise KeyError(f"unsupported event {event!r}")
        if email_id not in acct["emails"]:
            email_id = acct["message_ids"].get(email_id, email_id)
        if email_id not in acct["emails"]:
            raise KeyError(f"unknown email {email_id!r}")
        self._apply_email(st, acct, email_id, step, self.now(st).timestamp())
        return self._email_view(acct["emails"][email_id], full=True)

    def hook_messages(self, st: State, key: str = DEMO_API_KEY, campaign_id: str | None = None) -> list[dict[str, Any]]:
        """Every message (campaign messages included), with recipients and status, oldest first."""
        msgs = sorted(self._acct_for(st, key)["emails"].values(), key=lambda m: m["seq"])
        return [
            {"id": m["id"], "to": list(m["to"]), "status": m["status"], "campaign_id": m["campaign_id"]}
            for m in msgs
            if campaign_id is None or m["campaign_id"] == campaign_id
        ]


def prepare_state_dialect(state_path: str | os.PathLike[str], dialect: str | None) -> str:
    """The dialect a sandbox state file serves. A file that does not exist yet is created as a fresh demo
    account in ``dialect`` (default seed), so an embedded sandbox started on it later serves that dialect."""
    path = Path(state_path)
    if not path.exists():
        from espcore.sandbox.embedded import build_sandbox

        build_sandbox("litestartup", path, dialect=dialect or DEFAULT_DIALECT)
    try:
        recorded = json.loads(path.read_text("utf-8")).get("dialect")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return recorded if recorded in DIALECTS else DEFAULT_DIALECT
