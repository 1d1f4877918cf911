"""Machinery every provider emulator shares.

A sandbox is an ASGI application (starlette) holding one provider's account state. The same application is
served over real loopback HTTP by uvicorn (:func:`espcore.sandbox.server.serve`) and called in-process by
:class:`InProcessTransport` for fast unit tests.

* **State** lives in a :class:`StateStore`: in memory for tests, or in a JSON file guarded by a file lock so
  that several processes (Dagster runs, the UI, a CLI) share one sandbox account across runs.
* **Clock**: kept in the state, so every process sees the same time; tests freeze and advance it.
* **Faults**: deterministic (seeded) injection of latency, error statuses, timeouts and connection resets.
* **Admin endpoints** under ``/__sandbox/``: reset, clock, faults, state dump and provider test hooks (confirm an
  opt-in, read a sender code...). They answer only a request carrying the account's admin token in the
  ``X-Sandbox-Admin-Token`` header (:meth:`ProviderSandbox.admin_headers`; ``python -m espcore.sandbox token``
  prints it). The token is made with the state and kept across resets. Without it an admin path is just a path the
  provider does not know, answered in the provider's own shape. The state dump never carries API keys, client
  secrets, access tokens or the admin token (:func:`redact_secrets`).
* **Hostile input**: any method reaches the provider's router (so an unknown one gets the provider's 405), a body
  over :attr:`ProviderSandbox.max_body_bytes` is refused before anything reads it, an undecodable body is flagged
  for the provider to answer in its own shape, and a handler that breaks answers the provider's crash page.
"""

import asyncio
import copy
import fcntl
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

State = dict[str, Any]
ADMIN_PREFIX = "/__sandbox"
#: the request header that carries the admin token
ADMIN_HEADER = "X-Sandbox-Admin-Token"
#: where the state keeps the admin token (never dumped)
ADMIN_STATE_KEY = "__admin__"
#: a body larger than this is refused unless a sandbox says otherwise (memory stays bounded whatever arrives)
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

log = logging.getLogger(__name__)


# -- state ----------------------------------------------------------------------------------------------------


class StateStore:
    """Holds one account's state; ``transaction()`` gives exclusive, all-or-nothing access to it."""

    def transaction(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self, state: State) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class MemoryStore(StateStore):
    def __init__(self, state: State | None = None) -> None:
        self._state: State = state or {}
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[State]:
        # Live state, no copy: handlers validate before they mutate, so there is nothing to roll back.
        with self._lock:
            yield self._state

    def reset(self, state: State) -> None:
        with self._lock:
            self._state = copy.deepcopy(state)


class FileStore(StateStore):
    """JSON state in a file, shared by processes through an exclusive ``flock`` on ``<file>.lock``.

    Writes go to a temporary file that replaces the old one atomically, so a killed process never leaves
    a torn state file. The parsed state is cached by (mtime, size, inode) to keep reads cheap.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.RLock()
        self._cache: tuple[tuple[int, int, int], State] | None = None

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> State:
        stamp = self._stamp()
        if stamp is None:
            return {}
        if self._cache is not None and self._cache[0] == stamp:
            return copy.deepcopy(self._cache[1])
        state = json.loads(self.path.read_text("utf-8"))
        self._cache = (stamp, state)
        return copy.deepcopy(state)

    def _save(self, state: State) -> None:
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, separators=(",", ":"), default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        stamp = self._stamp()
        if stamp is not None:
            self._cache = (stamp, copy.deepcopy(state))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def transaction(self) -> Iterator[State]:
        with self._locked():
            state = self._load()
            before = json.dumps(state, sort_keys=True, default=str)
            yield state
            if json.dumps(state, sort_keys=True, default=str) != before:
                self._save(state)

    def reset(self, state: State) -> None:
        with self._locked():
            self._save(copy.deepcopy(state))


# -- admin token and secrets -------------------------------------------------------------------------------------


def ensure_admin_token(state: State) -> str:
    """The account's admin token, made (random, URL-safe) the first time a state is seen without one."""
    entry = state.get(ADMIN_STATE_KEY)
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str) or not entry["token"]:
        entry = {"token": secrets.token_urlsafe(32)}
        state[ADMIN_STATE_KEY] = entry
    return entry["token"]


def read_admin_token(state_path: str | os.PathLike[str]) -> str:
    """The admin token of the account kept in a state file (made there if the file has none yet)."""
    with FileStore(state_path).transaction() as st:
        return ensure_admin_token(st)


