"""Stateful emulator of Pakat's customer API (a hosted MailWizz EMA 2.x).

Reproduces what the Pakat API (MailWizz 2.x) does: MailWizz's envelopes and exact error
strings, 400 auth errors, the verb and encoding quirks (POST ignores JSON, multipart PUT is silently ignored),
PHP bracket keys, PHP-style JSON escaping, offset paging clamped to 10-50 newest first, subscriber create /
update / bulk semantics with an account-wide blacklist, account limits, the campaign lifecycle on the sandbox
clock (``send_at`` in the customer's timezone), deterministic seeded stats, the sending quota and
transactional emails.

State layout (plain JSON so a :class:`FileStore` can share it across processes)::

    keys            {api_key: true}
    settings        {timezone, max_lists, max_subscribers, max_campaigns, verified_domains, send_duration_s,
                     transactional_attachments (MailWizz's back-office attachment settings)}
    quota           {used, allowed (int or "∞")}
    lists           {list_uid: {general, defaults, notifications, company, seq, date_added}}
    fields          {list_uid: [field]}
    subscribers     {list_uid: {subscriber_uid: {...}}}
    blacklist       {lower(email): {date_added, reason}}
    campaigns       {campaign_uid: {...}}   delivery_logs / events keyed by campaign_uid
    templates, segments, transactional, confirmations, mutex_failures
    customers       {customer_uid: {...}}   (registration settings under settings.customer_registration)
    delivery_servers [server]               (one shared pool until a test adds more)
"""

import base64
import binascii
import hashlib
import html
import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.responses import Response

from espcore.sandbox.base import (
    FaultPlan,
    FaultRule,
    HandlerError,
    ProviderSandbox,
    SandboxRequest,
    State,
    StateStore,
)

DEMO_API_KEY = "sandbox-demo-pakat-key"
API_PREFIX = "/api"  # Pakat's base URL is https://new.pakat.net/api: routes live under /api here too
DEMO_SENDING_DOMAIN = "demo.example.com"
DATE_FMT = "%Y-%m-%d %H:%M:%S"

# Exact strings of the service.
MSG_MISSING_KEY = "Invalid API request params. Please refer to the documentation."
MSG_BAD_KEY = "Invalid API key. Please refer to the documentation."
MSG_PAGE_NOT_FOUND = "Page not found."
MSG_LIST_MISSING = "The list does not exist."
MSG_SUBSCRIBERS_LIST_MISSING = "The subscribers list does not exist."
MSG_SUB_MISSING = "The subscriber does not exist in this list."
MSG_SUB_EXISTS = "The subscriber already exists in this list."
MSG_SUB_OTHER_EXISTS = "Another subscriber with this email address already exists in this list."
MSG_BLACKLISTED = "This email address is blacklisted."
MSG_EMAIL_MISSING = "Please provide the subscriber email address."
MSG_EMAIL_INVALID = "Please provide a valid email address."
MSG_MUTEX = "Unable to acquire the mutex lock, please try again."
MSG_SUB_LIMIT = "The maximum number of allowed subscribers has been reached."
MSG_SUB_SAVE = "Unable to save the subscriber!"
MSG_BULK_MISSING = "Please provide the subscribers list."
MSG_LIST_LIMIT = "You have reached the maximum number of allowed lists."
MSG_LIST_COPY = "Unable to copy the list."
MSG_CAMPAIGN_MISSING = "Requested campaign does not exist."
MSG_CAMPAIGN_MISSING_LOGS = "The campaign does not exist!"
MSG_CAMPAIGN_LIMIT = "You have reached the maximum number of allowed campaigns."
MSG_QUOTA = "Your sending quota has been reached."
MSG_NOT_EDITABLE = "This campaign is not ediable."
MSG_NO_MARK_SENT = "The campaign does not allow marking it as sent!"
MSG_NO_PAUSE = "The campaign does not allow pausing/unpausing!"
MSG_NO_DELETE = "This campaign cannot be removed now."
MSG_NO_COPY = "Unable to copy the campaign."
MSG_PROVIDED_LIST = "Provided list does not exist."
MSG_PROVIDED_SEGMENT = "Provided segment does not exist."
MSG_PROVIDED_TEMPLATE = "Provided template does not exist."
MSG_NO_TEMPLATE = "Please provide a template for your campaign."
MSG_TEMPLATE_MISSING = "The template does not exist."
MSG_SEGMENT_MISSING = "The segment does not exist."
MSG_EMAIL_DOC_MISSING = "The email does not exist."
MSG_LOG_MISSING = "The delivery log does not exist."
MSG_FIELD_MISSING = "The field does not exist."
MSG_COUNTRY_MISSING = "The country does not exist."
MSG_SERVER_MISSING = "The delivery server does not exist."
MSG_DOMAIN_MISSING = "The sending domain does not exist."
MSG_SUBSCRIBER_MISSING = "The subscriber does not exist."
MSG_TRACK_CAMPAIGN_MISSING = "The campaign does not exist."

SUBSCRIBER_STATUSES = ("unconfirmed", "confirmed", "blacklisted", "unsubscribed", "unapproved", "disabled", "moved")
CAMPAIGN_STATUSES_SETTABLE = ("draft", "pending-sending", "paused")
EDITABLE = ("draft", "pending-sending", "paused")
FIELD_TYPES = ("text", "textarea", "dropdown", "multiselect", "date", "datetime", "number", "checkbox", "phonenumber")
FIELD_TYPE_NAMES = {
    "text": "Text",
    "textarea": "Textarea",
    "dropdown": "Dropdown",
    "multiselect": "Multiselect",
    "date": "Date",
    "datetime": "Datetime",
    "number": "Number",
    "checkbox": "Checkbox",
    "phonenumber": "Phone number",
}
#: MailWizz's list segment operators (its ``list_segment_operator`` table): id, name, slug
SEGMENT_OPERATORS = (
    (1, "is", "is"),
    (2, "is not", "is-not"),
    (3, "contains", "contains"),
    (4, "not contains", "not-contains"),
    (5, "starts with", "starts"),
    (6, "ends with", "ends"),
    (7, "is greater than", "greater"),
    (8, "is less than", "less"),
    (9, "not starts with", "not-starts"),
    (10, "not ends with", "not-ends"),
)
#: A small slice of MailWizz's country / zone tables (ids as MailWizz numbers them)
COUNTRIES = (
    (1, "Afghanistan", "AF"),
    (103, "Iran, Islamic Republic of", "IR"),
    (223, "United States", "US"),
    (222, "United Kingdom", "GB"),
    (81, "Germany", "DE"),
)
ZONES = {
    103: ((1584, "Tehran", "THR"), (1585, "Esfahan", "ESF"), (1586, "Fars", "FAR")),
    223: ((3613, "California", "CA"), (3624, "New York", "NY"), (3635, "Texas", "TX")),
    222: ((3513, "England", "ENG"), (3514, "Scotland", "SCT")),
}
BOUNCE_TYPES = ("internal", "soft", "hard")
LIST_NAME_MAX = 255
BULK_CAP = 10_000
_EMAIL_RE = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]{2,}$")
# MailWizz's subscriber address check (its CEmailValidator, Yii 1.1's, with IDN on): a dot-atom of ASCII atext, an
# ``@``, then dot-separated LDH labels (no leading or trailing hyphen), at least two. ``$`` as PCRE's without
# the D modifier: it also matches before one final newline.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_MW_EMAIL_RE = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_LABEL}$")
_MW_SPLIT_RE = re.compile(r"^(.*)@(.*)$")  # greedy: the domain is what follows the last @
#: ``list_subscriber.email`` is a varchar(100) and MailWizz runs MySQL with SQL_MODE="": longer addresses are cut
SUBSCRIBER_EMAIL_COLUMN = 100
_TAG_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,49}$")
_BRACKET_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def api_base_url(server_url: str) -> str:
    """The client base URL for a sandbox served at ``server_url`` (``http://127.0.0.1:PORT`` -> ``.../api``)."""
    return server_url.rstrip("/") + API_PREFIX


# -- wire helpers ---------------------------------------------------------------------------------------------


class PhpJSONResponse(Response):
    """JSON as PHP's ``json_encode`` writes it: non-ASCII as ``\\uXXXX`` and ``/`` as ``\\/``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=True, separators=(",", ":"))
        return text.replace("/", "\\/").encode("ascii")


def php_json(content: Any, status: int = 200) -> PhpJSONResponse:
    return PhpJSONResponse(content, status_code=status)


def nest_brackets(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn PHP bracket keys (``campaign[template][content]``) into nested dicts, keeping input order."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        m = _BRACKET_RE.match(key)
        if not m:
            out[key] = value
            continue
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        node = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # PHP's key[] append
                part = str(sum(1 for _ in node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return out


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return ""
    return str(value)


def _sub(d: Any, key: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def valid_email(email: str) -> bool:
    return bool(email) and len(email) <= 150 and bool(_EMAIL_RE.match(email))


def _idn_to_ascii(domain: str) -> str:
    """The domain as IDNA ASCII; "" where the conversion fails (a label over 63 octets, an empty label), as
    PHP's ``idn_to_ascii`` answers false and MailWizz casts that to a string."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def subscriber_email_valid(email: str) -> bool:
    """MailWizz's check of a subscriber address (create, update, bulk): the domain converted to IDNA ASCII,
    then at most 254 bytes and :data:`_MW_EMAIL_RE`. No limit before the ``@`` beyond that (a 65-character
    local part passes); nothing is trimmed."""
    m = _MW_SPLIT_RE.match(email)
    value = f"{m.group(1)}@{_idn_to_ascii(m.group(2))}" if m else email
    return len(value.encode("utf-8")) <= 254 and bool(_MW_EMAIL_RE.match(value))


def php_empty(value: str) -> bool:
    """PHP's ``empty()`` of a string: "" and "0"."""
    return value in ("", "0")


def stored_email(email: str) -> str:
    """What the varchar(100) column keeps of an address: MySQL in non-strict mode cuts it without an error."""
    return email[:SUBSCRIBER_EMAIL_COLUMN]


def b64decode_field(value: str, field: str) -> str:
    """Decode a base64 field; [A] garbage answers 422."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise HandlerError(422, {field: f"The {field} field must be base64 encoded."}) from None


# -- transactional emails: MailWizz's model and helpers -------------------------------------------------------------

#: ``transactional_email``'s columns in table order (MailWizz 2.x; ``fallback_system_servers``, added in 1.9.22,
#: sits after ``send_at``): what ``getAttributes()`` gives, less the internal ``email_id``
TX_ATTRIBUTES = (
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
)
#: column defaults, for records a state file kept from before a column was modelled
TX_COLUMN_DEFAULTS: dict[str, Any] = {"fallback_system_servers": "no"}
#: what ``$email->attributes = $_POST['email']`` assigns: the attributes a validation rule names (Yii's safe
#: attributes); ``plain_text``, ``priority``, ``fallback_system_servers`` and the rest are silently dropped
TX_SAFE_ATTRIBUTES = (
    "to_email",
    "to_name",
    "from_name",
    "subject",
    "body",
    "send_at",
    "from_email",
    "reply_to_email",
    "reply_to_name",
)
TX_LABELS = {
    "to_email": "To email",
    "to_name": "To name",
    "from_email": "From email",
    "from_name": "From name",
    "reply_to_email": "Reply to email",
    "reply_to_name": "Reply to name",
    "subject": "Subject",
    "body": "Body",
    "send_at": "Send at",
}
#: MailWizz's default attachment extensions (``TransactionalEmailAttachment::getAllowedExtensions``) and size
TX_ATTACHMENT_EXTENSIONS = ("png", "jpg", "jpeg", "gif", "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx")
TX_ATTACHMENT_SIZE = 1_048_576
PHP_TRIM = " \t\n\r\0\x0b"  # what PHP's trim() removes (Yii's required rule trims before its check)
_TX_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _tx_date_valid(value: str) -> bool:
    """Yii's ``date`` rule with ``yyyy-mm-dd hh:mm:ss``: two-digit fields and a real date and time."""
    if not _TX_DATE_RE.match(value):
        return False
    try:
        datetime.strptime(value, DATE_FMT)
    except ValueError:
        return False
    return True


