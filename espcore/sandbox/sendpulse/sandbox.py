"""The SendPulse email-service emulator (see docs/providers.md).

One account per sandbox state. Times inside the state are Unix seconds on the sandbox clock; answers format them
as ``YYYY-MM-DD HH:MM:SS`` (UTC, the account's zone). Money is kept as decimal strings.
"""

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import httpx
from starlette.responses import HTMLResponse, JSONResponse, Response

from espcore.sandbox.base import FaultPlan, HandlerError, ProviderSandbox, SandboxRequest, State, StateStore
from espcore.sandbox.sendpulse import stats
from espcore.sandbox.sendpulse.codec import (
    as_int,
    as_list,
    b64_encode,
    b64_text,
    body_params,
    coerce_variable,
    decode_structured,
    fmt,
    invalid,
    is_valid_email,
    normalise_email,
    paging,
    parse_send_date,
)
from espcore.sandbox.sendpulse.constants import (
    BOOK_STATUS,
    CONTACT_STATUS,
    CURRENCY_ALIASES,
    MAILABLE,
    RATES,
    ROW_EFFECT,
    SUBSCRIBED,
    WEBHOOK_ACTIONS,
)

DEMO_CLIENT_ID = "sandbox-demo-client"
DEMO_CLIENT_SECRET = "sandbox-demo-secret"  # noqa: S105 - a public sandbox credential
DEMO_SENDER_EMAIL = "news@sandbox-demo.example"
DEMO_SENDER_NAME = "Sandbox Demo"
DEMO_USER_ID = 7043663

TOKEN_PATH = "/oauth/access_token"  # noqa: S105 - a path, not a secret
_JWT_HEAD = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9"
_HREF = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


DENIALS = {800: "Unauthorized action.", 3030303030: "Access denied! Please change your tariff plan"}


def ok(**extra: Any) -> JSONResponse:
    return JSONResponse({"result": True, **extra})


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise invalid(f"Invalid amount {value!r}") from None


def money_str(value: Decimal) -> str:
    """At least two decimals, at most four: ``9.36``, ``9.9956``."""
    q = value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    text = f"{q:.4f}"
    while text.endswith("0") and len(text.split(".")[1]) > 2:
        text = text[:-1]
    return text


def not_found(what: str, code: int) -> HandlerError:
    return HandlerError(404, what, code)