def admin_headers(token: str) -> dict[str, str]:
    """The header that opens ``/__sandbox/`` for a process that holds only the token (see ``sandbox.admin_headers``)."""
    return {ADMIN_HEADER: token}


#: keys whose string value is a credential, in any sandbox's state
SECRET_FIELDS = frozenset(
    {"secret", "client_secret", "api_key", "apikey", "access_token", "refresh_token", "token", "password"}
)
#: keys of a mapping whose own keys are credentials (``{"keys": {<api key>: ...}}``, ``{"tokens": {<token>: ...}}``)
SECRET_MAPS = frozenset({"keys", "api_keys", "tokens", "access_tokens"})
_MIN_EMBEDDED_SECRET = 8  # shorter secrets are masked where they stand alone, not inside longer text


def redact_secrets(state: Any, *, fields: frozenset[str] = SECRET_FIELDS, maps: frozenset[str] = SECRET_MAPS) -> Any:
    """A copy of ``state`` with every credential masked.

    Credentials are the string values under ``fields`` and the keys of mappings under ``maps`` (names compared
    case-insensitively). Each one becomes ``<redacted:N>`` wherever it stands alone (as a key or a value, so that
    counts and references stay readable), and ``<redacted>`` inside longer text.
    """
    found: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                name = str(key).lower()
                if name in maps and isinstance(value, dict):
                    found.update(k for k in value if isinstance(k, str) and k)
                if name in fields and isinstance(value, str) and value:
                    found.add(value)
                collect(value)
        elif isinstance(node, list | tuple):
            for value in node:
                collect(value)

    collect(state)
    if not found:
        return copy.deepcopy(state)
    numbered: dict[str, str] = {}
    long_ones = sorted((x for x in found if len(x) >= _MIN_EMBEDDED_SECRET), key=len, reverse=True)
    embedded = re.compile("|".join(re.escape(x) for x in long_ones)) if long_ones else None

    def mask(text: str) -> str:
        if text in found:
            return numbered.setdefault(text, f"<redacted:{len(numbered) + 1}>")
        return embedded.sub("<redacted>", text) if embedded is not None else text

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {(mask(k) if isinstance(k, str) else k): walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return mask(node)
        return node

    return walk(state)


# -- clock ----------------------------------------------------------------------------------------------------


class SandboxClock:
    """Sandbox time, stored in the account state: real UTC time plus an offset, or frozen at a moment."""

    KEY = "__clock__"

    @staticmethod
    def now(state: State) -> datetime:
        c = state.get(SandboxClock.KEY) or {}
        if c.get("frozen_at"):
            return datetime.fromisoformat(c["frozen_at"])
        return datetime.now(UTC) + timedelta(seconds=float(c.get("offset_s", 0.0)))

    @staticmethod
    def freeze(state: State, at: datetime | None = None) -> None:
        at = at or SandboxClock.now(state)
        state[SandboxClock.KEY] = {"frozen_at": at.astimezone(UTC).isoformat(), "offset_s": 0.0}

    @staticmethod
    def advance(state: State, seconds: float) -> datetime:
        c = state.setdefault(SandboxClock.KEY, {})
        if c.get("frozen_at"):
            c["frozen_at"] = (datetime.fromisoformat(c["frozen_at"]) + timedelta(seconds=seconds)).isoformat()
        else:
            c["offset_s"] = float(c.get("offset_s", 0.0)) + seconds
        return SandboxClock.now(state)


# -- faults ---------------------------------------------------------------------------------------------------


@dataclass
class FaultRule:
    """One kind of injected fault.

    kind: ``latency`` (delay, then normal answer), ``status`` (answer ``status`` with the provider's error
    envelope carrying ``message`` and ``code``, an HTML page when ``html``, or ``body`` verbatim with
    ``content_type``), ``timeout`` (hang ``seconds`` so the client times out), ``reset`` (drop the connection
    without an answer).
    A ``status`` of 200 makes the answers real services give when a proxy or a bug gets in the way: a 200 HTML
    page, the provider's error envelope sent with 200, a truncated body; with ``after_handler`` the request took
    effect first.
    Matching: ``path`` regex and ``method``; fires with ``probability`` (seeded), at most ``times`` times.
    """

    kind: str
    status: int = 500
    path: str | None = None
    method: str | None = None
    probability: float = 1.0
    times: int | None = None
    retry_after: str | None = None
    seconds: float = 0.0
    html: bool = False
    message: str | None = None
    code: Any = None  # the provider's error code in the envelope (default: the provider's own for the status)
    body: str | None = None  # sent verbatim instead of the envelope
    content_type: str = "application/json"
    after_handler: bool = False  # fire after the request took effect (for "did it happen?" tests)
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not re.search(self.path, path))