def _html_encode(text: str) -> str:
    """MailWizz's ``html_encode`` (``htmlspecialchars`` with ``ENT_QUOTES``), applied to every short error."""
    for char, entity in (("&", "&amp;"), ('"', "&quot;"), ("'", "&#039;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, entity)
    return text


def _php_extension(name: str) -> str:
    """PHP's ``pathinfo($name, PATHINFO_EXTENSION)``: what follows the last dot of the base name."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[1] if "." in base else ""


def _php_base64_decode(value: str) -> bytes:
    """PHP's lenient ``base64_decode``: characters outside the alphabet skipped, padding optional."""
    chars = re.sub(r"[^A-Za-z0-9+/]", "", value)
    if len(chars) % 4 == 1:
        chars = chars[:-1]
    return base64.b64decode(chars + "=" * (-len(chars) % 4))


def _php_wordwrap(text: str, width: int = 70) -> str:
    """PHP's ``wordwrap`` (at spaces, lengths in bytes, long words left whole)."""
    out: list[str] = []
    for line in text.split("\n"):
        words = line.split(" ")
        current = words[0]
        for word in words[1:]:
            if len(current.encode()) + 1 + len(word.encode()) <= width:
                current += " " + word
            else:
                out.append(current)
                current = word
        out.append(current)
    return "\n".join(out)


def _h2t_upper(text: str) -> str:
    """Html2Text's ``toupper``: the text between tags upper-cased, its entities kept."""
    parts = re.split(r"(<[^>]*>)", text)
    return "".join(
        p if p.startswith("<") else html.escape(html.unescape(p).upper(), quote=False).replace('"', "&quot;")
        for p in parts
    )


def _h2t_link(url: str, display: str) -> str:
    if re.match(r"^(javascript:|mailto:|#)", html.unescape(url), re.I):
        return display
    if not re.match(r"^[a-z][a-z0-9.+-]+:", url, re.I) and not url.startswith("/"):
        url = "/" + url  # relative to the app's base URL, which the sandbox does not know
    return display if url == display else f"{display} [{url}]"


_H2T_SEARCH: tuple[tuple[str, str], ...] = (
    (r"\r", ""),
    (r"[\n\t]+", " "),
    (r"(?i)<head\b[^>]*>.*?</head>", ""),
    (r"(?i)<script\b[^>]*>.*?</script>", ""),
    (r"(?i)<style\b[^>]*>.*?</style>", ""),
    (r"(?i)<i\b[^>]*>(.*?)</i>", r"_\1_"),
    (r"(?i)<em\b[^>]*>(.*?)</em>", r"_\1_"),
    (r"(?i)<ins\b[^>]*>(.*?)</ins>", r"_\1_"),
    (r"(?i)(<ul\b[^>]*>|</ul>)", "\n\n"),
    (r"(?i)(<ol\b[^>]*>|</ol>)", "\n\n"),
    (r"(?i)(<dl\b[^>]*>|</dl>)", "\n\n"),
    (r"(?i)<li\b[^>]*>(.*?)</li>", "\t* \\1\n"),
    (r"(?i)<dd\b[^>]*>(.*?)</dd>", " \\1\n"),
    (r"(?i)<dt\b[^>]*>(.*?)</dt>", "\t* \\1"),
    (r"(?i)<li\b[^>]*>", "\n\t* "),
    (r"(?i)<hr\b[^>]*>", "\n-------------------------\n"),
    (r"(?i)<div\b[^>]*>", "<div>\n"),
    (r"(?i)(<table\b[^>]*>|</table>)", "\n\n"),
    (r"(?i)(<tr\b[^>]*>|</tr>)", "\n"),
    (r"(?i)<td\b[^>]*>(.*?)</td>", "\t\t\\1\n"),
    (r'(?i)<span class="_html2text_ignore">.+?</span>', ""),
    (r'(?i)<(img)\b[^>]*alt="([^>"]+)"[^>]*>', r"[\2]"),
)
_H2T_CALLBACKS: tuple[tuple[str, Any], ...] = (
    (r"(?i)<(h)[123456]( [^>]*)?>(.*?)</h[123456]>", lambda m: _h2t_upper(f"\n\n{m.group(3)}\n\n")),
    (r"(?is)[ ]*<(p)( [^>]*)?>(.*?)</p>[ ]*", lambda m: "\n" + m.group(3).replace("\n", " ").strip() + "\n"),
    (r"(?i)<(br)[^>]*>[ ]*", lambda m: "\n"),
    (r"(?i)<(b)( [^>]*)?>(.*?)</b>", lambda m: _h2t_upper(m.group(3))),
    (r"(?i)<(strong)( [^>]*)?>(.*?)</strong>", lambda m: _h2t_upper(m.group(3))),
    (r"(?i)<(del)( [^>]*)?>(.*?)</del>", lambda m: "".join(c + "\u0336" for c in m.group(3))),
    (r"(?i)<(th)( [^>]*)?>(.*?)</th>", lambda m: _h2t_upper(f"\t\t{m.group(3)}\n")),
    (
        r"""(?i)<(a) [^>]*href=("|')([^"']+)\2([^>]*)>(.*?)</a>""",
        lambda m: _h2t_link(m.group(3).replace(" ", ""), m.group(5)),
    ),
)


def html_to_text(body: str) -> str:
    """MailWizz's ``CampaignHelper::htmlToText``, which makes a transactional email's plain text from its body:
    the Html2Text library (inline links ``text [url]``, headings and bold upper-cased, 70-column wrap), then
    every line trimmed and blank lines dropped. An approximation: ``<pre>`` and ``<blockquote>`` get no special
    treatment and ``strip_tags`` is a plain tag strip."""
    text = body.strip()
    for pattern, repl in _H2T_SEARCH:
        text = re.sub(pattern, repl, text)
    for pattern, fn in _H2T_CALLBACKS:
        text = re.sub(pattern, fn, text)
    text = re.sub(r"(?s)<!--.*?-->", "", text)
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"(?i)&(amp|#38);", "|+|amp|+|", text)
    text = re.sub(r"[ ]{2,}", " ", text)
    text = html.unescape(text)
    text = re.sub(r"&([a-zA-Z0-9]{2,6}|#[0-9]{2,4});", "", text).replace("|+|amp|+|", "&")
    text = re.sub(r"\n\s+\n", "\n\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).lstrip("\n")
    lines = (line.strip(PHP_TRIM) for line in _php_wordwrap(text).split("\n"))
    return "\n".join(line for line in lines if not php_empty(line))


def _hash_fraction(*parts: Any) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _fmt(dt: datetime, tz: ZoneInfo | None = None) -> str:
    if tz is not None:
        dt = dt.astimezone(tz)
    return dt.strftime(DATE_FMT)


def _pct(num: float, den: float) -> float:
    return round(num * 100.0 / den, 2) if den > 0 else 0.0


# Deterministic per-recipient outcome rates (per delivered message) and the delay window of each event.
OUTCOME_RATES = {
    "hard_bounce": 0.03,
    "soft_bounce": 0.03,
    "open": 0.45,
    "click": 0.3,
    "unsubscribe": 0.06,
    "complaint": 0.01,
}
EVENT_WINDOW_S = 48 * 3600


class PakatSandbox(ProviderSandbox):
    """The Pakat / MailWizz emulator. No rate limit by default (MailWizz emits no 429)."""

    provider = "pakat"
    demo_credentials = {"api_key": DEMO_API_KEY}

    def __init__(
        self,
        store: StateStore | None = None,
        *,
        faults: FaultPlan | None = None,
        seed: int = 0,
        rate_limit: bool = False,
    ) -> None:
        super().__init__(store, faults=faults, seed=seed, rate_limit=rate_limit)

    # -- state ---------------------------------------------------------------------------------------------

    def initial_state(self) -> State:
        return {
            "keys": {},
            "settings": {
                "timezone": "UTC",
                "max_lists": None,
                "max_subscribers": None,
                "max_campaigns": None,
                "verified_domains": [],
                "send_duration_s": 60,
            },
            "quota": {"used": 0, "allowed": 10_000},
            "lists": {},
            "fields": {},
            "subscribers": {},
            "blacklist": {},
            "campaigns": {},
            "delivery_logs": {},
            "events": {},
            "templates": {},
            "segments": {},
            "transactional": {},
            "confirmations": [],
            "mutex_failures": 0,
            "seq": 0,
        }

    def seed_demo(self, state: State) -> None:
        state["keys"][DEMO_API_KEY] = True
        if DEMO_SENDING_DOMAIN not in state["settings"]["verified_domains"]:
            state["settings"]["verified_domains"].append(DEMO_SENDING_DOMAIN)
        uid = self.uid(state, "template")
        state["templates"][uid] = {
            "template_uid": uid,
            "name": "Demo newsletter",
            "content": "<html><body><h1>Hello [FNAME]</h1><p>{{ params.body }}</p>"
            '<a href="[UNSUBSCRIBE_URL]">Unsubscribe</a></body></html>',
            "screenshot": None,
            "inline_css": "no",
            "seq": self._seq(state),
            "date_added": _fmt(self.now(state)),
        }

    def _seq(self, st: State) -> int:
        st["seq"] = int(st.get("seq", 0)) + 1
        return st["seq"]

    def _tz(self, st: State) -> ZoneInfo:
        return ZoneInfo(st["settings"].get("timezone") or "UTC")

    # -- envelope -------------------------------------------------------------------------------------------

    def error(self, status: int, message: Any, code: Any = None) -> Response:
        return php_json({"status": "error", "error": message}, status)

    def not_found(self, req: SandboxRequest) -> Response:
        return self.error(404, MSG_PAGE_NOT_FOUND)

    def wrong_method(self, req: SandboxRequest, allowed: list[str]) -> Response:
        order = ["POST", "PUT", "DELETE", "GET"]
        verb = sorted(set(allowed), key=lambda m: order.index(m) if m in order else 9)[0]
        return self.error(400, f"Only {verb} requests allowed for this endpoint.")

    def before_request(self, req: SandboxRequest, state: State) -> Response | None:
        if req.path.rstrip("/") == f"{API_PREFIX}/customers":
            return None  # MailWizz lists the customers controller as unprotected: registration needs no key
        key = req.headers.get("x-api-key")
        if not key:
            return self.error(400, MSG_MISSING_KEY)
        if key not in state.get("keys", {}):
            return self.error(400, MSG_BAD_KEY)
        blocked = state.get("settings", {}).get("api_blocked")
        if blocked:  # IP refused, account inactive or API access off: 400 with its own message
            return self.error(400, blocked)
        return None

    def _handle(self, req: SandboxRequest) -> Response:
        override = req.headers.get("x-http-method-override", "").upper()
        if req.method == "POST" and override in ("PUT", "DELETE", "PATCH"):
            req.method = override
            req.is_multipart = False  # the body was a POST body and is read as one
        response = super()._handle(req)
        if req.method == "GET" and response.status_code == 200:
            # GETs carry an ETag; a matching If-None-Match gets a bodiless 304 (clients must not send it)
            etag = '"' + hashlib.sha1(bytes(response.body)).hexdigest() + '"'  # noqa: S324
            if req.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers={"ETag": etag})
            response.headers["ETag"] = etag
        return response

    def fault_response(self, rule: FaultRule) -> Response:
        if rule.kind == "status" and rule.status == 503 and not rule.message and not rule.html:
            rule = replace(rule, message="Service Unavailable.")  # MailWizz's "API offline" answer
        return super().fault_response(rule)

    @staticmethod
    def body(req: SandboxRequest) -> dict[str, Any] | None:
        """The request fields as MailWizz reads them; None for a multipart PUT (silently ignored)."""
        if req.method == "POST":
            flat = req.form or {}  # JSON bodies are not read on POST
        elif req.method in ("PUT", "PATCH"):
            if req.is_multipart:
                return None
            if req.form is not None:
                flat = req.form
            elif isinstance(req.json_body, dict):
                return dict(req.json_body)
            else:
                flat = {}
        else:
            flat = {}
        return nest_brackets({k: _text(v) if isinstance(v, bytes) else v for k, v in flat.items()})

    @staticmethod
    def paging(req: SandboxRequest) -> tuple[int, int]:
        def as_int(v: str | None, default: int) -> int:
            try:
                return int(v) if v not in (None, "") else default
            except ValueError:
                return default

        page = max(1, as_int(req.query.get("page"), 1))
        per_page = min(50, max(10, as_int(req.query.get("per_page"), 10)))
        return page, per_page

    def collection(self, req: SandboxRequest, rows: list[tuple[int, dict[str, Any]]]) -> Response:
        """A paginated envelope over (seq, record) rows, newest first."""
        page, per_page = self.paging(req)
        rows = sorted(rows, key=lambda r: r[0], reverse=True)
        total = len(rows)
        if total == 0:
            data: dict[str, Any] = {
                "count": None,
                "total_pages": None,
                "current_page": None,
                "next_page": None,
                "prev_page": None,
                "records": [],
            }
            return php_json({"status": "success", "data": data})
        pages = math.ceil(total / per_page)
        chunk = [r for _, r in rows[(page - 1) * per_page : page * per_page]]
        data = {
            "count": str(total),
            "total_pages": pages,
            "current_page": page,
            "next_page": page + 1 if page < pages else None,
            "prev_page": page - 1 if page > 1 else None,
            "records": chunk,
        }
        return php_json({"status": "success", "data": data})

    @staticmethod
    def ok(extra: Mapping[str, Any] | None = None, status: int = 200) -> Response:
        out: dict[str, Any] = {"status": "success"}
        out.update(extra or {})
        return php_json(out, status)

    # -- routes ---------------------------------------------------------------------------------------------

    def register_routes(self) -> None:
        r = self.route
        r("GET", "/api/quota/index", self.h_quota)
        # subscriber routes that look like list routes go first
        r("GET", "/api/lists/subscribers/search-by-email-in-all-lists", self.h_search_all)
        r("PUT", "/api/lists/subscribers/unsubscribe-by-email-from-all-lists", self.h_unsub_all)
        r("GET", "/api/lists/fields/types", self.h_field_types)
        r("GET", "/api/lists/segments/condition-operators", self.h_segment_operators)
        r("GET", "/api/lists", self.h_lists)
        r("POST", "/api/lists", self.h_list_create)
        r("GET", "/api/lists/{L:uid}", self.h_list_get)
        r("PUT", "/api/lists/{L:uid}", self.h_list_update)
        r("DELETE", "/api/lists/{L:uid}", self.h_list_delete)
        r("POST", "/api/lists/{L:uid}/copy", self.h_list_copy)
        r("GET", "/api/lists/{L:uid}/fields", self.h_fields)
        r("POST", "/api/lists/{L:uid}/fields", self.h_field_create)
        r("GET", "/api/lists/{L:uid}/fields/{F:int}", self.h_field_get)
        r("PUT", "/api/lists/{L:uid}/fields/{F:int}", self.h_field_update)
        r("DELETE", "/api/lists/{L:uid}/fields/{F:int}", self.h_field_delete)
        r("GET", "/api/lists/{L:uid}/subscribers/search-by-email", self.h_search)
        r("GET", "/api/lists/{L:uid}/subscribers/search-by-custom-fields", self.h_search_custom)
        r("POST", "/api/lists/{L:uid}/subscribers/bulk", self.h_bulk)
        r("GET", "/api/lists/{L:uid}/subscribers", self.h_subs)
        r("POST", "/api/lists/{L:uid}/subscribers", self.h_sub_create)
        r("GET", "/api/lists/{L:uid}/subscribers/{S:uid}", self.h_sub_get)
        r("PUT", "/api/lists/{L:uid}/subscribers/{S:uid}", self.h_sub_update)
        r("DELETE", "/api/lists/{L:uid}/subscribers/{S:uid}", self.h_sub_delete)
        r("PUT", "/api/lists/{L:uid}/subscribers/{S:uid}/unsubscribe", self.h_sub_unsub)
        r("GET", "/api/lists/{L:uid}/segments", self.h_segments)
        r("POST", "/api/lists/{L:uid}/segments", self.h_segment_create)
        r("GET", "/api/lists/{L:uid}/segments/{G:uid}", self.h_segment_get)
        r("PUT", "/api/lists/{L:uid}/segments/{G:uid}", self.h_segment_update)
        r("DELETE", "/api/lists/{L:uid}/segments/{G:uid}", self.h_segment_delete)
        r("GET", "/api/lists/{L:uid}/segments/{G:uid}/subscribers", self.h_segment_subs)
        r("GET", "/api/campaigns", self.h_campaigns)
        r("POST", "/api/campaigns", self.h_campaign_create)
        r("GET", "/api/campaigns/delivery-logs/email-message-id/{M:str}", self.h_log_by_message_id)
        r("GET", "/api/campaigns/{C:uid}", self.h_campaign_get)
        r("PUT", "/api/campaigns/{C:uid}", self.h_campaign_update)
        r("DELETE", "/api/campaigns/{C:uid}", self.h_campaign_delete)
        r("POST", "/api/campaigns/{C:uid}/copy", self.h_campaign_copy)
        r("PUT", "/api/campaigns/{C:uid}/pause-unpause", self.h_campaign_pause)
        r("PUT", "/api/campaigns/{C:uid}/mark-sent", self.h_campaign_mark_sent)
        r("GET", "/api/campaigns/{C:uid}/stats", self.h_campaign_stats)
        r("GET", "/api/campaigns/{C:uid}/delivery-logs", self.h_campaign_logs)
        r("GET", "/api/campaigns/{C:uid}/bounces", self.h_campaign_bounces)
        r("GET", "/api/campaigns/{C:uid}/unsubscribes", self.h_campaign_unsubs)
        r("POST", "/api/campaigns/{C:uid}/bounces", self.h_campaign_bounce_create)
        r("GET", "/api/campaigns/{C:uid}/track-url/{S:uid}/{H:uid}", self.h_track_url)
        r("GET", "/api/campaigns/{C:uid}/track-opening/{S:uid}", self.h_track_opening)
        r("POST", "/api/campaigns/{C:uid}/track-unsubscribe/{S:uid}", self.h_track_unsubscribe)
        r("GET", "/api/countries", self.h_countries)
        r("GET", "/api/countries/{N:int}/zones", self.h_zones)
        r("POST", "/api/customers", self.h_customer_create)
        r("GET", "/api/delivery-servers", self.h_delivery_servers)
        r("GET", "/api/delivery-servers/{N:int}", self.h_delivery_server)
        r("GET", "/api/sending-domains/{D:str}", self.h_sending_domain)
        r("GET", "/api/templates", self.h_templates)
        r("POST", "/api/templates", self.h_template_create)
        r("GET", "/api/templates/{T:uid}", self.h_template_get)
        r("PUT", "/api/templates/{T:uid}", self.h_template_update)
        r("DELETE", "/api/templates/{T:uid}", self.h_template_delete)
        r("GET", "/api/transactional-emails", self.h_tx_list)
        r("POST", "/api/transactional-emails", self.h_tx_create)
        r("GET", "/api/transactional-emails/{E:uid}", self.h_tx_get)
        r("DELETE", "/api/transactional-emails/{E:uid}", self.h_tx_delete)

    # -- quota ----------------------------------------------------------------------------------------------

    def h_quota(self, req: SandboxRequest, st: State) -> Response:
        q = st["quota"]
        allowed = q["allowed"]
        if allowed == "∞" or allowed is None:
            quota = {"percentage": "0%", "used": q["used"], "allowed": "∞"}
        else:
            pct = f"{round(q['used'] * 100 / int(allowed)) if int(allowed) > 0 else 100}%"
            quota = {"percentage": pct, "used": q["used"], "allowed": str(allowed)}
        return php_json({"status": "ok", "quota": quota})

    def _quota_reached(self, st: State) -> bool:
        allowed = st["quota"]["allowed"]
        return allowed not in ("∞", None) and int(st["quota"]["used"]) >= int(allowed)

    # -- lists ----------------------------------------------------------------------------------------------

    def _list(self, st: State, uid: str, message: str = MSG_LIST_MISSING) -> dict[str, Any]:
        lst = st["lists"].get(uid)
        if lst is None:
            raise HandlerError(404, message)
        return lst

    def _list_view(self, lst: dict[str, Any]) -> dict[str, Any]:
        return {
            "general": {k: lst["general"].get(k) for k in ("list_uid", "name", "display_name", "description")},
            "defaults": dict(lst["defaults"]),
            "notifications": dict(lst["notifications"]),
            "company": dict(lst["company"]),
        }

    def h_lists(self, req: SandboxRequest, st: State) -> Response:
        return self.collection(req, [(v["seq"], self._list_view(v)) for v in st["lists"].values()])

    def h_list_get(self, req: SandboxRequest, st: State) -> Response:
        return self.ok({"data": {"record": self._list_view(self._list(st, req.params["L"]))}})

    def _apply_list(self, lst: dict[str, Any], body: dict[str, Any]) -> None:
        general, defaults = _sub(body, "general"), _sub(body, "defaults")
        for k in ("name", "display_name", "description", "opt_in", "opt_out"):
            if k in general:
                lst["general"][k] = _text(general[k]).strip()
        for k in ("from_name", "from_email", "reply_to", "subject"):
            if k in defaults:
                lst["defaults"][k] = _text(defaults[k]).strip()
        for k, v in _sub(body, "notifications").items():
            lst["notifications"][k] = _text(v)
        for k, v in _sub(body, "company").items():
            lst["company"][k] = _text(v)

    @staticmethod
    def _validate_list(lst: dict[str, Any]) -> None:
        errors: dict[str, dict[str, str]] = {}
        g, d = lst["general"], lst["defaults"]
        if not g.get("name"):
            errors.setdefault("general", {})["name"] = "Name cannot be blank."
        elif len(g["name"]) > LIST_NAME_MAX:
            errors.setdefault("general", {})["name"] = f"Name is too long (maximum is {LIST_NAME_MAX} characters)."
        if len(g.get("display_name") or "") > LIST_NAME_MAX:
            errors.setdefault("general", {})["display_name"] = (
                f"Display name is too long (maximum is {LIST_NAME_MAX} characters)."
            )
        if not g.get("description"):
            errors.setdefault("general", {})["description"] = "Description cannot be blank."
        if g.get("opt_in") not in ("single", "double"):
            errors.setdefault("general", {})["opt_in"] = "Opt in is invalid."
        for k, label in (("from_name", "From name"), ("from_email", "From email"), ("reply_to", "Reply to")):
            if not d.get(k):
                errors.setdefault("defaults", {})[k] = f"{label} cannot be blank."
            elif k != "from_name" and not valid_email(d[k]):
                errors.setdefault("defaults", {})[k] = f"{label} is not a valid email address."
        if errors:
            raise HandlerError(422, errors)

    def _check_list_limit(self, st: State, message: str) -> None:
        limit = st["settings"].get("max_lists")
        if limit is not None and len(st["lists"]) >= int(limit):
            raise HandlerError(422, message)

    def h_list_create(self, req: SandboxRequest, st: State) -> Response:
        body = self.body(req) or {}
        self._check_list_limit(st, MSG_LIST_LIMIT)
        lst: dict[str, Any] = {
            "general": {"name": "", "display_name": "", "description": "", "opt_in": "double", "opt_out": "single"},
            "defaults": {"from_name": "", "from_email": "", "reply_to": "", "subject": ""},
            "notifications": {"subscribe": "no", "unsubscribe": "no", "subscribe_to": "", "unsubscribe_to": ""},
            "company": {},
        }
        self._apply_list(lst, body)
        self._validate_list(lst)
        uid = self.uid(st, "list")
        lst["general"]["list_uid"] = uid
        lst["general"]["display_name"] = lst["general"]["display_name"] or lst["general"]["name"]
        lst["seq"] = self._seq(st)
        lst["date_added"] = _fmt(self.now(st))
        st["lists"][uid] = lst
        st["subscribers"][uid] = {}
        st["segments"].setdefault(uid, {})
        st["fields"][uid] = [
            self._new_field(st, "EMAIL", "Email", "yes", "text"),
            self._new_field(st, "FNAME", "First name", "no", "text"),
            self._new_field(st, "LNAME", "Last name", "no", "text"),
        ]
        return self.ok({"list_uid": uid}, 201)

    def h_list_update(self, req: SandboxRequest, st: State) -> Response:
        lst = self._list(st, req.params["L"])
        body = self.body(req)
        if body is None:
            return self.ok()
        candidate = json.loads(json.dumps(lst))
        self._apply_list(candidate, body)
        self._validate_list(candidate)
        lst.update(candidate)
        return self.ok()

    def h_list_delete(self, req: SandboxRequest, st: State) -> Response:
        uid = req.params["L"]
        self._list(st, uid)
        for key in ("lists", "fields", "subscribers", "segments"):
            st[key].pop(uid, None)
        return self.ok()

    def h_list_copy(self, req: SandboxRequest, st: State) -> Response:
        src = self._list(st, req.params["L"])
        self._check_list_limit(st, MSG_LIST_COPY)
        uid = self.uid(st, "list")
        lst = json.loads(json.dumps(src))
        lst["general"]["list_uid"] = uid
        lst["general"]["name"] = f"{src['general']['name']} (copy)"
        lst["seq"] = self._seq(st)
        lst["date_added"] = _fmt(self.now(st))
        st["lists"][uid] = lst
        st["subscribers"][uid] = {}
        st["segments"][uid] = {}
        st["fields"][uid] = [dict(f, field_id=self.next_id(st, "field")) for f in st["fields"].get(req.params["L"], [])]
        return self.ok({"list_uid": uid})

    # -- fields ---------------------------------------------------------------------------------------------

    def _new_field(self, st: State, tag: str, label: str, required: str, ftype: str) -> dict[str, Any]:
        return {
            "field_id": self.next_id(st, "field"),
            "tag": tag,
            "label": label,
            "required": required,
            "type": {"name": ftype.capitalize(), "identifier": ftype, "description": ftype.capitalize()},
            "default_value": None,
        }

    def h_fields(self, req: SandboxRequest, st: State) -> Response:
        self._list(st, req.params["L"])
        records = [
            {k: f[k] for k in ("field_id", "tag", "label", "required", "type")} for f in st["fields"][req.params["L"]]
        ]
        return self.ok({"data": {"records": records}})

    def h_field_create(self, req: SandboxRequest, st: State) -> Response:
        self._list(st, req.params["L"])
        body = self.body(req) or {}
        tag = _text(body.get("tag")).strip()
        label = _text(body.get("label")).strip()
        ftype = _text(body.get("type")).strip() or "text"
        required = _text(body.get("required")).strip() or "no"
        errors: dict[str, str] = {}
        fields = st["fields"][req.params["L"]]
        if not label:
            errors["label"] = "Label cannot be blank."
        if not tag:
            errors["tag"] = "Tag cannot be blank."
        elif not _TAG_RE.match(tag):
            errors["tag"] = "Tag must be upper case letters, digits and underscores, starting with a letter."
        elif any(f["tag"] == tag for f in fields):
            errors["tag"] = f'Tag "{tag}" has already been taken.'
        if ftype not in FIELD_TYPES:
            errors["type"] = "Type is invalid."
        if required not in ("yes", "no"):
            errors["required"] = "Required is invalid."
        if errors:
            raise HandlerError(422, errors)
        field = self._new_field(st, tag, label, required, ftype)
        fields.append(field)
        return self.ok(
            {"data": {"record": {k: field[k] for k in ("field_id", "tag", "label", "required", "type")}}}, 201
        )

    def h_field_types(self, req: SandboxRequest, st: State) -> Response:
        rows = [
            (-i, {"name": FIELD_TYPE_NAMES[t], "identifier": t, "description": FIELD_TYPE_NAMES[t]})
            for i, t in enumerate(FIELD_TYPES)
        ]
        return self.collection(req, rows)

    def _field(self, st: State, list_uid: str, field_id: str) -> dict[str, Any]:
        self._list(st, list_uid)
        for f in st["fields"].get(list_uid, []):
            if str(f["field_id"]) == field_id:
                return f
        raise HandlerError(404, MSG_FIELD_MISSING)

    def _field_view(self, st: State, list_uid: str, f: dict[str, Any]) -> dict[str, Any]:
        lst = st["lists"][list_uid]
        return {
            "field_id": f["field_id"],
            "tag": f["tag"],
            "label": f["label"],
            "required": f["required"],
            "help_text": f.get("help_text", ""),
            "description": f.get("description", ""),
            "default_value": f.get("default_value"),
            "visibility": f.get("visibility", "visible"),
            "sort_order": f.get("sort_order", 0),
            "type": f["type"],
            "list": {"list_uid": list_uid, "display_name": lst["general"].get("display_name") or ""},
        }

    def h_field_get(self, req: SandboxRequest, st: State) -> Response:
        f = self._field(st, req.params["L"], req.params["F"])
        return self.ok({"data": {"record": self._field_view(st, req.params["L"], f)}})

    def h_field_update(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        f = self._field(st, list_uid, req.params["F"])
        body = self.body(req)
        if body is not None:
            candidate = dict(f)
            for k in ("label", "help_text", "description", "default_value", "required", "visibility", "sort_order"):
                if k in body:
                    candidate[k] = _text(body[k]).strip()
            if "tag" in body and f["tag"] != "EMAIL":
                candidate["tag"] = _text(body["tag"]).strip()
            errors: dict[str, str] = {}
            if not candidate["label"]:
                errors["label"] = "Label cannot be blank."
            if not _TAG_RE.match(candidate["tag"]):
                errors["tag"] = "Tag must be upper case letters, digits and underscores, starting with a letter."
            elif any(o["tag"] == candidate["tag"] and o is not f for o in st["fields"][list_uid]):
                errors["tag"] = f'Tag "{candidate["tag"]}" has already been taken.'
            if candidate["required"] not in ("yes", "no"):
                errors["required"] = "Required is invalid."
            if candidate.get("visibility", "visible") not in ("visible", "hidden", "none"):
                errors["visibility"] = "Visibility is invalid."
            if not str(candidate.get("sort_order", 0)).lstrip("-").isdigit():
                errors["sort_order"] = "Sort order must be an integer."
            if errors:
                raise HandlerError(422, errors)
            candidate["sort_order"] = int(candidate.get("sort_order", 0))
            if candidate["tag"] != f["tag"]:  # the subscribers' values follow the field
                for sub in self._subs(st, list_uid).values():
                    if f["tag"] in sub["fields"]:
                        sub["fields"][candidate["tag"]] = sub["fields"].pop(f["tag"])
            f.update(candidate)
        return self.ok({"data": {"record": self._field_view(st, list_uid, f)}})

    def h_field_delete(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        f = self._field(st, list_uid, req.params["F"])
        if f["tag"] == "EMAIL":  # MailWizz keeps a list's email field
            raise HandlerError(400, "The EMAIL field cannot be deleted.")
        st["fields"][list_uid].remove(f)
        for sub in self._subs(st, list_uid).values():
            sub["fields"].pop(f["tag"], None)
        return self.ok()

    # -- subscribers ----------------------------------------------------------------------------------------

    def _subs(self, st: State, list_uid: str) -> dict[str, dict[str, Any]]:
        return st["subscribers"].setdefault(list_uid, {})

    def _find_by_email(self, st: State, list_uid: str, email: str) -> dict[str, Any] | None:
        low = email.strip().lower()
        for s in self._subs(st, list_uid).values():
            if s["email"].lower() == low:
                return s
        return None

    def _sub_record(self, st: State, list_uid: str, s: dict[str, Any], *, date: bool = True) -> dict[str, Any]:
        rec: dict[str, Any] = {"subscriber_uid": s["subscriber_uid"], "EMAIL": s["email"]}
        for f in st["fields"].get(list_uid, []):
            if f["tag"] != "EMAIL":
                rec[f["tag"]] = s["fields"].get(f["tag"], "")
        rec.update({"status": s["status"], "source": s["source"], "ip_address": s["ip_address"]})
        if date:
            rec["date_added"] = s["date_added"]
        return rec

    def _total_subscribers(self, st: State) -> int:
        return sum(len(v) for v in st["subscribers"].values())

    def _limit_reached(self, st: State) -> bool:
        limit = st["settings"].get("max_subscribers")
        return limit is not None and self._total_subscribers(st) >= int(limit)

    def _missing_required(
        self, st: State, list_uid: str, body: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> dict[str, str]:
        errors = {}
        for f in st["fields"].get(list_uid, []):
            if f["tag"] == "EMAIL" or f["required"] != "yes":
                continue
            if not _text(body.get(f["tag"])).strip():
                errors[f["tag"]] = f"The field {f['tag']} is required by the list but it has not been provided!"
        return errors

    def _known_values(self, st: State, list_uid: str, body: Mapping[str, Any]) -> dict[str, str]:
        tags = {f["tag"] for f in st["fields"].get(list_uid, [])} - {"EMAIL"}
        return {k: _text(v)[:255] for k, v in body.items() if k in tags}

    def _default_status(self, st: State, list_uid: str) -> str:
        return "confirmed" if st["lists"][list_uid]["general"].get("opt_in") == "single" else "unconfirmed"

    def _set_status(
        self, st: State, list_uid: str, s: dict[str, Any], status: str, *, confirm_mail: bool = True
    ) -> None:
        s["status"] = status
        if status == "blacklisted":
            st["blacklist"].setdefault(
                s["email"].lower(), {"email": s["email"], "date_added": _fmt(self.now(st)), "reason": "api"}
            )
        if status == "unconfirmed" and confirm_mail:
            st["confirmations"].append(
                {
                    "list_uid": list_uid,
                    "subscriber_uid": s["subscriber_uid"],
                    "email": s["email"],
                    "date_added": _fmt(self.now(st)),
                }
            )

    def _requested_status(self, details: Mapping[str, Any]) -> str | None:
        status = _text(details.get("status")).strip()
        return status if status in SUBSCRIBER_STATUSES else None

    def _insert(
        self,
        st: State,
        list_uid: str,
        email: str,
        values: dict[str, str],
        details: Mapping[str, Any],
        existing: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], bool]:
        """Create, or re-subscribe an unsubscribed ``existing`` row in place; returns (subscriber, created)."""
        status = self._requested_status(details) or self._default_status(st, list_uid)
        if existing is not None:  # unsubscribed row: re-subscribed in place, same uid
            existing["fields"].update(values)
            self._set_status(st, list_uid, existing, status)
            return existing, False
        uid = self.uid(st, "subscriber")
        s = {
            "subscriber_uid": uid,
            "email": stored_email(email),
            "status": "",
            "source": (_text(details.get("source")) or "api")[:255],
            "ip_address": _text(details.get("ip_address"))[:45],
            "fields": values,
            "seq": self._seq(st),
            "date_added": _fmt(self.now(st)),
        }
        self._subs(st, list_uid)[uid] = s
        self._set_status(st, list_uid, s, status)
        return s, True

    def _created_record(self, s: dict[str, Any]) -> dict[str, Any]:
        return {
            "subscriber_uid": s["subscriber_uid"],
            "email": s["email"],
            "ip_address": s["ip_address"],
            "source": s["source"],
            "date_added": {"expression": "NOW()", "params": {}},
        }

    def h_subs(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        status = req.query.get("status")
        rows = []
        for s in self._subs(st, list_uid).values():
            if status in SUBSCRIBER_STATUSES and s["status"] != status:
                continue  # unknown statuses are ignored
            rows.append((s["seq"], self._sub_record(st, list_uid, s)))
        return self.collection(req, rows)

    def h_sub_get(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        s = self._subs(st, list_uid).get(req.params["S"])
        if s is None:
            raise HandlerError(404, MSG_SUB_MISSING)
        return self.ok({"data": {"record": self._sub_record(st, list_uid, s, date=False)}})

    def h_search(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        email = req.query.get("EMAIL", "").strip()
        if not email:
            raise HandlerError(422, MSG_EMAIL_MISSING)
        s = self._find_by_email(st, list_uid, email)
        if s is None:
            raise HandlerError(404, MSG_SUB_MISSING)
        return self.ok(
            {"data": {"subscriber_uid": s["subscriber_uid"], "status": s["status"], "date_added": s["date_added"]}}
        )

    def h_search_custom(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        wanted = {k: v for k, v in req.query.items() if k not in ("page", "per_page")}
        rows = []
        for s in self._subs(st, list_uid).values():
            values = dict(s["fields"], EMAIL=s["email"])
            if all(values.get(k, "") == v for k, v in wanted.items()):
                rows.append((s["seq"], self._sub_record(st, list_uid, s)))
        return self.collection(req, rows)

    def h_search_all(self, req: SandboxRequest, st: State) -> Response:
        email = req.query.get("EMAIL", "").strip()
        if not email:
            raise HandlerError(422, MSG_EMAIL_MISSING)
        records = []
        for list_uid, lst in st["lists"].items():
            s = self._find_by_email(st, list_uid, email)
            if s is not None:
                records.append(
                    {
                        "subscriber_uid": s["subscriber_uid"],
                        "email": s["email"],
                        "status": s["status"],
                        "date_added": s["date_added"],
                        "list": {k: lst["general"].get(k) for k in ("list_uid", "display_name", "name")},
                    }
                )
        records = records[:100]
        return self.ok({"data": {"count": len(records), "records": records}})

    def h_sub_create(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        body = self.body(req) or {}
        email = _text(body.get("EMAIL"))
        if php_empty(email):
            raise HandlerError(422, MSG_EMAIL_MISSING)
        if not subscriber_email_valid(email):
            raise HandlerError(422, MSG_EMAIL_INVALID)
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        if int(st.get("mutex_failures", 0)) > 0:
            st["mutex_failures"] = int(st["mutex_failures"]) - 1
            raise HandlerError(409, MSG_MUTEX)
        existing = self._find_by_email(st, list_uid, email)
        if existing is None and self._limit_reached(st):
            raise HandlerError(409, MSG_SUB_LIMIT)
        if existing is not None and existing["status"] != "unsubscribed":
            raise HandlerError(409, MSG_SUB_EXISTS)
        if email.lower() in st["blacklist"]:
            raise HandlerError(409, MSG_BLACKLISTED)
        missing = self._missing_required(st, list_uid, body, None)
        if missing:
            raise HandlerError(422, missing)
        if self.faults.rejects_email(email):
            raise HandlerError(422, MSG_SUB_SAVE)
        values = self._known_values(st, list_uid, body)
        s, _ = self._insert(st, list_uid, email, values, _sub(body, "details"), existing)
        return self.ok({"data": {"record": self._created_record(s)}}, 201)

    def h_sub_update(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        s = self._subs(st, list_uid).get(req.params["S"])
        if s is None:
            raise HandlerError(409, MSG_SUB_MISSING)
        body = self.body(req)
        if body is None:  # multipart PUT: nothing read, success anyway
            return self.ok({"data": {"record": self._created_record(s)}})
        email = _text(body.get("EMAIL"))
        if php_empty(email):
            email = s["email"]
        if not subscriber_email_valid(email):
            raise HandlerError(422, MSG_EMAIL_INVALID)
        other = self._find_by_email(st, list_uid, email)
        if other is not None and other is not s:
            raise HandlerError(409, MSG_SUB_OTHER_EXISTS)
        if email.lower() != s["email"].lower() and email.lower() in st["blacklist"]:
            raise HandlerError(409, MSG_BLACKLISTED)
        missing = self._missing_required(st, list_uid, body, s["fields"])
        if missing:
            raise HandlerError(422, missing)
        s["email"] = stored_email(email)
        s["fields"].update(self._known_values(st, list_uid, body))
        details = _sub(body, "details")
        status = self._requested_status(details)
        if status and status != s["status"]:
            self._set_status(st, list_uid, s, status)
        for k in ("source", "ip_address"):
            if k in details:
                s[k] = _text(details[k])[:255]
        return self.ok({"data": {"record": self._created_record(s)}})

    def h_sub_delete(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        if self._subs(st, list_uid).pop(req.params["S"], None) is None:
            raise HandlerError(404, MSG_SUB_MISSING)
        return self.ok()

    def h_sub_unsub(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        s = self._subs(st, list_uid).get(req.params["S"])
        if s is None:
            raise HandlerError(404, MSG_SUB_MISSING)
        if self.body(req) is not None and s["status"] == "confirmed":
            s["status"] = "unsubscribed"
        return self.ok()

    def h_unsub_all(self, req: SandboxRequest, st: State) -> Response:
        body = self.body(req)
        if body is None:
            return self.ok()
        email = _text(body.get("EMAIL")).strip()
        if not email:
            raise HandlerError(422, MSG_EMAIL_MISSING)
        done = 0
        for list_uid in st["lists"]:
            s = self._find_by_email(st, list_uid, email)
            if s is not None and s["status"] == "confirmed" and done < 1000:
                s["status"] = "unsubscribed"
                done += 1
        return self.ok()

    def h_bulk(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        body = self.body(req) or {}
        items = body.get("subscribers")
        if not isinstance(items, dict) or not items:
            raise HandlerError(422, MSG_BULK_MISSING)
        self._list(st, list_uid, MSG_SUBSCRIBERS_LIST_MISSING)
        if self._limit_reached(st):
            raise HandlerError(409, MSG_SUB_LIMIT)
        tags = [f["tag"] for f in st["fields"][list_uid] if f["tag"] != "EMAIL"]
        seen: set[str] = set()
        index = {s["email"].lower(): s for s in self._subs(st, list_uid).values()}
        records = []
        for raw in list(items.values())[:BULK_CAP]:
            item = raw if isinstance(raw, dict) else {}
            email = _text(item.get("EMAIL"))
            if php_empty(email) or not subscriber_email_valid(email):
                records.append({"data": {"EMAIL": email}, "errors": {"EMAIL": MSG_EMAIL_INVALID}})
                continue
            echo = {"EMAIL": email, **{t: _text(item.get(t)) for t in tags}}
            low = email.lower()
            existing = index.get(low)
            if low in seen or (existing is not None and existing["status"] != "unsubscribed"):
                records.append({"data": echo, "errors": {"EMAIL": MSG_SUB_EXISTS}})
                continue
            if low in st["blacklist"]:
                records.append({"data": echo, "errors": {"EMAIL": MSG_BLACKLISTED}})
                continue
            missing = self._missing_required(st, list_uid, item, None)
            if missing:
                records.append({"data": echo, "errors": missing})
                continue
            if existing is None and self._limit_reached(st):
                records.append({"data": echo, "errors": {"_common": MSG_SUB_LIMIT}})
                continue
            if self.faults.rejects_email(email):
                records.append({"data": echo, "errors": {"_common": MSG_SUB_SAVE}})
                continue
            seen.add(low)
            values = self._known_values(st, list_uid, item)
            s, _ = self._insert(st, list_uid, email, values, _sub(item, "details"), existing)
            index[low] = s
            data: dict[str, Any] = {"EMAIL": s["email"]}
            for t in tags:
                data[t] = s["fields"].get(t) if t in item else None
            data["subscriber_uid"] = s["subscriber_uid"]
            records.append({"data": data})
        return self.ok({"data": {"records": records}}, 201)

    # -- segments -------------------------------------------------------------------------------------------

    def _segment(self, st: State, list_uid: str, uid: str) -> dict[str, Any]:
        self._list(st, list_uid)
        seg = st["segments"].setdefault(list_uid, {}).get(uid)
        if seg is None:
            raise HandlerError(404, MSG_SEGMENT_MISSING)
        return seg

    def _segment_matches(self, st: State, list_uid: str, seg: dict[str, Any], s: dict[str, Any]) -> bool:
        by_id = {str(f["field_id"]): f["tag"] for f in st["fields"].get(list_uid, [])}
        results = []
        for cond in seg.get("conditions", []):
            tag = by_id.get(str(cond.get("field_id")), "")
            value = s["email"] if tag == "EMAIL" else _text(s["fields"].get(tag))
            want = _text(cond.get("value"))
            op = str(cond.get("operator_id"))
            v, w = value.lower(), want.lower()
            ok = {
                "1": v == w,
                "2": v != w,
                "3": w in v,
                "4": w not in v,
                "5": v.startswith(w),
                "6": v.endswith(w),
                "9": not v.startswith(w),
                "10": not v.endswith(w),
            }.get(op, False)
            results.append(ok)
        if not results:
            return True
        return all(results) if seg.get("operator_match") == "all" else any(results)

    def _segment_view(self, st: State, list_uid: str, seg: dict[str, Any]) -> dict[str, Any]:
        count = sum(1 for s in self._subs(st, list_uid).values() if self._segment_matches(st, list_uid, seg, s))
        return {"segment_uid": seg["segment_uid"], "name": seg["name"], "subscribers_count": count}

    def h_segments(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid)
        segs = st["segments"].setdefault(list_uid, {}).values()
        return self.collection(req, [(g["seq"], self._segment_view(st, list_uid, g)) for g in segs])

    def h_segment_get(self, req: SandboxRequest, st: State) -> Response:
        seg = self._segment(st, req.params["L"], req.params["G"])
        return self.ok({"data": {"record": self._segment_view(st, req.params["L"], seg)}})

    def _apply_segment(self, st: State, list_uid: str, seg: dict[str, Any], body: dict[str, Any]) -> None:
        if "name" in body:
            seg["name"] = _text(body["name"]).strip()
        if "operator_match" in body:
            seg["operator_match"] = _text(body["operator_match"])
        if isinstance(body.get("conditions"), dict):
            seg["conditions"] = [c for c in body["conditions"].values() if isinstance(c, dict)]
        errors = {}
        if not seg.get("name"):
            errors["name"] = "Name cannot be blank."
        if seg.get("operator_match") not in ("any", "all"):
            errors["operator_match"] = "Operator match is invalid."
        ids = {str(f["field_id"]) for f in st["fields"].get(list_uid, [])}
        for c in seg.get("conditions", []):
            if str(c.get("field_id")) not in ids:
                errors["conditions"] = "Invalid field id."
        if errors:
            raise HandlerError(422, errors)

    def h_segment_create(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        self._list(st, list_uid)
        seg: dict[str, Any] = {"name": "", "operator_match": "any", "conditions": []}
        self._apply_segment(st, list_uid, seg, self.body(req) or {})
        seg["segment_uid"] = self.uid(st, "segment")
        seg["seq"] = self._seq(st)
        st["segments"].setdefault(list_uid, {})[seg["segment_uid"]] = seg
        return self.ok({"segment_uid": seg["segment_uid"]}, 201)

    def h_segment_update(self, req: SandboxRequest, st: State) -> Response:
        seg = self._segment(st, req.params["L"], req.params["G"])
        body = self.body(req)
        if body is not None:
            candidate = json.loads(json.dumps(seg))
            self._apply_segment(st, req.params["L"], candidate, body)
            seg.update(candidate)
        return self.ok()

    def h_segment_operators(self, req: SandboxRequest, st: State) -> Response:
        rows = [(-i, {"operator_id": i, "name": name, "slug": slug}) for i, name, slug in SEGMENT_OPERATORS]
        return self.collection(req, rows)

    def h_segment_delete(self, req: SandboxRequest, st: State) -> Response:
        self._segment(st, req.params["L"], req.params["G"])
        st["segments"][req.params["L"]].pop(req.params["G"])
        return self.ok()

    def h_segment_subs(self, req: SandboxRequest, st: State) -> Response:
        list_uid = req.params["L"]
        seg = self._segment(st, list_uid, req.params["G"])
        rows = [
            (s["seq"], self._sub_record(st, list_uid, s))
            for s in self._subs(st, list_uid).values()
            if self._segment_matches(st, list_uid, seg, s)
        ]
        return self.collection(req, rows)

    # -- templates ------------------------------------------------------------------------------------------

    def _template(self, st: State, uid: str) -> dict[str, Any]:
        t = st["templates"].get(uid)
        if t is None:
            raise HandlerError(404, MSG_TEMPLATE_MISSING)
        return t

    def h_templates(self, req: SandboxRequest, st: State) -> Response:
        name = _text(_sub(nest_brackets(req.query), "filter").get("name")).lower()
        rows = [
            (t["seq"], {"template_uid": t["template_uid"], "name": t["name"], "screenshot": t["screenshot"]})
            for t in st["templates"].values()
            if name in t["name"].lower()
        ]
        return self.collection(req, rows)

    def h_template_get(self, req: SandboxRequest, st: State) -> Response:
        t = self._template(st, req.params["T"])
        return self.ok(
            {"data": {"record": {"name": t["name"], "content": t["content"], "screenshot": t["screenshot"]}}}
        )

    def _apply_template(self, t: dict[str, Any], body: dict[str, Any], *, create: bool) -> None:
        data = _sub(body, "template")
        if "name" in data:
            t["name"] = _text(data["name"]).strip()
        if data.get("content"):
            t["content"] = b64decode_field(_text(data["content"]), "content")
        elif data.get("archive"):
            b64decode_field(_text(data["archive"]), "archive")
            t["content"] = "<html><body>(archive)</body></html>"
        if "inline_css" in data:
            t["inline_css"] = _text(data["inline_css"])
        errors = {}
        if not t.get("name"):
            errors["name"] = "Name cannot be blank."
        if create and not t.get("content"):
            errors["content"] = "Content cannot be blank."
        if errors:
            raise HandlerError(422, errors)

    def h_template_create(self, req: SandboxRequest, st: State) -> Response:
        t: dict[str, Any] = {"name": "", "content": "", "screenshot": None, "inline_css": "no"}
        self._apply_template(t, self.body(req) or {}, create=True)
        t["template_uid"] = self.uid(st, "template")
        t["seq"] = self._seq(st)
        t["date_added"] = _fmt(self.now(st))
        st["templates"][t["template_uid"]] = t
        return self.ok({"template_uid": t["template_uid"]}, 201)

    def h_template_update(self, req: SandboxRequest, st: State) -> Response:
        t = self._template(st, req.params["T"])
        body = self.body(req)
        if body is not None:
            candidate = dict(t)
            self._apply_template(candidate, body, create=False)
            t.update(candidate)
        return self.ok()

    def h_template_delete(self, req: SandboxRequest, st: State) -> Response:
        self._template(st, req.params["T"])
        del st["templates"][req.params["T"]]
        return self.ok()

    # -- campaigns ------------------------------------------------------------------------------------------

    def _campaign(self, st: State, uid: str, message: str = MSG_CAMPAIGN_MISSING) -> dict[str, Any]:
        c = st["campaigns"].get(uid)
        if c is None or c["status"] == "pending-delete":
            raise HandlerError(404, message)
        return c

    def _parse_send_at(self, value: str) -> str:
        try:
            return datetime.strptime(value.strip(), DATE_FMT).strftime(DATE_FMT)
        except ValueError:
            raise HandlerError(422, {"send_at": "Send at is not a valid date."}) from None

    def _apply_campaign(self, st: State, c: dict[str, Any], body: dict[str, Any], *, create: bool) -> None:
        data = _sub(body, "campaign")
        for k in ("name", "from_name", "from_email", "subject", "reply_to"):
            if k in data:
                c[k] = _text(data[k]).strip()
        if data.get("send_at"):
            c["send_at"] = self._parse_send_at(_text(data["send_at"]))
        if "list_uid" in data:
            c["list_uid"] = _text(data["list_uid"]).strip()
        if "segment_uid" in data:
            c["segment_uid"] = _text(data["segment_uid"]).strip() or None
        if "status" in data:
            status = _text(data["status"]).strip()
            if status not in CAMPAIGN_STATUSES_SETTABLE:
                raise HandlerError(422, {"status": "Status is invalid."})
            c["status"] = status
        if isinstance(data.get("options"), dict):
            c["options"].update({k: _text(v) for k, v in data["options"].items()})
        errors: dict[str, str] = {}
        for k, label in (
            ("name", "Name"),
            ("from_name", "From name"),
            ("from_email", "From email"),
            ("subject", "Subject"),
            ("reply_to", "Reply to"),
            ("send_at", "Send at"),
            ("list_uid", "List uid"),
        ):
            if not c.get(k):
                errors[k] = f"{label} cannot be blank."
        for k, label in (("from_email", "From email"), ("reply_to", "Reply to")):
            if c.get(k) and not valid_email(c[k]):
                errors[k] = f"{label} is not a valid email address."
        if errors:
            raise HandlerError(422, errors)
        if c["list_uid"] not in st["lists"]:
            raise HandlerError(422, MSG_PROVIDED_LIST)
        if c.get("segment_uid") and c["segment_uid"] not in st["segments"].get(c["list_uid"], {}):
            raise HandlerError(422, MSG_PROVIDED_SEGMENT)
        template = _sub(data, "template")
        if template.get("template_uid"):
            t = st["templates"].get(_text(template["template_uid"]))
            if t is None:
                raise HandlerError(422, MSG_PROVIDED_TEMPLATE)
            c["content"] = t["content"]
        elif template.get("content"):
            c["content"] = b64decode_field(_text(template["content"]), "content")
        elif template.get("archive"):
            b64decode_field(_text(template["archive"]), "archive")
            c["content"] = "<html><body>(archive)</body></html>"
        if template.get("plain_text"):
            c["plain_text"] = b64decode_field(_text(template["plain_text"]), "plain_text")
        if create and not c.get("content"):
            raise HandlerError(422, MSG_NO_TEMPLATE)

    def _campaign_summary(self, c: dict[str, Any]) -> dict[str, Any]:
        return {
            "campaign_uid": c["campaign_uid"],
            "type": c["type"],
            "name": c["name"],
            "status": c["status"],
            # MailWizz answers an empty array without a group, ``{group_uid, name}`` with one; never null
            "group": dict(c["group"]) if isinstance(c.get("group"), dict) else [],
        }

    def _campaign_view(self, st: State, c: dict[str, Any]) -> dict[str, Any]:
        lst = st["lists"].get(c["list_uid"])
        view = self._campaign_summary(c)
        view.update(
            {
                "from_name": c["from_name"],
                "from_email": c["from_email"],
                "reply_to": c["reply_to"],
                "subject": c["subject"],
                "send_at": c["send_at"],
                "date_added": c["date_added"],
                "list": {
                    "list_uid": c["list_uid"],
                    "name": lst["general"]["name"] if lst else None,
                    "subscribers_count": self._confirmed_count(st, c["list_uid"]),
                },
                # [] without a segment, as MailWizz answers it; with one: uid, name and its subscriber count
                "segment": self._campaign_segment(st, c),
            }
        )
        return view

    def _campaign_segment(self, st: State, c: dict[str, Any]) -> dict[str, Any] | list[Any]:
        seg = st["segments"].get(c["list_uid"], {}).get(c.get("segment_uid") or "")
        if seg is None:
            return []
        view = self._segment_view(st, c["list_uid"], seg)
        return {
            "segment_uid": view["segment_uid"],
            "name": view["name"],
            "subscribers_count": view["subscribers_count"],
        }

    def _confirmed_count(self, st: State, list_uid: str) -> int:
        return sum(1 for s in st["subscribers"].get(list_uid, {}).values() if s["status"] == "confirmed")

    def _check_campaign_limits(self, st: State) -> None:
        limit = st["settings"].get("max_campaigns")
        live = [c for c in st["campaigns"].values() if c["status"] != "pending-delete"]
        if limit is not None and len(live) >= int(limit):
            raise HandlerError(403, MSG_CAMPAIGN_LIMIT)

    def h_campaigns(self, req: SandboxRequest, st: State) -> Response:
        # list_uid is accepted and ignored, as on some MailWizz versions [U]
        rows = [
            (c["seq"], self._campaign_summary(c)) for c in st["campaigns"].values() if c["status"] != "pending-delete"
        ]
        return self.collection(req, rows)

    def h_campaign_get(self, req: SandboxRequest, st: State) -> Response:
        return self.ok({"data": {"record": self._campaign_view(st, self._campaign(st, req.params["C"]))}})

    def _blank_campaign(self) -> dict[str, Any]:
        return {
            "type": "regular",
            "name": "",
            "from_name": "",
            "from_email": "",
            "subject": "",
            "reply_to": "",
            "send_at": "",
            "list_uid": "",
            "segment_uid": None,
            "status": "pending-sending",
            "options": {},
            "content": "",
        }

    def h_campaign_create(self, req: SandboxRequest, st: State) -> Response:
        body = self.body(req) or {}
        self._check_campaign_limits(st)
        if self._quota_reached(st):
            raise HandlerError(403, MSG_QUOTA)
        c = self._blank_campaign()
        self._apply_campaign(st, c, body, create=True)
        uid = self.uid(st, "campaign")
        c.update({"campaign_uid": uid, "seq": self._seq(st), "date_added": _fmt(self.now(st)), "delivered": False})
        st["campaigns"][uid] = c
        self._tick_campaign(st, c, self.now(st))
        return self.ok({"campaign_uid": uid}, 201)

    def h_campaign_update(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"])
        body = self.body(req)
        if body is None:
            return self.ok()
        if c["status"] not in EDITABLE:
            raise HandlerError(422, MSG_NOT_EDITABLE)
        candidate = json.loads(json.dumps(c))
        self._apply_campaign(st, candidate, body, create=False)
        c.update(candidate)
        self._tick_campaign(st, c, self.now(st))
        return self.ok()

    def h_campaign_delete(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"])
        if c["status"] in ("sending", "processing"):
            raise HandlerError(400, MSG_NO_DELETE)
        del st["campaigns"][c["campaign_uid"]]
        return self.ok()

    def h_campaign_copy(self, req: SandboxRequest, st: State) -> Response:
        src = self._campaign(st, req.params["C"])
        try:
            self._check_campaign_limits(st)
        except HandlerError:
            raise HandlerError(400, MSG_NO_COPY) from None
        c = json.loads(json.dumps(src))
        uid = self.uid(st, "campaign")
        c.update(
            {
                "campaign_uid": uid,
                "name": f"{src['name']} (copy)",
                "status": "draft",
                "seq": self._seq(st),
                "date_added": _fmt(self.now(st)),
                "delivered": False,
                "sent_at": None,
            }
        )
        st["campaigns"][uid] = c
        return self.ok({"campaign_uid": uid})

    def h_campaign_pause(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"])
        if c["status"] == "paused":
            c["status"] = "sending"
            c["sending_since"] = max(self.now(st), self._send_at_utc(st, c)).isoformat()
            self._tick_campaign(st, c, self.now(st))
        elif c["status"] in ("pending-sending", "sending", "processing"):
            c["status"] = "paused"
        # anything else (a draft, a sent campaign) is left as it is, still answered 200 with its status
        return self.ok({"campaign": {"status": c["status"]}})

    def h_campaign_mark_sent(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"])
        if c["status"] not in ("sending", "processing", "paused"):
            raise HandlerError(400, MSG_NO_MARK_SENT)
        c["status"] = "sent"
        c["sent_at"] = _fmt(self.now(st))
        return self.ok({"campaign": {"status": "sent"}})

    # lifecycle ------------------------------------------------------------------------------------------------

    def tick(self, state: State, now: datetime) -> None:
        if "campaigns" not in state:
            return
        for c in list(state["campaigns"].values()):
            self._tick_campaign(state, c, now)
        for uid, events in state["events"].items():
            for ev in events:
                if not ev.get("applied") and datetime.fromisoformat(ev["at"]) <= now:
                    ev["applied"] = True
                    self._apply_event(state, uid, ev)
        for e in state["transactional"].values():
            if e["status"] == "unsent" and datetime.strptime(e["send_at"], DATE_FMT).replace(tzinfo=UTC) <= now:
                e["status"] = "sent"
                e["last_updated"] = _fmt(now)
                state["quota"]["used"] = int(state["quota"]["used"]) + 1

    def _send_at_utc(self, st: State, c: dict[str, Any]) -> datetime:
        """A campaign's ``send_at`` is wall time in the customer's configured timezone."""
        return datetime.strptime(c["send_at"], DATE_FMT).replace(tzinfo=self._tz(st)).astimezone(UTC)

    def _tick_campaign(self, st: State, c: dict[str, Any], now: datetime) -> None:
        if c["status"] == "pending-sending":
            send_at = self._send_at_utc(st, c)
            if send_at <= now:
                c["status"] = "sending"
                c["sending_since"] = send_at.isoformat()
        if c["status"] == "sending":
            since = datetime.fromisoformat(c["sending_since"]) if c.get("sending_since") else now
            if now < since:
                return  # unpaused before its send_at: waits like a pending campaign
            if not c.get("delivered"):
                self._deliver(st, c, since)
            if now >= since + timedelta(seconds=int(st["settings"].get("send_duration_s", 60))):
                c["status"] = "sent"
                c["sent_at"] = _fmt(now)

    def _recipients(self, st: State, c: dict[str, Any]) -> list[dict[str, Any]]:
        subs = sorted(st["subscribers"].get(c["list_uid"], {}).values(), key=lambda s: s["seq"])
        seg = st["segments"].get(c["list_uid"], {}).get(c.get("segment_uid") or "")
        return [
            s
            for s in subs
            if s["status"] == "confirmed" and (seg is None or self._segment_matches(st, c["list_uid"], seg, s))
        ]

    def _deliver(self, st: State, c: dict[str, Any], at: datetime) -> None:
        c["delivered"] = True
        logs = st["delivery_logs"].setdefault(c["campaign_uid"], [])
        events = st["events"].setdefault(c["campaign_uid"], [])
        uid = c["campaign_uid"]
        for s in self._recipients(st, c):
            blacklisted = s["email"].lower() in st["blacklist"]
            message_id = hashlib.sha1(f"{uid}:{s['subscriber_uid']}".encode()).hexdigest()[:32]  # noqa: S324
            logs.append(
                {
                    "seq": self._seq(st),
                    "campaign": {"campaign_uid": uid},
                    "subscriber": {"subscriber_uid": s["subscriber_uid"], "email": s["email"]},
                    "message": "The email address is blacklisted." if blacklisted else "OK",
                    "retries": 0,
                    "email_message_id": f"{message_id}@pakat.net",
                    "delivery_confirmed": "no" if blacklisted else "yes",
                    "status": "blacklisted" if blacklisted else "success",
                    "date_added": _fmt(at),
                }
            )
            if blacklisted:
                continue
            st["quota"]["used"] = int(st["quota"]["used"]) + 1
            events.extend(self._outcomes(uid, s, at))

    def _outcomes(self, campaign_uid: str, s: dict[str, Any], at: datetime) -> list[dict[str, Any]]:
        """The seeded fate of one delivered message: its bounce, opens, clicks, unsubscribe, complaint."""
        sid = s["subscriber_uid"]

        def roll(kind: str) -> bool:
            return _hash_fraction(self.seed, campaign_uid, sid, kind) < OUTCOME_RATES[kind]

        def when(kind: str) -> str:
            delay = 60 + _hash_fraction(self.seed, campaign_uid, sid, kind, "t") * EVENT_WINDOW_S
            return (at + timedelta(seconds=delay)).isoformat()

        base = {"subscriber_uid": sid, "email": s["email"], "applied": False}
        if roll("hard_bounce"):
            return [dict(base, type="bounce", bounce_type="hard", at=(at + timedelta(seconds=30)).isoformat())]
        if roll("soft_bounce"):
            return [dict(base, type="bounce", bounce_type="soft", at=(at + timedelta(seconds=30)).isoformat())]
        out = []
        if roll("open"):
            opened = when("open")

            def after_open(kind: str) -> str:  # a click, unsubscribe or complaint follows the first open
                earliest = datetime.fromisoformat(opened) + timedelta(seconds=60)
                return max(datetime.fromisoformat(when(kind)), earliest).isoformat()

            out.append(dict(base, type="open", at=opened))
            clicks = roll("click")
            if clicks:
                out.append(dict(base, type="click", at=after_open("click")))
            if _hash_fraction(self.seed, campaign_uid, sid, "reopen") < 0.3:
                out.append(dict(base, type="open", at=when("reopen")))
            if roll("unsubscribe"):
                out.append(dict(base, type="unsubscribe", at=after_open("unsubscribe")))
            elif roll("complaint"):
                out.append(dict(base, type="complaint", at=after_open("complaint")))
        return out

    def _apply_event(self, st: State, campaign_uid: str, ev: dict[str, Any]) -> None:
        c = st["campaigns"].get(campaign_uid)
        list_uid = c["list_uid"] if c else None
        s = st["subscribers"].get(list_uid or "", {}).get(ev["subscriber_uid"])
        if ev["type"] == "unsubscribe" and s is not None and s["status"] == "confirmed":
            s["status"] = "unsubscribed"
        if ev["type"] == "bounce" and ev.get("bounce_type") == "hard":
            if s is not None:
                s["status"] = "blacklisted"
            st["blacklist"].setdefault(
                ev["email"].lower(), {"email": ev["email"], "date_added": _fmt(self.now(st)), "reason": "hard bounce"}
            )

    def _due_events(self, st: State, uid: str) -> list[dict[str, Any]]:
        return [e for e in st["events"].get(uid, []) if e.get("applied")]

    def h_campaign_stats(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"])
        uid = c["campaign_uid"]
        logs = st["delivery_logs"].get(uid, [])
        events = self._due_events(st, uid)
        processed = len(logs)
        success = sum(1 for entry in logs if entry["status"] == "success")
        errors = processed - success
        bounces = [e for e in events if e["type"] == "bounce"]
        hard = sum(1 for e in bounces if e["bounce_type"] == "hard")
        soft = sum(1 for e in bounces if e["bounce_type"] == "soft")
        internal = sum(1 for e in bounces if e["bounce_type"] == "internal")
        opens = [e for e in events if e["type"] == "open"]
        clicks = [e for e in events if e["type"] == "click"]
        unsubs = sum(1 for e in events if e["type"] == "unsubscribe")
        complaints = sum(1 for e in events if e["type"] == "complaint")
        engaged = success - len(bounces)
        counts = {
            "delivery_success": (success, processed),
            "delivery_error": (errors, processed),
            "opens": (len(opens), engaged),
            "unique_opens": (len({e["subscriber_uid"] for e in opens}), engaged),
            "clicks": (len(clicks), engaged),
            "unique_clicks": (len({e["subscriber_uid"] for e in clicks}), engaged),
            "unsubscribes": (unsubs, processed),
            "complaints": (complaints, processed),
            "bounces": (len(bounces), processed),
            "hard_bounces": (hard, len(bounces)),
            "soft_bounces": (soft, len(bounces)),
            "internal_bounces": (internal, len(bounces)),
        }
        data: dict[str, Any] = {
            "campaign_status": c["status"],
            "subscribers_count": self._confirmed_count(st, c["list_uid"]),
            "processed_count": processed,
        }
        for name, (num, den) in counts.items():
            data[f"{name}_count"] = num
            data[f"{name}_rate"] = _pct(num, den)
        return self.ok({"data": data})

    def h_campaign_logs(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"], MSG_CAMPAIGN_MISSING_LOGS)
        logs = st["delivery_logs"].get(c["campaign_uid"], [])
        return self.collection(req, [(e["seq"], {k: v for k, v in e.items() if k != "seq"}) for e in logs])

    def h_log_by_message_id(self, req: SandboxRequest, st: State) -> Response:
        for logs in st["delivery_logs"].values():
            for e in logs:
                if e["email_message_id"] == req.params["M"]:
                    return self.ok({"data": {"record": {k: v for k, v in e.items() if k != "seq"}}})
        raise HandlerError(404, MSG_LOG_MISSING)

    def _event_rows(self, st: State, c: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
        rows = []
        for i, e in enumerate(self._due_events(st, c["campaign_uid"])):
            if e["type"] != kind:
                continue
            rec: dict[str, Any] = {
                "subscriber": {"subscriber_uid": e["subscriber_uid"], "email": e["email"]},
                "date_added": _fmt(datetime.fromisoformat(e["at"])),
            }
            if kind == "bounce":
                rec = {
                    "bounce_type": e["bounce_type"],
                    "message": e.get("message")
                    or ("550 5.1.1 User unknown" if e["bounce_type"] == "hard" else "452 Mailbox full"),
                    **rec,
                }
            else:
                rec = {"reason": e.get("reason") or "Unsubscribed via the web form", **rec}
            rows.append((i, rec))
        return rows

    def h_campaign_bounces(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"], MSG_CAMPAIGN_MISSING_LOGS)
        return self.collection(req, self._event_rows(st, c, "bounce"))

    def h_campaign_unsubs(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"], MSG_CAMPAIGN_MISSING_LOGS)
        return self.collection(req, self._event_rows(st, c, "unsubscribe"))

    def _campaign_subscriber(self, st: State, c: dict[str, Any], subscriber_uid: str) -> dict[str, Any]:
        """A subscriber by uid, looked up in every list (as MailWizz's tracking and bounce endpoints do)."""
        for subs in st["subscribers"].values():
            if subscriber_uid in subs:
                return subs[subscriber_uid]
        raise HandlerError(404, MSG_SUBSCRIBER_MISSING)

    def _record_event(self, st: State, c: dict[str, Any], s: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
        ev = {
            "subscriber_uid": s["subscriber_uid"],
            "email": s["email"],
            "type": kind,
            "at": self.now(st).isoformat(),
            "applied": True,
            **extra,
        }
        st["events"].setdefault(c["campaign_uid"], []).append(ev)
        self._apply_event(st, c["campaign_uid"], ev)
        return ev

    def h_campaign_bounce_create(self, req: SandboxRequest, st: State) -> Response:
        """MailWizz's bounce create: campaign, then subscriber (any list), one bounce per pair, type defaults
        to internal, message to "BOUNCED BACK" cut to 250; a hard bounce blacklists the address."""
        c = self._campaign(st, req.params["C"], MSG_CAMPAIGN_MISSING_LOGS)
        body = self.body(req) or {}
        subscriber_uid = _text(body.get("subscriber_uid")).strip()
        if not subscriber_uid:
            raise HandlerError(404, "The subscriber does not exist!")
        try:
            s = self._campaign_subscriber(st, c, subscriber_uid)
        except HandlerError:
            raise HandlerError(404, "The subscriber does not exist!") from None
        events = st["events"].get(c["campaign_uid"], [])
        if any(e["type"] == "bounce" and e["subscriber_uid"] == subscriber_uid and e.get("applied") for e in events):
            raise HandlerError(422, "This subscriber has already been marked as bounced!")
        bounce_type = _text(body.get("bounce_type")) if "bounce_type" in body else "internal"
        message = (_text(body.get("message")) if "message" in body else "BOUNCED BACK")[:250]
        if bounce_type not in BOUNCE_TYPES:
            raise HandlerError(422, "Invalid bounce type!")
        self._record_event(st, c, s, "bounce", bounce_type=bounce_type, message=message)
        record = {
            "message": message,
            "processed": "no",
            "bounce_type": bounce_type,
            "subscriber": {"subscriber_uid": s["subscriber_uid"], "email": s["email"]},
        }
        return self.ok({"data": {"record": record}}, 201)

    def _campaign_urls(self, c: dict[str, Any]) -> dict[str, str]:
        """hash -> destination of each link of the campaign's content (MailWizz stores them per campaign)."""
        urls = re.findall(r'href="(https?://[^"]+)"', c.get("content") or "")
        return {hashlib.sha1(f"{c['campaign_uid']}:{u}".encode()).hexdigest(): u for u in urls}  # noqa: S324

    def h_track_url(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"], MSG_TRACK_CAMPAIGN_MISSING)
        s = self._campaign_subscriber(st, c, req.params["S"])
        destination = self._campaign_urls(c).get(req.params["H"])
        if destination is None:
            raise HandlerError(404, "The url hash does not exist.")
        events = self._due_events(st, c["campaign_uid"])
        if not any(e["type"] == "open" and e["subscriber_uid"] == s["subscriber_uid"] for e in events):
            self._record_event(st, c, s, "open")  # a first click also counts as the open
        self._record_event(st, c, s, "click", url=destination)
        track = f"https://new.pakat.net/campaigns/track-url/{c['campaign_uid']}/{s['subscriber_uid']}/{req.params['H']}"
        return self.ok({"data": {"track_url": track, "destination": destination}})

    def h_track_opening(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"], MSG_TRACK_CAMPAIGN_MISSING)
        s = self._campaign_subscriber(st, c, req.params["S"])
        self._record_event(st, c, s, "open")
        return self.ok({"data": []})

    def h_track_unsubscribe(self, req: SandboxRequest, st: State) -> Response:
        c = self._campaign(st, req.params["C"], MSG_TRACK_CAMPAIGN_MISSING)
        s = self._campaign_subscriber(st, c, req.params["S"])
        if s["status"] != "confirmed":
            return self.ok()  # nothing to do, still a success
        body = self.body(req) or {}
        self._record_event(
            st,
            c,
            s,
            "unsubscribe",
            reason=(_text(body.get("reason")).strip() or "Unsubscribed via API!")[:255],
            ip_address=_text(body.get("ip_address")).strip()[:45] or None,
        )
        return self.ok()

    # -- countries, customers, delivery servers, sending domains -----------------------------------------------

    def h_countries(self, req: SandboxRequest, st: State) -> Response:
        rows = [(-cid, {"country_id": cid, "name": name, "code": code}) for cid, name, code in COUNTRIES]
        return self.collection(req, sorted(rows, key=lambda r: -r[0]))

    def h_zones(self, req: SandboxRequest, st: State) -> Response:
        cid = int(req.params["N"])
        if cid not in {c[0] for c in COUNTRIES}:
            raise HandlerError(404, MSG_COUNTRY_MISSING)
        rows = [(-zid, {"zone_id": zid, "name": name, "code": code}) for zid, name, code in ZONES.get(cid, ())]
        return self.collection(req, rows)

    def _registration(self, st: State) -> dict[str, Any]:
        return st["settings"].setdefault(
            "customer_registration",
            {"enabled": True, "company_required": False, "require_approval": False, "confirm_email": False},
        )

    def h_customer_create(self, req: SandboxRequest, st: State) -> Response:
        """MailWizz's registration: errors under ``general`` (the customer) or ``company``, 422; a company's
        country and zone given by name; the answer says whether an email confirmation or approval follows."""
        reg = self._registration(st)
        if not reg["enabled"]:
            raise HandlerError(400, "Customer creation is disabled.")
        body = self.body(req) or {}
        cust, company = _sub(body, "customer"), _sub(body, "company")
        v = {k: _text(cust.get(k)).strip() for k in cust}
        errors: dict[str, str] = {}
        for k, label in (
            ("first_name", "First name"),
            ("last_name", "Last name"),
            ("email", "Email"),
            ("confirm_email", "Confirm email"),
            ("password", "Password"),
            ("confirm_password", "Confirm password"),
            ("timezone", "Timezone"),
        ):
            if not v.get(k):
                errors[k] = f"{label} cannot be blank."
        customers = st.setdefault("customers", {})
        if v.get("email") and not valid_email(v["email"]):
            errors["email"] = "Email is not a valid email address."
        elif v.get("email") and any(c["email"].lower() == v["email"].lower() for c in customers.values()):
            errors["email"] = f'Email "{v["email"]}" has already been taken.'
        if v.get("email") and v.get("confirm_email") and v["email"] != v["confirm_email"]:
            errors["confirm_email"] = "Confirm email must be repeated exactly."
        if v.get("password") and v.get("confirm_password") and v["password"] != v["confirm_password"]:
            errors["confirm_password"] = "Confirm password must be repeated exactly."  # noqa: S105
        if v.get("password") and len(v["password"]) < 6:
            errors["password"] = "Password is too short (minimum is 6 characters)."  # noqa: S105
        if v.get("timezone"):
            try:
                ZoneInfo(v["timezone"])
            except (ValueError, KeyError):
                errors["timezone"] = "Timezone is invalid."
        if errors:
            raise HandlerError(422, {"general": errors})
        stored_company: dict[str, Any] = {}
        if reg["company_required"]:
            cv = {k: _text(val).strip() for k, val in company.items()}
            country = next((c for c in COUNTRIES if c[1] == cv.get("country")), None) if cv.get("country") else None
            if cv.get("country") and country is None:
                msg = "Unable to find the specified country, please double check the spelling!"
                raise HandlerError(422, {"company": {"country_id": msg}})
            if cv.get("zone") and country is not None:
                zone = next((z for z in ZONES.get(country[0], ()) if z[1] == cv["zone"]), None)
                if zone is None:
                    msg = "Unable to find the specified zone, please double check the spelling!"
                    raise HandlerError(422, {"company": {"zone_id": msg}})
                cv["zone_id"] = str(zone[0])
            company_errors = {
                k: f"{label} cannot be blank."
                for k, label in (
                    ("name", "Company"),
                    ("address_1", "Address"),
                    ("city", "City"),
                    ("zip_code", "Zip code"),
                )
                if not cv.get(k)
            }
            if country is None:
                company_errors["country_id"] = "Country cannot be blank."
            if company_errors:
                raise HandlerError(422, {"company": company_errors})
            cv.pop("country", None)
            cv.pop("zone", None)
            stored_company = dict(cv, country_id=str(country[0]) if country else "")
        status = "active"
        if reg["require_approval"]:
            status = "pending-active"
        if reg["confirm_email"]:
            status = "pending-confirm"
        uid = self.uid(st, "customer")
        customers[uid] = {
            "customer_uid": uid,
            "first_name": v["first_name"],
            "last_name": v["last_name"],
            "email": v["email"],
            "timezone": v["timezone"],
            "company": stored_company,
            "status": status,
            "date_added": _fmt(self.now(st)),
        }
        answer = {
            "customer_uid": uid,
            "must_confirm_email": bool(reg["confirm_email"]),
            "require_approval": bool(reg["require_approval"]),
            "list_subscribe_result": {"status": "disabled", "message": "Feature is not enabled."},
        }
        return self.ok(answer, 201)

    def _servers(self, st: State) -> list[dict[str, Any]]:
        return st.setdefault(
            "delivery_servers",
            [
                {
                    "server_id": 1,
                    "name": "Pakat shared pool",
                    "hostname": "smtp.pakat.net",
                    "type": "smtp",
                    "status": "active",
                    "from_email": "no-reply@pakat.net",
                    "from_name": "Pakat",
                    "hourly_quota": 0,
                    "daily_quota": 0,
                    "monthly_quota": 0,
                }
            ],
        )

    def h_delivery_servers(self, req: SandboxRequest, st: State) -> Response:
        return self.collection(req, [(s["server_id"], dict(s)) for s in self._servers(st)])

    def h_delivery_server(self, req: SandboxRequest, st: State) -> Response:
        for s in self._servers(st):
            if str(s["server_id"]) == req.params["N"]:
                return self.ok({"data": {"record": dict(s)}})
        raise HandlerError(404, MSG_SERVER_MISSING)

    def h_sending_domain(self, req: SandboxRequest, st: State) -> Response:
        name = req.params["D"].strip().lower()
        domains = [d.lower() for d in st["settings"].get("verified_domains", [])]
        if name not in domains:
            raise HandlerError(404, MSG_DOMAIN_MISSING)
        record = {
            "domain_id": domains.index(name) + 1,
            "name": name,
            "verified": "yes",
            "signing_enabled": "yes",
            "date_added": _fmt(self.now(st)),
        }
        return self.ok({"data": {"record": record}})

    # -- transactional emails --------------------------------------------------------------------------------
    #
    # MailWizz's API TransactionalEmailsController (checked against the MailWizz 2.1 sources). The view
    # (``actionView``) answers the stored row as ``getAttributes()`` gives it, less ``email_id``, merged with
    # ``attachments`` [{type, name, content (base64 of the stored file)}]; the listing (``actionIndex``) answers
    # the same attributes without ``attachments``. Not verified, so not modelled: whether Pakat's PHP returns the
    # integer columns as numbers (PHP 8.1+ with emulated prepares) or as strings (older PHP): the sandbox answers
    # numbers, the client reads either; and the attachment's MIME check, which MailWizz makes on the decoded
    # file's content (PHP's finfo) against the types of the allowed extensions.

    def _tx(self, st: State, uid: str) -> dict[str, Any]:
        e = st["transactional"].get(uid)
        if e is None:
            raise HandlerError(404, MSG_EMAIL_DOC_MISSING)
        return e

    def _tx_attachment_options(self, st: State) -> dict[str, Any]:
        """MailWizz's back-office transactional attachment settings (``OptionTransactionalEmailAttachment``).
        MailWizz ships them off, five files of 1 MiB, its eleven office and image extensions; [A] Pakat documents
        three attachments, so the sandbox has them on with three files."""
        return st["settings"].setdefault(
            "transactional_attachments",
            {
                "enabled": True,
                "allowed_files_count": 3,
                "allowed_file_size": TX_ATTACHMENT_SIZE,
                "allowed_extensions": list(TX_ATTACHMENT_EXTENSIONS),
            },
        )

    def _tx_view(self, e: dict[str, Any], *, attachments: bool = False) -> dict[str, Any]:
        view = {k: e.get(k, TX_COLUMN_DEFAULTS.get(k)) for k in TX_ATTRIBUTES}
        if attachments:
            view["attachments"] = [
                {"type": a["type"], "name": a["name"], "content": a["content"]} for a in e.get("attachments", [])
            ]
        return view

    def h_tx_list(self, req: SandboxRequest, st: State) -> Response:
        return self.collection(req, [(e["seq"], self._tx_view(e)) for e in st["transactional"].values()])

    def h_tx_get(self, req: SandboxRequest, st: State) -> Response:
        return self.ok({"data": {"record": self._tx_view(self._tx(st, req.params["E"]), attachments=True)}})

    def h_tx_delete(self, req: SandboxRequest, st: State) -> Response:
        self._tx(st, req.params["E"])
        del st["transactional"][req.params["E"]]
        return self.ok()

    def h_tx_create(self, req: SandboxRequest, st: State) -> Response:
        """``actionCreate``: ``email[..]`` assigned as the model's safe attributes, so ``plain_text`` and
        ``priority`` (no validation rule names them) are dropped and the plain text is derived from the body;
        the model validated, then saved (an address on the blacklist refused there); then the attachments, all
        in one transaction: any error answers 422 and nothing is kept."""
        data = _sub(self.body(req) or {}, "email")
        given = {k: _text(data[k]) for k in TX_SAFE_ATTRIBUTES if k in data}
        errors: dict[str, str] = {}

        def error(attr: str, message: str) -> None:
            errors.setdefault(attr, message)  # MailWizz's short errors: each attribute's first

        body, body_problem = "", ("", "")
        template_uid = _text(data.get("template_uid")).strip()
        if template_uid:  # [A] Pakat's addition: a stored template, {{ params.k }} filled in, replaces the body
            t = st["templates"].get(template_uid)
            if t is None:
                body_problem = ("template_uid", "The template does not exist.")
            else:
                params = _sub(data, "params")
                body = re.sub(r"\{\{\s*params\.(\w+)\s*\}\}", lambda m: _text(params.get(m.group(1))), t["content"])
        elif not php_empty(given.get("body", "")):
            try:
                body = base64.b64decode(given["body"], validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):  # [A] PHP's base64_decode never fails
                body_problem = ("body", "The body must be base64 encoded.")
        send_at = given.get("send_at", "")
        if php_empty(send_at):  # beforeValidate: an empty send_at is now (UTC)
            send_at = _fmt(self.now(st))
        values = {**given, "body": body, "send_at": send_at}
        # The rules in MailWizz's order: required (blank once trimmed), length, email, subject length, date
        for attr in ("to_email", "to_name", "from_name", "subject", "body", "send_at"):
            if attr == "body" and body_problem[0]:
                error(*body_problem)
            elif not values.get(attr, "").strip(PHP_TRIM):
                error(attr, f"{TX_LABELS[attr]} cannot be blank.")
        for attr in ("to_email", "to_name", "from_email", "from_name", "reply_to_email", "reply_to_name"):
            if len(values.get(attr, "")) > 150:
                error(attr, f"{TX_LABELS[attr]} is too long (maximum is 150 characters).")
        for attr in ("to_email", "from_email", "reply_to_email"):
            if values.get(attr, "") and not subscriber_email_valid(values[attr]):
                error(attr, f"{TX_LABELS[attr]} is not a valid email address.")
        if len(values.get("subject", "")) > 255:
            error("subject", "Subject is too long (maximum is 255 characters).")
        if not _tx_date_valid(send_at):
            error("send_at", "The format of Send at is invalid.")
        from_email = values.get("from_email", "")
        domains = [d.lower() for d in st["settings"].get("verified_domains", [])]
        if "from_email" not in errors and from_email and from_email.rsplit("@", 1)[-1].lower() not in domains:
            error("from_email", "The from email address domain is not verified.")  # [A] Pakat's check
        if errors:
            raise HandlerError(422, "<br />".join(_html_encode(m) for m in errors.values()))
        if values["to_email"].lower() in st["blacklist"]:  # beforeSave
            raise HandlerError(422, _html_encode("This email address is blacklisted!"))
        stored_attachments = self._tx_attachments(st, data.get("attachments"))
        uid = self.uid(st, "email")
        now = _fmt(self.now(st))
        e: dict[str, Any] = {
            "email_uid": uid,
            "customer_id": 1,
            "to_email": values["to_email"],
            "to_name": values["to_name"],
            "from_email": from_email,  # NOT NULL without a default: MySQL (SQL_MODE="") stores ""
            "from_name": values["from_name"],
            "reply_to_email": given.get("reply_to_email"),  # nullable: null when not sent
            "reply_to_name": given.get("reply_to_name"),
            "subject": values["subject"],
            "body": body,
            "plain_text": html_to_text(body),
            "priority": 5,
            "retries": 0,
            "max_retries": 3,
            "send_at": send_at,
            "fallback_system_servers": "no",
            "status": "unsent",
            "date_added": now,
            "last_updated": now,
            "attachments": stored_attachments,
            "seq": self._seq(st),
            "contact": _sub(data, "contact"),
        }
        st["transactional"][uid] = e
        self.tick(st, self.now(st))
        return self.ok({"email_uid": uid}, 201)

    def _tx_attachments(self, st: State, given: Any) -> list[dict[str, str]]:
        """``email[attachments][N][name|type|data]`` as MailWizz reads them: ignored when the feature is off or
        the field is not an array; each item needs a non-empty ``name``, ``type`` and ``data`` (any other key,
        e.g. ``content``, is not read), a name with an extension, and ``data`` that base64-decodes to something;
        then the files are checked as one multi-file upload (count, size, extension). What is stored is the
        name (varchar(100)) and the declared type (varchar(50)); files are written under their name, so a later
        attachment of the same name replaces the earlier one's content."""
        opts = self._tx_attachment_options(st)
        if not opts["enabled"] or not isinstance(given, dict) or not given:
            return []
        files: list[tuple[str, str, bytes]] = []
        for item in given.values():
            item = item if isinstance(item, dict) else {}
            name, ftype, data = (_text(item.get(k)) for k in ("name", "type", "data"))
            if php_empty(name) or php_empty(ftype) or php_empty(data):
                raise HandlerError(422, "Please send the data in the correct format ([name, type, data]).")
            if not _php_extension(name):
                raise HandlerError(422, "Your attachment file is missing the extension.")
            raw = _php_base64_decode(data)
            if not raw:
                raise HandlerError(422, "Your attachment file is empty.")
            files.append((name, ftype, raw))
        problem = ""
        allowed = [x.lower() for x in opts["allowed_extensions"]]
        if len(files) > int(opts["allowed_files_count"]):
            problem = f"File cannot accept more than {int(opts['allowed_files_count'])} files."
        for name, _, raw in files:
            if problem:
                break
            if len(raw) > int(opts["allowed_file_size"]):
                problem = (
                    f'The file "{name}" is too large. Its size cannot exceed {int(opts["allowed_file_size"])} bytes.'
                )
            elif name.rsplit(".", 1)[1].lower() not in allowed:
                problem = (
                    f'The file "{name}" cannot be uploaded. '
                    f"Only files with these extensions are allowed: {', '.join(allowed)}."
                )
        if problem:
            raise HandlerError(422, "Some files failed to be attached, here is why: <br />" + _html_encode(problem))
        stored: list[dict[str, str]] = []
        for name, ftype, raw in files:
            content = base64.b64encode(raw).decode()
            for earlier in stored:
                if earlier["file"] == name:
                    earlier["content"] = content
            stored.append({"file": name, "type": ftype[:50], "name": name[:100], "content": content})
        return stored

    # -- test hooks ------------------------------------------------------------------------------------------

    def hook_add_api_key(self, st: State, key: str) -> bool:
        st["keys"][key] = True
        return True

    def hook_set_list_opt_in(self, st: State, list_uid: str, mode: str) -> str:
        if mode not in ("single", "double"):
            raise ValueError("mode must be single or double")
        st["lists"][list_uid]["general"]["opt_in"] = mode
        return mode

    def hook_set_quota(self, st: State, allowed: int | str | None = None, used: int | None = None) -> dict[str, Any]:
        if allowed is not None:
            st["quota"]["allowed"] = allowed
        if used is not None:
            st["quota"]["used"] = used
        return dict(st["quota"])

    def hook_set_limits(
        self,
        st: State,
        max_lists: int | None = None,
        max_subscribers: int | None = None,
        max_campaigns: int | None = None,
    ) -> dict[str, Any]:
        st["settings"].update(
            {"max_lists": max_lists, "max_subscribers": max_subscribers, "max_campaigns": max_campaigns}
        )
        return dict(st["settings"])

    def hook_set_timezone(self, st: State, timezone: str) -> str:
        ZoneInfo(timezone)
        st["settings"]["timezone"] = timezone
        return timezone

    def hook_add_sending_domain(self, st: State, domain: str) -> list[str]:
        st["settings"]["verified_domains"].append(domain.lower())
        return list(st["settings"]["verified_domains"])

    def hook_block_api(self, st: State, message: str | None = "Your account is inactive.") -> str | None:
        """Refuse every API call with a 400 and ``message`` (None lifts the block)."""
        st["settings"]["api_blocked"] = message
        return message

    def hook_fail_mutex(self, st: State, times: int = 1) -> int:
        st["mutex_failures"] = int(times)
        return int(times)

    def hook_confirm_subscriber(self, st: State, list_uid: str, email: str) -> str | None:
        s = self._find_by_email(st, list_uid, email)
        if s is None:
            return None
        if s["status"] == "unconfirmed":
            s["status"] = "confirmed"
        return s["status"]

    def hook_confirmations(self, st: State) -> list[dict[str, Any]]:
        return list(st["confirmations"])

    def hook_subscriber_status(self, st: State, list_uid: str, email: str) -> str | None:
        s = self._find_by_email(st, list_uid, email)
        return s["status"] if s else None

    def hook_set_subscriber_status(self, st: State, list_uid: str, email: str, status: str) -> str:
        s = self._find_by_email(st, list_uid, email)
        if s is None:
            raise KeyError(email)
        self._set_status(st, list_uid, s, status, confirm_mail=False)
        return status

    def hook_blacklist(self, st: State) -> list[str]:
        return sorted(st["blacklist"])

    def hook_set_campaign_group(self, st: State, campaign_uid: str, group_name: str | None) -> dict[str, Any] | None:
        """Put a campaign in a group (a customer-panel action; None takes it out)."""
        c = st["campaigns"][campaign_uid]
        c["group"] = {"group_uid": self.uid(st, "campaign-group"), "name": group_name} if group_name else None
        return c["group"]

    def hook_set_customer_registration(
        self,
        st: State,
        enabled: bool = True,
        company_required: bool = False,
        require_approval: bool = False,
        confirm_email: bool = False,
    ) -> dict[str, Any]:
        """The back-office registration settings the customer create endpoint follows."""
        reg = self._registration(st)
        reg.update(
            {
                "enabled": enabled,
                "company_required": company_required,
                "require_approval": require_approval,
                "confirm_email": confirm_email,
            }
        )
        return dict(reg)

    def hook_set_transactional_attachments(
        self,
        st: State,
        enabled: bool | None = None,
        allowed_files_count: int | None = None,
        allowed_file_size: int | None = None,
        allowed_extensions: list[str] | None = None,
    ) -> dict[str, Any]:
        """The back-office transactional attachment settings the create endpoint follows (None keeps one)."""
        opts = self._tx_attachment_options(st)
        for key, value in (
            ("enabled", enabled),
            ("allowed_files_count", allowed_files_count),
            ("allowed_file_size", allowed_file_size),
            ("allowed_extensions", allowed_extensions),
        ):
            if value is not None:
                opts[key] = list(value) if isinstance(value, list) else value
        return dict(opts)

    def hook_customer(self, st: State, customer_uid: str) -> dict[str, Any] | None:
        c = st.get("customers", {}).get(customer_uid)
        return json.loads(json.dumps(c)) if c else None

    def hook_campaign(self, st: State, campaign_uid: str) -> dict[str, Any] | None:
        c = st["campaigns"].get(campaign_uid)
        return json.loads(json.dumps(c)) if c else None