class SendPulseSandbox(ProviderSandbox):
    """A stateful SendPulse email-service API.

    Args beyond :class:`ProviderSandbox`:
        demo: put the demo account (``DEMO_CLIENT_ID``/``DEMO_CLIENT_SECRET``, an Active sender, templates, a USD
            balance and plan letters) into a fresh state.
        token_ttl: access-token lifetime in seconds (sandbox clock).
        per_second: requests per second per account (10); ``per_minute``/``per_day``: optional plan quotas.
        activation_delay: seconds a single opt-in contact stays ``0 New`` before turning ``1 Active``.
        moderation_delay: seconds a campaign of ``moderation_threshold`` or more recipients spends in status 1.
        copy_delay: seconds a campaign spends in status 13; send_duration: seconds from status 2 to 3.
        campaigns_per_hour / tests_per_hour: API create (791) and test-send quotas per rolling hour.
        price: price of one letter beyond the plan, in the account currency.
        rate_clock: seconds (monotonic) the rate windows run on; by default real time plus every ``advance()``.
            A benchmark on a simulated clock passes that clock here, so the windows run on the time its client
            paces by (and real time spent computing does not widen them).

    Settings live in the account state (``state["config"]``) so processes sharing a FileStore agree; values
    passed to the constructor overwrite the stored ones, and hooks (``set_delays``, ``set_price``...) change them.
    Rate windows run on real time plus every ``advance()``, so a frozen clock does not starve a paced client.

    Test hooks (``sandbox.hook(name, **kw)`` or ``POST /__sandbox/hooks/<name>`` with a JSON object and the admin
    token, ``headers=sandbox.admin_headers()``):
    ``create_client(client_id, client_secret)``, ``revoke_tokens()``, ``confirm_optin(book_id, email)``,
    ``sender_code(email)``, ``activate_sender(email, sender_name=None)``,
    ``set_balance(amount, currency=None, bonus=None)``, ``set_price(price)``,
    ``set_plan(emails_left=None, maximum_subscribers=None, tariff_name=None, finished_in_s=None)``,
    ``set_delays(**settings)`` (any ``state["config"]`` key), ``set_variable_type(book_id, variable, kind)``,
    ``force_outcome(email, code)``, ``add_segment(book_id, emails=None)``, ``webhook_batches()`` (drain the
    outbox; ``deliver_webhooks()`` POSTs it), ``deny(path, code=800, method=None)``, ``allow_all()``.
    """

    provider = "sendpulse"
    demo_credentials = {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}
    #: [A] SendPulse documents no body limit; bodies over 4 MiB are refused 413 in its error envelope
    max_body_bytes = 4 * 1024 * 1024
    #: a sender's activation code is a credential too (read it with the ``sender_code`` hook)
    secret_fields = ProviderSandbox.secret_fields | {"code"}

    def __init__(
        self,
        store: StateStore | None = None,
        *,
        faults: FaultPlan | None = None,
        seed: int = 0,
        rate_limit: bool = True,
        demo: bool = True,
        token_ttl: int | None = None,
        per_second: int = 10,
        per_minute: int | None = None,
        per_day: int | None = None,
        activation_delay: float | None = None,
        moderation_delay: float | None = None,
        moderation_threshold: int | None = None,
        copy_delay: float | None = None,
        send_duration: float | None = None,
        campaigns_per_hour: int | None = None,
        tests_per_hour: int | None = None,
        price: str | Decimal | None = None,
        rate_clock: Callable[[], float] | None = None,
    ) -> None:
        self.demo = demo
        self._rate_clock = rate_clock
        self.per_second = per_second
        self.per_minute = per_minute
        self.per_day = per_day
        self._rate_offset = 0.0
        overrides = {
            "token_ttl": token_ttl,
            "activation_delay": activation_delay,
            "moderation_delay": moderation_delay,
            "moderation_threshold": moderation_threshold,
            "copy_delay": copy_delay,
            "send_duration": send_duration,
            "campaigns_per_hour": campaigns_per_hour,
            "tests_per_hour": tests_per_hour,
        }
        self._overrides = {k: v for k, v in overrides.items() if v is not None}
        self._price = str(price) if price is not None else None
        super().__init__(store, faults=faults, seed=seed, rate_limit=rate_limit)
        with self.store.transaction() as st:
            self._apply_overrides(st)
            if demo and not st.get("demo_seeded"):
                self.seed_demo(st)

    def _apply_overrides(self, st: State) -> None:
        st.setdefault("config", {}).update(self._overrides)
        if self._price is not None:
            st["account"]["price"] = str(_dec(self._price))

    # -- state -------------------------------------------------------------------------------------------------

    def initial_state(self) -> State:
        st: State = {
            "config": {
                "token_ttl": 3600,
                "activation_delay": 0.0,
                "moderation_delay": 600.0,
                "moderation_threshold": 20,
                "copy_delay": 5.0,
                "send_duration": 60.0,
                "campaigns_per_hour": 4,
                "tests_per_hour": 20,
                "max_senders": 10,
            },
            "account": {
                "user_id": DEMO_USER_ID,
                "currency": "USD",
                "balance": "0",
                "bonus": "0",
                "price": "0.0044",
                "plan": {
                    "tariff_name": "Free",
                    "finished_time": None,
                    "emails_left": 0,
                    "maximum_subscribers": 500,
                },
            },
            "clients": {},
            "tokens": {},
            "books": {},
            "members": {},
            "activations": [],
            "senders": {},
            "templates": {},
            "blacklist": {},
            "campaigns": {},
            "running": [],
            "api_creates": [],
            "test_sends": [],
            "webhooks": {},
            "outbox": [],
            "segments": {},
            "forced_outcomes": {},
            "denied": [],
        }
        st["config"].update(self._overrides)
        if self._price is not None:
            st["account"]["price"] = str(_dec(self._price))
        return st

    def seed_suppressions(self, emails: Sequence[str], comment: str) -> None:
        """Through the API's own ``POST /blacklist``, as a user would."""
        from espcore.providers.sendpulse import SendPulseClient
        from espcore.sandbox.transport import InProcessTransport

        transport = InProcessTransport(self.app)
        client = SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "http://127.0.0.1", transport=transport)
        try:
            client.add_to_blacklist(list(emails), comment=comment)
        finally:
            client.close()
            transport.close()

    def reset(self, *, demo: bool | None = None) -> None:
        """A fresh account; with the demo account in it unless ``demo`` is False (default: the constructor's)."""
        super().reset(demo=self.demo if demo is None else demo)

    def seed_demo(self, state: State) -> None:
        now = self.now(state).timestamp()
        state["clients"][DEMO_CLIENT_ID] = {"secret": DEMO_CLIENT_SECRET}
        state["account"].update({"currency": "USD", "balance": "25.00", "bonus": "0.00"})
        state["account"]["plan"] = {
            "tariff_name": "Standard 2 500",
            "finished_time": now + 30 * 86400,
            "emails_left": 10000,
            "maximum_subscribers": 2500,
        }
        state["senders"][DEMO_SENDER_EMAIL] = {
            "name": DEMO_SENDER_NAME,
            "email": DEMO_SENDER_EMAIL,
            "status": "Active",
            "code": None,
            "code_sent_at": None,
        }
        self._new_template(
            state,
            name="Sandbox welcome",
            html="<html><body><h1>Welcome, {{name}}</h1><a href='https://example.com/welcome'>Start</a></body></html>",
            lang="en",
            owner="you",
        )
        self._new_template(
            state,
            name="Sandbox newsletter",
            html="<html><body><p>News</p><a href='https://example.com/news'>Read</a></body></html>",
            lang="en",
            owner="you",
        )
        self._new_template(
            state,
            name="Valentine's Day: sweet",
            html="<html><body><p>Sweet</p></body></html>",
            lang="en",
            owner="sendpulse",
            category="holiday",
        )
        state["demo_seeded"] = True

    # -- envelopes ----------------------------------------------------------------------------------------------

    def error(self, status: int, message: Any, code: Any = None) -> Response:
        return JSONResponse(
            {"message": message, "error_code": code if code is not None else status}, status_code=status
        )

    def not_found(self, req: SandboxRequest) -> Response:
        return self.error(404, "Not Found", 404)

    def crash(self) -> Response:
        """What SendPulse answers when it breaks: its HTML error page (kept raw by the client)."""
        return HTMLResponse("<html><body>Whoops, looks like something went wrong.</body></html>", status_code=500)

    def wrong_method(self, req: SandboxRequest, allowed: list[str]) -> Response:
        resp = self.error(405, "Method Not Allowed", 405)
        resp.headers["Allow"] = ", ".join(sorted(set(allowed)))
        return resp

    def normalise_path(self, path: str) -> str:
        path = re.sub(r"/{2,}", "/", path)
        if len(path) > 1:
            path = path.rstrip("/")
        return path or "/"

    # -- auth and rate limits -------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> datetime:
        self._rate_offset += max(0.0, seconds)
        return super().advance(seconds)

    def _rate_time(self) -> float:
        if self._rate_clock is not None:
            return self._rate_clock()
        return time.monotonic() + self._rate_offset

    def before_request(self, req: SandboxRequest, state: State) -> Response | None:
        if req.path == TOKEN_PATH:
            return None
        header = req.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        entry = state["tokens"].get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry["expires"] <= self.now(state).timestamp():
            return self.error(401, "Unauthorized!", 401)
        for rule in state.get("denied", []):
            if (not rule["method"] or rule["method"] == req.method) and re.search(rule["path"], req.path):
                return self.error(403, DENIALS[rule["code"]], rule["code"])
        if not self.rate_limit_enabled:
            return None
        key = f"account:{state['account']['user_id']}"
        now = self._rate_time()
        if self.windows.hit(key, now, {1.0: self.per_second}, record=False) is not None:
            return self.error(429, f"More than {self.per_second} requests per second", 2020202020)
        quotas: dict[float, int] = {}
        if self.per_minute:
            quotas[60.0] = self.per_minute
        if self.per_day:
            quotas[86400.0] = self.per_day
        if quotas and self.windows.hit(key, now, quotas, record=False) is not None:
            return self.error(429, "Requests quota of the tariff plan is exceeded", 429)
        self.windows.hit(key, now, {1.0: self.per_second, **quotas})
        return None

    def h_token(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        grant = p.get("grant_type")
        if grant != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "The authorization grant type is not supported by the authorization server.",
                    "message": "The authorization grant type is not supported by the authorization server.",
                },
                status_code=400,
            )
        client = st["clients"].get(str(p.get("client_id", "")))
        if client is None or client["secret"] != str(p.get("client_secret", "")):
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed",
                    "message": "Client authentication failed",
                },
                status_code=401,
            )
        n = self.next_id(st, "token")
        token = f"{_JWT_HEAD}.{hashlib.sha256(f'{self.seed}:token:{n}:{time.time_ns()}'.encode()).hexdigest()}"
        ttl = int(st["config"]["token_ttl"])
        st["tokens"][token] = {"client_id": p["client_id"], "expires": self.now(st).timestamp() + ttl}
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": ttl})

    # -- time ----------------------------------------------------------------------------------------------------

    def tick(self, state: State, now: datetime) -> None:
        ts = now.timestamp()
        tokens = state.get("tokens")
        if tokens:
            for tok in [t for t, e in tokens.items() if e["expires"] <= ts]:
                del tokens[tok]
        pending = state.get("activations")
        if pending:
            keep = []
            for due, book_id, email in pending:
                if due > ts:
                    keep.append([due, book_id, email])
                    continue
                row = state["members"].get(str(book_id), {}).get(email)
                if row is not None and row["status"] == 0:
                    row["status"] = 1
                elif row is not None and row.get("prev_status") == 0:
                    row["prev_status"] = 1  # activated while blacklisted: restored as Active
            state["activations"] = keep
        for cid in list(state.get("running", [])):
            camp = state["campaigns"].get(str(cid))
            if camp is None or self._advance_campaign(state, camp, ts):
                state["running"].remove(cid)

    # -- routes -----------------------------------------------------------------------------------------------------

    def register_routes(self) -> None:
        r = self.route
        r("POST", TOKEN_PATH, self.h_token)
        # address books
        r("GET", "/addressbooks", self.h_books)
        r("POST", "/addressbooks", self.h_book_create)
        r("GET", "/addressbooks/{id:int}", self.h_book_get)
        r("PUT", "/addressbooks/{id:int}", self.h_book_update)
        r("DELETE", "/addressbooks/{id:int}", self.h_book_delete)
        r("GET", "/addressbooks/{id:int}/variables", self.h_variables)
        r("GET", "/addressbooks/{id:int}/variables/{name}/{value}", self.h_variable_search)
        r("GET", "/addressbooks/{id:int}/emails/total", self.h_emails_total)
        r("POST", "/addressbooks/{id:int}/emails/unsubscribe", self.h_unsubscribe)
        r("POST", "/addressbooks/{id:int}/emails/variable", self.h_email_variable)
        r("GET", "/addressbooks/{id:int}/emails/{email}", self.h_book_email)
        r("GET", "/addressbooks/{id:int}/emails", self.h_emails)
        r("POST", "/addressbooks/{id:int}/emails", self.h_emails_add)
        r("DELETE", "/addressbooks/{id:int}/emails", self.h_emails_delete)
        r("GET", "/addressbooks/{id:int}/cost", self.h_cost)
        r("GET", "/addressbooks/{id:int}/campaigns", self.h_book_campaigns)
        # campaigns
        r("GET", "/campaigns", self.h_campaigns)
        r("POST", "/campaigns", self.h_campaign_create)
        r("GET", "/campaigns/{id:int}", self.h_campaign_get)
        r("PATCH", "/campaigns/{id:int}", self.h_campaign_patch)
        r("DELETE", "/campaigns/{id:int}", self.h_campaign_cancel)
        r("GET", "/campaigns/{id:int}/countries", self.h_campaign_countries)
        r("GET", "/campaigns/{id:int}/referrals", self.h_campaign_referrals)
        r("GET", "/campaigns/{id:int}/email/{email}", self.h_campaign_email)
        # templates
        r("POST", "/template", self.h_template_create)
        r("POST", "/template/edit/{tid}", self.h_template_edit)
        r("GET", "/template/{tid}", self.h_template_get)
        r("GET", "/templates", self.h_templates)
        r("GET", "/templates/template/slug/{slug}", self.h_template_by_slug)
        r("GET", "/templates/{lang}", self.h_templates)
        # senders
        r("GET", "/senders", self.h_senders)
        r("POST", "/senders", self.h_sender_add)
        r("DELETE", "/senders", self.h_sender_delete)
        r("GET", "/senders/{email}/code", self.h_sender_code_send)
        r("POST", "/senders/{email}/code", self.h_sender_code_check)
        # blacklist and addresses
        r("GET", "/blacklist", self.h_blacklist)
        r("POST", "/blacklist", self.h_blacklist_add)
        r("DELETE", "/blacklist", self.h_blacklist_remove)
        r("POST", "/emails/campaigns", self.h_emails_campaigns)
        r("POST", "/emails", self.h_emails_info)
        r("GET", "/emails/{email}", self.h_email_info)
        r("DELETE", "/emails/{email}", self.h_email_delete)
        r("GET", "/emails/{email}/details", self.h_email_details)
        r("GET", "/emails/{email}/campaigns", self.h_email_campaigns)
        # money
        r("GET", "/balance", self.h_balance)
        r("GET", "/balance/{currency}", self.h_balance)
        r("GET", "/user/balance/detail", self.h_balance_detail)
        # webhooks v2
        r("GET", "/v2/email-service/webhook", self.h_webhooks)
        r("POST", "/v2/email-service/webhook", self.h_webhook_create)
        r("GET", "/v2/email-service/webhook/{id:int}", self.h_webhook_get)
        r("PUT", "/v2/email-service/webhook/{id:int}", self.h_webhook_update)
        r("DELETE", "/v2/email-service/webhook/{id:int}", self.h_webhook_delete)

    # -- address books --------------------------------------------------------------------------------------------

    def _book(self, st: State, req: SandboxRequest) -> dict[str, Any]:
        book = st["books"].get(str(req.params["id"]))
        if book is None:
            raise not_found("Book not found", 213)
        return book

    def _rows(self, st: State, book_id: int | str) -> dict[str, dict[str, Any]]:
        return st["members"].setdefault(str(book_id), {})

    def _book_view(self, st: State, book: Mapping[str, Any]) -> dict[str, Any]:
        rows = self._rows(st, book["id"]).values()
        total = len(rows)
        active = sum(1 for r in rows if r["status"] == 1)
        return {
            "id": book["id"],
            "name": book["name"],
            "all_email_qty": total,
            "active_email_qty": active,
            "inactive_email_qty": total - active,
            "creationdate": fmt(book["created"]),
            "status": book["status"],
            "status_explain": BOOK_STATUS.get(book["status"], ""),
        }

    def _name_taken(self, st: State, name: str, except_id: int | None = None) -> bool:
        return any(b["name"] == name and b["id"] != except_id for b in st["books"].values())

    def h_books(self, req: SandboxRequest, st: State) -> Response:
        limit, offset = paging(req)
        books = sorted(st["books"].values(), key=lambda b: b["id"])[offset : offset + limit]
        return JSONResponse([self._book_view(st, b) for b in books])

    def h_book_create(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        if "bookName" not in p or p["bookName"] is None:
            raise invalid("Argument bookName missing")
        name = str(p["bookName"]).strip()
        if not name:
            raise invalid("Book name is empty", code=201)
        if self._name_taken(st, name):
            raise invalid("Name already in use", code=203)
        book_id = self.next_id(st, "book", start=422325)
        st["books"][str(book_id)] = {
            "id": book_id,
            "name": name,
            "created": self.now(st).timestamp(),
            "status": 0,
            "variables": {},
        }
        st["members"][str(book_id)] = {}
        return JSONResponse({"id": book_id})

    def h_book_get(self, req: SandboxRequest, st: State) -> Response:
        return JSONResponse([self._book_view(st, self._book(st, req))])

    def h_book_update(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        p = body_params(req)
        if "name" not in p or p["name"] is None:
            raise invalid("Argument name missing")
        name = str(p["name"]).strip()
        if not name:
            raise invalid("Book name is empty", code=201)
        if self._name_taken(st, name, except_id=book["id"]):
            raise invalid("Name already in use", code=203)
        book["name"] = name
        return ok()

    def h_book_delete(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        del st["books"][str(book["id"])]
        st["members"].pop(str(book["id"]), None)
        return ok()

    def h_variables(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        return JSONResponse([{"name": n, "type": t} for n, t in book["variables"].items()])

    def h_variable_search(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        name, value = req.params["name"], req.params["value"]
        out = [
            {"email": r["email"], "status": r["status"], "status_explain": CONTACT_STATUS.get(r["status"], "")}
            for r in self._rows(st, book["id"]).values()
            if name in r["variables"] and str(r["variables"][name]) == value
        ]
        return JSONResponse(out)

    # -- contacts -----------------------------------------------------------------------------------------------

    def _row_view(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "email": row["email"],
            "status": row["status"],
            "status_explain": CONTACT_STATUS.get(row["status"], ""),
            "phone": row.get("phone", ""),
            "variables": dict(row["variables"]) or [],
        }

    def _typed_vars(self, book: Mapping[str, Any], row: Mapping[str, Any]) -> list[dict[str, Any]]:
        types = book["variables"]
        return [{"name": n, "type": types.get(n, "string"), "value": v} for n, v in row["variables"].items()]

    def h_emails(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        limit, offset = paging(req)
        rows = list(self._rows(st, book["id"]).values())[offset : offset + limit]
        return JSONResponse([self._row_view(r) for r in rows])

    def h_emails_total(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        return JSONResponse({"total": len(self._rows(st, book["id"]))})

    def h_book_email(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        row = self._rows(st, book["id"]).get(normalise_email(req.params["email"]))
        if row is None:
            raise not_found("Email address not found", 502)
        return JSONResponse(
            {
                "email": row["email"],
                "abook_id": book["id"],
                "status": row["status"],
                "status_explain": CONTACT_STATUS.get(row["status"], ""),
                "variables": self._typed_vars(book, row),
            }
        )

    def _check_variables(
        self, book: dict[str, Any], variables: Any, message: str
    ) -> tuple[dict[str, Any], str | None, dict[str, str]]:
        """Validate variables against the book's types; return (values, phone, new variable types)."""
        variables = decode_structured(variables, "variables")
        if variables is None or variables == "":
            return {}, None, {}
        if isinstance(variables, list):
            pairs: list[tuple[str, Any]] = []
            for item in variables:
                if not isinstance(item, dict) or "name" not in item:
                    raise invalid(message)
                pairs.append((str(item["name"]), item.get("value")))
        elif isinstance(variables, dict):
            pairs = [(str(k), v) for k, v in variables.items()]
        else:
            raise invalid(message)
        values: dict[str, Any] = {}
        new_types: dict[str, str] = {}
        phone: str | None = None
        for name, value in pairs:
            if name.lower() == "phone":
                if isinstance(value, dict | list):
                    raise invalid(message)
                phone = "" if value is None else str(value)
                continue
            kind = book["variables"].get(name) or new_types.get(name) or "string"
            try:
                values[name] = coerce_variable(kind, value)
            except ValueError:
                raise invalid(message) from None
            if name not in book["variables"]:
                new_types[name] = "string"
        return values, phone, new_types

    def h_emails_add(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        p = body_params(req)
        if "emails" not in p or p["emails"] in (None, "", []):
            raise invalid("Argument emails missing")
        items = as_list(p["emails"], "emails")
        if not items:
            raise invalid("Argument emails missing")
        double = str(p.get("confirmation", "")).lower() == "force"
        if double:
            sender = st["senders"].get(normalise_email(p.get("sender_email", "")))
            if sender is None or sender["status"] != "Active":
                raise HandlerError(404, "Sender email is not confirmed", 1003)
        parsed: list[tuple[str, dict[str, Any], str | None]] = []
        new_types: dict[str, str] = {}
        for item in items:
            if isinstance(item, str):
                email, variables = item, None
            elif isinstance(item, dict) and "email" in item:
                email, variables = str(item["email"]), item.get("variables")
            else:
                raise invalid("Argument email is invalid")
            email = normalise_email(email)
            if not is_valid_email(email) or self.faults.rejects_email(email):
                raise invalid("Argument email is invalid")
            values, phone, types = self._check_variables(
                {"variables": {**book["variables"], **new_types}}, variables, "Argument emails.*.variables is invalid"
            )
            new_types.update(types)
            parsed.append((email, values, phone))
        # validated: apply
        book["variables"].update(new_types)
        rows = self._rows(st, book["id"])
        now = self.now(st).timestamp()
        delay = float(st["config"]["activation_delay"])
        for email, values, phone in parsed:
            row = rows.get(email)
            if row is not None:
                row["variables"].update(values)
                if phone is not None:
                    row["phone"] = phone
                continue
            status = 2 if double else 0
            row = {
                "email": email,
                "status": status,
                "variables": values,
                "phone": phone or "",
                "added": now,
                "source": "api",
            }
            if email in st["blacklist"]:
                row["prev_status"], row["status"] = status, 8
            rows[email] = row
            if not double:
                st["activations"].append([now + delay, book["id"], email])
            if not p.get("disable_webhook"):
                self._emit(
                    st,
                    "new_emails",
                    {
                        "variables": dict(values) or [],
                        "email": email,
                        "source": "address book",
                        "book_id": str(book["id"]),
                    },
                )
        return ok()

    def _email_arg(self, p: Mapping[str, Any], limit_message: str, *, empty_code: int = 303) -> list[str]:
        if "emails" not in p or p["emails"] in (None, "", []):
            raise invalid("No emails", code=empty_code)
        items = as_list(p["emails"], "emails")
        if len(items) > 100:
            raise invalid(limit_message)
        out = []
        for item in items:
            value = item.get("email") if isinstance(item, dict) else item
            if value is not None:
                out.append(normalise_email(value))
        return out

    def h_emails_delete(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        emails = self._email_arg(body_params(req), "Limit is exceeded. Max count: 100")
        rows = self._rows(st, book["id"])
        for email in emails:
            if rows.pop(email, None) is not None:
                self._emit(st, "delete", {"book_id": str(book["id"]), "email": email})
        return ok()

    def h_unsubscribe(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        emails = self._email_arg(body_params(req), "Argument emails may not have more than 100 items")
        rows = self._rows(st, book["id"])
        targets = [rows[e] for e in emails if e in rows and rows[e]["status"] in SUBSCRIBED]
        if not targets:
            raise invalid("Active emails not found")
        for row in targets:
            row["status"] = 4
            self._emit(
                st,
                "unsubscribe",
                {
                    "task_id": "0",
                    "from_all": 0,
                    "email": row["email"],
                    "reason": None,
                    "book_id": str(book["id"]),
                    "categories": "",
                },
            )
        return ok()

    def h_email_variable(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        p = body_params(req)
        if not p.get("email"):
            raise invalid("Argument email missing")
        if "variables" not in p:
            raise invalid("Argument variables missing")
        row = self._rows(st, book["id"]).get(normalise_email(p["email"]))
        if row is None:
            raise not_found("Email address not found", 502)
        values, phone, types = self._check_variables(book, p["variables"], "Argument variables is invalid")
        book["variables"].update(types)
        row["variables"].update(values)
        if phone is not None:
            row["phone"] = phone
        return ok()

    # -- money ------------------------------------------------------------------------------------------------------

    def _plan_left(self, st: State) -> int:
        plan = st["account"]["plan"]
        finished = plan.get("finished_time")
        if finished is not None and finished <= self.now(st).timestamp():
            return 0
        return int(plan["emails_left"])

    def _quote(self, st: State, count: int) -> dict[str, Any]:
        tariff = min(count, self._plan_left(st))
        paid = count - tariff
        price = _dec(st["account"]["price"])
        cost = price * paid
        return {
            "count": count,
            "tariff": tariff,
            "paid": paid,
            "price": price,
            "cost": cost,
            "affordable": cost <= _dec(st["account"]["balance"]),
        }

    def _mailable(self, st: State, book_ids: Iterable[int], only: Iterable[str] | None = None) -> list[str]:
        seen: dict[str, None] = {}
        allowed = set(only) if only is not None else None
        for book_id in book_ids:
            for email, row in self._rows(st, book_id).items():
                if row["status"] in MAILABLE and email not in st["blacklist"] and (allowed is None or email in allowed):
                    seen.setdefault(email, None)
        return list(seen)

    def h_cost(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        if not self._rows(st, book["id"]):
            raise invalid("Addressbook is empty", code=211)
        q = self._quote(st, len(self._mailable(st, [book["id"]])))
        return JSONResponse(
            {
                "cur": st["account"]["currency"],
                "sent_emails_qty": q["count"],
                "overdraftAllEmailsPrice": float(q["cost"]),
                "addressesDeltaFromBalance": q["paid"],
                "addressesDeltaFromTariff": q["tariff"],
                "max_emails_per_task": int(st["account"]["plan"]["maximum_subscribers"]),
                "result": bool(q["affordable"]),
            }
        )

    def h_balance(self, req: SandboxRequest, st: State) -> Response:
        acct = st["account"]
        balance = _dec(acct["balance"])
        currency = acct["currency"]
        wanted = req.params.get("currency")
        if wanted:
            code = wanted.upper()
            code = CURRENCY_ALIASES.get(code, code)
            if code not in RATES:
                raise invalid("Currency not found", code=422)
            balance = balance / _dec(RATES[currency]) * _dec(RATES[code])
            currency = code
        return JSONResponse({"currency": currency, "balance_currency": float(money_str(balance))})

    def h_balance_detail(self, req: SandboxRequest, st: State) -> Response:
        acct = st["account"]
        plan = acct["plan"]
        subscribers = {e for rows in st["members"].values() for e in rows}
        return JSONResponse(
            {
                "balance": {
                    "main": money_str(_dec(acct["balance"])),
                    "bonus": money_str(_dec(acct["bonus"])),
                    "currency": acct["currency"],
                },
                "email": {
                    "tariff_name": plan["tariff_name"],
                    "finished_time": fmt(plan.get("finished_time")) or None,
                    "emails_left": self._plan_left(st),
                    "maximum_subscribers": int(plan["maximum_subscribers"]),
                    "current_subscribers": len(subscribers),
                },
                "smtp": {"tariff_name": "SMTP Free", "end_date": None, "auto_renew": 0},
                "push": {"tariff_name": "Push Free", "end_date": None, "auto_renew": 0},
            }
        )

    # -- campaigns --------------------------------------------------------------------------------------------------

    def _campaign(self, st: State, req: SandboxRequest) -> dict[str, Any]:
        camp = st["campaigns"].get(str(req.params["id"]))
        if camp is None:
            raise not_found("Campaign not found", 802)
        return camp

    def _resolve_template(self, st: State, ref: Any) -> dict[str, Any]:
        text = str(ref).strip().lower()
        for tpl in st["templates"].values():
            if str(tpl["real_id"]) == text or tpl["id"] == text:
                return tpl
        raise not_found("Template not found", 290)

    def _active_sender(self, st: State, email: Any) -> dict[str, Any]:
        sender = st["senders"].get(normalise_email(email))
        if sender is None or sender["status"] != "Active":
            raise invalid("Sender is not valid", code=10)
        return sender

    def _send_date(self, st: State, value: Any) -> float:
        try:
            when = parse_send_date(value)
        except ValueError:
            raise invalid("Invalid send_date: expected YYYY-MM-DD HH:MM:SS", code=799) from None
        if when < self.now(st).replace(microsecond=0):
            raise invalid("send_date may not be in the past", code=799)
        return when.timestamp()

    def _body_fields(self, st: State, p: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if p.get("body") not in (None, ""):
            out["body"] = b64_text(p["body"], "body")
            out["template_real_id"] = None
        elif p.get("template_id") not in (None, ""):
            tpl = self._resolve_template(st, p["template_id"])
            out["body"] = tpl["body"]
            out["template_real_id"] = tpl["real_id"]
        if p.get("body_amp") not in (None, ""):
            out["body_amp"] = b64_text(p["body_amp"], "body_amp")
        return out

    def _test_emails(self, st: State, value: Any) -> list[str]:
        emails = [normalise_email(e) for e in as_list(value, "send_test_only")]
        if not emails or len(emails) > 3:
            raise invalid("Argument send_test_only may not have more than 3 items")
        if any(not is_valid_email(e) for e in emails):
            raise invalid("Argument send_test_only is invalid")
        now = self.now(st).timestamp()
        st["test_sends"] = [t for t in st["test_sends"] if t > now - 3600]
        if len(st["test_sends"]) >= int(st["config"]["tests_per_hour"]):
            raise invalid("Test sends are limited to 20 an hour", code=792)
        return emails

    def _list_ids(self, st: State, value: Any) -> list[int]:
        raw = decode_structured(value, "list_id")
        items = raw if isinstance(raw, list) else [raw]
        if not items or len(items) > 10:
            raise invalid("Argument list_id may not have more than 10 items", code=722)
        ids = []
        for item in items:
            book_id = as_int(item)
            if book_id is None:
                raise invalid("Argument list_id is invalid", code=722)
            if str(book_id) not in st["books"]:
                raise not_found("Book not found", 703)
            ids.append(book_id)
        return ids

    def h_campaign_create(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        now = self.now(st).timestamp()
        if not p.get("sender_name"):
            raise invalid("Sender name is empty", code=901)
        if not p.get("sender_email"):
            raise invalid("Sender email is empty", code=903)
        if not p.get("subject"):
            raise invalid("Subject is empty", code=701)
        body = self._body_fields(st, p)
        if "body" not in body:
            raise invalid("Letter body is empty", code=720)
        segment = None
        if p.get("list_id") not in (None, "", []):
            list_ids = self._list_ids(st, p["list_id"])
        elif p.get("segment_id") not in (None, ""):
            segment = st["segments"].get(str(as_int(p["segment_id"])))
            if segment is None:
                raise not_found("Segment not found", 13)
            list_ids = [segment["book_id"]]
        else:
            raise invalid("Address book is not specified", code=721)
        sender = self._active_sender(st, p["sender_email"])
        send_at = self._send_date(st, p["send_date"]) if p.get("send_date") not in (None, "") else None
        attachments = self._attachments(p.get("attachments"), p.get("attachments_binary"))
        is_draft = str(p.get("type", "")).lower() == "draft"
        tests = self._test_emails(st, p["send_test_only"]) if p.get("send_test_only") not in (None, "", []) else None
        kind = "test" if tests else "draft" if is_draft else "campaign"
        if kind != "test":
            st["api_creates"] = [t for t in st["api_creates"] if t > now - 3600]
            if len(st["api_creates"]) >= int(st["config"]["campaigns_per_hour"]):
                raise invalid(
                    f"You can create no more than {st['config']['campaigns_per_hour']} campaigns per hour",
                    code=791,
                )
        if tests:
            recipients = tests
        else:
            source_rows = sum(len(self._rows(st, b)) for b in list_ids)
            if source_rows == 0 and kind == "campaign":
                raise invalid("No recipients", code=11)
            recipients = self._mailable(st, list_ids, segment.get("emails") if segment else None)
        q = self._quote(st, 0 if kind == "test" else len(recipients))  # a draft is quoted, never charged
        if kind == "campaign":
            if len(recipients) > int(st["account"]["plan"]["maximum_subscribers"]):
                raise HandlerError(403, "Recipients exceed the limit of your tariff plan", 708)
            if not q["affordable"]:
                raise HandlerError(403, "Not enough money on your balance", 707)
        # all checks passed: create
        cid = self.next_id(st, "campaign", start=10113867)
        camp: dict[str, Any] = {
            "id": cid,
            "name": str(p.get("name") or f"Campaign {fmt(now)}"),
            "sender_name": str(p["sender_name"]),
            "sender_email": sender["email"],
            "subject": str(p["subject"]),
            "body": body["body"],
            "body_amp": body.get("body_amp"),
            "template_real_id": body.get("template_real_id"),
            "attachments": attachments,
            "list_ids": list_ids,
            "segment_id": as_int(p.get("segment_id")) if segment else None,
            "kind": kind,
            "status": {"test": 4, "draft": 26}.get(kind, 13),
            "created": now,
            "send_at": send_at,
            "start": None,
            "recipients": recipients,
            "tariff_qty": q["tariff"],
            "paid_qty": q["paid"],
            "price": str(q["price"]),
            "cost": str(q["cost"]),
            "currency": st["account"]["currency"],
            "plan": None,
            "processed_until": None,
            "tests": [],
        }
        st["campaigns"][str(cid)] = camp
        if kind != "test":
            st["api_creates"].append(now)
        else:
            st["test_sends"].append(now)
            camp["tests"].append({"emails": tests, "at": now})
        if kind == "campaign":
            self._charge(st, q["tariff"], q["cost"])
        if kind != "draft":
            st["running"].append(cid)
        return JSONResponse(
            {
                "id": cid,
                "status": camp["status"],
                "count": len(recipients),
                "tariff_email_qty": q["tariff"],
                "paid_email_qty": q["paid"],
                "overdraft_price": str(q["price"]),
                "ovedraft_currency": camp["currency"],
            }
        )

    def _attachments(self, text: Any, binary: Any) -> dict[str, str]:
        """``attachments`` {name: content} plus ``attachments_binary`` {name: base64}; five files at most."""
        out: dict[str, str] = {}
        for name, value in (("attachments", text), ("attachments_binary", binary)):
            if value in (None, "", []):
                continue
            value = decode_structured(value, name)
            if not isinstance(value, dict):
                raise invalid(f"Argument {name} must be array")
            for key, content in value.items():
                if name == "attachments_binary":
                    _check_b64(content, name)
                out[str(key)] = str(content)
        if len(out) > 5:
            raise invalid("Argument attachments may not have more than 5 items")
        return out

    def _charge(self, st: State, tariff: int, cost: Decimal, *, refund: bool = False) -> None:
        sign = -1 if refund else 1
        plan = st["account"]["plan"]
        plan["emails_left"] = int(plan["emails_left"]) - sign * tariff
        st["account"]["balance"] = str(_dec(st["account"]["balance"]) - sign * cost)

    def _campaign_view(self, st: State, camp: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "sender_name": camp["sender_name"],
            "sender_email": camp["sender_email"],
            "subject": camp["subject"],
        }
        if full:
            message["body"] = camp["body"]
        message["attachments"] = ", ".join(camp["attachments"])
        message["list_id"] = camp["list_ids"][0] if len(camp["list_ids"]) == 1 else camp["list_ids"]
        out: dict[str, Any] = {
            "id": camp["id"],
            "name": camp["name"],
            "message": message,
            "status": camp["status"],
            "all_email_qty": len(camp["recipients"]),
            "tariff_email_qty": camp["tariff_qty"],
            "paid_email_qty": camp["paid_qty"],
            "overdraft_price": camp["price"],
            "overdraft_currency": camp["currency"],
        }
        if full:
            out["statistics"] = stats.statistics(camp["plan"] or [], self.now(st).timestamp())
        out["send_date"] = fmt(camp["start"] or camp["send_at"] or camp["created"])
        if full:
            digest = hashlib.sha256(f"{self.seed}:perm:{camp['id']}".encode()).hexdigest()[:5]
            out["permalink"] = f"http://archive.sendpulse.com/{digest}/"
        return out

    def h_campaigns(self, req: SandboxRequest, st: State) -> Response:
        limit, offset = paging(req)
        camps = sorted(st["campaigns"].values(), key=lambda c: c["id"])[offset : offset + limit]
        return JSONResponse([self._campaign_view(st, c, full=False) for c in camps])

    def h_campaign_get(self, req: SandboxRequest, st: State) -> Response:
        return JSONResponse(self._campaign_view(st, self._campaign(st, req), full=True))

    def h_book_campaigns(self, req: SandboxRequest, st: State) -> Response:
        book = self._book(st, req)
        limit, offset = paging(req)
        camps = [c for c in sorted(st["campaigns"].values(), key=lambda c: c["id"]) if book["id"] in c["list_ids"]]
        return JSONResponse(
            [{"task_id": c["id"], "task_name": c["name"], "task_status": c["status"]} for c in camps][
                offset : offset + limit
            ]
        )

    def h_campaign_patch(self, req: SandboxRequest, st: State) -> Response:
        camp = self._campaign(st, req)
        p = body_params(req)
        if camp["status"] not in (13, 1, 26):
            raise HandlerError(403, "Unauthorized action.", 800)
        changes: dict[str, Any] = {}
        for key in ("name", "sender_name", "subject"):
            if p.get(key) not in (None, ""):
                changes[key] = str(p[key])
        if p.get("sender_email") not in (None, ""):
            changes["sender_email"] = self._active_sender(st, p["sender_email"])["email"]
        body = self._body_fields(st, p)
        if p.get("send_date") not in (None, ""):
            changes["send_at"] = self._send_date(st, p["send_date"])
        tests = self._test_emails(st, p["send_test_only"]) if p.get("send_test_only") not in (None, "", []) else None
        camp.update(changes)
        for key in ("body", "template_real_id", "body_amp"):
            if key in body:
                camp[key] = body[key]
        if tests:
            now = self.now(st).timestamp()
            st["test_sends"].append(now)
            camp["tests"].append({"emails": tests, "at": now})
        return ok(id=camp["id"])

    def h_campaign_cancel(self, req: SandboxRequest, st: State) -> Response:
        camp = self._campaign(st, req)
        if camp["status"] not in (13, 1, 26, 0):
            raise invalid("Campaign cannot be cancelled", code=602)
        if camp["kind"] == "campaign":
            self._charge(st, camp["tariff_qty"], _dec(camp["cost"]), refund=True)
            camp["tariff_qty"], camp["paid_qty"], camp["cost"] = 0, 0, "0"
        camp["status"] = 16
        if camp["id"] in st["running"]:
            st["running"].remove(camp["id"])
        return ok()

    def _plan(self, camp: Mapping[str, Any]) -> list[dict[str, Any]]:
        return camp["plan"] or []

    def h_campaign_countries(self, req: SandboxRequest, st: State) -> Response:
        camp = self._campaign(st, req)
        return JSONResponse(stats.countries(self._plan(camp), self.now(st).timestamp()))

    def h_campaign_referrals(self, req: SandboxRequest, st: State) -> Response:
        camp = self._campaign(st, req)
        return JSONResponse(stats.referrals(self._plan(camp), self.now(st).timestamp()))

    def h_campaign_email(self, req: SandboxRequest, st: State) -> Response:
        camp = self._campaign(st, req)
        email = normalise_email(req.params["email"])
        if email not in camp["recipients"]:
            raise not_found("Email address not found", 502)
        now = self.now(st).timestamp()
        rec = next((r for r in self._plan(camp) if r["email"] == email), None)
        code = stats.current_code(rec, now) if rec else 0
        sent = stats.sent_at(rec, now) if rec else None
        return JSONResponse(
            {
                "sent_date": fmt(sent) or None,
                "global_status": code,
                "global_status_explain": stats.RECIPIENT_STATUS.get(code, ""),
            }
        )

    def _advance_campaign(self, st: State, camp: dict[str, Any], now: float) -> bool:
        """Move a campaign along its lifecycle up to ``now``; True when nothing is left to do."""
        cfg = st["config"]
        if camp["kind"] == "draft" or camp["status"] == 16:
            return True
        copy_done = camp["created"] + float(cfg["copy_delay"])
        if camp["kind"] == "test":
            if now >= copy_done:
                camp["status"] = 8
                return True
            return False
        count = len(camp["recipients"])
        if camp["start"] is None:
            if now < copy_done:
                return False
            if count == 0:
                self._set_status(st, camp, 12)
                return True
            moderated = count >= int(cfg["moderation_threshold"])
            mod_done = copy_done + (float(cfg["moderation_delay"]) if moderated else 0.0)
            start = max(mod_done, camp["send_at"] or 0.0)
            if now < start:
                if camp["status"] != 1:
                    self._set_status(st, camp, 1, "on_moderation" if moderated else "approve")
                return False
            self._start_sending(st, camp, start)
        started = float(camp["start"] or 0.0)
        if camp["status"] == 2 and now >= started + float(cfg["send_duration"]):
            self._set_status(st, camp, 3)
        return self._process_steps(st, camp, now)

    def _set_status(self, st: State, camp: dict[str, Any], status: int, hook_status: str | None = None) -> None:
        camp["status"] = status
        if hook_status:
            explain = {
                "on_moderation": "Your campaign on moderation",
                "approve": "Approved and will be sent",
                "sending": "Your campaign in sending queue",
            }[hook_status]
            self._emit(
                st,
                "task_status_update",
                {
                    "status": hook_status,
                    "status_explain": explain,
                    "task_id": str(camp["id"]),
                    "book_id": str(camp["list_ids"][0]),
                },
            )

    def _start_sending(self, st: State, camp: dict[str, Any], start: float) -> None:
        camp["start"] = start
        self._set_status(st, camp, 2, "sending")
        links = _HREF.findall(camp["body"]) or ["https://example.com/"]
        n = len(camp["recipients"])
        spread = float(st["config"]["send_duration"])
        forced = st["forced_outcomes"]
        camp["plan"] = [
            stats.plan_recipient(self.seed, camp["id"], email, start + spread * i / max(n, 1), links, forced.get(email))
            for i, email in enumerate(camp["recipients"])
        ]
        camp["processed_until"] = start - 1.0
        camp["last_step"] = max((ts for r in camp["plan"] for _, ts in r["steps"]), default=start)

    def _process_steps(self, st: State, camp: dict[str, Any], now: float) -> bool:
        """Apply recipient outcomes that fell due since the last tick to book rows and the webhook outbox."""
        since = camp["processed_until"]
        for rec in camp["plan"] or []:
            for code, ts in rec["steps"]:
                if since < ts <= now:
                    self._recipient_event(st, camp, rec, int(code), ts)
        camp["processed_until"] = now
        return camp["status"] == 3 and now >= camp["last_step"]

    def _recipient_event(
        self, st: State, camp: Mapping[str, Any], rec: Mapping[str, Any], code: int, ts: float
    ) -> None:
        email = rec["email"]
        effect = ROW_EFFECT.get(code)
        if effect is not None:
            for book_id in camp["list_ids"]:
                row = self._rows(st, book_id).get(email)
                if row is not None and row["status"] in MAILABLE:
                    row["status"] = effect
        base = {"task_id": str(camp["id"]), "email": email}
        if code == 3:
            self._emit(st, "open", {**base, **_device(rec)}, ts)
        elif code == 4:
            self._emit(st, "redirect", {**base, **_device(rec), "link_url": rec.get("link"), "link_id": 1}, ts)
        elif code == 11:
            self._emit(st, "spam", base, ts)
        elif code in (5, 15):
            self._emit(
                st,
                "unsubscribe",
                {
                    **base,
                    "from_all": 0,
                    "reason": None,
                    "book_id": str(camp["list_ids"][0]),
                    "categories": "",
                },
                ts,
            )

    # -- templates --------------------------------------------------------------------------------------------------

    def _template_hex(self, real_id: int, version: int) -> str:
        return hashlib.sha256(f"{self.seed}:template:{real_id}:{version}".encode()).hexdigest()[:32]

    def _new_template(
        self, st: State, *, name: str, html: str, lang: str, owner: str = "you", category: str = ""
    ) -> dict[str, Any]:
        real_id = self.next_id(st, "template", start=1042220)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or f"template-{real_id}"
        tpl = {
            "real_id": real_id,
            "version": 1,
            "id": self._template_hex(real_id, 1),
            "lang": lang,
            "name": name,
            "name_slug": slug,
            "created": self.now(st).timestamp(),
            "category": category,
            "owner": owner,
            "body": html,
        }
        st["templates"][str(real_id)] = tpl
        return tpl

    def _template_view(self, tpl: Mapping[str, Any], *, body: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": tpl["id"],
            "real_id": tpl["real_id"],
            "lang": tpl["lang"],
            "name": tpl["name"],
            "name_slug": tpl["name_slug"],
            "created": fmt(tpl["created"]),
            "full_description": None,
            "category": tpl["category"],
            "category_info": [],
            "tags": [],
            "owner": tpl["owner"],
            "preview": f"https://login.sendpulse.com/files/emailservice/templates/preview/{tpl['id']}.png",
        }
        if body:
            out["body"] = b64_encode(tpl["body"])
        return out

    def h_template_create(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        if p.get("body") in (None, ""):
            raise invalid("Argument body missing")
        html = b64_text(p["body"], "body")
        if not html.strip():
            raise invalid("Template processing error", code=2900)
        name = str(p.get("name") or "").strip() or f"Template {self.now(st).strftime('%Y.%m.%d %H:%M:%S')}"
        if any(t["name"] == name and t["owner"] == "you" for t in st["templates"].values()):
            raise invalid("Template name already in use", code=573)
        tpl = self._new_template(st, name=name, html=html, lang=str(p.get("lang") or "en"))
        return ok(real_id=tpl["real_id"])

    def h_template_edit(self, req: SandboxRequest, st: State) -> Response:
        tpl = self._resolve_template(st, req.params["tid"])
        if tpl["owner"] != "you":
            raise HandlerError(403, "Unauthorized action.", 800)
        p = body_params(req)
        if p.get("body") in (None, ""):
            raise invalid("Argument body missing")
        html = b64_text(p["body"], "body")
        if not html.strip():
            raise invalid("Template processing error", code=2900)
        tpl["body"] = html
        if p.get("lang"):
            tpl["lang"] = str(p["lang"])
        tpl["version"] += 1
        tpl["id"] = self._template_hex(tpl["real_id"], tpl["version"])
        return ok()

    def h_template_get(self, req: SandboxRequest, st: State) -> Response:
        return JSONResponse(self._template_view(self._resolve_template(st, req.params["tid"]), body=True))

    def h_template_by_slug(self, req: SandboxRequest, st: State) -> Response:
        for tpl in st["templates"].values():
            if tpl["name_slug"] == req.params["slug"]:
                return JSONResponse(self._template_view(tpl, body=True))
        raise not_found("Template not found", 290)

    def h_templates(self, req: SandboxRequest, st: State) -> Response:
        limit, offset = paging(req)
        owner = req.query.get("owner")
        lang = req.params.get("lang")
        out = []
        for tpl in sorted(st["templates"].values(), key=lambda t: t["real_id"]):
            if owner == "me" and tpl["owner"] != "you":
                continue
            if owner == "sendpulse" and tpl["owner"] != "sendpulse":
                continue
            if lang and tpl["lang"] != lang:
                continue
            out.append(self._template_view(tpl, body=False))
        return JSONResponse(out[offset : offset + limit])

    # -- senders ------------------------------------------------------------------------------------------------

    def _new_code(self, st: State, email: str) -> str:
        n = self.next_id(st, "sender_code")
        return str(int(hashlib.sha256(f"{self.seed}:code:{email}:{n}".encode()).hexdigest(), 16) % 900000 + 100000)

    def h_senders(self, req: SandboxRequest, st: State) -> Response:
        return JSONResponse(
            [{"name": s["name"], "email": s["email"], "status": s["status"]} for s in st["senders"].values()]
        )

    def h_sender_add(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        email = normalise_email(p.get("email") or "")
        if not email:
            raise invalid("Sender email is empty", code=903)
        if not p.get("name"):
            raise invalid("Sender name is empty", code=901)
        if not is_valid_email(email):
            raise invalid("Email address has a bad syntax", code=906)
        if email in st["senders"]:
            raise invalid("Sender already exists", code=902)
        if len(st["senders"]) >= int(st["config"]["max_senders"]):
            raise invalid("Senders limit is exceeded", code=905)
        st["senders"][email] = {
            "name": str(p["name"]),
            "email": email,
            "status": "Requested activation",
            "code": self._new_code(st, email),
            "code_sent_at": self.now(st).timestamp(),
        }
        return ok()

    def h_sender_delete(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        email = normalise_email(p.get("email") or "")
        if not email:
            raise invalid("Sender email is empty", code=903)
        if email not in st["senders"]:
            raise not_found("Sender not found", 704)
        del st["senders"][email]
        return ok()

    def _sender(self, st: State, email: str) -> dict[str, Any]:
        sender = st["senders"].get(normalise_email(email))
        if sender is None:
            raise not_found("Sender not found", 704)
        return sender

    def h_sender_code_send(self, req: SandboxRequest, st: State) -> Response:
        sender = self._sender(st, req.params["email"])
        now = self.now(st).timestamp()
        if sender["status"] != "Active":
            sent = sender.get("code_sent_at")
            if sent is not None and now - sent < 15 * 60:
                raise invalid("Activation code was already sent: wait 15 minutes", code=1004)
            sender["code"] = self._new_code(st, sender["email"])
            sender["code_sent_at"] = now
        return ok(email=sender["email"])

    def h_sender_code_check(self, req: SandboxRequest, st: State) -> Response:
        sender = self._sender(st, req.params["email"])
        code = str(body_params(req).get("code") or "").strip()
        if not code:
            raise invalid("Activation code is missing", code=1104)
        if sender["status"] != "Active":
            if code != sender.get("code"):
                raise invalid("Sender confirmation failed", code=1005)
            sender["status"] = "Active"
            sender["code"] = None
        return ok(email=sender["email"])

    # -- blacklist and addresses ------------------------------------------------------------------------------

    def _b64_emails(self, req: SandboxRequest) -> tuple[list[str], dict[str, Any]]:
        p = body_params(req)
        if p.get("emails") in (None, ""):
            raise invalid("Argument emails missing")
        text = b64_text(p["emails"], "emails")
        emails = [normalise_email(e) for e in text.split(",") if e.strip()]
        if not emails or any(not is_valid_email(e) for e in emails):
            raise invalid("Argument emails is invalid", code=906)
        return emails, p

    def h_blacklist(self, req: SandboxRequest, st: State) -> Response:
        limit, offset = paging(req)
        return JSONResponse(list(st["blacklist"])[offset : offset + limit])

    def h_blacklist_add(self, req: SandboxRequest, st: State) -> Response:
        emails, p = self._b64_emails(req)
        now = self.now(st).timestamp()
        for email in emails:
            if email in st["blacklist"]:
                continue
            st["blacklist"][email] = {"comment": str(p.get("comment") or ""), "added": now}
            for rows in st["members"].values():
                row = rows.get(email)
                if row is not None and row["status"] != 8:
                    row["prev_status"], row["status"] = row["status"], 8
        return ok()

    def h_blacklist_remove(self, req: SandboxRequest, st: State) -> Response:
        emails, _ = self._b64_emails(req)
        for email in emails:
            if st["blacklist"].pop(email, None) is None:
                continue
            for rows in st["members"].values():
                row = rows.get(email)
                if row is not None and row["status"] == 8 and "prev_status" in row:
                    row["status"] = row.pop("prev_status")
        return ok()

    def _memberships(self, st: State, email: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        out = []
        for book in sorted(st["books"].values(), key=lambda b: b["id"]):
            row = self._rows(st, book["id"]).get(email)
            if row is not None:
                out.append((book, row))
        return out

    def _email_entries(self, st: State, email: str) -> list[dict[str, Any]]:
        return [
            {"book_id": book["id"], "email": email, "status": row["status"], "variables": self._typed_vars(book, row)}
            for book, row in self._memberships(st, email)
        ]

    def h_email_info(self, req: SandboxRequest, st: State) -> Response:
        email = normalise_email(req.params["email"])
        entries = self._email_entries(st, email)
        if not entries:
            raise not_found("Email address not found", 502)
        return JSONResponse(entries)

    def h_email_details(self, req: SandboxRequest, st: State) -> Response:
        email = normalise_email(req.params["email"])
        rows = self._memberships(st, email)
        if not rows:
            raise not_found("Email address not found", 502)
        return JSONResponse(
            [
                {"list_name": b["name"], "list_id": b["id"], "add_date": fmt(r["added"]), "source": r["source"]}
                for b, r in rows
            ]
        )

    def h_email_delete(self, req: SandboxRequest, st: State) -> Response:
        email = normalise_email(req.params["email"])
        for book, _ in self._memberships(st, email):
            del self._rows(st, book["id"])[email]
            self._emit(st, "delete", {"book_id": str(book["id"]), "email": email})
        return ok()

    def h_emails_info(self, req: SandboxRequest, st: State) -> Response:
        """``{email: [book entries]}`` for each asked address (``[]`` for one in no book [A]). The seed sends
        ``["a@x.io"]``; the Go SDK sends ``[{"email": "a@x.io"}]`` as a JSON string: both are read."""
        p = body_params(req)
        if p.get("emails") in (None, "", []):
            raise invalid("Argument emails missing")
        emails: list[str] = []
        for item in as_list(p["emails"], "emails"):
            value = item.get("email") if isinstance(item, dict) else item
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise invalid("Argument emails is invalid")
            emails.append(normalise_email(value))
        return JSONResponse({e: self._email_entries(st, e) for e in dict.fromkeys(emails)})

    def _campaign_counts(self, st: State, email: str) -> dict[str, int]:
        now = self.now(st).timestamp()
        counts = {"sent": 0, "open": 0, "link": 0}
        for camp in st["campaigns"].values():
            rec = next((r for r in camp["plan"] or [] if r["email"] == email), None)
            if rec is None:
                continue
            counts["sent"] += stats.reached(rec, 1, now)
            counts["open"] += stats.reached(rec, 3, now)
            counts["link"] += stats.reached(rec, 4, now)
        return counts

    def h_email_campaigns(self, req: SandboxRequest, st: State) -> Response:
        email = normalise_email(req.params["email"])
        return JSONResponse({"statistic": self._campaign_counts(st, email), "blacklist": email in st["blacklist"]})

    def h_emails_campaigns(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        if p.get("emails") in (None, "", []):
            raise invalid("Argument emails missing")
        out = {}
        for email in (normalise_email(e) for e in as_list(p["emails"], "emails")):
            out[email] = {
                **self._campaign_counts(st, email),
                "adressbooks": [{"id": b["id"], "name": b["name"]} for b, _ in self._memberships(st, email)],
                "blacklist": email in st["blacklist"],
            }
        return JSONResponse(out)

    # -- webhooks ------------------------------------------------------------------------------------------------

    def _hook_view(self, st: State, hook: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": hook["id"], "user_id": st["account"]["user_id"], "url": hook["url"], "action": hook["action"]}

    def _v2(self, data: Any) -> JSONResponse:
        return JSONResponse({"success": True, "data": data})

    def _webhook(self, st: State, req: SandboxRequest) -> dict[str, Any]:
        hook = st["webhooks"].get(str(req.params["id"]))
        if hook is None:
            raise not_found("Webhook not found", 404)
        return hook

    def h_webhooks(self, req: SandboxRequest, st: State) -> Response:
        return self._v2([self._hook_view(st, h) for h in st["webhooks"].values()])

    def h_webhook_create(self, req: SandboxRequest, st: State) -> Response:
        p = body_params(req)
        url = str(p.get("url") or "").strip()
        if not url:
            raise invalid("Argument url missing")
        if not re.match(r"^https?://", url):
            raise invalid("Argument url is invalid")
        if p.get("actions") in (None, "", []):
            raise invalid("Argument actions missing")
        actions = [str(a) for a in as_list(p["actions"], "actions")]
        if not actions or any(a not in WEBHOOK_ACTIONS for a in actions):
            raise invalid("Argument actions is invalid")
        out = []
        for action in dict.fromkeys(actions):
            hook = next((h for h in st["webhooks"].values() if h["action"] == action), None)
            if hook is None:
                hid = self.next_id(st, "webhook", start=162241)
                hook = {"id": hid, "action": action, "url": url}
                st["webhooks"][str(hid)] = hook
            hook["url"] = url
            out.append(self._hook_view(st, hook))
        return self._v2(out)

    def h_webhook_get(self, req: SandboxRequest, st: State) -> Response:
        return self._v2(self._hook_view(st, self._webhook(st, req)))

    def h_webhook_update(self, req: SandboxRequest, st: State) -> Response:
        hook = self._webhook(st, req)
        url = str(body_params(req).get("url") or "").strip()
        if not url:
            raise invalid("Argument url missing")
        hook["url"] = url
        return self._v2([True])

    def h_webhook_delete(self, req: SandboxRequest, st: State) -> Response:
        hook = self._webhook(st, req)
        del st["webhooks"][str(hook["id"])]
        return self._v2([True])

    def _emit(self, st: State, event: str, payload: Mapping[str, Any], ts: float | None = None) -> None:
        """Queue a webhook event when a hook listens to it (drained by ``hook_webhook_batches``)."""
        if not any(h["action"] == event for h in st["webhooks"].values()):
            return
        when = self.now(st).timestamp() if ts is None else ts
        st["outbox"].append({**payload, "event": event, "timestamp": str(int(when))})
        if len(st["outbox"]) > 50_000:
            del st["outbox"][: len(st["outbox"]) - 50_000]

    # -- test hooks ----------------------------------------------------------------------------------------------

    def hook_create_client(self, st: State, client_id: str, client_secret: str) -> bool:
        st["clients"][client_id] = {"secret": client_secret}
        return True

    def hook_revoke_tokens(self, st: State) -> int:
        n = len(st["tokens"])
        st["tokens"].clear()
        return n

    def hook_confirm_optin(self, st: State, book_id: int, email: str) -> bool:
        """The recipient clicks the double opt-in letter: status 2 -> 1."""
        row = st["members"].get(str(book_id), {}).get(normalise_email(email))
        if row is None or row["status"] != 2:
            return False
        row["status"] = 1
        return True

    def hook_sender_code(self, st: State, email: str) -> str | None:
        sender = st["senders"].get(normalise_email(email))
        return None if sender is None else sender.get("code")

    def hook_activate_sender(self, st: State, email: str, sender_name: str | None = None) -> bool:
        """Add (if needed) and activate a sender without the code round trip."""
        email = normalise_email(email)
        sender = st["senders"].setdefault(email, {"name": sender_name or email, "email": email, "code_sent_at": None})
        sender.update({"status": "Active", "code": None})
        return True

    def hook_set_balance(
        self, st: State, amount: str | float, currency: str | None = None, bonus: str | float | None = None
    ) -> str:
        st["account"]["balance"] = str(_dec(amount))
        if currency:
            code = CURRENCY_ALIASES.get(currency.upper(), currency.upper())
            if code not in RATES:
                raise KeyError(f"unknown currency {currency!r}")
            st["account"]["currency"] = code
        if bonus is not None:
            st["account"]["bonus"] = str(_dec(bonus))
        return money_str(_dec(st["account"]["balance"]))

    def hook_set_price(self, st: State, price: str | float) -> str:
        st["account"]["price"] = str(_dec(price))
        return st["account"]["price"]

    def hook_set_plan(
        self,
        st: State,
        emails_left: int | None = None,
        maximum_subscribers: int | None = None,
        tariff_name: str | None = None,
        finished_in_s: float | None = None,
    ) -> dict[str, Any]:
        plan = st["account"]["plan"]
        if emails_left is not None:
            plan["emails_left"] = int(emails_left)
        if maximum_subscribers is not None:
            plan["maximum_subscribers"] = int(maximum_subscribers)
        if tariff_name is not None:
            plan["tariff_name"] = tariff_name
        if finished_in_s is not None:
            plan["finished_time"] = self.now(st).timestamp() + float(finished_in_s)
        return dict(plan)

    def hook_set_delays(self, st: State, **delays: float) -> dict[str, Any]:
        """Any of activation_delay, moderation_delay, moderation_threshold, copy_delay, send_duration,
        token_ttl, campaigns_per_hour, tests_per_hour, max_senders."""
        cfg = st["config"]
        for key, value in delays.items():
            if key not in cfg:
                raise KeyError(f"unknown setting {key!r}")
            cfg[key] = value
        return dict(cfg)

    def hook_set_variable_type(self, st: State, book_id: int, variable: str, kind: str) -> bool:
        """Give a book variable a type (``string``, ``number`` or ``date``); the API has no call for it."""
        if kind not in ("string", "number", "date"):
            raise KeyError(f"unknown variable type {kind!r}")
        book = st["books"].get(str(book_id))
        if book is None:
            raise KeyError(f"no book {book_id}")
        book["variables"][variable] = kind
        return True

    def hook_force_outcome(self, st: State, email: str, code: int | None) -> bool:
        """Fix an address's recipient outcome (a §3 recipient code) in campaigns that start from now on."""
        if code is None:
            st["forced_outcomes"].pop(normalise_email(email), None)
        else:
            st["forced_outcomes"][normalise_email(email)] = int(code)
        return True

    def hook_add_segment(self, st: State, book_id: int, emails: list[str] | None = None) -> int:
        if str(book_id) not in st["books"]:
            raise KeyError(f"no book {book_id}")
        sid = self.next_id(st, "segment", start=1001)
        st["segments"][str(sid)] = {
            "book_id": int(book_id),
            "emails": None if emails is None else [normalise_email(e) for e in emails],
        }
        return sid

    def hook_deny(self, st: State, path: str, code: int = 800, method: str | None = None) -> int:
        """Refuse matching calls with 403 (800 ``Unauthorized action.`` or 3030303030, a tariff refusal)."""
        if int(code) not in DENIALS:
            raise KeyError(f"unknown denial code {code!r}")
        re.compile(path)
        st.setdefault("denied", []).append({"path": path, "code": int(code), "method": (method or "").upper()})
        return len(st["denied"])

    def hook_allow_all(self, st: State) -> bool:
        """Drop every ``deny`` rule."""
        st["denied"] = []
        return True

    def deliver_webhooks(self, client: httpx.Client | None = None) -> list[dict[str, Any]]:
        """POST the queued events to their hooks as JSON arrays (<= 100 each, unsigned), outside any lock.

        Returns one record per batch: url, action, count and the HTTP status (None when the call failed). Failed
        batches are not retried (SendPulse documents no retry policy).
        """
        batches: list[dict[str, Any]] = self.hook("webhook_batches")
        own = client is None
        http = client or httpx.Client(timeout=10)
        out: list[dict[str, Any]] = []
        try:
            for batch in batches:
                try:
                    status: int | None = http.post(batch["url"], json=batch["events"]).status_code
                except httpx.HTTPError:
                    status = None
                out.append(
                    {"url": batch["url"], "action": batch["action"], "count": len(batch["events"]), "status": status}
                )
        finally:
            if own:
                http.close()
        return out

    def hook_webhook_batches(self, st: State) -> list[dict[str, Any]]:
        """Drain the outbox: ``[{"url", "events": [...]}]``, one batch per hook and at most 100 events each."""
        out: list[dict[str, Any]] = []
        events = st["outbox"]
        st["outbox"] = []
        for hook in st["webhooks"].values():
            mine = [e for e in events if e["event"] == hook["action"]]
            for i in range(0, len(mine), 100):
                out.append({"url": hook["url"], "action": hook["action"], "events": mine[i : i + 100]})
        return out


def _check_b64(value: Any, name: str) -> None:
    try:
        base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"Argument {name} is invalid string") from None


def _device(rec: Mapping[str, Any]) -> dict[str, str]:
    desktop = int(hashlib.sha256(rec["email"].encode()).hexdigest(), 16) % 2 == 0
    return {
        "open_device": "Desktop" if desktop else "Mobile",
        "open_platform": "Windows" if desktop else "Android",
        "browser_name": "Firefox" if desktop else "Chrome",
        "browser_ver": "120.0" if desktop else "119.0",
    }