@dataclass
class FaultPlan:
    """The faults of one sandbox; deterministic for a given seed and request sequence."""

    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)
    reject_email_fraction: float = 0.0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def add(self, kind: str, **kwargs: Any) -> FaultRule:
        rule = FaultRule(kind=kind, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.reject_email_fraction = 0.0
            self._rng = random.Random(self.seed)

    def pick(self, method: str, path: str, *, after: bool) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.after_handler != after or not rule.matches(method, path):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def rejects_email(self, email: str) -> bool:
        """Deterministically reject a share of addresses (same answer for the same address and seed)."""
        if self.reject_email_fraction <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}:{email.lower()}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.reject_email_fraction


class SimulatedTimeout(Exception):
    """In-process: the client should see a read timeout."""


class SimulatedReset(Exception):
    """The connection is dropped without an answer."""


# -- rate windows ----------------------------------------------------------------------------------------------


class WindowCounter:
    """Counts hits per key in sliding windows; ``hit`` returns seconds until room, or None when allowed."""

    def __init__(self) -> None:
        self._hits: dict[tuple[str, float], deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float, limits: Mapping[float, int], *, record: bool = True) -> float | None:
        with self._lock:
            wait = None
            for window, limit in limits.items():
                q = self._hits.setdefault((key, window), deque())
                while q and q[0] <= now - window:
                    q.popleft()
                if len(q) >= limit:
                    w = q[0] + window - now
                    wait = w if wait is None else max(wait, w)
            if wait is None and record:
                for window in limits:
                    self._hits[(key, window)].append(now)
            return wait

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


# -- requests and routing -----------------------------------------------------------------------------------


@dataclass
class SandboxRequest:
    """What a handler sees: the parsed request and the path parameters."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    query_string: str
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    form: dict[str, Any] | None  # urlencoded or multipart fields (last value wins), files as bytes
    json_body: Any  # decoded JSON or None
    json_error: bool  # a JSON content type with an undecodable body
    is_multipart: bool
    body_error: bool = False  # a form or multipart body that could not be parsed (form is None then)

    @property
    def is_json(self) -> bool:
        return self.content_type.startswith("application/json")


class HandlerError(Exception):
    """Raised by a handler to answer with the provider's error envelope."""

    def __init__(self, status: int, message: Any, code: Any = None, headers: Mapping[str, str] | None = None):
        super().__init__(str(message))
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


Handler = Callable[[SandboxRequest, State], Response]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    template: str


_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_CONVERTERS = {"int": r"\d+", "str": r"[^/]+", "uid": r"[a-z0-9]+", "path": r".+"}


def compile_path(template: str) -> re.Pattern[str]:
    out, pos = "", 0
    for m in _PARAM.finditer(template):
        out += re.escape(template[pos : m.start()])
        out += f"(?P<{m.group(1)}>{_CONVERTERS[m.group(2) or 'str']})"
        pos = m.end()
    out += re.escape(template[pos:])
    return re.compile(f"^{out}$")


class ProviderSandbox:
    """Base class of the three emulators. Subclasses register routes and shape errors like their provider."""

    provider = "sandbox"
    rate_limits: Mapping[float, int] = {}
    #: bodies over this many bytes are refused with :meth:`too_large` before they are read (None: no bound)
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES
    #: what :meth:`dump` masks (see :func:`redact_secrets`); a provider adds its own credential names
    secret_fields: frozenset[str] = SECRET_FIELDS
    secret_maps: frozenset[str] = SECRET_MAPS
    #: the demo account's credentials, by the resource field that holds each (``client_id``, ``api_key``, …)
    demo_credentials: Mapping[str, str] = {}
    #: the API dialects it can serve (a ``dialect`` argument), for a provider with several doc sets
    dialects: tuple[str, ...] = ()

    def __init__(
        self,
        store: StateStore | None = None,
        *,
        faults: FaultPlan | None = None,
        seed: int = 0,
        rate_limit: bool = True,
    ) -> None:
        self.store = store or MemoryStore()
        self.faults = faults or FaultPlan(seed=seed)
        self.seed = seed
        self.rate_limit_enabled = rate_limit
        self.windows = WindowCounter()
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=10_000)
        self._routes: list[_Route] = []
        self.register_routes()
        with self.store.transaction() as st:
            if not st.get("__initialised__"):
                token = st.get(ADMIN_STATE_KEY)
                st.clear()
                st.update(self.initial_state())
                st["__initialised__"] = True
                if token is not None:
                    st[ADMIN_STATE_KEY] = token
            ensure_admin_token(st)
        # An ASGI endpoint (not a function) takes every method, so an unusual one still reaches the provider's router.
        self.app = Starlette(routes=[Route("/{path:path}", _Dispatch(self))])

    # -- to override -------------------------------------------------------------------------------------

    def register_routes(self) -> None:
        raise NotImplementedError

    def initial_state(self) -> State:
        """A fresh, empty account."""
        return {}

    def seed_demo(self, state: State) -> None:
        """Put the demo account in place (credentials, senders, templates, balance)."""

    def seed_suppressions(self, emails: Sequence[str], comment: str) -> None:
        """Put ``emails`` on the account's own suppression list through the provider's API, where the API has an
        account-wide one (the demo's blacklisted customer); nothing where it has none."""

    def error(self, status: int, message: Any, code: Any = None) -> Response:
        """The provider's error envelope."""
        return JSONResponse({"message": message, "error_code": code or status}, status_code=status)

    def not_found(self, req: SandboxRequest) -> Response:
        return self.error(404, "Not found")

    def wrong_method(self, req: SandboxRequest, allowed: list[str]) -> Response:
        return self.error(405, "Method not allowed")

    def normalise_path(self, path: str) -> str:
        return path

    def before_request(self, req: SandboxRequest, state: State) -> Response | None:
        """Authentication and rate limiting; return a response to stop the request."""
        return None

    def tick(self, state: State, now: datetime) -> None:
        """Advance time-driven state (lifecycles, delayed activations) up to ``now``."""

    def too_large(self, limit: int) -> Response:
        """The answer to a body over :attr:`max_body_bytes`, in the provider's envelope."""
        return self.error(413, "Request Entity Too Large")

    def crash(self) -> Response:
        """The answer when a handler breaks (a sandbox bug or input nobody foresaw), in the provider's shape."""
        return self.error(500, "Internal Server Error")

    def fault_response(self, rule: FaultRule) -> Response:
        if rule.body is not None:
            return Response(rule.body, status_code=rule.status, media_type=rule.content_type)
        if rule.html:
            return HTMLResponse(
                rule.message or "<html><body>Whoops, looks like something went wrong.</body></html>",
                status_code=rule.status,
            )
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
        resp = self.error(rule.status, rule.message or _default_reason(rule.status), rule.code)
        if headers:
            resp.headers.update(headers)
        return resp

    # -- helpers for subclasses ----------------------------------------------------------------------------

    def route(self, method: str, template: str, handler: Handler) -> None:
        self._routes.append(_Route(method.upper(), compile_path(template), handler, template))

    def now(self, state: State) -> datetime:
        return SandboxClock.now(state)

    def next_id(self, state: State, kind: str, start: int = 1) -> int:
        counters = state.setdefault("__ids__", {})
        value = int(counters.get(kind, start - 1)) + 1
        counters[kind] = value
        return value

    def uid(self, state: State, kind: str, length: int = 13) -> str:
        """A deterministic lower-case alphanumeric id (MailWizz-style uids, prefixed ids...)."""
        n = self.next_id(state, f"uid:{kind}")
        digest = hashlib.sha256(f"{self.seed}:{kind}:{n}".encode()).hexdigest()
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        value = int(digest, 16)
        out = []
        for _ in range(length):
            value, r = divmod(value, len(alphabet))
            out.append(alphabet[r])
        return "".join(out)

    def check_rate(self, key: str, state: State, limits: Mapping[float, int] | None = None) -> float | None:
        if not self.rate_limit_enabled:
            return None
        limits = self.rate_limits if limits is None else limits
        if not limits:
            return None
        return self.windows.hit(key, self.now(state).timestamp(), limits)

    # -- admin -----------------------------------------------------------------------------------------

    def reset(self, *, demo: bool = False) -> None:
        token = self.admin_token  # a reset keeps the admin token: whoever holds it keeps control
        state = self.initial_state()
        state["__initialised__"] = True
        state[ADMIN_STATE_KEY] = {"token": token}
        if demo:
            self.seed_demo(state)
        self.store.reset(state)
        self.windows.clear()
        self.faults.clear()

    def hook(self, name: str, **kwargs: Any) -> Any:
        """Run a provider test hook (``hook_<name>``) inside a state transaction."""
        fn = getattr(self, f"hook_{name}", None)
        if fn is None:
            raise KeyError(f"{self.provider} sandbox has no hook {name!r}")
        with self.store.transaction() as st:
            self.tick(st, self.now(st))
            return fn(st, **kwargs)

    def advance(self, seconds: float) -> datetime:
        with self.store.transaction() as st:
            now = SandboxClock.advance(st, seconds)
            self.tick(st, now)
            return now

    def freeze_clock(self, at: datetime | None = None) -> None:
        with self.store.transaction() as st:
            SandboxClock.freeze(st, at)

    def snapshot(self) -> State:
        """The whole state, credentials included: for in-process tests only, never served (see :meth:`dump`)."""
        with self.store.transaction() as st:
            self.tick(st, self.now(st))
            return copy.deepcopy(st)

    def dump(self) -> State:
        """The state as ``GET /__sandbox/state`` serves it: no admin token, every credential masked."""
        state = self.snapshot()
        state.pop(ADMIN_STATE_KEY, None)
        return redact_secrets(state, fields=self.secret_fields, maps=self.secret_maps)

    @property
    def admin_token(self) -> str:
        """The token that opens ``/__sandbox/`` (shared by every process on the same state file)."""
        with self.store.transaction() as st:
            return ensure_admin_token(st)

    def admin_headers(self) -> dict[str, str]:
        """Headers for a call to ``/__sandbox/``: the one shared way callers present the admin token."""
        return admin_headers(self.admin_token)

    def _admin_allowed(self, req: SandboxRequest) -> bool:
        given = req.headers.get(ADMIN_HEADER, "")
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.admin_token.encode())

    def _admin_or_none(self, req: SandboxRequest) -> Response | None:
        """The admin answer when the request carries the admin token, else None (the provider answers it)."""
        if not self._admin_allowed(req):
            log.warning("%s sandbox: %s %s without a valid admin token", self.provider, req.method, req.path)
            return None
        try:
            return self._admin(req)
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad admin call: {exc}"}, status_code=400)

    def _admin(self, req: SandboxRequest) -> Response:
        sub = req.path[len(ADMIN_PREFIX) :].strip("/")
        body = req.json_body if isinstance(req.json_body, dict) else {}
        if sub == "reset" and req.method == "POST":
            self.reset(demo=bool(body.get("demo")))
            return JSONResponse({"ok": True})
        if sub == "clock" and req.method == "POST":
            if body.get("freeze"):
                self.freeze_clock(datetime.fromisoformat(body["at"]) if body.get("at") else None)
            now = self.advance(float(body.get("advance", 0)))
            return JSONResponse({"now": now.isoformat()})
        if sub == "faults" and req.method == "POST":
            if body.get("clear"):
                self.faults.clear()
            if "reject_email_fraction" in body:
                self.faults.reject_email_fraction = float(body["reject_email_fraction"])
            for rule in body.get("rules", []):
                self.faults.add(**rule)
            return JSONResponse({"rules": len(self.faults.rules)})
        if sub == "state" and req.method == "GET":
            return JSONResponse(self.dump())
        if sub.startswith("hooks/") and req.method == "POST":
            try:
                result = self.hook(sub.split("/", 1)[1], **body)
            except KeyError as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            return JSONResponse({"result": result})
        return JSONResponse({"error": f"unknown admin call {req.method} {sub}"}, status_code=404)

    # -- dispatch ----------------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        path = self.normalise_path(request.url.path)
        try:
            req = await _parse(request, path, self.max_body_bytes)
        except _BodyTooLarge as exc:
            response = self.too_large(exc.limit)
            self.request_log.append((request.method.upper(), path, response.status_code))
            return response
        in_process = bool(request.scope.get("extensions", {}).get("espcore.inprocess"))
        if req.path.startswith(ADMIN_PREFIX):
            admin = await run_in_threadpool(self._admin_or_none, req)
            if admin is not None:
                return admin
        rule = self.faults.pick(req.method, req.path, after=False)
        if rule is not None:
            early = await self._apply_fault(rule, in_process)
            if early is not None:
                self.request_log.append((req.method, req.path, early.status_code))
                return early
        try:
            response = await run_in_threadpool(self._handle, req)
        except Exception:
            log.exception(
                "%s sandbox: %s %s broke; answering the provider's crash page", self.provider, req.method, req.path
            )
            response = self.crash()
        after = self.faults.pick(req.method, req.path, after=True)
        if after is not None:
            late = await self._apply_fault(after, in_process)
            if late is not None:
                response = late
        self.request_log.append((req.method, req.path, response.status_code))
        return response

    async def _apply_fault(self, rule: FaultRule, in_process: bool) -> Response | None:
        if rule.kind == "latency":
            await asyncio.sleep(rule.seconds)
            return None
        if rule.kind == "timeout":
            if in_process:
                raise SimulatedTimeout()
            await asyncio.sleep(rule.seconds or 30.0)
            return self.fault_response(FaultRule(kind="status", status=504))
        if rule.kind == "reset":
            if in_process:
                raise SimulatedReset()
            return _DroppedConnection()
        return self.fault_response(rule)

    def _handle(self, req: SandboxRequest) -> Response:
        matched_path: list[str] = []
        for r in self._routes:
            m = r.pattern.match(req.path)
            if not m:
                continue
            if r.method != req.method:
                matched_path.append(r.method)
                continue
            req.params = m.groupdict()
            with self.store.transaction() as st:
                self.tick(st, self.now(st))
                try:
                    stop = self.before_request(req, st)
                    if stop is not None:
                        return stop
                    return r.handler(req, st)
                except HandlerError as exc:
                    resp = self.error(exc.status, exc.message, exc.code)
                    resp.headers.update(exc.headers)
                    return resp
        if matched_path:
            with self.store.transaction() as st:
                stop = self.before_request(req, st)
                if stop is not None:
                    return stop
            return self.wrong_method(req, matched_path)
        with self.store.transaction() as st:
            stop = self.before_request(req, st)
            if stop is not None:
                return stop
        return self.not_found(req)


class _Dispatch:
    """The ASGI endpoint behind the catch-all route: every method and path goes to the sandbox's dispatcher."""

    def __init__(self, sandbox: ProviderSandbox) -> None:
        self.sandbox = sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = await self.sandbox._endpoint(Request(scope, receive))
        await response(scope, receive, send)


class _DroppedConnection(Response):
    """Starts an answer, then drops the connection: the client sees a protocol error, as on a reset."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise SimulatedReset()


class _BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body over {limit} bytes")
        self.limit = limit


def _default_reason(status: int) -> str:
    return {
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }.get(status, "Error")


async def _read_body(request: Request, limit: int | None) -> bytes:
    """The whole body, refused (``_BodyTooLarge``) as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if limit is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if limit is not None and size > limit:
            raise _BodyTooLarge(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # later reads (the multipart parser) take it from here
    return body


async def _parse(request: Request, path: str, max_body: int | None = None) -> SandboxRequest:
    body = await _read_body(request, max_body)
    ctype = request.headers.get("content-type", "").lower()
    form: dict[str, Any] | None = None
    json_body: Any = None
    json_error = False
    body_error = False
    multipart = ctype.startswith("multipart/form-data")
    if ctype.startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif multipart:
        try:
            parsed = await request.form(max_files=100, max_fields=200_000, max_part_size=max(len(body), 1024))
            form = {}
            for key, value in parsed.multi_items():
                form[key] = await value.read() if isinstance(value, UploadFile) else value
        except Exception:  # no boundary, a torn part...: the provider answers it as a malformed body
            form, body_error = None, True
    elif body:
        try:
            json_body = json.loads(body)
        except (ValueError, RecursionError):
            json_error = True
    query_string = request.url.query
    return SandboxRequest(
        method=request.method.upper(),
        path=path,
        params={},
        query=dict(parse_qsl(query_string, keep_blank_values=True)),
        query_string=query_string,
        headers=request.headers,
        body=body,
        content_type=ctype,
        form=form,
        json_body=json_body,
        json_error=json_error,
        is_multipart=multipart,
        body_error=body_error,
    )


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)
